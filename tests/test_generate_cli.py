"""``humansd generate`` end to end: tiny checkpoint in-process, full-size layout in a subprocess."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.checkpoints import full_random_checkpoint, tiny_checkpoint
from PIL import Image

from humansd_core import defaults
from humansd_core.cli import main
from humansd_core.commands.generate import output_paths
from humansd_core.pose import PoseSet, load_pose_file, place_on_canvas, render_skeleton, write_openpose_json

REPO = Path(__file__).resolve().parents[1]
TWO_PEOPLE = REPO / "humansd_core" / "assets" / "poses" / "two_people.json"  # 768x512 canvas


def _pose(dx: float, canvas: int = 64) -> PoseSet:
    s = canvas / 64
    xy = [(32, 10), (30, 8), (34, 8), (28, 9), (36, 9), (26, 18), (38, 18), (22, 28), (42, 28), (20, 37), (44, 37),
          (28, 38), (36, 38), (27, 49), (37, 49), (27, 60), (37, 60)]
    return PoseSet(np.array([[(x * s + dx, y * s, 1.0) for x, y in xy]], np.float32), canvas, canvas)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def _args(ckpt, pose, out, *extra):
    return ["generate", "--ckpt", str(ckpt), "--pose", str(pose), "--prompt", "a dancer", "-o", str(out),
            "--width", "64", "--height", "64", "--steps", "2", *extra]


def test_output_naming():
    out = Path("/x/out.png")
    assert output_paths(out, 3) == [out, Path("/x/out_0001.png"), Path("/x/out_0002.png")]


def test_generate_a_batch_of_poses_with_parameters_and_overlays(tiny, tmp_path, capsys):
    pose_file = tmp_path / "poses.json"
    write_openpose_json(pose_file, [_pose(-5), _pose(5)])
    out = tmp_path / "out" / "img.png"
    assert main(_args(tiny, pose_file, out, "--batch", "2", "--overlay", "--seed", "40")) == 0
    paths = output_paths(out, 4)
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        [p.name for p in paths] + [f"{p.stem}_overlay.png" for p in paths])
    for i, path in enumerate(paths):
        with Image.open(path) as img:
            assert img.size == (64, 64) and img.mode == "RGB"
            text = img.text["parameters"]
        lines = text.split("\n")
        assert lines[0] == "a dancer, " + defaults.ADDED_PROMPT
        assert lines[1] == "Negative prompt: " + defaults.NEGATIVE_PROMPT
        assert f"Seed: {40 + i}," in lines[2] and "Steps: 2," in lines[2] and "Sampler: ddim" in lines[2]
        assert "CFG scale: 10.0" in lines[2] and "Size: 64x64" in lines[2] and f"Pose: poses.json#{i // 2}" in lines[2]
    # the overlay of image 2 (frame 1) shows frame 1's skeleton
    skel = render_skeleton(_pose(5))
    with Image.open(paths[2].with_name("img_0002_overlay.png")) as ov:
        overlay = np.asarray(ov)
    on = skel.any(axis=2)
    assert np.array_equal(overlay[on], skel[on])
    assert "wrote" in capsys.readouterr().out


def test_a_skeleton_image_as_pose_and_reproducibility(tiny, tmp_path):
    skeleton = tmp_path / "skeleton.png"
    Image.fromarray(render_skeleton(_pose(0, canvas=128))).save(skeleton)  # resized to 64x64
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert main(_args(tiny, skeleton, a, "--sampler", "euler_ancestral", "--seed", "7")) == 0
    assert main(_args(tiny, skeleton, b, "--sampler", "euler_ancestral", "--seed", "7")) == 0
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_failure_writes_nothing_and_keeps_existing_files(tiny, tmp_path, capsys):
    pose_file = tmp_path / "pose.json"
    write_openpose_json(pose_file, _pose(0))
    out = tmp_path / "out.png"
    out.write_bytes(b"old")
    assert main(_args(tiny, pose_file, out, "--strength", "0.5")) == 2  # img2img without an init image
    assert "init images" in capsys.readouterr().err
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "pose.json"]
    assert main(_args(tiny, tmp_path / "missing.json", out)) == 2
    assert "missing.json" in capsys.readouterr().err


def test_img2img_from_an_init_image(tiny, tmp_path):
    pose_file = tmp_path / "pose.json"
    write_openpose_json(pose_file, _pose(0))
    init = tmp_path / "init.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(init)
    out = tmp_path / "out.png"
    assert main(_args(tiny, pose_file, out, "--init-image", str(init), "--strength", "0.5")) == 0
    assert "Denoising strength: 0.5" in Image.open(out).text["parameters"]


def _embedded_args(pose: Path, out: Path, *extra: str) -> list[str]:
    """The README's newcomer run: the embedded model, a pose, 128 px, 2 steps."""
    return ["generate", "--ckpt", "embedded", "--pose", str(pose), "--prompt", "two people", "-o", str(out),
            "--width", "128", "--height", "128", "--steps", "2", "--cfg", "3", *extra]


