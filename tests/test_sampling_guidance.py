"""sample_latents over a tiny real UNet (random weights): CFG inputs, seeds, img2img."""
from __future__ import annotations

import pytest
import torch
from support.checkpoints import RecordingUNet, tiny_checkpoint

from humansd_core.errors import HumanSDError
from humansd_core.models.checkpoint import load_models
from humansd_core.sampling import SAMPLERS, batch_seeds, sample_latents


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    path = tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny.safetensors")
    return load_models(path).unet




def _inputs(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    pose = torch.randn(batch, 4, 8, 8, generator=g)
    cond = torch.randn(batch, 77, 32, generator=g)
    uncond = torch.randn(batch, 77, 32, generator=g)
    return pose, cond, uncond


def test_cfg_keeps_the_pose_latent_in_both_branches_in_one_call(unet):
    rec = RecordingUNet(unet)
    pose, cond, uncond = _inputs()
    sample_latents(rec, pose, cond, uncond, seeds=[1, 2], steps=3, cfg=7.5, disable=True)
    assert len(rec.calls) == 3  # one batched UNet call per step
    for x_in, t, ctx in rec.calls:
        assert x_in.shape == (4, 8, 8, 8) and t.shape == (4,)
        assert torch.equal(x_in[:2, 4:], pose) and torch.equal(x_in[2:, 4:], pose)
        assert torch.equal(x_in[:2, :4], x_in[2:, :4])  # same noisy latent in both branches
        assert torch.equal(ctx[:2], uncond) and torch.equal(ctx[2:], cond)  # only the text differs
    assert [round(float(c[1][0])) for c in rec.calls] == [667, 334, 1]


def test_cfg_one_skips_the_unconditional_branch(unet):
    rec = RecordingUNet(unet)
    pose, cond, uncond = _inputs()
    sample_latents(rec, pose, cond, uncond, seeds=[1, 2], steps=2, cfg=1.0, disable=True)
    assert [c[0].shape[0] for c in rec.calls] == [2, 2]
    assert all(torch.equal(c[2], cond) and torch.equal(c[0][:, 4:], pose) for c in rec.calls)


def test_guidance_changes_the_result(unet):
    pose, cond, uncond = _inputs()
    a = sample_latents(unet, pose, cond, uncond, seeds=[1, 2], steps=3, cfg=1.0, disable=True)
    b = sample_latents(unet, pose, cond, uncond, seeds=[1, 2], steps=3, cfg=5.0, disable=True)
    assert not torch.allclose(a, b, atol=1e-3)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_is_deterministic_per_seed(unet, sampler):
    pose, cond, uncond = _inputs()
    eta = 1.0 if sampler in ("ddim", "euler_ancestral") else None

    def run(seeds):
        return sample_latents(unet, pose, cond, uncond, seeds=seeds, sampler=sampler, steps=3, cfg=3.0, eta=eta,
                              disable=True)

    first, again, other = run([5, 6]), run([5, 6]), run([7, 8])
    assert torch.isfinite(first).all()
    assert torch.equal(first, again)
    assert (first - other).abs().mean() > 0.1


@pytest.mark.parametrize("sampler", ["ddim", "euler_ancestral", "dpmpp_2m"])
def test_image_i_of_a_batch_equals_a_single_run_with_seed_plus_i(unet, sampler):
    pose, cond, uncond = _inputs(batch=3)
    seeds = batch_seeds(1234, 3)
    assert seeds == [1234, 1235, 1236]
    eta = 0.8 if sampler != "dpmpp_2m" else None
    kw = {"sampler": sampler, "steps": 3, "cfg": 4.0, "eta": eta, "disable": True}
    batch = sample_latents(unet, pose, cond, uncond, seeds=seeds, **kw)
    for i in range(3):
        single = sample_latents(unet, pose[i:i + 1], cond[i:i + 1], uncond[i:i + 1], seeds=[1234 + i], **kw)
        # equal up to float rounding of batched vs single kernels (latents here are O(10))
        diff = float((batch[i] - single[0]).abs().max())
        assert torch.allclose(batch[i:i + 1], single, rtol=1e-4, atol=1e-4), (i, diff)


def test_img2img_strength_zero_returns_the_init_latent(unet):
    pose, cond, uncond = _inputs()
    init = torch.randn(2, 4, 8, 8)
    rec = RecordingUNet(unet)
    out = sample_latents(rec, pose, cond, uncond, seeds=[1, 2], steps=10, strength=0.0, init_latent=init, disable=True)
    assert torch.equal(out, init) and not rec.calls


def test_img2img_partial_strength_runs_the_tail_from_the_noised_init(unet):
    pose, cond, uncond = _inputs()
    init = torch.randn(2, 4, 8, 8)
    rec = RecordingUNet(unet)
    out = sample_latents(rec, pose, cond, uncond, seeds=[1, 2], steps=10, strength=0.3, init_latent=init,
                         cfg=1.0, disable=True)
    assert len(rec.calls) == 3
    assert round(float(rec.calls[0][1][0])) == 201  # timesteps 901..1 in 10 steps; the last 3 run
    # first UNet input: init noised to that level, z = sqrt(a) init + sqrt(1 - a) noise
    from humansd_core.sampling import BatchNoise, NoiseSchedule
    a = NoiseSchedule().alphas_cumprod[201].float()
    expected = a.sqrt() * init + (1 - a).sqrt() * BatchNoise([1, 2], (4, 8, 8))()
    assert torch.allclose(rec.calls[0][0][:, :4], expected, atol=1e-5)
    other = sample_latents(unet, pose, cond, uncond, seeds=[1, 2], steps=10, strength=0.3,
                           init_latent=init + 1, cfg=1.0, disable=True)
    assert (out - other).abs().mean() > 0.3  # the init matters at low strength


def test_strength_one_ignores_the_init(unet):
    pose, cond, uncond = _inputs()
    kw = {"seeds": [3, 4], "steps": 3, "disable": True}
    a = sample_latents(unet, pose, cond, uncond, **kw)
    b = sample_latents(unet, pose, cond, uncond, strength=1.0, init_latent=torch.randn(2, 4, 8, 8), **kw)
    assert torch.equal(a, b)


def test_input_errors(unet):
    pose, cond, uncond = _inputs()
    with pytest.raises(HumanSDError, match="init images"):
        sample_latents(unet, pose, cond, uncond, seeds=[1, 2], strength=0.5)
    with pytest.raises(HumanSDError, match="sampler"):
        sample_latents(unet, pose, cond, uncond, seeds=[1, 2], sampler="plms")
    with pytest.raises(HumanSDError, match="deterministic"):
        sample_latents(unet, pose, cond, uncond, seeds=[1, 2], sampler="euler", eta=0.5)
    with pytest.raises(HumanSDError, match="batch mismatch"):
        sample_latents(unet, pose, cond, uncond, seeds=[1])
