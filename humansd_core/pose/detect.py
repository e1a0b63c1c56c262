"""Detect body poses in photos with the OpenPose body network (CMU, 18 parts), and read its heatmaps.

The network is controlnet-aux's ``bodypose_model`` (≈52 M parameters), the one
ControlNet's and comfyui_controlnet_aux's OpenPose preprocessors run, with the
user's ``body_pose_model.pth``. Only the network comes from controlnet-aux: loading
(``weights_only``), batching, and the grouping of parts into people
(:mod:`.openpose_decode`) are ours.

Licence: the OpenPose method, code and the ``body_pose_model.pth`` weights are
released by Carnegie Mellon University for **non-commercial research use only**;
whoever uses this detector with those weights accepts that licence.

Weights (nothing is downloaded): ``<ckpts>/lllyasviel/Annotators/body_pose_model.pth``
where comfyui_controlnet_aux keeps them (see :func:`find_openpose_weights`), or
any path given explicitly; ``.safetensors`` files with the same tensor names work
too.

Not included: DWPose/RTMPose. controlnet-aux's DWPose needs mmcv/mmpose/mmdet, and
``rtmlib`` requires both ``opencv-python`` and ``opencv-contrib-python``, which
clash with the single headless OpenCV wheel this project installs.
"""
from __future__ import annotations

import functools
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, HumanSDError, MissingWeightsError
from .formats_openpose import COCO17_FROM_OPENPOSE18
from .keypoints import PoseSet
from .openpose_decode import decode_people

logger = logging.getLogger(__name__)

WEIGHTS_ENV_VAR = "AUX_ANNOTATOR_CKPTS_PATH"
WEIGHTS_RELATIVE_PATH = Path("lllyasviel", "Annotators", "body_pose_model.pth")
STRIDE = 8
DEFAULT_INPUT_HEIGHT = 368  # the CMU body model's standard net input height


def _ckpts_dirs_of_aux_pack(pack_dir: Path) -> list[Path]:
    """Where comfyui_controlnet_aux at ``pack_dir`` keeps weights: its config.yaml, then ``ckpts/``."""
    dirs = []
    config = pack_dir / "config.yaml"
    if config.is_file():
        import yaml

        try:
            configured = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("annotator_ckpts_path")
        except (yaml.YAMLError, AttributeError, UnicodeDecodeError) as exc:
            logger.warning("ignoring unreadable %s: %s", config, exc)
            configured = None
        if configured:
            dirs.append(pack_dir / str(configured))  # relative to the pack, as the pack reads it
    dirs.append(pack_dir / "ckpts")
    return dirs


