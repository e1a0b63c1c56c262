"""Render ``docs/training_workflow_example.png``: the shipped training workflow, run in a real ComfyUI.

    .venv/bin/python docs/make_training_example.py [--output docs/training_workflow_example.png]

Uses the test harness (``tests/host/``: ComfyUI 0.3.75 in its own venv under ``.cache/``,
started headless on the CPU with a copy of this pack in its ``custom_nodes``). ``workflows/api/humansd_train_lora.json``
is queued as shipped: the embedded model, 32 synthetic mannequin scenes, a LoRA of rank
8 trained 60 steps with the heatmap-guided loss, a validation image (the workflow's pose
and prompt) before training and every 20 steps. The sheet: the skeleton, the
validation images by step, the last one's difference from the first (amplified), and the
loss curve.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from host.comfy_server import PACK_NAME, ComfyHost  # noqa: E402
from host.inference_prompts import load_api, saved_images  # noqa: E402
from host.pack_copy import copy_checkout  # noqa: E402
from host.server_env import ensure_server_env  # noqa: E402

from humansd_core.commands.pose import write_png  # noqa: E402
from humansd_core.pose import parse_pose_text, render_skeleton  # noqa: E402

WORKFLOW = "humansd_train_lora"
TILE = 192  # the model's 128 px, scaled 1.5x (nearest neighbour)
GAP, LABEL = 6, 20
DIFF_GAIN = 8


def _levels(image: np.ndarray) -> np.ndarray:
    levels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return cv2.resize(levels, (TILE, TILE), interpolation=cv2.INTER_NEAREST)


def _sheet(tiles: list[tuple[str, np.ndarray]], curve: np.ndarray, title: str) -> np.ndarray:
    side = tiles[0][1].shape[0]
    width = len(tiles) * (side + GAP) + GAP
    height = LABEL + GAP + LABEL + side + GAP + curve.shape[0] + GAP
    sheet = np.full((height, width, 3), 48, np.uint8)
    cv2.putText(sheet, title, (GAP, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (225, 225, 225), 1, cv2.LINE_AA)
    top = LABEL + GAP
    for k, (name, image) in enumerate(tiles):
        x = GAP + k * (side + GAP)
        cv2.putText(sheet, name, (x, top + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (225, 225, 225), 1, cv2.LINE_AA)
        sheet[top + LABEL:top + LABEL + side, x:x + side] = image
    y = top + LABEL + side + GAP
    sheet[y:y + curve.shape[0], GAP:GAP + curve.shape[1]] = curve
    return sheet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "training_workflow_example.png")
    args = parser.parse_args()
    began = time.perf_counter()
    training = load_api(WORKFLOW)
    with tempfile.TemporaryDirectory(prefix="humansd-training-example-") as work:
        pack = copy_checkout(REPO, Path(work) / "custom_nodes" / PACK_NAME)
        host = ComfyHost(ensure_server_env(pack), [pack.parent], Path(work) / "host")
        try:
            host.start()
            history = host.run_prompt(training, timeout=3600)
            validation = saved_images(host, history, "9")
            trained_seconds = time.perf_counter() - began
            run = next((host.output_dir / "humansd_training").glob("humansd_lora_mannequins_*"))
            curve = cv2.cvtColor(cv2.imread(str(run / "loss.png")), cv2.COLOR_BGR2RGB)
            steps = [json.loads(line)["step"] for line in (run / "loss_log.jsonl").read_text().splitlines()]
        finally:
            host.stop()
    every = training["4"]["inputs"]["validation_every"]
    pose = parse_pose_text(training["3"]["inputs"]["pose_json"])[0]
    tiles = [("skeleton", _levels(render_skeleton(pose) / 255.0))]
    tiles += [(f"step {every * i}", _levels(image)) for i, image in enumerate(validation)]
    tiles.append((f"|last - step 0| x{DIFF_GAIN}", _levels(np.abs(validation[-1] - validation[0]) * DIFF_GAIN)))
    prompt = training["4"]["inputs"]["validation_prompt"]
    write_png(args.output, _sheet(tiles, curve, f"LoRA on the embedded model, {max(steps)} steps: \"{prompt}\""))
    print(f"wrote {args.output} ({args.output.stat().st_size // 1024} KB) in {time.perf_counter() - began:.0f} s "
          f"(training workflow {trained_seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
