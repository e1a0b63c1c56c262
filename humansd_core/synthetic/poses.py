"""Random but plausible people: a 3-D kinematic body with joint limits, projected to pixels.

Body frame: ``x`` = the person's left, ``y`` = up, ``z`` = forward (towards the camera
when the person faces it); lengths are in body heights (ankle to crown ≈ 1). A
person is built from :class:`BodyParams` (segment lengths and joint angles, each
drawn inside :data:`JOINT_LIMITS`) by forward kinematics, turned by a global yaw /
pitch / roll, and projected with a mild pinhole perspective (image ``x`` right,
``y`` down) at a scale and position that keep the whole body inside the canvas.

People face the camera within ±:data:`MAX_YAW_DEG` degrees, so the person's left
side shows on the image's right and the face (eyes, nose) is visible: a mannequin
seen from behind would carry no cue to tell left from right.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..pose.keypoints import NUM_KEYPOINTS, PoseSet

# Joint limits in degrees: (low, high), the sampler never leaves them.
JOINT_LIMITS: dict[str, tuple[float, float]] = {
    "shoulder_abduction": (-15.0, 175.0),  # arm raised sideways in the frontal plane
    "shoulder_flexion": (-45.0, 170.0),  # arm raised forwards
    "humeral_rotation": (-60.0, 90.0),  # turns the plane the elbow bends in
    "elbow": (0.0, 150.0),  # flexion: angle between upper-arm and forearm directions
    "hip_abduction": (-10.0, 45.0),
    "hip_flexion": (-25.0, 115.0),
    "knee": (0.0, 140.0),
    "spine_lean": (-20.0, 40.0),  # forward (+) / backward (-)
    "spine_side": (-20.0, 20.0),
    "spine_twist": (-30.0, 30.0),
    "head_yaw": (-50.0, 50.0),
    "head_pitch": (-25.0, 25.0),
    "head_roll": (-20.0, 20.0),
}
MAX_YAW_DEG = 60.0
MAX_ROLL_DEG = 25.0

# Mean segment lengths in body heights, jittered per person by ±SEGMENT_JITTER.
SEGMENTS: dict[str, float] = {
    "hip_half_width": 0.095, "shoulder_half_width": 0.125, "spine": 0.29, "neck": 0.11,
    "upper_arm": 0.175, "forearm": 0.15, "thigh": 0.245, "shin": 0.245,
}
SEGMENT_JITTER = 0.08

# Face points in the head frame (origin between the ears), body heights.
_FACE = {
    "nose": (0.0, -0.015, 0.085), "eye": (0.032, 0.02, 0.065), "ear": (0.072, 0.005, 0.0),
}
_MIRROR = np.diag([-1.0, 1.0, 1.0])
_DOWN = np.array([0.0, -1.0, 0.0])
_FORWARD = np.array([0.0, 0.0, 1.0])


def _rx(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _about(axis: np.ndarray, vector: np.ndarray, deg: float) -> np.ndarray:
    """``vector`` rotated by ``deg`` about the unit ``axis`` (Rodrigues)."""
    t = np.radians(deg)
    return vector * np.cos(t) + np.cross(axis, vector) * np.sin(t) + axis * axis.dot(vector) * (1 - np.cos(t))


@dataclass(frozen=True)
class BodyParams:
    """One person's body: segment lengths (body heights), joint angles (degrees).

    ``arms``/``legs`` hold ``(left, right)`` dicts keyed like :data:`JOINT_LIMITS`;
    ``torso`` and ``head`` hold the spine and head angles; ``view`` the global
    ``yaw``/``pitch``/``roll``.
    """

    segments: dict[str, float]
    arms: tuple[dict[str, float], dict[str, float]]
    legs: tuple[dict[str, float], dict[str, float]]
    torso: dict[str, float]
    head: dict[str, float]
    view: dict[str, float]


def _uniform(rng: np.random.Generator, name: str, low: float | None = None, high: float | None = None) -> float:
    lo, hi = JOINT_LIMITS[name]
    return float(rng.uniform(max(lo, low if low is not None else lo), min(hi, high if high is not None else hi)))


def _draw(rng: np.random.Generator, **ranges: tuple[float | None, float | None]) -> dict[str, float]:
    """One uniform draw per joint, in argument order, within ``(low, high)`` ∩ its limits (None: the limit)."""
    return {name: _uniform(rng, name, lo, hi) for name, (lo, hi) in ranges.items()}


_FREE = (None, None)


def _sample_arm(rng: np.random.Generator) -> dict[str, float]:
    if rng.random() < 0.4:  # relaxed
        return _draw(rng, shoulder_abduction=(0, 35), shoulder_flexion=(-20, 35), humeral_rotation=(-20, 40),
                     elbow=(0, 50))
    return _draw(rng, shoulder_abduction=_FREE, shoulder_flexion=_FREE, humeral_rotation=_FREE, elbow=_FREE)


def _sample_legs(rng: np.random.Generator) -> tuple[dict[str, float], dict[str, float]]:
    style = rng.choice(["stand", "walk", "sit", "free"], p=[0.4, 0.25, 0.15, 0.2])
    legs = []
    swing = float(rng.uniform(10, 35))
    left_front = bool(rng.random() < 0.5)
    for side in (0, 1):
        if style == "stand":
            leg = _draw(rng, hip_abduction=(0, 15), hip_flexion=(-5, 10), knee=(0, 15))
        elif style == "walk":  # the front leg swings forward, the back one back with a bent knee
            front = (side == 0) == left_front
            leg = {**_draw(rng, hip_abduction=(0, 8)), "hip_flexion": swing if front else -min(swing, 25.0),
                   **_draw(rng, knee=(0, 20) if front else (10, 45))}
        elif style == "sit":
            leg = _draw(rng, hip_abduction=(0, 25), hip_flexion=(60, None), knee=(60, 130))
        else:
            leg = _draw(rng, hip_abduction=_FREE, hip_flexion=_FREE, knee=_FREE)
        legs.append(leg)
    return legs[0], legs[1]


def sample_body(rng: np.random.Generator) -> BodyParams:
    """Draw one person's :class:`BodyParams` (every angle inside :data:`JOINT_LIMITS`)."""
    segments = {k: v * float(rng.uniform(1 - SEGMENT_JITTER, 1 + SEGMENT_JITTER)) for k, v in SEGMENTS.items()}
    torso = {"spine_lean": float(np.clip(rng.normal(0, 10), *JOINT_LIMITS["spine_lean"])),
             "spine_side": _uniform(rng, "spine_side", -12, 12), "spine_twist": _uniform(rng, "spine_twist", -20, 20)}
    head = {name: _uniform(rng, name) for name in ("head_yaw", "head_pitch", "head_roll")}
    view = {"yaw": float(rng.uniform(-MAX_YAW_DEG, MAX_YAW_DEG)), "pitch": float(rng.uniform(-10, 10)),
            "roll": float(np.clip(rng.normal(0, 8), -MAX_ROLL_DEG, MAX_ROLL_DEG))}
    return BodyParams(segments, (_sample_arm(rng), _sample_arm(rng)), _sample_legs(rng), torso, head, view)


