"""The recipe's ablation (``humansd_core.embedded.recipe.ablation``): its arms differ only in the loss
(and the offset noise they name), its Fréchet distance is right, its runs resume and count their seconds
across processes, finished runs get the scores added since, and the per-timestep mask coverage is pooled
over the run."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from humansd_core import embedded
from humansd_core.embedded.recipe import ablation
from humansd_core.errors import HumanSDError
from humansd_core.training.config import CHOICES
from humansd_core.training.trainer import Trainer

from support.training_data import make_dataset, tiny_train_config


def _differences(a: dict, b: dict) -> set[tuple[str, str]]:
    return {(table, key) for table in a for key in a[table] if a[table][key] != b[table][key]}


def test_arms_of_one_seed_differ_only_in_the_loss_options(tmp_path: Path) -> None:
    plain = ablation.arm_config(tmp_path, "plain", 1, 300).to_dict()
    full = ablation.arm_config(tmp_path, "heatmap-full", 1, 300).to_dict()
    linear = ablation.arm_config(tmp_path, "heatmap-linear", 1, 300).to_dict()
    assert _differences(plain, full) == {("loss", "loss"), ("loss", "heatmap_decoder"), ("output", "output")}
    assert _differences(full, linear) == {("loss", "heatmap_decoder"), ("output", "output")}
    assert plain["loss"]["loss"] == "plain" and full["loss"]["heatmap_decoder"] == "full"
    assert {k: full["loss"][k] for k in ("heatmap_mode", "heatmap_weight", "heatmap_threshold", "estimator")} == {
        "heatmap_mode": "paper", "heatmap_weight": 0.1, "heatmap_threshold": 0.05, "estimator": "tiny"}
    # The recipe's run, shortened: same seed, steps, batch, data, shared cache, the shipped VAE, full + text tower.
    assert full["optim"]["seed"] == 1 and full["optim"]["steps"] == 300 and full["optim"]["batch_size"] == 16
    assert full["model"]["vae"] == str(embedded.embedded_model_path())
    assert full["model"]["mode"] == "full" and full["model"]["train_text_encoder"]
    assert full["data"]["data"] == str(tmp_path / "data") and full["data"]["cache_dir"] == str(tmp_path / "cache")
    assert plain["output"]["output"] != full["output"]["output"]
    # Every run resumes from its latest checkpoint (one kept), saved every 400 steps or at its end.
    assert (full["output"]["resume"], full["output"]["keep_last"], full["output"]["save_every"]) == ("auto", 1, 300)
    assert ablation.arm_config(tmp_path, "plain", 1, 3000, save_every=250).output.save_every == 250


def test_the_recipe_schedule_is_compressed_to_the_run_length(tmp_path: Path) -> None:
    recipe = ablation.recipe_config(tmp_path).optim
    whole = ablation.arm_config(tmp_path, "plain", 0, recipe.steps).optim
    assert (whole.warmup_steps, whole.ema_decay) == (recipe.warmup_steps, recipe.ema_decay)
    short = ablation.arm_config(tmp_path, "plain", 0, recipe.steps // 12).optim
    assert short.warmup_steps == round(recipe.warmup_steps / 12)
    assert short.ema_decay == pytest.approx(recipe.ema_decay ** 12)


def test_seeds_change_only_the_seed_and_the_run_folder(tmp_path: Path) -> None:
    a = ablation.arm_config(tmp_path, "heatmap-full", 0, 300).to_dict()
    b = ablation.arm_config(tmp_path, "heatmap-full", 2, 300).to_dict()
    assert _differences(a, b) == {("optim", "seed"), ("output", "output")}


def test_every_decoder_choice_is_an_arm_and_others_are_refused() -> None:
    for decoder in CHOICES["heatmap_decoder"]:
        assert ablation.arm_options(f"heatmap-{decoder}")["heatmap_decoder"] == decoder
    for bad in ("heatmap", "heatmap-vae", "mse", "full"):
        with pytest.raises(HumanSDError, match="arm"):
            ablation.arm_options(bad)


def test_an_arm_may_carry_its_own_step_count() -> None:
    assert ablation.parse_arm("heatmap-full", 200) == ("heatmap-full", 200)
    assert ablation.parse_arm("plain@460", 200) == ("plain", 460)
    for bad in ("plain@", "plain@0", "plain@4.5", "mse@100"):
        with pytest.raises(HumanSDError, match="arm"):
            ablation.parse_arm(bad, 200)


def test_table_pairs_runs_by_seed() -> None:
    def run(arm: str, seed: int, pck: float, fd: float) -> dict:
        return {"arm": arm, "seed": seed, "steps": 10, "pck": pck, "oks": pck, "scene_pck": pck, "fd": fd,
                "baseline_pck": 0.05, "train_wall_s": 1.0, "train_cpu_s": 1.0, "s_per_step": 0.1}

    # Seed 1 is better for both arms; paired, the heatmap arm wins by 0.1 each time (unpaired spread: 0.28).
    runs = [run("plain", 0, 0.2, 5.0), run("heatmap-full", 0, 0.3, 4.0),
            run("plain", 1, 0.6, 5.0), run("heatmap-full", 1, 0.7, 6.0)]
    floors = {"fd_other_real_scenes": 1.0, "fd_vae_reconstructions": 2.0, "shipped_pck": 0.7, "shipped_oks": 0.6,
              "shipped_scene_pck": 0.5, "shipped_fd": 3.0}
    text = ablation.table(runs, ["plain", "heatmap-full"], floors)
    assert "| plain | 10 | 2 | 0.400 ± 0.283 |" in text
    assert "heatmap-full − plain, paired by seed: PCK@0.1 0.100 ± 0.000 (per seed +0.100, +0.100)" in text
    assert "FD 0.00 ± 1.41" in text



def test_an_offset_arm_differs_from_its_base_only_in_the_offset_noise(tmp_path: Path) -> None:
    base = ablation.arm_config(tmp_path, "heatmap-distilled", 1, 300).to_dict()
    offset = ablation.arm_config(tmp_path, "heatmap-distilled+offset0.3", 1, 300).to_dict()
    assert _differences(base, offset) == {("optim", "noise_offset"), ("output", "output")}
    assert (base["optim"]["noise_offset"], offset["optim"]["noise_offset"]) == (0.0, 0.3)
    assert ablation.arm_options("plain+offset0.1") == {"loss": "plain", "noise_offset": 0.1}
    assert ablation.parse_arm("plain+offset0.3@460", 200) == ("plain+offset0.3", 460)
    for bad in ("plain+offset", "plain+offsetx", "plain+offset0", "plain+offset1.5", "mse+offset0.3"):
        with pytest.raises(HumanSDError, match=r"arm '.*\+offset"):
            ablation.arm_options(bad)


def test_a_high_noise_arm_differs_from_its_base_only_in_the_weight_cap(tmp_path: Path) -> None:
    base = ablation.arm_config(tmp_path, "heatmap-distilled", 1, 300).to_dict()
    weighted = ablation.arm_config(tmp_path, "heatmap-distilled+highnoise20", 1, 300).to_dict()
    assert _differences(base, weighted) == {("optim", "high_noise_weight_cap"), ("output", "output")}
    assert weighted["optim"]["high_noise_weight_cap"] == 20.0
    assert ablation.arm_options("plain+offset0.1+highnoise5") == {"loss": "plain", "noise_offset": 0.1,
                                                                 "high_noise_weight_cap": 5.0}
    assert ablation.parse_arm("plain+highnoise20@7200", 2400) == ("plain+highnoise20", 7200)
    for bad, message in (("plain+highnoise1", r"'\+highnoise' must be in \(1, "), ("plain+highnoise", "a number"),
                         ("plain+highnoisex", "unknown suffix"), ("plain+weight3", r"unknown suffix '\+weight3'")):
        with pytest.raises(HumanSDError, match=message):
            ablation.arm_options(bad)


def test_table_shows_adherence_where_runs_have_it_and_pairs_it() -> None:
    def run(arm: str, seed: int, background: float | None) -> dict:
        scored = {} if background is None else {"background_adherence": background, "shirt_adherence": 0.5,
                                                "background_chance": 0.1, "shirt_chance": 0.2}
        return {"arm": arm, "seed": seed, "steps": 10, "pck": 0.5, "oks": 0.5, "scene_pck": 0.5, "fd": 1.0,
                "baseline_pck": 0.05, "train_wall_s": 1.0, "train_cpu_s": 1.0, **scored}

    runs = [run("plain", 0, None), run("plain+offset0.3", 0, None),
            run("plain", 1, 0.2), run("plain+offset0.3", 1, 0.7)]
    floors = {"fd_other_real_scenes": 1.0, "fd_vae_reconstructions": 2.0, "shipped_pck": 0.7, "shipped_oks": 0.6,
              "shipped_scene_pck": 0.5, "shipped_fd": 3.0, "shipped_background_adherence": 0.25,
              "shipped_shirt_adherence": 0.125}
    text = ablation.table(runs, ["plain", "plain+offset0.3"], floors)
    assert "| 1.00 ± 0.00 | 0.200 (1 of 2) | 0.500 (1 of 2) | — |" in text  # the plain row: FD, adherence, no mask
    assert "prompt adherence background 0.250 shirt 0.125" in text
    assert "background adherence 0.500 (1 seeds); shirt adherence 0.000 (1 seeds);" in text
    unscored = ablation.table(runs[:2], ["plain", "plain+offset0.3"], floors)
    assert "| 1.00 | — | — | — |" in unscored and "adherence 0" not in unscored


class _Scorer:
    """The evaluator's interface (a model path → its scores), counting its calls."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores, self.calls = scores, 0

    def __call__(self, model: Path) -> dict[str, float]:
        assert model.is_file()
        self.calls += 1
        return dict(self.scores)


