"""The one learning-rate schedule: linear warm-up, then a cosine decay to a floor (or constant).

Used by the trainer (per optimiser step), the distilled loss net's fit, and the embedded
model's recipe (its VAE per step; its estimators by the fraction of the run done, so
``step`` may be fractional there).
"""
from __future__ import annotations

import math
from typing import Literal

Schedule = Literal["cosine", "constant"]


def lr_factor(step: float, warmup: float, total: float, schedule: Schedule = "cosine", min_ratio: float = 0.0) -> float:
    """LR multiplier at ``step`` (0-based) of a run of ``total`` steps.

    During the first ``warmup`` steps: ``(step + 1) / warmup``. Then ``"constant"``: 1;
    ``"cosine"``: from 1 down to ``min_ratio`` at ``step = total`` (``min_ratio`` after),
    ``min_ratio + (1 − min_ratio) · ½ (1 + cos(π · progress))`` with
    ``progress = (step − warmup) / max(1, total − warmup)``.
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
