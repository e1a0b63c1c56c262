"""Samplers: plain functions with one signature over a denoiser.

Every sampler is ``sampler(model, x, sigmas, extra_args=None, callback=None,
disable=None, **opts) -> x`` where

- ``model(x, sigma, **extra_args) -> denoised``: ``x`` ``[B,C,h,w]`` in the sigma
  parametrisation (``x = z_0 + sigma * eps``), ``sigma`` ``[B]``, the result an estimate
  of ``z_0`` with ``x``'s shape;
- ``x``: the starting sample at ``sigmas[0]``; ``sigmas``: ``[N+1]`` decreasing, usually
  ending at 0 (N steps);
- ``callback(info)`` runs after each step with ``info = {"x", "i", "sigma",
  "sigma_hat", "denoised"}``; ``disable`` turns the tqdm progress bar off (``None``:
  shown only when the log level is INFO or lower and stderr is a terminal);
- stochastic samplers take ``eta`` and ``noise_sampler(sigma, sigma_next) -> noise``
  (``x``'s shape; default ``torch.randn_like``), so a caller controls the randomness.

Adding a sampler is adding a function and an entry in :data:`SAMPLERS`.
"""
from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable
from typing import Any, Protocol

import torch
from tqdm.auto import trange

logger = logging.getLogger(__name__)

NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Denoiser(Protocol):
    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **extra_args: Any) -> torch.Tensor: ...


class Sampler(Protocol):
    def __call__(self, model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict | None = None,
                 callback: Callable[[dict], None] | None = None, disable: bool | None = None,
                 **opts: Any) -> torch.Tensor: ...


def _steps(sigmas: torch.Tensor, disable: bool | None) -> range:
    if disable is None:
        disable = not (logger.isEnabledFor(logging.INFO) and sys.stderr.isatty())
    return trange(len(sigmas) - 1, disable=disable, desc="sampling", unit="step")


def _default_noise(x: torch.Tensor) -> NoiseSampler:
    return lambda sigma, sigma_next: torch.randn_like(x)


def ancestral_step(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float]:
    """Split a step ``sigma -> sigma_next`` into a deterministic part down to ``sigma_down``
    and fresh noise of std ``sigma_up`` (``sigma_down**2 + sigma_up**2 = sigma_next**2``).

    ``sigma_up = min(sigma_next, eta * sigma_next * sqrt(1 - sigma_next**2 / sigma**2))``;
    for ``eta <= 1`` this is exactly DDIM's ``sigma_t(eta)`` written in sigma units.
    """
    if sigma_next == 0 or eta == 0:
        return sigma_next, 0.0
    up = min(sigma_next, eta * sigma_next * math.sqrt(max(0.0, 1.0 - sigma_next**2 / sigma**2)))
    return math.sqrt(sigma_next**2 - up**2), up


@torch.no_grad()
def sample_ddim(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict | None = None,
                callback: Callable[[dict], None] | None = None, disable: bool | None = None, *,
                eta: float = 0.0, noise_sampler: NoiseSampler | None = None) -> torch.Tensor:
    """DDIM (Song et al. 2021) written over the DDPM latent ``z = x / sqrt(1 + sigma**2)``.

    Per step, with ``a = 1/(1+sigma**2)``, ``a' = 1/(1+sigma_next**2)``:
    ``z' = sqrt(a') x0 + sqrt(1 - a' - s**2) eps + s * noise``,
    ``s = eta * sqrt((1-a')/(1-a) * (1 - a/a'))``. ``eta = 0`` is deterministic.
    On the reference's timestep grid this is the reference DDIM update.
    """
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or _default_noise(x)
    s_in = x.new_ones([x.shape[0]])
    for i in _steps(sigmas, disable):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = model(x, sigma * s_in, **extra_args)
        eps = (x - denoised) / sigma
        a, a_next = 1.0 / (1.0 + sigma**2), 1.0 / (1.0 + sigma_next**2)
        s = eta * math.sqrt(max(0.0, (1 - a_next) / (1 - a) * (1 - a / a_next)))
        z_next = math.sqrt(a_next) * denoised + math.sqrt(max(0.0, 1 - a_next - s**2)) * eps
        if s > 0:
            z_next = z_next + s * noise_sampler(sigmas[i], sigmas[i + 1])
        x = z_next / math.sqrt(a_next)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
    return x


@torch.no_grad()
def sample_euler(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict | None = None,
                 callback: Callable[[dict], None] | None = None, disable: bool | None = None) -> torch.Tensor:
    """Euler's method on the probability-flow ODE ``dx/dsigma = (x - denoised) / sigma``."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    for i in _steps(sigmas, disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        d = (x - denoised) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
    return x


@torch.no_grad()
def sample_euler_ancestral(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict | None = None,
                           callback: Callable[[dict], None] | None = None, disable: bool | None = None, *,
                           eta: float = 1.0, noise_sampler: NoiseSampler | None = None) -> torch.Tensor:
    """Euler step down to ``sigma_down``, then fresh noise of std ``sigma_up`` (:func:`ancestral_step`)."""
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or _default_noise(x)
    s_in = x.new_ones([x.shape[0]])
    for i in _steps(sigmas, disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = ancestral_step(float(sigmas[i]), float(sigmas[i + 1]), eta)
        d = (x - denoised) / sigmas[i]
        x = x + d * (sigma_down - sigmas[i])
        if sigma_up > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigma_up
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
    return x


@torch.no_grad()
def sample_dpmpp_2m(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict | None = None,
                    callback: Callable[[dict], None] | None = None, disable: bool | None = None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022): second-order multistep in ``lambda = -log sigma``.

    The first step and a step to sigma 0 are first order (the DDIM step).
    """
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    old_denoised: torch.Tensor | None = None
    for i in _steps(sigmas, disable):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * s_in, **extra_args)
        if sigma_next == 0:
            x = denoised
        else:
            h = float(sigma.log() - sigma_next.log())
            if old_denoised is None:
                d = denoised
            else:
                r = float(sigmas[i - 1].log() - sigma.log()) / h
                d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_next / sigma) * x - math.expm1(-h) * d
        old_denoised = denoised
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
    return x


SAMPLERS: dict[str, Sampler] = {
    "ddim": sample_ddim,
    "euler": sample_euler,
    "euler_ancestral": sample_euler_ancestral,
    "dpmpp_2m": sample_dpmpp_2m,
}
STOCHASTIC = frozenset({"ddim", "euler_ancestral"})
