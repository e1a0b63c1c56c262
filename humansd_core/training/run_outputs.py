"""What a run leaves for use: sample grids during training, the trained weights at the end.

* Samples: for each ``(pose, caption)`` item (the trainer passes ``sample_pose``'s frames
  or its first ``sample_count`` data samples), its skeleton and an image generated from it (its
  caption, or ``sample_prompt``) with the pipeline (DDIM, ``sample_steps``,
  ``sample_cfg``, seed :data:`~humansd_core.defaults.SEED` + i, empty negative prompt,
  no added prompt), as one PNG: skeletons on the top row, images below.
* Weights: LoRA mode writes ``lora.safetensors`` (:func:`~.lora.save_lora`: the key
  format ComfyUI's ``LoraLoaderModelOnly`` loads; metadata rank, alpha, targets, steps,
  loss settings, base model hash); full mode writes ``model.safetensors`` in the LDM
  layout (:func:`~humansd_core.models.checkpoint.save_models`), its run's
  :func:`training_metadata` under :data:`TRAINING_METADATA_KEY`.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import defaults
from ..fileio import atomic_path
from ..models.checkpoint import HumanSDModels, save_models
from ..pose.keypoints import PoseSet
from ..pose.render import render_skeleton
from .config import OutputOptions, TrainConfig
from .lora import INPUT_CONV_TARGET, save_lora
from .run_models import DTYPES

logger = logging.getLogger(__name__)


def _tile(image: torch.Tensor) -> np.ndarray:
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def save_grid(rows: Sequence[Sequence[np.ndarray]], path: Path) -> None:
    """Write RGB uint8 ``[H, W, 3]`` tiles as a grid (one row per list; tiles may differ in size)."""
    heights = [max(t.shape[0] for t in row) for row in rows]
    widths = [sum(t.shape[1] for t in row) for row in rows]
    canvas = Image.new("RGB", (max(widths), sum(heights)), "black")
    y = 0
    for row, h in zip(rows, heights):
        x = 0
        for tile in row:
            canvas.paste(Image.fromarray(tile, "RGB"), (x, y))
            x += tile.shape[1]
        y += h
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")


@torch.no_grad()
def write_samples(models: HumanSDModels, items: Sequence[tuple[PoseSet, str]], options: OutputOptions,
                  pose_threshold: float, path: Path) -> list[np.ndarray]:
    """Generate and write the sample grid of ``models``' current weights for ``(pose, caption)`` ``items``;
    returns the generated images (RGB uint8 ``[H, W, 3]``, one per item).

    ``options``: the run's ``[output]`` options (``sample_prompt``, ``sample_steps``,
    ``sample_cfg``); ``pose_threshold``: the skeleton drawing threshold of the run's data.
    """
    from ..pipeline import HumanSDPipeline

    pipe = HumanSDPipeline(models.unet, models.vae, models.text_encoder, models.config)
    skeletons, images = [], []
    was_training = models.unet.training, models.text_encoder.training
    models.unet.eval()
    models.text_encoder.eval()
    try:
        for i, (pose, caption) in enumerate(items):
            result = pipe.generate(pose, options.sample_prompt or caption, negative="", added_prompt="",
                                   steps=options.sample_steps, cfg=options.sample_cfg, seed=defaults.SEED + i,
                                   width=pose.canvas_width, height=pose.canvas_height, progress=False)
            skeletons.append(render_skeleton(pose, threshold=pose_threshold))
            images.append(_tile(result.images[0]))
    finally:
        models.unet.train(was_training[0])
        models.text_encoder.train(was_training[1])
    save_grid([skeletons, images], path)
    logger.info("wrote samples %s", path)
    return images


TRAINING_METADATA_KEY = "humansd_training"  # full-model exports: training_metadata() as JSON


def training_metadata(config: TrainConfig, step: int) -> dict:
    """What the weights exported after ``step`` steps of a run of ``config`` record of it: base model, steps,
    optimiser and loss options."""
    base = Path(config.model.base).name if config.model.base else f"fresh weights of {config.model.init_config}"
    return {"base_model": base, "steps": step, "mode": config.model.mode, "lr": config.optim.lr,
            "batch_size": config.optim.batch_size * config.optim.grad_accum, "optimizer": config.optim.optimizer,
            "ema_decay": config.optim.ema_decay, "resolution": config.data.resolution, "loss": asdict(config.loss),
            "trainer": "humansd train"}


def export_weights(models: HumanSDModels, config: TrainConfig, run_dir: Path, step: int, base_hash: str) -> Path:
    """Write the trained weights of a run of ``config`` into ``run_dir``; returns the file written.

    ``step``: the steps trained (LoRA metadata); ``base_hash``: the LoRA's base model
    identity (:func:`~.lora.base_weights_hash`, computed before training).
    """
    dtype = DTYPES[config.output.save_dtype]
    if config.model.mode == "lora":
        path = run_dir / "lora.safetensors"
        targets = list(config.model.lora_targets) + ([INPUT_CONV_TARGET] if config.model.lora_input_conv else [])
        save_lora(models.unet, path, targets=targets, base_model_hash=base_hash, dtype=dtype,
                  extra_metadata=training_metadata(config, step))
    else:
        path = run_dir / "model.safetensors"
        save_models(HumanSDModels(models.unet, models.vae, models.text_encoder, models.config), path, dtype=dtype,
                    extra_metadata={TRAINING_METADATA_KEY: json.dumps(training_metadata(config, step))})
    logger.info("wrote %s", path)
    return path
