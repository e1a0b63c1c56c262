"""Heatmap-guided loss on the tiny VAE: exact weights, reference form, no gradient through D, decoders."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from humansd_core.errors import HumanSDError
from humansd_core.models.configs import tiny_config
from humansd_core.models.vae import AutoencoderKL
from humansd_core.assets import WEIGHTS_DIR
from humansd_core.errors import CheckpointError
from humansd_core.pose.detect import OpenPoseBodyDetector, OpenPoseHeatmapEstimator, body_network_class
from humansd_core.pose.heatmaps import KeypointGaussianEstimator
from humansd_core.pose.keypoints import PoseSet
from humansd_core.pose.mannequin_estimator import shipped_estimator
from humansd_core.training.distilled_heatmaps import (
    DistilledConfig,
    DistilledHeatmapEstimator,
    LatentHeatmapNet,
    distillation_error,
    distillation_source,
    fit_distilled_estimator,
    teacher_heatmaps,
)
from humansd_core.training.latent_decoders import (
    FullVAEDecoder,
    ReducedVAEDecoder,
    fit_linear_decoder,
)
from humansd_core.training.loss import (
    HeatmapGuidedLoss,
    HeatmapLossConfig,
    TimestepBinStats,
)

CFG = tiny_config()
S = CFG.scale_factor
LATENT = 8  # tiny VAE: 64x64 images <-> 8x8 latents


@pytest.fixture(scope="module")
def vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(CFG.vae).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def openpose() -> OpenPoseHeatmapEstimator:
    """The real OpenPose body network with random weights (no weights can be downloaded here)."""
    torch.manual_seed(0)
    return OpenPoseHeatmapEstimator(OpenPoseBodyDetector(body_network_class()()))


def noise_pair(batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(batch, 4, LATENT, LATENT, generator=g)
    return eps + 0.7 * torch.randn(batch, 4, LATENT, LATENT, generator=g), eps


def one_joint_pose(x: float, y: float, canvas: int = 64) -> PoseSet:
    kp = np.zeros((1, 17, 3), np.float32)
    kp[0, 0] = (x, y, 1.0)
    return PoseSet(kp, canvas, canvas)


def test_paper_weight_is_exactly_one_plus_w_inside_and_one_outside(vae) -> None:
    sigma_frac, (jx, jy) = 10 / 64, (30.0, 22.0)
    estimator = KeypointGaussianEstimator(sigma_fraction=sigma_frac, stride=1)
    config = HeatmapLossConfig(weight=0.1, threshold=0.05, estimator_scale=1.0)
    loss_fn = HeatmapGuidedLoss(vae, estimator, config, scale_factor=S)
    pred, eps = noise_pair(batch=1)
    poses = [one_joint_pose(jx, jy)]
    weight = loss_fn.weight_map(pred, eps, poses)
    assert weight.shape == (1, 1, LATENT, LATENT)

    # Independent expectation: pixel centres within the Gaussian's 0.05 level, pooled per 8x8 cell. Pixel i's
    # centre is at coordinate i (OpenCV's convention, the keypoints' own; pose.heatmaps).
    centres = np.arange(64.0)
    d2 = (centres[None, :] - jx) ** 2 + (centres[:, None] - jy) ** 2
    pixel_mask = np.exp(-d2 / (2 * (sigma_frac * 64) ** 2)) > 0.05
    cell = pixel_mask.reshape(LATENT, 8, LATENT, 8).mean(axis=(1, 3))
    full, empty = cell == 1.0, cell == 0.0
    assert full.any() and empty.any() and (~full & ~empty).any()
    w = weight[0, 0].numpy()
    assert (w[full] == np.float32(1.0) + np.float32(0.1)).all()
    assert (w[empty] == 1.0).all()
    np.testing.assert_allclose(w, 1.0 + 0.1 * cell, rtol=0, atol=1e-6)

    loss, diag = loss_fn(pred, eps, torch.tensor([500]), poses)
    expected = ((pred - eps) ** 2 * weight).mean()
    torch.testing.assert_close(loss, expected)
    assert diag.mask_coverage == pytest.approx(pixel_mask.mean(), abs=1e-6)
    assert diag.mean_weight == pytest.approx(float(1 + 0.1 * cell.mean()), abs=1e-6)
    assert diag.plain_loss == pytest.approx(float(((pred - eps) ** 2).mean()), rel=1e-6)


def test_no_gradient_flows_through_the_difference_image(vae, openpose) -> None:
    vae_with_grad = AutoencoderKL(CFG.vae)
    vae_with_grad.load_state_dict(vae.state_dict())
    loss_fn = HeatmapGuidedLoss(vae_with_grad, openpose, HeatmapLossConfig(decoder="full", mask_to_latent="vae"),
                                scale_factor=S)
    pred, eps = noise_pair()
    pred.requires_grad_(True)
    weight = loss_fn.weight_map(pred, eps)
    assert not weight.requires_grad
    loss, _ = loss_fn(pred, eps, torch.tensor([3, 999]))
    loss.backward()
    analytic = 2 * (pred.detach() - eps) * weight / pred.numel()
    torch.testing.assert_close(pred.grad, analytic)
    assert all(p.grad is None for p in vae_with_grad.parameters())


def test_reference_form_on_constructed_cases(vae) -> None:
    """No joint found -> the 17-joint count is 17 everywhere; all found -> 0 (inverted polarity)."""
    b, h = 2, LATENT * 8
    pred, eps = noise_pair(batch=b)
    estimator = KeypointGaussianEstimator(sigma_fraction=50.0)  # huge: every pixel > 0.05
    config = HeatmapLossConfig(mode="reference")
    everyone = PoseSet(np.tile(np.array([32.0, 32.0, 1.0], np.float32), (1, 17, 1)), h, h)
    for poses, count in (([PoseSet.empty(h, h)] * b, 17.0), ([everyone] * b, 0.0)):
        loss_fn = HeatmapGuidedLoss(vae, estimator, config, scale_factor=S, generator=torch.Generator().manual_seed(5))
        weight = loss_fn.weight_map(pred, eps, poses)
        mean, logvar = vae.encode_dist(torch.full((b, 3, h, h), count))
        noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(5))
        expected = 1.0 + 0.1 * (mean + torch.exp(0.5 * logvar) * noise) * S
        assert weight.shape == (b, 4, LATENT, LATENT)
        torch.testing.assert_close(weight, expected)
        loss_fn.generator = torch.Generator().manual_seed(5)
        loss, diag = loss_fn(pred, eps, torch.tensor([1, 2]), poses)
        torch.testing.assert_close(loss, ((pred - eps) ** 2 * expected).mean())
        assert float(diag.mask_coverage) == (1.0 if count == 0.0 else 0.0)


@pytest.mark.parametrize("decoder", ["full", "reduced", "linear", "distilled"])
@pytest.mark.parametrize("mask_to_latent", ["area", "vae"])
def test_every_decoder_runs_on_the_tiny_models(vae, openpose, decoder, mask_to_latent) -> None:
    config = HeatmapLossConfig(decoder=decoder, mask_to_latent=mask_to_latent, threshold=0.03, distill_batches=1,
                               distill_steps=3)  # distilled: the full path on the first call, the fitted net next
    loss_fn = HeatmapGuidedLoss(vae, openpose, config, scale_factor=S)
    pred, eps = noise_pair()
    loss, diag = loss_fn(pred, eps, torch.tensor([100, 900]))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert diag.sample_coverage.shape == diag.sample_weight.shape == (2,)
    assert 0.0 <= float(diag.mask_coverage) <= 1.0
    weight = loss_fn.weight_map(pred, eps)
    if mask_to_latent == "area":
        assert weight.shape == (2, 1, LATENT, LATENT)
        assert weight.min() >= 1.0 and weight.max() <= 1.1 + 1e-6
    else:
        assert weight.shape == (2, 4, LATENT, LATENT)


def test_decoder_output_sizes_and_linear_fit(vae) -> None:
    pred, eps = noise_pair(batch=4, seed=1)
    diff = pred - eps
    full = FullVAEDecoder(vae, S)
    assert full(diff).shape == (4, 3, 64, 64)
    assert ReducedVAEDecoder(vae, S, factor=2)(diff).shape == (4, 3, 32, 32)
    linear = fit_linear_decoder(full, diff[:3])
    held_out = diff[3:]
    approx = linear(held_out)
    assert approx.shape == (1, 3, LATENT, LATENT) and approx.min() >= 0 and approx.max() <= 1
    target = torch.nn.functional.interpolate(full(held_out), size=(LATENT, LATENT), mode="area")
    const = torch.nn.functional.interpolate(full(diff[:3]), size=(LATENT, LATENT), mode="area").mean(dim=(0, 2, 3))
    assert (approx - target).square().mean() < (const[None, :, None, None] - target).square().mean()


def difference_like(count: int, seed: int) -> torch.Tensor:
    """``ε̂ − ε``-like latents ``[count,4,8,8]``: noise at scales from small (high t) to large (low t)."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.linspace(0.1, 1.0, count).view(-1, 1, 1, 1)
    return scales * torch.randn(count, 4, LATENT, LATENT, generator=g) + 0.3 * scales * torch.randn(
        count, 4, 1, 1, generator=g)


