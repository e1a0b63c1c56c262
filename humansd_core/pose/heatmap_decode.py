"""The one heatmap → keypoint decoder: joints read from heatmaps, top-down inside given boxes.

Decoding is *top-down with given boxes*: for each box (normally the condition
person's joint box, grown by :data:`BOX_MARGIN`), each joint is the arg-max of its
heatmap over the cells whose centres lie inside the box, refined to sub-cell
precision by a parabola through the log-heatmap at the peak and its two
neighbours, per axis (offset clipped to ±0.5 cell). Without boxes the whole map is
one person. The peak value is the joint's confidence. Cells and pixels follow the
convention of :mod:`.heatmaps` (a cell centre at canvas pixel ``(j + 0.5)·s − 0.5``).
The mannequin detector (:mod:`.mannequin_detect`) and the embedded model's evaluation
read keypoints this way.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import HumanSDError
from .keypoints import NUM_KEYPOINTS, PoseSet

BOX_MARGIN = 0.15  # each side, as a fraction of the box's longer side


def person_boxes(pose: PoseSet, margin: float = BOX_MARGIN, threshold: float = 0.0) -> np.ndarray:
    """``[P, 4]`` ``(x0, y0, x1, y1)`` around each person's joints (confidence > ``threshold``), grown by ``margin``."""
    boxes = np.zeros((pose.num_people, 4), np.float64)
    for i, kp in enumerate(pose.keypoints):
        pts = kp[kp[:, 2] > threshold, :2]
        if len(pts) == 0:
            boxes[i] = (0, 0, pose.canvas_width, pose.canvas_height)
            continue
        lo, hi = pts.min(0), pts.max(0)
        grow = margin * max(float((hi - lo).max()), 1.0)
        boxes[i] = (*(lo - grow), *(hi + grow))
    return boxes


def _refine(logmap: torch.Tensor, iy: torch.Tensor, ix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sub-cell offsets ``(dy, dx)`` in ``[-0.5, 0.5]`` at peaks ``(iy, ix)`` of ``logmap [17,h,w]``."""
    h, w = logmap.shape[-2:]
    j = torch.arange(logmap.shape[0])

    def axis(idx: torch.Tensor, size: int, take) -> torch.Tensor:
        lo, hi = (idx - 1).clamp(min=0), (idx + 1).clamp(max=size - 1)
        c, a, b = take(idx), take(lo), take(hi)
        curvature = a + b - 2 * c
        off = torch.where(curvature < -1e-6, 0.5 * (a - b) / curvature.clamp(max=-1e-6), torch.zeros_like(c))
        off = torch.where((idx == 0) | (idx == size - 1), torch.zeros_like(off), off)
        return off.clamp(-0.5, 0.5)

    dy = axis(iy, h, lambda y: logmap[j, y, ix])
    dx = axis(ix, w, lambda x: logmap[j, iy, x])
    return dy, dx


def keypoints_from_heatmaps(heatmaps: torch.Tensor, canvas_width: int, canvas_height: int,
                            boxes: np.ndarray | None = None) -> PoseSet:
    """One image's heatmaps ``[17, h, w]`` in ``[0,1]`` → a :class:`PoseSet` on the canvas.

    ``boxes`` ``[P, 4]`` in canvas pixels (see :func:`person_boxes`): one person per
    box; None: one person from the whole map.
    """
    if heatmaps.ndim != 3 or heatmaps.shape[0] != NUM_KEYPOINTS:
        raise HumanSDError(f"heatmaps: expected [17, h, w], got {list(heatmaps.shape)}")
    heat = heatmaps.detach().float().cpu()
    h, w = heat.shape[-2:]
    sx, sy = canvas_width / w, canvas_height / h
    if boxes is None:
        boxes = np.array([[-np.inf, -np.inf, np.inf, np.inf]])
    logmap = torch.log(heat.clamp(min=1e-6))
    cx = (torch.arange(w) + 0.5) * sx - 0.5  # cell centres in canvas pixels
    cy = (torch.arange(h) + 0.5) * sy - 0.5
    people = np.zeros((len(boxes), NUM_KEYPOINTS, 3), np.float32)
    for p, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, np.float64)):
        inside = ((cy >= y0) & (cy <= y1))[:, None] & ((cx >= x0) & (cx <= x1))[None, :]
        if not inside.any():  # a box smaller than a cell: its nearest cell
            near_y = int(torch.argmin((cy - (y0 + y1) / 2).abs()))
            near_x = int(torch.argmin((cx - (x0 + x1) / 2).abs()))
            inside[near_y, near_x] = True
        masked = torch.where(inside, heat, torch.full_like(heat, -1.0)).flatten(1)
        peak, flat = masked.max(dim=1)
        iy, ix = flat // w, flat % w
        dy, dx = _refine(logmap, iy, ix)
        people[p, :, 0] = (((ix + dx) + 0.5) * sx - 0.5).numpy()
        people[p, :, 1] = (((iy + dy) + 0.5) * sy - 0.5).numpy()
        people[p, :, 2] = peak.clamp(0, 1).numpy()
    return PoseSet(people, canvas_width, canvas_height)
