"""HumanSD / MMPose ``.npz`` pose files and the restricted unpickler guarding them."""
from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from humansd_core.errors import PoseFormatError
from humansd_core.pose import load_pose_file

rng = np.random.default_rng(0)


def detection(score: float = 0.9) -> dict:
    keypoints = np.concatenate([rng.uniform(20, 400, (17, 2)), rng.uniform(0, 1, (17, 1))], axis=1)
    return {"keypoints": keypoints.astype(np.float32), "score": np.float32(score), "area": np.float32(5e4)}


def write_npz_member(path: Path, payload: bytes, descr: str = "|O", shape: tuple[int, ...] = (1,)) -> Path:
    """An .npz whose arr_0.npy has the given header and raw payload (pickle or data)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("arr_0.npy", buffer.getvalue() + payload)
    return path


class RunsCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return (os.system, (self.command,))


class CallsEval:
    def __reduce__(self) -> tuple:
        return (eval, ("__import__('pathlib').Path('EVAL_RAN').touch()",))


def test_humansd_npz_as_written_by_the_reference(tmp_path: Path) -> None:
    people = [detection(0.9), detection(0.4), detection(0.03)]
    np.savez(tmp_path / "pose.npz", people)  # the reference's np.savez(path, results)
    (pose,) = load_pose_file(tmp_path / "pose.npz", canvas=(512, 448))
    assert pose.canvas_size == (512, 448) and pose.num_people == 3
    for got, want in zip(pose.keypoints, people):
        assert np.array_equal(got, want["keypoints"])
    np.testing.assert_allclose(pose.scores, [0.9, 0.4, 0.03])
    (inferred,) = load_pose_file(tmp_path / "pose.npz")
    present = pose.keypoints[pose.keypoints[..., 2] > 0]
    assert inferred.canvas_size == (int(present[:, 0].max()) + 1, int(present[:, 1].max()) + 1)


def test_mmpose1_layout_protocol2_pickle_and_numeric_array(tmp_path: Path) -> None:
    det = detection()
    mmpose1 = {"keypoints": det["keypoints"][:, :2], "keypoint_scores": det["keypoints"][:, 2], "bbox_score": 0.5}
    array = np.empty(1, dtype=object)
    array[0] = mmpose1
    path = write_npz_member(tmp_path / "p2.npz", pickle.dumps(array, protocol=2))
    assert b"_codecs" in pickle.dumps(array, protocol=2)  # protocol 2 encodes bytes through _codecs.encode
    (pose,) = load_pose_file(path, canvas=(512, 512))
    assert np.array_equal(pose.keypoints[0], det["keypoints"])
    np.savez(tmp_path / "plain.npz", np.stack([det["keypoints"]] * 2))
    (plain,) = load_pose_file(tmp_path / "plain.npz", canvas=(512, 512))
    assert plain.num_people == 2 and np.array_equal(plain.keypoints[1], det["keypoints"])


@pytest.mark.parametrize("payload", [
    pytest.param(lambda marker: pickle.dumps(RunsCommand(f"touch {marker}"), protocol=3), id="os.system"),
    pytest.param(lambda marker: pickle.dumps([{"keypoints": RunsCommand(f"touch {marker}")}], protocol=4), id="nested"),
    pytest.param(lambda marker: pickle.dumps(CallsEval(), protocol=2), id="eval"),
    pytest.param(lambda marker: b"\x80\x03cnumpy\nload\nq\x00.", id="numpy.load"),
    pytest.param(lambda marker: b"\x80\x03c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00zlibq\x00\x86R.",
                 id="_codecs.zlib"),
])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    path = write_npz_member(tmp_path / "evil.npz", payload(marker))
    with pytest.raises(PoseFormatError, match="evil.npz:arr_0.npy: unsafe or corrupt pickled content: .*refused"):
        load_pose_file(path, canvas=(64, 64))
    assert not marker.exists() and not (tmp_path / "EVAL_RAN").exists()


def test_the_payload_would_run_without_the_guard(tmp_path: Path) -> None:
    """Control for the test above: the planted pickle is live under a plain unpickler."""
    marker = tmp_path / "PWNED"
    pickle.loads(pickle.dumps(RunsCommand(f"touch {marker}")))  # our own bytes, run on purpose
    assert marker.exists()


@pytest.mark.parametrize(("content", "message"), [
    ({"keypoints": np.zeros((17, 3))}, r"unknown npz content \(object array \[\]\)"),
    ([{"keypoints": np.zeros((18, 3))}], r"\[0\].keypoints: expected a numeric \[17, 3\] array, got float64 \[18, 3\]"),
    ([{"keypoints": np.full((17, 3), 2.0)}], r"\[0\].keypoints point 0: confidence 2.0 outside"),
    ([{"keypoints": np.full((17, 3), np.nan)}], r"non-finite"),
    ([{"keypoints": np.full((17, 3), 0.5), "score": 3.0}], r"\[0\].score: 3.0 outside"),
    ([{"keypoints": "17 points"}], r"got str"),
    (["not a dict"], r"\[0\]: expected a dict"),
    (np.zeros((2, 18, 3)), r"expected a \[people, 17, 3\] array, got shape \[2, 18, 3\]"),
])
def test_unknown_or_bad_content(tmp_path: Path, content: object, message: str) -> None:
    if isinstance(content, dict):
        np.savez(tmp_path / "bad.npz", content)  # a 0-d object array
    else:
        array = content if isinstance(content, np.ndarray) else np.empty(len(content), dtype=object)
        if not isinstance(content, np.ndarray):
            array[:] = content
        np.savez(tmp_path / "bad.npz", array)
    with pytest.raises(PoseFormatError, match=message):
        load_pose_file(tmp_path / "bad.npz", canvas=(512, 512))


def test_broken_archives(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(PoseFormatError, match="junk.npz: not a readable .npz archive"):
        load_pose_file(tmp_path / "junk.npz")
    np.savez(tmp_path / "two.npz", a=np.zeros(1), b=np.zeros(1))
    with pytest.raises(PoseFormatError, match=r"expected one array \(arr_0\)"):
        load_pose_file(tmp_path / "two.npz")
    lying = write_npz_member(tmp_path / "lying.npz", b"\0" * 16, descr="<f4", shape=(10 ** 9, 17, 3))
    with pytest.raises(PoseFormatError, match="larger than the file"):
        load_pose_file(lying)
    truncated = write_npz_member(tmp_path / "cut.npz", pickle.dumps([detection()], protocol=3)[:-40])
    with pytest.raises(PoseFormatError, match="unsafe or corrupt"):
        load_pose_file(truncated, canvas=(512, 512))
