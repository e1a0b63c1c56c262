"""Noise schedule, samplers (k-diffusion style functions), pose-concat CFG denoiser.

See :mod:`.samplers` for the one sampler signature and :mod:`.noise` for the seed rule.
"""
from .guidance import CFGDenoiser, EpsDenoiser
from .noise import BatchNoise, batch_seeds
from .sample import sample_latents, strength_sigmas
from .samplers import (
    SAMPLERS,
    ancestral_step,
    sample_ddim,
    sample_dpmpp_2m,
    sample_euler,
    sample_euler_ancestral,
)
from .schedule import SCHEDULES, NoiseSchedule, get_sigmas, karras_sigmas, uniform_sigmas, uniform_timesteps

__all__ = [
    "SAMPLERS", "SCHEDULES", "BatchNoise", "CFGDenoiser", "EpsDenoiser", "NoiseSchedule", "ancestral_step",
    "batch_seeds", "get_sigmas", "karras_sigmas", "sample_ddim", "sample_dpmpp_2m", "sample_euler",
    "sample_euler_ancestral", "sample_latents", "strength_sigmas", "uniform_sigmas", "uniform_timesteps",
]
