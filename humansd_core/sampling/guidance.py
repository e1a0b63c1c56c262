"""Denoisers over an 8-channel HumanSD UNet: epsilon -> denoised, pose concat, CFG.

The UNet seam is ``unet(x_in [B,8,h,w], t [B], context [B,77,C]) -> eps [B,4,h,w]``
with ``x_in = cat([z_t, pose_latent], 1)`` and ``t`` the (fractional) DDPM timestep.
ComfyUI's ``model.model.diffusion_model`` has the same call shape.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .schedule import NoiseSchedule

UNetFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class EpsDenoiser:
    """Wrap an epsilon-prediction UNet as ``denoiser(x, sigma, context, pose_latent) -> denoised``.

    ``x`` ``[B,4,h,w]`` is in the sigma parametrisation; the UNet sees
    ``z = x / sqrt(sigma**2 + 1)`` concatenated with ``pose_latent`` ``[B,4,h,w]`` (already
    × scale factor) at timestep ``t(sigma)``, and the result is ``x - sigma * eps``.
    The UNet runs in ``dtype`` (its parameters' dtype when it has any); the result is
    returned in ``x``'s dtype.
    """

    def __init__(self, unet: UNetFn, schedule: NoiseSchedule | None = None, dtype: torch.dtype | None = None) -> None:
        self.unet = unet
        self.schedule = schedule or NoiseSchedule()
        if dtype is None and isinstance(unet, torch.nn.Module):
            dtype = next((p.dtype for p in unet.parameters()), None)
        self.dtype = dtype

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, *, context: torch.Tensor,
                 pose_latent: torch.Tensor) -> torch.Tensor:
        sig = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        z = x / (sig**2 + 1).sqrt()
        x_in = torch.cat([z, pose_latent.to(x.dtype)], dim=1)
        dtype = self.dtype or x.dtype
        t = self.schedule.sigma_to_t(sigma)
        eps = self.unet(x_in.to(dtype), t, context.to(dtype))
        return x - sig * eps.to(x.dtype)


class CFGDenoiser:
    """Classifier-free guidance: ``uncond + cfg * (cond - uncond)`` on the denoised estimate.

    Both branches get the SAME pose latent; only the text context differs (the
    negative prompt's for the unconditional branch). They run as one batched call of
    ``2B`` (unconditional first). With ``cfg == 1`` or no ``uncond_context`` only the
    conditional branch runs.
    """

    def __init__(self, denoiser: EpsDenoiser, cfg: float) -> None:
        self.denoiser = denoiser
        self.cfg = float(cfg)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, *, context: torch.Tensor, pose_latent: torch.Tensor,
                 uncond_context: torch.Tensor | None = None) -> torch.Tensor:
        if uncond_context is None or self.cfg == 1.0:
            return self.denoiser(x, sigma, context=context, pose_latent=pose_latent)
        both = self.denoiser(
            torch.cat([x, x]), torch.cat([sigma, sigma]),
            context=torch.cat([uncond_context, context]), pose_latent=torch.cat([pose_latent, pose_latent]),
        )
        uncond, cond = both.chunk(2)
        return uncond + self.cfg * (cond - uncond)
