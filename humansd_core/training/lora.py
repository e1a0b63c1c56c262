"""Low-rank adapters (LoRA) for the UNet, saved in a key format ComfyUI loads.

A wrapped layer computes ``base(x) + (alpha / rank) * up(down(x))``:

* ``nn.Linear [out, in]``: ``down [rank, in]``, ``up [out, rank]``;
* ``nn.Conv2d [out, in, k, k]``: ``down`` is a conv ``[rank, in, k, k]`` with the
  base conv's stride/padding/dilation, ``up`` a 1x1 conv ``[out, rank, 1, 1]``.

``up`` starts at zero, so a freshly adapted model computes exactly what the base
model computes. The wrappers keep the base ``weight``/``bias`` under their own
names, so the model's state-dict keys stay the LDM keys (``...to_q.weight``) with
``...to_q.lora_down.weight`` / ``...to_q.lora_up.weight`` added beside them.

Files (safetensors) hold, per adapted layer with LDM key ``<key>.weight``::

    diffusion_model.<key>.lora_up.weight    [out, rank] or [out, rank, 1, 1]
    diffusion_model.<key>.lora_down.weight  [rank, in] or [rank, in, k, k]
    diffusion_model.<key>.alpha             scalar

which ComfyUI's stock ``LoraLoaderModelOnly`` maps through the generic
``diffusion_model.<key>`` entry of ``comfy.lora.model_lora_keys_unet`` and applies
as ``W + alpha / rank * up.flatten(1) @ down.flatten(1)`` reshaped to ``W`` (the
same product :func:`merge_lora` computes). Metadata key ``humansd_lora`` holds a
JSON object with ``rank``, ``alpha``, ``targets`` and ``base_model_hash``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ..errors import CheckpointError, HumanSDError
from ..fileio import atomic_path
from .lora_targets import DEFAULT_TARGETS, INPUT_CONV_TARGET  # noqa: F401  (both part of this module's API)

logger = logging.getLogger(__name__)

KEY_PREFIX = "diffusion_model."
METADATA_KEY = "humansd_lora"


@dataclass(frozen=True)
class LoRAConfig:
    """What to adapt and how strongly.

    Attributes:
        rank: inner dimension r >= 1.
        alpha: scale numerator; the update is multiplied by ``alpha / rank``
            (``None`` = ``rank``, i.e. scale 1).
        targets: regular expressions searched in module names; a Linear or
            Conv2d whose name matches any is adapted.
    """

    rank: int = 8
    alpha: float | None = None
    targets: tuple[str, ...] = field(default=DEFAULT_TARGETS)

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise HumanSDError(f"LoRA rank: expected a whole number >= 1, got {self.rank!r}")
        if self.alpha is not None and not (math.isfinite(self.alpha) and self.alpha > 0):
            raise HumanSDError(f"LoRA alpha: expected a finite number > 0, got {self.alpha!r}")
        for pattern in self.targets:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise HumanSDError(f"LoRA target pattern {pattern!r} is not a valid regular expression: {exc}") from exc

    @property
    def effective_alpha(self) -> float:
        return float(self.rank if self.alpha is None else self.alpha)


class _LoRABase(nn.Module):
    """Shared parts: holds the base layer's own ``weight``/``bias`` parameters."""

    lora_down: nn.Module
    lora_up: nn.Module

    def __init__(self, base: nn.Linear | nn.Conv2d, rank: int, alpha: float) -> None:
        super().__init__()
        self.weight = base.weight
        self.bias = base.bias
        self.rank = rank
        self.alpha = float(alpha)

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def _init_adapter(self) -> None:
        nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_up.weight)

    def delta_weight(self) -> torch.Tensor:
        """``scale * up @ down`` shaped like ``weight`` (the update ComfyUI applies)."""
        up = self.lora_up.weight.flatten(1)
        down = self.lora_down.weight.flatten(1)
        return (self.scale * (up @ down)).reshape(self.weight.shape)


