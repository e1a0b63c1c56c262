"""Mask agreement of the heatmap loss's cheap options with the full decode, on a trained model's real predictions.

Helper of ``benchmarks/loss_overhead.py`` for ``--checkpoint``. The noise difference
``ε̂ − ε`` comes from the checkpoint's UNet on VAE-encoded synthetic mannequin scenes
(:func:`humansd_core.synthetic.sample_scene`, a seed the embedded model never trained
on) with their own captions and skeleton latents, at timesteps drawn uniformly inside
``bins`` equal bins of ``0..999`` (the same count per bin), so ``D`` and its mask change
from sample to sample and with the noise level.

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

from humansd_core.pose.keypoints import PoseSet
from humansd_core.pose.render import render_skeleton
from humansd_core.synthetic import sample_scene
from humansd_core.training.decoders import FullVAEDecoder, LinearLatentDecoder
from humansd_core.training.loss import HeatmapGuidedLoss

EVAL_SEED = 777  # not the embedded model's training seed (0) nor the demo's evaluation seed (20250)


def schedule_alphas() -> torch.Tensor:
    """``ᾱ_t`` ``[1000]`` of SD's scaled-linear schedule."""
    return torch.cumprod(1 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2, 0)


@dataclass
class RealBatch:
    """Encoded scenes: ``z0``/``pose_latent`` ``[B,4,h,w]`` (model space), ``tokens [B,77]``, poses."""

    z0: torch.Tensor
    pose_latent: torch.Tensor
    tokens: torch.Tensor
    poses: list[PoseSet]


@dataclass
class Prediction:
    """One batch of UNet outputs: ``eps_pred``/``eps`` ``[B,4,h,w]``, ``t [B]``, poses."""

    eps_pred: torch.Tensor
    eps: torch.Tensor
    t: torch.Tensor
    poses: list[PoseSet]


@torch.no_grad()
def encode_scenes(models, size: int, count: int, seed: int = EVAL_SEED, start: int = 0) -> RealBatch:
    """Scenes ``start .. start+count-1`` of ``seed`` (``size²`` px) through the checkpoint's VAE and tokenizer."""
    images, skeletons, poses, captions = [], [], [], []
    for index in range(start, start + count):
        image, pose, caption = sample_scene(np.random.default_rng([seed, index]), size)
        images.append(image)
        skeletons.append(render_skeleton(pose))
        poses.append(pose)
        captions.append(caption)
    pixels = torch.from_numpy(np.stack(images + skeletons)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    latents = models.vae.encode(pixels).float() * models.config.scale_factor
    return RealBatch(latents[:count], latents[count:], models.text_encoder.tokenize(captions), poses)


@torch.no_grad()
def predict(models, batch: RealBatch, t: torch.Tensor, generator: torch.Generator) -> Prediction:
    """``ε̂ = UNet(cat(z_t, pose), t, text)`` for the batch at timesteps ``t [B]``."""
    a = schedule_alphas()[t].view(-1, 1, 1, 1)
    eps = torch.randn(batch.z0.shape, generator=generator)
    zt = a.sqrt() * batch.z0 + (1 - a).sqrt() * eps
    context = models.text_encoder.encode_tokens(batch.tokens).float()
    pred = models.unet(torch.cat([zt, batch.pose_latent], 1), t, context).float()
    return Prediction(pred, eps, t, batch.poses)


def stratified_timesteps(bins: int, per_bin: int, generator: torch.Generator) -> torch.Tensor:
    """``bins × per_bin`` timesteps, ``per_bin`` uniform draws inside each bin of ``0..999``, shuffled."""
    edges = torch.linspace(0, 1000, bins + 1).long()
    ts = torch.cat([torch.randint(int(edges[i]), int(edges[i + 1]), (per_bin,), generator=generator)
                    for i in range(bins)])
    return ts[torch.randperm(len(ts), generator=generator)]


def model_predictions(models, size: int, bins: int, per_bin: int, batch_size: int,
                      seed: int = EVAL_SEED) -> list[Prediction]:
    """``bins × per_bin`` samples (distinct scenes) in batches of ``batch_size``, timesteps mixed as in training."""
    g = torch.Generator().manual_seed(seed)
    ts = stratified_timesteps(bins, per_bin, g)
    out = []
    for start in range(0, len(ts), batch_size):
        t = ts[start:start + batch_size]
        out.append(predict(models, encode_scenes(models, size, len(t), seed, start), t, g))
    return out


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
