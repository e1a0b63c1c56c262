"""The recipe's settings, read from the presets in ``humansd_core/assets/presets/`` (their one home).

* ``embedded_data.toml``: the training scenes (``humansd synth`` arguments);
* ``embedded_model.json``: the architecture (the VAE's scale factor is measured after its training);
* ``embedded_vae.toml``: :class:`~.vae.VAETrainOptions` of the autoencoder;
* ``embedded_vae_decoder.toml``: those of the last, decoder-only stage;
* ``embedded_humansd.toml``: the ``humansd train`` config of the UNet and text tower;
* ``embedded_humansd_text.toml``: the second, text stage's ``humansd train`` config (on the first's model);
* ``embedded_estimators.toml``: the two mannequin estimators' architectures, seeds and training;
* ``embedded_distilled.toml``: the distilled loss net's data and fit.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ...assets import PRESETS_DIR
from ...models.configs import ModelConfig
from ...tomlfile import read_toml
from ...training.config import TrainConfig

HUMANSD_PRESET = PRESETS_DIR / "embedded_humansd.toml"
TEXT_STAGE_PRESET = PRESETS_DIR / "embedded_humansd_text.toml"  # the second stage, on the first one's model
CLI_MODULE = __name__.rsplit(".", 3)[0] + ".cli"  # the core's own CLI, named relative to this package


def read_preset(name: str) -> dict[str, Any]:
    """The tables of ``presets/<name>`` (a TOML file)."""
    return read_toml(PRESETS_DIR / name)


def model_config() -> ModelConfig:
    """The embedded model's architecture (``embedded_model.json``; scale factor 0.18215 until the VAE is measured)."""
    return ModelConfig.from_json((PRESETS_DIR / "embedded_model.json").read_text(encoding="utf-8"))


def recipe_config(work: Path) -> TrainConfig:
    """``embedded_humansd.toml`` with its relative paths resolved against ``work``.

    ``work`` must hold what the preset names (``model_config.json``, ``vae.safetensors``,
    ``data/``) or the caller overrides those options.
    """
    return TrainConfig.from_dict(read_toml(HUMANSD_PRESET), str(HUMANSD_PRESET), Path(work))


def humansd(*args: str) -> list[str]:
    """The command line of ``humansd ARGS`` with this interpreter."""
    return [sys.executable, "-m", CLI_MODULE, *args]


def synth_command(out: Path, count: int | None = None, table: str | None = None) -> list[str]:
    """``humansd synth`` writing the recipe's scenes to ``out``: ``embedded_data.toml``'s top level (the
    first stage's scenes) or its ``table`` (e.g. ``"text_stage"``); ``count`` overrides its count."""
    preset = read_preset("embedded_data.toml")
    data = preset if table is None else preset[table]
    kinds = ["--backgrounds", *data["backgrounds"]] if "backgrounds" in data else []
    return humansd("synth", "--out", str(out), "--count", str(count or data["count"]), "--size", str(data["size"]),
                   "--seed", str(data["seed"]), *kinds)


def write_json(path: Path, value: object) -> None:
    """Write ``value`` as indented JSON (the recipe's work files: ``model_config.json``, ``metrics.json``)."""
    path.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")
