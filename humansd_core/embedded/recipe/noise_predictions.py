"""A HumanSD model's own noise differences ``ε̂ − ε`` on synthetic scenes, timesteps mixed as in training.

What the heatmap-guided loss sees when it fine-tunes the model: the distilled loss net
is fitted on these (:mod:`.distilled`) and ``benchmarks/loss_overhead.py --checkpoint``
measures the loss's mask agreement on them (:mod:`humansd_core.training.mask_agreement`). Scenes are
:func:`humansd_core.synthetic.sample_scene` of a seed (default :data:`EVAL_SEED`, which
the embedded model never trained on) with their own captions and skeleton latents;
timesteps are drawn uniformly inside ``bins`` equal bins of ``0..999`` (the same count
per bin), so ``D = decode(ε̂ − ε)`` and its mask change from sample to sample and with
the noise level.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...models.checkpoint import HumanSDModels
from ...pose.keypoints import PoseSet
from ...pose.render import render_skeleton
from ...synthetic import sample_scene
from ...training.mask_agreement import Prediction

EVAL_SEED = 777  # not the embedded model's training seed (0) nor the demo's evaluation seed (20250)


def schedule_alphas() -> torch.Tensor:
    """``ᾱ_t`` ``[1000]`` of SD's scaled-linear schedule, computed in float32."""
    return torch.cumprod(1 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2, 0)


@dataclass
class RealBatch:
    """Encoded scenes: ``z0``/``pose_latent`` ``[B,4,h,w]`` (model space), ``tokens [B,77]``, poses."""

    z0: torch.Tensor
    pose_latent: torch.Tensor
    tokens: torch.Tensor
    poses: list[PoseSet]


@torch.no_grad()
def encode_scenes(models: HumanSDModels, size: int, count: int, seed: int = EVAL_SEED, start: int = 0) -> RealBatch:
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
def predict(models: HumanSDModels, batch: RealBatch, t: torch.Tensor, generator: torch.Generator) -> Prediction:
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


def model_predictions(models: HumanSDModels, size: int, bins: int, per_bin: int, batch_size: int,
                      seed: int = EVAL_SEED) -> list[Prediction]:
    """``bins × per_bin`` samples (distinct scenes) in batches of ``batch_size``, timesteps mixed as in training."""
    g = torch.Generator().manual_seed(seed)
    ts = stratified_timesteps(bins, per_bin, g)
    out = []
    for start in range(0, len(ts), batch_size):
        t = ts[start:start + batch_size]
        out.append(predict(models, encode_scenes(models, size, len(t), seed, start), t, g))
    return out
