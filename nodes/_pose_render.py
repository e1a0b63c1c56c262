"""Shared pieces of the pose nodes: IMAGE <-> uint8 arrays, skeleton drawing options,
files from ComfyUI's input folder.

IMAGE tensors are float32 ``[N, H, W, 3]`` in ``[0, 1]`` on the CPU; the core works on
RGB uint8 ``[H, W, 3]`` arrays and :class:`~humansd_core.pose.PoseSet` frames.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..humansd_core.errors import HumanSDError

PLACEMENTS = ("fit", "fill", "as-is")
MAX_SIZE = 16384

SIZE_INPUTS = {
    "width": ("INT", {"default": 0, "min": 0, "max": MAX_SIZE, "step": 8,
                      "tooltip": "Canvas (skeleton image) width in pixels; 0 = the pose's own canvas width."}),
    "height": ("INT", {"default": 0, "min": 0, "max": MAX_SIZE, "step": 8,
                       "tooltip": "Canvas (skeleton image) height in pixels; 0 = the pose's own canvas height."}),
    "placement": (list(PLACEMENTS), {
        "default": "fit",
        "tooltip": "How a pose moves onto a canvas of another size: fit = scale to fit whole and centre, "
                   "fill = scale to cover and centre (parts may fall outside), as-is = keep pixel positions."}),
}
DRAW_INPUTS = {
    "threshold": ("FLOAT", {"default": 0.05, "min": 0.0, "max": 1.0, "step": 0.01,
                            "tooltip": "A limb is drawn when both its joints have a confidence above this "
                                       "(0.05 is HumanSD's inference setting)."}),
    "thickness": ("INT", {"default": 10, "min": 1, "max": 256,
                          "tooltip": "Limb line width in pixels; HumanSD was trained with 10 at 512 px."}),
    "scale_thickness": ("BOOLEAN", {"default": False,
                                    "tooltip": "Scale the line width with the image: thickness applies at 512 px "
                                               "on the shorter side and grows or shrinks in proportion."}),
}


def images_to_uint8(images: torch.Tensor, what: str = "image") -> np.ndarray:
    """IMAGE ``[N,H,W,C]`` in ``[0,1]`` → RGB uint8 ``[N,H,W,3]`` (extra channels dropped)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] < 3:
        raise HumanSDError(f"{what}: expected an IMAGE batch [N, H, W, 3], got {list(getattr(images, 'shape', []))}")
    return (images[..., :3].float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


def uint8_to_images(pixels: np.ndarray) -> torch.Tensor:
    """RGB uint8 ``[N,H,W,3]`` → IMAGE float32 ``[N,H,W,3]`` in ``[0,1]`` on the CPU."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).float() / 255.0


def draw_frames(poses: Sequence, width: int, height: int, placement: str, threshold: float, thickness: int,
                scale_thickness: bool) -> tuple[torch.Tensor, list[dict]]:
    """Place every frame on one canvas and draw it.

    ``width``/``height`` 0 take the first frame's canvas. Returns the skeleton IMAGE
    ``[N,H,W,3]`` and the placed frames as POSE_KEYPOINT (points drawn = points written).
    """
    from ..humansd_core.pose import place_on_canvas, render_batch, scaled_thickness, to_pose_keypoint

    if not poses:
        raise HumanSDError("pose: no frames to draw (an empty list)")
    width = width or poses[0].canvas_width
    height = height or poses[0].canvas_height
    placed = [place_on_canvas(pose, width, height, placement) for pose in poses]
    if scale_thickness:
        thickness = scaled_thickness(width, height, base=thickness)
    pixels = render_batch(placed, width, height, threshold=threshold, thickness=thickness)
    return uint8_to_images(pixels), to_pose_keypoint(placed, threshold=threshold)


def pose_files_in_input() -> list[str]:
    """``.json``/``.npz`` files at the top of ComfyUI's input folder, sorted."""
    import folder_paths

    folder = Path(folder_paths.get_input_directory())
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".json", ".npz"))


def input_file(name: str) -> Path:
    """``name`` (optionally annotated ``[input]``/``[output]``/``[temp]``) inside its ComfyUI folder.

    Raises ``HumanSDError`` for a name that leads outside that folder or to no file.
    """
    import folder_paths

    clean, base = folder_paths.annotated_filepath(name)
    root = Path(base or folder_paths.get_input_directory()).resolve()
    path = (root / clean).resolve()
    if path == root or not path.is_relative_to(root):
        raise HumanSDError(f"pose_file: {name!r} points outside ComfyUI's folder {root}")
    if not path.is_file():
        raise HumanSDError(f"pose_file: {name!r} is not a file in {root}")
    return path