def test_a_finished_run_scored_before_a_score_existed_gets_it_from_its_model(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    config = ablation.arm_config(tmp_path, "plain", 0, 10)
    run_dir = Path(config.output.output)
    run_dir.mkdir(parents=True)
    (run_dir / "model.safetensors").write_bytes(b"weights")
    old = {"arm": "plain", "seed": 0, "steps": 10, "model": str(run_dir / "model.safetensors"), "pck": 0.5,
           "oks": 0.4, "baseline_pck": 0.05, "scene_pck": 0.3, "fd": 2.0, "train_cpu_s": 9.0}
    (run_dir / "result.json").write_text(json.dumps(old))
    new = {key: 0.25 for key in ablation.SCORES}
    scorer = _Scorer({**new, "pck": 0.5, "oks": 0.375})
    clock = ablation.Clock()
    with caplog.at_level(logging.WARNING):
        run = ablation._run(tmp_path, "plain", "plain", 0, 10, 200, scorer, clock, wait=True)
    assert scorer.calls == 1 and run["background_adherence"] == 0.25 and run["shirt_chance"] == 0.25
    assert (run["pck"], run["oks"], run["train_cpu_s"]) == (0.5, 0.4, 9.0)  # recorded scores are kept
    assert "oks" in caplog.text and "pck" not in caplog.text.split("differ")[1].split(":")[0]
    assert json.loads((run_dir / "result.json").read_text())["background_adherence"] == 0.25
    assert ablation._run(tmp_path, "plain", "plain", 0, 10, 200, scorer, clock, wait=True) == run
    assert scorer.calls == 1  # scored once
    # Without its model (or in a report), a run is reported as recorded.
    (run_dir / "result.json").write_text(json.dumps(old))
    (run_dir / "model.safetensors").unlink()
    assert ablation._run(tmp_path, "plain", "plain", 0, 10, 200, scorer, clock, wait=True) == old
    (run_dir / "model.safetensors").write_bytes(b"weights")
    assert ablation._run(tmp_path, "plain", "plain", 0, 10, 200, None, clock, wait=True) == old
    assert scorer.calls == 1

@pytest.mark.parametrize("n", [200, 12])  # full-rank covariances, and fewer samples than dimensions
def test_frechet_distance_matches_the_closed_form_of_a_scaled_copy(n: int) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, 16)) @ rng.normal(size=(16, 16)) + rng.normal(size=16)
    shift = rng.normal(size=16)
    b = 2 * a + shift  # Σb = 4 Σa: tr(Σa^½ Σb Σa^½)^½ = 2 tr Σa, so FD = |μa − μb|² + tr Σa
    mu = a.mean(0) - b.mean(0)
    expected = mu @ mu + np.trace(np.cov(a, rowvar=False))
    assert ablation.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert ablation.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6 * expected)


