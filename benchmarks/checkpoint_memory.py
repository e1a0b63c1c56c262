"""Peak memory and time of writing and loading model files, each step in a fresh process.

    python -m benchmarks.checkpoint_memory                 # full SD2.1 layout (needs ~8 GiB free)
    python -m benchmarks.checkpoint_memory --config mid    # ~160 M parameters

Prints, for ``write_random_checkpoint`` (fp16 file): seconds and peak RSS; for
``load_models`` from that file and from a Lightning-style ``.ckpt`` of the same
weights (which needs the restricted unpickler), as float16 and float32: peak RSS
growth over the loaded weights' in-memory size.
``write``/``load`` sub-commands run one measurement and print one JSON line
(``tests/test_models_memory.py`` uses them).

Peak growth = the peak RSS during the step (Linux ``VmHWM``, reset just before
the step through ``/proc/self/clear_refs``) minus the RSS just before it; without
that reset (not Linux) the lifetime peak is used, an upper bound.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch

from humansd_core.models.checkpoint import load_models, read_state_dict, write_random_checkpoint
from humansd_core.models.configs import (
    ModelConfig,
    TextConfig,
    UNetConfig,
    VAEConfig,
    named_config,
)
from humansd_core.process_memory import peak_rss_bytes, reset_peak_rss

ROOT = Path(__file__).resolve().parents[1]  # the repository root: this module runs as ``benchmarks.checkpoint_memory``
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


class HyperParameters:
    """Stands for the objects Lightning pickles next to the weights (refused by weights_only)."""

    def __init__(self) -> None:
        self.learning_rate = 1e-5


def mid_config() -> ModelConfig:
    """~158 M parameters (UNet 99 M, VAE 21 M, text 38 M): big enough to measure, quick to write."""
    return ModelConfig(
        unet=UNetConfig(model_channels=128, channel_mult=(1, 2, 4), num_res_blocks=2,
                        attention_resolutions=(2, 4), context_dim=512),
        vae=VAEConfig(ch=64),
        text=TextConfig(width=512, heads=8, layers=4, output_dim=512),
    )


def get_config(name: str) -> ModelConfig:
    return mid_config() if name == "mid" else named_config(name)


def cmd_write(args: argparse.Namespace) -> dict:
    reset_peak_rss()
    baseline = psutil.Process().memory_info().rss
    start = time.perf_counter()
    write_random_checkpoint(args.path, get_config(args.config), dtype=DTYPES[args.dtype], seed=0)
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "peak_rss": peak_rss_bytes(), "growth": peak_rss_bytes() - baseline,
              "file_bytes": Path(args.path).stat().st_size}
    if args.lightning:
        state = read_state_dict(args.path)
        torch.save({"epoch": 1, "state_dict": state, "hyper_parameters": HyperParameters()}, args.lightning)
    return result


def cmd_load(args: argparse.Namespace) -> dict:
    config = get_config(args.config)
    from humansd_core.models.checkpoint import expected_shapes

    expected_shapes(config)  # meta build cached: imports and first-use costs out of the measurement
    reset_peak_rss()
    baseline = psutil.Process().memory_info().rss
    start = time.perf_counter()
    models = load_models(args.path, dtype=DTYPES[args.dtype], config=config)
    seconds = time.perf_counter() - start
    loaded = sum(t.numel() * t.element_size() for t in models.state_dict().values())
    growth = peak_rss_bytes() - baseline
    return {"seconds": seconds, "loaded_bytes": loaded, "growth": growth, "ratio": growth / loaded}


def run_child(*argv: str) -> dict:
    """Run one measurement in a fresh interpreter; returns its JSON result."""
    out = subprocess.run([sys.executable, "-m", __spec__.name, *argv], check=True, capture_output=True, text=True,
                         cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="sd21_humansd", help="sd21_humansd, tiny or mid")
    sub = parser.add_subparsers(dest="cmd")
    write = sub.add_parser("write")
    write.add_argument("path")
    write.add_argument("--dtype", default="float16", choices=DTYPES)
    write.add_argument("--lightning", help="also write this Lightning-style .ckpt of the same weights")
    load = sub.add_parser("load")
    load.add_argument("path")
    load.add_argument("--dtype", default="float32", choices=DTYPES)
    args = parser.parse_args()
    if args.cmd == "write":
        print(json.dumps(cmd_write(args)))
        return
    if args.cmd == "load":
        print(json.dumps(cmd_load(args)))
        return

    gib = 2**30
    with tempfile.TemporaryDirectory() as tmp:
        st, ckpt = f"{tmp}/model.safetensors", f"{tmp}/model.ckpt"
        w = run_child("--config", args.config, "write", st, "--lightning", ckpt)
        print(f"[{args.config}] write_random_checkpoint fp16: {w['seconds']:.1f} s, "
              f"file {w['file_bytes'] / gib:.2f} GiB,"
              f" peak RSS {w['peak_rss'] / gib:.2f} GiB (growth {w['growth'] / gib:.2f} GiB)")
        for path, label in ((st, "fp16 safetensors"), (ckpt, "fp16 Lightning .ckpt (restricted unpickler)")):
            for dtype in ("float16", "float32"):
                r = run_child("--config", args.config, "load", path, "--dtype", dtype)
                print(f"[{args.config}] load {label} as {dtype}: {r['seconds']:.1f} s, loaded "
                      f"{r['loaded_bytes'] / gib:.2f} GiB, peak RSS growth {r['growth'] / gib:.2f} GiB"
                      f" = {r['ratio']:.3f}x")


if __name__ == "__main__":
    main()
