"""Training inside ComfyUI vs the core trainer: seconds per step side by side, and the LoRA run's memory.

    python -m benchmarks.train_in_comfy [--rounds 8] [--batch 4] [--threads 1] [--skip-memory]

1. Speed (one process, the embedded model, 128², LoRA rank 8, batch ``--batch``, the
   heatmap-guided loss with the bundled mannequin estimator, synthetic scenes): the
   same ``Trainer`` twice from the same weights, data, seed and config, once on the
   core's own networks (``Trainer(config)``, as ``humansd train`` runs) and once on
   ComfyUI 0.3.75's loaded networks through the trainer's seams (the node's
   ``TrainingNetworks``). Their first steps' losses are printed side by side (same
   noise and timesteps: they differ only by the two UNets' float round-off), then
   ``--rounds`` rounds time one optimiser step of each (order alternating per round,
   process CPU time, median per side).
2. Memory (fresh processes, the full SD2.1-layout random checkpoint of the tests,
   128², batch 1, 2 LoRA steps, float32 on the CPU): the peak RSS of the whole LoRA
   run over the RSS the loaded model holds, ``(peak - before load) / (loaded - before
   load)``, in ComfyUI (the node's path) and in the core trainer. A second copy of the
   UNet would show as about 1.8.

Last line: ``comfy_over_core_s_per_step=<r> comfy_lora_peak_over_loaded=<m> core_lora_peak_over_loaded=<c>``.
On a shared machine times are noisy: the interleaved ratio is what to compare.
"""
from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from tests.host.comfy_setup import ensure_comfyui
from tests.support.checkpoints import full_random_checkpoint
from tests.support.comfy_inprocess import PACK_MODULE, _pack_loader, import_comfy

ROOT = Path(__file__).resolve().parents[1]  # the memory children run as modules from here


def _pack(name: str) -> Any:
    """A module of this checkout imported as ComfyUI imports the pack (one copy of the core for both sides)."""
    _pack_loader()
    return importlib.import_module(f"{PACK_MODULE}.{name}")


def _config(work: Path, data: Path, base: str, name: str, batch: int, resolution: int, loss: str,
            estimator: str, threads: int) -> Any:
    config = _pack("humansd_core.training.config").TrainConfig()
    options = {"base": base, "mode": "lora", "lora_rank": 8, "data": str(data), "resolution": resolution,
               "cache": "latents", "cache_text": False, "flip_prob": 0.0, "steps": 1000, "batch_size": batch,
               "lr": 1e-4, "seed": 0, "loss": loss, "estimator": estimator, "output": str(work / name),
               "save_every": 100000, "log_every": 1, "progress": False, "cpu_threads": threads}
    for key, value in options.items():
        config.set(key, value, "benchmark")
    return config


def _comfy_load(path: Path, records: list) -> tuple[Any, Any, Any, dict]:
    """ComfyUI's MODEL, CLIP, VAE of ``path`` (the pack's loader, as a node runs it) and the captions' contexts."""
    host = _pack("nodes._training_host")
    with torch.inference_mode():
        model, clip, vae = _pack("nodes._comfy_model").load_humansd_checkpoint(path)
        contexts = host.encode_prompts(clip, [r.caption for r in records] + [""])
    return model, clip, vae, contexts


def _comfy_trainer(stack: Any, loaded: tuple, config: Any, records: list) -> Any:
    """The core Trainer on ComfyUI's networks (what HumanSD Train runs), inside ``stack``."""
    model, clip, vae, contexts = loaded
    host = _pack("nodes._training_host")
    model_config = _pack("nodes._comfy_model").model_config_of(model, clip, vae)
    networks = stack.enter_context(host.TrainingNetworks(model, vae, contexts, model_config, config.model,
                                                         model.model.get_dtype(), seed=config.optim.seed))
    return _pack("humansd_core.training.trainer").Trainer(config, models=networks.models, samples=records)


def _step_seconds(trainer: Any, batches: Any, accum: int) -> tuple[float, float]:
    cpu = time.process_time()
    stats = trainer.train_step([next(batches) for _ in range(accum)])
    return time.process_time() - cpu, stats["loss"]


