"""HumanSDPipeline end to end on a tiny random-weight checkpoint (64x64 images)."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from support.checkpoints import RecordingUNet, tiny_checkpoint

from humansd_core import HumanSDPipeline, defaults
from humansd_core.errors import HumanSDError
from humansd_core.pose import PoseSet, render_skeleton

FAST = {"steps": 2, "width": 64, "height": 64}


def standing_pose(dx: float = 0.0, canvas: int = 64) -> PoseSet:
    s = canvas / 64
    xy = [(32, 10), (30, 8), (34, 8), (28, 9), (36, 9), (26, 18), (38, 18), (22, 28), (42, 28), (20, 37), (44, 37),
          (28, 38), (36, 38), (27, 49), (37, 49), (27, 60), (37, 60)]
    kp = np.array([[(x * s + dx, y * s, 1.0) for x, y in xy]], np.float32)
    return PoseSet(kp, canvas, canvas)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    path = tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny.safetensors")
    return HumanSDPipeline.from_checkpoint(path)




def test_generate_returns_images_skeletons_and_parameters(pipe):
    pose = standing_pose()
    result = pipe.generate([pose, render_skeleton(standing_pose(5))], "a dancer", **FAST)
    assert result.images.shape == (2, 3, 64, 64) and result.images.dtype == torch.float32
    assert 0 <= float(result.images.min()) and float(result.images.max()) <= 1
    assert result.images.std() > 0.01
    expected = torch.from_numpy(render_skeleton(pose)).permute(2, 0, 1).float() / 255
    assert torch.equal(result.skeletons[0], expected)
    assert result.seeds == [defaults.SEED, defaults.SEED + 1]
    assert result.parameters["prompt"] == "a dancer, " + defaults.ADDED_PROMPT
    assert result.parameters["negative"] == defaults.NEGATIVE_PROMPT
    pil = result.to_pil()
    assert len(pil) == 2 and pil[0].size == (64, 64) and pil[0].mode == "RGB"
    overlay = np.asarray(result.overlays()[0])
    on_limb = render_skeleton(pose).any(axis=2)
    assert np.array_equal(overlay[on_limb], render_skeleton(pose)[on_limb])
    assert np.array_equal(overlay[~on_limb], np.asarray(pil[0])[~on_limb])


def test_unet_sees_the_pose_latent_in_both_cfg_branches(pipe):
    rec = RecordingUNet(pipe.unet)
    pipe2 = HumanSDPipeline(rec, pipe.vae, pipe.text_encoder, pipe.config)
    pose = standing_pose()
    pipe2.generate(pose, "a dancer", negative="ugly", cfg=6.0, **FAST)
    pose_latent = pipe.encode_images(pipe.skeleton_images([pose], 64, 64))
    cond = pipe.text_encoder(["a dancer, " + defaults.ADDED_PROMPT])
    uncond = pipe.text_encoder(["ugly"])
    assert len(rec.calls) == 2
    for x_in, _t, ctx in rec.calls:
        assert x_in.shape == (2, 8, 8, 8)
        assert torch.allclose(x_in[0, 4:], pose_latent[0]) and torch.allclose(x_in[1, 4:], pose_latent[0])
        assert torch.allclose(ctx[0], uncond[0]) and torch.allclose(ctx[1], cond[0])


def test_seed_rule_across_batches_and_batch_size(pipe):
    poses = [standing_pose(-6), standing_pose(6)]
    both = pipe.generate(poses, "x", seed=77, images_per_pose=2, **FAST)
    assert both.seeds == [77, 78, 79, 80]
    # image 3 (pose 1, its second image) equals a single run with seed 77 + 3
    single = pipe.generate(poses[1], "x", seed=80, **FAST)
    assert torch.allclose(both.images[3], single.images[0], atol=2e-3)
    chunked = pipe.generate(poses, "x", seed=77, images_per_pose=2, batch_size=3, **FAST)
    assert torch.allclose(both.images, chunked.images, atol=2e-3)
    assert (both.images[2] - both.images[3]).abs().mean() > 0.01  # different seeds differ


def test_each_pose_can_have_its_own_prompt(pipe):
    poses = [standing_pose(-6), standing_pose(6)]
    both = pipe.generate(poses, ["a dancer", "a runner"], seed=5, images_per_pose=2, added_prompt="", **FAST)
    assert both.parameters["prompt"] == ["a dancer", "a runner"]
    # image 2 (pose 1, its first image) equals pose 1 generated alone with its prompt and seed 5 + 2
    alone = pipe.generate(poses[1], "a runner", seed=7, added_prompt="", **FAST)
    assert torch.allclose(both.images[2], alone.images[0], atol=2e-3)
    chunked = pipe.generate(poses, ["a dancer", "a runner"], seed=5, images_per_pose=2, added_prompt="",
                            batch_size=3, **FAST)
    assert torch.allclose(both.images, chunked.images, atol=2e-3)
    with pytest.raises(HumanSDError, match="one per pose"):
        pipe.generate(poses, ["a", "b", "c"], **FAST)


def test_sizes_round_to_the_nearest_valid_multiple_with_a_warning(pipe, caplog):
    assert pipe.size_multiple == 16  # tiny: VAE /8, one UNet downsampling
    assert pipe.valid_size(64, 64) == (64, 64)
    with caplog.at_level(logging.WARNING):
        assert pipe.valid_size(70, 72) == (64, 80)
    assert "not a multiple of 16; using 64x80" in caplog.text
    assert pipe.valid_size(3, 3) == (16, 16)
    result = pipe.generate(standing_pose(), "x", steps=1, width=70, height=60)
    assert result.images.shape == (1, 3, 64, 64)
    with pytest.raises(HumanSDError, match="width"):
        pipe.valid_size(0, 64)


def test_skeleton_array_of_the_wrong_size_is_refused(pipe):
    with pytest.raises(HumanSDError, match=r"pose 0: skeleton image must be RGB uint8 \[64, 64, 3\]"):
        pipe.generate(np.zeros((32, 32, 3), np.uint8), "x", **FAST)


def test_img2img_strength_zero_returns_the_vae_roundtrip_of_the_init(pipe):
    init = torch.rand(1, 3, 64, 64)
    result = pipe.generate(standing_pose(), "x", strength=0.0, init_images=init, **FAST)
    expected = pipe.decode_latents(pipe.encode_images(init))
    assert torch.allclose(result.images, expected, atol=1e-5)
    half = pipe.generate(standing_pose(), "x", strength=0.5, init_images=init, **FAST)
    assert not torch.allclose(half.images, expected, atol=1e-2)
    with pytest.raises(HumanSDError, match="init images"):
        pipe.generate(standing_pose(), "x", strength=0.5, **FAST)


class OutOfMemoryUNet(torch.nn.Module):
    """A UNet whose forward fails like a GPU out of memory."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, context):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_out_of_memory_becomes_a_humansd_error_naming_size_and_batch(pipe):
    broken = HumanSDPipeline(OutOfMemoryUNet(pipe.unet), pipe.vae, pipe.text_encoder, pipe.config)
    with pytest.raises(HumanSDError, match=r"batch of 2 image\(s\) at 64x64"):
        broken.generate([standing_pose(), standing_pose(3)], "x", **FAST)