def test_embedded_model_on_a_bundled_pose_draws_the_people_fitted_to_the_output(tmp_path):
    out = tmp_path / "people.png"
    assert main(_embedded_args(TWO_PEOPLE, out, "--overlay")) == 0
    expected = render_skeleton(place_on_canvas(load_pose_file(TWO_PEOPLE)[0], 128, 128, "fit"))
    drawn = expected.any(axis=2)
    assert drawn.sum() > 500  # two people's limbs, not a few stray pixels
    with Image.open(tmp_path / "people_overlay.png") as overlay:
        assert np.array_equal(np.asarray(overlay)[drawn], expected[drawn])  # the skeleton the model saw is that one
    with Image.open(out) as image:
        assert image.size == (128, 128) and "Model: humansd_tiny.safetensors" in image.text["parameters"]


def test_pose_kept_at_its_pixel_coordinates_off_the_output_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "blank.png"
    assert main(_embedded_args(TWO_PEOPLE, out, "--place", "as-is")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: frame 0: every person lies outside the 128x128 output")
    assert "768x512" in err and "--place fit" in err
    assert not out.exists()


def test_half_precision_on_the_cpu_is_a_warning(tmp_path, caplog):
    """Said before the model loads; the run then stops at the off-canvas pose without sampling."""
    with caplog.at_level(logging.WARNING):
        assert main(_embedded_args(TWO_PEOPLE, tmp_path / "x.png", "--place", "as-is", "--dtype", "bf16")) == 2
    assert "--dtype bf16 on the CPU" in caplog.text and "--dtype fp32" in caplog.text


def test_one_person_off_the_output_is_a_warning_and_the_other_is_drawn(tmp_path, caplog):
    pose = PoseSet(np.concatenate([_pose(32, canvas=128).keypoints, _pose(400, canvas=128).keypoints]), 128, 128)
    pose_file = tmp_path / "one_off.json"
    write_openpose_json(pose_file, pose)
    out = tmp_path / "one.png"
    with caplog.at_level(logging.WARNING):
        assert main(_embedded_args(pose_file, out, "--overlay")) == 0
    assert "frame 0: person 1 lies entirely outside the 128x128 output" in caplog.text
    assert "person 0" not in caplog.text
    expected = render_skeleton(load_pose_file(pose_file)[0])
    drawn = expected.any(axis=2)
    with Image.open(tmp_path / "one_overlay.png") as overlay:
        assert drawn.any() and np.array_equal(np.asarray(overlay)[drawn], expected[drawn])


@pytest.mark.slow
def test_generate_on_a_full_size_random_checkpoint(tmp_path):
    """The real SD2.1 HumanSD architecture through the installed entry point, 128x128, 2 steps."""
    ckpt = full_random_checkpoint()
    pose_file = tmp_path / "pose.json"
    write_openpose_json(pose_file, _pose(0, canvas=128))
    out = tmp_path / "full.png"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "humansd_core.cli", "generate", "--ckpt", str(ckpt), "--pose", str(pose_file),
         "--prompt", "a dancer", "-o", str(out), "--width", "128", "--height", "120", "--steps", "2",
         "--dtype", "fp32"],  # fp16/bf16 convolutions are emulated on CPUs without AVX512-FP16/BF16: minutes
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "not a multiple of 64; using 128x128" in proc.stderr
    with Image.open(out) as img:
        assert img.size == (128, 128)
        pixels = np.asarray(img)
    assert pixels.std() > 10  # random weights: noise, not a blank (NaN -> black) image
    assert "non-finite" not in proc.stderr
