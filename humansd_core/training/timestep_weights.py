"""Per-timestep loss weights that give the noisiest steps the weight of their image error.

With ε-prediction, an error ``δ`` in the predicted clean latent ``x̂0`` costs only
``√(SNR(t))·δ`` in the noise error, ``SNR(t) = ᾱ_t / (1 − ᾱ_t)``: at t = 999 of SD's schedule
about ``0.07·δ``. Those are the steps that decide an image's layout and colours from the
text, so a plain ε-loss hardly teaches them. Weighting a sample by ``1/SNR(t)`` turns its
ε-loss into the x0-loss; clamped to ``[1, cap]`` the low-noise steps keep weight 1 and the
noisiest get at most ``cap``. The weights are divided by their mean over all timesteps,
so the loss keeps its scale (and gradient clipping its meaning).
"""
from __future__ import annotations

import torch


def high_noise_weights(alphas_cumprod: torch.Tensor, cap: float) -> torch.Tensor | None:
    """The weight ``[T]`` of every timestep (mean 1), or None when ``cap <= 1``; index it with a batch's ``t``.

    ``alphas_cumprod [T]`` is the noise schedule's ``ᾱ`` in (0, 1).
    """
    if cap <= 1.0:
        return None
    per_step = ((1.0 - alphas_cumprod) / alphas_cumprod).clamp(1.0, cap)
    return per_step / per_step.mean()