class LoRALinear(_LoRABase):
    """``nn.Linear`` plus a rank-r update; input ``[..., in]`` -> ``[..., out]``."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__(base, rank, alpha)
        kw = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_down = nn.Linear(base.in_features, rank, bias=False, **kw)
        self.lora_up = nn.Linear(rank, base.out_features, bias=False, **kw)
        self._init_adapter()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) + self.lora_up(self.lora_down(x)) * self.scale

    def merged(self) -> nn.Linear:
        out_f, in_f = self.weight.shape
        layer = nn.Linear(in_f, out_f, bias=self.bias is not None, device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(self.weight + self.delta_weight())
            if self.bias is not None:
                layer.bias.copy_(self.bias)
        return layer


class LoRAConv2d(_LoRABase):
    """``nn.Conv2d`` (groups 1, zero padding) plus a rank-r update; ``[B,in,H,W]`` -> ``[B,out,H',W']``."""

    def __init__(self, base: nn.Conv2d, rank: int, alpha: float) -> None:
        if base.groups != 1 or base.padding_mode != "zeros" or isinstance(base.padding, str):
            raise HumanSDError("LoRA supports Conv2d layers with groups=1, zero padding and numeric padding only")
        super().__init__(base, rank, alpha)
        self.stride, self.padding, self.dilation = base.stride, base.padding, base.dilation
        kw = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_down = nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding,
                                   base.dilation, bias=False, **kw)
        self.lora_up = nn.Conv2d(rank, base.out_channels, 1, bias=False, **kw)
        self._init_adapter()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
        return out + self.lora_up(self.lora_down(x)) * self.scale

    def merged(self) -> nn.Conv2d:
        out_c, in_c, kh, kw_ = self.weight.shape
        layer = nn.Conv2d(in_c, out_c, (kh, kw_), self.stride, self.padding, self.dilation,
                          bias=self.bias is not None, device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(self.weight + self.delta_weight())
            if self.bias is not None:
                layer.bias.copy_(self.bias)
        return layer


LoRALayer = LoRALinear | LoRAConv2d


def _wrap(layer: nn.Module, rank: int, alpha: float) -> LoRALayer:
    if isinstance(layer, nn.Linear):
        return LoRALinear(layer, rank, alpha)
    if isinstance(layer, nn.Conv2d):
        return LoRAConv2d(layer, rank, alpha)
    raise HumanSDError(f"LoRA can adapt nn.Linear and nn.Conv2d layers only, not {type(layer).__name__}")


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def lora_layers(model: nn.Module) -> dict[str, LoRALayer]:
    """The adapted layers of ``model`` by module name (LDM key without ``.weight``)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (LoRALinear, LoRAConv2d))}


def apply_lora(model: nn.Module, config: LoRAConfig = LoRAConfig()) -> dict[str, LoRALayer]:
    """Wrap every Linear/Conv2d of ``model`` whose name matches ``config.targets``.

    Freezes all parameters of ``model`` except the new ``lora_down``/``lora_up``
    weights. Returns the adapted layers by name. Raises :class:`HumanSDError` if no
    layer matches (a wrong pattern would otherwise train nothing silently).
    """
    patterns = [re.compile(p) for p in config.targets]
    names = [name for name, m in model.named_modules()
             if isinstance(m, (nn.Linear, nn.Conv2d)) and any(p.search(name) for p in patterns)]
    if not names:
        raise HumanSDError(f"LoRA targets {list(config.targets)} match no Linear/Conv2d layer of the model")
    for param in model.parameters():
        param.requires_grad_(False)
    for name in names:
        _replace(model, name, _wrap(model.get_submodule(name), config.rank, config.effective_alpha))
    logger.info("LoRA rank %d alpha %g on %d layers", config.rank, config.effective_alpha, len(names))
    return lora_layers(model)


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable adapter weights (``lora_down``/``lora_up``) of ``model``."""
    return [p for layer in lora_layers(model).values() for p in (layer.lora_down.weight, layer.lora_up.weight)]


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight (``W + alpha/rank * up @ down``), in place.

    Afterwards ``model`` holds plain Linear/Conv2d layers and computes what the
    adapted model computed (up to float rounding). Returns ``model``.
    """
    for name, layer in lora_layers(model).items():
        _replace(model, name, layer.merged())
    return model


