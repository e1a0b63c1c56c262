"""Render ``docs/main_workflow_example.png``: the shipped main workflow, run in a real ComfyUI.

    .venv/bin/python docs/make_example.py [--output docs/main_workflow_example.png]

Uses the test harness: the pack is copied as a clone would be (``tests/host/pack_copy.py``)
into a ``custom_nodes`` folder, ``tests/host/server_env.py`` provisions ComfyUI 0.3.75 and its
own environment with the pack's requirements into ``.cache/`` (first run only), and
``tests/host/comfy_server.py`` starts it headless on the CPU with that copy loaded. ``workflows/api/humansd_keypoints_to_image.json`` is
queued as shipped (the embedded model, 128 x 128, DDIM 25 steps, cfg 3, seed 1234)
once per bundled pose (``humansd_core/assets/poses/*.json``, the file's text pasted into
the pose widget as a user would) with that pose's example prompt
(``humansd_core.embedded.EXAMPLE_PROMPTS``). Each row of the sheet is the skeleton the
model saw | the saved image | the skeleton over the image. Prints the judge's pose
accuracy of the images (``humansd_core.embedded.score_poses``; 4 images, so a rough
figure: ``humansd demo`` scores 28).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from host.comfy_server import PACK_NAME, ComfyHost  # noqa: E402
from host.pack_copy import copy_checkout  # noqa: E402
from host.server_env import ensure_server_env  # noqa: E402
from host.inference_prompts import load_api, node_id, saved_images, set_inputs  # noqa: E402

from humansd_core import embedded  # noqa: E402
from humansd_core.commands.demo import contact_sheet  # noqa: E402
from humansd_core.commands.pose import write_png  # noqa: E402

WORKFLOW = "humansd_keypoints_to_image"
POSES_DIR = REPO / "humansd_core" / "assets" / "poses"
ZOOM = 2  # tiles at 2x the model's 128 px, nearest neighbour
LABEL_CHARS = 100


def run_workflow(host: ComfyHost, pose_text: str, prompt_text: str) -> tuple[np.ndarray, np.ndarray]:
    """The shipped workflow with this pose text and prompt: ``(image, skeleton)``, float32 ``[H, W, 3]`` in [0, 1]."""
    prompt = load_api(WORKFLOW)
    set_inputs(prompt, "HumanSDPoseFromJSON", pose_json=pose_text)
    set_inputs(prompt, "HumanSDSampler", prompt=prompt_text)
    history = host.run_prompt(prompt, timeout=600)
    image = saved_images(host, history, node_id(prompt, "SaveImage"))
    skeleton = saved_images(host, history, node_id(prompt, "PreviewImage"))
    return image[0], skeleton[0]


def tile(image: np.ndarray) -> np.ndarray:
    """float ``[H, W, 3]`` in [0, 1] → RGB uint8 ``[ZOOM·H, ZOOM·W, 3]``."""
    levels = np.round(image * 255).astype(np.uint8)
    return np.ascontiguousarray(levels.repeat(ZOOM, 0).repeat(ZOOM, 1))


def label(name: str, prompt: str) -> str:
    text = f"{name}: {prompt}"
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 3] + "..."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "main_workflow_example.png")
    args = parser.parse_args()

    began = time.perf_counter()
    files = sorted(POSES_DIR.glob("*.json"))  # the order of embedded.example_poses()
    rows, images = [], []
    with tempfile.TemporaryDirectory(prefix="humansd-example-") as work:
        pack = copy_checkout(REPO, Path(work) / "custom_nodes" / PACK_NAME)
        host = ComfyHost(ensure_server_env(pack), [pack.parent], Path(work) / "host")
        try:
            host.start()
            for path, prompt_text in zip(files, embedded.EXAMPLE_PROMPTS, strict=True):
                image, skeleton = run_workflow(host, path.read_text(), prompt_text)
                drawn = (skeleton > 0).any(axis=-1, keepdims=True)
                overlay = np.where(drawn, 0.5 * skeleton + 0.5 * image, image)
                rows.append((label(path.name, prompt_text), [tile(skeleton), tile(image), tile(overlay)]))
                images.append(image)
        finally:
            host.stop()
    write_png(args.output, contact_sheet(rows, columns=1))
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    score = embedded.score_poses(batch, embedded.example_poses())
    print(f"wrote {args.output} ({args.output.stat().st_size // 1024} KB, {len(rows)} poses) "
          f"in {time.perf_counter() - began:.0f} s")
    print(score.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
