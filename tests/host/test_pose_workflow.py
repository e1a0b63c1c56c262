"""The pose workflow in a real ComfyUI: skeletons pixel-exact to the core's renderer.

ComfyUI's SaveImage writes PNG text chunks (the prompt), so the files differ from the
core's bytes; we compare the decoded RGB pixels, which must be identical.
"""
from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
from PIL import Image

from humansd_core.pose import parse_pose_text, render_skeleton

from .comfy_server import ComfyHost, PromptError
from .comfy_setup import REPO_ROOT

pytestmark = pytest.mark.host

API_WORKFLOW = REPO_ROOT / "workflows" / "api" / "pose_to_skeleton.json"
SKELETON_DATA = REPO_ROOT / "tests" / "data" / "skeleton"
CASES = json.loads((SKELETON_DATA / "cases.json").read_text())


def _workflow() -> dict[str, Any]:
    return json.loads(API_WORKFLOW.read_text())


def _pose_node(prompt: dict[str, Any]) -> dict[str, Any]:
    return next(node for node in prompt.values() if node["class_type"] == "HumanSDPoseFromJSON")


def _case_json(case: dict[str, Any]) -> str:
    people = [{"pose_keypoints_2d": [v for point in person for v in point]} for person in case["people_coco17_xyc"]]
    return json.dumps({"canvas_width": case["width"], "canvas_height": case["height"], "people": people})


def _saved_pixels(host: ComfyHost, history: dict[str, Any]) -> np.ndarray:
    files = host.output_files(history)
    assert len(files) == 1, f"expected one saved image, got {files}"
    with Image.open(files[0]) as image:
        assert image.mode == "RGB"
        return np.asarray(image).copy()


def _run(host: ComfyHost, prompt: dict[str, Any], prefix: str) -> np.ndarray:
    for node in prompt.values():
        if node["class_type"] == "SaveImage":
            node["inputs"]["filename_prefix"] = prefix
    return _saved_pixels(host, host.run_prompt(prompt, timeout=120))


def _reference_png(name: str) -> np.ndarray:
    with Image.open(SKELETON_DATA / name) as image:
        return np.asarray(image.convert("RGB")).copy()


def test_shipped_workflow_matches_core_render_exactly(comfy_host: ComfyHost) -> None:
    prompt = _workflow()
    pose_text = _pose_node(prompt)["inputs"]["pose_json"]
    saved = _run(comfy_host, prompt, "shipped")
    expected = render_skeleton(parse_pose_text(pose_text)[0])
    assert saved.shape == expected.shape
    assert np.array_equal(saved, expected)
    assert np.count_nonzero(saved.any(axis=-1)) > 1000, "the skeleton image is (nearly) empty"
    # The shipped pose is the two-people reference case: also equal to its reference PNG.
    assert np.array_equal(saved, _reference_png(CASES["two_people_768x512"]["image"]))


@pytest.mark.parametrize("case_name", sorted(CASES))
def test_reference_cases_render_pixel_exact_in_comfyui(comfy_host: ComfyHost, case_name: str) -> None:
    case = CASES[case_name]
    prompt = _workflow()
    _pose_node(prompt)["inputs"]["pose_json"] = _case_json(case)
    saved = _run(comfy_host, prompt, f"case_{case_name}")
    assert np.array_equal(saved, _reference_png(case["image"]))


def test_bad_pose_reports_the_problem_and_server_keeps_working(comfy_host: ComfyHost) -> None:
    bad = _workflow()
    _pose_node(bad)["inputs"]["pose_json"] = '{"people": [{"pose_keypoints_2d": [1, 2, 1'
    with pytest.raises(PromptError) as failure:
        comfy_host.run_prompt(bad, timeout=120)
    message = str(failure.value)
    assert "HumanSDPoseFromJSON" in message
    assert "pose_json" in message and "malformed JSON" in message, message

    good = copy.deepcopy(_workflow())
    inputs = _pose_node(good)["inputs"]
    inputs["pose_json"] = _case_json(CASES["stand_512"])
    inputs["thickness"] = 6
    saved = _run(comfy_host, good, "after_error")
    assert np.array_equal(saved, render_skeleton(parse_pose_text(inputs["pose_json"])[0], thickness=6))
