"""OpenPose body detector: weight discovery, safe loading, heatmaps, people grouping.

The real controlnet-aux ``bodypose_model`` with random weights, saved the way the
CMU ``body_pose_model.pth`` is (one tensor per ``<layer>.weight``/``.bias`` name).
The grouping is checked on maps drawn from known skeletons.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from support.checkpoints import random_openpose_state

from humansd_core.errors import CheckpointError, HumanSDError, MissingWeightsError
from humansd_core.pose.detect import (
    WEIGHTS_ENV_VAR,
    WEIGHTS_RELATIVE_PATH,
    OpenPoseBodyDetector,
    body_network_class,
    find_openpose_weights,
    load_body_network,
)
from humansd_core.pose.formats_openpose import COCO17_FROM_OPENPOSE18
from humansd_core.pose.keypoints import PoseSet
from humansd_core.pose.openpose_decode import LIMBS, decode_people


@pytest.fixture(scope="module")
def cmu_state() -> dict[str, torch.Tensor]:
    return random_openpose_state()


@pytest.fixture(scope="module")
def ckpts_root(tmp_path_factory: pytest.TempPathFactory, cmu_state: dict[str, torch.Tensor]) -> Path:
    root = tmp_path_factory.mktemp("ckpts")
    target = root / WEIGHTS_RELATIVE_PATH
    target.parent.mkdir(parents=True)
    torch.save(cmu_state, target)
    return root


@pytest.fixture(scope="module")
def detector(ckpts_root: Path) -> OpenPoseBodyDetector:
    return OpenPoseBodyDetector.from_file(ckpts_root / WEIGHTS_RELATIVE_PATH)


# --- finding the weights -------------------------------------------------------------

def test_finds_weights_under_env_var_read_at_call_time(ckpts_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(ckpts_root))
    assert find_openpose_weights() == ckpts_root / WEIGHTS_RELATIVE_PATH


def test_finds_weights_through_aux_pack_config_then_ckpts(
    ckpts_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(WEIGHTS_ENV_VAR, raising=False)
    pack = tmp_path / "comfyui_controlnet_aux"
    (pack / "ckpts").mkdir(parents=True)
    (pack / "ckpts" / "lllyasviel").symlink_to(ckpts_root / "lllyasviel")
    assert find_openpose_weights(aux_pack_dirs=[pack]) == pack / "ckpts" / WEIGHTS_RELATIVE_PATH
    (pack / "config.yaml").write_text(f'annotator_ckpts_path: "{ckpts_root}"\ncustom_temp_path:\n')
    assert find_openpose_weights(aux_pack_dirs=[pack]) == ckpts_root / WEIGHTS_RELATIVE_PATH
    (pack / "mine").mkdir()
    (pack / "mine" / "lllyasviel").symlink_to(ckpts_root / "lllyasviel")
    (pack / "config.yaml").write_text('annotator_ckpts_path: "./mine"\n')  # relative to the pack
    assert find_openpose_weights(aux_pack_dirs=[pack]) == pack / "mine" / WEIGHTS_RELATIVE_PATH


def test_explicit_file_or_folder(ckpts_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEIGHTS_ENV_VAR, "/nonexistent")
    weights = ckpts_root / WEIGHTS_RELATIVE_PATH
    assert find_openpose_weights(str(weights)) == weights
    assert find_openpose_weights(str(ckpts_root)) == weights
    assert find_openpose_weights(str(weights.parent)) == weights


def test_missing_weights_error_names_every_path_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(tmp_path / "env"))
    pack = tmp_path / "comfyui_controlnet_aux"
    with pytest.raises(MissingWeightsError) as info:
        find_openpose_weights(aux_pack_dirs=[pack])
    message = str(info.value)
    assert str(tmp_path / "env" / WEIGHTS_RELATIVE_PATH) in message
    assert str(pack / "ckpts" / WEIGHTS_RELATIVE_PATH) in message
    assert "non-commercial" in message
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, HumanSDError)

    explicit = tmp_path / "nowhere" / "body.pth"
    with pytest.raises(MissingWeightsError, match=str(explicit)):
        find_openpose_weights(str(explicit))
    monkeypatch.delenv(WEIGHTS_ENV_VAR)
    with pytest.raises(MissingWeightsError, match=WEIGHTS_ENV_VAR):
        find_openpose_weights()


# --- loading -----------------------------------------------------------------------

def test_loads_every_tensor_of_the_cmu_layout(detector: OpenPoseBodyDetector, cmu_state: dict) -> None:
    loaded = detector.network.state_dict()
    assert len(loaded) == len(cmu_state) == 184
    for name, tensor in loaded.items():
        assert torch.equal(tensor, cmu_state[name.split(".", 1)[1]]), name
    assert not any(p.requires_grad for p in detector.network.parameters())
    assert not detector.network.training


def test_loads_safetensors_with_full_names(tmp_path: Path, cmu_state: dict) -> None:
    from safetensors.torch import save_file

    network = body_network_class()()
    full = {name: cmu_state[name.split(".", 1)[1]].contiguous() for name in network.state_dict()}
    save_file(full, tmp_path / "body.safetensors")
    loaded = load_body_network(tmp_path / "body.safetensors").state_dict()
    assert all(torch.equal(loaded[n], t) for n, t in full.items())


class _Payload:
    """Unpickling this would create a folder: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_code_running_pickle_is_refused(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "body_pose_model.pth"
    state = {"conv1_1.weight": _Payload(marker)}
    if writer == "torch.save":
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state))
    with pytest.raises(CheckpointError, match="refused") as info:
        OpenPoseBodyDetector.from_file(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_wrong_tensors_are_named(tmp_path: Path, cmu_state: dict) -> None:
    partial = dict(cmu_state)
    del partial["conv1_1.weight"]
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"partial\.pth.*1 of 184 tensors missing.*conv1_1\.weight"):
        load_body_network(tmp_path / "partial.pth")
    reshaped = dict(cmu_state, **{"conv1_1.bias": torch.zeros(3)})
    torch.save(reshaped, tmp_path / "reshaped.pth")
    with pytest.raises(CheckpointError, match=r"conv1_1\.bias has shape \[3\]"):
        load_body_network(tmp_path / "reshaped.pth")
    (tmp_path / "notes.pth").write_text("not a tensor file")
    with pytest.raises(CheckpointError, match="notes.pth"):
        load_body_network(tmp_path / "notes.pth")


