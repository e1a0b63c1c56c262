"""Pose transforms: placement on a canvas (and the check that people land on it), flips, thresholds, scale/translate."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from humansd_core.errors import HumanSDError
from humansd_core.pose import (
    COCO17_NAMES,
    PoseSet,
    filter_people,
    flip_horizontal,
    place_and_check,
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
    placed = place_on_canvas(pose, 512, 512, "as-is")
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


def people_at(canvas: int, *offsets: float) -> PoseSet:
    """One person per offset: a 20-px figure whose points run from ``(offset, offset)`` to ``offset + 20``."""
    kp = np.zeros((len(offsets), 17, 3), np.float32)
    for i, off in enumerate(offsets):
        kp[i, :, 0] = kp[i, :, 1] = off + np.linspace(0, 20, 17)
        kp[i, :, 2] = 1.0
    return PoseSet(kp, canvas, canvas)


def test_the_default_placement_is_fit() -> None:
    pose = corners_pose(768, 512)
    assert np.array_equal(place_on_canvas(pose, 128, 128).keypoints, place_on_canvas(pose, 128, 128, "fit").keypoints)


def test_a_person_outside_the_output_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    pose = people_at(128, 10, 300)  # person 1 is off its own canvas, so off any fitted output
    with caplog.at_level(logging.WARNING, logger="humansd_core.pose.transforms"):
        placed = place_and_check(pose, 128, 128, frame=3)
    assert np.array_equal(placed.keypoints, pose.keypoints)
    assert [r.getMessage() for r in caplog.records] == [
        "frame 3: person 1 lies entirely outside the 128x128 output (no keypoint with confidence > 0.05 inside "
        "it); it is not drawn"]


def test_every_person_outside_the_output_is_an_error_that_says_what_to_do(caplog: pytest.LogCaptureFixture) -> None:
    pose = people_at(512, 200, 300)  # both inside their 512 canvas, both beyond 128 px kept as-is
    with pytest.raises(HumanSDError, match=r"frame 0: every person lies outside the 128x128 output "
                                           r"\(the pose's canvas is 512x512, placement 'as-is'\).*--place fit"):
        place_and_check(pose, 128, 128, "as-is")
    assert place_and_check(pose, 128, 128, "fit").num_people == 2  # what the message suggests works
    with pytest.raises(HumanSDError, match="outside its own canvas"):
        place_and_check(people_at(64, 100), 64, 64, "fit")
    dim = people_at(512, 300).keypoints.copy()
    dim[0, :, 2] = 0.05  # at the threshold: nothing would be drawn, not this check's concern
    with caplog.at_level(logging.WARNING):
        place_and_check(PoseSet(np.concatenate([people_at(512, 10).keypoints, dim]), 512, 512), 128, 128, "as-is")
    assert not caplog.records


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
