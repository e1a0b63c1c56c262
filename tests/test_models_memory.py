"""Loading does not double memory: peak RSS growth ≤ 1.3× the loaded weights (fresh processes).

Runs ``python -m benchmarks.checkpoint_memory``'s ``write``/``load`` steps on its ~160 M
parameter "mid" config; the full-size numbers come from that script's main.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = "benchmarks.checkpoint_memory"  # run as a module from the repository root
MID_PARAMS = 158_235_564  # UNet 99.1 M + VAE 20.9 M + text 38.2 M


def _run(*argv: str) -> dict:
    out = subprocess.run([sys.executable, "-m", SCRIPT, "--config", "mid", *argv],
                         check=True, capture_output=True, text=True, timeout=600, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], dict]:
    """An fp16 safetensors file of random weights and a Lightning-style .ckpt of the same."""
    tmp = tmp_path_factory.mktemp("rss")
    paths = {"safetensors": tmp / "mid.safetensors", "ckpt": tmp / "mid.ckpt"}
    result = _run("write", str(paths["safetensors"]), "--dtype", "float16", "--lightning", str(paths["ckpt"]))
    return paths, result


@pytest.mark.parametrize("kind", ["safetensors", "ckpt"])
def test_peak_rss_growth_while_loading(written, kind: str) -> None:
    """fp16 files loaded as float32: a cast on every tensor (the ckpt through the restricted unpickler)."""
    result = _run("load", str(written[0][kind]), "--dtype", "float32")
    assert result["loaded_bytes"] == MID_PARAMS * 4
    assert result["ratio"] <= 1.3, result


def test_random_checkpoint_writer_stays_near_file_size(written) -> None:
    """write_random_checkpoint never holds the float32 model: growth ≈ the fp16 file."""
    result = written[1]
    assert result["file_bytes"] >= MID_PARAMS * 2
    assert result["growth"] <= 1.3 * result["file_bytes"], result
