"""Pose readers and writers: POSE_KEYPOINT / OpenPose JSON, COCO annotations."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from humansd_core.errors import PoseFormatError
from humansd_core.pose import (
    PoseSet,
    load_pose_file,
    parse_pose_data,
    parse_pose_text,
    to_openpose_json,
    to_pose_keypoint,
    write_openpose_json,
)
from humansd_core.pose.formats_openpose import COCO17_FROM_BODY25, COCO17_FROM_OPENPOSE18

from support.pose_samples import STAND, coco_to_openpose18


def frame(*people: list[float], width: int | None = 512, height: int | None = 512) -> dict:
    out: dict = {"people": [{"pose_keypoints_2d": p, "face_keypoints_2d": None,
                             "hand_left_keypoints_2d": None, "hand_right_keypoints_2d": None} for p in people]}
    if width is not None:
        out.update(canvas_width=width, canvas_height=height)
    return out


def test_pose_keypoint_pixels_and_normalised_per_person() -> None:
    right = STAND + [150, 0]
    pixel_person = coco_to_openpose18(STAND)
    normalised_person = coco_to_openpose18(right, (768, 512))
    (pose,) = parse_pose_data([frame(pixel_person, normalised_person, width=768)])
    assert pose.canvas_size == (768, 512) and pose.num_people == 2
    np.testing.assert_allclose(pose.keypoints[0, :, :2], STAND, atol=1e-3)
    np.testing.assert_allclose(pose.keypoints[1, :, :2], right, atol=1e-3)
    assert (pose.keypoints[..., 2] == 1.0).all() and (pose.scores == 1.0).all()


def test_normalised_pose_partly_off_canvas_is_still_normalised() -> None:
    # A plain "all <= 1" test reads this as pixels: the wrists fall off the canvas.
    xy = STAND.copy()
    xy[9] = (-90, 295)
    xy[10] = (640, 295)
    person = coco_to_openpose18(xy, (512, 512))
    assert min(person) < 0 and max(person) > 1
    (pose,) = parse_pose_data(frame(person))
    np.testing.assert_allclose(pose.keypoints[0, :, :2], xy, atol=1e-3)


def test_pixel_pose_partly_off_canvas_with_negative_coordinates() -> None:
    xy = STAND - [240, 0]  # left half of the body beyond x = 0
    (pose,) = parse_pose_data(frame(coco_to_openpose18(xy)))
    np.testing.assert_allclose(pose.keypoints[0, :, :2], xy, atol=1e-3)


def test_openpose18_mapping() -> None:
    flat = [v for j in range(18) for v in (10.0 * j + 3, 500.0 - j, 0.5 + j / 100)]
    (pose,) = parse_pose_data(frame(flat))
    for coco, source in enumerate(COCO17_FROM_OPENPOSE18):
        assert pose.keypoints[0, coco].tolist() == pytest.approx([10.0 * source + 3, 500.0 - source, 0.5 + source / 100])
    assert pose.keypoints[0, 5, 0] == 53 and pose.keypoints[0, 6, 0] == 23  # l-shoulder = 5, r-shoulder = 2


def test_body25_mapping_and_cmu_file_without_canvas(tmp_path: Path) -> None:
    flat = [v for j in range(25) for v in (20.0 * j + 4, 300.0 + j, 0.9)]
    path = tmp_path / "cmu_keypoints.json"
    path.write_text(json.dumps({"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": flat,
                                                              "face_keypoints_2d": [], "pose_keypoints_3d": []}]}))
    (pose,) = load_pose_file(path)
    for coco, source in enumerate(COCO17_FROM_BODY25):
        assert pose.keypoints[0, coco, 0] == 20 * source + 4
    xs, ys = pose.keypoints[0, :, 0], pose.keypoints[0, :, 1]
    assert pose.canvas_size == (int(xs.max()) + 1, int(ys.max()) + 1)  # inferred: smallest canvas holding them
    (given,) = load_pose_file(path, canvas=(1024, 600))
    assert given.canvas_size == (1024, 600) and np.array_equal(given.keypoints, pose.keypoints)


def test_coco17_body_array_and_missing_points() -> None:
    flat = np.concatenate([STAND, np.full((17, 1), 0.7)], axis=1)
    flat[3] = 0  # missing left ear
    (pose,) = parse_pose_data({"people": [{"pose_keypoints_2d": flat.ravel().tolist()}],
                               "canvas_width": 512, "canvas_height": 512})
    assert pose.keypoints[0, 3].tolist() == [0, 0, 0]
    np.testing.assert_allclose(pose.keypoints[0, 4], [238, 98, 0.7], rtol=1e-6)


def test_people_without_body_are_dropped_and_zero_people_is_empty() -> None:
    (pose,) = parse_pose_data(frame(None, [], [0.0] * 54, coco_to_openpose18(STAND)))
    assert pose.num_people == 1
    (empty,) = parse_pose_text('{"people": [], "canvas_width": 64, "canvas_height": 32}')
    assert empty.num_people == 0 and empty.canvas_size == (64, 32)
    assert parse_pose_data([]) == []


def test_normalised_without_canvas_needs_one() -> None:
    person = coco_to_openpose18(STAND, (512, 512))
    with pytest.raises(PoseFormatError, match="normalised.*canvas"):
        parse_pose_data(frame(person, width=None))
    (pose,) = parse_pose_data(frame(person, width=None), canvas=(256, 256))
    np.testing.assert_allclose(pose.keypoints[0, :, :2], STAND / 2, atol=1e-3)


def test_coco_dataset_flags_scores_and_empty_images() -> None:
    flags = np.concatenate([STAND, np.full((17, 1), 2.0)], axis=1)
    flags[15, 2] = 1  # labelled, hidden
    flags[4] = 0  # not labelled
    data = {
        "images": [{"id": 7, "width": 640, "height": 480}, {"id": 8, "width": 320, "height": 240}],
        "annotations": [
            {"image_id": 7, "keypoints": flags.ravel().tolist(), "num_keypoints": 16},
            {"image_id": 7, "keypoints": [0] * 51, "num_keypoints": 0, "iscrowd": 1},
            {"image_id": 9, "keypoints": flags.ravel().tolist(), "score": 0.25},
        ],
    }
    frames = parse_pose_data(data, canvas=(1000, 900))
    assert [f.canvas_size for f in frames] == [(640, 480), (320, 240), (1000, 900)]
    assert [f.num_people for f in frames] == [1, 0, 1]
    conf = frames[0].keypoints[0, :, 2]
    assert conf[15] == 1.0 and conf[4] == 0.0 and (np.delete(conf, 4) == 1.0).all()
    assert frames[2].scores.tolist() == [0.25]


def test_coco_confidences_and_grouping_of_annotation_lists() -> None:
    conf = np.concatenate([STAND, np.linspace(0.1, 0.9, 17)[:, None]], axis=1).ravel().tolist()
    anns = [{"image_id": "a", "keypoints": conf}, {"image_id": "b", "keypoints": conf}, {"image_id": "a", "keypoints": conf}]
    frames = parse_pose_data(anns, canvas=(512, 512))
    assert [f.num_people for f in frames] == [2, 1]
    np.testing.assert_allclose(frames[0].keypoints[0, :, 2], np.linspace(0.1, 0.9, 17), rtol=1e-6)
    (single,) = parse_pose_data({"keypoints": conf}, canvas=(512, 512))
    assert single.num_people == 1
    bad = list(conf)
    bad[2] = 1.5
    with pytest.raises(PoseFormatError, match=r"annotation\[0\].keypoints point 0: third value 1\.5"):
        parse_pose_data({"keypoints": bad})


@pytest.mark.parametrize(("data", "message"), [
    ({"people": [{"pose_keypoints_2d": [1.0] * 53}], "canvas_width": 8, "canvas_height": 8},
     r"people\[0\].pose_keypoints_2d: expected 54 or 75 or 51 numbers, got 53"),
    ({"people": [{"pose_keypoints_2d": [1.0] * 53 + ["7"]}]}, r"pose_keypoints_2d\[53\]: expected a number, got str"),
    ({"people": [{"pose_keypoints_2d": [True] * 54}]}, r"pose_keypoints_2d\[0\]: expected a number, got bool"),
    ({"people": [{"pose_keypoints_2d": [10.0, 10.0, 1.5] * 18}]}, r"point 0: confidence 1.5 outside \[0, 1\]"),
    ({"people": [{"pose_keypoints_2d": [10.0, 10.0, -0.1] * 18}]}, r"confidence -0.1 outside"),
    ({"people": [{"pose_keypoints_2d": [1e9, 10.0, 1.0] * 18}], "canvas_width": 512, "canvas_height": 512},
     r"x = 1e\+09 px is absurdly far"),
    ({"people": [{"pose_keypoints_2d": [-9000.0, 10.0, 1.0] * 18}], "canvas_width": 512, "canvas_height": 512},
     r"point 0: x = -9000 px"),
    ({"people": [{"pose_keypoints_2d": [10 ** 400, 10.0, 1.0] * 18}]}, r"number too large"),
    ({"people": [], "canvas_width": 0, "canvas_height": 512}, r"canvas_width: expected a positive whole number"),
    ({"people": [], "canvas_width": -5, "canvas_height": 512}, r"canvas_width.*-5"),
    ({"people": [], "canvas_width": 512}, r"canvas_height: expected a positive whole number of pixels, got None"),
    ({"people": [], "canvas_width": 51.5, "canvas_height": 512}, r"canvas_width.*51.5"),
    ({"people": "nobody"}, r"people: expected a list, got str"),
    ({"people": ["x"]}, r"people\[0\]: expected a person dict"),
    ({"frames": []}, r"unrecognised pose data.*'frames'"),
    ([{"people": []}, {"keypoints": []}], r"item 1: expected every item"),
    ("hello", r"unrecognised pose data"),
    ({"people": [{"pose_keypoints_2d": [0.5, 0.5, 1.0] * 18}]}, r"people\[0\]: coordinates look normalised"),
    ({"people": []}, r"no canvas size in the data and no keypoint"),
])
def test_bad_data_raises_pose_format_error(data: object, message: str) -> None:
    with pytest.raises(PoseFormatError, match=message) as info:
        parse_pose_data(data, source="input.json")
    assert str(info.value).startswith("input.json")


@pytest.mark.parametrize(("text", "message"), [
    ('{"people": [', r"malformed JSON at line 1 column 13"),
    ('{"people": [{"pose_keypoints_2d": [NaN' + ", 1" * 53 + "]}]}", r"pose_keypoints_2d\[0\]: expected a finite number, got nan"),
    ('{"people": [{"pose_keypoints_2d": [Infinity' + ", 1" * 53 + "]}]}", r"finite number, got inf"),
    ("[" * 100000 + "]" * 100000, r"unreadable JSON|malformed JSON"),
    ('{"people": [], "canvas_width": 1' + "0" * 5000 + ', "canvas_height": 1}', r"unreadable JSON"),
])
def test_bad_text_raises_pose_format_error(text: str, message: str) -> None:
    with pytest.raises(PoseFormatError, match=message):
        parse_pose_text(text, source="pose.json")


def test_load_pose_file_errors(tmp_path: Path) -> None:
    with pytest.raises(PoseFormatError, match="no such pose file"):
        load_pose_file(tmp_path / "missing.json")
    (tmp_path / "pose.txt").write_text("{}")
    with pytest.raises(PoseFormatError, match="unsupported pose file type '.txt'"):
        load_pose_file(tmp_path / "pose.txt")
    (tmp_path / "latin.json").write_bytes(b'{"people": [\xff]}')
    with pytest.raises(PoseFormatError, match="latin.json: cannot read as UTF-8"):
        load_pose_file(tmp_path / "latin.json")


def test_writer_layout_matches_pose_keypoint() -> None:
    kp = np.concatenate([STAND, np.full((17, 1), 0.8)], axis=1)[None].repeat(2, axis=0)
    kp[1, 6] = (0, 0, 0)  # second person: right shoulder missing -> no neck
    kp[1, 0, 2] = 0.03  # at or below the write threshold -> missing
    (out,) = to_pose_keypoint([PoseSet(kp, 512, 384)])
    assert list(out) == ["people", "canvas_height", "canvas_width"]
    assert (out["canvas_width"], out["canvas_height"]) == (512, 384)
    first, second = (np.array(p["pose_keypoints_2d"]).reshape(18, 3) for p in out["people"])
    for person in out["people"]:
        assert len(person["pose_keypoints_2d"]) == 54
        assert person["face_keypoints_2d"] is None
        assert person["hand_left_keypoints_2d"] is None and person["hand_right_keypoints_2d"] is None
        assert all(isinstance(v, float) for v in person["pose_keypoints_2d"])
    assert set(first[:, 2]) == {1.0}
    assert first[1].tolist() == [(292 + 220) / 2, 150.0, 1.0]  # neck = shoulders' midpoint
    assert second[1].tolist() == [0.0, 0.0, 0.0] and second[2].tolist() == [0.0, 0.0, 0.0]
    assert second[0].tolist() == [0.0, 0.0, 0.0]
    assert first[2].tolist() == [220.0, 150.0, 1.0] and first[5].tolist() == [292.0, 150.0, 1.0]
    assert to_openpose_json(PoseSet(kp, 512, 384)) == out
    json.dumps(out, allow_nan=False)


def test_round_trip_through_files(tmp_path: Path) -> None:
    kp = np.concatenate([STAND, np.full((17, 1), 1.0)], axis=1)
    frames = [PoseSet(kp[None], 512, 512), PoseSet.empty(512, 512), PoseSet(kp[None] - [60, 0, 0], 600, 500)]
    write_openpose_json(tmp_path / "frames.json", frames)
    assert isinstance(json.loads((tmp_path / "frames.json").read_text()), list)
    back = load_pose_file(tmp_path / "frames.json")
    assert [b.canvas_size for b in back] == [f.canvas_size for f in frames]
    for b, f in zip(back, frames):
        assert np.array_equal(b.keypoints, f.keypoints)
    write_openpose_json(tmp_path / "one.json", frames[0])
    assert isinstance(json.loads((tmp_path / "one.json").read_text()), dict)
    assert np.array_equal(load_pose_file(tmp_path / "one.json")[0].keypoints, frames[0].keypoints)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames.json", "one.json"]  # no temp files left


def test_missing_points_are_cleared_and_canvas_argument_is_checked() -> None:
    flat = coco_to_openpose18(STAND)
    flat[0:3] = [5e8, -7e7, 0.0]  # the nose is missing; its coordinates mean nothing
    (pose,) = parse_pose_data(frame(flat))
    assert pose.keypoints[0, 0].tolist() == [0, 0, 0]
    for bad in ((0, 512), (512,), ("512", 512), (True, 512), 512):
        with pytest.raises(PoseFormatError, match="canvas: expected"):
            parse_pose_data(frame(flat), canvas=bad)  # type: ignore[arg-type]
