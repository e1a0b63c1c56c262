"""Model files on the command line: the word ``embedded`` everywhere one is asked for, and files checked first.

``resolve_checkpoint`` is the one reader of such options; every command accepts
``embedded``; a missing or unreadable file is reported before torch is imported.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from training_helpers import make_dataset, restore_torch_globals  # noqa: F401

from humansd_core.cli import main
from humansd_core.errors import CheckpointError
from humansd_core.models.checkpoint import read_state_dict
from humansd_core.shipped_files import (
    EMBEDDED_MODEL_NAME,
    WEIGHTS_DIR,
    file_digest,
    resolve_checkpoint,
    shipped_digest,
)
from humansd_core.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
EMBEDDED_FILE = WEIGHTS_DIR / EMBEDDED_MODEL_NAME


def test_the_word_embedded_is_the_shipped_model_checked_by_its_digest() -> None:
    path = resolve_checkpoint("embedded", "--ckpt")
    assert path == EMBEDDED_FILE and file_digest(path) == shipped_digest(EMBEDDED_MODEL_NAME)


def test_bad_model_files_are_named_with_the_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CheckpointError, match=r"^--ckpt .*nope\.safetensors: file not found .*or embedded"):
        resolve_checkpoint(tmp_path / "nope.safetensors", "--ckpt")
    with pytest.raises(CheckpointError, match=r"^input .*: a folder, not a file"):
        resolve_checkpoint(tmp_path, "input")
    pointer = tmp_path / "model.safetensors"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n")
    with pytest.raises(CheckpointError, match=r"^option base .*model\.safetensors: a Git LFS pointer"):
        resolve_checkpoint(pointer, "option base")
    assert resolve_checkpoint(EMBEDDED_FILE) == EMBEDDED_FILE  # a path is a path, no digest asked
    (tmp_path / "embedded").write_bytes(EMBEDDED_FILE.read_bytes()[:64])
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("./embedded") == Path("embedded")  # a file of that name, not the word


def test_convert_reads_the_embedded_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "copy.safetensors"
    assert main(["convert", "embedded", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    source, copy = read_state_dict(EMBEDDED_FILE), read_state_dict(out)
    assert source.keys() == copy.keys() and all(torch.equal(source[k], copy[k]) for k in source)


def test_train_starts_from_the_embedded_model(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", count=2)
    toml = tmp_path / "run.toml"
    toml.write_text('[model]\nbase = "embedded"\nvae = "embedded"\ncpu_threads = 1\n[data]\ndata = "data"\n'
                    'resolution = 64\nbucket_step = 64\n[optim]\nsteps = 1\nbatch_size = 1\n[loss]\nloss = "plain"\n'
                    '[output]\noutput = "run"\nprogress = false\nsave_dtype = "fp32"\n')
    config = TrainConfig.from_toml(toml)
    assert (config.model.base, config.model.vae, config.data.data) == ("embedded", "embedded", str(data))
    assert main(["train", str(toml)]) == 0
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["model"]["base"] == "embedded"
    lora = read_state_dict(run / "lora.safetensors")
    assert lora and all(k.startswith("diffusion_model.") for k in lora)


# Each call of the CLI in a fresh interpreter, as a user runs it: its exit code, whether torch was
# imported by the time it returned, and what it printed on stderr.
PROBE = """
import contextlib, io, json, sys
from humansd_core.cli import main
err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = main(sys.argv[1:])
print(json.dumps([code, "torch" in sys.modules, err.getvalue()]))
"""


def _probe(args: list[str], cwd: Path) -> tuple[int, bool, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    code, torch_loaded, err = json.loads(proc.stdout.strip().splitlines()[-1])
    return code, torch_loaded, err


@pytest.mark.parametrize(("args", "named"), [
    (["generate", "--ckpt", "missing.safetensors", "--pose", "pose.json", "--prompt", "a", "-o", "o.png"],
     "--ckpt missing.safetensors: file not found"),
    (["generate", "--ckpt", "embedded", "--pose", "missing.json", "--prompt", "a", "-o", "o.png"],
     "--pose missing.json: file not found"),
    (["generate", "--ckpt", "embedded", "--pose", "pose.json", "--prompt", "a", "-o", "o.png",
      "--init-image", "missing.png"], "--init-image missing.png: file not found"),
    (["convert", "missing.ckpt", "out.safetensors"], "input missing.ckpt: file not found"),
    (["init-from-sd21", "missing.ckpt", "out.safetensors"], "input missing.ckpt: file not found"),
    (["demo", "--model", "missing.safetensors"], "--model missing.safetensors: file not found"),
    (["train", "missing.toml"], "missing.toml: cannot read the config file"),
    (["train", "--data", ".", "--output", "run", "--base", "missing.safetensors"],
     "option base missing.safetensors: file not found"),
    (["train", "--data", "missing_data", "--output", "run"], "option data missing_data: no such folder or file"),
], ids=["generate-ckpt", "generate-pose", "generate-init", "convert", "init-from-sd21", "demo", "train-config",
        "train-base", "train-data"])
def test_a_missing_file_is_reported_before_torch_is_imported(tmp_path: Path, args: list[str], named: str) -> None:
    (tmp_path / "pose.json").write_text('{"people": []}')
    code, torch_loaded, err = _probe(args, tmp_path)
    assert (code, torch_loaded) == (2, False), err
    assert err.startswith("error: ") and named in err


def test_building_the_parser_and_help_import_no_torch() -> None:
    code = ("import contextlib, io, sys\nfrom humansd_core.cli import main\n"
            "for command in ('generate', 'demo', 'convert', 'train', 'synth'):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        main([command, '--help'])\n"
            "print('torch' in sys.modules)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          check=True)
    assert proc.stdout.strip() == "False"
