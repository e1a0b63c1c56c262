"""The HumanSD networks (SD2.1-base layout, 8-channel UNet) and their checkpoint IO.

Names are imported lazily (``humansd_core.models.configs`` stays light; the
networks pull in torch and open_clip on first use).
"""
from __future__ import annotations

from ..lazy_exports import lazy_getattr

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
    "read_metadata": "checkpoint",
    "read_state_dict": "checkpoint",
    "save_models": "checkpoint",
    "sd21_humansd_config": "configs",
    "tiny_config": "configs",
    "write_random_checkpoint": "checkpoint",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
