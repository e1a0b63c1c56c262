"""Recipe step: train the two bundled mannequin estimators on synthetic scenes drawn fresh every step.

Targets: per joint, the maximum over people of ``exp(-d²/2σ²)`` at the heatmap cells
(:func:`humansd_core.pose.heatmaps.gaussian_heatmaps`), ``σ`` = :data:`SIGMA_CELLS`
cells. Loss: mean squared error between the sigmoid output and the target
(HigherHRNet-style regression, so the output's ``> 0.05`` region is a blob of about
2.4 σ around each joint, as the heatmap loss expects; binary cross-entropy on the same
targets reached a lower PCK in the same time here). Learning rate: 5 % linear warm-up,
then cosine decay to 0 over the run (:func:`~humansd_core.training.lr_schedule.lr_factor`),
the run's progress being the larger of ``step / steps`` and ``elapsed / time_limit``.
Images are degraded at random (down- and up-sampled by up to :data:`MAX_DEGRADE`×, light
Gaussian noise) so the estimators also read blurry generated images. Scenes come from
:func:`humansd_core.synthetic.generate_scene` with seeds ``(seed, index)``; evaluation
uses another seed stream.

A run with a ``checkpoint`` path saves its whole state there (network, optimiser,
step, the augmentation generator, elapsed time) every ``checkpoint_every`` steps,
atomically, and resumes from it when it exists: batch ``k`` is always scenes
``k·batch .. (k+1)·batch − 1``, so a resumed step-limited run computes what an
uninterrupted one computes.

``python -m humansd_core.embedded.recipe.estimators [--only judge] [--out DIR]`` trains
the roles of ``presets/embedded_estimators.toml`` (``loss``: the strided net, the
heatmap-guided loss's estimator; ``judge``: the U-Net, which scores pose accuracy, so no
result is graded by the network that shaped it), scores each on the same held-out
scenes (PCK@0.1 of the person's box diagonal, mean OKS; top-down with the true boxes) at
its working size and at 128 px, and writes them with the architecture, seed, steps run
and held-out scores in their metadata; into the package's ``weights/`` by default, with
their ``SHA256SUMS`` lines. ``--work DIR`` keeps each role's resume state there
(``DIR/<role>-state.pt``); ``--half`` writes the floating weights in fp16 (half the file).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...assets import ESTIMATOR_NAMES, WEIGHTS_DIR, record_if_shipped
from ...pose.heatmaps import gaussian_heatmaps
from ...pose.keypoints import PoseSet
from ...pose.mannequin_estimator import EstimatorConfig, TinyHeatmapEstimator, build_network
from ...synthetic import generate_scene, scene_rng
from ...training.lr_schedule import lr_factor
from ..evaluation import Accuracy, pose_accuracy
from .presets import read_preset
from .resume_state import load_state, save_state

logger = logging.getLogger(__name__)

SIGMA_CELLS = 1.0
WARMUP = 0.05  # of the run
MAX_DEGRADE = 3.0
NOISE_STD = 0.02
EVAL_SEED_OFFSET = 1_000_003  # evaluation scenes use seed + this: never a training scene
PRESET = "embedded_estimators.toml"


def scene_batch(seed: int, start: int, count: int, size: int) -> tuple[torch.Tensor, list[PoseSet]]:
    """Scenes ``start..start+count-1`` of ``seed``: images ``[count,3,size,size]`` in ``[0,1]`` and their poses."""
    scenes = [generate_scene(scene_rng(seed, i), size) for i in range(start, start + count)]
    images = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).float() / 255.0
    return images, [s.pose for s in scenes]


class _SceneStream(torch.utils.data.IterableDataset):
    """Endless batches for a DataLoader worker from batch ``start``: batch ``k`` = scenes
    ``k·batch .. (k+1)·batch − 1``."""

    def __init__(self, seed: int, batch: int, size: int, start: int = 0) -> None:
        self.seed, self.batch, self.size, self.start = seed, batch, size, start

    def __iter__(self) -> Iterator[tuple[torch.Tensor, list[PoseSet]]]:
        k = self.start
        while True:
            yield scene_batch(self.seed, k * self.batch, self.batch, self.size)
            k += 1


def degrade(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per image: resample through a random smaller size (factor 1..MAX_DEGRADE), add noise; ``[B,3,H,W]``."""
    out = images.clone()
    h, w = images.shape[-2:]
    factors = 1.0 + (MAX_DEGRADE - 1.0) * torch.rand(len(images), generator=generator)
    for i, factor in enumerate(factors.tolist()):
        if factor > 1.2:
            small = F.interpolate(images[i:i + 1], size=(max(8, int(h / factor)), max(8, int(w / factor))),
                                  mode="bilinear", antialias=True, align_corners=False)
            out[i:i + 1] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    out = out + NOISE_STD * torch.rand(len(images), 1, 1, 1, generator=generator) * torch.randn(
        out.shape, generator=generator)
    return out.clamp(0, 1)


