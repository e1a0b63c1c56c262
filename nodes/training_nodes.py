"""HumanSD training nodes: a LoRA or a fine-tuned model out of the samples, saved where the loaders look.

The samples come from ``training_data_nodes.py``. The loop is the core trainer's
(``humansd_core.training.trainer.Trainer``), driven through its seams on ComfyUI's own
loaded networks (``_training_host.py``, ``_training_run.py``); run folders and safe names
are the core's too (``training/run_names.py``). These classes turn widgets into settings
and report progress, previews and cancel to ComfyUI.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..humansd_core.errors import HumanSDError

logger = logging.getLogger(__name__)

CATEGORY = "HumanSD/training"
DATA_TYPE = "HUMANSD_TRAINING_DATA"
TRAINED_TYPE = "HUMANSD_TRAINED"
RUNS_FOLDER = "humansd_training"  # under ComfyUI's output folder: one folder per run

ESTIMATORS = {"keypoint gaussians (no network)": "gaussian", "mannequin (bundled)": "tiny",
              "openpose (body_pose_model.pth)": "openpose"}
DTYPES = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainedResult:
    """What a finished run left: ``mode`` (lora | full), the exported ``path`` in the run folder, the run folder."""

    mode: str
    path: Path
    run_dir: Path
    steps: int


def to_image_batch(arrays: list) -> Any:
    """RGB uint8 arrays (equal sizes) → IMAGE ``[N, H, W, 3]``."""
    import numpy as np

    from ._pose_render import uint8_to_images

    return uint8_to_images(np.stack(arrays))


class HumanSDTrain:
    """Fine-tune HumanSD (LoRA or the whole UNet) with the heatmap-guided loss, each sample with its own pose and
    caption."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The HumanSD model to start from (HumanSD Checkpoint Loader); its "
                                               "loaded LoRAs are trained on top of."}),
                "clip": ("CLIP", {"tooltip": "Its text encoder (frozen): every caption is encoded once, up front."}),
                "vae": ("VAE", {"tooltip": "Its VAE (frozen): encodes images and skeletons, decodes for the loss."}),
                "data": (DATA_TYPE, {"tooltip": "Samples from HumanSD Training Data."}),
                "mode": (["lora", "full"], {"default": "lora", "tooltip": (
                    "lora: small adapters on the attention and feed-forward layers of ComfyUI's own UNet (no "
                    "copy of the weights); full: every UNet weight, trained in place in float32 while the "
                    "model's own weights wait on disk in the run folder, put back afterwards (the input model is not "
                    "changed). Memory on top of the float32 UNet: gradients (1x) and optimiser state (adamw 2x, "
                    "adafactor about 0.5x).")}),
                "steps": ("INT", {"default": 500, "min": 1, "max": 1000000, "tooltip": "Optimiser steps."}),
                "learning_rate": ("FLOAT", {"default": 1e-4, "min": 0.0, "max": 1.0, "step": 1e-6, "round": False,
                                            "tooltip": "Peak learning rate (LoRAs: about 1e-4 to 1e-3; the whole "
                                                       "UNet: 1e-5 or less)."}),
                "lora_rank": ("INT", {"default": 16, "min": 1, "max": 1024, "tooltip": "lora: adapter rank."}),
                "lora_alpha": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 4096.0, "step": 0.5, "tooltip":
                                         "lora: the update is scaled by alpha / rank; 0 = rank (scale 1)."}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 1024, "tooltip": (
                    "Samples per micro-batch; each keeps its own pose latent and caption.")}),
                "grad_accumulation": ("INT", {"default": 1, "min": 1, "max": 1024, "tooltip":
                                              "Micro-batches per optimiser step (effective batch = batch x this)."}),
                "resolution": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 64, "tooltip": (
                    "Training size: images go into aspect-ratio buckets of about resolution² pixels (512 for "
                    "humansd-v1, 128 for the embedded model).")}),
                "heatmap_loss": ("BOOLEAN", {"default": True, "tooltip": (
                    "HumanSD's heatmap-guided loss: the error weighs 1 + weight where a pose estimator finds a body "
                    "in the decoded noise difference; off: the plain denoising loss.")}),
                "heatmap_weight": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 100.0, "step": 0.01, "tooltip":
                                             "w in the loss weight 1 + w * mask (HumanSD: 0.1)."}),
                "heatmap_threshold": ("FLOAT", {"default": 0.05, "min": 0.0, "max": 0.99, "step": 0.01, "tooltip":
                                                "Heatmap level counted as a joint (HumanSD: 0.05)."}),
                "estimator": (list(ESTIMATORS), {"default": "keypoint gaussians (no network)", "tooltip": (
                    "Who finds the body for the loss: keypoint gaussians = the sample's own joints (no network, any "
                    "data); mannequin = the bundled estimator (synthetic mannequins only); openpose = the CMU body "
                    "network (body_pose_model.pth, non-commercial licence; see estimator_weights).")}),
                "gradient_checkpointing": ("BOOLEAN", {"default": False, "tooltip":
                                                       "Recompute activations in the backward pass: less memory, "
                                                       "about a third slower."}),
                "dtype": (list(DTYPES), {"default": "auto", "tooltip": (
                    "Compute precision (autocast). auto: the UNet's own dtype (float32 on a CPU, where float16 is "
                    "emulated and very slow). Trained weights are always float32.")}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "tooltip":
                                 "Seed of the data order, noise, timesteps and new adapter weights."}),
                "save_every": ("INT", {"default": 100, "min": 1, "max": 1000000, "tooltip": (
                    "Resume checkpoint every N steps (and at the end, and when cancelled), in the run folder "
                    f"output/{RUNS_FOLDER}/<run_name>_NNNNN/checkpoints.")}),
                "validation_every": ("INT", {"default": 100, "min": 0, "max": 1000000, "tooltip": (
                    "Generate the validation image(s) before training and every N steps, shown as the node's "
                    "preview; 0 = only at the end.")}),
                "validation_prompt": ("STRING", {"multiline": True, "default": "", "tooltip":
                                                 "Prompt of the validation images; empty: the first sample's "
                                                 "caption."}),
                "run_name": ("STRING", {"default": "humansd_lora", "tooltip": (
                    f"Name of the run folder output/{RUNS_FOLDER}/<run_name>_NNNNN (letters, digits, _ - . ( ) + "
                    "and spaces).")}),
                "resume": ("BOOLEAN", {"default": False, "tooltip": (
                    "Continue the newest run of this name from its latest checkpoint (e.g. after a cancel), exactly "
                    "as if it had not stopped; off: start a new run folder.")}),
            },
            "optional": {
                "validation_pose": ("POSE_KEYPOINT", {"tooltip": (
                    "Fixed pose(s) of the validation images (up to 4 frames, fitted onto resolution²); not connected: "
                    "the first sample's pose.")}),
                "estimator_weights": ("STRING", {"default": "", "tooltip": (
                    "openpose estimator only: path of body_pose_model.pth; empty: $AUX_ANNOTATOR_CKPTS_PATH, then "
                    "comfyui_controlnet_aux's ckpts folder.")}),
                "optimizer": (["adamw", "adafactor"], {"default": "adamw", "tooltip": (
                    "adamw: two float32 states per trained weight; adafactor: a factored second moment and no "
                    "momentum (about half a state per weight for SD's UNet), for full fine-tuning in less memory.")}),
                "lr_schedule": (["cosine", "constant"], {"default": "cosine", "tooltip":
                                                         "Learning rate over the run: cosine decay to 0, or "
                                                         "constant."}),
                "validation_steps": ("INT", {"default": 20, "min": 1, "max": 1000, "tooltip":
                                             "DDIM steps of each validation image."}),
                "validation_cfg": ("FLOAT", {"default": 5.0, "min": 1.0, "max": 30.0, "step": 0.1, "tooltip":
                                             "Guidance scale of the validation images (empty negative prompt)."}),
                "caption_dropout": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                                              "Probability of training a sample with the empty caption."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    RETURN_TYPES = ("MODEL", TRAINED_TYPE, "STRING", "IMAGE", "IMAGE")
    RETURN_NAMES = ("model", "trained", "file", "loss_curve", "validation")
    OUTPUT_TOOLTIPS = (
        "The model with the training result applied (the LoRA as LoraLoaderModelOnly would load it, or the trained "
        "UNet), ready for HumanSD Sampler.",
        "The run's result, for HumanSD Save LoRA / HumanSD Save Checkpoint.",
        "The trained file in the run folder (relative to ComfyUI's output folder).",
        "Loss over the steps (grey: per step, blue: moving mean).",
        "Every validation image of the run in step order (a new run starts with the untrained model's).",
    )
    FUNCTION = "train"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Fine-tunes HumanSD on your samples with HumanSD's heatmap-guided loss, each sample with its own "
                   "pose latent and caption. Progress shows the loss; validation images show as the preview; "
                   "cancel saves a checkpoint that 'resume' continues exactly. Training runs on ComfyUI's own "
                   "loaded networks.")

    def train(self, model: Any, clip: Any, vae: Any, data: Any, mode: str, steps: int, learning_rate: float,
              lora_rank: int, lora_alpha: float, batch_size: int, grad_accumulation: int, resolution: int,
              heatmap_loss: bool, heatmap_weight: float, heatmap_threshold: float, estimator: str,
              gradient_checkpointing: bool, dtype: str, seed: int, save_every: int, validation_every: int,
              validation_prompt: str, run_name: str, resume: bool, validation_pose: Any = None,
              estimator_weights: str = "", optimizer: str = "adamw", lr_schedule: str = "cosine",
              validation_steps: int = 20, validation_cfg: float = 5.0, caption_dropout: float = 0.0,
              unique_id: str | None = None) -> tuple:
        import folder_paths

        from ._comfy_model import HUMANSD_IN_CHANNELS, SOURCE_ATTACHMENT, model_config_of
        from ._training_run import RunSettings, run_training

        channels = int(model.get_model_object("diffusion_model.input_blocks.0.0").weight.shape[1])
        if channels != HUMANSD_IN_CHANNELS:
            raise HumanSDError(f"model: HumanSD training needs a UNet with {HUMANSD_IN_CHANNELS} input channels "
                               f"(latent + pose latent); this one has {channels}. Load a HumanSD checkpoint, or make "
                               "one from SD2.1 with `humansd init-from-sd21`")
        if not data.records:
            raise HumanSDError("data: no samples")
        settings = RunSettings(
            mode=mode, steps=steps, lr=learning_rate, lora_rank=lora_rank, lora_alpha=lora_alpha,
            batch_size=batch_size, grad_accum=grad_accumulation, resolution=resolution, heatmap_loss=heatmap_loss,
            heatmap_weight=heatmap_weight, heatmap_threshold=heatmap_threshold, estimator=ESTIMATORS[estimator],
            estimator_weights=estimator_weights, gradient_checkpointing=gradient_checkpointing, dtype=dtype,
            seed=seed, save_every=save_every, validation_every=validation_every,
            validation_prompt=validation_prompt.strip(), validation_steps=validation_steps,
            validation_cfg=validation_cfg, optimizer=optimizer, lr_schedule=lr_schedule,
            caption_dropout=caption_dropout, base_name=model.get_attachment(SOURCE_ATTACHMENT) or "",
        )
        output_dir = Path(folder_paths.get_output_directory())
        result = run_training(model, clip, vae, data, settings, model_config_of(model, clip, vae),
                              runs_dir=output_dir / RUNS_FOLDER, run_name=run_name, resume=resume,
                              validation_pose=validation_pose, node_id=unique_id)
        trained = TrainedResult(mode, result.path, result.run_dir, result.steps)
        loss_curve = to_image_batch([result.loss_curve])
        validation = to_image_batch(result.validation)
        return result.model, trained, result.path.relative_to(output_dir).as_posix(), loss_curve, validation


