"""Core UNet forward time next to ComfyUI's own UNet (same weights, same process), and load memory.

    python -m benchmarks.unet_forward [--latent 32] [--batch 1] [--repeats 7]

Full SD2.1 layout (the cached random checkpoint of the tests, written on first use),
float32 on the CPU. Steps:

1. peak RSS growth of ``load_models`` (float32) over the loaded weights' size, in a
   fresh process (``benchmarks/checkpoint_memory.py load``: Linux ``VmHWM`` reset just
   before loading);
2. the core UNet as ``load_models`` returns it (channels-last on the CPU) and
   ComfyUI 0.3.75's ``openaimodel.UNetModel`` from its stock loader
   (``tests/support/comfy_inprocess.py``; ComfyUI's CPU defaults, sub-quadratic attention);
3. one warm-up call each, max |difference| of their outputs, then ``--repeats``
   rounds each timing both (order alternating per round); the ratio of medians.

Last line: ``unet_forward_ratio=<core/comfy> max_abs_diff=<d> load_rss_over_weights=<r>``.
On a shared machine the times are noisy: compare the ratio, not the seconds.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import time

import torch

from tests.host.comfy_setup import ensure_comfyui
from tests.support.checkpoints import full_random_checkpoint
from tests.support.comfy_inprocess import import_comfy, load_comfy, load_core, unet_inputs

from .checkpoint_memory import run_child


def _timed(unet: torch.nn.Module, args: tuple[torch.Tensor, ...], comfy: bool) -> tuple[float, float, torch.Tensor]:
    """``(wall seconds, process CPU seconds, output)`` of one forward call."""
    x, timesteps, context = args
    wall, cpu = time.perf_counter(), time.process_time()
    out = unet(x, timesteps=timesteps, context=context) if comfy else unet(x, timesteps, context)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latent", type=int, default=32, help="latent side (image side / 8)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--skip-load-memory", action="store_true", help="do not measure load_models' peak RSS")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = full_random_checkpoint()

    load_ratio = float("nan")
    if not args.skip_load_memory:
        try:
            mem = run_child("--config", "sd21_humansd", "load", str(checkpoint), "--dtype", "float32")
        except subprocess.CalledProcessError as exc:
            sys.exit(f"load measurement failed:\n{exc.stderr[-3000:]}")
        load_ratio = mem["ratio"]
        print(f"load_models float32: loaded {mem['loaded_bytes'] / 2**30:.2f} GiB, peak RSS growth "
              f"{mem['growth'] / 2**30:.2f} GiB = {load_ratio:.3f}x the weights ({mem['seconds']:.1f} s)")

    import_comfy(ensure_comfyui())
    with torch.inference_mode():
        core = load_core(checkpoint)
        unet, config = core.unet, core.config
        del core  # VAE and text tower
        gc.collect()
        comfy_unet = load_comfy(checkpoint, ("unet",))["unet"]
        inputs = unet_inputs(config, args.latent, batch=args.batch)
        print(f"UNet float32 on CPU, x {list(inputs[0].shape)}, {torch.get_num_threads()} threads; "
              f"core channels-last={unet.input_blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)}")

        *_, ours = _timed(unet, inputs, comfy=False)
        *_, theirs = _timed(comfy_unet, inputs, comfy=True)
        max_abs = (ours - theirs).abs().max().item()
        print(f"max |core - comfy| = {max_abs:.3e} (max |comfy| = {theirs.abs().max().item():.3f})")

        walls: dict[bool, list[float]] = {False: [], True: []}
        cpus: dict[bool, list[float]] = {False: [], True: []}
        for round_index in range(args.repeats):
            order = (False, True) if round_index % 2 == 0 else (True, False)
            for comfy in order:
                wall, cpu, _ = _timed(comfy_unet if comfy else unet, inputs, comfy)
                walls[comfy].append(wall)
                cpus[comfy].append(cpu)
    for label, comfy in (("core ", False), ("comfy", True)):
        print(f"{label} wall s: " + " ".join(f"{t:.2f}" for t in walls[comfy])
              + " | CPU s: " + " ".join(f"{t:.2f}" for t in cpus[comfy]))
    core_s, comfy_s = statistics.median(walls[False]), statistics.median(walls[True])
    cpu_ratio = statistics.median(cpus[False]) / statistics.median(cpus[True])
    min_ratio = min(walls[False]) / min(walls[True])
    print(f"medians over {args.repeats} interleaved rounds: core {core_s:.3f} s, comfy {comfy_s:.3f} s wall; "
          f"core/comfy of CPU-time medians {cpu_ratio:.3f}, of wall minima {min_ratio:.3f}")
    print(f"unet_forward_ratio={core_s / comfy_s:.3f} max_abs_diff={max_abs:.3e} "
          f"load_rss_over_weights={load_ratio:.3f}")


if __name__ == "__main__":
    main()
