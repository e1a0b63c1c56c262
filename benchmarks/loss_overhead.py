"""Cost of the heatmap-guided loss: training-step time with it / without it, side by side, and its mask agreement.

One training step = UNet forward on ``cat(z_t, pose_latent)`` + loss + backward +
optimiser step, fp32, CPU. Every option is timed in the same loop (interleaved
rounds, median per option), so machine load hits all alike. Times are the
process's CPU time per step (robust on a shared machine; wall time is printed
beside it). Options:

* ``reference``  — the public code: full VAE decode, estimator at full size, VAE encode.
* ``paper-full`` — full decode, estimator at full size, area mask.
* ``paper-reduced`` — VAE decode of the latent pooled by 2, estimator at 1/2 size.
* ``paper-reduced-4`` — VAE decode of the latent pooled by 4, estimator at 1/4 size.
* ``paper-distilled`` — no decode, no estimator: a small conv net on the latent
  (:mod:`humansd_core.training.distilled`) distilled from the full decode + full-size
  estimator (DEFAULT). Checkpoint runs: the bundled net when it was distilled from this
  VAE and estimator (the embedded model with ``--estimator mannequin``), else the
  ``-first8`` fit; random-weight runs: a net fitted on a few of the model's outputs
  (timing only).
* ``paper-distilled-first8`` (``--checkpoint`` only) — the net the loss fits by itself
  when none is given: on the model's ``ε̂ − ε`` of its first 8 batches (the full path
  gives their masks meanwhile), 1500 steps.
* ``paper-linear-1/2`` — fitted 1x1 latent→RGB map (upsampled), estimator at 1/2 size.
* ``paper-linear`` — fitted 1x1 latent→RGB map, estimator at 1/4 size.
* ``paper-linear-1/8`` — the same, estimator at latent size (1/8).
* ``paper-linear-k4`` — paper-linear, mask recomputed every 4 steps.
* ``gaussian`` — ground-truth keypoint Gaussians (no decode, no network).
* ``paper-linear-1/2-init`` (``--checkpoint`` only) — ``paper-linear-1/2``, its linear map fitted
  on ``−ε`` (what a training run from a fresh UNet, whose output is 0, fits on its
  first batch) instead of the checkpoint's ``ε̂ − ε``.

Two ways to run it:

* Random weights (``--arch tiny|full|both``, batch 1): the estimator is the OpenPose
  body network (≈52 M parameters; real with ``--openpose body_pose_model.pth``).
  Timings are real, masks are not: the threshold is calibrated to a 20 % full-decode
  coverage, and the "input dependence" printed (IoU of the full-decode masks of
  different samples; 1.0 = the mask ignores its input) says how little the mask IoU
  means there. Full architecture: SGD instead of AdamW (memory stays near 8 GB; a
  cheaper step makes the ratios conservative).
* A trained checkpoint (``--checkpoint PATH|embedded``, e.g. the embedded tiny
  HumanSD, with ``--estimator mannequin``, the shipped tiny mannequin estimator of
  the loss): the step is that of its training recipe (``--batch`` 16, AdamW, the text
  tower trained with the UNet, real encoded scenes; no EMA update, which makes the
  ratios slightly conservative), and the mask IoU is measured on
  the model's own ``ε̂ − ε`` on synthetic mannequin scenes at timesteps stratified over
  ``--bins`` bins of 0..999 (:mod:`loss_mask_agreement`): per option, the mean
  per-sample soft IoU of its latent mask against the full-decode full-size mask
  (threshold 0.05), overall and per bin. The linear options' map is fitted on one
  batch of the model's predictions (as the loss fits on its first batch).

Measured (``--checkpoint embedded --estimator mannequin --threads 1``, 2-core CPU shared
with other jobs): plain step 0.563 CPU s; ``paper-distilled`` 1.061x (wall 1.038x), mask
IoU 0.644 overall, per bin t0–199 … t800–999: 0.896 0.851 0.812 0.400 0.206;
``paper-distilled-first8`` 1.041x, IoU 0.572 (… 0.311 0.068); ``paper-linear-1/2``
1.050x, IoU 0.205 (… 0.000 0.000: empty masks at t ≥ 600); ``paper-reduced`` 1.333x,
IoU 0.271; ``paper-full`` 2.544x; ``reference`` 3.460x. Random tiny architecture
(``--arch tiny``, OpenPose with random weights): ``paper-distilled`` 1.056x against
2.856x for ``paper-linear-1/2`` (it skips the 52 M-parameter estimator).

Usage: ``python benchmarks/loss_overhead.py [--arch tiny|full|both] [--rounds N]
[--checkpoint embedded --estimator mannequin] [--threads 1]``.
Last line: ``heatmap_loss_overhead=<ratio> mask_iou=<iou>`` for the default option
(the checkpoint run when given, else the full architecture when run, else tiny).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

import loss_mask_agreement as agree
from humansd_core.models.configs import sd21_humansd_config, tiny_config
from humansd_core.models.unet import UNetModel
from humansd_core.models.vae import AutoencoderKL
from humansd_core.pose.detect import OpenPoseBodyDetector, body_network_class
from humansd_core.pose.keypoints import PoseSet
from humansd_core.training.decoders import FullVAEDecoder, fit_linear_decoder
from humansd_core.training.distilled import (
    distillation_source,
    fit_distilled_estimator,
    shipped_distilled,
    teacher_heatmaps,
)
from humansd_core.training.estimators import (
    KeypointGaussianEstimator,
    OpenPoseHeatmapEstimator,
)
from humansd_core.training.loss import HeatmapGuidedLoss, HeatmapLossConfig
from humansd_core.training.modules import Denoiser

DEFAULT = "paper-distilled"
OPTIONS = {
    "paper-distilled": HeatmapLossConfig(decoder="distilled"),
    "reference": HeatmapLossConfig(mode="reference"),
    "paper-full": HeatmapLossConfig(decoder="full", estimator_scale=1.0),
    "paper-reduced": HeatmapLossConfig(decoder="reduced", reduce_factor=2, estimator_scale=0.5),
    "paper-reduced-4": HeatmapLossConfig(decoder="reduced", reduce_factor=4, estimator_scale=0.25),
    "paper-linear-1/2": HeatmapLossConfig(decoder="linear", estimator_scale=0.5),
    "paper-linear": HeatmapLossConfig(decoder="linear", estimator_scale=0.25),
    "paper-linear-1/8": HeatmapLossConfig(decoder="linear", estimator_scale=0.125),
    "paper-linear-k4": HeatmapLossConfig(decoder="linear", estimator_scale=0.25, refresh_every=4),
    "gaussian": HeatmapLossConfig(),
}


INIT_FIT = "paper-linear-1/2-init"  # checkpoint runs only: the linear map fitted on -eps
FIRST8 = "paper-distilled-first8"  # checkpoint runs only: the distilled net fitted on the first 8 batches


def random_models(arch: str) -> tuple:
    """``(config, unet, vae)`` with random weights (UNet trainable, VAE frozen)."""
    cfg = tiny_config() if arch == "tiny" else sd21_humansd_config()
    torch.manual_seed(0)
    unet = UNetModel(cfg.unet)
    with torch.no_grad():  # zero-initialised layers get weights so that eps_pred is not 0
        for p in unet.parameters():
            if not p.any():
                p.normal_(0.0, 0.02)
    return cfg, unet, AutoencoderKL(cfg.vae).eval().requires_grad_(False)


def load_checkpoint(path: str):
    """:class:`HumanSDModels` of ``path`` (``"embedded"``: the packaged tiny HumanSD), fp32."""
    from humansd_core.models import load_models
    from humansd_core.shipped_files import resolve_checkpoint

    models = load_models(resolve_checkpoint(path, "--checkpoint"))
    models.unet.float()
    models.text_encoder.float()
    return models


def make_estimator(name: str, openpose: str | None):
    """The image estimator: ``"openpose"`` (the user's weights, else random) or ``"mannequin"`` (shipped, loss role)."""
    if name == "mannequin":
        from humansd_core.training.tiny_estimator import shipped_estimator

        return shipped_estimator("loss")
    detector = OpenPoseBodyDetector.from_file(openpose) if openpose else OpenPoseBodyDetector(body_network_class()())
    return OpenPoseHeatmapEstimator(detector)


def make_pose(size: int) -> PoseSet:
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(0.2 * size, 0.8 * size, (1, 17, 2)), np.ones((1, 17, 1))], -1)
    return PoseSet(kp.astype(np.float32), size, size)


