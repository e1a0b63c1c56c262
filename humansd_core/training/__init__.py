"""Fine-tuning HumanSD: the heatmap-guided loss (latent decoders, the distilled loss net), LoRA, data, the trainer.

The pose estimators the loss reads come from :mod:`humansd_core.pose`; the embedded demo
model's own recipe (its VAE, estimators, distillation) is :mod:`humansd_core.embedded.recipe`.
Names are imported lazily (``humansd_core.training.config`` stays light, so the CLI can
read a training config before torch is imported; the parts pull in torch on first use).
"""
from __future__ import annotations

from ..lazy_exports import lazy_getattr

_EXPORTS = {
    "DistilledHeatmapEstimator": "distilled_heatmaps",
    "FullVAEDecoder": "latent_decoders",
    "HeatmapGuidedLoss": "loss",
    "HeatmapLossConfig": "loss",
    "LinearLatentDecoder": "latent_decoders",
    "LoRAConfig": "lora",
    "LossDiagnostics": "loss",
    "ReducedVAEDecoder": "latent_decoders",
    "TimestepBinStats": "loss",
    "apply_lora": "lora",
    "fit_distilled_estimator": "distilled_heatmaps",
    "fit_linear_decoder": "latent_decoders",
    "load_lora": "lora",
    "lora_parameters": "lora",
    "merge_lora": "lora",
    "save_lora": "lora",
    "shipped_distilled": "distilled_heatmaps",
    "teacher_heatmaps": "distilled_heatmaps",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
