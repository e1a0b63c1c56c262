"""OKS and pose agreement (humansd_core.pose.metrics)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from humansd_core.errors import HumanSDError
from humansd_core.pose.keypoints import PoseSet
from humansd_core.pose.metrics import COCO17_SIGMAS, keypoint_box_area, oks_matrix, pose_agreement


def _person(x0: float = 100.0, y0: float = 50.0, scale: float = 10.0) -> np.ndarray:
    """A person [17, 3]: joints on a 2-wide grid, all visible, box (scale x 8*scale)."""
    kp = np.zeros((17, 3), np.float32)
    for j in range(17):
        kp[j] = (x0 + scale * (j % 2), y0 + scale * (j // 2), 1.0)
    return kp


def _pose(*people: np.ndarray, size: tuple[int, int] = (512, 512)) -> PoseSet:
    kp = np.stack(people) if people else np.zeros((0, 17, 3), np.float32)
    return PoseSet(kp, *size)


def test_identical_pose_scores_one() -> None:
    pose = _pose(_person(), _person(300, 200, 20))
    result = pose_agreement(pose, pose)
    assert result.per_person == pytest.approx((1.0, 1.0))
    assert result.mean_oks == pytest.approx(1.0)
    assert result.count_error == 0


def test_single_joint_offset_matches_closed_form() -> None:
    gt = _person()
    dt = gt.copy()
    dt[9, 0] += 3.0  # left wrist 3 px off
    area = 10.0 * 80.0
    k = 2 * COCO17_SIGMAS[9]
    expected = (16 + math.exp(-9.0 / (2 * area * k * k))) / 17
    assert keypoint_box_area(gt[None])[0] == pytest.approx(area)
    assert oks_matrix(gt[None], dt[None])[0, 0] == pytest.approx(expected)


def test_missing_detected_joint_counts_as_miss_and_invisible_condition_joint_is_ignored() -> None:
    gt = _person()
    dt = gt.copy()
    dt[0, 2] = 0.0
    assert oks_matrix(gt[None], dt[None], threshold=0.05)[0, 0] == pytest.approx(16 / 17)
    gt_hidden = gt.copy()
    gt_hidden[0, 2] = 0.0
    dt_far = gt.copy()
    dt_far[0, :2] = (-1000.0, -1000.0)  # the hidden joint's error must not matter
    assert oks_matrix(gt_hidden[None], dt_far[None], threshold=0.05)[0, 0] == pytest.approx(1.0)


def test_people_are_paired_regardless_of_order() -> None:
    a, b = _person(50, 50), _person(300, 300, 12)
    shifted_b = b.copy()
    shifted_b[:, 0] += 4.0
    result = pose_agreement(_pose(a, b), _pose(shifted_b, a))
    assert result.per_person[0] == pytest.approx(1.0)
    assert 0.0 < result.per_person[1] < 1.0


def test_unmatched_people_and_count_error() -> None:
    a, b = _person(50, 50), _person(300, 300)
    result = pose_agreement(_pose(a, b), _pose(a))
    assert result.per_person == pytest.approx((1.0, 0.0))
    assert result.mean_oks == pytest.approx(0.5)
    assert (result.people_given, result.people_detected, result.count_error) == (2, 1, 1)
    extra = pose_agreement(_pose(a), _pose(a, b, _person(400, 10)))
    assert extra.per_person == pytest.approx((1.0,))
    assert extra.count_error == 2


def test_empty_condition_and_empty_detection() -> None:
    assert pose_agreement(_pose(), _pose(_person())).per_person == ()
    assert pose_agreement(_pose(), _pose()).mean_oks == 0.0
    assert pose_agreement(_pose(_person()), _pose()).per_person == (0.0,)


def test_canvas_mismatch_is_an_error() -> None:
    with pytest.raises(HumanSDError, match="canvas"):
        pose_agreement(_pose(_person()), _pose(_person(), size=(256, 256)))


def test_oks_decreases_with_distance() -> None:
    gt = _person()
    values = []
    for offset in (0.0, 2.0, 5.0, 20.0):
        dt = gt.copy()
        dt[:, :2] += offset
        values.append(oks_matrix(gt[None], dt[None])[0, 0])
    assert all(x > y for x, y in zip(values, values[1:]))
    assert values[0] == pytest.approx(1.0)