@pytest.fixture(scope="module")
def mannequin():
    return shipped_estimator("loss")


def test_distillation_fit_lowers_the_error_on_held_out_inputs(vae, mannequin) -> None:
    full = FullVAEDecoder(vae, S)
    fit_x, test_x = difference_like(48, seed=0), difference_like(16, seed=1)
    fit_y, test_y = teacher_heatmaps(full, mannequin, fit_x), teacher_heatmaps(full, mannequin, test_x)
    assert fit_y.shape == (48, 17, LATENT, LATENT) and 0 <= fit_y.min() and fit_y.max() <= 1
    torch.manual_seed(0)
    untrained = DistilledHeatmapEstimator(LatentHeatmapNet(), DistilledConfig())
    student = fit_distilled_estimator(fit_x, fit_y, steps=150, batch_size=16)
    fitted, before = distillation_error(student, test_x, test_y), distillation_error(untrained, test_x, test_y)
    # A per-joint constant map (the fit targets' mean) is the baseline a useful net must beat.
    mean_map = fit_y.mean(dim=(0, 2, 3)).view(1, -1, 1, 1).expand_as(test_y).clamp(1e-6, 1 - 1e-6)
    constant = float(torch.nn.functional.binary_cross_entropy(mean_map, test_y))
    assert fitted < 0.9 * before and fitted < constant, (fitted, before, constant)
    again = fit_distilled_estimator(fit_x, fit_y, steps=150, batch_size=16)  # same seed: same net
    torch.testing.assert_close(again(test_x), student(test_x))


