"""Joint heatmaps: the estimator protocol, Gaussian maps at keypoints, and the estimator that needs no network.

Every pose estimator of the project is a :class:`HeatmapEstimator`:
``estimator(images, poses) -> heatmaps`` with images RGB ``[B, 3, H, W]`` in ``[0, 1]``
and heatmaps ``[B, 17, h, w]`` in ``[0, 1]`` (COCO-17 order, any resolution). ``poses``
is one :class:`~.keypoints.PoseSet` per sample (the batch's ground truth); estimators
that look at the image ignore it. ``needs_images`` says whether the image matters at
all (the heatmap-guided loss then skips decoding one). The estimators:

* the OpenPose body network (:class:`~.detect.OpenPoseHeatmapEstimator`, the user's weights);
* the two bundled mannequin networks (:class:`~.mannequin_estimator.TinyHeatmapEstimator`);
* :class:`KeypointGaussianEstimator`: Gaussians at each sample's own ground-truth
  keypoints; no network, no image. Its mask is the body's joints at every timestep, so
  the loss's weighting no longer adapts to the noise level (the paper's estimator sees
  the body in the decoded noise difference mainly at high noise).

Keypoints come back out of heatmaps with :mod:`.heatmap_decode`.

Cell convention of every heatmap here: a map of ``h`` rows spans its canvas of ``H``
pixels, cell ``j`` covering canvas pixels ``[j·s, (j+1)·s)`` with ``s = H / h``;
keypoint coordinates follow OpenCV (pixel ``i``'s centre is at ``i``, as the renderer,
the augmentations and the detectors place them), so a joint at ``y`` sits at cell
coordinate ``(y + 0.5)/s − 0.5``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import HumanSDError
from .keypoints import NUM_KEYPOINTS, PoseSet


@runtime_checkable
class HeatmapEstimator(Protocol):
    """``images [B,3,H,W]`` in ``[0,1]`` (+ per-sample poses) → heatmaps ``[B,17,h,w]`` in ``[0,1]``."""

    needs_images: bool

    def __call__(self, images: torch.Tensor, poses: Sequence[PoseSet] | None = None) -> torch.Tensor: ...


def gaussian_heatmaps(poses: Sequence[PoseSet], height: int, width: int, sigma: float, *,
                      min_confidence: float = 0.0, device: torch.device | str | None = None) -> torch.Tensor:
    """``[B, 17, height, width]`` float32 in ``[0, 1]``: per joint the maximum over people of ``exp(-d²/2σ²)``.

    Each pose's canvas maps onto the ``height x width`` grid by the cell convention of
    the module docstring; ``d`` and ``sigma`` are in cells. Joints with confidence at or
    below ``min_confidence`` are left out; a pose without people gives zeros.
    """
    out = torch.zeros(len(poses), NUM_KEYPOINTS, height, width, device=device)
    ys = torch.arange(height, dtype=torch.float32, device=device)
    xs = torch.arange(width, dtype=torch.float32, device=device)
    for i, pose in enumerate(poses):
        if pose.num_people == 0:
            continue
        kp = torch.from_numpy(np.array(pose.keypoints, np.float32)).to(device)  # [P,17,3], a writable copy
        cx = (kp[..., 0] + 0.5) * (width / pose.canvas_width) - 0.5  # [P,17] in cells
        cy = (kp[..., 1] + 0.5) * (height / pose.canvas_height) - 0.5
        gy = torch.exp(-((ys - cy[..., None]) ** 2) / (2 * sigma**2))  # [P,17,h]
        gx = torch.exp(-((xs - cx[..., None]) ** 2) / (2 * sigma**2))  # [P,17,w]
        maps = gy[..., :, None] * gx[..., None, :] * (kp[..., 2] > min_confidence)[..., None, None]
        out[i] = maps.amax(dim=0)
    return out


class KeypointGaussianEstimator:
    """Gaussian joint maps at the ground-truth keypoints (:func:`gaussian_heatmaps`), ignoring the image's content.

    Args:
        sigma_fraction: Gaussian standard deviation as a fraction of the image's
            shorter side (default 8 px at 512, HigherHRNet's σ = 2 at stride 4).
        stride: heatmap stride (``h = ⌈H / stride⌉``), lowered to ``⌊σ⌋`` px (at least 1)
            when σ is smaller, so a joint never falls between cells.
        min_confidence: joints with confidence at or below are left out.

    Keypoints are in pixels of their pose's canvas, which the image covers. Several
    people: the maximum per joint. Values: ``exp(-d² / 2σ²)``, peak 1.
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
        sigma = self.sigma_fraction * min(height, width)  # image pixels
        stride = max(1, min(self.stride, int(sigma)))  # cells no wider than σ, so no joint falls between them
        hh, ww = -(-height // stride), -(-width // stride)
        return gaussian_heatmaps(poses, hh, ww, sigma * hh / height, min_confidence=self.min_confidence,
                                 device=images.device)
