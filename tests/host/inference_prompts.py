"""Helpers of the inference host tests: shipped API workflows as editable prompts, outputs as arrays,
inputs the workflows ask for (mannequin scenes as photos)."""
from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from humansd_core import embedded
from humansd_core.synthetic import Scene, generate_scene, scene_rng

from .comfy_server import ComfyHost
from .comfy_setup import REPO_ROOT

API_DIR = REPO_ROOT / "workflows" / "api"
# The bundled detectors' choices (nodes/pose_nodes.py): the only ones that find people here (no OpenPose weights).
MANNEQUIN = "mannequin (bundled, one person, synthetic figures only)"
MANNEQUIN_JUDGE = "mannequin judge (bundled, in the condition's boxes, synthetic figures only)"
SCENE_SEED = 4242  # neither the estimators' (1, 2) nor the embedded model's (0) training scenes
SCENE_SIZE = embedded.SIZE  # the embedded model's world: 128 px

# OpenPose-18 body of one standing person on a 64 x 64 canvas (x, y, confidence).
_BODY18_64 = [(32, 12), (32, 20), (26, 20), (23, 30), (22, 40), (38, 20), (41, 30), (42, 40), (28, 40), (27, 51),
              (27, 61), (36, 40), (36, 51), (37, 61), (30, 11), (34, 11), (29, 12), (35, 12)]


def person_frame(size: int = 64, dx: float = 0.0) -> dict[str, Any]:
    """One POSE_KEYPOINT frame with one person, scaled from the 64-px template to ``size``, shifted by ``dx``."""
    scale = size / 64
    flat: list[float] = []
    for x, y in _BODY18_64:
        flat += [x * scale + dx, y * scale, 1.0]
    return {"canvas_width": size, "canvas_height": size, "people": [{"pose_keypoints_2d": flat}]}


def load_api(name: str) -> dict[str, Any]:
    """A shipped API-format workflow, as a fresh dict."""
    return json.loads((API_DIR / f"{name}.json").read_text())


def nodes_of(prompt: dict[str, Any], class_type: str) -> list[dict[str, Any]]:
    found = [node for node in prompt.values() if node["class_type"] == class_type]
    assert found, f"no {class_type} node in the prompt"
    return found


def set_inputs(workflow: dict[str, Any], class_type: str, /, **values: Any) -> dict[str, Any]:
    """Set widget values on every node of ``class_type``; returns ``workflow``."""
    for node in nodes_of(workflow, class_type):
        node["inputs"].update(copy.deepcopy(values))
    return workflow


def add_node(prompt: dict[str, Any], class_type: str, **inputs: Any) -> str:
    """Add a node (links as ``[node_id, slot]``); returns its id."""
    node_id = str(max(int(k) for k in prompt) + 1)
    prompt[node_id] = {"class_type": class_type, "inputs": inputs}
    return node_id


def node_id(prompt: dict[str, Any], class_type: str) -> str:
    return next(k for k, node in prompt.items() if node["class_type"] == class_type)


def saved_images(host: ComfyHost, history: dict[str, Any], node: str | None = None) -> np.ndarray:
    """float32 ``[N, H, W, 3]`` in ``[0, 1]`` of the PNGs saved (SaveImage) or previewed (PreviewImage)
    by the prompt: one node's, or all."""
    outputs = host.outputs_of(history)
    roots = {"output": host.output_dir, "temp": host.work_dir / "temp" / "temp"}  # --temp-directory X uses X/temp
    items = [item for key in sorted(outputs, key=str) if node is None or key == node
             for item in outputs[key].get("images", []) if item.get("type") in roots]
    arrays = []
    for item in items:
        with Image.open(roots[item["type"]] / item.get("subfolder", "") / item["filename"]) as image:
            arrays.append(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
    assert arrays, "the prompt saved no images"
    return np.stack(arrays)


def saved_latent(host: ComfyHost, history: dict[str, Any]) -> torch.Tensor:
    """The tensor written by the prompt's (single) SaveLatent node."""
    files = host.output_files(history, kind="latents")
    assert len(files) == 1, f"expected one saved latent, got {files}"
    return load_file(str(files[0]))["latent_tensor"]


def link_checkpoint(host: ComfyHost, source: Path, name: str) -> str:
    """Make ``source`` visible to the server as ``models/checkpoints/<name>``; returns ``name``."""
    target = host.checkpoints_dir / name
    if not target.exists():
        target.symlink_to(source)
    return name


def upload_mannequin_scene(host: ComfyHost, index: int, name: str | None = None) -> tuple[Scene, str]:
    """A synthetic one-mannequin scene (true pose known) uploaded as a photo; returns it and its stored name."""
    scene = generate_scene(scene_rng(SCENE_SEED, index), SCENE_SIZE, max_people=1)
    buffer = io.BytesIO()
    Image.fromarray(scene.image).save(buffer, format="PNG")
    return scene, host.upload_image(name or f"humansd_mannequin_{index}.png", buffer.getvalue())
