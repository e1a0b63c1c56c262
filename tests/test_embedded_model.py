"""The embedded tiny HumanSD shipped in the package: intact, loadable, small, and it follows poses.

The weights are the real shipped file (``humansd_core/assets/weights/humansd_tiny.safetensors``,
made by ``python -m humansd_core.embedded.recipe.humansd``); a few-step generation must follow its poses
clearly better than chance by the judge estimator (the demo's score, on fewer images).
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from humansd_core import assets, embedded
from humansd_core.assets import ASSETS_DIR, PRESETS_DIR, WEIGHTS_DIR
from humansd_core.errors import CheckpointError, HumanSDError, MissingWeightsError
from humansd_core.models.checkpoint import load_models, read_metadata
from humansd_core.models.configs import CONFIG_METADATA_KEY, ModelConfig
from humansd_core.pipeline import HumanSDPipeline

PRESET = PRESETS_DIR / "embedded_model.json"
SHIPPED_BUDGET = 25_000_000  # bytes: model, both estimators, the distilled loss net


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """The tiny model runs as fast on one thread, and several threads stall on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pipe() -> HumanSDPipeline:
    return HumanSDPipeline.from_checkpoint(assets.check_weights(embedded.embedded_model_path()))


def test_shipped_model_matches_its_checksum() -> None:
    digest = assets.shipped_digest(embedded.MODEL_NAME)
    assert digest is not None and len(digest) == 64
    assert assets.check_weights(embedded.embedded_model_path(), digest).is_file()


def test_shipped_set_fits_the_size_budget() -> None:
    total = sum(p.stat().st_size for p in WEIGHTS_DIR.glob("*.safetensors"))
    assert total <= SHIPPED_BUDGET, f"shipped weights take {total / 1e6:.1f} MB"


def test_model_is_the_preset_architecture_with_a_measured_scale_factor() -> None:
    shipped = ModelConfig.from_json(read_metadata(embedded.embedded_model_path())[CONFIG_METADATA_KEY])
    preset = ModelConfig.from_json(PRESET.read_text())
    assert (shipped.unet, shipped.vae, shipped.text) == (preset.unet, preset.vae, preset.text)
    assert shipped.vae.downsample_factor == 8  # ComfyUI's VAE assumes 8 for any AutoencoderKL config
    assert shipped.scale_factor != preset.scale_factor  # the recipe measured it on the trained VAE


def test_core_loader_builds_every_network(pipe: HumanSDPipeline) -> None:
    assert pipe.unet.config.in_channels == 8 and pipe.size_multiple <= embedded.SIZE
    context = pipe.text_encoder(["a person in a red shirt"])
    assert context.shape == (1, 77, pipe.config.text.width) and torch.isfinite(context).all()
    models = load_models(embedded.embedded_model_path(), dtype=torch.float16)  # the file's own dtype
    assert next(models.unet.parameters()).dtype == torch.float16


def test_five_step_generation_follows_the_pose_better_than_chance(pipe: HumanSDPipeline) -> None:
    items = embedded.evaluation_set(count=8, examples=False)
    images = torch.cat([pipe.generate(pose, prompt, negative="", added_prompt="", steps=5, cfg=embedded.CFG,
                                      seed=embedded.SEED + i, width=embedded.SIZE, height=embedded.SIZE,
                                      progress=False).images for i, (pose, prompt) in enumerate(items)])
    assert images.shape == (8, 3, embedded.SIZE, embedded.SIZE)
    score = embedded.score_poses(images, [pose for pose, _ in items])
    assert score.pck >= 3 * score.baseline_pck, score
    # 5 steps (the demo runs 25): measured 0.652 with the shipped weights, baseline 0.016
    assert score.pck >= 0.5, score


def test_noise_images_score_at_chance() -> None:
    """The score itself is not biased towards the condition: pure noise gets no better than its baseline."""
    items = embedded.evaluation_set(count=8, examples=False)
    noise = torch.rand(8, 3, embedded.SIZE, embedded.SIZE, generator=torch.Generator().manual_seed(0))
    score = embedded.score_poses(noise, [pose for pose, _ in items])
    assert score.pck < 0.3 and abs(score.pck - score.baseline_pck) < 0.15, score


def test_check_weights_names_missing_lfs_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="not found"):
        assets.check_weights(tmp_path / "absent.safetensors")
    pointer = tmp_path / "pointer.safetensors"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n")
    with pytest.raises(CheckpointError, match="git lfs pull"):
        assets.check_weights(pointer)
    copy = tmp_path / embedded.MODEL_NAME
    shutil.copyfile(embedded.embedded_model_path(), copy)
    digest = assets.shipped_digest(embedded.MODEL_NAME)
    assert assets.check_weights(copy, digest) == copy
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit inside the tensor data
    copy.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        assets.check_weights(copy, digest)


