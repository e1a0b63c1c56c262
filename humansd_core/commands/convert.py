"""``humansd convert`` and ``humansd init-from-sd21``: make our safetensors model files.

``humansd convert IN OUT.safetensors [--fp16] [--config NAME]`` rewrites a HumanSD
checkpoint (Lightning ``.ckpt`` or safetensors; ``embedded``: the tiny model shipped in
the package) keeping only the model tensors, with the model config in the file's
metadata. No pickled code is ever run.

``humansd init-from-sd21 SD21.ckpt OUT.safetensors [--config NAME]`` turns a Stable
Diffusion 2.1-base checkpoint into a HumanSD starting point (pose input channels
zero, everything else copied).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..fileio import require_file
from ..models.configs import NAMED_CONFIGS
from ..shipped_files import EMBEDDED, resolve_checkpoint
from . import add_command


def _config(args: argparse.Namespace):  # noqa: ANN202 - ModelConfig, imported lazily
    from ..models.configs import named_config

    return named_config(args.config) if args.config else None


def _convert(args: argparse.Namespace) -> int:
    source = resolve_checkpoint(args.input, "input")

    from ..models.checkpoint import convert_checkpoint  # only now: the file is there

    config = convert_checkpoint(source, args.output, fp16=args.fp16, config=_config(args))
    size = Path(args.output).stat().st_size / 2**20
    print(f"wrote {args.output} ({size:.1f} MiB, UNet {config.unet.model_channels} channels, "
          f"{'fp16' if args.fp16 else 'source dtype'})")
    return 0


def _init_from_sd21(args: argparse.Namespace) -> int:
    source = require_file(args.input, "input")

    from ..models.checkpoint import init_from_sd21  # only now: the file is there

    init_from_sd21(source, args.output, config=_config(args))
    size = Path(args.output).stat().st_size / 2**20
    print(f"wrote {args.output} ({size:.1f} MiB): SD2.1 weights with zeroed pose input channels")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``convert`` and ``init-from-sd21`` sub-commands."""
    names = sorted(NAMED_CONFIGS)
    convert = add_command(subparsers, "convert", __doc__,
                          "rewrite a HumanSD checkpoint (.ckpt/.safetensors) as safetensors with its config")
    convert.add_argument("input", help=f"HumanSD checkpoint (.ckpt, .pt or .safetensors), or {EMBEDDED} for the "
                                       "tiny model shipped in the package")
    convert.add_argument("output", type=Path, help="output .safetensors file")
    convert.add_argument("--fp16", action="store_true", help="store floating-point weights as float16")
    convert.add_argument("--config", choices=names, help="model layout (default: from metadata or shapes)")
    convert.set_defaults(func=_convert)

    init = add_command(subparsers, "init-from-sd21", __doc__,
                       "make a HumanSD starting checkpoint from a Stable Diffusion 2.1-base one")
    init.add_argument("input", type=Path, help="SD2.1-base checkpoint (4-channel UNet)")
    init.add_argument("output", type=Path, help="output .safetensors file")
    init.add_argument("--config", choices=names, default="sd21_humansd", help="model layout (default: sd21_humansd)")
    init.set_defaults(func=_init_from_sd21)
