"""The heatmap-guided loss's choices and the default shared by the loss and the training config.

Names only (no torch), so the config and the CLI read them without importing the loss:
:class:`~.loss.HeatmapLossConfig` and the ``[loss]`` options of :mod:`.config` both take
their allowed values from these ``Literal`` types.
"""
from __future__ import annotations

from typing import Literal

LossMode = Literal["paper", "reference"]
DecoderName = Literal["distilled", "full", "reduced", "linear"]
MaskToLatent = Literal["area", "vae"]
# The estimator's input size as a fraction of the training image (paper mode): a quarter.
DEFAULT_ESTIMATOR_SCALE = 0.25
