"""Geometric and confidence transforms of a :class:`PoseSet` (each returns a new one).

Coordinates move only for *present* points (confidence > 0); missing points keep
their (meaningless) coordinates, so they stay ``[0, 0, 0]`` when written out.
"""
from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np

from .. import defaults
from ..errors import HumanSDError
from .keypoints import COCO17_FLIP_PERMUTATION, PoseSet
from .render import DEFAULT_THRESHOLD

logger = logging.getLogger(__name__)

PlaceMode = Literal["as-is", "fit", "fill"]
PLACE_MODES: tuple[str, ...] = defaults.PLACE_MODES
DEFAULT_PLACE: PlaceMode = defaults.PLACE  # every entry point's default (pipeline, CLI, nodes)


def _affine(pose: PoseSet, scale: float, dx: float, dy: float, width: int, height: int) -> PoseSet:
    """``x' = x * scale + dx`` (same for y) on present points, on a ``width x height`` canvas."""
    kp = pose.keypoints.astype(np.float64)
    present = kp[..., 2] > 0
    kp[..., 0] = np.where(present, kp[..., 0] * scale + dx, kp[..., 0])
    kp[..., 1] = np.where(present, kp[..., 1] * scale + dy, kp[..., 1])
    return pose.replace(keypoints=kp, canvas_width=width, canvas_height=height)


def place_on_canvas(pose: PoseSet, width: int, height: int, mode: PlaceMode = DEFAULT_PLACE) -> PoseSet:
    """Put ``pose`` on a ``width x height`` canvas.

    - ``"as-is"``: coordinates unchanged, only the canvas size changes (points
      beyond the new canvas are cut off when drawn);
    - ``"fit"``: letterbox: scale uniformly so the whole old canvas fits, centred;
    - ``"fill"``: scale uniformly so the old canvas covers the new one, centred
      (the overflow is cropped when drawn).

    The default, :data:`DEFAULT_PLACE` (``"fit"``), is every entry point's default.
    """
    if mode not in PLACE_MODES:
        raise HumanSDError(f"mode: expected one of {PLACE_MODES}, got {mode!r}")
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise HumanSDError(f"{name}: expected a positive whole number of pixels, got {value!r}")
    if mode == "as-is":
        return pose.replace(canvas_width=int(width), canvas_height=int(height))
    sx, sy = width / pose.canvas_width, height / pose.canvas_height
    scale = min(sx, sy) if mode == "fit" else max(sx, sy)
    dx = (width - pose.canvas_width * scale) / 2.0
    dy = (height - pose.canvas_height * scale) / 2.0
    return _affine(pose, scale, dx, dy, int(width), int(height))


def place_and_check(pose: PoseSet, width: int, height: int, mode: PlaceMode = DEFAULT_PLACE, *, frame: int = 0,
                    threshold: float = DEFAULT_THRESHOLD) -> PoseSet:
    """:func:`place_on_canvas`, then make sure the people it will draw land on the ``width x height`` output.

    A person "lands outside" when it has keypoints with confidence ``> threshold``
    but none of them inside the output (``0 <= x < width``, ``0 <= y < height``).
    Each such person is logged as a warning naming ``frame``, the person and the
    output size; when every person with visible keypoints lands outside, the
    skeleton image would be blank, and ``HumanSDError`` is raised instead (naming
    the frame, the pose's canvas, the output size and the placement to use). People
    without visible keypoints are not this check's concern.
    """
    placed = place_on_canvas(pose, width, height, mode)
    kp = placed.keypoints
    visible = kp[..., 2] > threshold  # [P, 17]
    inside = visible & (kp[..., 0] >= 0) & (kp[..., 0] < width) & (kp[..., 1] >= 0) & (kp[..., 1] < height)
    drawn = visible.any(axis=1)
    outside = np.flatnonzero(drawn & ~inside.any(axis=1))
    if outside.size and outside.size == int(drawn.sum()):
        hint = ("its keypoints lie outside its own canvas" if mode == "fit" else
                f"scale the pose's canvas onto the output with placement 'fit' (--place fit), not {mode!r}")
        raise HumanSDError(
            f"frame {frame}: every person lies outside the {width}x{height} output (the pose's canvas is "
            f"{pose.canvas_width}x{pose.canvas_height}, placement {mode!r}), so the skeleton image would be "
            f"blank: {hint}")
    for person in outside:
        logger.warning("frame %d: person %d lies entirely outside the %dx%d output (no keypoint with confidence "
                       "> %g inside it); it is not drawn", frame, person, width, height, threshold)
    return placed


def flip_horizontal(pose: PoseSet) -> PoseSet:
    """Mirror left-right: ``x' = W - 1 - x`` and left/right joints swapped.

    ``W - 1 - x`` maps pixel column ``i`` to the column ``np.fliplr`` puts it in, so
    a flipped pose matches a flipped image. (The reference's flip augmentation
    forgets the swap; this one does not.)
    """
    kp = pose.keypoints.astype(np.float64)
    present = kp[..., 2] > 0
    kp[..., 0] = np.where(present, pose.canvas_width - 1 - kp[..., 0], kp[..., 0])
    return pose.replace(keypoints=kp[:, list(COCO17_FLIP_PERMUTATION)])


def filter_people(pose: PoseSet, min_score: float) -> PoseSet:
    """Keep the people whose score is ``> min_score`` (the reference keeps score > 0.05)."""
    if not math.isfinite(min_score):
        raise HumanSDError(f"min_score: expected a finite number, got {min_score!r}")
    keep = pose.scores > min_score
    return pose.replace(keypoints=pose.keypoints[keep], scores=pose.scores[keep])


def threshold_keypoints(pose: PoseSet, min_confidence: float) -> PoseSet:
    """Zero (x, y and confidence) every point whose confidence is ``<= min_confidence``."""
    if not math.isfinite(min_confidence):
        raise HumanSDError(f"min_confidence: expected a finite number, got {min_confidence!r}")
    kp = pose.keypoints.copy()
    kp[kp[..., 2] <= min_confidence] = 0.0
    return pose.replace(keypoints=kp)


def scale_translate(pose: PoseSet, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> PoseSet:
    """Scale about the canvas centre, then shift by ``(dx, dy)`` pixels; canvas unchanged.

    ``x' = (x - W/2) * scale + W/2 + dx`` (same for y with H). ``scale`` > 0.
    """
    if not (math.isfinite(scale) and scale > 0 and math.isfinite(dx) and math.isfinite(dy)):
        raise HumanSDError(f"scale_translate: expected scale > 0 and finite shifts, got {scale!r}, {dx!r}, {dy!r}")
    cx, cy = pose.canvas_width / 2.0, pose.canvas_height / 2.0
    # (x - c) * s + c + d == x * s + (c * (1 - s) + d)
    return _affine(pose, scale, cx * (1 - scale) + dx, cy * (1 - scale) + dy, pose.canvas_width, pose.canvas_height)
