"""Mask agreement of the heatmap loss's cheap decode options with the full decode, per timestep bin.

A diagnostic of the loss (as :class:`~.loss.TimestepBinStats`): given batches of a
model's noise predictions (:class:`Prediction`; e.g. a trained model's own on synthetic
scenes, :mod:`humansd_core.embedded.recipe.noise_predictions`), how closely each loss
option's mask follows the mask of the full VAE decode. ``benchmarks/loss_overhead.py
--checkpoint`` reports it beside the options' cost.

Each option's latent mask (``(weight − 1) / w``, ``[B,1,h,w]`` in ``[0,1]``) is
compared per sample with the mask of a full VAE decode and a full-size estimator
(the ``paper-full`` option) by soft IoU ``Σmin / Σmax``. Samples where both masks are
empty have no IoU; they are counted apart (``both_empty``) and left out of the means.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..pose.keypoints import PoseSet
from .latent_decoders import FullVAEDecoder, LinearLatentDecoder
from .loss import HeatmapGuidedLoss


@dataclass
class Prediction:
    """One batch of UNet outputs: ``eps_pred``/``eps`` ``[B,4,h,w]``, ``t [B]``, poses."""

    eps_pred: torch.Tensor
    eps: torch.Tensor
    t: torch.Tensor
    poses: list[PoseSet]


def linear_fit_r2(decoder: LinearLatentDecoder, full: FullVAEDecoder, diffs: Sequence[torch.Tensor]) -> float:
    """R² of the linear decoder against the full decode area-pooled to latent size, over ``diffs``."""
    err = tot = 0.0
    for diff in diffs:
        target = torch.nn.functional.interpolate(full(diff), size=diff.shape[-2:], mode="area")
        err += float(((decoder(diff) - target) ** 2).sum())
        tot += float(((target - target.mean(dim=(0, 2, 3), keepdim=True)) ** 2).sum())
    return 1.0 - err / tot if tot else float("nan")


@dataclass
class Agreement:
    """Per-option IoU against the full-decode mask, overall and per timestep bin.

    ``iou[name]``: mean per-sample IoU (samples with a non-empty union); ``bin_iou[name][i]``
    the same inside bin ``i`` (NaN when none); ``both_empty[name]`` the share of samples
    where neither mask has a pixel; ``coverage[i]`` the full-decode mask's mean coverage
    (fraction of pixels) in bin ``i`` and ``bin_coverage[name][i]`` each option's;
    ``count[i]`` samples per bin.
    """

    iou: dict[str, float]
    bin_iou: dict[str, list[float]]
    both_empty: dict[str, float]
    coverage: list[float]
    bin_coverage: dict[str, list[float]]
    count: list[int]


def _sample_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Soft IoU per sample of masks ``[B,1,h,w]``; NaN where both are empty."""
    inter = torch.minimum(a, b).flatten(1).sum(1)
    union = torch.maximum(a, b).flatten(1).sum(1)
    return torch.where(union > 0, inter / union.clamp(min=1e-12), float("nan"))


def _nanmean(x: torch.Tensor) -> float:
    x = x[~torch.isnan(x)]
    return float(x.mean()) if len(x) else float("nan")


def agreement(losses: Mapping[str, HeatmapGuidedLoss], reference: HeatmapGuidedLoss,
              predictions: Sequence[Prediction], bins: int) -> Agreement:
    """Compare each option's latent mask with ``reference``'s (full decode, full-size estimator).

    Options in ``reference`` mode (a VAE-encoded weight, not a mask) are skipped.
    Batches are passed in order with ``step`` = batch index, so ``refresh_every > 1``
    reuses masks of earlier batches as it would in training.
    """
    w = reference.config.weight
    ref = [(reference.weight_map(p.eps_pred, p.eps, p.poses) - 1) / w for p in predictions]
    ts = torch.cat([p.t for p in predictions])
    which = (ts * bins // 1000).clamp(0, bins - 1)
    coverage = torch.cat([m.mean(dim=(1, 2, 3)) for m in ref])  # area masks: mean = pixel coverage
    out = Agreement({}, {}, {}, [_nanmean(coverage[which == i]) for i in range(bins)], {},
                    [int((which == i).sum()) for i in range(bins)])
    for name, loss in losses.items():
        if loss.config.mode == "reference":
            continue
        masks = [(loss.weight_map(p.eps_pred, p.eps, p.poses, step=i) - 1) / w for i, p in enumerate(predictions)]
        ious = torch.cat([_sample_iou(m, r) for m, r in zip(masks, ref)])
        cover = torch.cat([m.mean(dim=(1, 2, 3)) for m in masks])
        out.bin_coverage[name] = [_nanmean(cover[which == i]) for i in range(bins)]
        out.iou[name] = _nanmean(ious)
        out.bin_iou[name] = [_nanmean(ious[which == i]) for i in range(bins)]
        out.both_empty[name] = float(torch.isnan(ious).float().mean())
    return out


def format_agreement(result: Agreement, bins: int) -> list[str]:
    """Table lines: per option the overall IoU, the both-empty share and the IoU per timestep bin; then coverages."""
    edges = np.linspace(0, 1000, bins + 1).astype(int)
    heads = [f"t{edges[i]}-{edges[i + 1] - 1}" for i in range(bins)]
    lines = [f"{'mask IoU vs full':22s} {'all':>6s} {'empty':>6s} " + " ".join(f"{h:>8s}" for h in heads),
             f"{'  (full coverage)':22s} {'':>6s} {'':>6s} " + " ".join(f"{c:8.3f}" for c in result.coverage),
             f"{'  (samples)':22s} {'':>6s} {'':>6s} " + " ".join(f"{c:8d}" for c in result.count)]
    for name, iou in result.iou.items():
        lines.append(f"{name:22s} {iou:6.3f} {result.both_empty[name]:6.2f} "
                     + " ".join(f"{v:8.3f}" for v in result.bin_iou[name]))
    lines.append(f"{'mask coverage':22s} {'':>6s} {'':>6s} " + " ".join(f"{h:>8s}" for h in heads))
    for name, cover in result.bin_coverage.items():
        lines.append(f"{name:22s} {'':>6s} {'':>6s} " + " ".join(f"{v:8.3f}" for v in cover))
    return lines