def make_losses(vae, estimator, scale_factor: float, threshold: float, distilled, linear=None, init_fit=None,
                first8=None) -> dict[str, HeatmapGuidedLoss]:
    """One loss per option; ``distilled``: the default's net; ``linear``/``init_fit``: pre-fitted linear decoders
    (None: fitted on first use); ``first8``: the distilled net fitted on the first 8 batches (checkpoint runs)."""
    def make(name: str, config: HeatmapLossConfig, decoder=None, net=None) -> HeatmapGuidedLoss:
        config = HeatmapLossConfig(**{**config.__dict__, "threshold": threshold})
        return HeatmapGuidedLoss(vae, KeypointGaussianEstimator() if name == "gaussian" else estimator, config,
                                 scale_factor=scale_factor, linear_decoder=decoder, distilled=net)

    losses = {name: make(name, c, linear, distilled) for name, c in OPTIONS.items()}
    if first8 is not None:
        losses = {DEFAULT: losses.pop(DEFAULT), FIRST8: make(FIRST8, OPTIONS[DEFAULT], net=first8), **losses}
    if init_fit is not None:
        losses[INIT_FIT] = make(INIT_FIT, OPTIONS["paper-linear-1/2"], init_fit)
    return losses


def fit_student(full, estimator, diffs, steps: int = 1500):
    """The distilled net fitted on ``diffs`` (teacher: ``full`` decode + ``estimator`` at full size)."""
    latents = torch.cat(list(diffs))
    return fit_distilled_estimator(latents, teacher_heatmaps(full, estimator, latents), steps=steps)


