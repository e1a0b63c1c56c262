"""Synthetic mannequin throughput: scenes per minute in memory and written to disk, per size.

    python -m benchmarks.synthetic_throughput [--count 300] [--sizes 64 128 256]

One process, one thread for OpenCV; prints scenes/minute for ``generate_scene``
(in memory) and ``write_dataset`` (PNG + JSON + caption, atomic writes) side by side.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time

import cv2

from humansd_core.synthetic import generate_scene, scene_rng, write_dataset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(f"{'size':>5} {'in memory /min':>15} {'to disk /min':>13} {'disk/memory':>12}")
    for size in args.sizes:
        began = time.perf_counter()
        for i in range(args.count):
            generate_scene(scene_rng(0, i), size)
        memory = args.count / (time.perf_counter() - began) * 60
        with tempfile.TemporaryDirectory() as folder:
            began = time.perf_counter()
            write_dataset(folder, args.count, size, seed=0)
            disk = args.count / (time.perf_counter() - began) * 60
        print(f"{size:>5} {memory:>15.0f} {disk:>13.0f} {disk / memory:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
