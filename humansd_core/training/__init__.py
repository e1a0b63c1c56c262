"""Fine-tuning HumanSD: the heatmap-guided loss (latent decoders, the distilled loss net), LoRA, data, the trainer.

The pose estimators the loss reads come from :mod:`humansd_core.pose`; the embedded demo
model's own recipe (its VAE, estimators, distillation) is :mod:`humansd_core.embedded.recipe`.
"""
from __future__ import annotations

from .distilled_heatmaps import (
    DistilledHeatmapEstimator,
    fit_distilled_estimator,
    shipped_distilled,
    teacher_heatmaps,
)
from .latent_decoders import (
    FullVAEDecoder,
    LinearLatentDecoder,
    ReducedVAEDecoder,
    fit_linear_decoder,
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
    "DistilledHeatmapEstimator", "FullVAEDecoder", "HeatmapGuidedLoss", "HeatmapLossConfig", "LinearLatentDecoder",
    "LoRAConfig", "LossDiagnostics", "ReducedVAEDecoder", "TimestepBinStats", "apply_lora", "fit_distilled_estimator",
    "fit_linear_decoder", "load_lora", "lora_parameters", "merge_lora", "save_lora", "shipped_distilled",
    "teacher_heatmaps",
]
