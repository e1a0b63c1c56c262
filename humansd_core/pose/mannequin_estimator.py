"""Two tiny heatmap pose estimators trained on synthetic mannequins: the networks and their files.

Both map RGB images ``[B,3,H,W]`` in ``[0,1]`` to COCO-17 joint heatmaps
``[B,17,h,w]`` in ``[0,1]`` (a :class:`~.heatmaps.HeatmapEstimator`), with
different architectures so that one can shape a training loss and the other judge
the result:

* ``"strided"``: a plain stride-4 conv net (stride-2 stem, residual blocks at 1/4,
  a 1/8 context branch added back) — the loss's estimator;
* ``"unet"``: a small U-Net (encoder to 1/16, decoder with skip connections back
  to 1/2), stride-2 heatmaps — the judge.

Each network works at a fixed ``input_size`` (longer image side); the wrapper
resizes any input to it, so heatmaps come at ``input_size / stride`` whatever the
image size. Weights are safetensors files with the :class:`EstimatorConfig` as
JSON in the metadata key ``"humansd_estimator"``; the two trained ones ship in
``humansd_core/assets/weights/`` (see :func:`shipped_estimator`; how they were
trained: :mod:`humansd_core.embedded.recipe.estimators`). Heatmap cells follow the
convention of :mod:`.heatmaps`.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ..assets import ESTIMATOR_NAMES, shipped_weights
from ..errors import CheckpointError, HumanSDError
from ..fileio import atomic_path
from .keypoints import NUM_KEYPOINTS, PoseSet

METADATA_KEY = "humansd_estimator"
Architecture = Literal["strided", "unet"]
Role = Literal["loss", "judge"]


@dataclass(frozen=True)
class EstimatorConfig:
    """Architecture of a tiny estimator.

    ``arch``: ``"strided"`` (output stride 4) or ``"unet"`` (output stride 2);
    ``width``: channels of the first stage; ``input_size``: the longer image side
    the network runs at (multiple of 16).
    """

    arch: Architecture = "strided"
    width: int = 16
    input_size: int = 64

    def __post_init__(self) -> None:
        if self.arch not in get_args(Architecture) or self.width < 1 or self.input_size < 16 or self.input_size % 16:
            raise HumanSDError(f"estimator config: unsupported {self!r} (arch one of {get_args(Architecture)}, "
                               f"width >= 1, input_size a multiple of 16)")

    @property
    def stride(self) -> int:
        return 4 if self.arch == "strided" else 2


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels), nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


def _head(channels: int) -> nn.Conv2d:
    head = nn.Conv2d(channels, NUM_KEYPOINTS, 1)
    nn.init.constant_(head.bias, -4.0)  # start near 0 (sigmoid(-4) ≈ 0.018)
    return head


class StridedNet(nn.Module):
    """``[B,3,H,W]`` → logits ``[B,17,H/4,W/4]`` (H, W multiples of 8)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(_conv(3, w, 2), _conv(w, w), _conv(w, 2 * w, 2), _Residual(2 * w), _Residual(2 * w))
        self.context = nn.Sequential(_conv(2 * w, 4 * w, 2), _Residual(4 * w), _Residual(4 * w),
                                     nn.Conv2d(4 * w, 2 * w, 1))
        self.fuse = nn.Sequential(_Residual(2 * w), _Residual(2 * w))
        self.head = _head(2 * w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + F.interpolate(self.context(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(self.fuse(x))


class TinyUNet(nn.Module):
    """``[B,3,H,W]`` → logits ``[B,17,H/2,W/2]`` (H, W multiples of 16)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        w = width
        chans = [w, 2 * w, 4 * w, 4 * w]  # at 1/2, 1/4, 1/8, 1/16
        self.stem = nn.Sequential(_conv(3, w, 2), _conv(w, w))
        self.down = nn.ModuleList([nn.Sequential(_conv(chans[i], chans[i + 1], 2), _Residual(chans[i + 1]))
                                   for i in range(3)])
        self.up = nn.ModuleList([_conv(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(3))])
        self.refine = _Residual(w)
        self.head = _head(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.up:
            skip = skips.pop()
            x = up(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1))
        return self.head(self.refine(x))


def build_network(config: EstimatorConfig) -> nn.Module:
    return StridedNet(config.width) if config.arch == "strided" else TinyUNet(config.width)


class TinyHeatmapEstimator:
    """A :class:`~.heatmaps.HeatmapEstimator` over a tiny network (eval mode, no grad).

    ``estimator(images [B,3,H,W] in [0,1]) -> heatmaps [B,17,h,w]`` in ``[0,1]``,
    ``h, w`` = the image resized to ``input_size`` (longer side, multiples of 16)
    divided by the stride.
    """

    needs_images = True

    def __init__(self, network: nn.Module, config: EstimatorConfig) -> None:
        self.network = network.eval()
        self.config = config

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> TinyHeatmapEstimator:
        """Load a safetensors file written by :meth:`save` (safetensors only, never pickle)."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such estimator file")
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        if METADATA_KEY not in meta:
            raise CheckpointError(f"{path}: not a tiny estimator file (no {METADATA_KEY!r} metadata)")
        try:
            config = EstimatorConfig(**json.loads(meta[METADATA_KEY]))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: bad {METADATA_KEY!r} metadata: {exc}") from None
        network = build_network(config)
        try:
            network.load_state_dict(load_file(str(path), device=str(device)))
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not fit {config}: {exc}") from None
        return cls(network.to(device), config)

    def save(self, path: str | os.PathLike[str], extra: dict[str, str] | None = None, half: bool = False) -> None:
        """Write weights + config (and ``extra`` metadata strings) as safetensors, atomically; ``half``: floating
        tensors in fp16 (half the file; :meth:`from_file` loads them into the float32 network)."""
        state = {k: v.detach().contiguous().cpu() for k, v in self.network.state_dict().items()}
        if half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        meta = {METADATA_KEY: json.dumps(asdict(self.config)), **(extra or {})}
        with atomic_path(path) as tmp:
            save_file(state, str(tmp), metadata=meta)

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """``(h, w)`` the network sees for an ``height`` x ``width`` image (multiples of 16)."""
        scale = self.config.input_size / max(height, width)
        return max(16, round(height * scale / 16) * 16), max(16, round(width * scale / 16) * 16)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, poses: Sequence[PoseSet] | None = None) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise HumanSDError(f"estimator input: expected images [B,3,H,W], got {list(images.shape)}")
        size = self.working_size(*images.shape[-2:])
        param = next(self.network.parameters())
        x = images.to(param.device, param.dtype)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=size[0] < x.shape[-2])
        return torch.sigmoid(self.network(x)).to(images.device)


def shipped_estimator(role: Role, device: str | torch.device = "cpu") -> TinyHeatmapEstimator:
    """The bundled estimator for ``role``: ``"loss"`` (strided net) or ``"judge"`` (U-Net)."""
    if role not in ESTIMATOR_NAMES:
        raise HumanSDError(f"estimator role: expected one of {sorted(ESTIMATOR_NAMES)}, got {role!r}")
    return TinyHeatmapEstimator.from_file(shipped_weights(ESTIMATOR_NAMES[role]), device)
