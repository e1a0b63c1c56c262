"""One training run of the HumanSD Train node (host side): settings → core config, the core trainer on
ComfyUI's networks, progress / preview / cancel, and the outputs.

The run folder ``<output>/humansd_training/<run_name>_NNNNN`` is laid out as every run of
the core trainer (``config.json``, ``checkpoints/``, ``loss_log.jsonl``, ``loss.png``,
``samples/``, the exported ``lora.safetensors`` or ``model.safetensors``).
"""
from __future__ import annotations

import gc
import json
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..humansd_core.errors import HumanSDError

logger = logging.getLogger(__name__)

DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
MAX_VALIDATION_POSES = 4
PREVIEW_SIZE = 512  # longest side of the validation preview on the node


@dataclass(frozen=True)
class RunSettings:
    """The HumanSD Train node's widgets, in the core's terms (``estimator``: gaussian | tiny | openpose)."""

    mode: str
    steps: int
    lr: float
    lora_rank: int
    lora_alpha: float
    batch_size: int
    grad_accum: int
    resolution: int
    heatmap_loss: bool
    heatmap_weight: float
    heatmap_threshold: float
    estimator: str
    estimator_weights: str
    gradient_checkpointing: bool
    dtype: str
    seed: int
    save_every: int
    validation_every: int
    validation_prompt: str
    validation_steps: int
    validation_cfg: float
    optimizer: str
    lr_schedule: str
    caption_dropout: float
    base_name: str


@dataclass
class RunOutcome:
    """What the node returns: the MODEL with the result, the exported file, the run folder, the plots."""

    model: Any
    path: Path
    run_dir: Path
    steps: int
    loss_curve: np.ndarray
    validation: list[np.ndarray] = field(default_factory=list)


def compute_dtype(model: Any) -> torch.dtype:
    """The dtype ComfyUI computes the UNet in (its manual-cast dtype, else its weights')."""
    return model.model.manual_cast_dtype or model.model.get_dtype()


def precision_of(setting: str, mode: str, unet_dtype: torch.dtype) -> str:
    """The core's ``precision`` for the node's ``dtype`` widget; HumanSDError for a combination that cannot run."""
    if unet_dtype not in DTYPE_NAMES:
        raise HumanSDError(f"model: its UNet computes in {unet_dtype}; training needs float32, bfloat16 or float16 "
                           "(load it with another weight dtype)")
    precision = DTYPE_NAMES[unet_dtype] if setting == "auto" else setting
    if mode == "lora" and precision == "fp32" and unet_dtype != torch.float32:
        raise HumanSDError(f"dtype fp32: the UNet is loaded in {unet_dtype} and LoRA trains on it as it is; choose "
                           "auto (or load the UNet in float32)")
    return precision


def _openpose_weights(path: str) -> str:
    from ..humansd_core.pose import find_openpose_weights
    from .pose_nodes import _aux_pack_dirs

    return str(find_openpose_weights(path.strip() or None, aux_pack_dirs=_aux_pack_dirs()))