def test_distilled_net_shape_contract_and_file_round_trip(tmp_path) -> None:
    config = DistilledConfig(latent_channels=4, joints=5, width=16, dilations=(1, 2), groups=4)
    net = DistilledHeatmapEstimator(LatentHeatmapNet(config), config, {"vae": "abc", "estimator": "def"})
    for h, w in ((8, 8), (6, 10)):
        out = net(torch.randn(3, 4, h, w))
        assert out.shape == (3, 5, h, w) and out.min() >= 0 and out.max() <= 1 and not out.requires_grad
    with pytest.raises(HumanSDError, match=r"\[B,4,h,w\]"):
        net(torch.randn(3, 3, 8, 8))
    x = torch.randn(2, 4, 8, 8)
    net.save(tmp_path / "student.safetensors", half=True)
    loaded = DistilledHeatmapEstimator.from_file(tmp_path / "student.safetensors")
    assert loaded.config == config and loaded.source == {"vae": "abc", "estimator": "def"}
    torch.testing.assert_close(loaded(x), net(x), atol=2e-3, rtol=0)
    again = DistilledHeatmapEstimator.from_state(net.state_tensors(), net.metadata())
    torch.testing.assert_close(again(x), net(x))
    with pytest.raises(CheckpointError, match="not a distilled estimator"):  # the bundled pose estimator's file
        DistilledHeatmapEstimator.from_file(WEIGHTS_DIR / "estimator_loss.safetensors")
    with pytest.raises(HumanSDError):
        DistilledConfig(width=10, groups=4)


