"""``humansd train``: fine-tune HumanSD (LoRA or full) on images with poses and captions.

``humansd train CONFIG.toml [--option value ...]``: every option of the config file is
also a flag (``--lora-rank 16``, ``--no-buckets``) that overrides the file; without a
file, flags alone describe the run (``--data`` and ``--output`` are required then).
``--base embedded`` starts from the tiny model shipped in the package. Several
processes (DDP): ``torchrun --nproc_per_node N -m humansd_core.cli train ...``.

The run folder gets ``config.json``, ``checkpoints/step-*.safetensors`` (resume with
``--resume auto``), ``loss_log.jsonl``, ``loss.png``, ``samples/`` and, at the end,
``lora.safetensors`` (loads in ComfyUI's LoraLoaderModelOnly) or ``model.safetensors``.
Every option is listed below, by table.
"""
from __future__ import annotations

import argparse

from ..training.config import add_arguments, config_from_args
from . import add_command


def _train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    config.check_files()

    from ..training.distributed import shutdown  # only now: the files are there
    from ..training.trainer import Trainer

    trainer = Trainer(config)
    try:
        result = trainer.train()
    finally:
        shutdown(trainer.dist)
    if trainer.dist.is_main:
        print(f"trained to step {result.step}; wrote {result.output}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``humansd train``."""
    p = add_command(subparsers, "train", __doc__, "fine-tune HumanSD (LoRA or full) on posed images")
    p.add_argument("config", nargs="?", help="TOML config file (tables [model] [data] [optim] [loss] [output])")
    add_arguments(p)
    p.set_defaults(func=_train)
