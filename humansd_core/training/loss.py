"""HumanSD's heatmap-guided denoising loss, in the paper's form and the reference code's form.

Per sample: ``z_t = √ᾱ_t z_0 + √(1−ᾱ_t) ε``, ``ε̂ = UNet(cat(z_t, pose), t, text)``;
plain loss ``mean((ε̂ − ε)²)``. A pose estimator looks at the *noise difference*
image ``D = decode(ε̂ − ε)`` (no gradient through ``D``) and the squared error is
weighted where it finds a body.

``mode="paper"`` (default; the paper's ``W_a = w · H_m + 1``):
    heatmaps of ``D`` are resized (bilinear) to the training image's pixel size,
    ``M_pix = max_j heatmap_j > threshold``; ``M`` = ``M_pix`` area-resized to the
    latent ``[B,1,h,w]`` (the fraction of each latent cell's 8x8 pixels inside the
    mask); loss ``mean((1 + w·M) · (ε̂−ε)²)``. The weight is exactly ``1 + w`` where a
    latent cell lies fully in the mask and ``1`` outside it. With
    ``mask_to_latent="vae"``, ``M_pix`` (3 channels) is VAE-encoded instead
    (posterior mean × scale factor, as the reference encodes its map); that
    4-channel weight is not bounded to ``[1, 1+w]``.
    ``D`` comes from a choice of decoders (:mod:`.latent_decoders`): ``"full"`` VAE,
    ``"reduced"`` (VAE on a pooled latent) or ``"linear"`` (a fitted 1x1 conv, fitted
    on the first batch's ``ε̂−ε`` with one full decode unless given); the estimator
    runs at ``estimator_scale`` × the training-image size. ``"distilled"`` (the
    default) replaces decode + estimator by a small conv net on the latent
    (:mod:`.distilled_heatmaps`) trained to give the heatmaps that the full decode and the
    full-size estimator give; unless one is passed, the loss uses that full path for
    the first ``distill_batches`` calls (their masks are exact), keeps their
    ``ε̂−ε`` and heatmaps (those of the first call's latent size), and then fits the
    net on them (``distill_steps``; each process of a multi-process run fits its own,
    as with the linear decoder). The trainer passes the bundled net when it was
    distilled from the run's VAE decoder and estimator (:func:`.run_data.find_distilled`).
    ``refresh_every = k > 1`` reuses the last mask for ``k − 1`` steps (note: that
    mask belongs to the batch it was computed on).

``mode="reference"`` (``LatentPoseText2ImageDiffusion_HumanSD.p_losses``, line by line):
    ``D = clamp((VAE.decode((ε̂−ε)/0.18215) + 1)/2, 0, 1)`` (full decode),
    heatmaps ``> threshold`` → **0**, else **1**, **summed over the 17 joints**,
    repeated to 3 channels, resized to ``D``'s size (bicubic, no align-corners),
    VAE-encoded and *sampled* from the posterior, × 0.18215 → ``E [B,4,h,w]``;
    loss ``mean(mse · (1 + w·E))``. Differences from the paper: the polarity is
    inverted (weight goes to where *no* joint is found), the map counts joints
    (0..17) instead of being a mask, and a VAE encoding of that count image is used
    as a weight, which has no fixed sign or range. The reference's estimator
    (HigherHRNet, fed ``D`` without normalisation) is replaced by ours.

Diagnostics (:class:`LossDiagnostics`): plain loss, mean weight, mask coverage
(fraction of pixels where a joint's heatmap exceeds the threshold, both modes),
per sample, with the timesteps so :class:`TimestepBinStats` can bin them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import HumanSDError
from ..pose.heatmaps import HeatmapEstimator
from ..pose.keypoints import PoseSet
from .distilled_heatmaps import DistilledHeatmapEstimator, at_size, fit_distilled_estimator
from .latent_decoders import (
    FullVAEDecoder,
    LatentDecoder,
    LinearLatentDecoder,
    ReducedVAEDecoder,
    fit_linear_decoder,
)
from .loss_choices import DEFAULT_ESTIMATOR_SCALE, DecoderName, LossMode, MaskToLatent



@dataclass(frozen=True)
class HeatmapLossConfig:
    """Options of :class:`HeatmapGuidedLoss` (defaults: the training config's w = 0.1, threshold 0.05).

    ``decoder``, ``reduce_factor``, ``estimator_scale``, ``mask_to_latent`` and
    ``refresh_every`` apply to ``mode="paper"``; the reference mode always decodes
    fully, runs the estimator at full size, and recomputes every step.
    ``estimator_scale`` is relative to the training image (``8 × latent`` pixels;
    the distilled net needs no image and ignores it). ``distill_batches`` and
    ``distill_steps`` apply to ``decoder="distilled"`` without a given net.
    Measured with ``benchmarks/loss_overhead.py`` (CPU, one thread) on the embedded
    tiny model's training step (128², batch 16), the mask compared with the
    full-decode mask by IoU: the default (bundled distilled net) 1.06x a plain step,
    IoU 0.64 (0.40 at t 600–799, 0.21 at t ≥ 800); the linear decoder 1.05x, IoU 0.21
    (0 at t ≥ 600); a full decode 2.54x; the reference form 3.46x.
    """

    mode: LossMode = "paper"
    weight: float = 0.1
    threshold: float = 0.05
    decoder: DecoderName = "distilled"
    reduce_factor: int = 2
    estimator_scale: float = DEFAULT_ESTIMATOR_SCALE
    mask_to_latent: MaskToLatent = "area"
    refresh_every: int = 1
    distill_batches: int = 8
    distill_steps: int = 1500

    def __post_init__(self) -> None:
        checks = {
            "mode": self.mode in get_args(LossMode),
            "decoder": self.decoder in get_args(DecoderName),
            "mask_to_latent": self.mask_to_latent in get_args(MaskToLatent),
            "weight": self.weight >= 0,
            "threshold": 0 <= self.threshold < 1,
            "reduce_factor": self.reduce_factor >= 1,
            "estimator_scale": self.estimator_scale > 0,
            "refresh_every": self.refresh_every >= 1,
            "distill_batches": self.distill_batches >= 1,
            "distill_steps": self.distill_steps >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise HumanSDError(f"heatmap loss option {name}={getattr(self, name)!r} is not allowed")


@dataclass(frozen=True)
class LossDiagnostics:
    """Detached statistics of one loss call (tensors on the loss's device).

    Attributes:
        plain_loss: scalar, unweighted ``mean((ε̂−ε)²)``.
        mean_weight: scalar, mean of the per-element weight.
        mask_coverage: scalar, fraction of pixels where some joint exceeds the threshold.
        sample_coverage, sample_weight: ``[B]`` per-sample versions.
        timesteps: ``[B]`` the samples' timesteps.
        mask_fresh: False when the mask was reused from an earlier step.
    """

    plain_loss: torch.Tensor
    mean_weight: torch.Tensor
    mask_coverage: torch.Tensor
    sample_coverage: torch.Tensor
    sample_weight: torch.Tensor
    timesteps: torch.Tensor
    mask_fresh: bool


class TimestepBinStats:
    """Accumulates mask coverage and mean weight per timestep bin over many loss calls."""

    def __init__(self, num_bins: int = 10, num_timesteps: int = 1000) -> None:
        self.num_bins, self.num_timesteps = num_bins, num_timesteps
        self.count = torch.zeros(num_bins, dtype=torch.float64)
        self.coverage = torch.zeros(num_bins, dtype=torch.float64)
        self.weight = torch.zeros(num_bins, dtype=torch.float64)

    def update(self, diag: LossDiagnostics) -> None:
        bins = (diag.timesteps.detach().cpu().long() * self.num_bins // self.num_timesteps).clamp(0, self.num_bins - 1)
        self.count.index_add_(0, bins, torch.ones(len(bins), dtype=torch.float64))
        self.coverage.index_add_(0, bins, diag.sample_coverage.detach().cpu().double())
        self.weight.index_add_(0, bins, diag.sample_weight.detach().cpu().double())

    def summary(self) -> dict[str, list[float]]:
        """Per bin (``[i·T/n, (i+1)·T/n)``): ``count``, mean ``coverage``, mean ``weight`` (NaN if empty)."""
        n = self.count.clamp(min=1)
        empty = self.count == 0
        return {"count": self.count.tolist(),
                "coverage": torch.where(empty, float("nan"), self.coverage / n).tolist(),
                "weight": torch.where(empty, float("nan"), self.weight / n).tolist()}


class HeatmapGuidedLoss:
    """``loss(eps_pred, eps, t, poses=None, step=None) -> (loss, LossDiagnostics)``.

    Args:
        vae: the latent codec (``decode``/``encode``/``encode_dist`` on unscaled latents).
        estimator: a :class:`~humansd_core.pose.heatmaps.HeatmapEstimator`.
        config: :class:`HeatmapLossConfig`.
        scale_factor: the latent scale factor (0.18215).
        linear_decoder: a fitted :class:`~.latent_decoders.LinearLatentDecoder` for
            ``decoder="linear"`` (fitted on the first batch when None).
        distilled: a :class:`~.distilled_heatmaps.DistilledHeatmapEstimator` for
            ``decoder="distilled"`` (fitted after ``distill_batches`` calls when None).
        generator: RNG for the reference mode's posterior sample.
    """

    def __init__(self, vae: nn.Module, estimator: HeatmapEstimator, config: HeatmapLossConfig = HeatmapLossConfig(),
                 scale_factor: float = 0.18215, linear_decoder: LinearLatentDecoder | None = None,
                 generator: torch.Generator | None = None, distilled: DistilledHeatmapEstimator | None = None
                 ) -> None:
        self.vae, self.estimator, self.config = vae, estimator, config
        self.scale_factor = float(scale_factor)
        self.generator = generator
        self.full_decoder = FullVAEDecoder(vae, scale_factor)
        self.linear_decoder = linear_decoder
        self.distilled = distilled
        self._teacher: list[tuple[torch.Tensor, torch.Tensor]] = []  # (ε̂−ε, heatmaps) to fit the distilled net
        self._cache: tuple[int, torch.Tensor, torch.Tensor] | None = None  # (step, weight map, sample coverage)

    @property
    def latent_factor(self) -> int:
        return int(getattr(getattr(self.vae, "config", None), "downsample_factor", 8))

    def decoder(self, diff: torch.Tensor) -> LatentDecoder:
        """The image decoder the paper mode uses (fits the linear one on ``diff`` the first time)."""
        name = self.config.decoder
        if name in ("full", "distilled"):  # distilled: the decoder of the full path that teaches it
            return self.full_decoder
        if name == "reduced":
            return ReducedVAEDecoder(self.vae, self.scale_factor, self.config.reduce_factor)
        if self.linear_decoder is None:
            self.linear_decoder = fit_linear_decoder(self.full_decoder, diff)
        return self.linear_decoder

    def __call__(self, eps_pred: torch.Tensor, eps: torch.Tensor, t: torch.Tensor,
                 poses: Sequence[PoseSet] | None = None, step: int | None = None,
                 timestep_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, LossDiagnostics]:
        """Weighted loss (scalar, differentiable w.r.t. ``eps_pred [B,4,h,w]``) and diagnostics.

        ``eps [B,4,h,w]`` the drawn noise, ``t [B]`` timesteps 0..999, ``poses`` one
        PoseSet per sample (needed by pose-based estimators), ``step`` the optimiser
        step (needed when ``refresh_every > 1``), ``timestep_weight [B]`` an extra factor
        per sample on top of the body weight (:mod:`.timestep_weights`; the diagnostics
        leave it out).
        """
        if eps_pred.shape != eps.shape or eps_pred.ndim != 4:
            raise HumanSDError(f"eps_pred {list(eps_pred.shape)} and eps {list(eps.shape)}: expected equal [B,C,h,w]")
        sq = (eps_pred.float() - eps.float()) ** 2
        weight, coverage, fresh = self._weight(eps_pred, eps, poses, step)
        weighted = sq * weight
        if timestep_weight is not None:
            weighted = weighted * timestep_weight.view(-1, 1, 1, 1)
        loss = weighted.mean()
        sample_weight = weight.expand_as(sq).mean(dim=(1, 2, 3))
        diag = LossDiagnostics(plain_loss=sq.detach().mean(), mean_weight=sample_weight.mean(),
                               mask_coverage=coverage.mean(), sample_coverage=coverage, sample_weight=sample_weight,
                               timesteps=t.detach(), mask_fresh=fresh)
        return loss, diag

    def weight_map(self, eps_pred: torch.Tensor, eps: torch.Tensor, poses: Sequence[PoseSet] | None = None,
                   step: int | None = None) -> torch.Tensor:
        """The per-element weight alone: ``[B,1,h,w]`` (paper, area) or ``[B,4,h,w]`` (VAE-encoded, reference)."""
        return self._weight(eps_pred, eps, poses, step)[0]

    @torch.no_grad()
    def _weight(self, eps_pred: torch.Tensor, eps: torch.Tensor, poses: Sequence[PoseSet] | None,
                step: int | None) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """``(weight, coverage [B], fresh)``; computed without gradient (``D`` is a constant)."""
        diff = (eps_pred.detach() - eps.detach()).float()
        if self.config.mode == "reference":
            return (*self._reference_weight(diff, poses), True)
        return self._paper_weight(diff, poses, step)

    # -- paper form --------------------------------------------------------------------------------

    def _estimator_size(self, pixel_size: tuple[int, int]) -> tuple[int, int]:
        scale = self.config.estimator_scale
        return max(8, round(pixel_size[0] * scale)), max(8, round(pixel_size[1] * scale))

    def _pixel_mask(self, images: torch.Tensor, poses: Sequence[PoseSet] | None,
                    pixel_size: tuple[int, int]) -> torch.Tensor:
        """``[B,1,H,W]`` float {0,1}: some joint's heatmap (resized to pixel size) > threshold.

        An image-reading estimator sees ``images`` resized to ``estimator_scale`` × ``pixel_size``.
        """
        size = self._estimator_size(pixel_size) if self.estimator.needs_images else pixel_size
        if images.shape[-2:] != size:
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False,
                                   antialias=size[0] < images.shape[-2])
        return self._heat_mask(self.estimator(images, poses), pixel_size)

    def _heat_mask(self, heat: torch.Tensor, pixel_size: tuple[int, int]) -> torch.Tensor:
        """``[B,1,H,W]`` float {0,1}: heatmaps ``[B,K,h',w']`` resized (bilinear) to ``pixel_size``, max > threshold."""
        heat = F.interpolate(heat.float(), size=pixel_size, mode="bilinear", align_corners=False)
        return (heat.amax(dim=1, keepdim=True) > self.config.threshold).float()

    def _distilled_mask(self, diff: torch.Tensor, pixel_size: tuple[int, int]) -> torch.Tensor:
        """The distilled net's mask; until it exists, the full path's, kept as its teacher (then fit)."""
        if self.distilled is not None:
            return self._heat_mask(self.distilled(diff), pixel_size)
        heat = self.estimator(self.full_decoder(diff)).float()  # the full path at full size, as the teacher
        if not self._teacher or self._teacher[0][0].shape[-2:] == diff.shape[-2:]:  # one latent size (bucket)
            self._teacher.append((diff.detach().cpu(), at_size(heat, tuple(diff.shape[-2:])).cpu()))
        if len(self._teacher) >= self.config.distill_batches:
            latents = torch.cat([d for d, _ in self._teacher]).to(diff.device)
            targets = torch.cat([m for _, m in self._teacher]).to(diff.device)
            self.distilled = fit_distilled_estimator(latents, targets, steps=self.config.distill_steps)
            self._teacher = []
        return self._heat_mask(heat, pixel_size)

    def _paper_weight(self, diff: torch.Tensor, poses: Sequence[PoseSet] | None, step: int | None
                      ) -> tuple[torch.Tensor, torch.Tensor, bool]:
        cfg = self.config
        if cfg.refresh_every > 1:
            if step is None:
                raise HumanSDError("heatmap loss: refresh_every > 1 needs the training step")
            if self._cache is not None and 0 <= step - self._cache[0] < cfg.refresh_every \
                    and self._cache[1].shape[0] == diff.shape[0] and self._cache[1].shape[-2:] == diff.shape[-2:]:
                return self._cache[1], self._cache[2], False
        b, _, h, w = diff.shape
        f = self.latent_factor
        pixel_size = (h * f, w * f)
        if not self.estimator.needs_images:  # it reads only the size: no decoding, full size (it costs little)
            mask = self._pixel_mask(diff.new_zeros(1, 1, 1, 1).expand(b, 3, *pixel_size), poses, pixel_size)
        elif cfg.decoder == "distilled":
            mask = self._distilled_mask(diff, pixel_size)
        else:
            mask = self._pixel_mask(self.decoder(diff)(diff), poses, pixel_size)
        coverage = mask.mean(dim=(1, 2, 3))
        if cfg.mask_to_latent == "area":
            latent_mask = F.interpolate(mask, size=(h, w), mode="area")
        else:
            latent_mask = self.vae.encode(mask.expand(-1, 3, -1, -1)).float() * self.scale_factor
        weight = 1.0 + cfg.weight * latent_mask
        if cfg.refresh_every > 1:
            self._cache = (int(step), weight, coverage)  # type: ignore[arg-type]
        return weight, coverage, True

    # -- reference form ----------------------------------------------------------------------------

    def _reference_weight(self, diff: torch.Tensor, poses: Sequence[PoseSet] | None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(1 + w·E [B,4,h,w], coverage [B])`` exactly as the reference computes ``E``."""
        cfg = self.config
        image = self.full_decoder(diff)  # [B,3,H,W] in [0,1]
        heat = self.estimator(image, poses).float()  # [B,17,h',w']
        found = heat > cfg.threshold
        coverage = found.any(dim=1).float().mean(dim=(1, 2))
        joint_count = torch.where(found, 0.0, 1.0).sum(dim=1, keepdim=True).repeat(1, 3, 1, 1)
        weight_image = F.interpolate(joint_count, size=image.shape[-2:], mode="bicubic", align_corners=False)
        mean, logvar = self.vae.encode_dist(weight_image)
        noise = torch.randn(mean.shape, generator=self.generator, device=mean.device, dtype=mean.dtype)
        encoded = (mean + torch.exp(0.5 * logvar) * noise).float() * self.scale_factor
        return 1.0 + cfg.weight * encoded, coverage
