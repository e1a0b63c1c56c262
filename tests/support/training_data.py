"""Synthetic training data and configs for the trainer tests (tiny model, CPU, seconds).

A sample is a 64x64 "mannequin": the pose's skeleton drawn over a flat background of
a per-sample colour, its pose as OpenPose JSON, and a caption naming the colour.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from humansd_core.pose import PoseSet, render_skeleton, write_openpose_json
from humansd_core.training.config import TrainConfig

# A standing person on a 64x64 canvas, COCO-17 order (x, y).
STANDING = np.array([
    (32, 10), (34, 8), (30, 8), (36, 9), (28, 9), (38, 18), (26, 18), (41, 28), (23, 28),
    (43, 37), (21, 37), (36, 38), (28, 38), (37, 48), (27, 48), (37, 58), (27, 58),
], dtype=np.float32)
COLOURS = {"red": (150, 40, 40), "green": (40, 130, 60), "blue": (40, 60, 150), "grey": (110, 110, 110)}


def synthetic_pose(rng: np.random.Generator, width: int = 64, height: int = 64) -> PoseSet:
    """One person: the standing template scaled to the canvas, shifted and jittered by a few pixels."""
    xy = STANDING * np.array([width / 64, height / 64], np.float32)
    xy = xy + rng.uniform(-6, 6, size=2).astype(np.float32) + rng.normal(0, 1.5, size=xy.shape).astype(np.float32)
    kp = np.concatenate([xy, np.ones((17, 1), np.float32)], axis=1)[None]
    return PoseSet(kp, width, height)


def make_dataset(folder: Path, count: int = 8, seed: int = 0, sizes: list[tuple[int, int]] | None = None) -> Path:
    """Write ``count`` samples (``NNN.png``, ``NNN.json``, ``NNN.txt``) into ``folder``; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    for i in range(count):
        width, height = sizes[i % len(sizes)] if sizes else (64, 64)
        pose = synthetic_pose(rng, width, height)
        colour = names[i % len(names)]
        canvas = np.zeros((height, width, 3), np.uint8) + np.array(COLOURS[colour], np.uint8)
        image = render_skeleton(pose, thickness=4, canvas=canvas)
        Image.fromarray(image).save(folder / f"{i:03d}.png")
        write_openpose_json(folder / f"{i:03d}.json", pose)
        (folder / f"{i:03d}.txt").write_text(f"a mannequin on {colour}", encoding="utf-8")
    return folder


def tiny_train_config(data: Path, output: Path, **options: object) -> TrainConfig:
    """A fast config on the tiny model: fresh weights, 64x64 buckets, fp32, no progress bar."""
    config = TrainConfig()
    base = {"init_config": "tiny", "data": str(data), "output": str(output), "resolution": 64, "bucket_step": 64,
            "steps": 4, "batch_size": 2, "lr": 1e-3, "save_every": 1000, "log_every": 1, "progress": False,
            "save_dtype": "fp32", "deterministic": True, "flip_prob": 0.5, "cpu_threads": 1}
    base.update(options)
    for key, value in base.items():
        config.set(key, value)
    config.validate()
    return config
