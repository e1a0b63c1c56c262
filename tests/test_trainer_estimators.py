"""The trainer with each heatmap estimator and both loss forms, end to end on the tiny model.

The loss itself is checked on hand-made tensors in ``test_training_loss.py``; here the
trainer's wiring is: the option chosen in the config reaches the loss, runs on real
decoded noise differences, and its diagnostics reach the loss log.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from support.checkpoints import random_openpose_state
from safetensors.torch import save_file
from support.training_data import make_dataset, tiny_train_config

from humansd_core.errors import HumanSDError
from humansd_core.training.trainer import Trainer

WEIGHT = 0.1


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "set", count=4)


@pytest.fixture(scope="module")
def openpose_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real OpenPose body network, random He-initialised weights, in a safetensors file."""
    path = tmp_path_factory.mktemp("openpose") / "body_pose_model.safetensors"
    save_file(random_openpose_state(), str(path))
    return path


def run_and_read_log(data: Path, run: Path, **loss_options: object) -> list[dict]:
    options = {"loss": "heatmap", "heatmap_weight": WEIGHT, "steps": 2, "log_every": 1, **loss_options}
    trainer = Trainer(tiny_train_config(data, run, **options))
    result = trainer.train()
    assert result.step == 2
    return [json.loads(line) for line in (run / "loss_log.jsonl").read_text().splitlines()]


def test_reference_form_with_openpose_estimator(data: Path, openpose_weights: Path, tmp_path: Path) -> None:
    """The public code's form: full decode, OpenPose heatmaps, a VAE-encoded joint-count weight."""
    entries = run_and_read_log(data, tmp_path / "run", heatmap_mode="reference", estimator="openpose",
                               estimator_weights=str(openpose_weights))
    assert len(entries) == 2
    for entry in entries:
        assert all(math.isfinite(entry[k]) for k in ("loss", "plain_loss", "mean_weight", "coverage"))
        assert 0.0 <= entry["coverage"] <= 1.0
        # the weight is 1 + w * (a VAE encoding), not 1: the loss differs from the plain one
        assert entry["mean_weight"] != pytest.approx(1.0, abs=1e-6)
        assert entry["loss"] != pytest.approx(entry["plain_loss"], rel=1e-6)


def test_paper_form_with_bundled_mannequin_estimator_and_full_decode(data: Path, tmp_path: Path) -> None:
    """The paper's form: weight in [1, 1 + w] per latent cell, so loss between plain and (1 + w) x plain."""
    entries = run_and_read_log(data, tmp_path / "run", heatmap_mode="paper", estimator="tiny", heatmap_decoder="full")
    for entry in entries:
        assert 1.0 <= entry["mean_weight"] <= 1.0 + WEIGHT
        assert entry["plain_loss"] <= entry["loss"] + 1e-7
        assert entry["loss"] <= (1.0 + WEIGHT) * entry["plain_loss"] + 1e-7


def test_openpose_estimator_without_weights_is_refused(data: Path, tmp_path: Path) -> None:
    with pytest.raises(HumanSDError, match="estimator_weights"):
        Trainer(tiny_train_config(data, tmp_path / "run", loss="heatmap", estimator="openpose"))


def test_heatmap_runs_log_mask_coverage_per_timestep_bin(data: Path, tmp_path: Path) -> None:
    entries = run_and_read_log(data, tmp_path / "run", heatmap_mode="paper", estimator="tiny", heatmap_decoder="full")
    batch = json.loads((tmp_path / "run" / "config.json").read_text())["optim"]["batch_size"]
    for entry in entries:
        counts, coverage = entry["count_by_t"], entry["coverage_by_t"]
        assert len(counts) == len(coverage) == 10 and sum(counts) == batch  # one step a line, every sample binned
        assert all((c is None) == (n == 0) for c, n in zip(coverage, counts))
        assert all(0.0 <= c <= 1.0 for c in coverage if c is not None)
        pooled = sum(c * n for c, n in zip(coverage, counts) if n) / sum(counts)
        assert pooled == pytest.approx(entry["coverage"], abs=1e-4)
    plain = run_and_read_log(data, tmp_path / "plain", loss="plain")
    assert all("coverage_by_t" not in entry for entry in plain)
