"""Samplers on an analytic toy model whose exact answer is known in closed form.

The toy data distribution is Gaussian per element, ``z0 ~ N(mu, s0**2)``, with ``mu``
given by the pose latent. Its exact epsilon predictor is written as an 8-channel
UNet (``unet(x_in, t, context) -> eps``) so the real :class:`EpsDenoiser` path (input
scaling, sigma -> t, pose concat) is exercised. The probability-flow ODE keeps
``(x - mu) / sqrt(s0**2 + sigma**2)`` constant, which gives the exact sample.
"""
from __future__ import annotations

import math

import pytest
import torch

from humansd_core.sampling import (
    SAMPLERS,
    BatchNoise,
    CFGDenoiser,
    EpsDenoiser,
    NoiseSchedule,
    karras_sigmas,
    sample_ddim,
    sample_euler_ancestral,
    uniform_sigmas,
)

NS = NoiseSchedule()


class GaussianEpsUNet:
    """Exact E[eps | z_t] for z0 ~ N(mu, s0^2), mu = pose channels (x_in[:, 4:])."""

    def __init__(self, s0: float) -> None:
        self.s0 = s0
        self.calls = 0

    def __call__(self, x_in: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        z, mu = x_in[:, :4].double(), x_in[:, 4:].double()
        a = 1.0 / (1.0 + NS.t_to_sigma(t.double()) ** 2)
        a = a.reshape(-1, 1, 1, 1)
        eps = (1 - a).sqrt() * (z - a.sqrt() * mu) / (a * self.s0**2 + 1 - a)
        return eps.to(x_in.dtype)


def _setup(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(batch, 4, 4, 4, generator=g)
    x_t = torch.randn(batch, 4, 4, 4, generator=g)
    ctx = torch.zeros(batch, 77, 8)
    return mu, x_t, ctx


def _exact(mu, x_start, sigmas, s0):
    """Exact ODE solution from sigmas[0] to the last non-zero sigma, then the final
    jump to 0 that every sampler takes as one step (x = denoised), exact here too."""
    s_first, s_last = float(sigmas[0]), float(sigmas[-2])
    x_last = mu + (x_start - mu) * math.sqrt(s0**2 + s_last**2) / math.sqrt(s0**2 + s_first**2)
    return mu + (x_last - mu) * s0**2 / (s0**2 + s_last**2)


def _run(name, unet, mu, x_t, ctx, sigmas, **opts):
    model = EpsDenoiser(unet, NS, dtype=torch.float64)
    x = x_t.double() * float(sigmas[0])
    return SAMPLERS[name](model, x, sigmas.double(), extra_args={"context": ctx, "pose_latent": mu.double()},
                          disable=True, **opts)


@pytest.mark.parametrize("steps", [1, 3, 50])
def test_ddim_eta0_reaches_a_point_distribution_exactly(steps):
    mu, x_t, ctx = _setup()
    out = _run("ddim", GaussianEpsUNet(0.0), mu, x_t, ctx, uniform_sigmas(NS, steps))
    assert torch.allclose(out, mu.double(), atol=1e-6)


@pytest.mark.parametrize("name", ["ddim", "euler", "dpmpp_2m"])
def test_ode_samplers_converge_to_the_exact_gaussian_answer(name):
    mu, x_t, ctx = _setup()
    s0 = 0.5
    errors = []
    for steps in (20, 40, 80):
        sigmas = karras_sigmas(NS, steps)
        exact = _exact(mu.double(), x_t.double() * float(sigmas[0]), sigmas, s0)
        out = _run(name, GaussianEpsUNet(s0), mu, x_t, ctx, sigmas)
        errors.append(float((out - exact).abs().max()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < (2e-3 if name == "dpmpp_2m" else 4e-2), errors
    # halving the step size: error /2 for a first-order method, /4 for a second-order one
    assert errors[1] / errors[2] > (3.5 if name == "dpmpp_2m" else 1.8), errors


def test_dpmpp_2m_is_more_accurate_than_euler():
    mu, x_t, ctx = _setup()
    sigmas = karras_sigmas(NS, 10)
    exact = _exact(mu.double(), x_t.double() * float(sigmas[0]), sigmas, 0.5)
    err = {n: float((_run(n, GaussianEpsUNet(0.5), mu, x_t, ctx, sigmas) - exact).abs().max())
           for n in ("euler", "dpmpp_2m")}
    assert err["dpmpp_2m"] < err["euler"] / 3, err


def _reference_ddim(unet, z, mu, ctx, steps, eta, gen):
    """The LDM DDIM update in z-space with integer timesteps, written from the paper."""
    ac = NS.alphas_cumprod
    ts = list(range(0, 1000, 1000 // steps))
    ts = [t + 1 for t in ts]
    a_prev_all = [float(ac[0])] + [float(ac[t]) for t in ts[:-1]]
    for index in reversed(range(len(ts))):
        t = ts[index]
        a, a_prev = float(ac[t]), a_prev_all[index]
        sig = eta * math.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
        eps = unet(torch.cat([z, mu], 1), torch.full((z.shape[0],), float(t), dtype=torch.float64), ctx)
        x0 = (z - math.sqrt(1 - a) * eps) / math.sqrt(a)
        z = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev - sig**2) * eps
        if sig > 0:
            z = z + sig * torch.randn(z.shape, generator=gen, dtype=torch.float64)
    return z


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_matches_the_reference_update_on_the_reference_grid(eta):
    mu, x_t, ctx = _setup()
    unet = GaussianEpsUNet(0.5)
    ref = _reference_ddim(unet, x_t.double(), mu.double(), ctx, 50, eta, torch.Generator().manual_seed(3))
    sigmas = uniform_sigmas(NS, 50, final_sigma=NS.sigma_min).double()
    # the sampler variable is x = z / sqrt(a): start from the same z
    x = x_t.double() * math.sqrt(1 + float(sigmas[0]) ** 2)
    gen = torch.Generator().manual_seed(3)
    ours = sample_ddim(EpsDenoiser(unet, NS, dtype=torch.float64), x, sigmas,
                       extra_args={"context": ctx, "pose_latent": mu.double()}, disable=True, eta=eta,
                       noise_sampler=lambda s, sn: torch.randn(x.shape, generator=gen, dtype=torch.float64))
    z = ours / math.sqrt(1 + NS.sigma_min**2)
    assert torch.allclose(z, ref, atol=1e-5), float((z - ref).abs().max())


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_euler_ancestral_equals_ddim_with_the_same_eta_and_noise(eta):
    mu, x_t, ctx = _setup()
    sigmas = uniform_sigmas(NS, 10).double()
    outs = []
    for sampler in (sample_ddim, sample_euler_ancestral):
        noise = BatchNoise([5, 6], (4, 4, 4), dtype=torch.float64)
        model = EpsDenoiser(GaussianEpsUNet(0.5), NS, dtype=torch.float64)
        outs.append(sampler(model, x_t.double() * 10, sigmas, extra_args={"context": ctx, "pose_latent": mu.double()},
                            disable=True, eta=eta, noise_sampler=noise))
    assert torch.allclose(outs[0], outs[1], atol=1e-6)


def test_callback_sees_every_step_and_unet_called_once_per_step():
    mu, x_t, ctx = _setup()
    seen = []
    unet = GaussianEpsUNet(0.5)
    sigmas = uniform_sigmas(NS, 7)
    SAMPLERS["dpmpp_2m"](EpsDenoiser(unet, NS), x_t * 10, sigmas, extra_args={"context": ctx, "pose_latent": mu},
                         callback=lambda info: seen.append((info["i"], float(info["sigma"]), info["denoised"].shape)),
                         disable=True)
    assert [s[0] for s in seen] == list(range(7))
    assert [s[1] for s in seen] == pytest.approx(sigmas[:-1].tolist())
    assert unet.calls == 7


def test_cfg_of_one_equals_plain_denoiser_and_cfg_extrapolates():
    mu, x_t, ctx = _setup()
    unet = GaussianEpsUNet(0.5)
    den = EpsDenoiser(unet, NS)
    sigma = torch.full((2,), 3.0)
    x = x_t * 3
    plain = den(x, sigma, context=ctx, pose_latent=mu)
    assert torch.equal(CFGDenoiser(den, 1.0)(x, sigma, context=ctx, pose_latent=mu, uncond_context=ctx + 1), plain)
    # the toy ignores text, so guidance of identical branches changes nothing
    guided = CFGDenoiser(den, 7.5)(x, sigma, context=ctx, pose_latent=mu, uncond_context=ctx + 1)
    assert torch.allclose(guided, plain, atol=1e-5)


def test_option_name_lists_match_the_registries():
    from humansd_core import defaults
    from humansd_core.sampling import SCHEDULES

    assert tuple(SAMPLERS) == defaults.SAMPLER_NAMES
    assert tuple(SCHEDULES) == defaults.SCHEDULE_NAMES
    assert defaults.SAMPLER in SAMPLERS and defaults.SCHEDULE in SCHEDULES
