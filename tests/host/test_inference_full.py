"""The shipped inference workflows in a real ComfyUI on the full SD2.1-layout HumanSD checkpoint.

Random fp16 weights (``tests/checkpoints.py``), 128 x 128, 2 steps: each prompt loads
and runs the real architecture (~25 s on 2 CPU cores), so the prompts are few and share
one server and one cached load. The stock loader's channel failure and the
HumanSDModelPatch fix are in ``test_stock_loader.py``; the LoRA workflow (stock loaders,
a LoRA, the model patch) runs from the browser in ``test_frontend_workflows.py``; here
the HumanSD loader runs the workflows users get.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from checkpoints import full_random_checkpoint

from .comfy_server import ComfyHost, PromptError
from .inference_prompts import link_checkpoint, load_api, person_frame, saved_images, set_inputs

pytestmark = [pytest.mark.host, pytest.mark.slow]

SIZE = 128
CKPT_NAME = "humansd_random_full.safetensors"  # the name test_stock_loader.py links too


@pytest.fixture(scope="module")
def full_name(comfy_host: ComfyHost) -> str:
    return link_checkpoint(comfy_host, full_random_checkpoint(), CKPT_NAME)


def small(prompt: dict[str, Any], frames: Any) -> dict[str, Any]:
    """Shrink a shipped workflow to 128², 2 steps, with the given pose frames."""
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] == "HumanSDPoseFromJSON":
            inputs["pose_json"] = json.dumps(frames)
        if node["class_type"] in ("HumanSDSampler", "KSampler"):
            inputs["steps"] = 2
        if node["class_type"] == "HumanSDSampler" or (node["class_type"] == "HumanSDPoseFromJSON"
                                                      and inputs["width"]):
            inputs.update(width=SIZE, height=SIZE)
    return prompt


def test_keypoints_to_image(comfy_host: ComfyHost, full_name: str) -> None:
    prompt = set_inputs(small(load_api("humansd_keypoints_to_image"), person_frame(512)), "HumanSDCheckpointLoader",
                        ckpt_name=full_name)
    history = comfy_host.run_prompt(prompt, timeout=600)
    image = saved_images(comfy_host, history, "4")
    assert image.shape == (1, SIZE, SIZE, 3) and image.std() > 0.01
    assert saved_images(comfy_host, history, "5").shape == (1, SIZE, SIZE, 3)  # the skeleton it drew


def test_batch_of_pose_frames_to_images(comfy_host: ComfyHost, full_name: str) -> None:
    frames = [person_frame(512, dx) for dx in (-40.0, 40.0)]
    prompt = set_inputs(small(load_api("humansd_pose_batch_to_images"), frames), "HumanSDCheckpointLoader",
                        ckpt_name=full_name)
    images = saved_images(comfy_host, comfy_host.run_prompt(prompt, timeout=600))
    assert images.shape == (2, SIZE, SIZE, 3)
    assert not np.array_equal(images[0], images[1])


def test_photo_workflow_detects_then_generates(comfy_host: ComfyHost, full_name: str, tmp_path: Path) -> None:
    """The photo → pose → image graph with its default OpenPose detector runs the network; with the
    random weights available here no person is found, and the detector node says so (which image,
    which detector) before the sampler would meet an empty pose. The same workflow
    runs to an image with the bundled mannequin detector in ``test_pose_detection_workflow.py``."""
    from humansd_core.pose.detect import body_network_class

    torch.manual_seed(0)
    network = body_network_class()()
    weights = tmp_path / "body_pose_model.pth"
    torch.save({name.split(".", 1)[1]: t for name, t in network.state_dict().items()}, weights)
    photo = Image.fromarray((np.random.default_rng(0).random((96, 80, 3)) * 255).astype(np.uint8))
    photo.save(tmp_path / "photo.png")
    name = comfy_host.upload_image("humansd_test_photo.png", (tmp_path / "photo.png").read_bytes())

    prompt = small(load_api("humansd_photo_to_image"), None)
    set_inputs(prompt, "HumanSDCheckpointLoader", ckpt_name=full_name)
    set_inputs(prompt, "LoadImage", image=name)
    set_inputs(prompt, "HumanSDPoseFromImage", weights_path=str(weights), input_height=96)
    set_inputs(prompt, "HumanSDPoseScore", detector_weights=str(weights))
    with pytest.raises(PromptError) as failure:
        comfy_host.run_prompt(prompt, timeout=600)
    message = str(failure.value)
    assert "HumanSDPoseFromImage" in message and "found nobody" in message, message
    assert "image 0 of the batch of 1" in message and "openpose body" in message, message