@dataclass(frozen=True)
class TrainResult:
    estimator: TinyHeatmapEstimator
    steps: int
    seconds: float
    final_loss: float
    accuracy: Accuracy | None


def evaluate(estimator: TinyHeatmapEstimator, seed: int, count: int, size: int | None = None) -> Accuracy:
    """PCK@0.1 / OKS on ``count`` held-out scenes (seed stream ``seed + EVAL_SEED_OFFSET``), ``size`` px."""
    images, poses = scene_batch(seed + EVAL_SEED_OFFSET, 0, count, size or estimator.config.input_size)
    return pose_accuracy(estimator, images, poses)


def train_estimator(config: EstimatorConfig, *, seed: int, steps: int, batch_size: int = 32, lr: float = 3e-3,
                    time_limit: float | None = None, workers: int = 1, eval_count: int = 0,
                    log: Callable[[str], None] = logger.info, checkpoint: str | Path | None = None,
                    checkpoint_every: int = 250, validate: Callable[[TinyHeatmapEstimator, int], None] | None = None,
                    validate_every: int = 0) -> TrainResult:
    """Train from scratch (AdamW, warm-up + cosine) for ``steps`` steps or ``time_limit`` seconds.

    ``workers`` > 0 draws scenes in DataLoader worker processes (seeded, so the
    batches are the same either way). Without ``time_limit`` a run is a function of
    its arguments; with it, the schedule follows the clock (see the module doc).
    ``checkpoint``: a file to save the run's state to every ``checkpoint_every`` steps
    and to resume from when it exists (it must come from a run of the same config,
    seed, steps, batch size and lr). ``validate(estimator, step)`` is called every
    ``validate_every`` steps (0: never) with the network in eval mode.
    """
    torch.manual_seed(seed)
    network = build_network(config)
    optimiser = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    identity = {"config": asdict(config), "seed": seed, "steps": steps, "batch_size": batch_size, "lr": lr}
    step, elapsed_before, loss_avg = 0, 0.0, math.nan
    path = Path(checkpoint) if checkpoint is not None else None
    state = load_state(path, identity, "the estimator trainer")
    if state is not None:
        network.load_state_dict(state["network"])
        optimiser.load_state_dict(state["optimiser"])
        generator.set_state(state["generator"])
        step, elapsed_before, loss_avg = int(state["step"]), float(state["elapsed"]), float(state["loss_avg"])
        log(f"resumed from {path} at step {step}")
    stream = _SceneStream(seed, batch_size, config.input_size, start=step)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers,
                                         prefetch_factor=4 if workers else None, persistent_workers=False)
    size = config.input_size
    heat = size // config.stride
    network.train()
    start = time.perf_counter() - elapsed_before
    batches = iter(loader)
    while step < steps:
        elapsed = time.perf_counter() - start
        progress = max(step / steps, elapsed / time_limit if time_limit else 0.0)
        if progress >= 1.0:
            break
        images, poses = next(batches)
        factor = lr_factor(progress * steps, WARMUP * steps, steps)
        for group in optimiser.param_groups:
            group["lr"] = lr * factor
        target = gaussian_heatmaps(poses, heat, heat, SIGMA_CELLS)
        pred = torch.sigmoid(network(degrade(images, generator)))
        loss = F.mse_loss(pred, target) * 1000.0
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        loss_avg = loss.item() if math.isnan(loss_avg) else 0.95 * loss_avg + 0.05 * loss.item()
        if step % 50 == 0 or step == steps:
            log(f"step {step}/{steps} loss {loss_avg:.3f} lr {lr * factor:.2e} ({elapsed:.0f} s)")
        if path is not None and (step % checkpoint_every == 0 or step == steps):
            save_state(path, {"network": network.state_dict(), "optimiser": optimiser.state_dict(),
                              "generator": generator.get_state(), "step": step,
                              "elapsed": time.perf_counter() - start, "loss_avg": loss_avg}, identity)
        if validate is not None and validate_every and (step % validate_every == 0 or step == steps):
            validate(TinyHeatmapEstimator(network, config), step)  # the estimator puts the network in eval mode
            network.train()
    seconds = time.perf_counter() - start
    estimator = TinyHeatmapEstimator(network.eval(), config)
    accuracy = evaluate(estimator, seed, eval_count) if eval_count else None
    return TrainResult(estimator, step, seconds, loss_avg, accuracy)


