"""Skeleton rendering throughput at 512 x 512: ``render_skeleton`` vs a per-call baseline.

The baseline is the straightforward port of the reference drawing loop: it rebuilds
the HLS palette with ``colorsys`` on every call and tests and truncates every
keypoint in Python. Both must produce the same pixels (checked before timing).

Run: ``python -m benchmarks.pose_render``. Last line:
``render_speedup_1p=<x> render_speedup_5p=<y>`` (baseline time / ours).
"""
from __future__ import annotations

import colorsys
import time

import cv2
import numpy as np

from humansd_core.pose import PoseSet, render_skeleton
from humansd_core.pose.render import SKELETON_LIMBS

SIZE = 512
STANDING = np.array([
    [256, 100], [264, 92], [248, 92], [274, 98], [238, 98], [292, 150], [220, 150], [310, 225], [202, 225],
    [318, 295], [194, 295], [278, 290], [234, 290], [282, 380], [230, 380], [284, 465], [228, 465],
], np.float32)


def baseline_render(keypoints: np.ndarray, width: int, height: int, threshold: float = 0.05) -> np.ndarray:
    """Per-call implementation: palette rebuilt, every point tested and truncated in Python."""
    colours = [colorsys.hls_to_rgb((i / 16 + 0.01) % 1.0, 0.6, 0.65) for i in range(16)]
    image = np.zeros((height, width, 3), np.uint8)
    for person in keypoints:
        for index, (a, b) in enumerate(SKELETON_LIMBS):
            if person[a, 2] > threshold and person[b, 2] > threshold:
                colour = tuple(int(255 * c) for c in colours[index])
                pa = (int(person[a, 0]), int(person[a, 1]))
                pb = (int(person[b, 0]), int(person[b, 1]))
                cv2.line(image, pa, pb, colour, 10)
                cv2.circle(image, pa, 5, colour, -1)
                cv2.circle(image, pb, 5, colour, -1)
    return image


def make_pose(people: int, seed: int = 0) -> PoseSet:
    """``people`` standing figures spread over the canvas with jittered joints."""
    rng = np.random.default_rng(seed)
    kp = np.zeros((people, 17, 3), np.float32)
    for p in range(people):
        shift = np.array([(p - (people - 1) / 2) * 80, 0], np.float32)
        kp[p, :, :2] = (STANDING - 256) * (0.9 - 0.05 * p) + 256 + shift + rng.normal(0, 4, (17, 2))
        kp[p, :, 2] = rng.uniform(0.3, 1.0, 17)
    return PoseSet(kp, SIZE, SIZE)


def per_second(fn, seconds: float = 1.0) -> float:  # noqa: ANN001
    """Calls per second, best of 3 runs of about ``seconds / 3`` each."""
    fn()
    best = 0.0
    for _ in range(3):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            fn()
            count += 1
        best = max(best, count / (time.perf_counter() - start))
    return best


def main() -> None:
    speedups = {}
    for people in (1, 5):
        pose = make_pose(people)
        assert np.array_equal(render_skeleton(pose), baseline_render(pose.keypoints, SIZE, SIZE))
        ours = per_second(lambda: render_skeleton(pose))
        base = per_second(lambda: baseline_render(pose.keypoints, SIZE, SIZE))
        speedups[people] = ours / base
        print(f"{people} people @ {SIZE}x{SIZE}: render_skeleton {ours:8.0f}/s   baseline {base:8.0f}/s   "
              f"ratio {ours / base:.2f}")
    print(f"render_speedup_1p={speedups[1]:.2f} render_speedup_5p={speedups[5]:.2f}")


if __name__ == "__main__":
    main()
