"""Ways to turn the latent noise difference ``ε̂ − ε`` into an RGB image for a pose estimator.

Every decoder maps a model-space latent ``[B, 4, h, w]`` (the UNet's output space,
i.e. VAE latents × ``scale_factor``) to an image ``[B, 3, H', W']`` in ``[0, 1]``,
without gradient. They trade fidelity for cost:

* :class:`FullVAEDecoder`: the VAE decoder, ``H' = 8h`` (what the reference does:
  ``clamp((decode(z / 0.18215) + 1) / 2, 0, 1)``).
* :class:`ReducedVAEDecoder`: the VAE decoder on the latent area-pooled by
  ``factor``, ``H' = 8h / factor`` (≈ ``factor²`` cheaper).
* :class:`LinearLatentDecoder`: a fitted 1x1 conv (4 → 3 plus bias), ``H' = h``; its
  cost is negligible. Fit it with :func:`fit_linear_decoder` on latents like the
  ones it will see (least squares against the full decoder's output pooled to
  latent resolution).

The loss's default skips the image altogether: :mod:`.distilled_heatmaps` maps the latent
straight to the heatmaps that the full decoder + estimator give.
"""
from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import HumanSDError


class LatentDecoder(Protocol):
    """``latents [B, 4, h, w]`` (model space) → images ``[B, 3, H', W']`` in ``[0, 1]``."""

    def __call__(self, latents: torch.Tensor) -> torch.Tensor: ...


class FullVAEDecoder:
    """The VAE decoder: ``[B,4,h,w]`` → ``[B,3,8h,8w]`` in ``[0,1]`` (``8`` = the VAE's factor)."""

    def __init__(self, vae: nn.Module, scale_factor: float) -> None:
        self.vae = vae
        self.scale_factor = float(scale_factor)

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        images = self.vae.decode(latents / self.scale_factor).float()
        return ((images + 1.0) / 2.0).clamp_(0.0, 1.0)


class ReducedVAEDecoder:
    """The VAE decoder after area-pooling the latent by ``factor``: ``[B,4,h,w]`` → ``[B,3,8h/f,8w/f]``."""

    def __init__(self, vae: nn.Module, scale_factor: float, factor: int = 2) -> None:
        if factor < 1:
            raise HumanSDError(f"reduced decoder factor must be >= 1, got {factor}")
        self.full = FullVAEDecoder(vae, scale_factor)
        self.factor = int(factor)

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        h, w = latents.shape[-2:]
        small = F.interpolate(latents, size=(max(1, h // self.factor), max(1, w // self.factor)), mode="area")
        return self.full(small)


class LinearLatentDecoder(nn.Module):
    """Per-pixel affine map latent → RGB: ``[B,4,h,w]`` → ``[B,3,h,w]`` in ``[0,1]``.

    Buffers ``weight [3, 4]`` and ``bias [3]`` act on model-space latents.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        if weight.ndim != 2 or weight.shape[0] != 3 or bias.shape != (3,):
            raise HumanSDError(f"linear decoder: expected weight [3, C] and bias [3], got "
                               f"{list(weight.shape)} and {list(bias.shape)}")
        self.register_buffer("weight", weight.detach().float().clone())
        self.register_buffer("bias", bias.detach().float().clone())

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        w = self.weight.to(latents.device)
        rgb = torch.einsum("oc,bchw->bohw", w, latents.float()) + self.bias.to(latents.device)[None, :, None, None]
        return rgb.clamp_(0.0, 1.0)


@torch.no_grad()
def fit_linear_decoder(full: FullVAEDecoder, latents: torch.Tensor) -> LinearLatentDecoder:
    """Least-squares fit of :class:`LinearLatentDecoder` to ``full`` on ``latents [N,4,h,w]``.

    The target is ``full(latents)`` (in ``[0, 1]``) area-pooled to ``h x w``; the fit
    costs one full decode of ``latents``. Raises :class:`HumanSDError` if the
    latents are too few to determine the map (fewer pixels than 5).
    """
    n, c, h, w = latents.shape
    if n * h * w <= c:
        raise HumanSDError(f"fit_linear_decoder: need more than {c} latent pixels, got {n * h * w}")
    target = F.interpolate(full(latents), size=(h, w), mode="area")
    x = latents.float().permute(0, 2, 3, 1).reshape(-1, c)
    x = torch.cat([x, torch.ones(x.shape[0], 1, device=x.device)], dim=1)
    y = target.permute(0, 2, 3, 1).reshape(-1, 3)
    solution = torch.linalg.lstsq(x.cpu().double(), y.cpu().double()).solution  # [c+1, 3]
    return LinearLatentDecoder(solution[:c].T.float(), solution[c].float()).to(latents.device)