def train_config(s: RunSettings, run_dir: Path, data_folder: Path, precision: str, device: str, resume: bool,
                 validation_pose: Path | None, validation_count: int) -> Any:
    """The core ``TrainConfig`` of the node's settings (latents cached in the run folder, text encoded up front)."""
    import comfy.utils

    from ..humansd_core.training.config import TrainConfig

    config = TrainConfig()
    options = {
        "base": s.base_name, "mode": s.mode, "lora_rank": s.lora_rank, "lora_alpha": s.lora_alpha,
        "gradient_checkpointing": s.gradient_checkpointing, "device": device,
        "data": str(data_folder), "resolution": s.resolution, "cache": "latents", "cache_text": False,
        "caption_dropout": s.caption_dropout,
        "steps": s.steps, "batch_size": s.batch_size, "grad_accum": s.grad_accum, "lr": s.lr,
        "optimizer": s.optimizer, "lr_schedule": s.lr_schedule, "precision": precision, "seed": s.seed,
        "loss": "heatmap" if s.heatmap_loss else "plain", "heatmap_weight": s.heatmap_weight,
        "heatmap_threshold": s.heatmap_threshold, "estimator": s.estimator,
        "output": str(run_dir), "save_every": s.save_every, "resume": "auto" if resume else "",
        "sample_every": s.validation_every or s.steps, "sample_count": validation_count,
        "sample_prompt": s.validation_prompt, "sample_pose": str(validation_pose or ""),
        "sample_steps": s.validation_steps, "sample_cfg": s.validation_cfg, "log_every": 1,
        "progress": bool(comfy.utils.PROGRESS_BAR_ENABLED),
    }
    if s.heatmap_loss and s.estimator == "openpose":
        options["estimator_weights"] = _openpose_weights(s.estimator_weights)
    for key, value in options.items():
        config.set(key, value, "HumanSD Train")
    config.validate()
    return config


def _validation_pose_file(pose_keypoint: Any, run_dir: Path, size: int) -> tuple[Path | None, int]:
    """The validation frames fitted onto ``size²``, written to the run folder; ``(None, 1)`` without them."""
    from ..humansd_core.pose import parse_pose_data, place_on_canvas, write_openpose_json

    if pose_keypoint is None:
        return None, 1
    frames = parse_pose_data(pose_keypoint, "validation_pose")[:MAX_VALIDATION_POSES]
    if not frames or any(f.visible_count() == 0 for f in frames):
        raise HumanSDError("validation_pose: a frame without any visible keypoint (an empty pose)")
    path = run_dir / "validation_pose.json"
    write_openpose_json(path, [place_on_canvas(f, size, size, "fit") for f in frames])
    return path, len(frames)


def _strip(images: list[np.ndarray]) -> Any:
    from PIL import Image

    return Image.fromarray(np.concatenate(images, axis=1))


class _Progress:
    """The trainer's hooks for ComfyUI: progress bar and loss text, validation images as the preview."""

    def __init__(self, steps: int, node_id: str | None) -> None:
        import comfy.utils

        self.bar = comfy.utils.ProgressBar(steps)
        self.node_id = node_id
        self.validation: list[np.ndarray] = []

    def _text(self, text: str) -> None:
        try:
            from server import PromptServer
        except ImportError:  # ComfyUI without its server (scripts): the log has the loss too
            return
        if self.node_id is not None and getattr(PromptServer, "instance", None) is not None:
            PromptServer.instance.send_progress_text(text, self.node_id)

    def on_step(self, step: int, total: int, stats: dict[str, float]) -> None:
        self._text(f"step {step}/{total}  loss {stats['loss']:.4f}  lr {stats['lr']:.2e}")
        self.bar.update_absolute(step, total)  # raises ComfyUI's InterruptProcessingException on cancel

    def on_samples(self, step: int, images: list[np.ndarray]) -> None:
        self.validation.extend(images)
        self.bar.update_absolute(step, None, ("JPEG", _strip(images), PREVIEW_SIZE))


def _lora_model(model: Any, path: Path) -> Any:
    """``model`` with the LoRA file applied as ComfyUI's LoraLoaderModelOnly applies it, plus the pose fix."""
    import comfy.sd
    import comfy.utils

    from ._comfy_model import with_pose_concat

    lora, _ = comfy.sd.load_lora_for_models(model, None, comfy.utils.load_torch_file(str(path), safe_load=True), 1.0,
                                           0.0)
    return with_pose_concat(lora)


def _full_model(model: Any, trained_unet: torch.nn.Module) -> Any:
    """A clone of ``model`` whose UNet is ``trained_unet`` (an object patch; its weights already include any
    patches the input had, so the clone drops them), in the input's dtype, plus the pose fix."""
    from ._comfy_model import with_pose_concat

    out = model.clone()
    out.patches = {}
    out.patches_uuid = uuid.uuid4()
    trained_unet.requires_grad_(False).eval().to(model.model.get_dtype())
    out.add_object_patch("diffusion_model", trained_unet)
    return with_pose_concat(out)


