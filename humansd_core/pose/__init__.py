"""Poses: the :class:`PoseSet` type, format readers/writers, transforms, the
skeleton renderer and (imported lazily, it needs torch) the OpenPose body detector.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .formats import (
    load_pose_file,
    parse_pose_data,
    parse_pose_text,
    to_openpose_json,
    to_pose_keypoint,
    write_openpose_json,
)
from .keypoints import COCO17_FLIP_PERMUTATION, COCO17_NAMES, PoseSet
from .render import render_batch, render_skeleton, scaled_thickness, skeleton_palette
from .transforms import (
    DEFAULT_PLACE,
    PLACE_MODES,
    filter_people,
    flip_horizontal,
    place_and_check,
    place_on_canvas,
    scale_translate,
    threshold_keypoints,
)

if TYPE_CHECKING:  # pragma: no cover
    from .detect import OpenPoseBodyDetector, find_openpose_weights

_LAZY = {"OpenPoseBodyDetector", "find_openpose_weights"}

__all__ = [
    "COCO17_FLIP_PERMUTATION", "COCO17_NAMES", "DEFAULT_PLACE", "OpenPoseBodyDetector", "PLACE_MODES", "PoseSet",
    "filter_people", "find_openpose_weights", "flip_horizontal", "load_pose_file",
    "parse_pose_data", "parse_pose_text", "place_and_check", "place_on_canvas", "render_batch",
    "render_skeleton", "scale_translate", "scaled_thickness", "skeleton_palette",
    "threshold_keypoints", "to_openpose_json", "to_pose_keypoint", "write_openpose_json",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import detect

        return getattr(detect, name)
    raise AttributeError(f"module 'humansd_core.pose' has no attribute {name!r}")
