"""``humansd synth``: the folder it writes is the trainer's layout and reads back exactly."""
from __future__ import annotations

import numpy as np
from PIL import Image

from humansd_core.cli import main
from humansd_core.pose import load_pose_file
from humansd_core.synthetic import generate_scene, scene_rng


def test_synth_writes_images_poses_and_captions(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["synth", "--out", str(out), "--count", "3", "--size", "64", "--seed", "5"]) == 0
    assert "wrote 3 samples" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{i:06d}.{ext}" for i in range(3) for ext in ("png", "json", "txt"))  # no temporary files left
    for i in range(3):
        scene = generate_scene(scene_rng(5, i), 64)
        image = np.asarray(Image.open(out / f"{i:06d}.png"))
        assert image.shape == (64, 64, 3) and np.array_equal(image, scene.image)
        (pose,) = load_pose_file(out / f"{i:06d}.json")
        assert pose.canvas_size == (64, 64) and pose.num_people == scene.pose.num_people
        assert np.allclose(pose.keypoints, scene.pose.keypoints, atol=1e-3)
        assert (out / f"{i:06d}.txt").read_text().strip() == scene.caption


def test_synth_start_extends_a_dataset_with_the_same_samples(tmp_path):
    assert main(["synth", "--out", str(tmp_path / "a"), "--count", "2", "--size", "48", "--seed", "1"]) == 0
    assert main(["synth", "--out", str(tmp_path / "b"), "--count", "1", "--size", "48", "--seed", "1",
                 "--start", "1"]) == 0
    assert (tmp_path / "a" / "000001.png").read_bytes() == (tmp_path / "b" / "000001.png").read_bytes()
    assert not (tmp_path / "b" / "000000.png").exists()


def test_synth_rejects_a_bad_size(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--count", "1", "--size", "4"]) == 2
    assert "width" in capsys.readouterr().err


def test_synth_backgrounds_limits_the_kinds_and_names_a_bad_one(tmp_path, capsys):
    out = tmp_path / "plain"
    assert main(["synth", "--out", str(out), "--count", "6", "--size", "48", "--seed", "3",
                 "--backgrounds", "plain", "noisy"]) == 0
    kinds = [generate_scene(scene_rng(3, i), 48, backgrounds=("plain", "noisy")).background.kind for i in range(6)]
    assert set(kinds) <= {"plain", "noisy"}
    for i, kind in enumerate(kinds):
        assert f" {kind} " in (out / f"{i:06d}.txt").read_text()
    every = [generate_scene(scene_rng(3, i), 48).background.kind for i in range(30)]
    assert len(set(every)) >= 4  # the default draws from every kind
    assert main(["synth", "--out", str(tmp_path / "bad"), "--count", "1", "--backgrounds", "plaid"]) == 2
    err = capsys.readouterr().err
    assert "'plaid'" in err and "checkered" in err
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
