"""Checkpoint IO, the public face: read, load, save, convert and generate model files.

Implementation lives in :mod:`.checkpoint_read` (safe file reading),
:mod:`.safe_unpickle` (tensors from pickles holding other objects),
:mod:`.model_io` (build/load/save the networks) and :mod:`.checkpoint_tools`
(convert, init from SD2.1, random files).
"""
from __future__ import annotations

from .checkpoint_read import TensorSource, open_tensors, read_checkpoint, read_metadata, read_state_dict
from .checkpoint_tools import (
    convert_checkpoint,
    fill_random_,
    init_from_sd21,
    random_state_dict,
    random_tensors,
    write_random_checkpoint,
)
from .model_io import (
    TEXT_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    HumanSDModels,
    build_models,
    check_layout,
    expected_shapes,
    identify_config,
    load_models,
    save_models,
)

__all__ = [
    "TEXT_PREFIX",
    "UNET_PREFIX",
    "VAE_PREFIX",
    "HumanSDModels",
    "TensorSource",
    "build_models",
    "check_layout",
    "convert_checkpoint",
    "expected_shapes",
    "fill_random_",
    "identify_config",
    "init_from_sd21",
    "load_models",
    "open_tensors",
    "random_state_dict",
    "random_tensors",
    "read_checkpoint",
    "read_metadata",
    "read_state_dict",
    "save_models",
    "write_random_checkpoint",
]
