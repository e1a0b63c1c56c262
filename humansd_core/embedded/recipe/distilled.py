"""Recipe step: fit the bundled distilled heatmap net of the loss (``weights/distilled_loss.safetensors``).

The net (:mod:`humansd_core.training.distilled_heatmaps`) maps the noise difference
``ε̂ − ε`` straight to the joint heatmaps that the full VAE decode + the bundled "loss"
estimator at full size give. Its training inputs are what the heatmap loss sees when
fine-tuning the embedded tiny HumanSD: the model's own ``ε̂ − ε`` on synthetic mannequin
scenes (:mod:`.noise_predictions`) with the data and fit of
``presets/embedded_distilled.toml``. A held-out tenth reports the distillation error
(binary cross-entropy) before and after fitting. The file is written in fp16 with the
distillation source (digests of the VAE decoder and the estimator) in its metadata;
written to the package's own place, its line in ``SHA256SUMS`` is updated too.
Measured (one thread): 1440 fit / 160 held-out samples, held-out BCE 0.170 untrained,
0.099 fitted; 174,570 bytes; 312 CPU s.

Usage: ``python -m humansd_core.embedded.recipe.distilled [--out PATH] [--threads 1]``
(about 10 min on one CPU thread).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ...assets import WEIGHTS_DIR, check_weights, record_if_shipped
from ...models import load_models
from ...pose.mannequin_estimator import shipped_estimator
from ...training.distilled_heatmaps import (
    SHIPPED,
    DistilledConfig,
    DistilledHeatmapEstimator,
    LatentHeatmapNet,
    distillation_error,
    distillation_source,
    fit_distilled_estimator,
    teacher_heatmaps,
)
from ...training.latent_decoders import FullVAEDecoder
from ..model import embedded_model_path
from .noise_predictions import model_predictions
from .presets import read_preset


def main() -> None:
    preset = read_preset("embedded_distilled.toml")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR / SHIPPED)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.process_time()
    models = load_models(str(check_weights(embedded_model_path())))
    models.unet.float()
    models.text_encoder.float()
    estimator = shipped_estimator("loss")
    full = FullVAEDecoder(models.vae, models.config.scale_factor)
    predictions = model_predictions(models, preset["size"], preset["bins"], preset["per_bin"], preset["batch_size"],
                                    seed=preset["seed"])
    latents = torch.cat([p.eps_pred - p.eps for p in predictions])
    targets = teacher_heatmaps(full, estimator, latents)
    held = len(latents) // 10
    fit_x, fit_y, test_x, test_y = latents[held:], targets[held:], latents[:held], targets[:held]
    torch.manual_seed(0)
    untrained = DistilledHeatmapEstimator(LatentHeatmapNet(DistilledConfig()), DistilledConfig())
    student = fit_distilled_estimator(fit_x, fit_y, steps=preset["steps"],
                                      source=distillation_source(models.vae, estimator))
    student.save(args.out, half=True)
    record_if_shipped(args.out)
    before, after = distillation_error(untrained, test_x, test_y), distillation_error(student, test_x, test_y)
    print(f"{len(fit_x)} fit / {held} held-out samples; held-out BCE: untrained {before:.4f}, fitted {after:.4f}"
          f"; wrote {args.out} ({args.out.stat().st_size} bytes) in {time.process_time() - start:.0f} CPU s")


if __name__ == "__main__":
    main()
