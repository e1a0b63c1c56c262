"""HumanSD training nodes: samples in, a LoRA or a fine-tuned model out, saved where the loaders look.

The loop is the core trainer's (``humansd_core.training.trainer.Trainer``), driven
through its seams on ComfyUI's own loaded networks (``nodes/_training_host.py``); the
data checks, run folders and safe names are the core's too (``training/samples.py``,
``training/run_names.py``). These classes turn widgets into a ``TrainConfig``, ComfyUI
types into core ones, and report progress, previews and cancel to ComfyUI.
"""
from __future__ import annotations

import hashlib
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
DATA_FOLDER = "humansd_training_data"  # under ComfyUI's temp folder: samples written from memory

SYNTHETIC, FOLDER, IMAGES = "synthetic scenes", "folder", "images"
STOP, SKIP = "stop with an error", "skip and report"
ESTIMATORS = {"keypoint gaussians (no network)": "gaussian", "mannequin (bundled)": "tiny",
              "openpose (body_pose_model.pth)": "openpose"}
DTYPES = ("auto", "fp32", "bf16", "fp16")
PREVIEW_SIZE = 512


@dataclass(frozen=True)
class TrainedResult:
    """What a finished run left: ``mode`` (lora | full), the exported ``path`` in the run folder, the run folder."""

    mode: str
    path: Path
    run_dir: Path
    steps: int


def _images_uint8(images: Any) -> list:
    from ._pose_render import images_to_uint8

    return list(images_to_uint8(images[..., :3], "images"))


def _to_image_batch(arrays: list) -> Any:
    """RGB uint8 arrays (equal sizes) → IMAGE ``[N, H, W, 3]``."""
    import numpy as np

    from ._pose_render import uint8_to_images

    return uint8_to_images(np.stack(arrays))


