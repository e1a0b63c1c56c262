"""The discrete DDPM noise schedule of Stable Diffusion 2.1 and sigma schedules over it.

Samplers work in the "sigma" (variance-exploding) parametrisation: for a DDPM latent
``z_t = sqrt(a_t) z_0 + sqrt(1 - a_t) eps`` (``a_t`` = alphas_cumprod[t]) the sampler's
variable is ``x = z_t / sqrt(a_t) = z_0 + sigma_t eps`` with
``sigma_t = sqrt((1 - a_t) / a_t)``. A sigma between two grid values maps to a
fractional timestep by linear interpolation of ``log sigma``.
"""
from __future__ import annotations

import torch

from ..errors import HumanSDError

NUM_TIMESTEPS = 1000
BETA_START = 0.00085
BETA_END = 0.012


class NoiseSchedule:
    """SD's "scaled linear" schedule: ``betas = linspace(sqrt(b0), sqrt(b1), T) ** 2``.

    Attributes (float64, CPU, index = DDPM timestep 0..T-1):
        betas, alphas_cumprod: ``[T]``.
        sigmas: ``[T]`` increasing, ``sqrt((1 - alphas_cumprod) / alphas_cumprod)``
            (about 0.0292 at t=0 and 14.61 at t=999 for SD).
        log_sigmas: ``[T]``.
    """

    def __init__(self, num_timesteps: int = NUM_TIMESTEPS, beta_start: float = BETA_START,
                 beta_end: float = BETA_END) -> None:
        self.num_timesteps = num_timesteps
        self.betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float64) ** 2
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)
        self.sigmas = ((1.0 - self.alphas_cumprod) / self.alphas_cumprod).sqrt()
        self.log_sigmas = self.sigmas.log()

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional DDPM timesteps for ``sigma`` (any shape), clamped to ``[0, T-1]``.

        Exact grid sigmas give whole timesteps; between grid points ``log sigma`` is
        interpolated linearly. Returned in ``sigma``'s dtype and device.
        """
        log_sigmas = self.log_sigmas.to(sigma.device)
        log_s = sigma.detach().to(torch.float64).clamp_min(1e-30).log()
        hi = torch.searchsorted(log_sigmas, log_s.reshape(-1).contiguous()).clamp(1, self.num_timesteps - 1)
        lo = hi - 1
        w = ((log_s.reshape(-1) - log_sigmas[lo]) / (log_sigmas[hi] - log_sigmas[lo])).clamp(0.0, 1.0)
        return (lo.to(torch.float64) + w).reshape(sigma.shape).to(sigma.dtype)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Sigmas for (possibly fractional) timesteps ``t`` in ``[0, T-1]``; inverse of :meth:`sigma_to_t`."""
        t64 = t.detach().to(torch.float64).clamp(0, self.num_timesteps - 1)
        log_sigmas = self.log_sigmas.to(t.device)
        lo = t64.floor().long()
        hi = t64.ceil().long()
        w = t64 - lo
        log_s = (1.0 - w) * log_sigmas[lo] + w * log_sigmas[hi]
        dtype = t.dtype if t.is_floating_point() else torch.float32
        return log_s.exp().to(dtype)


def uniform_timesteps(steps: int, num_timesteps: int = NUM_TIMESTEPS) -> list[int]:
    """The reference DDIM timesteps, decreasing: ``(i * (T // steps) + 1 for i < steps)`` reversed.

    For 50 steps: 981, 961, ..., 21, 1 (the LDM "uniform" discretisation, diffusers'
    "leading" spacing with ``steps_offset=1``). Unlike LDM, exactly ``steps`` timesteps
    are returned when ``steps`` does not divide ``T`` (LDM returns one more).
    """
    if not 1 <= steps <= num_timesteps - 1:
        raise HumanSDError(f"steps: expected 1..{num_timesteps - 1}, got {steps}")
    stride = num_timesteps // steps
    return [i * stride + 1 for i in range(steps)][::-1]


def uniform_sigmas(schedule: NoiseSchedule, steps: int, final_sigma: float = 0.0) -> torch.Tensor:
    """Sigmas ``[steps + 1]`` (float32, decreasing): the grid sigmas of :func:`uniform_timesteps`
    followed by ``final_sigma``.

    ``final_sigma = 0`` (default) ends fully denoised. The reference DDIM instead ends
    its last step at ``alphas_cumprod[0]``, i.e. ``final_sigma = schedule.sigma_min``
    (about 0.029), and decodes ``z = x / sqrt(1 + sigma_min**2)``; the difference in the
    result is below the VAE's precision.
    """
    ts = torch.tensor(uniform_timesteps(steps, schedule.num_timesteps))
    sig = schedule.sigmas[ts]
    return torch.cat([sig, sig.new_tensor([final_sigma])]).to(torch.float32)


def karras_sigmas(schedule: NoiseSchedule, steps: int, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022) sigmas ``[steps + 1]`` from ``sigma_max`` to ``sigma_min``, then 0."""
    if steps < 1:
        raise HumanSDError(f"steps: expected at least 1, got {steps}")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    lo, hi = schedule.sigma_min ** (1 / rho), schedule.sigma_max ** (1 / rho)
    sig = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sig, sig.new_zeros(1)]).to(torch.float32)


SCHEDULES = {"uniform": uniform_sigmas, "karras": karras_sigmas}


def get_sigmas(schedule: NoiseSchedule, steps: int, kind: str = "uniform") -> torch.Tensor:
    """Sigmas ``[steps + 1]`` for a schedule named in :data:`SCHEDULES`."""
    try:
        make = SCHEDULES[kind]
    except KeyError:
        raise HumanSDError(f"schedule: unknown {kind!r}; choose one of {sorted(SCHEDULES)}") from None
    return make(schedule, steps)
