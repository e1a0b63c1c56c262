"""Synthetic mannequin data: determinism, valid poses within joint limits, renders and captions."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from humansd_core.errors import HumanSDError
from humansd_core.pose import PoseSet
from humansd_core.pose.render import SKELETON_LIMBS
from humansd_core.synthetic import COLOURS, JOINT_LIMITS, generate_scene, limb_angle, sample_scene, scene_rng
from humansd_core.synthetic.appearance import Background, Outfit, caption
from humansd_core.synthetic.mannequin import draw_people
from humansd_core.synthetic.poses import MAX_OVERLAP, SEGMENT_JITTER, SEGMENTS, build_body, sample_body

SCENES = [generate_scene(scene_rng(7, i), 96) for i in range(24)]


def test_same_seed_same_scene_and_other_seed_differs():
    a_img, a_pose, a_cap = sample_scene(np.random.default_rng(3), 64)
    b_img, b_pose, b_cap = sample_scene(np.random.default_rng(3), 64)
    c_img, _, _ = sample_scene(np.random.default_rng(4), 64)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_pose.keypoints, b_pose.keypoints) and a_cap == b_cap
    assert not np.array_equal(a_img, c_img)


def test_scene_shape_dtype_and_pose_canvas_any_size():
    scene = generate_scene(scene_rng(0, 0), (80, 48))
    assert scene.image.shape == (48, 80, 3) and scene.image.dtype == np.uint8
    assert isinstance(scene.pose, PoseSet) and scene.pose.canvas_size == (80, 48)
    with pytest.raises(HumanSDError, match="width"):
        generate_scene(scene_rng(0, 0), 8)


def test_people_count_inside_canvas_and_barely_overlapping():
    counts = set()
    for scene in SCENES:
        pose = scene.pose
        counts.add(pose.num_people)
        assert 1 <= pose.num_people <= 3
        assert (pose.keypoints[..., 2] == 1.0).all()
        xy = pose.keypoints[..., :2]
        assert (xy >= 0).all() and (xy[..., 0] < 96).all() and (xy[..., 1] < 96).all()
        boxes = [(*p[:, :2].min(0), *p[:, :2].max(0)) for p in pose.keypoints]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
                ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
                smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
                assert iw * ih <= MAX_OVERLAP * smaller + 1e-6  # joint boxes lie inside the placement boxes
    assert counts == {1, 2, 3}


def test_bodies_respect_joint_limits_and_proportions():
    rng = np.random.default_rng(11)
    elbow_hi, knee_hi = JOINT_LIMITS["elbow"][1], JOINT_LIMITS["knee"][1]
    elbows, knees = [], []
    for _ in range(300):
        params = sample_body(rng)
        for limbs in (params.arms, params.legs):
            for side in limbs:
                for name, value in side.items():
                    lo, hi = JOINT_LIMITS[name]
                    assert lo <= value <= hi, (name, value)
        body = build_body(params)
        j = body.joints
        for side in (0, 1):
            elbows.append(limb_angle(j, 5 + side, 7 + side, 9 + side))
            knees.append(limb_angle(j, 11 + side, 13 + side, 15 + side))
            for (a, b), segment in (((5, 7), "upper_arm"), ((7, 9), "forearm"), ((11, 13), "thigh"),
                                    ((13, 15), "shin")):
                length = np.linalg.norm(j[a + side] - j[b + side])
                assert abs(length / SEGMENTS[segment] - 1) <= SEGMENT_JITTER + 1e-9
        # Symmetric proportions: both shoulders equally far from the neck base.
        mid = (j[5] + j[6]) / 2
        assert abs(np.linalg.norm(j[5] - mid) - np.linalg.norm(j[6] - mid)) < 1e-9
    assert max(elbows) <= elbow_hi + 1e-6 and max(knees) <= knee_hi + 1e-6
    assert max(elbows) > 90 and max(knees) > 90  # the limits are used, not just straight limbs


def test_people_face_the_camera_left_side_on_image_right():
    """Facing the camera: the person's left shoulder and hip lie right of the right ones in most poses."""
    left_on_right = [float(p[5, 0] > p[6, 0]) for s in SCENES for p in s.pose.keypoints]
    assert np.mean(left_on_right) > 0.9


def _body_mask(scene) -> np.ndarray:
    """Pixels the mannequins change: drawn over a black and a white canvas."""
    h, w = scene.image.shape[:2]
    masks = []
    for value in (0, 255):
        canvas = np.full((h, w, 3), value, np.uint8)
        draw_people(canvas, scene.people, scene.outfits)
        masks.append((canvas != value).any(-1))
    return masks[0] | masks[1]


def _skeleton_mask(pose: PoseSet, thickness: int) -> np.ndarray:
    mask = np.zeros((pose.canvas_height, pose.canvas_width), np.uint8)
    for person in pose.keypoints:
        for a, b in SKELETON_LIMBS + ((5, 6), (11, 12)):
            cv2.line(mask, tuple(int(round(v)) for v in person[a, :2]), tuple(int(round(v)) for v in person[b, :2]),
                     1, thickness)
    return mask.astype(bool)


def test_mannequin_pixels_cover_the_skeleton():
    ious, chance, covered = [], [], []
    for scene in SCENES:
        h, w = scene.image.shape[:2]
        body = _body_mask(scene)
        thin = _skeleton_mask(scene.pose, 1)
        covered.append((body & thin).sum() / thin.sum())
        limbs = _skeleton_mask(scene.pose, 3)  # the skeleton's limbs, dilated
        ious.append((body & limbs).sum() / (body | limbs).sum())
        shifted = np.roll(limbs, (h // 2, w // 2), axis=(0, 1))  # the same skeleton elsewhere
        chance.append((body & shifted).sum() / (body | shifted).sum())
    assert min(covered) > 0.95  # the body is where the skeleton is ... (measured 0.97)
    assert np.mean(ious) > 0.6 and np.mean(ious) > 10 * np.mean(chance)  # ... and not much more (0.74 vs 0.025)


def test_captions_name_the_colours_drawn():
    for scene in SCENES:
        text = scene.caption
        for outfit in scene.outfits:
            assert f"{outfit.shirt_name} shirt" in text and f"{outfit.trousers_name} trousers" in text
        for name in scene.background.colours:
            assert name in text
        assert scene.background.kind in text
        used = {o.shirt_name for o in scene.outfits} | {o.trousers_name for o in scene.outfits}
        assert len(used) == 2 * len(scene.outfits) and not used & set(scene.background.colours)



def test_shirts_have_the_named_colour():
    """The torso centre's pixel is closest to the shirt's named colour (shading aside: among the 3 nearest)."""
    hits = []
    for scene in SCENES:
        for person, outfit in zip(scene.people, scene.outfits):
            x, y = np.round(person.points[[5, 6, 11, 12]].mean(0)).astype(int)
            pixel = scene.image[y, x].astype(int)
            nearest = sorted(COLOURS, key=lambda n: np.abs(pixel - np.array(COLOURS[n])).sum())
            hits.append(outfit.shirt_name in nearest[:3])
    assert np.mean(hits) > 0.8  # an arm in front of the torso covers some


def test_caption_wording():
    red_blue = Outfit("red", "blue", (1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1))
    orange_grey = Outfit("orange", "grey", (1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1))
    assert caption([red_blue], Background("striped", ("green", "white"))) == \
        "a person in a red shirt and blue trousers, on a green and white striped background"
    assert caption([red_blue, orange_grey], Background("plain", ("yellow",))) == \
        "two people, one in a red shirt and blue trousers and one in an orange shirt and grey trousers, " \
        "on a plain yellow background"
