"""OpenPose-style frames: ComfyUI ``POSE_KEYPOINT`` and OpenPose JSON files.

A frame is ``{"people": [{"pose_keypoints_2d": [x, y, c, ...], ...}],
"canvas_width": W, "canvas_height": H}`` (canvas optional in CMU OpenPose files).
The body array's length tells the layout: 54 = OpenPose-18, 75 = CMU BODY_25,
51 = COCO-17; face and hand arrays are ignored. Units follow the per-person rule of
:mod:`.formats_common`. A person without a body array, or with no point present,
is dropped.

Writing produces what other packs expect: 18 body points (neck = the shoulders'
midpoint when both are present), confidences exactly 1.0 or 0.0 with missing
points ``[0, 0, 0]``, pixel coordinates, the canvas size, face/hands ``None``.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from ..errors import PoseFormatError
from .formats_common import (
    check_confidences,
    check_extent,
    clear_missing,
    infer_canvas,
    number_array,
    read_canvas,
    to_pixels,
)
from .keypoints import PoseSet

logger = logging.getLogger(__name__)

# COCO-17 joint i is source joint MAP[i].
COCO17_FROM_OPENPOSE18 = (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)
COCO17_FROM_BODY25 = (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)
# OpenPose-18 joint j is COCO-17 joint MAP[j]; None = neck (shoulders' midpoint).
OPENPOSE18_FROM_COCO17 = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
_LAYOUTS = {54: COCO17_FROM_OPENPOSE18, 75: COCO17_FROM_BODY25, 51: tuple(range(17))}
_LEFT_SHOULDER, _RIGHT_SHOULDER = 5, 6


def read_person_body(person: object, source: str, field: str) -> np.ndarray | None:
    """COCO-17 ``[17, 3]`` in the array's own units, or None when the person has no body."""
    if not isinstance(person, Mapping):
        raise PoseFormatError(f"{source}: {field}: expected a person dict, got {type(person).__name__}")
    body = person.get("pose_keypoints_2d")
    if body is None or (isinstance(body, (list, tuple)) and len(body) == 0):
        logger.debug("%s: %s has no body keypoints; skipped", source, field)
        return None
    flat = number_array(body, source, f"{field}.pose_keypoints_2d", tuple(_LAYOUTS))
    xyc = flat.reshape(-1, 3)
    check_confidences(xyc, source, f"{field}.pose_keypoints_2d")
    return clear_missing(xyc)


def read_frame(frame: object, source: str, canvas: tuple[int, int] | None = None) -> PoseSet:
    """One OpenPose frame dict -> :class:`PoseSet`. ``canvas`` is the fallback size."""
    if not isinstance(frame, Mapping):
        raise PoseFormatError(f"{source}: expected a frame dict with 'people', got {type(frame).__name__}")
    people = frame.get("people")
    if not isinstance(people, (list, tuple)):
        raise PoseFormatError(f"{source}: people: expected a list, got {type(people).__name__}")
    size = read_canvas(frame, source) or canvas
    arrays: list[tuple[str, np.ndarray]] = []
    for j, person in enumerate(people):
        field = f"people[{j}]"
        xyc = read_person_body(person, source, field)
        if xyc is None:
            continue
        if not (xyc[:, 2] > 0).any():
            logger.debug("%s: %s has no keypoint present; skipped", source, field)
            continue
        coco = to_pixels(xyc, size, source, field)[list(_LAYOUTS[xyc.size])]
        arrays.append((field, coco))
    if size is None:
        size = infer_canvas([a for _, a in arrays], source)
    for field, coco in arrays:
        check_extent(coco, size, source, field)
    keypoints = np.stack([a for _, a in arrays]) if arrays else np.zeros((0, 17, 3))
    return PoseSet(keypoints, size[0], size[1])


def _body18(person: np.ndarray, threshold: float) -> list[float]:
    """A COCO-17 person ``[17, 3]`` as a flat OpenPose-18 list of 54 floats."""
    present = person[:, 2] > threshold
    flat: list[float] = []
    for j in OPENPOSE18_FROM_COCO17:
        if j is None:
            ok = bool(present[_LEFT_SHOULDER] and present[_RIGHT_SHOULDER])
            xy = (person[_LEFT_SHOULDER, :2].astype(np.float64) + person[_RIGHT_SHOULDER, :2]) / 2.0
        else:
            ok = bool(present[j])
            xy = person[j, :2].astype(np.float64)
        flat.extend([float(xy[0]), float(xy[1]), 1.0] if ok else [0.0, 0.0, 0.0])
    return flat


def frame_dict(pose: PoseSet, threshold: float) -> dict:
    """One frame in the ``POSE_KEYPOINT`` / OpenPose JSON layout (pixel coordinates).

    A point is written as present (c = 1.0) when its confidence is ``> threshold``.
    """
    people = [
        {
            "pose_keypoints_2d": _body18(person, threshold),
            "face_keypoints_2d": None,
            "hand_left_keypoints_2d": None,
            "hand_right_keypoints_2d": None,
        }
        for person in pose.keypoints
    ]
    return {"people": people, "canvas_height": pose.canvas_height, "canvas_width": pose.canvas_width}
