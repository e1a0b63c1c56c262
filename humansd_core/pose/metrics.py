"""Pose agreement: how well the people found in an image match the pose condition (OKS, PCK).

COCO object keypoint similarity (OKS) between a condition person ``g`` and a
detected person ``d``::

    OKS = mean over g's visible joints j of exp(-d_j^2 / (2 * area * k_j^2)),  k_j = 2 * sigma_j

with ``sigma_j`` COCO's per-joint constants (:data:`COCO17_SIGMAS`) and ``area`` the
person's area in pixels². The condition comes without segmentation, so ``area`` is
the area of the box around its visible joints (at least 1 px²). A joint the
detector did not find counts as a miss (term 0). People are paired greedily by OKS
(best pair first, each person used once); a condition person left unpaired scores 0.

PCK@α (:func:`pck`, for people already paired by index): a joint is correct when its
distance to the reference joint is at most ``α × d``, ``d`` the **diagonal of the
reference person's joint box** (visible joints).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import HumanSDError
from .keypoints import NUM_KEYPOINTS, PoseSet

# COCO-17 per-keypoint OKS constants (pycocotools' ``kpt_oks_sigmas``).
COCO17_SIGMAS: np.ndarray = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89],
    dtype=np.float64,
) / 10.0
COCO17_SIGMAS.setflags(write=False)


def keypoint_box_area(keypoints: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Area (px², at least 1) of the box around each person's joints with confidence > ``threshold``.

    Args:
        keypoints: ``[P, 17, 3]`` ``(x, y, confidence)``.
    Returns:
        float64 ``[P]``; 1.0 for a person with fewer than two visible joints.
    """
    kp = np.asarray(keypoints, np.float64).reshape(-1, NUM_KEYPOINTS, 3)
    visible = kp[..., 2] > threshold
    xs = np.where(visible, kp[..., 0], np.nan)
    ys = np.where(visible, kp[..., 1], np.nan)
    areas = np.ones(kp.shape[0])
    has = visible.any(axis=1)
    if has.any():
        w = np.nanmax(xs[has], axis=1) - np.nanmin(xs[has], axis=1)
        h = np.nanmax(ys[has], axis=1) - np.nanmin(ys[has], axis=1)
        areas[has] = np.maximum(w * h, 1.0)
    return areas


def oks_matrix(condition: np.ndarray, detected: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """OKS of every (condition person, detected person) pair.

    Args:
        condition: ``[G, 17, 3]`` reference keypoints in pixels; joints with
            confidence > ``threshold`` are the ones scored.
        detected: ``[D, 17, 3]`` detected keypoints on the same canvas; joints with
            confidence <= ``threshold`` count as not found.
        threshold: visibility threshold for both.
    Returns:
        float64 ``[G, D]`` in ``[0, 1]``; a condition person with no visible joint
        scores NaN against everyone (it cannot be scored).
    """
    gt = np.asarray(condition, np.float64).reshape(-1, NUM_KEYPOINTS, 3)
    dt = np.asarray(detected, np.float64).reshape(-1, NUM_KEYPOINTS, 3)
    var = (2.0 * COCO17_SIGMAS) ** 2  # [17]
    area = keypoint_box_area(gt, threshold)  # [G]
    d2 = ((gt[:, None, :, :2] - dt[None, :, :, :2]) ** 2).sum(-1)  # [G, D, 17]
    terms = np.exp(-d2 / (2.0 * area[:, None, None] * var))
    terms = np.where(dt[None, :, :, 2] > threshold, terms, 0.0)
    gt_visible = gt[:, None, :, 2] > threshold  # [G, 1, 17]
    count = gt_visible.sum(-1)  # [G, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (terms * gt_visible).sum(-1) / count, np.nan)


@dataclass(frozen=True)
class PoseAgreement:
    """Agreement of one image's detected people with its condition pose.

    Attributes:
        per_person: OKS in ``[0, 1]`` for each scorable condition person, in the
            condition's order (0 where no detected person was paired with it).
        people_given: people in the condition with at least one visible joint.
        people_detected: people the detector found.
    """

    per_person: tuple[float, ...]
    people_given: int
    people_detected: int

    @property
    def mean_oks(self) -> float:
        """Mean of :attr:`per_person`; 0 when the condition has nobody to score."""
        return float(np.mean(self.per_person)) if self.per_person else 0.0

    @property
    def count_error(self) -> int:
        """``|people given - people detected|`` (the PCE term of one image)."""
        return abs(self.people_given - self.people_detected)


def pose_agreement(condition: PoseSet, detected: PoseSet, threshold: float = 0.05) -> PoseAgreement:
    """Pair the detected people with the condition's and score each pair by OKS.

    Both poses must be on the same canvas (the generated image's size). Joints with
    confidence <= ``threshold`` are ignored on the condition side and count as
    misses on the detected side.
    """
    if condition.canvas_size != detected.canvas_size:
        raise HumanSDError(
            f"pose_agreement: condition canvas {condition.canvas_size} differs from detected canvas "
            f"{detected.canvas_size}; place the condition on the image size first"
        )
    gt = condition.keypoints[(condition.keypoints[..., 2] > threshold).any(axis=1)]
    dt = detected.keypoints[(detected.keypoints[..., 2] > threshold).any(axis=1)]
    scores = np.zeros(gt.shape[0])
    if gt.shape[0] and dt.shape[0]:
        oks = oks_matrix(gt, dt, threshold)
        for _ in range(min(oks.shape)):
            g, d = np.unravel_index(np.argmax(oks), oks.shape)
            if oks[g, d] <= 0.0:
                break
            scores[g] = oks[g, d]
            oks[g, :] = -1.0
            oks[:, d] = -1.0
    return PoseAgreement(tuple(float(s) for s in scores), int(gt.shape[0]), int(dt.shape[0]))


def pck(predicted: PoseSet, reference: PoseSet, alpha: float = 0.1) -> tuple[int, int]:
    """``(correct, total)`` joints of ``predicted`` person ``i`` against ``reference`` person ``i``.

    Only reference joints with confidence > 0 count; the tolerance is ``alpha`` × the
    diagonal of the reference person's box around its visible joints.
    """
    if predicted.num_people != reference.num_people:
        raise HumanSDError(f"pck: {predicted.num_people} predicted people for {reference.num_people} reference people")
    correct = total = 0
    for pred, ref in zip(predicted.keypoints, reference.keypoints):
        visible = ref[:, 2] > 0
        if not visible.any():
            continue
        pts = ref[visible, :2]
        diagonal = float(np.hypot(*(pts.max(0) - pts.min(0))))
        dist = np.hypot(*(pred[visible, :2] - pts).T)
        correct += int((dist <= alpha * max(diagonal, 1.0)).sum())
        total += int(visible.sum())
    return correct, total