# --- running -----------------------------------------------------------------------

def test_detect_returns_a_pose_set_on_the_photo_canvas(detector: OpenPoseBodyDetector) -> None:
    photo = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    pose = detector.detect(photo, input_height=64)
    assert isinstance(pose, PoseSet)
    assert pose.canvas_size == (80, 60)
    assert pose.keypoints.shape[1:] == (17, 3) and pose.scores.shape == (pose.num_people,)
    with pytest.raises(HumanSDError, match=r"image: expected RGB uint8 \[H, W, 3\], got float32"):
        detector.detect(photo.astype(np.float32))
    with pytest.raises(HumanSDError, match="input_height"):
        detector.detect(photo, input_height=4)


def test_detect_maps_network_pixels_back_to_the_photo(detector: OpenPoseBodyDetector) -> None:
    """At twice the photo's height, network pixel ``i`` is photo coordinate ``(i + 0.5) / 2 - 0.5``."""
    photo = np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    pose = detector.detect(photo, input_height=80)
    present = pose.keypoints[..., 2] > 0
    assert present.sum() >= 4  # the He-initialised network "sees" people in noise
    network_px = pose.keypoints[..., :2][present] * 2 + 0.5
    np.testing.assert_allclose(network_px, np.round(network_px), atol=1e-4)
    assert network_px.min() >= 0 and (network_px.max(axis=0) <= [95, 79]).all()
    assert ((pose.scores > 0) & (pose.scores <= 1)).all()


def test_heatmaps_follow_the_cmu_input_convention(detector: OpenPoseBodyDetector) -> None:
    """RGB [0,1] batch in; the network sees BGR ``x/256 - 0.5`` padded with grey 128."""
    pixels = torch.randint(0, 256, (2, 50, 70, 3), dtype=torch.uint8)
    images = (pixels.float() / 255.0).permute(0, 3, 1, 2).requires_grad_(True)
    maps = detector.heatmaps(images)
    assert maps.shape == (2, 17, 7, 9) and maps.dtype == torch.float32 and maps.device == detector.device
    assert not maps.requires_grad
    assert 0.0 <= float(maps.min()) and float(maps.max()) <= 1.0

    bgr = torch.full((2, 56, 72, 3), 128, dtype=torch.uint8)
    bgr[:, :50, :70] = pixels.flip(-1)
    with torch.no_grad():
        _, expected = detector.network(bgr.permute(0, 3, 1, 2).float() / 256.0 - 0.5)
    expected = expected[:, list(COCO17_FROM_OPENPOSE18)].clamp(0, 1)
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(detector.heatmaps(images[1:]), maps[1:], atol=1e-5, rtol=1e-4)
    with pytest.raises(HumanSDError, match=r"\[B, 3, H, W\]"):
        detector.heatmaps(images[:, :2])


