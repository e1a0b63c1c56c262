"""Fuzzing the pose readers: they return valid PoseSets or raise PoseFormatError, nothing else."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from humansd_core.errors import PoseFormatError
from humansd_core.pose import PoseSet, load_pose_file, parse_pose_data, parse_pose_text, to_pose_keypoint

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2.0, 2.0),
    st.floats(-50.0, 700.0),
    st.integers(-(10 ** 30), 10 ** 30),
    st.sampled_from([0, 1, 2, 0.05, 1.0000001, -0.0]),
)
scalars = st.one_of(numbers, st.none(), st.booleans(), st.text(max_size=4))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["people", "pose_keypoints_2d", "canvas_width", "canvas_height", "keypoints",
                         "annotations", "images", "id", "image_id", "width", "height", "score", "x"]),
        inner, max_size=4),
    max_leaves=30,
)
body_arrays = st.one_of(
    st.integers(0, 80).flatmap(lambda n: st.lists(scalars, min_size=n, max_size=n)),
    st.sampled_from([51, 54, 75]).flatmap(lambda n: st.lists(numbers, min_size=n, max_size=n)),
    st.sampled_from([51, 54, 75]).flatmap(lambda n: st.lists(
        st.one_of(st.floats(-0.5, 1.5), st.floats(0, 1)), min_size=n, max_size=n)),
    st.none(),
)
canvas_values = st.one_of(st.none(), st.integers(-3, 2000), st.floats(-1, 2000), st.text(max_size=3))


@st.composite
def openpose_frames(draw: st.DrawFn) -> dict:
    frame: dict = {"people": draw(st.lists(st.fixed_dictionaries({"pose_keypoints_2d": body_arrays}), max_size=3))}
    for key in ("canvas_width", "canvas_height"):
        if draw(st.booleans()):
            frame[key] = draw(canvas_values)
    return frame


@st.composite
def coco_data(draw: st.DrawFn) -> object:
    anns = draw(st.lists(st.fixed_dictionaries(
        {"keypoints": st.lists(st.one_of(numbers, st.sampled_from([0, 1, 2])), min_size=51, max_size=51)
         | body_arrays},
        optional={"image_id": st.one_of(st.integers(0, 3), st.text(max_size=2), st.none(), st.floats()),
                  "score": scalars}), max_size=3))
    images = draw(st.lists(st.fixed_dictionaries(
        {"id": st.one_of(st.integers(0, 3), st.none())}, optional={"width": canvas_values, "height": canvas_values}),
        max_size=2))
    return draw(st.sampled_from([{"annotations": anns, "images": images}, anns, anns[0] if anns else {}]))


def check(call) -> None:  # noqa: ANN001
    try:
        frames = call()
    except PoseFormatError:
        return
    assert isinstance(frames, list)
    for frame in frames:
        assert isinstance(frame, PoseSet)
        assert frame.keypoints.shape[1:] == (17, 3) and np.isfinite(frame.keypoints).all()


@FUZZ
@given(json_values, st.one_of(st.none(), st.tuples(st.integers(1, 2000), st.integers(1, 2000))))
def test_any_json_value(data: object, canvas: tuple[int, int] | None) -> None:
    check(lambda: parse_pose_data(data, canvas=canvas))


@FUZZ
@given(st.one_of(openpose_frames(), st.lists(openpose_frames(), max_size=3)))
def test_openpose_like_frames(data: object) -> None:
    check(lambda: parse_pose_data(data))


@FUZZ
@given(coco_data(), st.one_of(st.none(), st.just((640, 480))))
def test_coco_like_data(data: object, canvas: tuple[int, int] | None) -> None:
    check(lambda: parse_pose_data(data, canvas=canvas))


@FUZZ
@given(st.one_of(st.text(max_size=200), openpose_frames().map(json.dumps).flatmap(
    lambda text: st.integers(0, max(0, len(text) - 1)).map(lambda cut: text[:cut] + text[cut + 1:]))))
def test_text(text: str) -> None:
    check(lambda: parse_pose_text(text))


@FUZZ
@given(st.binary(max_size=300))
def test_npz_bytes(tmp_path_factory, payload: bytes) -> None:  # noqa: ANN001
    path = Path(tmp_path_factory.mktemp("npz")) / "fuzz.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("arr_0.npy", b"\x93NUMPY\x01\x00" + payload)
    check(lambda: load_pose_file(path, canvas=(64, 64)))


@FUZZ
@given(st.integers(16, 1024), st.integers(16, 1024), st.integers(0, 3), st.data())
def test_pose_keypoint_round_trip(width: int, height: int, people: int, data: st.DataObject) -> None:
    shape = (people, 17)
    xs = np.array(data.draw(st.lists(st.floats(3, 4 * width), min_size=people * 17, max_size=people * 17)))
    ys = np.array(data.draw(st.lists(st.floats(-height, 2 * height), min_size=people * 17, max_size=people * 17)))
    conf = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.02, 0.3, 1.0]), min_size=people * 17,
                                       max_size=people * 17)))
    kp = np.stack([xs.reshape(shape), ys.reshape(shape), conf.reshape(shape)], axis=-1)
    pose = PoseSet(kp, width, height)
    (back,) = parse_pose_data(json.loads(json.dumps(to_pose_keypoint([pose]))))
    present = pose.keypoints[..., 2] > 0.05
    kept = present.any(axis=1)  # people with nothing present are not written as people
    assert back.canvas_size == (width, height) and back.num_people == int(kept.sum())
    assert np.array_equal(back.keypoints[..., 2], present[kept].astype(np.float32))
    assert np.array_equal(back.keypoints[..., :2][present[kept]], pose.keypoints[kept][..., :2][present[kept]])
