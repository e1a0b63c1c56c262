"""Joint-heatmap estimators for the heatmap-guided loss.

One interface, :class:`HeatmapEstimator`: ``estimator(images, poses) -> heatmaps``
with images RGB ``[B, 3, H, W]`` in ``[0, 1]`` and heatmaps ``[B, 17, h, w]`` in
``[0, 1]`` (COCO-17 order, any resolution; the loss resizes them). ``poses`` is
one :class:`~humansd_core.pose.PoseSet` per sample (the batch's ground truth);
estimators that look at the image ignore it. ``needs_images`` tells the loss
whether it must decode an image at all.

* :class:`OpenPoseHeatmapEstimator`: the OpenPose body network
  (:class:`~humansd_core.pose.detect.OpenPoseBodyDetector`), the user's weights.
  The reference used HigherHRNet-w48 (MMPose), which is not available here.
* :class:`KeypointGaussianEstimator`: Gaussians at each sample's own ground-truth
  keypoints; no network, no image. The mask it gives is the body's joints at every
  timestep, so the weighting no longer adapts to the noise level (the paper's
  estimator sees the body in ``D`` mainly at high noise).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import HumanSDError
from ..pose.keypoints import NUM_KEYPOINTS, PoseSet


@runtime_checkable
class HeatmapEstimator(Protocol):
    """``images [B,3,H,W]`` in ``[0,1]`` (+ per-sample poses) → heatmaps ``[B,17,h,w]`` in ``[0,1]``."""

    needs_images: bool

    def __call__(self, images: torch.Tensor, poses: Sequence[PoseSet] | None = None) -> torch.Tensor: ...


class OpenPoseHeatmapEstimator:
    """The OpenPose body network's 17 COCO joint maps (stride 8: ``h = ⌈H/8⌉``)."""

    needs_images = True

    def __init__(self, detector: object) -> None:
        self.detector = detector

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> OpenPoseHeatmapEstimator:
        """Load ``body_pose_model.pth`` (see ``humansd_core.pose.detect.find_openpose_weights``)."""
        from ..pose.detect import OpenPoseBodyDetector

        return cls(OpenPoseBodyDetector.from_file(path, device=device))

    def __call__(self, images: torch.Tensor, poses: Sequence[PoseSet] | None = None) -> torch.Tensor:
        return self.detector.heatmaps(images).to(images.device)


class KeypointGaussianEstimator:
    """Gaussian joint maps at the ground-truth keypoints, ignoring the image's content.

    Args:
        sigma_fraction: Gaussian standard deviation as a fraction of the image's
            shorter side (default 8 px at 512, HigherHRNet's σ = 2 at stride 4).
        stride: heatmap stride (``h = ⌈H / stride⌉``), lowered to ``⌊σ⌋`` px (at least 1)
            when σ is smaller, so a joint never falls between cells.
        min_confidence: joints with confidence at or below are left out.

    Keypoints are in pixels of their pose's canvas and are scaled to the image size.
    Several people: the maximum per joint. Values: ``exp(-d² / 2σ²)``, peak 1.
    """

    needs_images = False

    def __init__(self, sigma_fraction: float = 8.0 / 512.0, stride: int = 4, min_confidence: float = 0.05) -> None:
        if not sigma_fraction > 0 or stride < 1:
            raise HumanSDError(f"Gaussian estimator: sigma_fraction must be > 0 and stride >= 1, "
                               f"got {sigma_fraction!r}, {stride!r}")
        self.sigma_fraction = float(sigma_fraction)
        self.stride = int(stride)
        self.min_confidence = float(min_confidence)

    def __call__(self, images: torch.Tensor, poses: Sequence[PoseSet] | None = None) -> torch.Tensor:
        b, _, height, width = images.shape
        if poses is None or len(poses) != b:
            raise HumanSDError(f"KeypointGaussianEstimator needs one PoseSet per sample: batch {b}, "
                               f"got {None if poses is None else len(poses)}")
        sigma = self.sigma_fraction * min(height, width)
        stride = max(1, min(self.stride, int(sigma)))  # cells no wider than σ, so no joint falls between them
        hh, ww = -(-height // stride), -(-width // stride)
        # Pixel centres of the heatmap cells, in image pixels.
        ys = (torch.arange(hh, device=images.device, dtype=torch.float32) + 0.5) * (height / hh)
        xs = (torch.arange(ww, device=images.device, dtype=torch.float32) + 0.5) * (width / ww)
        inv_two_var = 1.0 / (2.0 * sigma**2)
        out = torch.zeros(b, NUM_KEYPOINTS, hh, ww, device=images.device)
        for i, pose in enumerate(poses):
            kp = np.array(pose.keypoints, np.float32)  # a writable copy
            if kp.shape[0] == 0:
                continue
            pts = torch.from_numpy(kp).to(images.device)
            px = pts[..., 0] * (width / pose.canvas_width)  # [P, 17]
            py = pts[..., 1] * (height / pose.canvas_height)
            present = pts[..., 2] > self.min_confidence
            gy = torch.exp(-((ys[None, None, :] - py[..., None]) ** 2) * inv_two_var)  # [P, 17, hh]
            gx = torch.exp(-((xs[None, None, :] - px[..., None]) ** 2) * inv_two_var)  # [P, 17, ww]
            maps = gy[..., :, None] * gx[..., None, :] * present[..., None, None]
            out[i] = maps.amax(dim=0)
        return out