def preset_roles() -> dict[str, tuple[EstimatorConfig, int]]:
    """``{role: (architecture, seed)}`` of ``presets/embedded_estimators.toml``."""
    roles = read_preset(PRESET)["roles"]
    return {role: (EstimatorConfig(v["arch"], v["width"], v["input_size"]), v["seed"]) for role, v in roles.items()}


def role_budget(role: str, steps: int | None = None, minutes: float | None = None) -> tuple[int, float]:
    """``(steps, minutes)`` of ``role``'s training: the arguments where given, else the role's own
    preset values, else the preset's ``[training]`` ones."""
    preset = read_preset(PRESET)
    budget = {**preset["training"], **preset["roles"][role]}
    return (steps if steps is not None else int(budget["steps"]),
            minutes if minutes is not None else float(budget["minutes"]))


def main() -> int:
    preset = read_preset(PRESET)
    training, held_out, roles = preset["training"], preset["evaluation"], preset_roles()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=sorted(roles), help="train one role only")
    parser.add_argument("--steps", type=int, default=None,
                        help="default: the preset's (the role's own where it names one)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="wall-time limit per estimator (default: the preset's, the role's own where it names one)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (the scene worker is another process; 2 threads ran 8x slower here)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder of the files (default: the package's)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder of the resume states (<role>-state.pt, every 250 steps; default: none)")
    parser.add_argument("--half", action="store_true",
                        help="write the floating weights in fp16 (half the file; a role's preset `half = true` does too)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    batch, count = training["batch_size"], held_out["count"]
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
    for role in [args.only] if args.only else list(roles):
        config, seed = roles[role]
        steps, minutes = role_budget(role, args.steps, args.minutes)
        print(f"== {role}: {config} seed {seed}, {steps} steps or {minutes} min", flush=True)
        result = train_estimator(config, seed=seed, steps=steps, batch_size=batch, lr=training["lr"],
                                 time_limit=minutes * 60, log=lambda s: print("  " + s, flush=True),
                                 checkpoint=None if args.work is None else args.work / f"{role}-state.pt")
        at_work = evaluate(result.estimator, held_out["seed"], count)
        at_128 = evaluate(result.estimator, held_out["seed"], count, size=128)
        print(f"  trained {result.steps} steps in {result.seconds:.0f} s ({result.seconds / result.steps:.2f} s/step)")
        print(f"  held-out {count} scenes at {config.input_size} px: PCK@0.1 {at_work.pck:.3f}  "
              f"OKS {at_work.oks:.3f}; at 128 px: PCK@0.1 {at_128.pck:.3f}  OKS {at_128.oks:.3f}")
        path = args.out / ESTIMATOR_NAMES[role]
        meta = {"role": role, "seed": str(seed), "steps": str(result.steps), "batch": str(batch),
                "train_seconds": f"{result.seconds:.0f}",
                "heldout": json.dumps({"count": count, "pck@0.1": round(at_work.pck, 4),
                                       "oks": round(at_work.oks, 4), "pck@0.1_128px": round(at_128.pck, 4)}),
                "command": "python -m humansd_core.embedded.recipe.estimators " + " ".join(sys.argv[1:])}
        result.estimator.save(path, meta, half=args.half or bool(preset["roles"][role].get("half", False)))
        recorded = " (SHA256SUMS updated)" if record_if_shipped(path) else ""
        print(f"  wrote {path} ({path.stat().st_size / 1e6:.2f} MB){recorded}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
