"""Training parts: the heatmap-guided loss, heatmap estimators, latent decoders, the distilled net, LoRA.

Names are imported lazily (``humansd_core.training.config`` stays light, so the CLI
can read a training config before torch is imported; the parts pull in torch on
first use).
"""
from __future__ import annotations

from ..lazy_exports import lazy_getattr

_EXPORTS = {
    "DistilledHeatmapEstimator": "distilled",
    "FullVAEDecoder": "decoders",
    "HeatmapEstimator": "estimators",
    "HeatmapGuidedLoss": "loss",
    "HeatmapLossConfig": "loss",
    "KeypointGaussianEstimator": "estimators",
    "LinearLatentDecoder": "decoders",
    "LoRAConfig": "lora",
    "LossDiagnostics": "loss",
    "OpenPoseHeatmapEstimator": "estimators",
    "ReducedVAEDecoder": "decoders",
    "TimestepBinStats": "loss",
    "apply_lora": "lora",
    "fit_distilled_estimator": "distilled",
    "fit_linear_decoder": "decoders",
    "load_lora": "lora",
    "lora_parameters": "lora",
    "merge_lora": "lora",
    "save_lora": "lora",
    "shipped_distilled": "distilled",
    "teacher_heatmaps": "distilled",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
