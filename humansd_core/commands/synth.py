"""``humansd synth --out DIR --count N --size 64 --seed S``: write a synthetic mannequin dataset.

Each sample ``i`` becomes ``DIR/{i:06d}.png`` (RGB), ``.json`` (OpenPose JSON,
pixel coordinates and canvas size) and ``.txt`` (caption): the folder layout the
trainer reads. Sample ``i`` of seed ``S`` is always the same image, so ``--start``
can extend a dataset; ``--backgrounds plain ...`` draws backgrounds of those kinds
only. Prints the throughput at the end.
"""
from __future__ import annotations

import argparse
import time

from . import add_command


def _synth(args: argparse.Namespace) -> int:
    from ..synthetic import write_dataset
    from ..synthetic.appearance import BACKGROUND_KINDS

    size = args.size if args.height is None else (args.size, args.height)
    began = time.perf_counter()
    write_dataset(args.out, args.count, size, seed=args.seed, start=args.start,
                  backgrounds=args.backgrounds or BACKGROUND_KINDS)
    seconds = time.perf_counter() - began
    rate = args.count / seconds * 60 if seconds > 0 else float("inf")
    print(f"wrote {args.count} samples to {args.out} in {seconds:.1f} s ({rate:.0f} per minute)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``humansd synth``."""
    parser = add_command(subparsers, "synth", __doc__, "write synthetic mannequin images + poses + captions")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--count", type=int, default=100, help="number of samples (default 100)")
    parser.add_argument("--size", type=int, default=64, help="image width in pixels (default 64)")
    parser.add_argument("--height", type=int, default=None, help="image height (default: same as --size)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--start", type=int, default=0, help="index of the first sample (default 0)")
    parser.add_argument("--backgrounds", nargs="+", default=None, metavar="KIND",
                        help="background kinds to draw from: plain, gradient, striped, checkered, noisy "
                             "(default: all)")
    parser.set_defaults(func=_synth)