def test_long_prompt_is_truncated_with_a_warning(pipe, caplog):
    with caplog.at_level(logging.WARNING):
        pipe.generate(standing_pose(), "a person " * 60, steps=1, width=64, height=64)
    assert "truncated" in caplog.text


def test_non_finite_decodes_warn_and_come_out_in_range(pipe, caplog):
    latents = torch.full((1, 4, 8, 8), float("nan"))
    with caplog.at_level(logging.WARNING):
        images = pipe.decode_latents(latents)
    assert "non-finite" in caplog.text
    assert torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1


def test_pose_placement_and_skeleton_arrays(pipe):
    big = standing_pose(canvas=128)  # the same figure on a canvas twice the size
    small = pipe.skeleton_images([standing_pose()], 64, 64)
    assert torch.equal(pipe.skeleton_images([big], 64, 64, place="fit"), small)
    assert torch.equal(pipe.skeleton_images([big], 64, 64), small)  # fit is the default
    assert not torch.equal(pipe.skeleton_images([big], 64, 64, place="as-is"), small)  # pixel coordinates kept
    arrays = np.stack([render_skeleton(standing_pose()), render_skeleton(standing_pose(4))])
    result = pipe.generate(arrays, "x", steps=1, width=64, height=64)  # [N, H, W, 3]: N poses
    assert result.images.shape[0] == 2 and torch.equal(result.skeletons[0], small[0])
