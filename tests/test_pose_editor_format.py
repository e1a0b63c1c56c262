"""The editor's layout (humansd_core.pose.editor_format): any pose_json text -> POSE_KEYPOINT
frames in pixels that draw exactly like the text and keep what the editor does not edit."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from humansd_core.errors import PoseFormatError
from humansd_core.pose import parse_pose_text, render_batch
from humansd_core.pose.editor_format import editor_pose_from_data, editor_pose_from_text
from humansd_core.pose.formats_openpose import OPENPOSE18_FROM_COCO17

from test_pose_formats import STAND, coco_to_openpose18

POSES = Path(__file__).resolve().parents[1] / "humansd_core" / "assets" / "poses"


def draws_alike(original: str, converted: str, thresholds=(0.0, 0.05, 0.3, 0.95)) -> None:
    """The converted text draws pixel for pixel what the original draws, at every threshold."""
    a, b = parse_pose_text(original), parse_pose_text(converted)
    assert [p.canvas_size for p in a] == [p.canvas_size for p in b]
    for threshold in thresholds:
        for pa, pb in zip(a, b):
            np.testing.assert_array_equal(render_batch([pa], threshold=threshold), render_batch([pb], threshold=threshold))


def test_the_writer_layout_comes_back_unchanged() -> None:
    frame = {"canvas_width": 512, "canvas_height": 512,
             "people": [{"pose_keypoints_2d": coco_to_openpose18(STAND), "face_keypoints_2d": None,
                         "hand_left_keypoints_2d": None, "hand_right_keypoints_2d": None}]}
    pose = editor_pose_from_data(frame)
    assert pose.single and pose.notes == [] and pose.source_format == "OpenPose-18 frame"
    assert pose.frames == [frame]
    assert json.loads(pose.text()) == frame


def test_normalised_frames_become_pixels_and_keep_other_fields() -> None:
    body = coco_to_openpose18(STAND, (512, 256))
    hand = [0.25, 0.5, 1.0] * 21
    frames = [{"canvas_width": 512, "canvas_height": 256, "version": 1.3, "people": [
        {"pose_keypoints_2d": body, "hand_left_keypoints_2d": hand, "face_keypoints_2d": None, "person_id": [-1]},
        {"pose_keypoints_2d": None, "hand_right_keypoints_2d": hand},
        {"pose_keypoints_2d": [0.0] * 54},
    ]}]
    pose = editor_pose_from_data(frames)
    assert not pose.single and len(pose.frames) == 1
    out = pose.frames[0]
    assert out["version"] == 1.3 and (out["canvas_width"], out["canvas_height"]) == (512, 256)
    first, second, third = out["people"]
    np.testing.assert_allclose(np.array(first["pose_keypoints_2d"]).reshape(18, 3)[[0, 2, 5], :2],
                               STAND[[0, 6, 5]], atol=1e-3)
    assert first["hand_left_keypoints_2d"][:3] == [128.0, 128.0, 1.0]
    assert first["face_keypoints_2d"] is None and first["person_id"] == [-1]
    assert second == {"pose_keypoints_2d": None, "hand_right_keypoints_2d": hand}  # kept, not drawable
    assert third == {"pose_keypoints_2d": [0.0] * 54}  # kept, nothing present
    assert any("normalised coordinates become pixels" in note and "people[0]" in note for note in pose.notes)
    draws_alike(json.dumps(frames), pose.text())


def test_confidences_are_kept_so_every_threshold_draws_the_same() -> None:
    body = np.array(coco_to_openpose18(STAND)).reshape(18, 3)
    body[:, 2] = np.linspace(0.0, 1.0, 18)
    body[body[:, 2] == 0] = 0
    text = json.dumps({"canvas_width": 512, "canvas_height": 512, "people": [{"pose_keypoints_2d": body.ravel().tolist()}]})
    pose = editor_pose_from_text(text)
    written = np.array(pose.frames[0]["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
    present = [j for j in range(18) if j != 1]  # the neck is not read
    np.testing.assert_allclose(written[present, 2], body[present, 2], rtol=1e-6)
    draws_alike(text, pose.text(), thresholds=np.linspace(0, 1, 11))


def test_body25_becomes_openpose18_with_its_own_neck() -> None:
    text = (POSES / "dance_body25.json").read_text()
    pose = editor_pose_from_text(text)
    source = json.loads(text)
    person = source["people"][0]["pose_keypoints_2d"]
    written = pose.frames[0]["people"][0]["pose_keypoints_2d"]
    assert len(written) == 54
    assert written[3:6] == pytest.approx(person[3:6], abs=1e-3)  # BODY_25's neck is point 1 too
    assert any("BODY_25 becomes OpenPose-18" in note for note in pose.notes)
    if "canvas_width" not in source:
        assert any("no canvas size" in note for note in pose.notes)
    draws_alike(text, pose.text())


def test_coco_annotations_become_frames() -> None:
    text = (POSES / "jump_coco.json").read_text()
    pose = editor_pose_from_text(text)
    assert pose.source_format == "COCO annotations" and not pose.single
    assert all(len(p["pose_keypoints_2d"]) == 54 for f in pose.frames for p in f["people"])
    assert any("ids, boxes" in note for note in pose.notes)
    draws_alike(text, pose.text())


def test_seventeen_point_bodies_get_the_shoulders_midpoint_as_neck() -> None:
    coco = np.concatenate([STAND, np.ones((17, 1))], axis=1)
    coco[6, 2] = 0.4
    frame = {"canvas_width": 512, "canvas_height": 512, "people": [{"pose_keypoints_2d": coco.ravel().tolist()}]}
    pose = editor_pose_from_data(frame)
    written = np.array(pose.frames[0]["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
    np.testing.assert_allclose(written[1], [(STAND[5, 0] + STAND[6, 0]) / 2, STAND[5, 1], 0.4], rtol=1e-6)
    for k, j in enumerate(OPENPOSE18_FROM_COCO17):
        if j is not None:
            np.testing.assert_allclose(written[k], coco[j], rtol=1e-6)
    assert any("17-point body" in note for note in pose.notes)


def test_numbers_read_back_as_the_same_float32() -> None:
    body = coco_to_openpose18(STAND / 512.0 * 511.7)
    body = [v + 0.0001234 if i % 3 != 2 else v for i, v in enumerate(body)]
    text = json.dumps({"canvas_width": 512, "canvas_height": 512, "people": [{"pose_keypoints_2d": body}]})
    pose = editor_pose_from_text(text)
    (a,), (b,) = parse_pose_text(text), parse_pose_text(pose.text())
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert all(len(repr(v)) <= 12 for v in pose.frames[0]["people"][0]["pose_keypoints_2d"])


def test_an_empty_list_has_no_frames() -> None:
    pose = editor_pose_from_text("[]")
    assert pose.frames == [] and not pose.single


@pytest.mark.parametrize(("text", "message"), [
    ('{"people": [{"pose_keypoints_2d": [1, 2, 3]}], "canvas_width": 8, "canvas_height": 8}',
     "pose_json: people[0].pose_keypoints_2d: expected 54 or 75 or 51 numbers, got 3"),
    ('{"people": [', "pose_json: malformed JSON at line 1 column 13"),
    ('{"people": [{"pose_keypoints_2d": [0.5, 0.5, 1.0]}]}', "expected 54 or 75 or 51 numbers"),
    ('[{"people": []}, {"keypoints": [1]}]', "pose_json: item 1: expected every item to be a frame"),
    ('{"canvas_width": -4, "canvas_height": 8, "people": []}', "pose_json: canvas_width: expected a positive whole"),
    ('"a pose"', "pose_json: unrecognised pose data"),
])
def test_bad_text_is_refused_with_the_readers_message(text: str, message: str) -> None:
    with pytest.raises(PoseFormatError) as caught:
        editor_pose_from_text(text)
    assert message in str(caught.value)