class HumanSDTrainingData:
    """Training samples (image + pose + caption): synthetic mannequin scenes, a folder, or IMAGE + POSE_KEYPOINT."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "source": ([SYNTHETIC, FOLDER, IMAGES], {"default": SYNTHETIC, "tooltip": (
                    f"'{SYNTHETIC}': the pack's synthetic mannequins (no files needed; the embedded model's world). "
                    f"'{FOLDER}': a folder as `humansd train` reads it. '{IMAGES}': the images, pose_keypoint and "
                    "captions inputs below.")}),
                "scenes": ("INT", {"default": 64, "min": 1, "max": 100000, "tooltip":
                                   f"'{SYNTHETIC}' only: how many scenes."}),
                "seed": ("INT", {"default": 1, "min": 0, "max": 2**31 - 1, "tooltip":
                                 f"'{SYNTHETIC}' only: which scenes (the embedded model was trained on seed 0)."}),
                "size": ("INT", {"default": 128, "min": 64, "max": 2048, "step": 64, "tooltip":
                                 f"'{SYNTHETIC}' only: scene side in pixels (the embedded model's is 128)."}),
                "folder": ("STRING", {"default": "", "tooltip": (
                    f"'{FOLDER}' only: a folder of images (.png .jpg .jpeg .webp .bmp), each with a pose file of the "
                    "same name (.json in any format the pose nodes read, or .npz) and a caption (.txt): its name "
                    "inside ComfyUI's input folder (subfolders with /; a symlink there reaches a dataset elsewhere).")}),
                "captions": ("STRING", {"multiline": True, "default": "", "tooltip": (
                    f"'{IMAGES}' only: one caption per line, line i for image i, or a single line for all.")}),
                "bad_samples": ([STOP, SKIP], {"default": STOP, "tooltip": (
                    "A sample whose image does not decode, whose pose file is missing, unreadable or empty, or "
                    "whose caption is missing or empty: stop with an error naming every such file, or leave them "
                    "out and list them in the report.")}),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": f"'{IMAGES}' only: the training pictures."}),
                "pose_keypoint": ("POSE_KEYPOINT", {"tooltip": (
                    f"'{IMAGES}' only: one frame per image (e.g. from a DWPose/OpenPose node run on the same images, "
                    "or HumanSD Pose from Photo).")}),
            },
        }

    RETURN_TYPES = (DATA_TYPE, "STRING", "IMAGE")
    RETURN_NAMES = ("data", "report", "preview")
    OUTPUT_TOOLTIPS = ("The checked samples, for HumanSD Train.",
                       "How many samples were found, and which were left out and why.",
                       "The first samples (up to 8) with their skeletons drawn over them: check that they line up.")
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Finds and checks training samples: each needs an image, its pose and a caption. Reports what it "
                   "found and what it left out. In-memory and synthetic samples are written once to ComfyUI's temp "
                   "folder in the layout `humansd train` reads.")

    @classmethod
    def IS_CHANGED(cls, source: str, folder: str = "", **_: Any) -> str:
        """A folder source reruns when any file in it changes (name, size or time)."""
        if source != FOLDER:
            return ""
        try:
            root = _input_folder(folder)
        except HumanSDError as exc:  # reported when the node runs
            return str(exc)
        if not root.is_dir():
            return str(root)
        digest = hashlib.sha256()
        for path in sorted(root.iterdir()):
            stat = path.stat()
            digest.update(f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def load(self, source: str, scenes: int, seed: int, size: int, folder: str, captions: str, bad_samples: str,
             images: Any = None, pose_keypoint: Any = None) -> tuple:
        import comfy.utils
        import folder_paths

        from ..humansd_core.training.samples import check_folder, synthetic_folder, write_sample_folder

        parent = Path(folder_paths.get_temp_directory()) / DATA_FOLDER
        if source == SYNTHETIC:
            bar = comfy.utils.ProgressBar(scenes)
            root = synthetic_folder(parent, scenes, size, seed, progress=lambda done, total: bar.update_absolute(done))
        elif source == FOLDER:
            root = _input_folder(folder)
        else:
            pictures, poses, texts = _memory_samples(images, pose_keypoint, captions)
            root = write_sample_folder(parent, pictures, poses, texts)
        checked = check_folder(root, skip_bad=bad_samples == SKIP)
        report = checked.report()
        logger.info("HumanSD training data: %s", report)
        return checked, report, _preview(checked.records[:8])


def _input_folder(folder: str) -> Path:
    """The folder ``folder`` names inside ComfyUI's input folder (a name that cannot leave it; a symlink there may
    point anywhere: the user put it there)."""
    import folder_paths

    from ..humansd_core.training.run_names import checked_name

    if not folder.strip():
        raise HumanSDError("folder: empty; name a folder (in ComfyUI's input folder) of images, pose files and "
                           "captions")
    return Path(folder_paths.get_input_directory()) / checked_name(folder, "folder")


def _memory_samples(images: Any, pose_keypoint: Any, captions: str) -> tuple[list, list, list]:
    """``(RGB uint8 arrays, PoseSets, captions)`` of the IMAGE, POSE_KEYPOINT and captions inputs."""
    from ..humansd_core.pose import parse_pose_data

    if images is None or pose_keypoint is None:
        raise HumanSDError(f"source '{IMAGES}': connect both images and pose_keypoint")
    pictures = _images_uint8(images)
    poses = parse_pose_data(pose_keypoint, "pose_keypoint")
    if len(poses) != len(pictures):
        raise HumanSDError(f"pose_keypoint: {len(poses)} frames for {len(pictures)} images; give one frame per image")
    lines = captions.strip().splitlines()
    if len(lines) == 1:
        lines = lines * len(pictures)
    if len(lines) != len(pictures):
        raise HumanSDError(f"captions: {len(lines)} lines for {len(pictures)} images; give one caption per image "
                           "(line i for image i) or a single line for all")
    return pictures, poses, [line.strip() for line in lines]


def _preview(records: list) -> Any:
    """Thumbnails (128 px) of the samples with their skeletons drawn over them, as one IMAGE batch."""
    import numpy as np
    from PIL import Image

    from ..humansd_core.pose import render_skeleton

    tiles = []
    for record in records:
        with Image.open(record.image) as img:
            base = np.asarray(img.convert("RGB"))
        drawn = render_skeleton(record.pose, thickness=max(2, min(base.shape[:2]) // 48), canvas=base.copy())
        tile = Image.fromarray(drawn)
        tile.thumbnail((128, 128))
        canvas = Image.new("RGB", (128, 128))
        canvas.paste(tile, ((128 - tile.width) // 2, (128 - tile.height) // 2))
        tiles.append(np.asarray(canvas))
    return _to_image_batch(tiles)


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
                                                         "Learning rate over the run: cosine decay to 0, or constant."}),
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
        loss_curve = _to_image_batch([result.loss_curve])
        validation = _to_image_batch(result.validation)
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
    "HumanSDTrainingData": HumanSDTrainingData,
    "HumanSDTrain": HumanSDTrain,
    "HumanSDSaveLoRA": HumanSDSaveLoRA,
    "HumanSDSaveCheckpoint": HumanSDSaveCheckpoint,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "HumanSDTrainingData": "HumanSD Training Data",
    "HumanSDTrain": "HumanSD Train (LoRA / full)",
    "HumanSDSaveLoRA": "HumanSD Save LoRA",
    "HumanSDSaveCheckpoint": "HumanSD Save Checkpoint",
}
