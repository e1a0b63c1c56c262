"""A small conv net that maps the latent noise difference straight to joint heatmaps, distilled from the full path.

The heatmap-guided loss needs ``heatmaps = estimator(VAE.decode(ε̂ − ε))`` every step.
The full VAE decode costs more than the training step itself on small models, and a
linear latent→RGB map misses what the estimator keys on: the VAE decoder's GroupNorms
rescale a small latent (high noise levels, where ``ε̂ − ε`` is small) back to a
full-contrast image, whose fine structure makes the estimator fire. A
:class:`LatentHeatmapNet` learns the whole path ``latent → decode → estimator`` at
latent resolution instead: model-space latents ``[B, C, h, w]`` → heatmap logits
``[B, K, h, w]``. It has GroupNorm (the decoder's scale behaviour) and a few dilated
residual 3x3 convolutions (receptive field ±9 latent cells with the default
dilations), and costs less than the estimator alone (no decode at all).

:func:`fit_distilled_estimator` trains it on latents like the ones the loss will
see (``ε̂ − ε`` of the model being trained, at training timesteps) against the
teacher's heatmaps (:func:`teacher_heatmaps`: full VAE decode, the estimator at full
image size, the maps resized to latent size), with binary cross-entropy on the soft
heatmaps. Weights are safetensors with the :class:`DistilledConfig` and what it was
distilled from (:func:`~humansd_core.models.weights_digest.weights_digest` of the VAE
decoder and of the estimator's network) in the metadata.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ..assets import shipped_weights
from ..errors import CheckpointError, HumanSDError
from ..fileio import atomic_path
from ..models.weights_digest import weights_digest
from ..pose.heatmaps import HeatmapEstimator
from .latent_decoders import FullVAEDecoder
from .lr_schedule import lr_factor

logger = logging.getLogger(__name__)

METADATA_KEY = "humansd_distilled_estimator"
SHIPPED = "distilled_loss.safetensors"  # distilled from the embedded model's VAE and the bundled "loss" estimator


@dataclass(frozen=True)
class DistilledConfig:
    """Architecture: ``latent_channels`` in, ``joints`` heatmaps out, ``width`` channels, one block per dilation."""

    latent_channels: int = 4
    joints: int = 17
    width: int = 48
    dilations: tuple[int, ...] = (1, 2, 4, 1)
    groups: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))
        if (self.latent_channels < 1 or self.joints < 1 or self.width < 1 or self.groups < 1
                or self.width % self.groups or not all(d >= 1 for d in self.dilations)):
            raise HumanSDError(f"distilled estimator config: unsupported {self!r} (positive sizes, width a "
                               f"multiple of groups, dilations >= 1)")


class _Block(nn.Module):
    def __init__(self, width: int, dilation: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)
        self.norm = nn.GroupNorm(groups, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.silu(self.norm(self.conv(x)))


class LatentHeatmapNet(nn.Module):
    """``latents [B, C, h, w]`` (model space) → heatmap logits ``[B, K, h, w]``."""

    def __init__(self, config: DistilledConfig = DistilledConfig()) -> None:
        super().__init__()
        c = config.width
        self.stem = nn.Sequential(nn.Conv2d(config.latent_channels, c, 3, padding=1), nn.GroupNorm(config.groups, c),
                                  nn.SiLU())
        self.blocks = nn.Sequential(*[_Block(c, d, config.groups) for d in config.dilations])
        self.head = nn.Conv2d(c, config.joints, 1)
        nn.init.constant_(self.head.bias, -4.0)  # start near an empty map (sigmoid(-4) ≈ 0.018)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(latents)))


class DistilledHeatmapEstimator:
    """``estimator(latents [B,C,h,w]) -> heatmaps [B,K,h,w]`` in ``[0,1]`` (eval mode, no grad, fp32).

    ``source``: what it was distilled from (``{"vae": sha256, "estimator": sha256}``,
    see :func:`distillation_source`), so a caller can tell whether it fits its models.
    """

    def __init__(self, network: LatentHeatmapNet, config: DistilledConfig, source: dict[str, str] | None = None
                 ) -> None:
        self.network = network.eval().requires_grad_(False)
        self.config = config
        self.source = dict(source or {})

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        if latents.ndim != 4 or latents.shape[1] != self.config.latent_channels:
            raise HumanSDError(f"distilled estimator input: expected latents [B,{self.config.latent_channels},h,w], "
                               f"got {list(latents.shape)}")
        param = next(self.network.parameters())
        return torch.sigmoid(self.network(latents.to(param.device, param.dtype))).float().to(latents.device)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The network's tensors (CPU, contiguous), as saved."""
        return {k: v.detach().contiguous().cpu() for k, v in self.network.state_dict().items()}

    def metadata(self) -> dict[str, str]:
        return {METADATA_KEY: json.dumps({"config": asdict(self.config), "source": self.source})}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str],
                   device: str | torch.device = "cpu") -> DistilledHeatmapEstimator:
        """Rebuild from :meth:`state_tensors` + :meth:`metadata` (``CheckpointError`` when they do not fit)."""
        if METADATA_KEY not in metadata:
            raise CheckpointError(f"not a distilled estimator (no {METADATA_KEY!r} metadata)")
        try:
            meta = json.loads(metadata[METADATA_KEY])
            config = DistilledConfig(**meta["config"])
            source = {str(k): str(v) for k, v in meta.get("source", {}).items()}
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"bad {METADATA_KEY!r} metadata: {exc}") from None
        network = LatentHeatmapNet(config)
        try:
            network.load_state_dict(tensors)
        except RuntimeError as exc:
            raise CheckpointError(f"distilled estimator weights do not fit {config}: {exc}") from None
        return cls(network.to(device, torch.float32), config, source)

    def save(self, path: str | os.PathLike[str], half: bool = False) -> None:
        """Write safetensors (fp16 when ``half``) atomically."""
        tensors = self.state_tensors()
        if half:
            tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=self.metadata())

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> DistilledHeatmapEstimator:
        """Load a file written by :meth:`save` (safetensors only), as fp32."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such distilled estimator file")
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = {k: v.float() for k, v in load_file(str(path)).items()}
        try:
            return cls.from_state(tensors, metadata, device)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None


def shipped_distilled(device: str | torch.device = "cpu") -> DistilledHeatmapEstimator:
    """The bundled net, distilled from the embedded tiny HumanSD's VAE and predictions and the "loss" estimator."""
    return DistilledHeatmapEstimator.from_file(shipped_weights(SHIPPED), device)


