"""Cost of the heatmap-guided loss: training-step time with it / without it, side by side.

One training step = UNet forward on ``cat(z_t, pose_latent)`` + loss + backward +
optimiser step, batch 1, fp32, CPU. Every option is timed in the same loop
(interleaved rounds, median per option), so machine load hits all alike. Times are the process's CPU time per step (robust on a shared machine; wall time
is printed beside it). Options:

* ``reference``  — the public code: full VAE decode, estimator at full size, VAE encode.
* ``paper-full`` — full decode, estimator at full size, area mask.
* ``paper-reduced`` — VAE decode of the latent pooled by 2, estimator at 1/2 size.
* ``paper-linear-1/2`` — fitted 1x1 latent→RGB map (upsampled), estimator at 1/2 size (DEFAULT).
* ``paper-linear`` — fitted 1x1 latent→RGB map, estimator at 1/4 size.
* ``paper-linear-1/8`` — the same, estimator at latent size (1/8).
* ``paper-linear-k4`` — paper-linear, mask recomputed every 4 steps.
* ``gaussian`` — ground-truth keypoint Gaussians (no decode, no network).

The estimator is the OpenPose body network (≈52 M parameters). Without
``--checkpoint``/``--openpose`` (real HumanSD and ``body_pose_model.pth`` files) all
networks have **random weights**: timings are real, but masks are not: the
threshold is then calibrated to a 20 % full-decode coverage, and the script prints
how much the full-decode mask changes between samples ("input dependence": an IoU
of 1.0 there means the random network's mask ignores its input, and the mask IoUs
below measure nothing but resizing effects). Mask IoU: soft IoU (Σmin/Σmax) of each
option's latent mask against the full-decode, full-size mask of the same
estimator, over UNet outputs at timesteps spread over 50..950 (6 tiny, 3 full).

Full architecture: SGD instead of AdamW (no optimiser state: memory stays near
8 GB; a cheaper step makes the ratios conservative). Tiny config: AdamW.

Usage: ``python benchmarks/loss_overhead.py [--arch tiny|full|both] [--rounds N]
[--checkpoint humansd.safetensors --openpose body_pose_model.pth]``.
Last line: ``heatmap_loss_overhead=<ratio> mask_iou=<iou>`` for the default option
(at the full architecture when run, else tiny).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from humansd_core.models.configs import sd21_humansd_config, tiny_config
from humansd_core.models.unet import UNetModel
from humansd_core.models.vae import AutoencoderKL
from humansd_core.pose.detect import OpenPoseBodyDetector, body_network_class
from humansd_core.pose.keypoints import PoseSet
from humansd_core.training.decoders import FullVAEDecoder
from humansd_core.training.estimators import (
    KeypointGaussianEstimator,
    OpenPoseHeatmapEstimator,
)
from humansd_core.training.loss import HeatmapGuidedLoss, HeatmapLossConfig

DEFAULT = "paper-linear-1/2"
OPTIONS = {
    "reference": HeatmapLossConfig(mode="reference"),
    "paper-full": HeatmapLossConfig(decoder="full", estimator_scale=1.0),
    "paper-reduced": HeatmapLossConfig(decoder="reduced", reduce_factor=2, estimator_scale=0.5),
    "paper-linear-1/2": HeatmapLossConfig(decoder="linear", estimator_scale=0.5),
    "paper-linear": HeatmapLossConfig(decoder="linear", estimator_scale=0.25),
    "paper-linear-1/8": HeatmapLossConfig(decoder="linear", estimator_scale=0.125),
    "paper-linear-k4": HeatmapLossConfig(decoder="linear", estimator_scale=0.25, refresh_every=4),
    "gaussian": HeatmapLossConfig(),
}


def build(arch: str, checkpoint: str | None, openpose: str | None) -> tuple:
    cfg = tiny_config() if arch == "tiny" else sd21_humansd_config()
    torch.manual_seed(0)
    if checkpoint:
        from humansd_core.models import load_models

        models = load_models(checkpoint)
        cfg, unet, vae = models.config, models.unet.requires_grad_(True).train(), models.vae
    else:
        unet = UNetModel(cfg.unet)
        with torch.no_grad():  # zero-initialised layers get weights so that eps_pred is not 0
            for p in unet.parameters():
                if not p.any():
                    p.normal_(0.0, 0.02)
        vae = AutoencoderKL(cfg.vae).eval().requires_grad_(False)
    detector = OpenPoseBodyDetector.from_file(openpose) if openpose else OpenPoseBodyDetector(body_network_class()())
    return cfg, unet, vae, OpenPoseHeatmapEstimator(detector)


def make_pose(size: int) -> PoseSet:
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(0.2 * size, 0.8 * size, (1, 17, 2)), np.ones((1, 17, 1))], -1)
    return PoseSet(kp.astype(np.float32), size, size)


def run(arch: str, size: int, rounds: int, checkpoint: str | None, openpose_path: str | None) -> tuple[float, float]:
    cfg, unet, vae, openpose = build(arch, checkpoint, openpose_path)
    real = bool(checkpoint and openpose_path)
    lat = size // cfg.vae.downsample_factor
    g = torch.Generator().manual_seed(1)
    context = torch.randn(1, 77, cfg.unet.context_dim, generator=g)
    pose_latent = torch.randn(1, 4, lat, lat, generator=g)
    poses = [make_pose(size)]
    alphas = torch.cumprod(1 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2, 0)
    opt = (torch.optim.AdamW if arch == "tiny" else torch.optim.SGD)(unet.parameters(), lr=1e-7)

    # Mask IoU against the full-decode mask, on UNet outputs at several timesteps.
    pairs = _diffs(unet, cfg, context, pose_latent, lat, g, count=6 if arch == "tiny" else 3)
    threshold = 0.05 if real else calibrate(vae, openpose, cfg, pairs)

    def make(name: str, config: HeatmapLossConfig) -> HeatmapGuidedLoss:
        config = HeatmapLossConfig(**{**config.__dict__, "threshold": threshold})
        estimator = KeypointGaussianEstimator() if name == "gaussian" else openpose
        return HeatmapGuidedLoss(vae, estimator, config, scale_factor=cfg.scale_factor)

    losses = {name: make(name, c) for name, c in OPTIONS.items()}
    ious, dependence = mask_ious(losses, make, pairs, poses)

    def step(name: str, i: int) -> tuple[float, float]:
        z0 = torch.randn(1, 4, lat, lat, generator=g)
        eps = torch.randn(1, 4, lat, lat, generator=g)
        t = torch.randint(0, 1000, (1,), generator=g)
        a = alphas[t].view(-1, 1, 1, 1)
        start, wall = time.process_time(), time.perf_counter()
        pred = unet(torch.cat([a.sqrt() * z0 + (1 - a).sqrt() * eps, pose_latent], 1), t, context)
        if name == "plain":
            loss = F.mse_loss(pred, eps)
        else:
            loss, _ = losses[name](pred, eps, t, poses, step=i)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.process_time() - start, time.perf_counter() - wall

    names = ["plain", *OPTIONS]
    cpu: dict[str, list[float]] = {n: [] for n in names}
    wall: dict[str, list[float]] = {n: [] for n in names}
    for name in names:  # warm-up (also fits the linear decoders)
        step(name, 0)
    for r in range(rounds):
        for name in names:
            c, w = step(name, r + 1)
            cpu[name].append(c)
            wall[name].append(w)
    plain, plain_wall = statistics.median(cpu["plain"]), statistics.median(wall["plain"])
    print(f"\n[{arch}] {size}x{size} images, latent {lat}x{lat}, batch 1, fp32 CPU, {rounds} rounds, "
          f"{torch.get_num_threads()} threads; {'real' if real else 'RANDOM'} weights, mask threshold {threshold:.4g}"
          f"{'' if real else ' (20% full-decode coverage)'}; input dependence of the full-decode mask: "
          f"cross-sample IoU {dependence:.3f}{' (1.0 = the mask ignores the input)' if not real else ''}")
    print(f"{'option':18s} {'cpu s':>8s} {'ratio':>7s} {'wall s':>8s} {'ratio':>7s} {'mask IoU':>9s}")
    for name in names:
        med, med_wall = statistics.median(cpu[name]), statistics.median(wall[name])
        iou = "" if name == "plain" else f"{ious[name]:.3f}"
        print(f"{name:18s} {med:8.3f} {med / plain:7.3f} {med_wall:8.3f} {med_wall / plain_wall:7.3f} {iou:>9s}"
              f"{'  <- default' if name == DEFAULT else ''}")
    return statistics.median(cpu[DEFAULT]) / plain, ious[DEFAULT]


@torch.no_grad()
def _diffs(unet, cfg, context, pose_latent, lat, g, count: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(eps_pred, eps)`` pairs from the UNet at timesteps spread over 0..999."""
    alphas = torch.cumprod(1 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2, 0)
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
        if name == "reference":  # its weight is a VAE encoding, not a mask: it uses the full-size mask
            out[name] = 1.0
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
    parser.add_argument("--arch", choices=["tiny", "full", "both"], default="both")
    parser.add_argument("--tiny-size", type=int, default=64)
    parser.add_argument("--full-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=0, help="timed rounds (default: 20 tiny, 3 full)")
    parser.add_argument("--checkpoint", help="a real HumanSD checkpoint (full architecture) instead of random weights")
    parser.add_argument("--openpose", help="a real body_pose_model.pth instead of random weights")
    args = parser.parse_args()
    result = None
    if args.arch in ("tiny", "both"):
        result = run("tiny", args.tiny_size, args.rounds or 20, None, args.openpose)
    if args.arch in ("full", "both"):
        result = run("full", args.full_size, args.rounds or 3, args.checkpoint, args.openpose)
    ratio, iou = result
    print(f"heatmap_loss_overhead={ratio:.3f} mask_iou={iou:.3f}")


if __name__ == "__main__":
    main()
