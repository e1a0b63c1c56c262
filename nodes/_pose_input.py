"""Pose inputs of the inference nodes → skeleton IMAGE batches (host side).

IMAGE tensors are float32 ``[N, H, W, 3]`` in ``[0, 1]``. Keypoints (POSE_KEYPOINT) are
parsed, placed on the output canvas and drawn by ``humansd_core.pose`` through the
pose nodes' helpers (``nodes/_pose_render.py``), so the sampler draws exactly what the
skeleton nodes draw.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from ..humansd_core.errors import HumanSDError
from ._pose_render import images_to_uint8, uint8_to_images

logger = logging.getLogger(__name__)


def poses_on_canvas(pose_keypoint: Any, width: int, height: int, placement: str, threshold: float = 0.05) -> list:
    """POSE_KEYPOINT (any format ``parse_pose_data`` reads) → one ``PoseSet`` per frame on ``width`` x ``height``.

    The core's ``place_and_check`` logs a warning for each person that lands outside the
    output and raises ``HumanSDError`` when every person of a frame does.
    """
    from ..humansd_core.pose import parse_pose_data, place_and_check

    frames = parse_pose_data(pose_keypoint, "pose_keypoint")
    if not frames:
        raise HumanSDError("pose_keypoint: no frames (an empty list)")
    return [place_and_check(p, width, height, placement, frame=i, threshold=threshold) for i, p in enumerate(frames)]


def fit_images(images: torch.Tensor, width: int, height: int, what: str) -> torch.Tensor:
    """``[N,H,W,C]`` → RGB ``[N,height,width,3]``: centre crop to the aspect, then bilinear resize (with a warning)."""
    import comfy.utils

    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] < 3:
        raise HumanSDError(f"{what}: expected an IMAGE batch [N, H, W, 3], got {list(getattr(images, 'shape', []))}")
    images = images[..., :3].float()
    if tuple(images.shape[1:3]) != (height, width):
        logger.warning("HumanSD: %s is %dx%d; centre-cropped and resized to %dx%d",
                       what, images.shape[2], images.shape[1], width, height)
        images = comfy.utils.common_upscale(images.movedim(-1, 1), width, height, "bilinear", "center").movedim(1, -1)
    return images.clamp(0.0, 1.0)


def skeleton_images(width: int, height: int, skeleton: torch.Tensor | None = None, pose_keypoint: Any = None, *,
                    placement: str = "fit", threshold: float = 0.05, thickness: int = 10) -> torch.Tensor:
    """The skeleton condition, float32 ``[N, height, width, 3]`` in ``[0, 1]``.

    ``skeleton`` images are used as given (resized when their size differs);
    ``pose_keypoint`` frames are drawn by the core renderer, over the skeleton images
    when both are given (a single frame or image is repeated to the other's count).
    Raises ``HumanSDError`` when neither is given or a frame is empty.
    """
    from ..humansd_core.pose import render_skeleton

    if skeleton is None and pose_keypoint is None:
        raise HumanSDError("pose: connect a skeleton IMAGE or a POSE_KEYPOINT (neither was given)")
    bases = None if skeleton is None else images_to_uint8(fit_images(skeleton, width, height, "skeleton image"))
    if pose_keypoint is None:
        frames = bases
    else:
        poses = poses_on_canvas(pose_keypoint, width, height, placement, threshold)
        counts = (len(poses), len(poses) if bases is None else len(bases))
        if counts[0] != counts[1] and 1 not in counts:
            raise HumanSDError(f"pose: {counts[1]} skeleton images but {counts[0]} keypoint frames; "
                               f"give equal counts or one of either")
        for i, pose in enumerate(poses):
            if pose.visible_count(threshold) == 0:
                raise HumanSDError(f"pose_keypoint: frame {i} has no keypoint with confidence above {threshold} "
                                   f"(an empty pose): nothing would tell the model where the person goes")
        frames = np.stack([render_skeleton(poses[i % len(poses)], width, height, threshold=threshold,
                                           thickness=thickness, canvas=None if bases is None else bases[i % len(bases)])
                           for i in range(max(counts))])
    empty = [i for i, frame in enumerate(frames) if not frame.any()]
    if empty:
        raise HumanSDError(f"pose: skeleton image {empty[0]} of {len(frames)} is all black (an empty pose)")
    return uint8_to_images(frames)


def crop_to_multiple_of_8(images: torch.Tensor) -> torch.Tensor:
    """Centre-crop ``[N,H,W,C]`` to sides that are multiples of 8 (as ComfyUI's IP2P node does), with a warning."""
    h, w = (images.shape[1] // 8) * 8, (images.shape[2] // 8) * 8
    if h == 0 or w == 0:
        raise HumanSDError(f"skeleton image: {images.shape[2]}x{images.shape[1]} is smaller than 8x8")
    if (h, w) != tuple(images.shape[1:3]):
        top, left = (images.shape[1] % 8) // 2, (images.shape[2] % 8) // 2
        logger.warning("HumanSD: skeleton image %dx%d is not a multiple of 8; centre-cropped to %dx%d",
                       images.shape[2], images.shape[1], w, h)
        images = images[:, top:top + h, left:left + w]
    return images
