"""Pose detection inside real ComfyUI workflows, on the embedded model and its synthetic mannequin world.

No OpenPose weights exist here, but the pack's bundled mannequin estimator is real and
trained: a synthetic mannequin scene (``humansd_core.synthetic``, true pose known) is the
"reference photo" of the shipped photo → pose → image workflow, and the judge picks the
best image of a batch in HumanSD Pose Score. The OpenPose path is covered by its missing-
weights error here and by ``test_inference_full.py`` (random weights: nobody is found).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from humansd_core import embedded
from humansd_core.pose import parse_pose_data, place_on_canvas, to_pose_keypoint
from humansd_core.pose.mannequin_detect import DEFAULT_MIN_CONFIDENCE, detect_mannequin_pose, mannequin_agreements
from humansd_core.training.tiny_estimator_eval import pck

from .comfy_server import ComfyHost, PromptError
from .inference_prompts import (
    MANNEQUIN,
    MANNEQUIN_JUDGE,
    add_node,
    load_api,
    node_id,
    saved_images,
    set_inputs,
    upload_mannequin_scene,
)

pytestmark = pytest.mark.host

SIZE = embedded.SIZE  # 128
OKS_TOLERANCE = 0.01  # node (float IMAGE) against core (the saved 8-bit PNGs); measured max difference 0.0013


def _report(history: dict[str, Any], node: str) -> dict[str, Any]:
    (text,) = ComfyHost.outputs_of(history)[node]["text"]
    return json.loads(text)


def test_detector_choices_keep_old_workflows_and_say_what_they_do(comfy_host: ComfyHost) -> None:
    info = comfy_host.object_info()
    for node, mannequin, weights in (("HumanSDPoseFromImage", MANNEQUIN, "weights_path"),
                                     ("HumanSDPoseScore", MANNEQUIN_JUDGE, "detector_weights")):
        spec = info[node]["input"]
        choices, options = spec["optional"]["detector"]
        assert choices[0].startswith("openpose") and mannequin in choices and options["default"] == choices[0]
        assert info[node]["input_order"]["optional"][-1] == "detector"  # last: saved widget lists still line up
        tooltip = options["tooltip"]
        assert "non-commercial" in tooltip and "synthetic mannequins" in tooltip and "meaningless" in tooltip
        assert f"{DEFAULT_MIN_CONFIDENCE:.0%}" in tooltip and re.search(rf"{weights}\b[^.]*ignored", tooltip)
    assert "ONE person" in info["HumanSDPoseFromImage"]["input"]["optional"]["detector"][1]["tooltip"]


def test_photo_workflow_with_the_mannequin_detector_generates_from_the_scene_pose(comfy_host: ComfyHost) -> None:
    scene, name = upload_mannequin_scene(comfy_host, 0)
    prompt = load_api("humansd_photo_to_image")  # the embedded model, as shipped
    set_inputs(prompt, "LoadImage", image=name)
    set_inputs(prompt, "HumanSDPoseFromImage", detector=MANNEQUIN)
    set_inputs(prompt, "HumanSDPoseScore", detector=MANNEQUIN_JUDGE)
    shown = add_node(prompt, "PreviewAny", source=[node_id(prompt, "HumanSDPoseFromImage"), 0])
    history = comfy_host.run_prompt(prompt, timeout=300)

    (detected,) = parse_pose_data(json.loads(ComfyHost.outputs_of(history)[shown]["text"][0]), "detected")
    assert detected.num_people == 1 and detected.canvas_size == (SIZE, SIZE)
    correct, total = pck(detected, scene.pose, 0.1)
    assert correct / total >= 0.8, (correct, total)  # measured 16 / 17 = 0.941 on this scene
    core = detect_mannequin_pose(scene.image)  # what the core reads from the same pixels
    found = core.keypoints[0, :, 2] > 0.05
    np.testing.assert_array_equal(detected.keypoints[0, :, 2] > 0, found)
    np.testing.assert_allclose(detected.keypoints[0, found, :2], core.keypoints[0, found, :2], atol=1e-3)

    image = saved_images(comfy_host, history, node_id(prompt, "SaveImage"))
    assert image.shape == (1, SIZE, SIZE, 3) and image.std() > 0.02
    report = _report(history, node_id(prompt, "HumanSDPoseScore"))
    assert report["images"][0]["people_given"] == 1 and 0.0 <= report["mean_oks"] <= 1.0  # measured 0.575


def test_missing_openpose_weights_are_a_clear_error_of_the_photo_node(comfy_host: ComfyHost, tmp_path: Path) -> None:
    _, name = upload_mannequin_scene(comfy_host, 0)
    prompt = set_inputs(load_api("humansd_photo_to_image"), "LoadImage", image=name)  # OpenPose, the default
    set_inputs(prompt, "HumanSDPoseFromImage", weights_path=str(tmp_path / "missing" / "body_pose_model.pth"))
    with pytest.raises(PromptError) as failure:
        comfy_host.run_prompt(prompt, timeout=120)
    message = str(failure.value)
    assert "HumanSDPoseFromImage" in message and "body_pose_model.pth not found" in message
    assert "non-commercial" in message


def test_pose_score_picks_the_best_of_a_batch_by_the_judge(comfy_host: ComfyHost) -> None:
    poses = [pose for pose, _ in embedded.evaluation_set(count=8, examples=False) if pose.num_people == 1][:2]
    per_pose = 3  # the sampler's batch: three noises per pose, pose-major
    prompt = set_inputs(load_api("humansd_keypoints_to_image"), "HumanSDPoseFromJSON",
                        pose_json=json.dumps(to_pose_keypoint(poses)))
    set_inputs(prompt, "HumanSDSampler", batch_size=per_pose, steps=10)
    sampler, frames = node_id(prompt, "HumanSDSampler"), node_id(prompt, "HumanSDPoseFromJSON")
    score = add_node(prompt, "HumanSDPoseScore", images=[sampler, 1], pose_keypoint=[frames, 1],
                     detector=MANNEQUIN_JUDGE)
    best = add_node(prompt, "SaveImage", images=[score, 0], filename_prefix="humansd_best")
    history = comfy_host.run_prompt(prompt, timeout=300)

    images = saved_images(comfy_host, history, node_id(prompt, "SaveImage"))
    assert images.shape == (len(poses) * per_pose, SIZE, SIZE, 3)
    report = _report(history, score)
    image_oks = [item["mean_oks"] for item in report["images"]]
    expected_best = [int(p * per_pose + np.argmax(image_oks[p * per_pose:(p + 1) * per_pose]))
                     for p in range(len(poses))]
    assert report["best"] == expected_best
    np.testing.assert_array_equal(saved_images(comfy_host, history, best), images[expected_best])
    assert report["mean_oks"] == pytest.approx(np.mean(image_oks), abs=1e-12)

    # The core on the saved pixels agrees with the node.
    conditions = [place_on_canvas(p, SIZE, SIZE, "fit") for p in parse_pose_data(to_pose_keypoint(poses))]
    pixels = (images * 255.0).round().astype(np.uint8)
    core = mannequin_agreements(pixels, [conditions[i // per_pose] for i in range(len(pixels))])
    np.testing.assert_allclose([r.per_person for r in core], [item["oks"] for item in report["images"]],
                               atol=OKS_TOLERANCE)
    # The images follow their poses: the judge finds them much closer to their own pose than to the other one.
    swapped = mannequin_agreements(pixels, [conditions[1 - i // per_pose] for i in range(len(pixels))])
    own, other = report["mean_oks"], float(np.mean([r.mean_oks for r in swapped]))
    # measured: image OKS 0.515 0.236 0.297 | 0.627 0.652 0.886 (best 0 and 5), own 0.535, other 0.021
    assert own >= 0.3 and own >= 3 * other, (own, other)
