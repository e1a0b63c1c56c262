"""The HumanSD networks (SD2.1-base layout, 8-channel UNet) and their checkpoint IO.

Names are imported lazily (``humansd_core.models.configs`` stays light; the
networks pull in torch and open_clip on first use).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AutoencoderKL": "vae",
    "HumanSDModels": "checkpoint",
    "ModelConfig": "configs",
    "TextConfig": "configs",
    "TextEncoder": "text_encoder",
    "UNetConfig": "configs",
    "UNetModel": "unet",
    "VAEConfig": "configs",
    "build_models": "checkpoint",
    "convert_checkpoint": "checkpoint",
    "init_from_sd21": "checkpoint",
    "load_models": "checkpoint",
    "named_config": "configs",
    "read_checkpoint": "checkpoint",
    "read_metadata": "checkpoint",
    "read_state_dict": "checkpoint",
    "save_models": "checkpoint",
    "sd21_humansd_config": "configs",
    "tiny_config": "configs",
    "write_random_checkpoint": "checkpoint",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
