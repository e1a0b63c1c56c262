"""The building blocks of ``benchmarks/vs_controlnet.py`` are what they claim (no timing).

``python -m benchmarks.vs_controlnet --check`` (a process of its own: it imports ComfyUI)
builds, at the full SD2.1 size on the meta device, the UNet config it uses and the
OpenPose ControlNet file layout it writes, and compares them with what ComfyUI's own
detection and ``cldm.ControlNet`` make of them; then, at a small size with real weights,
runs one CFG step of every arm and checks the ControlNet's outputs have the shapes of the
UNet activations they are added to. About 20 s on 2 busy cores.
"""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from .comfy_setup import REPO_ROOT, ensure_comfyui

pytestmark = pytest.mark.host


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def check() -> dict[str, Any]:
    ensure_comfyui()
    proc = _run("benchmarks.vs_controlnet", "--check")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_unet_config_is_comfyuis_stock_detection(check: dict[str, Any]) -> None:
    assert check["full_unet_config_is_stock"]


def test_controlnet_layout_is_sd21_openpose(check: dict[str, Any]) -> None:
    assert check["full_controlnet_layout_matches_comfy"], check["full_controlnet_layout_diff"]
    assert check["full_controlnet_keys"] == 340
    assert check["full_zero_conv_widths"] == [320] * 4 + [640] * 3 + [1280] * 5
    params = check["full_params"]
    assert params["controlnet"] == 364_228_240  # the 4-channel UNet's encoder copy + hint encoder + zero convs
    assert params["sd_unet"] == 865_910_724
    assert params["humansd_unet"] == params["core_unet"] == params["sd_unet"] + 4 * 320 * 9


def test_flop_counts(check: dict[str, Any]) -> None:
    """One CFG step at 256^2: UNet 362 GFLOP; the ControlNet's encoder copy + hint encoder + zero convs 126."""
    flops = check["full_flops_256"]
    assert abs(flops["unet"] - 362.2) < 0.5 and abs(flops["controlnet"] - 126.3) < 0.5, flops


def test_control_outputs_fit_the_unet(check: dict[str, Any]) -> None:
    assert check["small_control_output_shapes_match_skips"]
    assert check["small_control_middle_shape_matches"]
    assert check["small_control_changes_output"] > 1e-3  # the residuals reach the UNet's output


def test_every_arm_runs_one_cfg_step(check: dict[str, Any]) -> None:
    assert check["small_finite"]
    assert all(shape == [1, 4, 8, 8] for shape in check["small_output_shapes"].values())
    assert check["small_weights_shared"]
    assert check["small_core_vs_comfy_rel"] <= 1e-4


@pytest.mark.parametrize("module", ["benchmarks.vs_controlnet", "benchmarks.vs_controlnet_workflows"])
def test_help_runs(module: str) -> None:
    proc = _run(module, "--help")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "usage:" in proc.stdout
