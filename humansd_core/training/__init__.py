"""Training parts: the heatmap-guided loss, heatmap estimators, latent decoders, the distilled net, LoRA."""
from __future__ import annotations

from .decoders import (
    FullVAEDecoder,
    LinearLatentDecoder,
    ReducedVAEDecoder,
    fit_linear_decoder,
)
from .distilled import (
    DistilledHeatmapEstimator,
    fit_distilled_estimator,
    shipped_distilled,
    teacher_heatmaps,
)
from .estimators import (
    HeatmapEstimator,
    KeypointGaussianEstimator,
    OpenPoseHeatmapEstimator,
)
from .lora import (
    LoRAConfig,
    apply_lora,
    load_lora,
    lora_parameters,
    merge_lora,
    save_lora,
)
from .loss import (
    HeatmapGuidedLoss,
    HeatmapLossConfig,
    LossDiagnostics,
    TimestepBinStats,
)

__all__ = [
    "DistilledHeatmapEstimator", "FullVAEDecoder", "HeatmapEstimator", "HeatmapGuidedLoss", "HeatmapLossConfig",
    "KeypointGaussianEstimator", "LinearLatentDecoder", "LoRAConfig", "LossDiagnostics", "OpenPoseHeatmapEstimator",
    "ReducedVAEDecoder", "TimestepBinStats", "apply_lora", "fit_distilled_estimator", "fit_linear_decoder",
    "load_lora", "lora_parameters", "merge_lora", "save_lora", "shipped_distilled", "teacher_heatmaps",
]
