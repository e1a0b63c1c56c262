"""Recipe ablation: HumanSD's heatmap-guided loss against the plain loss, on the embedded tiny model's recipe.

Each run trains a fresh UNet + text tower with the recipe of the embedded model
(``presets/embedded_humansd.toml``: full mode, batch 16, 128 px, AdamW, EMA; see
``humansd_core/assets/MODEL_CARD.md``) for ``--steps`` optimiser steps, on the
recipe's 3000 synthetic scenes (``presets/embedded_data.toml``), with the *shipped*
model's VAE frozen; the latents are cached once and shared by all runs. The recipe's
schedule (warmup, cosine, EMA horizon) is compressed to the shorter run. Within a
seed every arm starts from the same weights and sees the same batches, timesteps
and noise: the arms differ only in the ``[loss]`` options and the suffixes' options (:func:`arm_options`):

* ``plain``: MSE;
* ``heatmap-<decoder>``: the heatmap-guided loss in the paper's form (weight
  ``1 + 0.1 · mask``, threshold 0.05, the bundled mannequin "loss" estimator at
  64 px) with the noise difference decoded by ``<decoder>`` (any choice of the
  trainer's ``heatmap_decoder`` option: ``full`` is the paper's VAE decode,
  ``linear`` the v3 recipe's, ``reduced``, ``distilled`` the trainer's default and v4's);
* either with ``+offset<x>``: offset noise of scale ``x`` (``[optim] noise_offset``; its
  draws come after the others, so the batches, timesteps and noise stay paired), and/or
  ``+highnoise<c>``: the high-noise loss weights ``clamp(1/SNR(t), 1, c)``
  (``[optim] high_noise_weight_cap``, :mod:`humansd_core.training.timestep_weights`).

Each trained model is scored by the *judge* estimator (not the one in the loss):

* pose accuracy (PCK@0.1, OKS) on the demo's evaluation set
  (:func:`humansd_core.embedded.evaluation.evaluation_set`, 28 images, DDIM ``--eval-steps``,
  guidance 3), and on ``--fd-count`` sampled poses with their scenes' own captions;
* a quality proxy: the Fréchet distance between the judge's pooled bottleneck
  features (the U-Net's 1/16 stage, 64 channels, averaged over space) of those
  generated images and of the real synthetic scenes they were sampled from (same
  poses, same captions). Two floors put it on a scale: real scenes of other poses
  (finite-sample noise) and the real scenes through the frozen VAE;
* prompt adherence on the demo's evaluation set (each prompt names a plain background
  colour and the shirts' colours): the fractions read back as named
  (:func:`humansd_core.embedded.evaluation.score_adherence`), with the chance level.

Prints per-run lines and a markdown table (mean ± std over seeds), the paired
differences of every later arm against the first, the heatmap arms' mask coverage per
timestep bin, and writes ``WORK/results.json``. An arm ``<arm>@<steps>`` gets its own step
count (e.g. ``plain@460``: the plain loss for the time the heatmap arm took).

Nothing is lost when a run is cut short: every run saves a resume checkpoint each
``--save-every`` steps (with its CPU and wall seconds so far, ``spent.json``) and the
trainer resumes it bit for bit; a finished run (``WORK/runs/<arm>-seed<s>-steps<n>/
result.json``) is reused, so adding an arm trains only that arm. A run is trained under
a lock of its own, and a process skips a run another one holds until it has nothing else
to do: the same command started N times trains N runs at once (one thread each; the
floors, ``WORK/floors.json``, are computed once). ``--report`` trains nothing and
reports the finished runs.

Usage: ``python -m humansd_core.embedded.recipe.ablation --work out/ablation [--steps 2400]
[--seeds 0 1 2] [--arms plain heatmap-distilled heatmap-full plain@460 heatmap-distilled+offset0.3] [--report]``.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ...assets import ESTIMATOR_NAMES, file_digest, shipped_weights
from ...errors import HumanSDError
from ...fileio import atomic_write_text
from ...models.checkpoint_read import read_metadata
from ...models.configs import CONFIG_METADATA_KEY
from ...synthetic import generate_scene, scene_rng
from ...training.config import CHOICES, TrainConfig
from ..evaluation import evaluation_set, generate_images, score_adherence, score_poses
from ..model import CFG, EVAL_SEED, MAX_PEOPLE, SIZE, STEPS, embedded_model_path
from .clock import Clock, cpu_seconds
from .presets import read_preset, recipe_config, synth_command

HEATMAP = {"loss": "heatmap", "heatmap_mode": "paper", "heatmap_weight": 0.1, "heatmap_threshold": 0.05,
           "estimator": "tiny", "estimator_scale": 0.5}  # the paper's form, the recipe's estimator
FLOOR_SEED = EVAL_SEED + 1  # real scenes of other poses: the FD's finite-sample floor
LOG = logging.getLogger(__name__)
SCORES = ("pck", "oks", "baseline_pck", "scene_pck", "fd", "background_adherence", "shirt_adherence",
          "background_chance", "shirt_chance")  # what Evaluator gives a model


SUFFIXES = {  # an arm's "+<name><x>" suffix: (option it sets, its lowest value (excluded), highest, example)
    "offset": ("noise_offset", 0.0, 1.0, "plain+offset0.3"),
    "highnoise": ("high_noise_weight_cap", 1.0, 1e6, "plain+highnoise20"),
}
SUFFIX_FORMS = [f"+{name}<x>" for name in SUFFIXES]


def arm_options(arm: str) -> dict[str, object]:
    """The options of an arm: ``plain`` or ``heatmap-<decoder>`` (a ``heatmap_decoder`` choice) sets the ``[loss]``
    options; suffixes add the levers for text control of an image's colours: ``+offset<x>`` offset noise of
    scale ``x`` in (0, 1] (``[optim] noise_offset``, e.g. ``plain+offset0.3``), ``+highnoise<c>`` the
    high-noise loss weights capped at ``c`` > 1 (``[optim] high_noise_weight_cap``, e.g. ``plain+highnoise20``)."""
    base, *suffixes = arm.split("+")
    extra: dict[str, object] = {}
    for suffix in suffixes:
        name = suffix.rstrip("0123456789.")
        if name not in SUFFIXES:
            raise HumanSDError(f"arm {arm!r}: unknown suffix '+{suffix}'; expected one of {SUFFIX_FORMS}")
        key, low, high, example = SUFFIXES[name]
        try:
            value = float(suffix[len(name):])
        except ValueError:
            raise HumanSDError(f"arm {arm!r}: expected a number after '+{name}', e.g. {example!r}") from None
        if not low < value <= high:
            raise HumanSDError(f"arm {arm!r}: the number after '+{name}' must be in ({low:g}, {high:g}]")
        extra[key] = value
    if base == "plain":
        return {"loss": "plain", **extra}
    decoder = base.removeprefix("heatmap-")
    if base.startswith("heatmap-") and decoder in CHOICES["heatmap_decoder"]:
        return {**HEATMAP, "heatmap_decoder": decoder, **extra}
    raise HumanSDError(f"arm {arm!r}: expected 'plain' or 'heatmap-<decoder>' with decoder one of "
                       f"{list(CHOICES['heatmap_decoder'])}, optionally followed by suffixes {SUFFIX_FORMS}")


def parse_arm(spec: str, steps: int) -> tuple[str, int]:
    """``"arm"`` → ``(arm, steps)``; ``"arm@N"`` → ``(arm, N)`` (an arm with its own budget, e.g. equal time);
    ``arm`` is checked by :func:`arm_options`."""
    arm, at, own = spec.partition("@")
    if at and not (own.isdigit() and int(own) > 0):
        raise HumanSDError(f"arm {spec!r}: the steps after '@' must be a positive whole number")
    arm_options(arm)
    return arm, int(own) if own else steps


def run_name(arm: str, seed: int, steps: int) -> str:
    return f"{arm}-seed{seed}-steps{steps}"


def arm_config(work: Path, arm: str, seed: int, steps: int, save_every: int = 400) -> TrainConfig:
    """The recipe's training config for one run: ``steps`` steps of seed ``seed``, the arm's loss.

    The recipe's schedule is scaled to ``steps``: warmup ``W · steps / S`` and EMA decay
    ``d^(S / steps)`` for the preset's ``S`` steps, ``W`` warm-up steps and decay ``d`` (v4:
    7200, 300, 0.995^(1/3), so 2400 steps get v3's 100 and 0.995): the same horizon as a
    fraction of the run (a 0.995 EMA would still hold a third of the fresh weights after 200 steps).

    Paths: ``WORK/data`` (scenes), ``WORK/model_config.json`` (the shipped model's
    architecture), the shipped model's VAE, the shared latent cache ``WORK/cache``, the
    run folder ``WORK/runs/<run_name>``, resumed from its latest checkpoint (one kept,
    every ``save_every`` steps). Only the arm's options (:func:`arm_options`) and the run
    folder differ between arms of one seed.
    """
    config = recipe_config(work)
    shrink = config.optim.steps / steps  # the recipe's schedule, compressed: warmup and EMA horizon scale too
    values = {"vae": str(embedded_model_path()), "cache_dir": str(work / "cache"), "steps": steps,
              "warmup_steps": max(1, round(config.optim.warmup_steps / shrink)),
              "ema_decay": config.optim.ema_decay ** shrink, "seed": seed, "save_every": min(save_every, steps),
              "keep_last": 1, "resume": "auto", "output": str(work / "runs" / run_name(arm, seed, steps)),
              **arm_options(arm)}
    for key, value in values.items():
        config.set(key, value, "ablation")
    config.validate()
    return config


@contextlib.contextmanager
def locked(path: Path, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` for the block; yields False (nothing held) when
    ``wait`` is False and another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare(work: Path) -> None:
    """Write ``WORK/model_config.json`` (the shipped model's) and the recipe's scenes ``WORK/data`` if missing."""
    with locked(work / "prepare.lock"):
        meta = read_metadata(embedded_model_path())
        atomic_write_text(work / "model_config.json", meta[CONFIG_METADATA_KEY] + "\n")
        done = work / "data" / f"{read_preset('embedded_data.toml')['count'] - 1:06d}.png"
        if not done.is_file():
            subprocess.run(synth_command(work / "data"), check=True)


def log_summary(run_dir: Path) -> dict[str, object]:
    """Over the run's loss log: mean ``plain_loss`` (and ``coverage``, ``mean_weight`` for heatmap arms), and
    for heatmap arms ``coverage_by_t``: the mask coverage per timestep bin of 100 (``None`` if never drawn)."""
    entries = [json.loads(line) for line in (run_dir / "loss_log.jsonl").read_text(encoding="utf-8").splitlines()]
    keys = ("plain_loss", "coverage", "mean_weight")
    summary: dict[str, object] = {k: float(np.mean([e[k] for e in entries])) for k in keys
                                  if entries and k in entries[0]}
    binned = [e for e in entries if "count_by_t" in e]
    if binned:
        counts = np.sum([e["count_by_t"] for e in binned], axis=0)
        sums = np.sum([[c * n if n else 0.0 for c, n in zip(e["coverage_by_t"], e["count_by_t"])]
                       for e in binned], axis=0)
        summary["coverage_by_t"] = [round(float(s / n), 4) if n else None for s, n in zip(sums, counts)]
    return summary


def _spent(run_dir: Path) -> dict[str, float]:
    """CPU and wall seconds of the run's setup and training up to its latest checkpoint (0 for a new run)."""
    path = run_dir / "spent.json"
    base = {"setup_cpu_s": 0.0, "setup_wall_s": 0.0, "train_cpu_s": 0.0, "train_wall_s": 0.0, "sessions": 0}
    return {**base, **json.loads(path.read_text(encoding="utf-8"))} if path.is_file() else base


def train(config: TrainConfig) -> dict[str, object]:
    """Train one run, resuming it from its latest checkpoint; its exported model and the CPU/wall seconds of
    its setup (latent cache, model) and training loop, summed over every process that worked on it."""
    from ...training.trainer import Trainer, TrainHooks

    run_dir = Path(config.output.output)
    spent = _spent(run_dir)
    began_cpu, began_wall = cpu_seconds(), time.perf_counter()
    marks: dict[str, float] = {}

    def record(step: int, total: int, _stats: dict[str, float]) -> None:
        if step % config.output.save_every == 0 or step == total:  # the trainer saved a checkpoint of this step
            now = {"train_cpu_s": cpu_seconds() - marks["cpu"], "train_wall_s": time.perf_counter() - marks["wall"]}
            atomic_write_text(run_dir / "spent.json", json.dumps(
                {**setup, **{k: round(spent[k] + v, 1) for k, v in now.items()}, "step": step}) + "\n")

    trainer = Trainer(config, hooks=TrainHooks(on_step=record))
    marks.update(cpu=cpu_seconds(), wall=time.perf_counter())
    setup = {"setup_cpu_s": round(spent["setup_cpu_s"] + marks["cpu"] - began_cpu, 1),
             "setup_wall_s": round(spent["setup_wall_s"] + marks["wall"] - began_wall, 1),
             "sessions": spent["sessions"] + 1}
    result = trainer.train()
    final = _spent(run_dir)
    return {"model": str(result.output), **{k: final[k] for k in ("train_cpu_s", "train_wall_s", "setup_cpu_s",
                                                                  "setup_wall_s", "sessions")},
            "s_per_step": round(final["train_wall_s"] / config.optim.steps, 3), **log_summary(run_dir)}


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

    def floors(self, path: Path) -> dict[str, float]:
        """FD of real scenes of other poses and of the real scenes through the shipped (frozen) VAE; the
        shipped model's scores as ``shipped_*``. Computed once per work folder and kept in ``path`` (the FD
        count, DDIM steps, scores and the digests of the shipped model and judge are part of its key)."""
        with locked(path.with_suffix(".lock")):
            key = {"fd_count": self.fd_count, "eval_steps": self.steps, "scores": list(SCORES),
                   "model": file_digest(embedded_model_path()),
                   "judge": file_digest(shipped_weights(ESTIMATOR_NAMES["judge"]))}
            kept = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
            if kept.get("settings") != key:
                kept = {"settings": key, "floors": self._floors()}
                atomic_write_text(path, json.dumps(kept, indent=1) + "\n")
        return kept["floors"]

    def _floors(self) -> dict[str, float]:
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
        demo_images = generate_images(pipe, self.demo_items, self.steps)
        demo = score_poses(demo_images, [pose for pose, _ in self.demo_items], self.features.judge)
        adherence = score_adherence(demo_images, self.demo_items)
        images = generate_images(pipe, self.fd_items, self.steps)
        scenes = score_poses(images, [pose for pose, _ in self.fd_items], self.features.judge)
        return {"pck": demo.pck, "oks": demo.oks, "baseline_pck": demo.baseline_pck, "scene_pck": scenes.pck,
                "fd": frechet_distance(self.features(images), self.real_features),
                "background_adherence": adherence.background, "shirt_adherence": adherence.shirt,
                "background_chance": adherence.background_chance, "shirt_chance": adherence.shirt_chance}


def _mean_std(values: list[float], digits: int) -> str:
    """``"mean ± sample std"`` (one value: the value alone)."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _scored(runs: list[dict], key: str, digits: int) -> str:
    """``_mean_std`` of ``key`` over the runs that have it (runs scored before it existed lack it): "—" for
    none, and ``(n of m)`` after it when only some have it."""
    values = [r[key] for r in runs if key in r]
    if not values:
        return "—"
    return _mean_std(values, digits) + ("" if len(values) == len(runs) else f" ({len(values)} of {len(runs)})")


def table(runs: list[dict], arms: list[str], floors: dict[str, float]) -> str:
    """The markdown table (mean ± sample std over seeds) and the paired-difference lines."""
    head = ("| arm | steps | seeds | PCK@0.1 (demo set) | OKS (demo set) | PCK@0.1 (scene captions) "
            "| FD judge features ↓ | background adherence (demo set) | shirt adherence (demo set) "
            "| mask coverage | train CPU s | CPU s / step | train wall s |\n" + "|---" * 13 + "|")
    rows = [head]
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm]
        rows.append(f"| {arm} | {mine[0]['steps']} | {len(mine)} | {_mean_std([r['pck'] for r in mine], 3)} "
                    f"| {_mean_std([r['oks'] for r in mine], 3)} | {_mean_std([r['scene_pck'] for r in mine], 3)} "
                    f"| {_mean_std([r['fd'] for r in mine], 2)} | {_scored(mine, 'background_adherence', 3)} "
                    f"| {_scored(mine, 'shirt_adherence', 3)} | {_scored(mine, 'coverage', 3)} "
                    f"| {_mean_std([r['train_cpu_s'] for r in mine], 0)} "
                    f"| {_mean_std([r['train_cpu_s'] / r['steps'] for r in mine], 2)} "
                    f"| {_mean_std([r['train_wall_s'] for r in mine], 0)} |")
    rows.append(f"\nFD floors: real scenes of other poses {floors['fd_other_real_scenes']:.2f}, the real scenes "
                f"through the frozen VAE {floors['fd_vae_reconstructions']:.2f}. Random-pose baseline PCK@0.1 "
                f"(demo set): {_mean_std([r['baseline_pck'] for r in runs], 3)} over all runs. The shipped model: "
                f"PCK@0.1 {floors['shipped_pck']:.3f}, OKS {floors['shipped_oks']:.3f}, "
                f"scene captions {floors['shipped_scene_pck']:.3f}, FD {floors['shipped_fd']:.2f}"
                + (f", prompt adherence background {floors['shipped_background_adherence']:.3f} shirt "
                   f"{floors['shipped_shirt_adherence']:.3f}" if "shipped_background_adherence" in floors else "")
                + f". Adherence chance (the prompts of other images): background "
                f"{_scored(runs, 'background_chance', 3)}, shirt {_scored(runs, 'shirt_chance', 3)}.")
    for arm in arms:
        binned = [r["coverage_by_t"] for r in runs if r["arm"] == arm and "coverage_by_t" in r]
        if binned:
            means = [np.mean([b[i] for b in binned if b[i] is not None]) for i in range(len(binned[0]))]
            rows.append(f"\n{arm}: mask coverage by timestep (bins of 100, t = 0 first; mean over "
                        f"{len(binned)} runs): {' '.join(f'{m:.3f}' for m in means)}")
    by_seed = {(r["arm"], r["seed"]): r for r in runs}
    for i, first in enumerate(arms):
        for arm in arms[i + 1:]:
            seeds = sorted(s for a, s in by_seed if a == arm and (first, s) in by_seed)
            pairs = [(by_seed[(arm, s)], by_seed[(first, s)]) for s in seeds]
            if not pairs:
                continue
            diff = [a["pck"] - b["pck"] for a, b in pairs]
            cpu = np.mean([a["train_cpu_s"] / b["train_cpu_s"] for a, b in pairs])
            adhered = [(a, b) for a, b in pairs if "background_adherence" in a and "background_adherence" in b]
            adherence = "".join(
                f"{name} adherence {_mean_std([a[key] - b[key] for a, b in adhered], 3)}"
                f"{'' if len(adhered) == len(pairs) else f' ({len(adhered)} seeds)'}; "
                for name, key in (("background", "background_adherence"), ("shirt", "shirt_adherence"))
                if adhered)
            rows.append(f"\n{arm} − {first}, paired by seed: PCK@0.1 {_mean_std(diff, 3)} "
                        f"(per seed {', '.join(f'{d:+.3f}' for d in diff)}); "
                        f"OKS {_mean_std([a['oks'] - b['oks'] for a, b in pairs], 3)}; "
                        f"FD {_mean_std([a['fd'] - b['fd'] for a, b in pairs], 2)}; {adherence}"
                        f"training CPU {cpu:.2f}× ({cpu * pairs[0][1]['steps'] / pairs[0][0]['steps']:.2f}× a step).")
    return "\n".join(rows)


def _lacks_scores(run: dict, evaluator: Evaluator | None) -> bool:
    """A finished run scored before some of :data:`SCORES` existed, whose model is still there to score."""
    return evaluator is not None and any(k not in run for k in SCORES) and Path(run["model"]).is_file()


def _run(work: Path, spec: str, arm: str, seed: int, steps: int, save_every: int,
         evaluator: Evaluator | None, clock: Clock, wait: bool) -> dict | None:
    """One run's result: read when finished; else trained (and evaluated) under the run's lock. A finished run
    that lacks some of :data:`SCORES` gets them from its model (its other scores are kept). None when ``wait``
    is False and another process holds the lock, or when ``evaluator`` is None (report only) and the run is
    not finished."""
    config = arm_config(work, arm, seed, steps, save_every)
    done = Path(config.output.output) / "result.json"

    def finished() -> dict | None:
        return json.loads(done.read_text(encoding="utf-8")) if done.is_file() else None

    run = finished()
    if run is not None and not _lacks_scores(run, evaluator):
        return {**run, "arm": spec}
    if evaluator is None:
        return None
    with locked(Path(config.output.output + ".lock"), wait) as held:
        if not held:
            return None
        run = finished()  # the process that held the lock may have finished or scored it
        if run is not None and not _lacks_scores(run, evaluator):
            return {**run, "arm": spec}
        run = run or {"arm": spec, "seed": seed, "steps": steps, **train(config)}
        began, began_cpu = time.perf_counter(), cpu_seconds()
        scores = evaluator(Path(run["model"]))
        changed = [k for k, v in scores.items() if k in run and abs(run[k] - v) > 1e-6]
        if changed:
            LOG.warning("%s: re-scored %s differ from the recorded ones (kept): %s", done, changed,
                        {k: (run[k], scores[k]) for k in changed})
        run.update({k: v for k, v in scores.items() if k not in run}, eval_wall_s=round(time.perf_counter() - began, 1),
                   eval_cpu_s=round(cpu_seconds() - began_cpu, 1))
        print(clock.lap(f"{spec} seed {seed}"), flush=True)
        atomic_write_text(done, json.dumps(run, indent=1) + "\n")
        return {**run, "arm": spec}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("out/ablation"), help="work folder (default %(default)s)")
    parser.add_argument("--arms", nargs="+", default=["plain", "heatmap-distilled"],
                        help="plain and/or heatmap-<decoder>[@steps]; the first is what the others are paired "
                             "against (default %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default %(default)s")
    recipe_steps = read_preset("embedded_humansd.toml")["optim"]["steps"]
    parser.add_argument("--steps", type=int, default=recipe_steps,
                        help="optimiser steps of batch 16 a run (default: the recipe's %(default)s)")
    parser.add_argument("--save-every", type=int, default=200,
                        help="resume checkpoint every N steps (default %(default)s)")
    parser.add_argument("--eval-steps", type=int, default=STEPS, help="DDIM steps (default %(default)s)")
    parser.add_argument("--fd-count", type=int, default=32,
                        help="sampled poses for the FD and the scene-caption PCK (default %(default)s)")
    parser.add_argument("--report", action="store_true", help="train nothing: report the finished runs")
    args = parser.parse_args()
    specs = {spec: parse_arm(spec, args.steps) for spec in args.arms}  # fail before anything runs
    if args.save_every < 1:
        parser.error(f"--save-every {args.save_every}: must be at least 1")
    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(1)
    clock = Clock()
    args.work.mkdir(parents=True, exist_ok=True)
    prepare(args.work)
    print(clock.lap("data"), flush=True)
    evaluator = Evaluator(args.fd_count, args.eval_steps)
    floors = evaluator.floors(args.work / "floors.json")
    print(clock.lap("evaluation set"), flush=True)
    wanted = [(spec, arm, seed, steps) for seed in args.seeds for spec, (arm, steps) in specs.items()]
    results: dict[tuple[str, int], dict] = {}
    for wait in (False, True):  # first the runs no other process holds, then wait for the rest
        for spec, arm, seed, steps in wanted:
            if (spec, seed) not in results:
                run = _run(args.work, spec, arm, seed, steps, args.save_every,
                           None if args.report else evaluator, clock, wait)
                if run is not None:
                    results[spec, seed] = run
                    print(json.dumps(run), flush=True)
    runs = [results[spec, seed] for spec, _, seed, _ in wanted if (spec, seed) in results]
    if not runs:
        raise HumanSDError(f"{args.work / 'runs'}: no finished run of arms {args.arms} and seeds {args.seeds}")
    arms = [spec for spec in args.arms if any(r["arm"] == spec for r in runs)]
    report = table(runs, arms, floors)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    atomic_write_text(args.work / "results.json", json.dumps({"settings": settings, "floors": floors, "runs": runs,
                                                              "times": clock.rows}, indent=1) + "\n")
    spent = {k: sum(r.get(f"{part}_{k}", 0.0) for r in runs for part in ("setup", "train", "eval"))
             for k in ("cpu_s", "wall_s")}
    missing = [f"{spec} seed {seed}" for spec, _, seed, _ in wanted if (spec, seed) not in results]
    print(f"\n{report}\n\n({args.steps} steps of batch 16 a run unless '@' says otherwise; DDIM {args.eval_steps}, "
          f"guidance {CFG}; FD over {args.fd_count} images. The runs' recorded setup + training + "
          f"evaluation: {spent['cpu_s'] / 60:.1f} min CPU, {spent['wall_s'] / 60:.1f} min wall; this invocation "
          f"{sum(r['wall_s'] for r in clock.rows.values()) / 60:.1f} min wall."
          f"{' Not finished: ' + ', '.join(missing) + '.' if missing else ''})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