def _network(estimator: object) -> nn.Module | None:
    """The torch network behind an estimator wrapper (an OpenPose detector's or a tiny estimator's), if any."""
    for attr in ("detector", "network"):
        estimator = getattr(estimator, attr, estimator)
    return estimator if isinstance(estimator, nn.Module) else None


def distillation_source(vae: nn.Module, estimator: HeatmapEstimator) -> dict[str, str]:
    """``{"vae": digest of the VAE's decoder side, "estimator": digest of its network}``: what a student is tied to.

    Digests are :func:`~humansd_core.models.weights_digest.weights_digest`; an estimator
    without a network (the keypoint Gaussians) gives ``""``.
    """
    network = _network(estimator)
    decoder = getattr(vae, "decoder", vae)
    return {"vae": weights_digest(decoder), "estimator": weights_digest(network) if network is not None else ""}


@torch.no_grad()
def teacher_heatmaps(full: FullVAEDecoder, estimator: HeatmapEstimator, latents: torch.Tensor,
                     batch_size: int = 16) -> torch.Tensor:
    """The full path's heatmaps at latent size: ``estimator(full(latents))`` → ``[N, K, h, w]`` in ``[0, 1]``.

    The estimator sees the full-size decode (``8h x 8w``); its maps are resized to
    ``h x w`` (bilinear, antialiased when shrinking).
    """
    if not estimator.needs_images:
        raise HumanSDError("distillation needs an image-reading estimator (this one ignores the image)")
    size = tuple(latents.shape[-2:])
    return torch.cat([at_size(estimator(full(latents[start:start + batch_size])), size)
                      for start in range(0, latents.shape[0], batch_size)])


def at_size(heatmaps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``heatmaps [B,K,h',w']`` resized to ``size`` (bilinear, antialiased when shrinking), float32."""
    heatmaps = heatmaps.float()
    if tuple(heatmaps.shape[-2:]) == tuple(size):
        return heatmaps
    return F.interpolate(heatmaps, size=tuple(size), mode="bilinear", align_corners=False,
                         antialias=heatmaps.shape[-2] > size[0])


def fit_distilled_estimator(latents: torch.Tensor, targets: torch.Tensor, config: DistilledConfig | None = None,
                            steps: int = 1500, batch_size: int = 32, lr: float = 3e-3, seed: int = 0,
                            source: dict[str, str] | None = None) -> DistilledHeatmapEstimator:
    """Train a :class:`LatentHeatmapNet` to map ``latents [N,C,h,w]`` to ``targets [N,K,h,w]`` (teacher heatmaps).

    Adam with a cosine-decayed ``lr`` (:func:`~.lr_schedule.lr_factor`, no warm-up), ``steps``
    minibatches of ``batch_size`` drawn with replacement (``seed``), binary cross-entropy against the soft maps. Runs on
    the latents' device; gradients are enabled inside even if the caller disabled them.
    ``config``: default :class:`DistilledConfig` with ``C`` and ``K`` taken from the data.
    """
    if latents.ndim != 4 or targets.ndim != 4 or latents.shape[0] != targets.shape[0] \
            or latents.shape[-2:] != targets.shape[-2:]:
        raise HumanSDError(f"fit_distilled_estimator: latents {list(latents.shape)} and targets "
                           f"{list(targets.shape)} must be [N,C,h,w] and [N,K,h,w] of one N, h, w")
    if steps < 1 or batch_size < 1 or latents.shape[0] < 1:
        raise HumanSDError(f"fit_distilled_estimator: need steps, batch_size and samples >= 1, got "
                           f"{steps}, {batch_size}, {latents.shape[0]}")
    config = config or DistilledConfig(latent_channels=latents.shape[1], joints=targets.shape[1])
    if (config.latent_channels, config.joints) != (latents.shape[1], targets.shape[1]):
        raise HumanSDError(f"fit_distilled_estimator: config expects {config.latent_channels} latent channels and "
                           f"{config.joints} maps, data has {latents.shape[1]} and {targets.shape[1]}")
    device = latents.device
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = LatentHeatmapNet(config).to(device)
    x, y = latents.detach().float(), targets.detach().float().clamp(0.0, 1.0)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    with torch.enable_grad():
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_factor(step, 0, steps)
            index = torch.randint(0, x.shape[0], (batch_size,), generator=generator).to(device)
            loss = F.binary_cross_entropy_with_logits(network(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    logger.info("distilled heatmap estimator: %d samples, %d steps, last BCE %.4f", x.shape[0], steps, loss.item())
    return DistilledHeatmapEstimator(network, config, source)


def distillation_error(student: DistilledHeatmapEstimator, latents: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean binary cross-entropy of the student's maps against ``targets`` (held-out check)."""
    with torch.no_grad():
        pred = student(latents).clamp(1e-6, 1 - 1e-6)
        return float(F.binary_cross_entropy(pred, targets.float().clamp(0.0, 1.0)))