def test_distilled_loss_uses_the_full_path_until_fitted_then_never_decodes(vae, mannequin) -> None:
    config = HeatmapLossConfig(decoder="distilled", distill_batches=2, distill_steps=5)
    loss_fn = HeatmapGuidedLoss(vae, mannequin, config, scale_factor=S)
    exact = HeatmapGuidedLoss(vae, mannequin, HeatmapLossConfig(decoder="full", estimator_scale=1.0), scale_factor=S)
    calls = []
    hook = vae.decoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        batches = [noise_pair(batch=2, seed=s) for s in (10, 11, 12)]
        for i, (pred, eps) in enumerate(batches[:2]):
            weight = loss_fn.weight_map(pred, eps)
            assert calls == [1] and (loss_fn.distilled is None) == (i == 0)  # fitted after the 2nd batch
            calls.clear()
            torch.testing.assert_close(weight, exact.weight_map(pred, eps))  # the full path's mask, exactly
            calls.clear()
        weight = loss_fn.weight_map(*batches[2])
        assert calls == [] and weight.shape == (2, 1, LATENT, LATENT)  # the fitted net: no decode
        assert weight.min() >= 1.0 and weight.max() <= 1.1 + 1e-6
    finally:
        hook.remove()
    assert loss_fn.distilled.source == {}  # fitted in the loss: tied to nothing it could be checked against
    source = distillation_source(vae, mannequin)
    assert len(source["vae"]) == 64 and source == distillation_source(vae, mannequin)
    assert source["estimator"] != distillation_source(vae, shipped_estimator("judge"))["estimator"]


def test_decoding_is_skipped_or_done_once(vae, openpose) -> None:
    calls = []
    hook = vae.decoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        pred, eps = noise_pair()
        pose = one_joint_pose(20, 20)
        HeatmapGuidedLoss(vae, KeypointGaussianEstimator(), scale_factor=S)(pred, eps, torch.tensor([1, 2]),
                                                                            [pose, pose])
        assert calls == []  # a pose-only estimator needs no image
        linear = HeatmapGuidedLoss(vae, openpose, HeatmapLossConfig(decoder="linear"), scale_factor=S)
        linear(pred, eps, torch.tensor([1, 2]))
        linear(*noise_pair(seed=3), torch.tensor([1, 2]))
        assert calls == [1]  # one full decode to fit the linear decoder, then none
    finally:
        hook.remove()


def test_mask_refresh_every_k_steps(vae) -> None:
    loss_fn = HeatmapGuidedLoss(vae, KeypointGaussianEstimator(), HeatmapLossConfig(refresh_every=3), scale_factor=S)
    pred, eps = noise_pair(batch=1)
    t = torch.tensor([10])
    fresh, weights = [], []
    for step, (x, y) in enumerate([(10, 10), (50, 50), (30, 10), (50, 50)]):
        _, diag = loss_fn(pred, eps, t, [one_joint_pose(x, y)], step=step)
        fresh.append(diag.mask_fresh)
        weights.append(loss_fn._cache[1].clone())
    assert fresh == [True, False, False, True]
    assert torch.equal(weights[0], weights[2]) and not torch.equal(weights[0], weights[3])
    with pytest.raises(HumanSDError, match="step"):
        loss_fn(pred, eps, t, [one_joint_pose(1, 1)])