def run_training(model: Any, clip: Any, vae: Any, data: Any, s: RunSettings, model_config: Any, *,
                 runs_dir: Path, run_name: str, resume: bool, validation_pose: Any = None,
                 node_id: str | None = None) -> RunOutcome:
    """Train (see the module docstring); cancel raises ComfyUI's InterruptProcessingException after the checkpoint."""
    import comfy.model_management as mm

    from ..humansd_core.models.checkpoint import save_models
    from ..humansd_core.training.outputs import plot_losses
    from ..humansd_core.training.run_names import run_folder
    from ..humansd_core.training.run_outputs import TRAINING_METADATA_KEY, training_metadata, write_samples
    from ..humansd_core.training.trainer import Trainer, TrainHooks
    from ._training_host import TrainingNetworks, encode_prompts, ldm_state_dict

    mm.throw_exception_if_processing_interrupted()
    run_dir = run_folder(runs_dir, run_name, resume)
    unet_dtype = compute_dtype(model)
    precision = precision_of(s.dtype, s.mode, unet_dtype)
    if precision == "fp16" and mm.get_torch_device().type == "cpu":
        logger.warning("HumanSD Train: float16 on a CPU is emulated and very slow; bf16 or fp32 are much faster")
    pose_file, pose_count = _validation_pose_file(validation_pose, run_dir, s.resolution)
    config = train_config(s, run_dir, data.folder, precision, str(mm.get_torch_device()), resume, pose_file,
                          pose_count)
    contexts = encode_prompts(clip, [r.caption for r in data.records] + ["", s.validation_prompt])
    progress = _Progress(s.steps, node_id)
    hooks = TrainHooks(on_step=progress.on_step, on_samples=progress.on_samples)
    with torch.inference_mode(False), torch.enable_grad():
        networks = TrainingNetworks(model, vae, contexts, model_config, config.model,
                                    torch.float32 if s.mode == "full" else unet_dtype, seed=s.seed,
                                    backup_dir=run_dir)
        with networks:
            if s.mode == "full":
                def export(trainer: Trainer) -> Path:
                    path = trainer.run_dir / "model.safetensors"
                    meta = {TRAINING_METADATA_KEY: json.dumps(training_metadata(trainer))}
                    save_models(ldm_state_dict(networks.unet, model, clip, vae), path, model_config,
                                dtype=torch.float16, extra_metadata=meta)
                    return path

                hooks.export = export
            trainer = Trainer(config, models=networks.models, samples=data.records, hooks=hooks)
            progress.bar.update_absolute(trainer.step, s.steps)
            if trainer.step == 0 and s.validation_every:  # what the model makes before training, to compare with
                progress.on_samples(0, write_samples(trainer, run_dir / "samples" / f"step-{0:08d}.png"))
            result = trainer.train()
            if not progress.validation:  # resumed at the last step: nothing was trained, so nothing sampled yet
                progress.validation = write_samples(trainer, run_dir / "samples" / f"step-{trainer.step:08d}.png")
            entries = list(trainer.log.entries)
            del trainer  # its optimiser state goes before the MODEL's own weights come back (full mode)
            gc.collect()
    if result.output is None:
        raise HumanSDError(f"{run_dir}: the run stopped at step {result.step} of {s.steps} without exporting")
    curve = run_dir / "loss.png"
    plot_losses(entries, curve)
    from PIL import Image

    with Image.open(curve) as image:
        loss_curve = np.asarray(image.convert("RGB"))
    out = _lora_model(model, result.output) if s.mode == "lora" else _full_model(model, networks.trained_unet)
    return RunOutcome(out, result.output, run_dir, result.step, loss_curve, progress.validation)