def lora_state_dict(model: nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The adapters in ComfyUI's generic key format (see the module docstring)."""
    out: dict[str, torch.Tensor] = {}
    for name, layer in lora_layers(model).items():
        key = KEY_PREFIX + name
        up, down = layer.lora_up.weight.detach(), layer.lora_down.weight.detach()
        if dtype is not None:
            up, down = up.to(dtype), down.to(dtype)
        out[f"{key}.lora_up.weight"] = up.contiguous().cpu()
        out[f"{key}.lora_down.weight"] = down.contiguous().cpu()
        out[f"{key}.alpha"] = torch.tensor(layer.alpha, dtype=torch.float32)
    return out


def base_weights_hash(model: nn.Module) -> str:
    """SHA-256 (hex) over the model's non-LoRA parameters and buffers: names, shapes, dtypes, bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if ".lora_down." in name or ".lora_up." in name:
            continue
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_lora(model: nn.Module, path: str | Path, *, targets: Sequence[str] | None = None,
              base_model_hash: str | None = None, dtype: torch.dtype | None = None,
              extra_metadata: dict | None = None) -> None:
    """Write the adapters of ``model`` to ``path`` (safetensors, atomic).

    ``targets``: the patterns used (metadata only); ``base_model_hash``: identifies
    the base weights (default: :func:`base_weights_hash` of ``model``, which reads
    every weight once — pass a precomputed value when saving often);
    ``extra_metadata``: more JSON-ready entries for the ``humansd_lora`` object
    (e.g. the trainer's steps and loss settings).
    """
    layers = lora_layers(model)
    if not layers:
        raise HumanSDError("save_lora: the model has no LoRA layers (call apply_lora or load_lora first)")
    ranks = sorted({layer.rank for layer in layers.values()})
    alphas = sorted({layer.alpha for layer in layers.values()})
    meta = {
        "rank": ranks[0] if len(ranks) == 1 else ranks,
        "alpha": alphas[0] if len(alphas) == 1 else alphas,
        "targets": list(targets) if targets is not None else None,
        "modules": len(layers),
        "base_model_hash": base_model_hash if base_model_hash is not None else base_weights_hash(model),
        "key_format": "diffusion_model.<ldm key>.lora_up.weight/.lora_down.weight/.alpha",
        **(extra_metadata or {}),
    }
    tensors = lora_state_dict(model, dtype)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(meta)})


@dataclass(frozen=True)
class LoRAFileInfo:
    """What :func:`load_lora` found: adapted module names and the file's metadata (``{}`` if none)."""

    modules: tuple[str, ...]
    metadata: dict


def load_lora(model: nn.Module, path: str | Path) -> LoRAFileInfo:
    """Load a LoRA file written by :func:`save_lora` (or any file in that key format) into ``model``.

    Layers not yet adapted are wrapped with the file's rank and alpha; already
    adapted layers get their adapter weights replaced (their rank must match).
    Raises :class:`CheckpointError` naming the file and key for an unknown module,
    a layer that is not Linear/Conv2d, or a shape that does not fit.
    """
    path = Path(path)
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except Exception as exc:  # safetensors raises several types for unreadable files
        raise CheckpointError(f"{path}: not a readable safetensors LoRA file ({exc})") from exc
    with handle:
        raw_meta = (handle.metadata() or {}).get(METADATA_KEY)
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (safe_open is no dict)
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        match = re.fullmatch(re.escape(KEY_PREFIX) + r"(.+)\.(lora_up\.weight|lora_down\.weight|alpha)", key)
        if match is None:
            raise CheckpointError(f"{path}: unexpected key {key!r} (expected diffusion_model.<key>.lora_up.weight, "
                                  ".lora_down.weight or .alpha)")
        groups.setdefault(match.group(1), {})[match.group(2)] = tensor
    if not groups:
        raise CheckpointError(f"{path}: no LoRA weights in file")
    modules = dict(model.named_modules())
    for name, parts in groups.items():
        if "lora_up.weight" not in parts or "lora_down.weight" not in parts:
            raise CheckpointError(f"{path}: {KEY_PREFIX}{name} lacks lora_up.weight or lora_down.weight")
        layer = modules.get(name)
        if not isinstance(layer, (nn.Linear, nn.Conv2d, LoRALinear, LoRAConv2d)):
            what = "no such module" if layer is None else f"a {type(layer).__name__}, not Linear/Conv2d"
            raise CheckpointError(f"{path}: key {KEY_PREFIX}{name}: {what} in the model")
        up, down = parts["lora_up.weight"], parts["lora_down.weight"]
        rank = down.shape[0]
        alpha = float(parts["alpha"].item()) if "alpha" in parts else float(rank)
        if not isinstance(layer, (LoRALinear, LoRAConv2d)):
            layer = _wrap(layer, rank, alpha)
            _replace(model, name, layer)
        elif layer.rank != rank:
            raise CheckpointError(f"{path}: {KEY_PREFIX}{name} has rank {rank}, the model's adapter rank {layer.rank}")
        layer.alpha = alpha
        for target, value, part in ((layer.lora_up.weight, up, "lora_up"), (layer.lora_down.weight, down, "lora_down")):
            if tuple(target.shape) != tuple(value.shape):
                raise CheckpointError(f"{path}: {KEY_PREFIX}{name}.{part}.weight has shape {list(value.shape)}, "
                                      f"the model expects {list(target.shape)}")
            with torch.no_grad():
                target.copy_(value.to(target.dtype))
    metadata = json.loads(raw_meta) if raw_meta else {}
    return LoRAFileInfo(modules=tuple(sorted(groups)), metadata=metadata)