def test_gaussian_estimator_places_peaks_from_the_canvas() -> None:
    kp = np.zeros((2, 17, 3), np.float32)
    kp[0, 5] = (100.0, 50.0, 0.9)  # person 0, left shoulder, on a 200x100 canvas
    kp[1, 5] = (20.0, 80.0, 0.9)
    kp[1, 6] = (150.0, 20.0, 0.01)  # below min_confidence: left out
    pose = PoseSet(kp, 200, 100)
    heat = KeypointGaussianEstimator(sigma_fraction=0.05, stride=2)(torch.zeros(1, 3, 64, 128), [pose])
    assert heat.shape == (1, 17, 32, 64)
    assert heat[0, 6].max() == 0 and heat[0, 0].max() == 0
    # Pixel centres at integer coordinates: canvas pixel (100, 50) is at cell ((50.5)·32/100 − 0.5, (100.5)·64/200
    # − 0.5) = (15.66, 31.66) of the stride-2 grid; σ = 0.05 · 64 px = 1.6 cells. Its nearest cell (16, 32) peaks.
    cy, cx, sigma = 50.5 * 32 / 100 - 0.5, 100.5 * 64 / 200 - 0.5, 1.6
    assert heat[0, 5, 16, 32] == pytest.approx(math.exp(-((16 - cy) ** 2 + (32 - cx) ** 2) / (2 * sigma**2)), rel=1e-5)
    assert int(heat[0, 5, 8:24, 24:40].argmax()) == (16 - 8) * 16 + (32 - 24)  # around person 0
    assert heat[0, 5, 25, 6] > 0.5  # the second person's shoulder, max over people
    assert heat[0, 5, 0, 63] < 1e-6
    assert heat.min() >= 0 and heat.max() <= 1
    with pytest.raises(HumanSDError, match="one PoseSet per sample"):
        KeypointGaussianEstimator()(torch.zeros(2, 3, 64, 64), [pose])


def test_timestep_bins_and_config_validation(vae) -> None:
    stats = TimestepBinStats(num_bins=4)
    loss_fn = HeatmapGuidedLoss(vae, KeypointGaussianEstimator(), scale_factor=S)
    pred, eps = noise_pair()
    pose = one_joint_pose(32, 32)
    _, diag = loss_fn(pred, eps, torch.tensor([0, 999]), [pose, PoseSet.empty(64, 64)])
    stats.update(diag)
    summary = stats.summary()
    assert summary["count"] == [1.0, 0.0, 0.0, 1.0]
    assert summary["coverage"][0] > 0 and summary["coverage"][3] == 0.0 and math.isnan(summary["coverage"][1])
    assert summary["weight"][3] == pytest.approx(1.0)
    for bad in ({"mode": "other"}, {"decoder": "tiny"}, {"threshold": 1.5}, {"refresh_every": 0},
                {"distill_batches": 0}, {"distill_steps": 0}):
        with pytest.raises(HumanSDError):
            HeatmapLossConfig(**bad)


def test_trainer_fits_the_distilled_net_and_a_resume_gets_it_back(tmp_path) -> None:
    from support.training_data import make_dataset, tiny_train_config
    from humansd_core.training.trainer import Trainer

    data = make_dataset(tmp_path / "data", count=4)
    options = {"loss": "heatmap", "estimator": "tiny", "heatmap_decoder": "distilled", "distill_batches": 1,
               "distill_steps": 3, "steps": 2, "log_every": 1}
    trainer = Trainer(tiny_train_config(data, tmp_path / "run", **options))
    assert trainer.loss_fn.distilled is None  # the tiny random VAE is not the embedded one: fitted in the run
    trainer.train()
    assert trainer.loss_fn.distilled is not None
    tensors = trainer.data.extra_tensors()
    other = Trainer(tiny_train_config(data, tmp_path / "other", **options))
    other.data.load_extra(tensors)
    x = torch.randn(2, 4, LATENT, LATENT)
    torch.testing.assert_close(other.loss_fn.distilled(x), trainer.loss_fn.distilled(x))
