"""The embedded tiny HumanSD in a real ComfyUI: the shipped workflow runs right after install.

No file is put in models/checkpoints: the HumanSD loader offers the pack's embedded model
(first in its list, the workflows' default) and loads it through ComfyUI's own classes
(``nodes/_comfy_model.py``). The shipped workflow as shipped runs from the browser
(``test_frontend_workflows.py``); here the images must follow their poses by the judge
estimator, as the core pipeline's do (``tests/test_embedded_model.py``).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from humansd_core import embedded
from humansd_core.pose import to_pose_keypoint

from .comfy_server import ComfyHost
from .inference_prompts import load_api, node_id, saved_images, set_inputs

pytestmark = pytest.mark.host

WORKFLOW = "humansd_keypoints_to_image"


def test_loader_offers_the_embedded_model_first(comfy_host: ComfyHost) -> None:
    names = comfy_host.object_info()["HumanSDCheckpointLoader"]["input"]["required"]["ckpt_name"][0]
    assert names[0] == embedded.MODEL_NAME
    assert not (comfy_host.checkpoints_dir / embedded.MODEL_NAME).exists()  # it comes from the pack itself


def test_embedded_model_follows_the_poses_in_comfyui(comfy_host: ComfyHost) -> None:
    # One prompt for the whole batch (the workflow's own): single-person poses, so it fits them all.
    poses = [pose for pose, _ in embedded.evaluation_set(count=24, examples=False) if pose.num_people == 1][:8]
    prompt = set_inputs(load_api(WORKFLOW), "HumanSDPoseFromJSON", pose_json=json.dumps(to_pose_keypoint(poses)))
    history = comfy_host.run_prompt(prompt, timeout=300)
    images = saved_images(comfy_host, history, node_id(prompt, "SaveImage"))
    assert images.shape == (8, embedded.SIZE, embedded.SIZE, 3)
    score = embedded.score_poses(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2), poses)
    assert score.pck >= 3 * score.baseline_pck, score
    # measured 0.669 through ComfyUI's sampler (baseline 0.007); the core path measures 0.652 at 5 steps
    assert score.pck >= 0.5, score
