"""HumanSD Training Data: the samples a training run learns from, checked one by one.

Synthetic mannequin scenes and in-memory samples (IMAGE + POSE_KEYPOINT + captions) are
written once to ComfyUI's temp folder in the layout ``humansd train`` reads; every source is
then checked by the core (``humansd_core/training/samples.py``), which names each bad file.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from ..humansd_core.errors import HumanSDError
from .training_nodes import CATEGORY, DATA_TYPE, to_image_batch

logger = logging.getLogger(__name__)

DATA_FOLDER = "humansd_training_data"  # under ComfyUI's temp folder: samples written from memory
SYNTHETIC, FOLDER, IMAGES = "synthetic scenes", "folder", "images"
STOP, SKIP = "stop with an error", "skip and report"


def _images_uint8(images: Any) -> list:
    from ._pose_render import images_to_uint8

    return list(images_to_uint8(images[..., :3], "images"))


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
                    "inside ComfyUI's input folder (subfolders with /; a symlink there reaches a dataset "
                    "elsewhere).")}),
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
    return to_image_batch(tiles)


NODE_CLASS_MAPPINGS = {"HumanSDTrainingData": HumanSDTrainingData}
NODE_DISPLAY_NAME_MAPPINGS = {"HumanSDTrainingData": "HumanSD Training Data"}
