"""The core's UNet, VAE and text encoder compute what ComfyUI's own modules compute.

One checkpoint file, each side loading it its own way (the core with ``load_models``,
ComfyUI with its stock ``load_state_dict_guess_config`` for the full SD2.1 layout and
with the pack's loader for the tiny self-describing file), float32 on the CPU (ComfyUI
would keep its text encoder in float16 there: ``--fp32-text-enc`` is forced). ComfyUI
is imported in a subprocess of its own, one per file (``tests/support/comfy_inprocess.py``), so
nothing of it leaks into this test process.

Measure: ``rel = max|core − ComfyUI| / max|ComfyUI|`` per output, bound ``1e-4``.
Measured at full size (UNet batch 2 on 16×16 latents, VAE on 64×64 images, text on two
prompts): text 1.1e-6, VAE encode 3.0e-7, decode 1.1e-6, UNet 3.9e-6; a load of about
100 s and a peak RSS of about 8.9 GiB (file pages included) on 2 busy cores.
"""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from support.checkpoints import full_random_checkpoint, tiny_checkpoint

from .comfy_setup import REPO_ROOT, ensure_comfyui

pytestmark = [pytest.mark.host, pytest.mark.slow]

SCRIPT = "tests.support.comfy_inprocess"  # run as a module from the repository root
REL_TOL = 1e-4
LATENT = {"tiny": 8, "full": 16}


@pytest.fixture(scope="module", params=["tiny", "full"])
def parity(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON report of ``python -m tests.support.comfy_inprocess parity`` for the tiny or the full checkpoint."""
    comfy_dir = ensure_comfyui()
    if request.param == "tiny":
        checkpoint = tiny_checkpoint(tmp_path_factory.mktemp("parity") / "tiny.safetensors")
    else:
        checkpoint = full_random_checkpoint()
    cmd = [sys.executable, "-m", SCRIPT, "parity", str(checkpoint), "--comfy-dir", str(comfy_dir),
           "--latent", str(LATENT[request.param])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check(result: dict[str, Any], what: str) -> None:
    assert result["finite"], f"{what}: non-finite output {result}"
    assert result["scale"] > 1e-2, f"{what}: ComfyUI's output is ~0, the comparison would say nothing: {result}"
    assert result["rel"] <= REL_TOL, f"{what}: max|core - ComfyUI| / max|ComfyUI| = {result['rel']:.2e}: {result}"


def test_unet_matches_comfyui(parity: dict[str, Any]) -> None:
    _check(parity["unet"], "UNet")


def test_vae_encoder_matches_comfyui(parity: dict[str, Any]) -> None:
    _check(parity["vae_encode"], "VAE encode (posterior mean)")


def test_vae_decoder_matches_comfyui(parity: dict[str, Any]) -> None:
    _check(parity["vae_decode"], "VAE decode")


def test_text_encoder_matches_comfyui(parity: dict[str, Any]) -> None:
    assert parity["text"]["tokens_equal"], "open_clip's ViT-H-14 tokens differ from ComfyUI's SD2 tokenizer's"
    _check(parity["text"], "text encoder (penultimate block + ln_final)")
