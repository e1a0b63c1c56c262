"""Checkpoint files from other checkpoints or from nothing.

* :func:`convert_checkpoint`: a HumanSD ``.ckpt`` (or any file we read) -> our
  safetensors (model tensors only, config in metadata, optionally fp16);
* :func:`init_from_sd21`: an SD2.1 checkpoint (4-channel UNet) -> a HumanSD starting
  point: the input conv's 4 latent channels copied, the pose channels zero;
* :func:`write_random_checkpoint`: a full-layout file of random weights (tests,
  benchmarks), generated one tensor at a time so the full fp32 model never exists.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from .model_io import UNET_INPUT_KEY, check_layout, expected_shapes, identify_config, save_models
from .checkpoint_read import open_tensors
from .configs import ModelConfig, sd21_humansd_config

logger = logging.getLogger(__name__)


def convert_checkpoint(
    src: str | Path, dst: str | Path, fp16: bool = False, config: ModelConfig | None = None
) -> ModelConfig:
    """Rewrite a HumanSD checkpoint as safetensors with its config in metadata.

    ``config`` overrides identification by metadata/shapes. Extra tensors (EMA,
    pose estimator, DDPM buffers) are dropped; ``fp16`` casts floating tensors.
    Returns the config written.
    """
    with open_tensors(src) as source:
        if config is None:
            config = identify_config(source.shapes, source.metadata, src)
        check_layout(source.shapes, config, src)
        dtype = torch.float16 if fp16 else None
        state = {key: source.get(key, dtype) for key in expected_shapes(config)}
        save_models(state, dst, config)
    return config


def init_from_sd21(src: str | Path, dst: str | Path, config: ModelConfig | None = None) -> ModelConfig:
    """Make a HumanSD checkpoint from an SD2.1(-base) one (default config ``sd21_humansd``).

    ``input_blocks.0.0.weight [C, 4, 3, 3]`` becomes ``[C, 8, 3, 3]``: channels 0..3
    copied (noisy latent), 4..7 zero (pose latent), so the new model starts out
    computing exactly what SD2.1 did. Everything else is copied; dtype kept.
    """
    config = config or sd21_humansd_config()
    latent_channels = config.vae.embed_dim
    with open_tensors(src) as source:
        shapes = dict(source.shapes)
        if UNET_INPUT_KEY not in shapes:
            raise CheckpointError(f"{src}: no UNet found ({UNET_INPUT_KEY} missing); not an SD checkpoint")
        in_shape = shapes[UNET_INPUT_KEY]
        if len(in_shape) != 4 or in_shape[1] != latent_channels:
            raise CheckpointError(
                f"{src}: UNet input conv is {list(in_shape)}; expected {latent_channels} input channels "
                "(a plain SD2.1 model)"
            )
        shapes[UNET_INPUT_KEY] = (in_shape[0], config.unet.in_channels, *in_shape[2:])
        check_layout(shapes, config, src)
        state = {key: source.get(key) for key in expected_shapes(config)}
        old = state[UNET_INPUT_KEY]
        new = torch.zeros(shapes[UNET_INPUT_KEY], dtype=old.dtype)
        new[:, :latent_channels] = old
        state[UNET_INPUT_KEY] = new
        save_models(state, dst, config)
    return config


def _random_tensor(key: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """float32 random weights giving finite, non-trivial activations.

    Matrices/kernels: N(0, 1/fan_in) (variance preserving); 1-D weights (norm
    scales): 1 + N(0, 0.02²); biases: N(0, 0.02²); ``logit_scale``: log(1/0.07).
    """
    if key.endswith("logit_scale"):
        return torch.full(shape, math.log(1 / 0.07))
    tensor = torch.empty(shape)
    if len(shape) >= 2:
        return tensor.normal_(0.0, math.prod(shape[1:]) ** -0.5, generator=generator)
    tensor.normal_(0.0, 0.02, generator=generator)
    return tensor.add_(1.0) if key.endswith("weight") else tensor


def random_tensors(
    shapes: Mapping[str, tuple[int, ...]], seed: int = 0
) -> Iterator[tuple[str, torch.Tensor]]:
    """``(key, float32 tensor)`` of random weights for any layout, in sorted key order, one at a time.

    The scheme of :func:`_random_tensor` (chosen by each key's name and shape), from one
    generator seeded with ``seed``: the same ``shapes`` and ``seed`` give the same tensors.
    """
    generator = torch.Generator().manual_seed(seed)
    for key, shape in sorted(shapes.items()):
        yield key, _random_tensor(key, tuple(shape), generator)


def random_state_dict(
    config: ModelConfig, dtype: torch.dtype = torch.float16, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random weights for ``config``'s full layout (LDM keys), deterministic in ``seed``.

    Generated in float32 one tensor at a time and cast to ``dtype`` at once, so peak
    memory is the result's size plus one float32 tensor.
    """
    return {key: tensor.to(dtype) for key, tensor in random_tensors(expected_shapes(config), seed)}


def fill_random_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Overwrite every floating parameter and buffer of ``module`` in place with :func:`random_tensors`.

    For modules built with uninitialised storage (``torch.empty``, ``Module.to_empty``), e.g.
    another implementation of the same layout: keys are the module's ``state_dict`` names,
    so two modules with the same names and shapes get the same weights. Peak extra memory
    is one float32 tensor. Returns ``module``.
    """
    state = {k: v for k, v in module.state_dict(keep_vars=True).items() if v.is_floating_point()}
    with torch.no_grad():
        for key, tensor in random_tensors({k: tuple(v.shape) for k, v in state.items()}, seed):
            state[key].copy_(tensor)
    return module


def write_random_checkpoint(
    path: str | Path, config: ModelConfig, dtype: torch.dtype = torch.float16, seed: int = 0
) -> None:
    """Write a full-layout safetensors file of :func:`random_state_dict` weights."""
    save_models(random_state_dict(config, dtype, seed), path, config)