def _save_trained(trained: TrainedResult, folder_kind: str, filename: str, overwrite: bool) -> str:
    """Copy the run's file into the first ``folder_kind`` folder (models/loras, models/checkpoints, or what
    extra_model_paths.yaml makes the default) under ``filename``; returns the name the loaders list."""
    import shutil

    import folder_paths

    from ..humansd_core.fileio import atomic_write_with
    from ..humansd_core.training.run_names import free_file

    if not trained.path.is_file():
        raise HumanSDError(f"{trained.path}: the run's file is gone; train again (or resume the run)")
    folder = Path(folder_paths.get_folder_paths(folder_kind)[0])
    target = free_file(folder, filename, ".safetensors", overwrite, what="filename")
    atomic_write_with(target, lambda tmp: shutil.copyfile(trained.path, tmp))
    name = target.relative_to(folder.resolve()).as_posix()
    logger.info("HumanSD: saved %s as %s in %s", trained.path, name, folder)
    return name


class _SaveTrained:
    """Shared body of the two save nodes: a run of ``MODE`` into the first ``FOLDER`` folder under a safe name."""

    MODE = ""
    FOLDER = ""
    DEFAULT_NAME = ""
    OTHER = {"lora": "this run trained a LoRA; save it with HumanSD Save LoRA",
             "full": "this run fine-tuned the whole UNet; save it with HumanSD Save Checkpoint"}

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "trained": (TRAINED_TYPE, {"tooltip": "The result of HumanSD Train."}),
            "filename": ("STRING", {"default": cls.DEFAULT_NAME, "tooltip": (
                f"Name in models/{cls.FOLDER} (subfolders with /; .safetensors added). Letters, digits, space and "
                "_ - . ( ) + only; it cannot leave the folder.")}),
            "overwrite": ("BOOLEAN", {"default": False, "tooltip":
                                      "Replace a file of that name; off: add _00001, _00002..."}),
        }}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "save"
    CATEGORY = CATEGORY
    OUTPUT_NODE = True

    def save(self, trained: TrainedResult, filename: str, overwrite: bool) -> dict:
        if trained.mode != self.MODE:
            raise HumanSDError(f"trained: {self.OTHER[trained.mode]}")
        name = _save_trained(trained, self.FOLDER, filename, overwrite)
        return {"ui": {"text": [name]}, "result": (name,)}


