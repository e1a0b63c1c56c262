"""Noise schedule, timestep <-> sigma conversion and sigma schedules."""
from __future__ import annotations

import math

import pytest
import torch

from humansd_core.errors import HumanSDError
from humansd_core.sampling import (
    NoiseSchedule,
    get_sigmas,
    karras_sigmas,
    strength_sigmas,
    uniform_sigmas,
    uniform_timesteps,
)


@pytest.fixture(scope="module")
def ns() -> NoiseSchedule:
    return NoiseSchedule()


def test_scaled_linear_betas_and_sigmas(ns):
    assert ns.betas.shape == (1000,)
    assert float(ns.betas[0]) == pytest.approx(0.00085, rel=1e-12)
    assert float(ns.betas[-1]) == pytest.approx(0.012, rel=1e-12)
    # middle beta is the square of the midpoint of the square roots, not the linear midpoint
    mid = (math.sqrt(0.00085) + math.sqrt(0.012)) / 2
    betas_499_500 = (float(ns.betas[499]) ** 0.5 + float(ns.betas[500]) ** 0.5) / 2
    assert betas_499_500 == pytest.approx(mid, rel=1e-9)
    a0 = 1 - 0.00085
    assert float(ns.sigmas[0]) == pytest.approx(math.sqrt((1 - a0) / a0), rel=1e-12)
    assert ns.sigma_min == pytest.approx(0.02916, abs=1e-4)
    assert ns.sigma_max == pytest.approx(14.6146, abs=1e-3)
    assert torch.all(ns.sigmas[1:] > ns.sigmas[:-1])


def test_sigma_to_t_on_grid_and_roundtrip(ns):
    t = torch.tensor([0, 1, 21, 500, 961, 999])
    assert torch.allclose(ns.sigma_to_t(ns.sigmas[t]), t.double(), atol=1e-9)
    frac = torch.tensor([0.25, 10.5, 480.9, 998.75], dtype=torch.float64)
    assert torch.allclose(ns.sigma_to_t(ns.t_to_sigma(frac)), frac, atol=1e-9)
    # log-linear between grid points: the geometric mean of two neighbours sits half way
    mid = (ns.sigmas[300] * ns.sigmas[301]).sqrt()
    assert float(ns.sigma_to_t(mid)) == pytest.approx(300.5, abs=1e-9)


def test_sigma_to_t_clamps_and_keeps_dtype_device(ns):
    s = torch.tensor([1e-5, 100.0], dtype=torch.float32)
    t = ns.sigma_to_t(s)
    assert t.dtype == torch.float32
    assert t.tolist() == [0.0, 999.0]
    assert ns.sigma_to_t(torch.tensor(1.0)).shape == ()


def test_uniform_timesteps_match_reference_ddim(ns):
    assert uniform_timesteps(50) == list(range(981, 0, -20))
    assert uniform_timesteps(50)[1] == 961
    assert len(uniform_timesteps(30)) == 30  # LDM would give 31
    sig = uniform_sigmas(ns, 50)
    assert sig.shape == (51,) and float(sig[-1]) == 0.0
    assert float(sig[0]) == pytest.approx(float(ns.sigmas[981]), rel=1e-6)
    assert float(uniform_sigmas(ns, 50, final_sigma=ns.sigma_min)[-1]) == pytest.approx(ns.sigma_min)
    with pytest.raises(HumanSDError, match="steps"):
        uniform_timesteps(0)


def test_karras_sigmas(ns):
    sig = karras_sigmas(ns, 10)
    assert sig.shape == (11,)
    assert float(sig[0]) == pytest.approx(ns.sigma_max, rel=1e-5)
    assert float(sig[-2]) == pytest.approx(ns.sigma_min, rel=1e-5)
    assert float(sig[-1]) == 0.0
    assert torch.all(sig[1:] < sig[:-1])
    assert torch.equal(get_sigmas(ns, 10, "karras"), sig)
    with pytest.raises(HumanSDError, match="schedule"):
        get_sigmas(ns, 10, "cosine")


@pytest.mark.parametrize(("strength", "run"), [(1.0, 50), (0.5, 25), (0.3, 15), (0.58, 29), (0.0, 0)])
def test_strength_skips_the_start_of_the_schedule(ns, strength, run):
    full = uniform_sigmas(ns, 50)
    tail = strength_sigmas(full, strength)
    assert len(tail) - 1 == run
    assert torch.equal(tail, full[50 - run:])


def test_strength_out_of_range(ns):
    with pytest.raises(HumanSDError, match="strength"):
        strength_sigmas(uniform_sigmas(ns, 5), 1.5)
