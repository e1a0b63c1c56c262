"""The trainer's seams for hosts (given networks and samples, hooks), checked samples, safe names, the streaming writer.

Tiny model, CPU, seconds; the ComfyUI side of the same seams is ``tests/host/test_training_*.py``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoints import tiny_checkpoint
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from training_helpers import make_dataset, restore_torch_globals, synthetic_pose, tiny_train_config  # noqa: F401

from humansd_core.errors import HumanSDError
from humansd_core.models.checkpoint import load_models
from humansd_core.models.safetensors_write import write_safetensors
from humansd_core.pose import write_openpose_json
from humansd_core.training.checkpointing import list_checkpoints
from humansd_core.training.data import scan_dataset
from humansd_core.training.modules import prepare_for_training
from humansd_core.training.run_names import checked_name, free_file, run_folder
from humansd_core.training.samples import check_folder, write_sample_folder
from humansd_core.training.trainer import Trainer, TrainHooks


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "set", count=6)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("base") / "tiny.safetensors", seed=2)


# -- the streaming writer ------------------------------------------------------------------------------


def test_streaming_writer_files_read_back_exactly(tmp_path: Path) -> None:
    tensors = {"b": torch.randn(3, 5), "a.half": torch.randn(4).half(), "bf": torch.randn(2, 2).bfloat16(),
               "ints": torch.arange(6, dtype=torch.int64).reshape(2, 3), "mask": torch.tensor([True, False]),
               "empty": torch.zeros(0, 3), "strided": torch.randn(4, 6)[:, ::2]}
    path = tmp_path / "x.safetensors"
    write_safetensors(path, tensors, {"note": "hello"})
    back = load_file(str(path))
    assert sorted(back) == sorted(tensors)
    for key, value in tensors.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key
    with safe_open(str(path), "pt") as f:
        assert f.metadata() == {"note": "hello"}
    write_safetensors(path, {"w": tensors["b"]}, dtype=torch.float16)
    assert load_file(str(path))["w"].dtype == torch.float16


# -- checked samples -----------------------------------------------------------------------------------


def _sample(folder: Path, stem: str, rng: np.random.Generator, caption: str | None = "a mannequin") -> None:
    pose = synthetic_pose(rng)
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(folder / f"{stem}.png")
    write_openpose_json(folder / f"{stem}.json", pose)
    if caption is not None:
        (folder / f"{stem}.txt").write_text(caption, encoding="utf-8")


def test_check_folder_names_every_bad_sample_or_leaves_them_out(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    _sample(tmp_path, "a", rng)
    _sample(tmp_path, "b", rng, caption=None)
    _sample(tmp_path, "c", rng, caption="   ")
    _sample(tmp_path, "d", rng)
    (tmp_path / "d.png").write_bytes(b"garbage")
    _sample(tmp_path, "e", rng)
    (tmp_path / "e.json").write_text('{"canvas_width": 64, "canvas_height": 64, "people": []}', encoding="utf-8")
    _sample(tmp_path, "f", rng)
    (tmp_path / "f.json").unlink()
    with pytest.raises(HumanSDError) as caught:
        check_folder(tmp_path)
    message = str(caught.value)
    for expected in ("5 bad sample(s)", "b.png: no caption file b.txt", "c.png: caption file c.txt is empty",
                     "d.png: image unreadable", "e.png: pose file e.json has no person with a visible keypoint",
                     "f.png: no pose file (f.json or f.npz)"):
        assert expected in message, expected
    checked = check_folder(tmp_path, skip_bad=True)
    assert [r.image.name for r in checked.records] == ["a.png"]
    assert [p.name for p, _ in checked.skipped] == ["b.png", "c.png", "d.png", "e.png", "f.png"]
    assert "1 samples in" in checked.report() and "f.png: no pose file" in checked.report()
    (tmp_path / "a.txt").unlink()
    with pytest.raises(HumanSDError, match="no usable sample"):
        check_folder(tmp_path, skip_bad=True)


def test_sample_folders_from_memory_are_named_by_their_content(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    images = [np.full((64, 64, 3), v, np.uint8) for v in (10, 200)]
    poses = [synthetic_pose(rng), synthetic_pose(rng)]
    first = write_sample_folder(tmp_path, images, poses, ["one", "two"])
    assert write_sample_folder(tmp_path, images, poses, ["one", "two"]) == first
    assert write_sample_folder(tmp_path, images, poses, ["one", "three"]) != first
    records = check_folder(first).records
    assert [r.caption for r in records] == ["one", "two"]
    np.testing.assert_allclose(records[1].pose.keypoints[..., :2], poses[1].keypoints[..., :2], atol=1e-3)
    with pytest.raises(HumanSDError, match="2 images, 2 poses and 1 captions"):
        write_sample_folder(tmp_path, images, poses, ["one"])


# -- names ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "C:/x", ".hidden", "a//b", "", "  ",
                                  "a\\..\\x", "bad*name", "x" * 201, "ok/ trailing"])
def test_names_that_could_leave_their_folder_are_refused(name: str) -> None:
    with pytest.raises(HumanSDError, match="not usable as a file name"):
        checked_name(name)


def test_free_file_counts_up_and_run_folders_resume_the_newest_with_a_checkpoint(tmp_path: Path) -> None:
    assert checked_name(" humansd/my lora (v2)+1 ") == "humansd/my lora (v2)+1"
    first = free_file(tmp_path, "sub/lora.safetensors", ".safetensors")
    assert first == (tmp_path / "sub" / "lora.safetensors").resolve()
    first.parent.mkdir()
    first.write_bytes(b"x")
    assert free_file(tmp_path, "sub/lora", ".safetensors").name == "lora_00001.safetensors"
    assert free_file(tmp_path, "sub/lora", ".safetensors", overwrite=True) == first
    with pytest.raises(HumanSDError, match="subfolder"):
        run_folder(tmp_path, "a/b", resume=False)
    with pytest.raises(HumanSDError, match="no run 'run' with a checkpoint"):
        run_folder(tmp_path, "run", resume=True)
    one = run_folder(tmp_path, "run", resume=False)
    assert one.name == "run_00001"
    (one / "checkpoints").mkdir(parents=True)
    (one / "checkpoints" / "step-00000002.safetensors").write_bytes(b"")
    (tmp_path / "run_00002").mkdir()  # a later run that saved nothing
    assert run_folder(tmp_path, "run", resume=False).name == "run_00003"
    assert run_folder(tmp_path, "run", resume=True) == one.resolve()


# -- the trainer's seams -------------------------------------------------------------------------------


def test_given_networks_and_samples_train_exactly_as_the_trainer_loading_them(data: Path, base: Path,
                                                                               tmp_path: Path) -> None:
    options = {"base": str(base), "mode": "full", "steps": 3}
    loaded = Trainer(tiny_train_config(data, tmp_path / "loaded", **options))
    loaded.train()
    config = tiny_train_config(data, tmp_path / "given", **options)
    models = prepare_for_training(load_models(base), config.model)
    given = Trainer(config, models=models, samples=scan_dataset(data))
    assert given.models is models
    given.train()
    for (name, p), (_, q) in zip(loaded.params, given.params):
        assert torch.equal(p, q), name
    subset = Trainer(tiny_train_config(data, tmp_path / "subset", **options),
                     models=prepare_for_training(load_models(base), config.model), samples=scan_dataset(data)[:2])
    assert len(subset.data.records) == 2


def test_a_hook_that_raises_stops_after_a_checkpoint_and_resume_continues_bit_for_bit(data: Path, tmp_path: Path
                                                                                      ) -> None:
    options = {"steps": 6, "save_every": 100, "optimizer": "adafactor", "sample_every": 2, "sample_count": 1,
               "sample_steps": 2}
    whole = Trainer(tiny_train_config(data, tmp_path / "a", **options))
    whole.train()

    class Cancelled(Exception):
        pass

    seen: list[tuple[int, int]] = []

    def on_step(step: int, total: int, stats: dict[str, float]) -> None:
        seen.append((step, total))
        assert np.isfinite(stats["loss"])
        if step == 3:
            raise Cancelled

    samples: list[tuple[int, list]] = []
    hooks = TrainHooks(on_step=on_step, on_samples=lambda step, images: samples.append((step, images)))
    cut = Trainer(tiny_train_config(data, tmp_path / "b", **options), hooks=hooks)
    with pytest.raises(Cancelled):
        cut.train()
    assert seen == [(1, 6), (2, 6), (3, 6)]
    assert [s for s, _ in samples] == [2] and samples[0][1][0].shape == (64, 64, 3)
    assert [s for s, _ in list_checkpoints(tmp_path / "b" / "checkpoints")] == [3]
    resumed = Trainer(tiny_train_config(data, tmp_path / "b", resume="auto", **options))
    assert resumed.step == 3
    resumed.train()
    for (name, p), (_, q) in zip(whole.params, resumed.params):
        assert torch.equal(p, q), name
    log = [json.loads(line) for line in (tmp_path / "b" / "loss_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4, 5, 6]


def test_an_export_hook_replaces_the_export_and_samples_use_a_fixed_pose(data: Path, tmp_path: Path) -> None:
    pose_file = tmp_path / "pose.json"
    frames = [synthetic_pose(np.random.default_rng(i)) for i in range(2)]
    write_openpose_json(pose_file, frames)
    written: list[int] = []

    def export(trainer: Trainer) -> Path:
        written.append(trainer.step)
        return tmp_path / "mine.bin"

    images: list = []
    config = tiny_train_config(data, tmp_path / "run", steps=2, sample_every=2, sample_count=3,
                               sample_pose=str(pose_file), sample_prompt="a mannequin on red", sample_steps=2)
    result = Trainer(config, hooks=TrainHooks(on_samples=lambda step, ims: images.extend(ims), export=export)).train()
    assert result.output == tmp_path / "mine.bin" and written == [2]
    assert not (tmp_path / "run" / "lora.safetensors").exists()
    assert len(images) == 2  # one per frame of the pose file
    items = Trainer(tiny_train_config(data, tmp_path / "run2", sample_pose=str(pose_file),
                                      sample_prompt="p")).data.sample_items(5)
    assert [c for _, c in items] == ["p", "p"]
    np.testing.assert_allclose(items[1][0].keypoints[..., :2], frames[1].keypoints[..., :2], atol=1e-3)
