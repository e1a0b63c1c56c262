"""Why the pack has its own loader and patch, shown in a real ComfyUI with a full SD2.1-layout
HumanSD checkpoint of random weights: ComfyUI detects an 8-channel SD UNet as inpainting, so
the stock ``CheckpointLoaderSimple`` -> ``KSampler`` graph fails because it feeds the UNet
mask + masked image (9 channels); the same graph with the one object patch
(``HumanSDModelPatch``: ``concat_keys = ("concat_image",)``) samples.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from PIL import Image

from support.checkpoints import full_random_checkpoint

from .comfy_server import ComfyHost, PromptError

pytestmark = [pytest.mark.host, pytest.mark.slow]

CKPT_NAME = "humansd_random_full.safetensors"
SIZE = 128
POSE = {"canvas_width": SIZE, "canvas_height": SIZE, "people": [{"pose_keypoints_2d": [
    64, 20, 1, 64, 34, 1, 52, 34, 1, 48, 54, 1, 46, 74, 1, 76, 34, 1, 80, 54, 1, 82, 74, 1,
    56, 74, 1, 55, 96, 1, 54, 118, 1, 72, 74, 1, 73, 96, 1, 74, 118, 1, 61, 17, 1, 67, 17, 1, 58, 19, 1, 70, 19, 1]}]}


def _graph(patched: bool, prefix: str) -> dict[str, Any]:
    model = ["9", 0] if patched else ["1", 0]
    graph: dict[str, Any] = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT_NAME}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a person dancing", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "lowres, bad anatomy", "clip": ["1", 1]}},
        "4": {"class_type": "HumanSDPoseFromJSON", "inputs": {
            "pose_json": json.dumps(POSE), "pose_file": "(none: use the text)", "width": SIZE, "height": SIZE,
            "placement": "fit", "threshold": 0.05, "thickness": 4, "scale_thickness": False}},
        "5": {"class_type": "HumanSDPoseConditioning", "inputs": {
            "positive": ["2", 0], "negative": ["3", 0], "vae": ["1", 2], "skeleton": ["4", 0]}},
        "6": {"class_type": "KSampler", "inputs": {
            "model": model, "seed": 1234, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
            "scheduler": "normal", "positive": ["5", 0], "negative": ["5", 1], "latent_image": ["5", 2],
            "denoise": 1.0}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": prefix}},
    }
    if patched:
        graph["9"] = {"class_type": "HumanSDModelPatch", "inputs": {"model": ["1", 0]}}
    return graph


@pytest.fixture(scope="module")
def full_checkpoint_in_host(comfy_host: ComfyHost) -> str:
    link = comfy_host.checkpoints_dir / CKPT_NAME
    if not link.exists():
        link.symlink_to(full_random_checkpoint())
    return CKPT_NAME


def test_stock_loader_fails_with_nine_channels_and_the_patch_fixes_it(
        comfy_host: ComfyHost, full_checkpoint_in_host: str) -> None:
    with pytest.raises(PromptError) as failure:
        comfy_host.run_prompt(_graph(patched=False, prefix="stock"), timeout=600)
    message = str(failure.value)
    assert "KSampler" in message, message
    assert "to have 8 channels, but got 9" in message, message

    history = comfy_host.run_prompt(_graph(patched=True, prefix="patched"), timeout=600)
    files = comfy_host.output_files(history)
    assert len(files) == 1
    with Image.open(files[0]) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape == (SIZE, SIZE, 3)
    assert pixels.std() > 0, "decoded image is flat"
