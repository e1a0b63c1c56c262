"""``humansd pose render|convert`` through the real CLI entry point (``humansd demo``: tests/test_demo.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from humansd_core.cli import main
from humansd_core.pose import load_pose_file, place_on_canvas, render_skeleton

ASSETS = Path(__file__).resolve().parents[1] / "humansd_core" / "assets" / "poses"


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.array(image)


def two_frame_file(tmp_path: Path) -> Path:
    frames = json.loads((ASSETS / "standing.json").read_text()) + [json.loads((ASSETS / "two_people.json").read_text())]
    path = tmp_path / "frames.json"
    path.write_text(json.dumps(frames))
    return path


def test_render_single_frame_writes_exactly_the_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "skeleton.png"
    assert main(["pose", "render", str(ASSETS / "two_people.json"), "-W", "512", "-H", "512", "--fit", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 frame(s), 2 people, 33 keypoints kept" in printed and f"wrote {out} (512x512)" in printed
    (pose,) = load_pose_file(ASSETS / "two_people.json")
    assert np.array_equal(read_png(out), render_skeleton(place_on_canvas(pose, 512, 512, "fit")))
    assert [p.name for p in out.parent.iterdir()] == ["skeleton.png"]


def test_render_fits_by_default_and_refuses_a_blank_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "small.png"
    assert main(["pose", "render", str(ASSETS / "two_people.json"), "-W", "128", "-H", "128", "-o", str(out)]) == 0
    assert "placement fit" in capsys.readouterr().out
    (pose,) = load_pose_file(ASSETS / "two_people.json")
    assert np.array_equal(read_png(out), render_skeleton(place_on_canvas(pose, 128, 128, "fit")))
    blank = tmp_path / "blank.png"
    assert main(["pose", "render", str(ASSETS / "two_people.json"), "-W", "128", "-H", "128", "--place", "as-is",
                 "-o", str(blank)]) == 2
    assert "every person lies outside the 128x128 output" in capsys.readouterr().err and not blank.exists()


def test_render_several_frames_numbers_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pose.png"
    assert main(["pose", "render", str(two_frame_file(tmp_path)), "--fill", "-W", "256", "-H", "256",
                 "--scale-thickness", "-o", str(out)]) == 0
    assert "2 frame(s), 3 people" in capsys.readouterr().out
    assert not out.exists()
    first, second = read_png(tmp_path / "pose_0000.png"), read_png(tmp_path / "pose_0001.png")
    frames = load_pose_file(tmp_path / "frames.json")
    assert np.array_equal(second, render_skeleton(place_on_canvas(frames[1], 256, 256, "fill"), thickness=5))
    assert first.shape == (256, 256, 3) and first.any()


def test_render_thickness_threshold_and_default_size(tmp_path: Path) -> None:
    out = tmp_path / "thin.png"
    assert main(["pose", "render", str(ASSETS / "dance_body25.json"), "--thickness", "3", "--threshold", "0.8",
                 "-o", str(out)]) == 0
    (pose,) = load_pose_file(ASSETS / "dance_body25.json")
    image = read_png(out)
    assert image.shape == (768, 512, 3)
    assert np.array_equal(image, render_skeleton(pose, threshold=0.8, thickness=3))
    assert image.any(-1).sum() < render_skeleton(pose).any(-1).sum()


def test_render_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}')
    assert main(["pose", "render", str(bad), "-o", str(tmp_path / "x.png")]) == 2
    assert "error: " in capsys.readouterr().err and not (tmp_path / "x.png").exists()
    (tmp_path / "empty.json").write_text("[]")
    assert main(["pose", "render", str(tmp_path / "empty.json"), "-o", str(tmp_path / "x.png")]) == 2
    assert "no frames" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pose", "render", str(bad), "--fit", "--fill", "-o", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit):
        main(["pose", "render", str(bad), "-W", "0", "-o", str(tmp_path / "x.png")])


def test_zero_people_renders_black(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "nobody.json").write_text('{"people": [], "canvas_width": 40, "canvas_height": 30}')
    assert main(["pose", "render", str(tmp_path / "nobody.json"), "-o", str(tmp_path / "nobody.png")]) == 0
    image = read_png(tmp_path / "nobody.png")
    assert image.shape == (30, 40, 3) and not image.any()


def test_convert_writes_pose_keypoint(tmp_path: Path) -> None:
    out = tmp_path / "converted.json"
    assert main(["pose", "convert", str(ASSETS / "jump_coco.json"), "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["canvas_width"] == 640 and len(data["people"][0]["pose_keypoints_2d"]) == 54
    assert np.array_equal(load_pose_file(out)[0].keypoints, load_pose_file(ASSETS / "jump_coco.json")[0].keypoints)

