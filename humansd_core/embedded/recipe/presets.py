"""Shared pieces of the embedded tiny HumanSD's recipe, for the scripts that rerun parts of it.

Imported by ``benchmarks/train_embedded.py`` (the whole recipe) and
``benchmarks/ablation.py`` (the UNet stage again, loss against loss): the data
recipe, the ``humansd train`` preset with its paths resolved in a work folder, CPU
and wall clocks, and the evaluation's image generation (the demo's settings,
:mod:`humansd_core.embedded`).
"""
from __future__ import annotations

import resource
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

import torch

from humansd_core import embedded
from humansd_core.pose import PoseSet
from humansd_core.training.config import TrainConfig

PRESETS = Path(embedded.__file__).parent / "assets" / "presets"
DATA = {"count": 3000, "size": 128, "seed": 0}  # `humansd synth` arguments of the training scenes


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Clock:
    """Per-step CPU and wall time: :meth:`lap` records the time since the previous lap under a name."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, float]] = {}
        self.cpu, self.wall = cpu_seconds(), time.perf_counter()

    def lap(self, name: str) -> dict[str, float]:
        cpu, wall = cpu_seconds(), time.perf_counter()
        self.rows[name] = {"cpu_s": round(cpu - self.cpu, 1), "wall_s": round(wall - self.wall, 1)}
        print(f"[{name}] cpu {cpu - self.cpu:.0f} s, wall {wall - self.wall:.0f} s", flush=True)
        self.cpu, self.wall = cpu, wall
        return self.rows[name]


def humansd(*args: str) -> list[str]:
    """The command line of ``humansd ARGS`` with this interpreter."""
    return [sys.executable, "-m", "humansd_core.cli", *args]


def synth_command(out: Path, count: int = DATA["count"]) -> list[str]:
    """``humansd synth`` writing the recipe's training scenes (128 px, seed 0) to ``out``."""
    return humansd("synth", "--out", str(out), "--count", str(count), "--size", str(DATA["size"]),
                   "--seed", str(DATA["seed"]))


def recipe_config(work: Path) -> TrainConfig:
    """``presets/embedded_humansd.toml`` with its relative paths resolved against ``work``.

    ``work`` must hold what the preset names (``model_config.json``, ``vae.safetensors``,
    ``data/``) or the caller overrides those options.
    """
    path = PRESETS / "embedded_humansd.toml"
    return TrainConfig.from_dict(tomllib.loads(path.read_text(encoding="utf-8")), str(path), Path(work))


@torch.no_grad()
def generate(pipe: object, items: Sequence[tuple[PoseSet, str]], steps: int = embedded.STEPS,
             cfg: float = embedded.CFG) -> torch.Tensor:
    """Images ``[N,3,SIZE,SIZE]`` in ``[0,1]`` of ``(pose, prompt)`` items as the demo makes them.

    DDIM ``steps``, guidance ``cfg``, empty negative and added prompt, seed ``SEED + i``.
    """
    return torch.cat([pipe.generate(pose, prompt, negative="", added_prompt="", steps=steps, cfg=cfg,
                                    seed=embedded.SEED + i, width=embedded.SIZE, height=embedded.SIZE,
                                    progress=False).images
                      for i, (pose, prompt) in enumerate(items)])
