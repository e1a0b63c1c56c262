"""Build, load and save the three HumanSD networks in the LDM checkpoint layout.

A file holds ``model.diffusion_model.*`` (UNet), ``first_stage_model.*`` (VAE) and
``cond_stage_model.model.*`` (text tower). Loading builds the networks on the meta
device and assigns each tensor as it is read and cast (``load_state_dict(assign=
True)``), so peak memory stays close to the loaded weights' size. Files we write are
safetensors with the :class:`ModelConfig` JSON in metadata key ``humansd_config``;
files without it are identified by their tensor shapes.
"""
from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..fileio import atomic_write_with
from .checkpoint_read import TensorSource, open_tensors
from .configs import CONFIG_METADATA_KEY, NAMED_CONFIGS, ModelConfig
from .text_encoder import TextEncoder
from .unet import UNetModel
from .vae import AutoencoderKL

logger = logging.getLogger(__name__)

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.model."
UNET_INPUT_KEY = UNET_PREFIX + "input_blocks.0.0.weight"


@dataclass
class HumanSDModels:
    """The three networks of one checkpoint and the config they were built from."""

    unet: UNetModel
    vae: AutoencoderKL
    text_encoder: TextEncoder
    config: ModelConfig

    def parts(self) -> list[tuple[str, nn.Module]]:
        """``(key prefix, module)`` for UNet, VAE and text tower, in file order."""
        return [(UNET_PREFIX, self.unet), (VAE_PREFIX, self.vae), (TEXT_PREFIX, self.text_encoder)]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """All weights under their full LDM checkpoint keys."""
        return {prefix + k: v for prefix, module in self.parts() for k, v in module.state_dict().items()}


def build_models(config: ModelConfig, device: str | torch.device | None = None) -> HumanSDModels:
    """Fresh networks for ``config`` (LDM initialisation), on ``device`` (``"meta"`` builds no weights)."""
    with torch.device(device or "cpu"):
        return HumanSDModels(
            UNetModel(config.unet), AutoencoderKL(config.vae), TextEncoder(config.text), config
        )


@functools.lru_cache(maxsize=4)
def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every checkpoint key of ``config``'s layout and its shape (built on the meta device)."""
    models = build_models(config, "meta")
    return {k: tuple(v.shape) for k, v in models.state_dict().items()}


def _plain_sd_error(path: Path | str) -> CheckpointError:
    return CheckpointError(
        f"{path} is a plain Stable Diffusion model (4-channel UNet input), not HumanSD; "
        f"make a HumanSD starting point with `humansd init-from-sd21 {path} OUT.safetensors`"
    )


def identify_config(
    shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, str], path: Path | str
) -> ModelConfig:
    """The file's config: its ``humansd_config`` metadata, else the named config whose
    layout its shapes match. A 4-channel UNet is a plain SD model: CheckpointError."""
    if UNET_INPUT_KEY in shapes and len(shapes[UNET_INPUT_KEY]) == 4 and shapes[UNET_INPUT_KEY][1] == 4:
        raise _plain_sd_error(path)
    if CONFIG_METADATA_KEY in metadata:
        return ModelConfig.from_json(metadata[CONFIG_METADATA_KEY])
    if UNET_INPUT_KEY not in shapes:
        raise CheckpointError(f"{path}: no UNet found ({UNET_INPUT_KEY} missing); not an LDM/HumanSD checkpoint")
    for name, factory in NAMED_CONFIGS.items():
        config = factory()
        expected = expected_shapes(config)
        if all(shapes.get(k) == s for k, s in expected.items()):
            logger.info("%s: no config metadata; layout matches %r", Path(path).name, name)
            return config
    raise CheckpointError(
        f"{path}: unrecognised model layout (UNet input {list(shapes[UNET_INPUT_KEY])}) and no "
        f"{CONFIG_METADATA_KEY!r} metadata; known layouts: {sorted(NAMED_CONFIGS)}"
    )


