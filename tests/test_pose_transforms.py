"""Pose transforms: placement on a canvas, flips, thresholds, scale/translate."""
from __future__ import annotations

import numpy as np
import pytest

from humansd_core.errors import HumanSDError
from humansd_core.pose import (
    COCO17_NAMES,
    PoseSet,
    filter_people,
    flip_horizontal,
    place_on_canvas,
    render_skeleton,
    scale_translate,
    threshold_keypoints,
)


def corners_pose(width: int, height: int) -> PoseSet:
    """Nose at the top-left corner, left eye at the bottom-right one, the rest at the centre."""
    kp = np.zeros((1, 17, 3), np.float32)
    kp[0, :, :2] = (width / 2, height / 2)
    kp[0, 0, :2] = (0, 0)
    kp[0, 1, :2] = (width, height)
    kp[0, :, 2] = 1.0
    kp[0, 16] = 0.0  # missing point
    return PoseSet(kp, width, height)


def test_as_is_keeps_coordinates() -> None:
    pose = corners_pose(768, 512)
    placed = place_on_canvas(pose, 512, 512)
    assert placed.canvas_size == (512, 512) and np.array_equal(placed.keypoints, pose.keypoints)


def test_fit_letterboxes_and_fill_crops() -> None:
    pose = corners_pose(768, 512)
    fit = place_on_canvas(pose, 512, 512, "fit")  # scale 2/3, bars top and bottom
    assert fit.keypoints[0, 0, :2].tolist() == pytest.approx([0, (512 - 512 * 2 / 3) / 2])
    assert fit.keypoints[0, 1, :2].tolist() == pytest.approx([512, 512 - (512 - 512 * 2 / 3) / 2])
    fill = place_on_canvas(pose, 512, 512, "fill")  # scale 1, sides cropped
    assert fill.keypoints[0, 0, :2].tolist() == pytest.approx([-128, 0])
    assert fill.keypoints[0, 1, :2].tolist() == pytest.approx([640, 512])
    assert fill.keypoints[0, 16].tolist() == [0, 0, 0]  # missing points stay put
    up = place_on_canvas(corners_pose(256, 256), 1024, 512, "fit")
    assert up.keypoints[0, 1, :2].tolist() == pytest.approx([768, 512])
    with pytest.raises(HumanSDError, match="mode"):
        place_on_canvas(pose, 512, 512, "stretch")  # type: ignore[arg-type]
    with pytest.raises(HumanSDError, match="width"):
        place_on_canvas(pose, 0, 512)


def test_flip_mirrors_x_and_swaps_sides() -> None:
    kp = np.zeros((1, 17, 3), np.float32)
    kp[0, :, 0] = np.arange(17) * 10 + 5
    kp[0, :, 1] = np.arange(17)
    kp[0, :, 2] = 1.0
    flipped = flip_horizontal(PoseSet(kp, 200, 100))
    left_wrist, right_wrist = COCO17_NAMES.index("left_wrist"), COCO17_NAMES.index("right_wrist")
    assert flipped.keypoints[0, left_wrist].tolist() == [199 - (right_wrist * 10 + 5), right_wrist, 1.0]
    assert flipped.keypoints[0, 0, 0] == 199 - 5
    assert np.array_equal(flip_horizontal(flipped).keypoints, kp)


def test_flipped_pose_renders_as_the_mirrored_image_with_swapped_colours() -> None:
    # A symmetric pose drawn flipped has each limb in its mirror partner's colour: the
    # image is not simply fliplr'ed, because left and right joints swap labels.
    kp = np.zeros((1, 17, 3), np.float32)
    kp[0, 9] = (40, 50, 1)  # left wrist
    kp[0, 7] = (40, 20, 1)  # left elbow: one vertical limb (colour 8)
    pose = PoseSet(kp, 101, 80)
    image, flipped = render_skeleton(pose), render_skeleton(flip_horizontal(pose))
    mask, flipped_mask = image.any(-1), flipped.any(-1)
    assert np.array_equal(flipped_mask, mask[:, ::-1])
    assert (image[35, 40] != flipped[35, 60]).any()  # the limb is now a right limb (colour 9)


def test_thresholds_and_filters() -> None:
    kp = np.full((3, 17, 3), 0.5, np.float32)
    kp[:, :, 2] = np.linspace(0, 1, 17)
    pose = PoseSet(kp, 64, 64, np.array([0.9, 0.05, 0.3]))
    kept = threshold_keypoints(pose, 0.5)
    assert (kept.keypoints[:, :9] == 0).all() and (kept.keypoints[:, 9:, 2] > 0.5).all()
    assert filter_people(pose, 0.05).scores.tolist() == pytest.approx([0.9, 0.3])
    assert filter_people(pose, 0.95).num_people == 0
    with pytest.raises(HumanSDError):
        threshold_keypoints(pose, float("nan"))


def test_scale_translate_about_the_centre() -> None:
    pose = corners_pose(200, 100)
    moved = scale_translate(pose, 0.5, dx=10, dy=-5)
    assert moved.canvas_size == (200, 100)
    assert moved.keypoints[0, 0, :2].tolist() == pytest.approx([50 + 10, 25 - 5])
    assert moved.keypoints[0, 1, :2].tolist() == pytest.approx([150 + 10, 75 - 5])
    assert moved.keypoints[0, 2, :2].tolist() == pytest.approx([100 + 10, 50 - 5])
    assert np.array_equal(scale_translate(pose).keypoints, pose.keypoints)
    for bad in ({"scale": 0.0}, {"scale": -1.0}, {"dx": float("inf")}):
        with pytest.raises(HumanSDError, match="scale_translate"):
            scale_translate(pose, **bad)