# --- grouping parts into people -------------------------------------------------------

# One standing person, OpenPose-18 order, in a 64 x 128 box.
_PERSON = np.array([
    (32, 20), (32, 34), (22, 34), (18, 50), (16, 66), (42, 34), (46, 50), (48, 66), (26, 70),
    (26, 92), (26, 114), (38, 70), (38, 92), (38, 114), (29, 16), (35, 16), (25, 19), (39, 19),
], dtype=np.float64)


# The CMU body model's limbs as its papers' code lists them: 1-based parts, and PAF
# channel pairs counted after the 19 heatmap channels. Our table must say the same.
_CMU_LIMB_PARTS = ((2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12),
                   (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (3, 17), (6, 18))
_CMU_LIMB_PAFS = ((31, 32), (39, 40), (33, 34), (35, 36), (41, 42), (43, 44), (19, 20), (21, 22), (23, 24),
                  (25, 26), (27, 28), (29, 30), (47, 48), (49, 50), (53, 54), (51, 52), (55, 56), (37, 38),
                  (45, 46))
_CMU_LIMBS = tuple((a - 1, b - 1, x - 19, y - 19)
                   for (a, b), (x, y) in zip(_CMU_LIMB_PARTS, _CMU_LIMB_PAFS, strict=True))


def test_limb_table_matches_the_cmu_layout() -> None:
    assert LIMBS == _CMU_LIMBS


def _draw_maps(people: list[np.ndarray], height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ideal network output for ``people`` ([18, 2] each, NaN = absent): Gaussian part
    peaks of height 1 and unit affinity vectors within 3 px of every limb."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    heat = np.zeros((19, height, width))
    paf = np.zeros((38, height, width))
    for person in people:
        for k, (x, y) in enumerate(person):
            if not np.isnan(x):
                heat[k] = np.maximum(heat[k], np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0 ** 2)))
        for a, b, cx, cy in _CMU_LIMBS:
            if np.isnan(person[[a, b]]).any():
                continue
            direction = person[b] - person[a]
            length = np.linalg.norm(direction)
            u = direction / length
            along = (xx - person[a, 0]) * u[0] + (yy - person[a, 1]) * u[1]
            across = np.abs((xx - person[a, 0]) * u[1] - (yy - person[a, 1]) * u[0])
            on_limb = (along >= -1) & (along <= length + 1) & (across <= 3)
            paf[cx][on_limb], paf[cy][on_limb] = u
    return torch.from_numpy(heat).float(), torch.from_numpy(paf).float()


def test_grouping_recovers_people_and_missing_parts() -> None:
    left, right = _PERSON + (10, 4), _PERSON + (100, 8)
    right[7] = np.nan  # l-wrist hidden
    heat, paf = _draw_maps([left, right], 140, 180)
    keypoints, scores = decode_people(heat, paf)
    assert keypoints.shape == (2, 18, 3)
    keypoints = keypoints[np.argsort(keypoints[:, 0, 0])]
    np.testing.assert_allclose(keypoints[0, :, :2], left, atol=0.5)
    np.testing.assert_allclose(keypoints[0, :, 2], 1.0, atol=1e-5)
    present = ~np.isnan(right[:, 0])
    np.testing.assert_allclose(keypoints[1, present, :2], right[present], atol=0.5)
    assert keypoints[1, 7].tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(scores, 1.0, atol=1e-5)


def test_grouping_drops_fragments_and_empty_maps() -> None:
    fragment = np.full_like(_PERSON, np.nan)
    fragment[[1, 2, 3]] = _PERSON[[1, 2, 3]]  # neck, r-shoulder, r-elbow: 3 parts < 4
    heat, paf = _draw_maps([fragment], 128, 64)
    keypoints, scores = decode_people(heat, paf)
    assert keypoints.shape == (0, 18, 3) and scores.shape == (0,)
    keypoints, _ = decode_people(torch.zeros(19, 32, 32), torch.zeros(38, 32, 32))
    assert keypoints.shape == (0, 18, 3)
    with pytest.raises(ValueError, match="one grid"):
        decode_people(torch.zeros(19, 32, 32), torch.zeros(38, 16, 32))