def _summarise(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(sorted(keys)[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def check_layout(shapes: Mapping[str, tuple[int, ...]], config: ModelConfig, path: Path | str) -> list[str]:
    """Raise CheckpointError for missing or mis-shaped keys; return the extra keys (ignored)."""
    expected = expected_shapes(config)
    missing = [k for k in expected if k not in shapes]
    if missing:
        raise CheckpointError(f"{path}: {len(missing)} tensors missing: {_summarise(missing)}")
    wrong = [f"{k} {list(shapes[k])} (expected {list(s)})" for k, s in expected.items() if shapes[k] != s]
    if wrong:
        raise CheckpointError(f"{path}: {len(wrong)} tensors have the wrong shape: {_summarise(wrong, 4)}")
    extra = [k for k in shapes if k not in expected]
    if extra:
        groups = Counter(k.split(".", 1)[0] + ".*" if "." in k else k for k in extra)
        summary = ", ".join(f"{name} x{n}" if n > 1 else name for name, n in groups.most_common())
        logger.info("%s: ignoring %d extra tensors: %s", Path(path).name, len(extra), summary)
    return extra


def _load_part(source: TensorSource, prefix: str, module: nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    state = {}
    for key in module.state_dict():
        state[key] = source.get(prefix + key, dtype).to(device)
    module.load_state_dict(state, strict=True, assign=True)


def load_models(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    config: ModelConfig | None = None,
) -> HumanSDModels:
    """Load UNet, VAE and text tower from a HumanSD safetensors or Lightning ``.ckpt``.

    Never runs pickled code; extra tensors (EMA, pose estimator, DDPM buffers) are
    ignored with one log line; missing ones raise CheckpointError listing them. The
    networks come back in ``eval()`` mode with ``requires_grad`` off (a trainer
    turns it on for what it trains). ``config`` overrides the file's metadata/shapes.
    On the CPU the UNet's weights are made channels-last (measured faster there).
    """
    device = torch.device(device)
    with open_tensors(path) as source:
        config = config or identify_config(source.shapes, source.metadata, path)
        check_layout(source.shapes, config, path)
        models = build_models(config, "meta")
        for prefix, module in models.parts():
            _load_part(source, prefix, module, device, dtype)
    models.text_encoder.rebuild_causal_mask()
    if device.type == "cpu":  # measured faster on CPU (see UNetModel); untested elsewhere, so left as is
        models.unet.to(memory_format=torch.channels_last)
    for _, module in models.parts():
        module.eval().requires_grad_(False)
    return models


def save_models(
    models_or_state_dict: HumanSDModels | Mapping[str, torch.Tensor],
    path: str | Path,
    config: ModelConfig | None = None,
    dtype: torch.dtype | None = None,
    extra_metadata: Mapping[str, str] | None = None,
) -> None:
    """Write a safetensors file (atomically) in the LDM layout with ``config`` in metadata.

    ``models_or_state_dict``: :class:`HumanSDModels` (its config is used when
    ``config`` is None) or a mapping with full LDM keys; it must hold exactly the
    config's layout (extra keys are dropped). ``dtype`` casts floating tensors.
    ``extra_metadata``: more string entries beside the config (e.g. how it was trained).
    """
    from .safetensors_write import write_safetensors

    if isinstance(models_or_state_dict, HumanSDModels):
        config = config or models_or_state_dict.config
        state = models_or_state_dict.state_dict()
    else:
        state = dict(models_or_state_dict)
    if config is None:
        raise CheckpointError(f"{path}: a model config is required to save a state dict")
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    for key in check_layout(shapes, config, path):
        del state[key]
    out = dict(sorted(state.items()))
    # Metadata and tensors in a fixed order: identical saves are identical files. Tensors are
    # cast and written one at a time (no second copy of the model in memory).
    metadata = {CONFIG_METADATA_KEY: config.to_json(), **dict(sorted((extra_metadata or {}).items()))}
    atomic_write_with(path, lambda tmp: write_safetensors(tmp, out, metadata, dtype))
    logger.info("wrote %s (%d tensors)", path, len(out))
