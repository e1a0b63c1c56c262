"""Every shipped UI workflow, dropped on ComfyUI's own frontend in a real browser, converted and run.

Per ``workflows/*.json``, in a fresh page (``comfy_page``: headless Chromium on the session's
server, first-run dialog closed):

1. drop the file on the canvas (the frontend's own drop handler); every node type is
   registered (no red "missing node" box) and nothing raised an error;
2. ``app.graphToPrompt()`` gives exactly the workflow's API twin (``workflows/api/``): same
   node ids, class types, literal widget values and links. This is the proof that the twins
   the API tests run say what the UI files say;
3. set what this machine needs (:data:`RUNS`, by widget NAME, through the page), and check the
   page's prompt now differs from the twin by exactly those values;
4. click Run and wait until ``app.nodeOutputs`` holds every SaveImage's images and the node
   shows them; the saved files are real images.

Screenshots of each loaded workflow and of each result (the page, and the graph alone) go to
``.cache/screenshots/``; ``docs/main_workflow_frontend.png`` in the README is
``humansd_keypoints_to_image_result_graph.png``.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from checkpoints import full_random_checkpoint, random_lora
from humansd_core import embedded
from humansd_core.synthetic import write_dataset

from .browser import ComfyPage
from .comfy_server import ComfyHost
from .comfy_setup import REPO_ROOT
from .inference_prompts import MANNEQUIN, MANNEQUIN_JUDGE, link_checkpoint, upload_mannequin_scene
from .prompt_diff import prompt_mismatches

pytestmark = [pytest.mark.host, pytest.mark.browser]

WORKFLOWS = REPO_ROOT / "workflows"
UI_FILES = sorted(WORKFLOWS.glob("*.json"))
SMALL = {"width": 128, "height": 128, "steps": 2}  # a full-size model's run on 2 CPU cores


@dataclass(frozen=True)
class PageRun:
    """What a shipped workflow's run from the page needs here beyond its shipped values.

    ``full_size``: made for ``humansd-v1``: the random full-layout checkpoint (and a random LoRA)
    under the names it asks for, and :data:`SMALL` on every node that has those widgets.
    ``photo``: its LoadImage gets a mannequin scene under the name it asks for, and the detectors
    the bundled mannequin ones (no OpenPose weights exist here; random ones find nobody).
    ``dataset``: a folder source of HumanSD Training Data gets two synthetic scenes in the input
    folder under the name it asks for.
    """

    image_size: tuple[int, int]  # (height, width) of every saved image
    full_size: bool = False
    photo: bool = False
    dataset: bool = False
    widgets: dict[tuple[str, str], Any] = field(default_factory=dict)  # (class_type, widget) -> value


EMBEDDED = (embedded.SIZE, embedded.SIZE)
RUNS = {
    "pose_to_skeleton": PageRun(image_size=(512, 768)),  # the shipped pose's canvas
    "humansd_keypoints_to_image": PageRun(image_size=EMBEDDED),
    "humansd_pose_batch_to_images": PageRun(image_size=EMBEDDED),
    # 2 steps: this graph's 25-step run with the same scene and detectors is test_pose_detection_workflow.py's.
    "humansd_photo_to_image": PageRun(image_size=EMBEDDED, photo=True, widgets={
        ("HumanSDPoseFromImage", "detector"): MANNEQUIN, ("HumanSDPoseScore", "detector"): MANNEQUIN_JUDGE,
        ("HumanSDSampler", "steps"): 2}),
    "humansd_lora": PageRun(image_size=(SMALL["height"], SMALL["width"]), full_size=True),
    # 2 steps: its run as shipped (60 steps, the LoRA loaded back, the loss) is test_training_nodes.py's.
    "humansd_train_lora": PageRun(image_size=EMBEDDED, widgets={
        ("HumanSDTrainingData", "scenes"): 4, ("HumanSDTrain", "steps"): 2, ("HumanSDTrain", "validation_steps"): 2,
        ("HumanSDSampler", "steps"): 2}),
    # Set for humansd-v1 and your photos: 2 steps at 128², no OpenPose weights here (the loss's Gaussians).
    "humansd_train_lora_folder": PageRun(image_size=(SMALL["height"], SMALL["width"]), full_size=True, dataset=True,
                                         widgets={("HumanSDTrain", "resolution"): 128,
                                                  ("HumanSDTrain", "estimator"): "keypoint gaussians (no network)",
                                                  ("HumanSDTrain", "grad_accumulation"): 1,
                                                  ("HumanSDTrain", "validation_steps"): 2}),
}


def _twin(ui_path: Path) -> dict[str, Any]:
    return json.loads((WORKFLOWS / "api" / ui_path.name).read_text())


def _changes(run: PageRun, twin: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """``{(node_id, widget): value}`` to set in the page for ``run``."""
    changes = {}
    for node_id, node in twin.items():
        for (class_type, widget), value in run.widgets.items():
            if node["class_type"] == class_type:
                changes[(node_id, widget)] = value
        if run.full_size:
            for widget, value in SMALL.items():
                if widget in node["inputs"] and node["inputs"][widget] not in (0, value):  # 0 = the pose's own size
                    changes[(node_id, widget)] = value
    return changes


def _provide_files(host: ComfyHost, run: PageRun, twin: dict[str, Any]) -> None:
    """Put the files ``twin`` asks for by name where the server finds them (see :class:`PageRun`)."""
    for node in twin.values():
        inputs = node["inputs"]
        if run.full_size and "ckpt_name" in inputs:
            link_checkpoint(host, full_random_checkpoint(), inputs["ckpt_name"])
        if run.full_size and "lora_name" in inputs and not (host.loras_dir / inputs["lora_name"]).exists():
            random_lora(host.loras_dir / inputs["lora_name"])
        if run.photo and node["class_type"] == "LoadImage":
            upload_mannequin_scene(host, 0, name=inputs["image"])
        if run.dataset and node["class_type"] == "HumanSDTrainingData" and inputs["source"] == "folder":
            write_dataset(host.input_dir / inputs["folder"], 2, SMALL["width"], seed=1)


def _saved_image(host: ComfyHost, item: dict[str, Any]) -> np.ndarray:
    assert item["type"] == "output", item
    with Image.open(host.output_dir / item.get("subfolder", "") / item["filename"]) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def test_every_ui_workflow_has_a_page_run() -> None:
    assert UI_FILES and sorted(RUNS) == [p.stem for p in UI_FILES]


@pytest.mark.parametrize("ui_path", UI_FILES, ids=lambda p: p.stem)
def test_workflow_drops_converts_to_its_twin_and_runs_from_the_page(
        comfy_page: ComfyPage, comfy_host: ComfyHost, ui_path: Path) -> None:
    run, twin = RUNS[ui_path.stem], _twin(ui_path)
    if not run.full_size:  # as shipped: the pack's embedded model, wherever a HumanSD loader is
        assert all(n["inputs"]["ckpt_name"] == embedded.MODEL_NAME for n in twin.values()
                   if n["class_type"] == "HumanSDCheckpointLoader")
    _provide_files(comfy_host, run, twin)  # before the drop: the page previews a LoadImage's file at once
    comfy_page.drop_workflow(ui_path)
    assert comfy_page.unregistered_node_types() == []
    comfy_page.fit_view()
    comfy_page.screenshot(f"{ui_path.stem}_loaded")
    assert prompt_mismatches(comfy_page.graph_to_prompt(), twin) == []

    changes = _changes(run, twin)
    expected = copy.deepcopy(twin)
    for (node_id, widget), value in changes.items():
        assert comfy_page.set_widget(int(node_id), widget, value) == value
        expected[node_id]["inputs"][widget] = value
    page_prompt = comfy_page.graph_to_prompt()
    assert prompt_mismatches(page_prompt, expected) == []
    assert len(prompt_mismatches(page_prompt, twin)) == len(changes)  # the comparison sees each change

    log_start = len(comfy_host.log_text())
    comfy_page.queue()
    saves = [int(i) for i, node in twin.items() if node["class_type"] == "SaveImage"]
    assert saves, f"{ui_path.name} saves no image"
    for node_id in saves:
        items = comfy_page.wait_for_output(node_id, timeout_ms=900_000)
        comfy_page.wait_for_node_images(node_id)
        for item in items:
            image = _saved_image(comfy_host, item)
            assert image.shape == (*run.image_size, 3) and image.std() > 0.01, (item, image.shape, image.std())
    comfy_page.fit_view()
    comfy_page.screenshot(f"{ui_path.stem}_result")
    comfy_page.screenshot(f"{ui_path.stem}_result_graph", clip=comfy_page.graph_rect())
    assert not comfy_page.errors, "\n".join(comfy_page.errors)
    assert "lora key not loaded" not in comfy_host.log_text()[log_start:]
