"""The one pose type of the project: people x 17 COCO keypoints on a canvas.

Keypoints are ``(x, y, confidence)`` in **pixels** of a ``canvas_width`` x
``canvas_height`` canvas, COCO-17 order (:data:`COCO17_NAMES`). A confidence of 0
means "missing"; confidences lie in ``[0, 1]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import PoseFormatError

COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NUM_KEYPOINTS = 17

# Index permutation that mirrors a COCO-17 skeleton (left <-> right).
COCO17_FLIP_PERMUTATION: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

# Largest coordinate magnitude accepted, in pixels (guards against garbage input).
MAX_COORDINATE = 1.0e6


@dataclass(frozen=True)
class PoseSet:
    """All people of one frame.

    Attributes:
        keypoints: float32 ``[P, 17, 3]`` with ``(x, y, confidence)`` per joint,
            x/y in pixels (may fall outside the canvas), confidence in ``[0, 1]``.
        canvas_width, canvas_height: canvas size in pixels, both > 0.
        scores: float32 ``[P]`` per-person score in ``[0, 1]`` (1.0 when unknown).
    """

    keypoints: np.ndarray
    canvas_width: int
    canvas_height: int
    scores: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints, dtype=np.float32)
        if kp.ndim == 2 and kp.shape == (0, 0):
            kp = kp.reshape(0, NUM_KEYPOINTS, 3)
        if kp.ndim != 3 or kp.shape[1:] != (NUM_KEYPOINTS, 3):
            raise PoseFormatError(f"keypoints: expected shape [people, 17, 3], got {list(np.shape(self.keypoints))}")
        if not np.isfinite(kp).all():
            person, joint, _ = np.argwhere(~np.isfinite(kp))[0]
            raise PoseFormatError(
                f"keypoints: non-finite value at person {person}, joint {COCO17_NAMES[joint]}: {kp[person, joint].tolist()}"
            )
        too_far = np.abs(kp[..., :2]) > MAX_COORDINATE
        if too_far.any():
            person, joint, _ = np.argwhere(too_far)[0]
            raise PoseFormatError(
                f"keypoints: coordinate out of range (|v| > {MAX_COORDINATE:g}) at person {person}, "
                f"joint {COCO17_NAMES[joint]}: {kp[person, joint, :2].tolist()}"
            )
        conf = kp[..., 2]
        bad_conf = (conf < 0.0) | (conf > 1.0)
        if bad_conf.any():
            person, joint = np.argwhere(bad_conf)[0]
            raise PoseFormatError(
                f"keypoints: confidence {float(conf[person, joint])!r} outside [0, 1] at person {person}, "
                f"joint {COCO17_NAMES[joint]}"
            )
        for name in ("canvas_width", "canvas_height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) or not math.isfinite(value) \
                    or int(value) != value or value <= 0 or value > MAX_COORDINATE:
                raise PoseFormatError(f"{name}: expected a positive whole number of pixels, got {value!r}")
            object.__setattr__(self, name, int(value))
        scores = np.ones(kp.shape[0], np.float32) if self.scores is None else np.asarray(self.scores, np.float32)
        if scores.shape != (kp.shape[0],):
            raise PoseFormatError(f"scores: expected {kp.shape[0]} per-person scores, got shape {list(scores.shape)}")
        if not np.isfinite(scores).all() or (scores < 0).any() or (scores > 1).any():
            raise PoseFormatError(f"scores: each must be a finite number in [0, 1], got {scores.tolist()}")
        kp.setflags(write=False)
        scores.setflags(write=False)
        object.__setattr__(self, "keypoints", kp)
        object.__setattr__(self, "scores", scores)

    @property
    def num_people(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def canvas_size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return self.canvas_width, self.canvas_height

    @classmethod
    def empty(cls, canvas_width: int, canvas_height: int) -> PoseSet:
        """A frame with no people."""
        return cls(np.zeros((0, NUM_KEYPOINTS, 3), np.float32), canvas_width, canvas_height)

    def replace(self, **changes: object) -> PoseSet:
        """A copy with some fields changed (validated again)."""
        fields = {"keypoints": self.keypoints, "canvas_width": self.canvas_width,
                  "canvas_height": self.canvas_height, "scores": self.scores}
        fields.update(changes)
        return PoseSet(**fields)  # type: ignore[arg-type]

    def visible_count(self, threshold: float = 0.0) -> int:
        """Number of keypoints (over all people) with confidence > ``threshold``."""
        return int((self.keypoints[..., 2] > threshold).sum())