def test_log_summary_pools_the_coverage_of_each_timestep_bin_by_its_counts(tmp_path: Path) -> None:
    lines = [{"step": 25, "plain_loss": 0.5, "coverage": 0.4, "mean_weight": 1.04,
              "coverage_by_t": [0.2, None, 0.9], "count_by_t": [3, 0, 1]},
             {"step": 50, "plain_loss": 0.3, "coverage": 0.2, "mean_weight": 1.02,
              "coverage_by_t": [0.6, None, 0.1], "count_by_t": [1, 0, 3]}]
    (tmp_path / "loss_log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary = ablation.log_summary(tmp_path)
    assert summary["plain_loss"] == pytest.approx(0.4) and summary["coverage"] == pytest.approx(0.3)
    assert summary["coverage_by_t"] == [pytest.approx(0.3), None, pytest.approx(0.3)]
    (tmp_path / "loss_log.jsonl").write_text(json.dumps({"step": 25, "plain_loss": 0.5}) + "\n")
    assert ablation.log_summary(tmp_path) == {"plain_loss": 0.5}  # a plain arm has no mask


def test_a_held_run_lock_is_skipped_without_waiting(tmp_path: Path) -> None:
    with ablation.locked(tmp_path / "run.lock") as held:
        assert held
        with ablation.locked(tmp_path / "run.lock", wait=False) as other:
            assert not other
    with ablation.locked(tmp_path / "run.lock", wait=False) as free:
        assert free


def test_a_run_cut_short_resumes_and_sums_the_seconds_of_every_process(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", count=4)
    config = tiny_train_config(data, tmp_path / "run", steps=4, save_every=2, keep_last=1, resume="auto",
                               loss="heatmap", estimator="tiny", heatmap_decoder="full")
    Trainer(config).train(stop_at=2)  # a process stopped after the checkpoint of step 2
    earlier = {"setup_cpu_s": 5.0, "setup_wall_s": 6.0, "train_cpu_s": 100.0, "train_wall_s": 120.0, "sessions": 1}
    (tmp_path / "run" / "spent.json").write_text(json.dumps({**earlier, "step": 2}))
    result = ablation.train(config)
    assert Path(result["model"]).is_file() and result["sessions"] == 2
    assert 100.0 < result["train_cpu_s"] < 160.0 and result["train_wall_s"] > 120.0 and result["setup_cpu_s"] > 5.0
    assert json.loads((tmp_path / "run" / "spent.json").read_text())["step"] == 4
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "loss_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # the resumed log continues the first process's lines
    assert sum(result["coverage_by_t"][i] is not None for i in range(10)) >= 1