@dataclass(frozen=True)
class Body3D:
    """Forward-kinematics result in the (globally rotated) body frame.

    Attributes:
        joints: ``[17, 3]`` COCO-17 joints.
        head_center: ``[3]`` point between the ears; ``head_up``/``head_forward``: unit ``[3]``.
        feet: ``[2, 3]`` toe points (left, right), for the shoes.
        segments: the segment lengths used.
    """

    joints: np.ndarray
    head_center: np.ndarray
    head_up: np.ndarray
    head_forward: np.ndarray
    feet: np.ndarray
    segments: dict[str, float]


def _limb(base: np.ndarray, frame: np.ndarray, mirror: bool, abduction: float, flexion: float, twist: float,
          bend: float, upper: float, lower: float, bend_forward: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joint positions of a two-segment limb: (middle, end, the lower segment's forward direction)."""
    local = _rz(abduction) @ _rx(-flexion)
    m = _MIRROR if mirror else np.eye(3)
    u = frame @ m @ local @ _DOWN
    f = frame @ m @ local @ _FORWARD
    f = _about(u, f, -twist if mirror else twist)
    c, s = np.cos(np.radians(bend)), np.sin(np.radians(bend))
    if not bend_forward:
        s = -s
    middle = base + upper * u
    end = middle + lower * (c * u + s * f)
    return middle, end, c * f - s * u  # (u, f) turned together by the bend


def build_body(params: BodyParams) -> Body3D:
    """Forward kinematics: :class:`BodyParams` → :class:`Body3D` (origin at the pelvis centre)."""
    s, v = params.segments, params.view
    world = _rz(v["roll"]) @ _ry(v["yaw"]) @ _rx(v["pitch"])
    pelvis = world
    t = params.torso
    chest = pelvis @ _ry(t["spine_twist"]) @ _rx(t["spine_lean"]) @ _rz(-t["spine_side"])
    joints = np.zeros((NUM_KEYPOINTS, 3))
    neck_base = chest @ np.array([0.0, s["spine"], 0.0])
    feet = np.zeros((2, 3))
    for side, mirror in ((0, False), (1, True)):  # COCO: left joints at odd/even indices below
        sign = -1.0 if mirror else 1.0
        shoulder = chest @ np.array([sign * s["shoulder_half_width"], s["spine"] - 0.01, 0.0])
        a = params.arms[side]
        elbow, wrist, _ = _limb(shoulder, chest, mirror, a["shoulder_abduction"], a["shoulder_flexion"],
                                a["humeral_rotation"], a["elbow"], s["upper_arm"], s["forearm"], True)
        hip = pelvis @ np.array([sign * s["hip_half_width"], 0.0, 0.0])
        g = params.legs[side]
        knee, ankle, foot_forward = _limb(hip, pelvis, mirror, g["hip_abduction"], g["hip_flexion"], 0.0,
                                          g["knee"], s["thigh"], s["shin"], False)
        joints[5 + side], joints[7 + side], joints[9 + side] = shoulder, elbow, wrist
        joints[11 + side], joints[13 + side], joints[15 + side] = hip, knee, ankle
        feet[side] = ankle + 0.07 * foot_forward  # the foot points forward, perpendicular to the shin
    h = params.head
    head = chest @ _ry(h["head_yaw"]) @ _rx(-h["head_pitch"]) @ _rz(h["head_roll"])
    center = neck_base + head @ np.array([0.0, s["neck"], 0.0])
    for idx, (name, mirror) in enumerate([("nose", False), ("eye", False), ("eye", True), ("ear", False),
                                          ("ear", True)]):
        offset = np.array(_FACE[name])
        joints[idx] = center + head @ ((_MIRROR @ offset) if mirror else offset)
    return Body3D(joints, center, head @ np.array([0.0, 1.0, 0.0]), head @ _FORWARD, feet, dict(s))


def limb_angle(joints: np.ndarray, a: int, b: int, c: int) -> float:
    """Flexion at ``b`` in degrees: the angle between directions ``a→b`` and ``b→c`` (0 = straight)."""
    u, w = joints[b] - joints[a], joints[c] - joints[b]
    cos = u.dot(w) / max(np.linalg.norm(u) * np.linalg.norm(w), 1e-12)
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


@dataclass(frozen=True)
class PlacedPerson:
    """A person on the canvas.

    Attributes:
        body: its :class:`Body3D`.
        points: ``[17, 2]`` joints in pixels; ``depth``: ``[17]`` towards-camera
            coordinate (body heights, larger = nearer) per joint.
        scale: pixels per body height at the pelvis; ``layer``: drawing order of
            the person (people with a lower layer are farther and drawn first).
        camera_distance: body heights from the pelvis to the pinhole; ``offset``:
            the pelvis's pixel position.
    """

    body: Body3D
    points: np.ndarray
    depth: np.ndarray
    scale: float
    layer: int

    camera_distance: float
    offset: tuple[float, float]

    def project(self, xyz: np.ndarray) -> np.ndarray:
        """Pixels ``[..., 2]`` of body-frame points ``[..., 3]`` (the person's own projection)."""
        return _project(xyz, self.camera_distance, self.scale, self.offset)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` around the joints, pixels."""
        return (*self.points.min(0), *self.points.max(0))  # type: ignore[return-value]


def _project(xyz: np.ndarray, cam: float, scale: float, offset: tuple[float, float]) -> np.ndarray:
    f = cam / (cam - xyz[..., 2])
    return np.stack([offset[0] + scale * xyz[..., 0] * f, offset[1] - scale * xyz[..., 1] * f], axis=-1)


# Body size (longer side of the joint box) as a fraction of the shorter canvas side, per people count.
SIZE_RANGE = {1: (0.5, 0.92), 2: (0.4, 0.78), 3: (0.34, 0.64)}
MAX_OVERLAP = 0.25  # intersection / smaller box area
BODY_MARGIN = 0.09  # body heights the head and limb radii reach past the joints


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / max(smaller, 1e-9)


def sample_people(rng: np.random.Generator, width: int, height: int, max_people: int = 3,
                  tries: int = 30) -> list[PlacedPerson]:
    """1..``max_people`` people (fewer when they cannot be placed without overlapping) inside the canvas.

    Each person's joint box plus a margin for the body's thickness lies inside the
    canvas; two people's boxes overlap by at most :data:`MAX_OVERLAP` of the smaller
    one. Returned in drawing order (farther = smaller first).
    """
    count = int(rng.integers(1, max_people + 1))
    lo, hi = SIZE_RANGE[min(count, 3)]
    placed: list[tuple[float, Body3D, float, tuple[float, float], float]] = []
    boxes: list[tuple[float, ...]] = []
    for _ in range(count):
        body = build_body(sample_body(rng))
        cam = float(rng.uniform(4.0, 12.0))
        unit = _project(body.joints, cam, 1.0, (0.0, 0.0))
        extent = max(np.ptp(unit[:, 0]), np.ptp(unit[:, 1]), 1e-3)
        size = float(rng.uniform(lo, hi)) * min(width, height)
        scale = size / (extent + 2 * BODY_MARGIN)
        margin = BODY_MARGIN * scale
        box_w, box_h = np.ptp(unit[:, 0]) * scale + 2 * margin, np.ptp(unit[:, 1]) * scale + 2 * margin
        for _ in range(tries):
            x0 = rng.uniform(0, max(width - box_w, 0.0))
            y0 = rng.uniform(0, max(height - box_h, 0.0))
            box = (x0, y0, x0 + box_w, y0 + box_h)
            if all(_overlap(box, other) <= MAX_OVERLAP for other in boxes):
                offset = (x0 + margin - unit[:, 0].min() * scale, y0 + margin - unit[:, 1].min() * scale)
                placed.append((scale, body, cam, offset, size))
                boxes.append(box)
                break
    placed.sort(key=lambda item: item[0])
    people = []
    for layer, (scale, body, cam, offset, _) in enumerate(placed):
        points = _project(body.joints, cam, scale, offset)
        people.append(PlacedPerson(body, points, body.joints[:, 2].copy(), scale, layer, cam, offset))
    return people


def to_pose_set(people: list[PlacedPerson], width: int, height: int) -> PoseSet:
    """The people's joints as a :class:`PoseSet` (every joint confidence 1.0, pixels)."""
    kp = np.zeros((len(people), NUM_KEYPOINTS, 3), np.float32)
    for i, person in enumerate(people):
        kp[i, :, :2] = person.points
        kp[i, :, 2] = 1.0
    return PoseSet(kp, width, height)
