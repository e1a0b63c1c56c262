"""Best of a batch: per-image pose agreement of a pose-major batch, the best image per pose, a JSON report.

A batch holds ``per_pose`` images for each of ``poses`` condition poses, pose-major
(images ``p·per_pose .. (p+1)·per_pose − 1`` belong to pose ``p``), as the HumanSD
Sampler makes them. Each image's agreement comes from
:func:`~.metrics.pose_agreement` (any detector); the best image of a pose is the one
with the highest mean OKS over its condition people (the first on ties).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import HumanSDError
from .metrics import PoseAgreement


def images_per_pose(images: int, poses: int) -> int:
    """Images per pose of a pose-major batch; raises unless ``images`` splits evenly over ``poses``."""
    if poses < 1 or images < 1 or images % poses:
        raise HumanSDError(f"images: {images} images cannot be split evenly over {poses} poses")
    return images // poses


@dataclass(frozen=True)
class BatchScore:
    """Agreements of a pose-major batch (``len(results)`` images, ``per_pose`` per pose)."""

    results: tuple[PoseAgreement, ...]
    per_pose: int

    def __post_init__(self) -> None:
        if self.per_pose < 1 or not self.results or len(self.results) % self.per_pose:
            raise HumanSDError(f"batch score: {len(self.results)} results are not whole groups of {self.per_pose}")

    @property
    def best(self) -> list[int]:
        """Per pose, the batch index of the image with the highest mean OKS."""
        n = self.per_pose
        return [max(range(p * n, (p + 1) * n), key=lambda i: self.results[i].mean_oks)
                for p in range(len(self.results) // n)]

    @property
    def mean_oks(self) -> float:
        """Mean over images of each image's mean OKS (0..1)."""
        return float(np.mean([r.mean_oks for r in self.results]))

    def report(self) -> str:
        """JSON ``{"mean_oks", "best", "images": [{"pose", "oks", "mean_oks", "people_given", "people_detected"}]}``."""
        return json.dumps({"mean_oks": self.mean_oks, "best": self.best, "images": [
            {"pose": i // self.per_pose, "oks": list(r.per_person), "mean_oks": r.mean_oks,
             "people_given": r.people_given, "people_detected": r.people_detected}
            for i, r in enumerate(self.results)]})


def score_batch(results: Sequence[PoseAgreement], poses: int) -> BatchScore:
    """:class:`BatchScore` of per-image ``results`` for ``poses`` poses (pose-major)."""
    return BatchScore(tuple(results), images_per_pose(len(results), poses))
