"""Read poses of the synthetic mannequins with the bundled tiny heatmap estimators.

The pack ships two tiny estimators trained on its synthetic mannequin scenes
(:func:`.mannequin_estimator.shipped_estimator`); the *judge* (a
small U-Net) is the one used here. They know nothing but those figures: on real
photos their output is meaningless (use the OpenPose detector, :mod:`.detect`).

Two ways to read people from an image's heatmaps
(:func:`.heatmap_decode.keypoints_from_heatmaps`, the one decoder):

* without boxes, the whole image is **one person**: each joint at its heatmap's
  strongest response anywhere;
* with boxes (e.g. around the condition's people, :func:`condition_boxes`),
  **top-down**: one person per box, each joint at its strongest response inside
  the box — what scoring a generated image against its condition needs.

A joint whose peak is below ``min_confidence`` is dropped (``(0, 0, 0)``). On
held-out scenes (128 px, one person) the judge's correct joints peak at a median
0.69 and 99.9 % above 0.1, while on backgrounds without anybody 99.6 % of the peaks
stay below 0.1: hence the default :data:`DEFAULT_MIN_CONFIDENCE`.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import HumanSDError
from .heatmap_decode import keypoints_from_heatmaps, person_boxes
from .keypoints import PoseSet
from .mannequin_estimator import TinyHeatmapEstimator, shipped_estimator
from .metrics import PoseAgreement, pose_agreement

DEFAULT_MIN_CONFIDENCE = 0.1
BATCH_SIZE = 32


@functools.lru_cache(maxsize=1)
def mannequin_judge() -> TinyHeatmapEstimator:
    """The shipped judge estimator on the CPU (loaded once; 64-px input, fast on any CPU)."""
    return shipped_estimator("judge")


def _as_batch(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """RGB ``[N,H,W,3]`` or ``[H,W,3]``, uint8 (0..255) or float (``[0,1]``) → float32 ``[N,3,H,W]`` in ``[0,1]``."""
    x = torch.as_tensor(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3 or min(x.shape[1:3]) < 1:
        raise HumanSDError(f"images: expected RGB [N, H, W, 3] or [H, W, 3], got {list(np.shape(images))}")
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    elif x.is_floating_point():
        x = x.float().clamp(0.0, 1.0)
    else:
        raise HumanSDError(f"images: expected uint8 or float pixels, got {x.dtype}")
    return x.permute(0, 3, 1, 2).contiguous()


def condition_boxes(condition: PoseSet, threshold: float = 0.05) -> np.ndarray:
    """``[P, 4]`` ``(x0, y0, x1, y1)`` around each condition person with a joint above ``threshold``
    (people without one are left out, as :func:`~.metrics.pose_agreement` leaves them out),
    grown by :data:`~.heatmap_decode.BOX_MARGIN`."""
    boxes = person_boxes(condition, threshold=threshold)
    return boxes[(condition.keypoints[..., 2] > threshold).any(axis=1)]


def detect_mannequin_poses(images: np.ndarray | torch.Tensor, boxes: Sequence[np.ndarray] | None = None, *,
                           min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                           estimator: TinyHeatmapEstimator | None = None) -> list[PoseSet]:
    """Mannequin poses in a batch of images, in pixels of those images.

    Args:
        images: RGB ``[N,H,W,3]`` (or one ``[H,W,3]``), uint8 or float in ``[0,1]``.
        boxes: None: one person per image from the whole image; else one ``[P,4]``
            array of ``(x0, y0, x1, y1)`` image pixels per image: one person per box
            (``P`` may be 0: nobody is read).
        min_confidence: joints whose heatmap peak is below this become ``(0, 0, 0)``.
        estimator: a heatmap estimator (default: the shipped judge, :func:`mannequin_judge`).

    Returns:
        one :class:`PoseSet` per image, canvas = the image size, COCO-17; a joint's
        confidence is its heatmap peak, a person's score the mean over its kept joints.
    """
    if not 0.0 <= min_confidence <= 1.0:
        raise HumanSDError(f"min_confidence: expected a value in [0, 1], got {min_confidence!r}")
    x = _as_batch(images)
    if boxes is not None and len(boxes) != len(x):
        raise HumanSDError(f"boxes: {len(boxes)} box arrays for {len(x)} images")
    estimator = estimator if estimator is not None else mannequin_judge()
    height, width = x.shape[-2:]
    out = []
    for start in range(0, len(x), BATCH_SIZE):
        for offset, maps in enumerate(estimator(x[start:start + BATCH_SIZE])):
            image_boxes = None if boxes is None else np.asarray(boxes[start + offset], np.float64).reshape(-1, 4)
            if image_boxes is not None and len(image_boxes) == 0:
                out.append(PoseSet.empty(width, height))
                continue
            pose = keypoints_from_heatmaps(maps, width, height, image_boxes)
            kp = pose.keypoints.copy()
            kp[kp[..., 2] < min_confidence] = 0.0
            found = kp[..., 2] > 0
            scores = np.where(found.any(1), kp[..., 2].sum(1) / np.maximum(found.sum(1), 1), 0.0)
            out.append(PoseSet(kp, width, height, scores))
    return out


def detect_mannequin_pose(image: np.ndarray | torch.Tensor, boxes: np.ndarray | None = None, *,
                          min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                          estimator: TinyHeatmapEstimator | None = None) -> PoseSet:
    """One image ``[H,W,3]`` (uint8 or float in ``[0,1]``) → its mannequin pose(s); see :func:`detect_mannequin_poses`."""
    if np.ndim(image) != 3:
        raise HumanSDError(f"image: expected RGB [H, W, 3], got {list(np.shape(image))}")
    return detect_mannequin_poses(image, None if boxes is None else [boxes], min_confidence=min_confidence,
                                  estimator=estimator)[0]


def mannequin_agreements(images: np.ndarray | torch.Tensor, conditions: Sequence[PoseSet], threshold: float = 0.05,
                         *, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                         estimator: TinyHeatmapEstimator | None = None) -> list[PoseAgreement]:
    """OKS of each image's mannequins with its condition, read top-down in the condition's boxes.

    ``images [N,H,W,3]`` (see :func:`detect_mannequin_poses`), ``conditions`` one
    :class:`PoseSet` per image on the image's canvas. Each condition person with a
    joint above ``threshold`` gets its joints read inside its box
    (:func:`condition_boxes`); :func:`~.metrics.pose_agreement` (same ``threshold``)
    then pairs and scores them, so a box where the judge finds no joint above
    ``min_confidence`` counts as a person not detected.
    """
    boxes = [condition_boxes(condition, threshold) for condition in conditions]
    detected = detect_mannequin_poses(images, boxes, min_confidence=min_confidence, estimator=estimator)
    return [pose_agreement(condition, found, threshold) for condition, found in zip(conditions, detected)]