class StepTimer:
    """Times ``plain`` and every loss option on one training step, interleaved; medians of CPU and wall time.

    ``inputs(generator) -> (z0 [B,4,h,w], pose_latent [B,4,h,w], cond, poses)``; ``model(x_in, t, cond)``.
    """

    def __init__(self, model, optimizer, inputs, losses: dict[str, HeatmapGuidedLoss]) -> None:
        self.model, self.opt, self.inputs, self.losses = model, optimizer, inputs, losses
        self.alphas = agree.schedule_alphas()
        self.g = torch.Generator().manual_seed(1)

    def step(self, name: str, i: int) -> tuple[float, float]:
        z0, pose_latent, cond, poses = self.inputs
        eps = torch.randn(z0.shape, generator=self.g)
        t = torch.randint(0, 1000, (z0.shape[0],), generator=self.g)
        a = self.alphas[t].view(-1, 1, 1, 1)
        start, wall = time.process_time(), time.perf_counter()
        pred = self.model(torch.cat([a.sqrt() * z0 + (1 - a).sqrt() * eps, pose_latent], 1), t, cond).float()
        if name == "plain":
            loss = F.mse_loss(pred, eps)
        else:
            loss, _ = self.losses[name](pred, eps, t, poses, step=i)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return time.process_time() - start, time.perf_counter() - wall

    def run(self, rounds: int) -> dict[str, tuple[float, float]]:
        """``{name: (median cpu s, median wall s)}`` for ``plain`` and every option."""
        names = ["plain", *self.losses]
        cpu: dict[str, list[float]] = {n: [] for n in names}
        wall: dict[str, list[float]] = {n: [] for n in names}
        for name in names:  # warm-up (also fits linear decoders not given)
            self.step(name, 0)
        for r in range(rounds):
            for name in names:
                c, w = self.step(name, r + 1)
                cpu[name].append(c)
                wall[name].append(w)
        return {n: (statistics.median(cpu[n]), statistics.median(wall[n])) for n in names}


def print_times(times: dict[str, tuple[float, float]], ious: dict[str, float]) -> None:
    plain, plain_wall = times["plain"]
    print(f"{'option':22s} {'cpu s':>8s} {'ratio':>7s} {'wall s':>8s} {'ratio':>7s} {'mask IoU':>9s}")
    for name, (med, med_wall) in times.items():
        iou = f"{ious[name]:.3f}" if name in ious else ("n/a" if name != "plain" else "")
        print(f"{name:22s} {med:8.3f} {med / plain:7.3f} {med_wall:8.3f} {med_wall / plain_wall:7.3f} {iou:>9s}"
              f"{'  <- default' if name == DEFAULT else ''}")