def find_openpose_weights(
    explicit: str | os.PathLike[str] | None = None,
    *,
    aux_pack_dirs: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Locate ``body_pose_model.pth`` (CMU licence: non-commercial use only).

    Args:
        explicit: a weights file, or a folder holding ``body_pose_model.pth`` directly
            or under ``lllyasviel/Annotators/``; when given, nothing else is searched.
        aux_pack_dirs: ``custom_nodes/comfyui_controlnet_aux`` folders to search after
            ``$AUX_ANNOTATOR_CKPTS_PATH`` (read now, at call time): each one's
            ``config.yaml`` ``annotator_ckpts_path``, then its ``ckpts/``.

    Raises:
        MissingWeightsError: naming every path tried and where to put the file.
    """
    if explicit is not None and str(explicit).strip():
        given = Path(str(explicit).strip()).expanduser()
        candidates = [given / WEIGHTS_RELATIVE_PATH.name, given / WEIGHTS_RELATIVE_PATH] if given.is_dir() else [given]
    else:
        roots = [Path(os.environ[WEIGHTS_ENV_VAR])] if os.environ.get(WEIGHTS_ENV_VAR) else []
        for pack in aux_pack_dirs:
            roots.extend(_ckpts_dirs_of_aux_pack(Path(pack)))
        candidates = [root / WEIGHTS_RELATIVE_PATH for root in roots]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = "\n  ".join(str(c) for c in candidates) or "(nowhere: no path given, $AUX_ANNOTATOR_CKPTS_PATH unset)"
    raise MissingWeightsError(
        f"OpenPose body weights {WEIGHTS_RELATIVE_PATH.name} not found; tried:\n  {tried}\n"
        f"Put the file (from the lllyasviel/Annotators repository on Hugging Face; CMU licence, "
        f"non-commercial use only) at <ckpts>/{WEIGHTS_RELATIVE_PATH.as_posix()}, <ckpts> being "
        f"${WEIGHTS_ENV_VAR} or custom_nodes/comfyui_controlnet_aux/ckpts, or give its path explicitly."
    )


@functools.cache
def body_network_class() -> type[nn.Module]:
    """controlnet-aux's ``bodypose_model`` class, loaded from its file alone.

    ``import controlnet_aux.open_pose.model`` first runs ``controlnet_aux/__init__``,
    which imports every detector (timm, scikit-image, ~100 modules, ~4 s); the
    model file itself needs only torch, so it is loaded on its own.
    """
    loaded = sys.modules.get("controlnet_aux.open_pose.model")
    if loaded is not None:
        return loaded.bodypose_model
    package = importlib.util.find_spec("controlnet_aux")
    if package is None or not package.submodule_search_locations:
        raise HumanSDError("pose detection needs the controlnet-aux package: pip install controlnet-aux")
    source = Path(next(iter(package.submodule_search_locations)), "open_pose", "model.py")
    spec = importlib.util.spec_from_file_location("_humansd_controlnet_aux_open_pose_model", source)
    if spec is None or spec.loader is None or not source.is_file():
        raise HumanSDError(f"controlnet-aux is installed without its OpenPose model file {source}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.bodypose_model


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pth`` (``weights_only``: no code runs) or ``.safetensors`` file."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise MissingWeightsError(f"{path}: no such file") from exc
    except Exception as exc:  # any unreadable or unsafe file is the user's input at fault
        raise CheckpointError(
            f"{path}: refused or unreadable as a plain tensor file (only tensors are loaded, never code): {exc}"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a mapping of names to tensors, got {type(state).__name__}")
    return state


def load_body_network(path: str | os.PathLike[str]) -> nn.Module:
    """Build ``bodypose_model`` and fill it from ``path`` (CPU, eval mode, no grad).

    The CMU file names each tensor by its layer only (``conv1_1.weight``); the
    network's own names add the block (``model0.conv1_1.weight``). Both are accepted.
    """
    path = Path(path)
    state = _read_tensors(path)
    network = body_network_class()()
    own = network.state_dict()
    filled, missing = {}, []
    for name, expected in own.items():
        tensor = state.get(name.split(".", 1)[1], state.get(name))
        if tensor is None:
            missing.append(name.split(".", 1)[1])
        elif tensor.shape != expected.shape:
            raise CheckpointError(
                f"{path}: tensor {name.split('.', 1)[1]} has shape {list(tensor.shape)}, "
                f"the OpenPose body network needs {list(expected.shape)}"
            )
        else:
            filled[name] = tensor.to(expected.dtype)
    if missing:
        raise CheckpointError(
            f"{path}: not an OpenPose body model; {len(missing)} of {len(own)} tensors missing "
            f"(first: {', '.join(missing[:3])})"
        )
    network.load_state_dict(filled)
    return network.eval().requires_grad_(False)


def _network_input(images: torch.Tensor) -> torch.Tensor:
    """RGB ``[B,3,H,W]`` in ``[0,1]`` → BGR ``x/256 − 0.5`` (``x`` in 0..255), padded
    right/bottom to a multiple of 8 with the grey the network was trained to ignore."""
    x = images.flip(1) * (255.0 / 256.0) - 0.5
    pad_h, pad_w = -x.shape[2] % STRIDE, -x.shape[3] % STRIDE
    return F.pad(x, (0, pad_w, 0, pad_h), value=0.0)  # 128/256 - 0.5 = 0


class OpenPoseBodyDetector:
    """The OpenPose body network on one device, for keypoints and heatmaps."""

    def __init__(self, network: nn.Module) -> None:
        self.network = network.eval().requires_grad_(False)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32) -> OpenPoseBodyDetector:
        """Load ``body_pose_model.pth`` (see :func:`find_openpose_weights`) onto ``device``."""
        return cls(load_body_network(path).to(device=device, dtype=dtype))

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.network.parameters()).dtype

    def _maps(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pafs [B,38,⌈H/8⌉,⌈W/8⌉], heatmaps [B,19,⌈H/8⌉,⌈W/8⌉])`` of RGB ``[0,1]`` images, float32."""
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] < 1 or images.shape[3] < 1:
            raise HumanSDError(f"images: expected RGB [B, 3, H, W], got {list(images.shape)}")
        x = _network_input(images.to(device=self.device, dtype=self.dtype))
        with torch.no_grad():
            pafs, heatmaps = self.network(x)
        h, w = -(-images.shape[2] // STRIDE), -(-images.shape[3] // STRIDE)
        return pafs[:, :, :h, :w].float(), heatmaps[:, :, :h, :w].float()

    def heatmaps(self, images: torch.Tensor) -> torch.Tensor:
        """Joint heatmaps for a batch, no grad, on the network's device.

        Args:
            images: RGB ``[B, 3, H, W]`` in ``[0, 1]``, any device and float dtype.

        Returns:
            float32 ``[B, 17, ⌈H/8⌉, ⌈W/8⌉]`` in ``[0, 1]`` (clamped), COCO-17 order.
        """
        _, maps = self._maps(images)
        return maps[:, list(COCO17_FROM_OPENPOSE18)].clamp_(0.0, 1.0)

    def detect(self, image: np.ndarray, *, input_height: int = DEFAULT_INPUT_HEIGHT,
               peak_threshold: float = 0.1, paf_threshold: float = 0.05) -> PoseSet:
        """People in one photo.

        Args:
            image: RGB uint8 ``[H, W, 3]``.
            input_height: the photo is resized to this height (aspect kept) for the
                network; 368 is the CMU default, smaller is faster and coarser.
            peak_threshold, paf_threshold: see :mod:`.openpose_decode`.

        Returns:
            COCO-17 keypoints in pixels of ``image`` (canvas = its size); a joint's
            confidence is its heatmap peak, a person's score the mean over its joints.
        """
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
                or image.shape[2] != 3 or min(image.shape[:2]) < 1:
            raise HumanSDError(
                f"image: expected RGB uint8 [H, W, 3], got {getattr(image, 'dtype', type(image).__name__)} "
                f"{list(np.shape(image))}"
            )
        if isinstance(input_height, bool) or not isinstance(input_height, int) or not STRIDE <= input_height <= 4096:
            raise HumanSDError(f"input_height: expected a whole number in [{STRIDE}, 4096], got {input_height!r}")
        height, width = image.shape[:2]
        in_h, in_w = input_height, max(1, round(width * input_height / height))
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        x = F.interpolate(x, size=(in_h, in_w), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)
        pafs, maps = self._maps(x)
        # Back to the network input grid: map cell j covers input pixels 8j..8j+7.
        pafs, maps = (F.interpolate(t, scale_factor=STRIDE, mode="bicubic", align_corners=False)[0, :, :in_h, :in_w]
                      for t in (pafs, maps))
        kp18, scores = decode_people(maps, pafs, peak_threshold=peak_threshold, paf_threshold=paf_threshold)
        kp = kp18[:, list(COCO17_FROM_OPENPOSE18)]
        found = kp[..., 2] > 0
        kp[..., 0] = np.where(found, (kp[..., 0] + 0.5) * (width / in_w) - 0.5, 0.0)
        kp[..., 1] = np.where(found, (kp[..., 1] + 0.5) * (height / in_h) - 0.5, 0.0)
        logger.debug("detected %d people in a %dx%d image", len(kp), width, height)
        return PoseSet(kp, width, height, scores)


class OpenPoseHeatmapEstimator:
    """The OpenPose body network as a :class:`~.heatmaps.HeatmapEstimator`: its 17 COCO joint maps
    (stride 8: ``h = ⌈H/8⌉``). The reference used HigherHRNet-w48 (MMPose), which is not available here."""

    needs_images = True

    def __init__(self, detector: OpenPoseBodyDetector) -> None:
        self.detector = detector

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> OpenPoseHeatmapEstimator:
        """Load ``body_pose_model.pth`` (see :func:`find_openpose_weights`)."""
        return cls(OpenPoseBodyDetector.from_file(path, device=device))

    def __call__(self, images: torch.Tensor, poses: Sequence[PoseSet] | None = None) -> torch.Tensor:
        return self.detector.heatmaps(images).to(images.device)
