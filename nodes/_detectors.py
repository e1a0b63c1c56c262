"""The pose detectors of the photo and score nodes: their choices, tooltips, and the loaded OpenPose network.

Shared by ``pose_nodes.HumanSDPoseFromImage`` and ``sampling_nodes.HumanSDPoseScore`` (and the training
nodes' OpenPose estimator, which finds its weights the same way).
The OpenPose weights are found where comfyui_controlnet_aux keeps them (read when a
node runs: pack load order is unsorted) and the network (≈200 MB) is loaded once per
file and device.
"""
from __future__ import annotations

import functools
from pathlib import Path

AUX_PACK = "comfyui_controlnet_aux"
# Detector choices (optional inputs, last, so saved workflows keep their widgets).
OPENPOSE = "openpose body (controlnet-aux weights)"
MANNEQUIN = "mannequin (bundled, one person, synthetic figures only)"
MANNEQUIN_JUDGE = "mannequin judge (bundled, in the condition's boxes, synthetic figures only)"
PHOTO_DETECTORS = (OPENPOSE, MANNEQUIN)
SCORE_DETECTORS = (OPENPOSE, MANNEQUIN_JUDGE)
_OPENPOSE_HELP = (f"'{OPENPOSE}': the CMU OpenPose body network with the weights comfyui_controlnet_aux uses "
                  "(body_pose_model.pth, CMU non-commercial licence, never downloaded here); finds any number of "
                  "real people anywhere in real photos.")
_MANNEQUIN_HELP = ("a tiny estimator bundled with this pack (no weights to install), trained only on the pack's "
                   "synthetic mannequins (the embedded model's world): on real photos its output is meaningless.")
PHOTO_DETECTOR_TOOLTIP = (
    f"{_OPENPOSE_HELP} '{MANNEQUIN}': {_MANNEQUIN_HELP} It reads exactly ONE person from the whole image (each "
    "joint where its response is strongest; two people get mixed into one) and drops joints it is less than 10% "
    "sure of; weights_path and input_height are ignored.")
SCORE_DETECTOR_TOOLTIP = (
    f"{_OPENPOSE_HELP} Detected people are paired with the condition's by OKS. '{MANNEQUIN_JUDGE}': "
    f"{_MANNEQUIN_HELP} It reads each condition person's joints inside that person's box (its joints' box grown "
    "by 15% a side), so it measures whether the body is where the pose says; a box where no joint scores 10% or "
    "more counts as nobody detected. detector_weights is ignored.")


def aux_pack_dirs() -> list[Path]:
    """comfyui_controlnet_aux folders under ComfyUI's custom_nodes folders (any case);
    where it would be installed when it is not, so a missing-weights error names that place."""
    import folder_paths

    roots = [Path(root) for root in folder_paths.get_folder_paths("custom_nodes")]
    found = [p for root in roots if root.is_dir() for p in root.iterdir()
             if p.is_dir() and p.name.lower() == AUX_PACK]
    return found or [root / AUX_PACK for root in roots[:1]]


@functools.lru_cache(maxsize=1)
def _loaded(path: str, mtime_ns: int, device: str):  # noqa: ANN202 - an OpenPoseBodyDetector
    """One loaded detector, reused while the file (path, mtime) and device stay the same."""
    from ..humansd_core.pose.detect import OpenPoseBodyDetector

    return OpenPoseBodyDetector.from_file(path, device)


def openpose_detector(weights_path: str, device: str):  # noqa: ANN201 - an OpenPoseBodyDetector
    """The OpenPose body detector of ``weights_path`` on ``device`` (empty path: where comfyui_controlnet_aux
    keeps the weights)."""
    from ..humansd_core.pose.detect import find_openpose_weights

    path = find_openpose_weights(weights_path.strip() or None, aux_pack_dirs=aux_pack_dirs())
    return _loaded(str(path), path.stat().st_mtime_ns, device)