class HumanSDSaveLoRA(_SaveTrained):
    """Save a trained HumanSD LoRA into models/loras (stock LoraLoaderModelOnly loads it)."""

    MODE, FOLDER, DEFAULT_NAME = "lora", "loras", "humansd/humansd_lora"
    RETURN_NAMES = ("lora_name",)
    OUTPUT_TOOLTIPS = ("The saved file's name as LoraLoaderModelOnly lists it.",)
    DESCRIPTION = ("Saves the LoRA of a HumanSD Train run (keys diffusion_model.<layer>.lora_up/lora_down/alpha; "
                   "metadata: base model, steps, rank, loss options) where LoraLoaderModelOnly finds it. After "
                   "that loader, use HumanSD Model Patch (or the HumanSD Sampler, which patches itself).")


class HumanSDSaveCheckpoint(_SaveTrained):
    """Save a fully fine-tuned HumanSD model into models/checkpoints (the HumanSD Checkpoint Loader loads it)."""

    MODE, FOLDER, DEFAULT_NAME = "full", "checkpoints", "humansd/humansd_finetuned"
    RETURN_NAMES = ("ckpt_name",)
    OUTPUT_TOOLTIPS = ("The saved file's name as the checkpoint loaders list it.",)
    DESCRIPTION = ("Saves the model of a full-mode HumanSD Train run (UNet, VAE and text encoder in the LDM layout, "
                   "float16; metadata: model config, base model, steps, loss options) where the HumanSD "
                   "Checkpoint Loader finds it.")


NODE_CLASS_MAPPINGS = {
    "HumanSDTrain": HumanSDTrain,
    "HumanSDSaveLoRA": HumanSDSaveLoRA,
    "HumanSDSaveCheckpoint": HumanSDSaveCheckpoint,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "HumanSDTrain": "HumanSD Train (LoRA / full)",
    "HumanSDSaveLoRA": "HumanSD Save LoRA",
    "HumanSDSaveCheckpoint": "HumanSD Save Checkpoint",
}
