"""The networks of a run: where they come from, what trains, what DDP wraps.

Starting points (``[model]`` options):

* ``base`` a HumanSD checkpoint (or ``embedded``, the tiny model shipped in the package):
  loaded as is;
* ``base`` a plain SD2.1 checkpoint (4-channel UNet input): converted once by
  :func:`~humansd_core.models.checkpoint.init_from_sd21` (latent channels copied, pose
  channels zero) into ``<run>/base-from-sd21.safetensors``, which the run then uses;
* no ``base``: fresh weights of ``init_config`` (seeded), written once to
  ``<run>/init.safetensors`` so a resumed run and a LoRA's base hash refer to a file.

``vae`` replaces the VAE with another checkpoint's (``first_stage_model.*``). The VAE is
always frozen; the text tower trains only in full mode with ``train_text_encoder``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..models.checkpoint import (
    UNET_PREFIX,
    VAE_PREFIX,
    HumanSDModels,
    build_models,
    expected_shapes,
    init_from_sd21,
    load_models,
    open_tensors,
    save_models,
)
from ..models.configs import NAMED_CONFIGS, ModelConfig, named_config
from ..shipped_files import resolve_checkpoint
from .config import ModelOptions
from .distributed import DistInfo, barrier
from .lora import INPUT_CONV_TARGET, LoRAConfig, apply_lora, lora_parameters

logger = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class Denoiser(nn.Module):
    """What the optimiser (and DDP) sees: the UNet, plus the text tower when it trains.

    ``forward(x_in [B,8,h,w], t [B], cond) -> eps [B,4,h,w]`` where ``cond`` is the
    context ``[B,77,C]`` or, when the text tower trains, token ids ``[B,77]``.
    """

    def __init__(self, unet: nn.Module, text_encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.unet = unet
        self.text_encoder = text_encoder

    def forward(self, x_in: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        context = self.text_encoder.encode_tokens(cond) if self.text_encoder is not None else cond
        return self.unet(x_in, t, context)


def _sd21_config(path: Path) -> ModelConfig | None:
    """For a plain SD file (4-channel UNet input), the named HumanSD config its other shapes fit; else None."""
    key = UNET_PREFIX + "input_blocks.0.0.weight"
    with open_tensors(path) as source:
        shapes = dict(source.shapes)
    shape = shapes.get(key)
    if shape is None or len(shape) != 4 or shape[1] != 4:
        return None
    shapes[key] = (shape[0], 8, *shape[2:])
    for factory in NAMED_CONFIGS.values():
        config = factory()
        if all(shapes.get(k) == s for k, s in expected_shapes(config).items()):
            return config
    raise CheckpointError(f"base {path}: a 4-channel SD model whose layout matches no known config "
                          f"({sorted(NAMED_CONFIGS)})")


def _init_config(name: str) -> ModelConfig:
    path = Path(name)
    if path.suffix.lower() == ".json":
        try:
            return ModelConfig.from_json(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CheckpointError(f"init_config {path}: cannot read ({exc})") from None
    return named_config(name)


def resolve_base(opts: ModelOptions, run_dir: Path, seed: int, dist: DistInfo) -> Path:
    """The HumanSD file the run starts from (writing the converted/fresh one on rank 0 first)."""
    base = resolve_checkpoint(opts.base, "base") if opts.base else None
    sd21 = _sd21_config(base) if base else None
    if base and sd21 is None:
        return base
    target = run_dir / ("base-from-sd21.safetensors" if base else "init.safetensors")
    if dist.is_main and not target.is_file():
        if sd21 is not None:
            logger.info("converting SD2.1 %s to a HumanSD starting point %s", base, target)
            init_from_sd21(base, target, sd21)
        else:
            config = _init_config(opts.init_config)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                models = build_models(config)
            if opts.vae:
                load_vae(models, resolve_checkpoint(opts.vae, "vae"))
            save_models(models, target)
    barrier(dist)
    return target


def load_vae(models: HumanSDModels, path: Path) -> None:
    """Replace ``models.vae``'s weights with ``path``'s ``first_stage_model.*`` tensors."""
    keys = list(models.vae.state_dict())
    param = next(models.vae.parameters())
    with open_tensors(path) as source:
        missing = [k for k in keys if VAE_PREFIX + k not in source.shapes]
        if missing:
            raise CheckpointError(f"vae {path}: no {VAE_PREFIX}{missing[0]} (and {len(missing) - 1} more) in the file")
        state = {k: source.get(VAE_PREFIX + k).to(param.device, param.dtype) for k in keys}
    try:
        models.vae.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"vae {path}: does not fit the model's VAE ({exc})") from None


def load_for_training(opts: ModelOptions, base: Path, device: torch.device) -> HumanSDModels:
    """Load ``base`` on ``device``: frozen parts in ``frozen_dtype``, trained weights in float32."""
    frozen = DTYPES[opts.frozen_dtype]
    models = load_models(base, device=device, dtype=frozen)
    if opts.vae and base.name != "init.safetensors":
        load_vae(models, resolve_checkpoint(opts.vae, "vae"))
    return prepare_for_training(models, opts)


def prepare_for_training(models: HumanSDModels, opts: ModelOptions) -> HumanSDModels:
    """Make ``models`` trainable as ``opts`` says, in place; returns them.

    Full mode: the UNet in float32 with every weight trained (and the text tower with
    ``train_text_encoder``). LoRA mode: adapters (float32) on the layers ``lora_targets``
    name, everything else frozen; the base weights are used as they are (no copy).
    Gradient checkpointing needs networks with ``set_gradient_checkpointing`` (the
    core's); a host with other networks arranges its own and passes it off here.
    """
    if opts.mode == "full":
        models.unet.float().requires_grad_(True)
        if opts.train_text_encoder:
            text = models.text_encoder.float().requires_grad_(True)
            # Not on the conditioning path (penultimate layer, no pooling): frozen, so DDP sees no unused weights.
            for unused in (text.logit_scale, text.text_projection, *text.transformer.resblocks[-1].parameters()):
                unused.requires_grad_(False)
    else:
        targets = tuple(opts.lora_targets) + ((INPUT_CONV_TARGET,) if opts.lora_input_conv else ())
        apply_lora(models.unet, LoRAConfig(rank=opts.lora_rank, alpha=opts.lora_alpha or None, targets=targets))
        for param in lora_parameters(models.unet):
            param.data = param.data.float()
    if opts.gradient_checkpointing:
        models.unet.set_gradient_checkpointing(True)
        if opts.train_text_encoder:
            models.text_encoder.set_gradient_checkpointing(True)
    models.unet.train()
    models.text_encoder.train(opts.train_text_encoder)
    return models


def trainable_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` of every parameter with ``requires_grad``, in module order."""
    return [(name, p) for name, p in module.named_parameters() if p.requires_grad]