def run_random(arch: str, size: int, rounds: int, openpose_path: str | None) -> tuple[float, float]:
    """Random-weight run (batch 1); returns the default option's (CPU-time ratio, mask IoU)."""
    cfg, unet, vae = random_models(arch)
    unet.requires_grad_(True).train()
    openpose = make_estimator("openpose", openpose_path)
    real = bool(openpose_path)
    lat = size // cfg.vae.downsample_factor
    g = torch.Generator().manual_seed(1)
    context = torch.randn(1, 77, cfg.unet.context_dim, generator=g)
    pose_latent = torch.randn(1, 4, lat, lat, generator=g)
    poses = [make_pose(size)]

    # Mask IoU against the full-decode mask, on UNet outputs at several timesteps.
    pairs = _diffs(unet, cfg, context, pose_latent, lat, g, count=6 if arch == "tiny" else 3)
    threshold = 0.05 if real else calibrate(vae, openpose, cfg, pairs)

    def make(name: str, config: HeatmapLossConfig) -> HeatmapGuidedLoss:
        config = HeatmapLossConfig(**{**config.__dict__, "threshold": threshold})
        estimator = KeypointGaussianEstimator() if name == "gaussian" else openpose
        return HeatmapGuidedLoss(vae, estimator, config, scale_factor=cfg.scale_factor)

    student = fit_student(FullVAEDecoder(vae, cfg.scale_factor), openpose, [p - e for p, e in pairs], steps=100)
    losses = make_losses(vae, openpose, cfg.scale_factor, threshold, student)
    ious, dependence = mask_ious(losses, make, pairs, poses)
    opt = (torch.optim.AdamW if arch == "tiny" else torch.optim.SGD)(unet.parameters(), lr=1e-7)
    z0 = torch.randn(1, 4, lat, lat, generator=g)
    times = StepTimer(Denoiser(unet), opt, (z0, pose_latent, context, poses), losses).run(rounds)
    print(f"\n[{arch}] {size}x{size} images, latent {lat}x{lat}, batch 1, fp32 CPU, {rounds} rounds, "
          f"{torch.get_num_threads()} threads; {'real' if real else 'RANDOM'} weights, mask threshold {threshold:.4g}"
          f"{'' if real else ' (20% full-decode coverage)'}; input dependence of the full-decode mask: "
          f"cross-sample IoU {dependence:.3f}{' (1.0 = the mask ignores the input)' if not real else ''}")
    print_times(times, ious)
    return times[DEFAULT][0] / times["plain"][0], ious[DEFAULT]


def run_checkpoint(path: str, estimator_name: str, openpose_path: str | None, size: int, batch: int, rounds: int,
                   bins: int, per_bin: int) -> tuple[float, float]:
    """Trained-checkpoint run: its training step and real-prediction mask agreement; the default's (ratio, IoU)."""
    models = load_checkpoint(path)
    cfg, vae = models.config, models.vae
    estimator = make_estimator(estimator_name, openpose_path)
    threshold = 0.05
    full = FullVAEDecoder(vae, cfg.scale_factor)
    predictions = agree.model_predictions(models, size, bins, per_bin, batch)
    first = agree.model_predictions(models, size, 1, batch, batch, seed=agree.EVAL_SEED + 1)[0]
    model_fit = fit_linear_decoder(full, first.eps_pred - first.eps)  # what the loss fits on its first batch
    init_fit = fit_linear_decoder(full, -first.eps)  # a fresh UNet predicts 0: the first batch's diff is -eps
    first8 = fit_student(full, estimator, [p.eps_pred - p.eps for p in agree.model_predictions(
        models, size, 1, 8 * batch, batch, seed=agree.EVAL_SEED + 1)])
    bundled = shipped_distilled()
    matches = bundled.source == distillation_source(vae, estimator)
    losses = make_losses(vae, estimator, cfg.scale_factor, threshold, bundled if matches else first8, model_fit,
                         init_fit, first8)
    reference = HeatmapGuidedLoss(vae, estimator, HeatmapLossConfig(decoder="full", estimator_scale=1.0,
                                                                    threshold=threshold), cfg.scale_factor)
    result = agree.agreement(losses, reference, predictions, bins)
    diffs = [p.eps_pred - p.eps for p in predictions]

    unet = models.unet.requires_grad_(True).train()
    text = models.text_encoder.requires_grad_(True).train()
    denoiser = Denoiser(unet, text)
    opt = torch.optim.AdamW(denoiser.parameters(), lr=1e-7)
    timing = agree.encode_scenes(models, size, batch, seed=agree.EVAL_SEED + 2)
    inputs = (timing.z0, timing.pose_latent, timing.tokens, timing.poses)
    times = StepTimer(denoiser, opt, inputs, losses).run(rounds)

    lat = size // cfg.vae.downsample_factor
    print(f"\n[checkpoint {path}] {size}x{size} images, latent {lat}x{lat}, batch {batch}, fp32 CPU, AdamW, "
          f"text tower trained, {rounds} rounds, {torch.get_num_threads()} threads; estimator {estimator_name}, "
          f"threshold {threshold}; {sum(len(p.t) for p in predictions)} samples ({bins} timestep bins x {per_bin}); "
          f"{DEFAULT}: {'the bundled net' if matches else 'the first-8-batches fit (the bundled net does not fit)'}; "
          f"linear map R² on them: model fit {agree.linear_fit_r2(model_fit, full, diffs):.3f}, "
          f"-eps fit {agree.linear_fit_r2(init_fit, full, diffs):.3f}")
    print_times(times, result.iou)
    print("\n".join(agree.format_agreement(result, bins)))
    return times[DEFAULT][0] / times["plain"][0], result.iou[DEFAULT]


