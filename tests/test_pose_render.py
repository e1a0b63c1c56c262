"""The skeleton renderer: pixel-exact against the reference renders, and its options."""
from __future__ import annotations

import colorsys
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from humansd_core.errors import HumanSDError
from humansd_core.pose import PoseSet, render_batch, render_skeleton, scaled_thickness, skeleton_palette

FIXTURES = Path(__file__).parent / "data" / "skeleton"
CASES = json.loads((FIXTURES / "cases.json").read_text())


def case_pose(name: str) -> PoseSet:
    case = CASES[name]
    return PoseSet(np.array(case["people_coco17_xyc"]), case["width"], case["height"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_reference_render_exactly(name: str) -> None:
    expected = np.array(Image.open(FIXTURES / CASES[name]["image"]).convert("RGB"))
    image = render_skeleton(case_pose(name))
    assert image.dtype == np.uint8 and image.shape == expected.shape
    assert np.array_equal(image, expected), f"{name}: {(image != expected).any(-1).sum()} pixels differ"


def test_palette_is_the_hls_palette_and_read_only() -> None:
    palette = skeleton_palette()
    assert palette.shape == (16, 3) and palette.dtype == np.uint8
    for i, row in enumerate(palette):
        rgb = colorsys.hls_to_rgb((i / 16 + 0.01) % 1.0, 0.6, 0.65)
        assert row.tolist() == [int(255 * c) for c in rgb]
    assert skeleton_palette() is palette
    with pytest.raises(ValueError):
        palette[0, 0] = 1


def test_threshold_is_strictly_greater() -> None:
    kp = np.zeros((1, 17, 3), np.float32)
    kp[0, 0] = (100, 100, 0.05)  # nose exactly at the threshold
    kp[0, 1] = (150, 100, 0.9)
    pose = PoseSet(kp, 256, 256)
    assert not render_skeleton(pose).any()
    drawn = render_skeleton(pose, threshold=0.049)
    assert tuple(drawn[100, 125]) == tuple(skeleton_palette()[0])


def test_zero_people_gives_black_image_and_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        image = render_skeleton(PoseSet.empty(64, 48))
    assert image.shape == (48, 64, 3) and not image.any()
    assert "no people" in caplog.text


def test_size_overrides_canvas_and_coordinates_are_kept() -> None:
    pose = case_pose("stand_512")
    image = render_skeleton(pose, 640, 600)
    assert image.shape == (600, 640, 3)
    assert np.array_equal(image[:512, :512], render_skeleton(pose))
    assert not image[512:].any() and not image[:, 512:].any()


def test_canvas_is_drawn_over_without_being_modified() -> None:
    background = np.full((512, 512, 3), 7, np.uint8)
    image = render_skeleton(case_pose("stand_512"), canvas=background)
    assert (background == 7).all()
    assert (image[0, 0] == 7).all() and image.any(-1).sum() > 0
    assert np.array_equal(image != 7, render_skeleton(case_pose("stand_512")) != 0)
    with pytest.raises(HumanSDError, match="canvas"):
        render_skeleton(case_pose("stand_512"), canvas=np.zeros((10, 10, 3), np.uint8))


def test_thickness_option_changes_the_drawing() -> None:
    pose = case_pose("stand_512")
    thin, thick = render_skeleton(pose, thickness=2), render_skeleton(pose, thickness=20)
    assert thin.any(-1).sum() < render_skeleton(pose).any(-1).sum() < thick.any(-1).sum()
    for bad in (0, -3, 2.5, True):
        with pytest.raises(HumanSDError, match="thickness"):
            render_skeleton(pose, thickness=bad)


def test_scaled_thickness() -> None:
    assert scaled_thickness(512, 512) == 10
    assert scaled_thickness(768, 512) == 10
    assert scaled_thickness(1024, 768) == 15
    assert scaled_thickness(1024, 1024) == 20
    assert scaled_thickness(16, 16) == 1
    with pytest.raises(HumanSDError):
        scaled_thickness(0, 512)


def test_render_batch_equals_single_renders() -> None:
    poses = [case_pose("stand_512"), case_pose("low_conf_512"), PoseSet.empty(512, 512)]
    batch = render_batch(poses)
    assert batch.shape == (3, 512, 512, 3)
    for image, pose in zip(batch, poses):
        assert np.array_equal(image, render_skeleton(pose))
    with pytest.raises(HumanSDError, match="canvas sizes"):
        render_batch([case_pose("stand_512"), case_pose("two_people_768x512")])
    mixed = render_batch([case_pose("stand_512"), case_pose("two_people_768x512")], 512, 512)
    assert mixed.shape == (2, 512, 512, 3)
