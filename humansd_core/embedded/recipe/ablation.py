"""Recipe ablation: HumanSD's heatmap-guided loss against the plain loss, on the embedded tiny model's recipe.

Each run trains a fresh UNet + text tower with the recipe of the embedded model
(``presets/embedded_humansd.toml``: full mode, batch 16, 128 px, AdamW, EMA; see
``humansd_core/assets/MODEL_CARD.md``) for ``--steps`` optimiser steps, on the
recipe's 3000 synthetic scenes (``presets/embedded_data.toml``), with the *shipped*
model's VAE frozen; the latents are cached once and shared by all runs. The recipe's
schedule (warmup, cosine, EMA horizon) is compressed to the shorter run. Within a
seed every arm starts from the same weights and sees the same batches, timesteps
and noise: the arms differ only in the ``[loss]`` options (:func:`arm_options`):

* ``plain``: MSE;
* ``heatmap-<decoder>``: the heatmap-guided loss in the paper's form (weight
  ``1 + 0.1 · mask``, threshold 0.05, the bundled mannequin "loss" estimator at
  64 px) with the noise difference decoded by ``<decoder>`` (any choice of the
  trainer's ``heatmap_decoder`` option: ``full`` is the paper's VAE decode,
  ``linear`` the shipped recipe's, ``reduced``).

Each trained model is scored by the *judge* estimator (not the one in the loss):

* pose accuracy (PCK@0.1, OKS) on the demo's evaluation set
  (:func:`humansd_core.embedded.evaluation.evaluation_set`, 28 images, DDIM ``--eval-steps``,
  guidance 3), and on ``--fd-count`` sampled poses with their scenes' own captions;
* a quality proxy: the Fréchet distance between the judge's pooled bottleneck
  features (the U-Net's 1/16 stage, 64 channels, averaged over space) of those
  generated images and of the real synthetic scenes they were sampled from (same
  poses, same captions). Two floors put it on a scale: real scenes of other poses
  (finite-sample noise) and the real scenes through the frozen VAE.

Prints per-run lines and a markdown table (mean ± std over seeds), the paired
difference heatmap − plain of PCK@0.1, and writes ``WORK/results.json``. Finished
runs (``WORK/runs/<arm>-seed<s>-steps<n>/result.json``) are reused, so an
interrupted ablation resumes, and adding an arm trains only that arm. An arm
``<arm>@<steps>`` gets its own step count (e.g. ``plain@460``: the plain loss for the
time the heatmap arm took). One thread, arms in turn.

Usage: ``python -m humansd_core.embedded.recipe.ablation --work out/ablation [--steps 200]
[--seeds 0 1 2] [--arms plain heatmap-full heatmap-linear plain@460]``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from ...errors import HumanSDError
from ...models.checkpoint_read import read_metadata
from ...models.configs import CONFIG_METADATA_KEY
from ...synthetic import generate_scene, scene_rng
from ...training.config import CHOICES, TrainConfig
from ..evaluation import evaluation_set, generate_images, score_poses
from ..model import CFG, EVAL_SEED, MAX_PEOPLE, SIZE, STEPS, embedded_model_path
from .clock import Clock, cpu_seconds
from .presets import read_preset, recipe_config, synth_command

HEATMAP = {"loss": "heatmap", "heatmap_mode": "paper", "heatmap_weight": 0.1, "heatmap_threshold": 0.05,
           "estimator": "tiny", "estimator_scale": 0.5}  # the paper's form, the recipe's estimator
FLOOR_SEED = EVAL_SEED + 1  # real scenes of other poses: the FD's finite-sample floor


def arm_options(arm: str) -> dict[str, object]:
    """The ``[loss]`` options of an arm: ``plain`` or ``heatmap-<decoder>`` (a ``heatmap_decoder`` choice)."""
    if arm == "plain":
        return {"loss": "plain"}
    decoder = arm.removeprefix("heatmap-")
    if arm.startswith("heatmap-") and decoder in CHOICES["heatmap_decoder"]:
        return {**HEATMAP, "heatmap_decoder": decoder}
    raise HumanSDError(f"arm {arm!r}: expected 'plain' or 'heatmap-<decoder>' with decoder one of "
                       f"{list(CHOICES['heatmap_decoder'])}")


def parse_arm(spec: str, steps: int) -> tuple[str, int]:
    """``"arm"`` → ``(arm, steps)``; ``"arm@N"`` → ``(arm, N)`` (an arm with its own budget, e.g. equal time)."""
    arm, at, own = spec.partition("@")
    if at and not (own.isdigit() and int(own) > 0):
        raise HumanSDError(f"arm {spec!r}: the steps after '@' must be a positive whole number")
    arm_options(arm)
    return arm, int(own) if own else steps


def run_name(arm: str, seed: int, steps: int) -> str:
    return f"{arm}-seed{seed}-steps{steps}"


def arm_config(work: Path, arm: str, seed: int, steps: int) -> TrainConfig:
    """The recipe's training config for one run: ``steps`` steps of seed ``seed``, the arm's loss.

    The recipe's schedule is compressed to ``steps``: warmup ``100 · steps / 2400`` and
    EMA decay ``0.995^(2400 / steps)`` (the same horizon as a fraction of the run; a
    0.995 EMA would still hold a third of the fresh weights after 200 steps).

    Paths: ``WORK/data`` (scenes), ``WORK/model_config.json`` (the shipped model's
    architecture), the shipped model's VAE, the shared latent cache ``WORK/cache``, the
    run folder ``WORK/runs/<run_name>``. Only the ``[loss]`` options and the run folder
    differ between arms of one seed.
    """
    config = recipe_config(work)
    shrink = config.optim.steps / steps  # the recipe's schedule, compressed: warmup and EMA horizon scale too
    values = {"vae": str(embedded_model_path()), "cache_dir": str(work / "cache"), "steps": steps,
              "warmup_steps": max(1, round(config.optim.warmup_steps / shrink)),
              "ema_decay": config.optim.ema_decay ** shrink, "seed": seed, "save_every": steps,
              "output": str(work / "runs" / run_name(arm, seed, steps)), **arm_options(arm)}
    for key, value in values.items():
        config.set(key, value, "ablation")
    config.validate()
    return config


def prepare(work: Path) -> None:
    """Write ``WORK/model_config.json`` (the shipped model's) and the recipe's scenes ``WORK/data`` if missing."""
    work.mkdir(parents=True, exist_ok=True)
    meta = read_metadata(embedded_model_path())
    (work / "model_config.json").write_text(meta[CONFIG_METADATA_KEY] + "\n", encoding="utf-8")
    done = work / "data" / f"{read_preset('embedded_data.toml')['count'] - 1:06d}.png"
    if not done.is_file():
        subprocess.run(synth_command(work / "data"), check=True)


def _log_means(run_dir: Path) -> dict[str, float]:
    """Means over the loss log of the run (``plain_loss``; ``coverage``, ``mean_weight`` for heatmap arms)."""
    entries = [json.loads(line) for line in (run_dir / "loss_log.jsonl").read_text(encoding="utf-8").splitlines()]
    keys = ("plain_loss", "coverage", "mean_weight")
    return {k: float(np.mean([e[k] for e in entries])) for k in keys if entries and k in entries[0]}


def train(config: TrainConfig) -> dict[str, object]:
    """Train one run; its exported model and the CPU/wall seconds of the training loop alone."""
    from ...training.trainer import Trainer

    run_dir = Path(config.output.output)
    shutil.rmtree(run_dir, ignore_errors=True)  # no result.json: a run cut short, start it again
    began_cpu, began_wall = cpu_seconds(), time.perf_counter()
    trainer = Trainer(config)
    setup_cpu, setup_wall = cpu_seconds(), time.perf_counter()
    result = trainer.train()
    cpu, wall = cpu_seconds() - setup_cpu, time.perf_counter() - setup_wall
    return {"model": str(result.output), "train_cpu_s": round(cpu, 1), "train_wall_s": round(wall, 1),
            "setup_wall_s": round(setup_wall - began_wall, 1), "setup_cpu_s": round(setup_cpu - began_cpu, 1),
            "s_per_step": round(wall / config.optim.steps, 3), **_log_means(run_dir)}


class JudgeFeatures:
    """``features(images [N,3,H,W] in [0,1]) -> [N,64]``: the judge's bottleneck, averaged over space."""

    def __init__(self) -> None:
        from ...pose.mannequin_estimator import shipped_estimator

        self.judge = shipped_estimator("judge")
        self._out: list[torch.Tensor] = []
        self.judge.network.down[-1].register_forward_hook(lambda _m, _i, out: self._out.append(out.mean((2, 3))))

    def __call__(self, images: torch.Tensor, batch: int = 32) -> np.ndarray:
        self._out.clear()
        for start in range(0, len(images), batch):
            self.judge(images[start:start + batch])
        return torch.cat(self._out).double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance of Gaussians fitted to feature rows ``a [N,D]`` and ``b [M,D]``.

    ``|μa − μb|² + tr Σa + tr Σb − 2 tr (Σa^½ Σb Σa^½)^½`` (symmetric eigen-decompositions,
    so rank-deficient covariances of small sets are fine).
    """
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    vals, vecs = np.linalg.eigh(sa)
    root = (vecs * np.sqrt(vals.clip(min=0))) @ vecs.T
    cross = np.sqrt(np.linalg.eigvalsh(root @ sb @ root).clip(min=0)).sum()
    return float(mu @ mu + np.trace(sa) + np.trace(sb) - 2 * cross)


def scene_images(seed: int, count: int) -> torch.Tensor:
    """The real scenes behind ``evaluation_set(count, seed, examples=False)``: ``[N,3,SIZE,SIZE]`` in ``[0,1]``."""
    scenes = [generate_scene(scene_rng(seed, i), SIZE, max_people=MAX_PEOPLE).image
              for i in range(count)]
    return torch.from_numpy(np.stack(scenes)).permute(0, 3, 1, 2).float() / 255


class Evaluator:
    """Judge scores of a trained model (see the module docstring); the real scenes' features are kept."""

    def __init__(self, fd_count: int, steps: int) -> None:
        self.fd_count, self.steps = fd_count, steps
        self.features = JudgeFeatures()
        self.demo_items = evaluation_set()
        self.fd_items = evaluation_set(count=fd_count, examples=False, plain=False)
        self.real = scene_images(EVAL_SEED, fd_count)
        self.real_features = self.features(self.real)

    def floors(self) -> dict[str, float]:
        """FD of real scenes of other poses and of the real scenes through the shipped (frozen) VAE; the
        shipped model's scores (2400 steps, heatmap loss with the linear decoder) as ``shipped_*``."""
        from ...pipeline import HumanSDPipeline

        vae = HumanSDPipeline.from_checkpoint(embedded_model_path()).vae
        with torch.no_grad():
            recon = ((vae(self.real * 2 - 1).float().clamp(-1, 1) + 1) / 2)
        other = self.features(scene_images(FLOOR_SEED, self.fd_count))
        shipped = {f"shipped_{k}": v for k, v in self(embedded_model_path()).items()}
        return {"fd_other_real_scenes": frechet_distance(other, self.real_features),
                "fd_vae_reconstructions": frechet_distance(self.features(recon), self.real_features), **shipped}

    def __call__(self, model: Path) -> dict[str, float]:
        from ...pipeline import HumanSDPipeline

        pipe = HumanSDPipeline.from_checkpoint(model)
        demo = score_poses(generate_images(pipe, self.demo_items, self.steps),
                           [pose for pose, _ in self.demo_items], self.features.judge)
        images = generate_images(pipe, self.fd_items, self.steps)
        scenes = score_poses(images, [pose for pose, _ in self.fd_items], self.features.judge)
        return {"pck": demo.pck, "oks": demo.oks, "baseline_pck": demo.baseline_pck, "scene_pck": scenes.pck,
                "fd": frechet_distance(self.features(images), self.real_features)}


def _mean_std(values: list[float], digits: int) -> str:
    """``"mean ± sample std"`` (one value: the value alone)."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def table(runs: list[dict], arms: list[str], floors: dict[str, float]) -> str:
    """The markdown table (mean ± sample std over seeds) and the paired-difference lines."""
    head = ("| arm | steps | seeds | PCK@0.1 (demo set) | OKS (demo set) | PCK@0.1 (scene captions) "
            "| FD judge features ↓ | mask coverage | train CPU s | CPU s / step | train wall s |\n"
            + "|---" * 11 + "|")
    rows = [head]
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm]
        cov = _mean_std([r["coverage"] for r in mine], 3) if "coverage" in mine[0] else "—"
        rows.append(f"| {arm} | {mine[0]['steps']} | {len(mine)} | {_mean_std([r['pck'] for r in mine], 3)} "
                    f"| {_mean_std([r['oks'] for r in mine], 3)} | {_mean_std([r['scene_pck'] for r in mine], 3)} "
                    f"| {_mean_std([r['fd'] for r in mine], 2)} | {cov} "
                    f"| {_mean_std([r['train_cpu_s'] for r in mine], 0)} "
                    f"| {_mean_std([r['train_cpu_s'] / r['steps'] for r in mine], 2)} "
                    f"| {_mean_std([r['train_wall_s'] for r in mine], 0)} |")
    rows.append(f"\nFD floors: real scenes of other poses {floors['fd_other_real_scenes']:.2f}, the real scenes "
                f"through the frozen VAE {floors['fd_vae_reconstructions']:.2f}. Random-pose baseline PCK@0.1 "
                f"(demo set): {_mean_std([r['baseline_pck'] for r in runs], 3)} over all runs. The shipped model "
                f"(2400 steps, heatmap-linear): PCK@0.1 {floors['shipped_pck']:.3f}, OKS {floors['shipped_oks']:.3f}, "
                f"scene captions {floors['shipped_scene_pck']:.3f}, FD {floors['shipped_fd']:.2f}.")
    by_seed = {(r["arm"], r["seed"]): r for r in runs}
    for i, first in enumerate(arms):
        for arm in arms[i + 1:]:
            seeds = sorted(s for a, s in by_seed if a == arm and (first, s) in by_seed)
            pairs = [(by_seed[(arm, s)], by_seed[(first, s)]) for s in seeds]
            diff = [a["pck"] - b["pck"] for a, b in pairs]
            cpu = np.mean([a["train_cpu_s"] / b["train_cpu_s"] for a, b in pairs])
            rows.append(f"\n{arm} − {first}, paired by seed: PCK@0.1 {_mean_std(diff, 3)} "
                        f"(per seed {', '.join(f'{d:+.3f}' for d in diff)}); "
                        f"OKS {_mean_std([a['oks'] - b['oks'] for a, b in pairs], 3)}; "
                        f"FD {_mean_std([a['fd'] - b['fd'] for a, b in pairs], 2)}; "
                        f"training CPU {cpu:.2f}× ({cpu * pairs[0][1]['steps'] / pairs[0][0]['steps']:.2f}× a step).")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("out/ablation"), help="work folder (default %(default)s)")
    parser.add_argument("--arms", nargs="+", default=["plain", "heatmap-full"],
                        help="plain and/or heatmap-<decoder> (default %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default %(default)s")
    parser.add_argument("--steps", type=int, default=200,
                        help="optimiser steps of batch 16 a run (default %(default)s)")
    parser.add_argument("--eval-steps", type=int, default=STEPS, help="DDIM steps (default %(default)s)")
    parser.add_argument("--fd-count", type=int, default=32,
                        help="sampled poses for the FD and the scene-caption PCK (default %(default)s)")
    args = parser.parse_args()
    specs = {spec: parse_arm(spec, args.steps) for spec in args.arms}  # fail before anything runs
    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(1)
    clock = Clock()
    prepare(args.work)
    print(clock.lap("data"), flush=True)
    evaluator = Evaluator(args.fd_count, args.eval_steps)
    floors = evaluator.floors()
    print(clock.lap("evaluation set"), flush=True)
    runs = []
    for seed in args.seeds:
        for spec, (arm, steps) in specs.items():
            config = arm_config(args.work, arm, seed, steps)
            done = Path(config.output.output) / "result.json"
            if done.is_file():
                run = {**json.loads(done.read_text(encoding="utf-8")), "arm": spec}
            else:
                run = {"arm": spec, "seed": seed, "steps": steps, **train(config)}
                began, began_cpu = time.perf_counter(), cpu_seconds()
                run.update(evaluator(Path(run["model"])), eval_wall_s=round(time.perf_counter() - began, 1),
                           eval_cpu_s=round(cpu_seconds() - began_cpu, 1))
                print(clock.lap(f"{spec} seed {seed}"), flush=True)
                done.write_text(json.dumps(run, indent=1) + "\n", encoding="utf-8")
            print(json.dumps(run), flush=True)
            runs.append(run)
    report = table(runs, args.arms, floors)
    settings = {k: v for k, v in vars(args).items() if k != "work"}
    (args.work / "results.json").write_text(json.dumps({"settings": settings, "floors": floors, "runs": runs,
                                                        "times": clock.rows}, indent=1) + "\n", encoding="utf-8")
    spent = {k: sum(r.get(f"{part}_{k}", 0.0) for r in runs for part in ("setup", "train", "eval"))
             for k in ("cpu_s", "wall_s")}
    print(f"\n{report}\n\n({args.steps} steps of batch 16 a run unless '@' says otherwise; DDIM {args.eval_steps}, "
          f"guidance {CFG}; FD over {args.fd_count} images. The runs' recorded setup + training + "
          f"evaluation: {spent['cpu_s'] / 60:.1f} min CPU, {spent['wall_s'] / 60:.1f} min wall; this invocation "
          f"{sum(r['wall_s'] for r in clock.rows.values()) / 60:.1f} min wall.)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