def test_evaluation_set_is_fixed_and_on_the_model_canvas() -> None:
    first, second = embedded.evaluation_set(count=3), embedded.evaluation_set(count=3)
    assert len(first) == len(embedded.EXAMPLE_PROMPTS) + 3
    for (pose_a, prompt_a), (pose_b, prompt_b) in zip(first, second):
        assert prompt_a == prompt_b and (pose_a.keypoints == pose_b.keypoints).all()
        assert (pose_a.canvas_width, pose_a.canvas_height) == (embedded.SIZE, embedded.SIZE)
        assert 1 <= pose_a.num_people <= max(embedded.MAX_PEOPLE, 2)
    order = embedded.derangement(7)
    assert sorted(order.tolist()) == list(range(7)) and not (order == range(7)).any()


def test_model_card_states_the_shipped_metrics() -> None:
    card = (ASSETS_DIR / "MODEL_CARD.md").read_text()
    config = json.loads(read_metadata(embedded.embedded_model_path())[CONFIG_METADATA_KEY])
    assert "python -m humansd_core.embedded.recipe.humansd" in card and "PCK@0.1" in card
    assert str(config["scale_factor"]) in card  # the card describes the file that ships


def test_training_preset_names_files_beside_itself(tmp_path: Path) -> None:
    """The recipe copies the preset into its work folder; every file it names must resolve there."""
    from humansd_core.training.config import TrainConfig

    preset = tmp_path / "embedded_humansd.toml"
    shutil.copyfile(PRESET.with_name("embedded_humansd.toml"), preset)
    config = TrainConfig.from_toml(preset)
    for value in (config.model.init_config, config.model.vae, config.data.data, config.output.output):
        assert Path(value).parent == tmp_path, value
    assert config.optim.ema_decay > 0 and config.model.train_text_encoder and config.loss.estimator == "tiny"


def test_text_stage_trains_the_first_stage_model_on_plain_background_scenes(tmp_path: Path) -> None:
    """The second preset starts from the first one's output, in the same work folder, on the [text_stage] scenes."""
    from humansd_core.embedded.recipe.presets import HUMANSD_PRESET, TEXT_STAGE_PRESET, synth_command
    from humansd_core.training.config import TrainConfig

    for preset in (HUMANSD_PRESET, TEXT_STAGE_PRESET):
        shutil.copyfile(preset, tmp_path / preset.name)
    first = TrainConfig.from_toml(tmp_path / HUMANSD_PRESET.name)
    text = TrainConfig.from_toml(tmp_path / TEXT_STAGE_PRESET.name)
    assert Path(text.model.base) == Path(first.output.output) / "model.safetensors"
    assert Path(text.data.data) == tmp_path / "data_plain" and text.output.output != first.output.output
    assert text.model.train_text_encoder and text.optim.high_noise_weight_cap > 1.0
    assert first.optim.high_noise_weight_cap == 1.0  # the first stage is the plain HumanSD recipe
    command = synth_command(tmp_path / "data_plain", table="text_stage")
    assert command[command.index("--backgrounds") + 1:] == ["plain"]
    assert "--backgrounds" not in synth_command(tmp_path / "data")
    seeds = {command[command.index("--seed") + 1] for command in (synth_command(tmp_path), command)}
    assert len(seeds) == 2 and str(embedded.EVAL_SEED) not in seeds  # scenes of their own, none of the demo's


def test_record_digest_replaces_only_its_own_line(tmp_path: Path) -> None:
    (tmp_path / assets.SUMS_NAME).write_text("aaaa  other.safetensors\nbbbb  model.safetensors\n")
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"weights")
    digest = assets.record_digest(model)
    assert digest == assets.file_digest(model)
    assert assets.shipped_digest("other.safetensors", tmp_path) == "aaaa"
    assert assets.shipped_digest("model.safetensors", tmp_path) == digest
    assert (tmp_path / assets.SUMS_NAME).read_text().count("model.safetensors") == 1


def test_every_shipped_weights_file_is_listed_and_intact() -> None:
    files = sorted(p.name for p in WEIGHTS_DIR.glob("*.safetensors"))
    assert files and sorted(assets.listed_digests()) == files
    for name in files:
        assert assets.shipped_weights(name) == WEIGHTS_DIR / name
    with pytest.raises(HumanSDError, match="not a weights file of this package"):
        assets.shipped_weights("../humansd_tiny.safetensors")
