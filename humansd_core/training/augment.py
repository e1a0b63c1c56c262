"""Geometric augmentation that moves keypoints with the pixels: resize, zoom, crop, h-flip.

A :class:`Geometry` is drawn once per sample and applied to the image and to its pose
alike. Pixel-centre convention: a resize from ``w`` to ``W`` pixels maps coordinate
``x`` to ``(x + 0.5)·W/w − 0.5``, a crop at ``cx`` subtracts ``cx``, and a flip maps
``x`` to ``W − 1 − x`` and swaps left/right joints
(:func:`humansd_core.pose.flip_horizontal`; the reference's flip forgets the swap).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..pose.keypoints import PoseSet
from ..pose.transforms import flip_horizontal


@dataclass(frozen=True)
class Geometry:
    """Resize ``(src_w, src_h)`` → ``(resized_w, resized_h)``, crop at ``(crop_x, crop_y)`` to
    ``(out_w, out_h)``, then flip if ``flip``."""

    src_w: int
    src_h: int
    resized_w: int
    resized_h: int
    crop_x: int
    crop_y: int
    out_w: int
    out_h: int
    flip: bool


def plan_geometry(src_w: int, src_h: int, out_w: int, out_h: int, rng: np.random.Generator | None = None, *,
                  random_crop: bool = True, zoom_max: float = 1.0, flip_prob: float = 0.0,
                  flip: bool | None = None) -> Geometry:
    """The transform taking a ``src_w x src_h`` image to an ``out_w x out_h`` one.

    The image is scaled to cover the output (times a zoom drawn from ``[1, zoom_max]``),
    then cropped at a random (``random_crop``) or centred position. Without ``rng`` the
    plan is deterministic: no zoom, centre crop, ``flip`` as given (default False).
    ``flip`` given explicitly overrides the random draw.
    """
    zoom = 1.0
    if rng is not None and zoom_max > 1.0:
        zoom = float(rng.uniform(1.0, zoom_max))
    scale = max(out_w / src_w, out_h / src_h) * zoom
    resized_w = max(out_w, math.ceil(src_w * scale - 1e-6))
    resized_h = max(out_h, math.ceil(src_h * scale - 1e-6))
    if rng is not None and random_crop:
        crop_x = int(rng.integers(0, resized_w - out_w + 1))
        crop_y = int(rng.integers(0, resized_h - out_h + 1))
    else:
        crop_x, crop_y = (resized_w - out_w) // 2, (resized_h - out_h) // 2
    if flip is None:
        flip = bool(rng is not None and flip_prob > 0 and rng.random() < flip_prob)
    return Geometry(src_w, src_h, resized_w, resized_h, crop_x, crop_y, out_w, out_h, flip)


def apply_to_image(image: Image.Image | np.ndarray, g: Geometry) -> np.ndarray:
    """RGB uint8 ``[out_h, out_w, 3]`` (bicubic resize, antialiased when shrinking)."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image), "RGB")
    if pil.size != (g.src_w, g.src_h):
        raise ValueError(f"geometry planned for {g.src_w}x{g.src_h}, image is {pil.size[0]}x{pil.size[1]}")
    box = (g.crop_x * g.src_w / g.resized_w, g.crop_y * g.src_h / g.resized_h,
           (g.crop_x + g.out_w) * g.src_w / g.resized_w, (g.crop_y + g.out_h) * g.src_h / g.resized_h)
    out = np.asarray(pil.convert("RGB").resize((g.out_w, g.out_h), Image.Resampling.BICUBIC, box=box))
    return np.ascontiguousarray(out[:, ::-1]) if g.flip else out


def apply_to_pose(pose: PoseSet, g: Geometry) -> PoseSet:
    """The pose on the ``out_w x out_h`` canvas (``pose``'s canvas is taken to be the source image)."""
    kp = pose.keypoints.astype(np.float64)
    present = kp[..., 2] > 0
    sx, sy = g.resized_w / pose.canvas_width, g.resized_h / pose.canvas_height
    kp[..., 0] = np.where(present, (kp[..., 0] + 0.5) * sx - 0.5 - g.crop_x, kp[..., 0])
    kp[..., 1] = np.where(present, (kp[..., 1] + 0.5) * sy - 0.5 - g.crop_y, kp[..., 1])
    out = pose.replace(keypoints=kp, canvas_width=g.out_w, canvas_height=g.out_h)
    return flip_horizontal(out) if g.flip else out


def fit_pose_to_image(pose: PoseSet, width: int, height: int, max_people: int) -> PoseSet:
    """The first ``max_people`` people, coordinates scaled from the pose's canvas to ``width x height``."""
    pose = pose.replace(keypoints=pose.keypoints[:max_people], scores=pose.scores[:max_people])
    if pose.canvas_size == (width, height):
        return pose
    kp = pose.keypoints.astype(np.float64)
    present = kp[..., 2] > 0
    kp[..., 0] = np.where(present, kp[..., 0] * width / pose.canvas_width, kp[..., 0])
    kp[..., 1] = np.where(present, kp[..., 1] * height / pose.canvas_height, kp[..., 1])
    return pose.replace(keypoints=kp, canvas_width=width, canvas_height=height)
