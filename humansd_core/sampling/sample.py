"""One call from (UNet, pose latent, text contexts) to sampled latents: txt2img and img2img."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .. import defaults
from ..errors import HumanSDError
from .guidance import CFGDenoiser, EpsDenoiser, UNetFn
from .noise import BatchNoise
from .samplers import SAMPLERS, STOCHASTIC
from .schedule import NoiseSchedule, get_sigmas


def strength_sigmas(sigmas: torch.Tensor, strength: float) -> torch.Tensor:
    """The tail of ``sigmas`` ``[N+1]`` run at img2img ``strength`` in ``[0, 1]``.

    ``k = floor(strength * N)`` steps are run: the first ``N - k`` are skipped, and the
    init latent is noised to the first sigma that remains. ``strength = 1`` runs all
    ``N`` steps (the reference runs ``N - 1`` from t=961 at strength 1 and noises to one
    grid step above where it starts at lower strengths; we reproduce neither quirk);
    ``strength = 0`` runs none (returns ``sigmas[-1:]``).
    """
    if not 0.0 <= strength <= 1.0:
        raise HumanSDError(f"strength: expected a value in [0, 1], got {strength}")
    steps = len(sigmas) - 1
    k = min(steps, math.floor(strength * steps + 1e-6))
    return sigmas[steps - k:]


@torch.no_grad()
def sample_latents(
    unet: UNetFn,
    pose_latent: torch.Tensor,
    context: torch.Tensor,
    uncond_context: torch.Tensor | None,
    *,
    seeds: Sequence[int],
    sampler: str = defaults.SAMPLER,
    steps: int = defaults.STEPS,
    cfg: float = defaults.CFG,
    eta: float | None = None,
    schedule: str = defaults.SCHEDULE,
    strength: float = defaults.STRENGTH,
    init_latent: torch.Tensor | None = None,
    noise_schedule: NoiseSchedule | None = None,
    callback: Callable[[dict], None] | None = None,
    disable: bool | None = None,
) -> torch.Tensor:
    """Sample HumanSD latents.

    Args:
        unet: ``unet(x_in [B,8,h,w], t [B], context [B,77,C]) -> eps [B,4,h,w]``.
        pose_latent: ``[B,4,h,w]``, ``vae.encode(skeleton * 2 - 1) * scale_factor``.
        context, uncond_context: ``[B,77,C]`` prompt / negative prompt embeddings
            (``uncond_context`` may be None: no guidance).
        seeds: one per image (see :mod:`.noise` for the rule).
        sampler: a name in :data:`SAMPLERS`; ``eta`` applies to the stochastic ones
            (None: the sampler's default, 0 for DDIM as in the reference, 1 for Euler
            ancestral).
        schedule: ``"uniform"`` (the reference DDIM timesteps) or ``"karras"``.
        strength, init_latent: img2img; ``init_latent`` ``[B,4,h,w]`` (scaled, like
            ``pose_latent``) is noised to the first sigma run (:func:`strength_sigmas`).
            Strength 1 starts from pure noise and ignores ``init_latent``.
        callback: called after each step with the sampler's ``info`` dict plus
            ``"total"`` (the number of steps run).

    Returns:
        Latents ``[B,4,h,w]`` (scaled; divide by the scale factor before decoding),
        float32.
    """
    if sampler not in SAMPLERS:
        raise HumanSDError(f"sampler: unknown {sampler!r}; choose one of {sorted(SAMPLERS)}")
    batch = pose_latent.shape[0]
    if len(seeds) != batch or context.shape[0] != batch:
        raise HumanSDError(f"batch mismatch: {batch} pose latents, {context.shape[0]} contexts, {len(seeds)} seeds")
    if strength < 1.0 and init_latent is None:
        raise HumanSDError(f"strength {strength} < 1 needs init images (img2img)")
    noise_schedule = noise_schedule or NoiseSchedule()
    sigmas = strength_sigmas(get_sigmas(noise_schedule, steps, schedule), strength).to(pose_latent.device)
    noise = BatchNoise(seeds, pose_latent.shape[1:], pose_latent.device)
    first = noise()
    if len(sigmas) == 1:
        assert init_latent is not None
        return init_latent.to(torch.float32).clone()
    if init_latent is None or len(sigmas) == steps + 1:
        x = first * math.sqrt(1.0 + float(sigmas[0]) ** 2)
    else:
        x = init_latent.to(torch.float32) + first * sigmas[0]

    model = CFGDenoiser(EpsDenoiser(unet, noise_schedule), cfg)
    extra_args = {"context": context, "pose_latent": pose_latent,
                  "uncond_context": uncond_context if cfg != 1.0 else None}
    opts: dict = {}
    if sampler in STOCHASTIC:
        opts["noise_sampler"] = noise
        if eta is not None:
            opts["eta"] = eta
    elif eta:
        raise HumanSDError(f"eta: the {sampler!r} sampler is deterministic; eta must be 0 or unset, got {eta}")
    total = len(sigmas) - 1
    step_cb = None if callback is None else (lambda info: callback({**info, "total": total}))
    x = SAMPLERS[sampler](model, x, sigmas, extra_args=extra_args, callback=step_cb, disable=disable, **opts)
    return x / math.sqrt(1.0 + float(sigmas[-1]) ** 2)
