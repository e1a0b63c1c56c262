"""What a run leaves for use: sample grids during training, the trained weights at the end.

* Samples: for each of the first ``sample_count`` data samples, its skeleton and an
  image generated from it (its caption, or ``sample_prompt``) with the pipeline
  (DDIM, ``sample_steps``, ``sample_cfg``, seed 1234 + i, empty negative prompt, no
  added prompt), as one PNG: skeletons on the top row, images below.
* Weights: LoRA mode writes ``lora.safetensors`` (:func:`~.lora.save_lora`: the key
  format ComfyUI's ``LoraLoaderModelOnly`` loads; metadata rank, alpha, targets, steps,
  loss settings, base model hash); full mode writes ``model.safetensors`` in the LDM
  layout (:func:`~humansd_core.models.checkpoint.save_models`).
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..models.checkpoint import HumanSDModels, save_models
from ..pose.render import render_skeleton
from .lora import INPUT_CONV_TARGET, save_lora
from .modules import DTYPES
from .outputs import save_grid

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

logger = logging.getLogger(__name__)

SAMPLE_SEED = 1234


def _tile(image: torch.Tensor) -> np.ndarray:
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def write_samples(trainer: Trainer, path: Path) -> list[np.ndarray]:
    """Generate and write the sample grid of the current weights; returns the generated images (RGB uint8
    ``[H, W, 3]``, one per sample pose)."""
    from ..pipeline import HumanSDPipeline

    out = trainer.config.output
    models = trainer.models
    pipe = HumanSDPipeline(models.unet, models.vae, models.text_encoder, models.config)
    skeletons, images = [], []
    was_training = models.unet.training, models.text_encoder.training
    models.unet.eval()
    models.text_encoder.eval()
    try:
        for i, (pose, caption) in enumerate(trainer.data.sample_items(out.sample_count)):
            result = pipe.generate(pose, out.sample_prompt or caption, negative="", added_prompt="",
                                   steps=out.sample_steps, cfg=out.sample_cfg, seed=SAMPLE_SEED + i,
                                   width=pose.canvas_width, height=pose.canvas_height, progress=False)
            skeletons.append(render_skeleton(pose, threshold=trainer.config.data.pose_threshold))
            images.append(_tile(result.images[0]))
    finally:
        models.unet.train(was_training[0])
        models.text_encoder.train(was_training[1])
    save_grid([skeletons, images], path)
    logger.info("wrote samples %s", path)
    return images


TRAINING_METADATA_KEY = "humansd_training"  # full-model exports: training_metadata() as JSON


def training_metadata(trainer: Trainer) -> dict:
    """What the exported weights record of their run: base model, steps, optimiser and loss options."""
    config = trainer.config
    base = Path(config.model.base).name if config.model.base else f"fresh weights of {config.model.init_config}"
    return {"base_model": base, "steps": trainer.step, "mode": config.model.mode, "lr": config.optim.lr,
            "batch_size": config.optim.batch_size * config.optim.grad_accum, "optimizer": config.optim.optimizer,
            "ema_decay": config.optim.ema_decay, "resolution": config.data.resolution, "loss": asdict(config.loss),
            "trainer": "humansd train"}


def export_weights(trainer: Trainer) -> Path:
    """Write the trained weights into the run folder; returns the file written."""
    config, models = trainer.config, trainer.models
    dtype = DTYPES[config.output.save_dtype]
    if config.model.mode == "lora":
        path = trainer.run_dir / "lora.safetensors"
        targets = list(config.model.lora_targets) + ([INPUT_CONV_TARGET] if config.model.lora_input_conv else [])
        save_lora(models.unet, path, targets=targets, base_model_hash=trainer.base_hash,
                  dtype=dtype, extra_metadata=training_metadata(trainer))
    else:
        path = trainer.run_dir / "model.safetensors"
        save_models(HumanSDModels(models.unet, models.vae, models.text_encoder, models.config), path, dtype=dtype,
                    extra_metadata={TRAINING_METADATA_KEY: json.dumps(training_metadata(trainer))})
    logger.info("wrote %s", path)
    return path