def speed(args: argparse.Namespace) -> dict:
    import contextlib

    samples = _pack("humansd_core.training.samples")
    assets, embedded = _pack("humansd_core.assets"), _pack("humansd_core.embedded")
    trainer_mod = _pack("humansd_core.training.trainer")
    path = assets.check_weights(embedded.embedded_model_path())
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack, torch.inference_mode(False):
        work = Path(tmp)
        data = samples.synthetic_folder(work / "data", 16, 128, seed=1)
        records = samples.check_folder(data).records
        common = (args.batch, 128, "heatmap", "tiny", args.threads)
        core = trainer_mod.Trainer(_config(work, data, str(path), "core", *common), samples=records)
        comfy = _comfy_trainer(stack, _comfy_load(path, records), _config(work, data, path.name, "comfy", *common),
                               records)
        sides = {"core": core, "comfy": comfy}
        batches = {name: iter(t.data.loader(start=0)) for name, t in sides.items()}
        seconds: dict[str, list[float]] = {"core": [], "comfy": []}
        losses: dict[str, list[float]] = {"core": [], "comfy": []}
        for round_ in range(args.rounds + 1):
            order = ("core", "comfy") if round_ % 2 == 0 else ("comfy", "core")
            for name in order:
                dt, loss = _step_seconds(sides[name], batches[name], 1)
                losses[name].append(loss)
                if round_ > 0:  # round 0 warms up both (and fits nothing: the bundled distilled net is used)
                    seconds[name].append(dt)
    med = {name: statistics.median(values) for name, values in seconds.items()}
    return {"core_s_per_step": med["core"], "comfy_s_per_step": med["comfy"], "ratio": med["comfy"] / med["core"],
            "first_losses": {k: [round(x, 5) for x in v[:4]] for k, v in losses.items()}}


def memory_child(side: str, steps: int) -> dict:
    """One LoRA run on the full random checkpoint in this (fresh) process; RSS before/after load and the peak."""
    import psutil

    from humansd_core.process_memory import peak_rss_bytes, reset_peak_rss

    samples = _pack("humansd_core.training.samples")
    trainer_mod = _pack("humansd_core.training.trainer")
    path = full_random_checkpoint()
    process = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode(False):
        import contextlib

        work = Path(tmp)
        data = samples.synthetic_folder(work / "data", 2, 128, seed=1)
        records = samples.check_folder(data).records
        config = _config(work, data, str(path) if side == "core" else path.name, side, 1, 128, "heatmap",
                         "gaussian", 0)
        config.optim.steps = steps
        before = process.memory_info().rss
        with contextlib.ExitStack() as stack:
            if side == "core":
                modules = _pack("humansd_core.training.run_models")
                models = modules.load_models(path, device=torch.device("cpu"), dtype=torch.float32)
                loaded = process.memory_info().rss
                reset_peak_rss()
                trainer = trainer_mod.Trainer(config, models=modules.prepare_for_training(models, config.model),
                                              samples=records)
            else:
                comfy_objects = _comfy_load(path, records)
                loaded = process.memory_info().rss
                reset_peak_rss()
                trainer = _comfy_trainer(stack, comfy_objects, config, records)
            trainer.train()
            peak = peak_rss_bytes()
    return {"side": side, "before": before, "loaded": loaded, "peak": peak,
            "peak_over_loaded": (peak - before) / (loaded - before)}


def memory(side: str, steps: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.train_in_comfy", "--memory-child", side,
                          "--steps", str(steps)], cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory child {side} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--steps", type=int, default=2, help="LoRA steps of the memory runs")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-child", choices=("core", "comfy"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    import_comfy(ensure_comfyui())
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.steps)))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    result = speed(args)
    print(f"speed (embedded model, 128², LoRA, batch {args.batch}, heatmap loss, {args.threads or 'default'} "
          f"thread(s)): core {result['core_s_per_step']:.3f} CPU s/step, ComfyUI {result['comfy_s_per_step']:.3f} "
          f"CPU s/step, ratio {result['ratio']:.3f}")
    print(f"first losses (same noise and timesteps): {result['first_losses']}")
    line = f"comfy_over_core_s_per_step={result['ratio']:.3f}"
    if not args.skip_memory:
        for side in ("comfy", "core"):
            m = memory(side, args.steps)
            gib = 2**30
            print(f"memory {side:5s} (full SD2.1 layout, LoRA, 128², batch 1): loaded "
                  f"{(m['loaded'] - m['before']) / gib:.2f} GiB, peak {(m['peak'] - m['before']) / gib:.2f} GiB over "
                  f"the process before loading: {m['peak_over_loaded']:.3f}x")
            line += f" {side}_lora_peak_over_loaded={m['peak_over_loaded']:.3f}"
    print(line)


if __name__ == "__main__":
    main()