@torch.no_grad()
def _diffs(unet, cfg, context, pose_latent, lat, g, count: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(eps_pred, eps)`` pairs from the UNet at timesteps spread over 0..999."""
    alphas = agree.schedule_alphas()
    pairs = []
    for t in np.linspace(50, 950, count).astype(int):
        z0, eps = torch.randn(1, 4, lat, lat, generator=g), torch.randn(1, 4, lat, lat, generator=g)
        a = alphas[t]
        pred = unet(torch.cat([a.sqrt() * z0 + (1 - a).sqrt() * eps, pose_latent], 1), torch.tensor([t]), context)
        pairs.append((pred, eps))
    return pairs


def calibrate(vae, openpose, cfg, pairs) -> float:
    """Heatmap threshold at which the full-decode mask covers 20 % of pixels (random weights)."""
    decoder = FullVAEDecoder(vae, cfg.scale_factor)
    maxima = [openpose(decoder(p - e)).amax(1).flatten() for p, e in pairs]
    return float(torch.quantile(torch.cat(maxima), 0.8))


def _soft_iou(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    return float(torch.minimum(a, b).sum()), float(torch.maximum(a, b).sum())


def mask_ious(losses, make, pairs, poses) -> tuple[dict[str, float], float]:
    """Soft IoU of each option's latent mask against the full-decode full-size mask of its estimator.

    Also returns the mean IoU between the full-decode masks of different samples.
    """
    full = HeatmapLossConfig(decoder="full", estimator_scale=1.0)
    references = {key: [make(key, full).weight_map(p, e, poses) - 1 for p, e in pairs]
                  for key in ("paper-full", "gaussian")}
    out = {}
    for name, loss_fn in losses.items():
        ref_masks = references["gaussian" if name == "gaussian" else "paper-full"]
        if name == "reference":  # its weight is a VAE encoding, not a mask (its pixel mask is paper-full's)
            continue
        inter = union = 0.0
        for i, ((pred, eps), ref) in enumerate(zip(pairs, ref_masks)):
            n, u = _soft_iou(ref, loss_fn.weight_map(pred, eps, poses, step=i) - 1)
            inter, union = inter + n, union + u
        out[name] = inter / union if union else 1.0
    masks = references["paper-full"]
    cross = [_soft_iou(masks[0], m) for m in masks[1:]]
    dependence = statistics.mean(n / u if u else 1.0 for n, u in cross)
    return out, dependence


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=["tiny", "full", "both", "none"], default=None,
                        help="random-weight runs (default: both without --checkpoint, none with it)")
    parser.add_argument("--tiny-size", type=int, default=64)
    parser.add_argument("--full-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=0, help="timed rounds (default: 20 tiny, 3 full, 10 checkpoint)")
    parser.add_argument("--checkpoint", help="a trained HumanSD file, or 'embedded' for the packaged tiny model")
    parser.add_argument("--estimator", choices=["openpose", "mannequin"], default="openpose",
                        help="checkpoint runs: the image estimator (mannequin: the shipped tiny loss estimator)")
    parser.add_argument("--openpose", help="a real body_pose_model.pth instead of random weights")
    parser.add_argument("--size", type=int, default=128, help="checkpoint runs: image size (px)")
    parser.add_argument("--batch", type=int, default=16, help="checkpoint runs: batch (the embedded recipe's 16)")
    parser.add_argument("--bins", type=int, default=5, help="checkpoint runs: timestep bins over 0..999")
    parser.add_argument("--per-bin", type=int, default=24, help="checkpoint runs: samples per timestep bin")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    arch = args.arch or ("none" if args.checkpoint else "both")
    result = None
    if arch in ("tiny", "both"):
        result = run_random("tiny", args.tiny_size, args.rounds or 20, args.openpose)
    if arch in ("full", "both"):
        result = run_random("full", args.full_size, args.rounds or 3, args.openpose)
    if args.checkpoint:
        result = run_checkpoint(args.checkpoint, args.estimator, args.openpose, args.size, args.batch,
                                args.rounds or 10, args.bins, args.per_bin)
    if result is None:
        parser.error("nothing to run: give --checkpoint or an --arch other than none")
    ratio, iou = result
    print(f"heatmap_loss_overhead={ratio:.3f} mask_iou={iou:.3f}")


if __name__ == "__main__":
    main()
