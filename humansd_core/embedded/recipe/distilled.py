"""Fit the bundled distilled heatmap net of the loss (``humansd_core/assets/weights/distilled_loss.safetensors``).

The net (:mod:`humansd_core.training.distilled`) maps the noise difference ``ε̂ − ε``
straight to the joint heatmaps that the full VAE decode + the bundled "loss"
estimator at full size give. Its training inputs are what the heatmap loss sees when
fine-tuning the embedded tiny HumanSD: the model's own ``ε̂ − ε`` on synthetic
mannequin scenes of seed ``--seed`` (neither the model's training seed 0, nor the
benchmark's evaluation seed 777), at timesteps stratified over 0..999 (``--bins`` x
``--per-bin``). A held-out tenth reports the distillation error (binary
cross-entropy) before and after fitting. The file is written in fp16 with the
distillation source (hashes of the VAE decoder and the estimator) in its metadata;
written to the package's own place, its line in ``SHA256SUMS`` is updated too.
Measured (one thread): 1440 fit / 160 held-out samples, held-out BCE 0.170 untrained,
0.099 fitted; 174,570 bytes; 312 CPU s.

Usage: ``python benchmarks/distill_embedded.py [--out PATH] [--threads 1]`` (about 10 min on one CPU thread).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import loss_mask_agreement as agree
from humansd_core import embedded
from humansd_core.models import load_models
from humansd_core.training.decoders import FullVAEDecoder
from humansd_core.training.distilled import (
    SHIPPED,
    DistilledConfig,
    DistilledHeatmapEstimator,
    LatentHeatmapNet,
    distillation_error,
    distillation_source,
    fit_distilled_estimator,
    teacher_heatmaps,
)
from humansd_core.training.tiny_estimator import shipped_estimator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(embedded.weights_dir() / SHIPPED))
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--per-bin", type=int, default=160)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.process_time()
    models = load_models(str(embedded.check_weights(embedded.embedded_model_path())))
    models.unet.float()
    models.text_encoder.float()
    estimator = shipped_estimator("loss")
    full = FullVAEDecoder(models.vae, models.config.scale_factor)
    predictions = agree.model_predictions(models, 128, args.bins, args.per_bin, 16, seed=args.seed)
    latents = torch.cat([p.eps_pred - p.eps for p in predictions])
    targets = teacher_heatmaps(full, estimator, latents)
    held = len(latents) // 10
    fit_x, fit_y, test_x, test_y = latents[held:], targets[held:], latents[:held], targets[:held]
    torch.manual_seed(0)
    untrained = DistilledHeatmapEstimator(LatentHeatmapNet(DistilledConfig()), DistilledConfig())
    student = fit_distilled_estimator(fit_x, fit_y, steps=args.steps,
                                      source=distillation_source(models.vae, estimator))
    student.save(args.out, half=True)
    if Path(args.out).resolve() == (embedded.weights_dir() / SHIPPED).resolve():
        embedded.record_digest(Path(args.out))
    before, after = distillation_error(untrained, test_x, test_y), distillation_error(student, test_x, test_y)
    print(f"{len(fit_x)} fit / {held} held-out samples; held-out BCE: untrained {before:.4f}, fitted {after:.4f}"
          f"; wrote {args.out} "
          f"({Path(args.out).stat().st_size} bytes) in {time.process_time() - start:.0f} CPU s")


if __name__ == "__main__":
    main()
