"""Draw shaded mannequins: capsule limbs, a rounded torso, a head with hair and a face.

Each body part is drawn with OpenCV in three passes that fake a cylinder lit from
the upper left: a dark rim, the base colour, and a light stripe shifted towards the
light. Parts of one person are drawn far to near (by their mean depth), people in
:attr:`~.poses.PlacedPerson.layer` order, so nearer limbs and people cover farther
ones. Drawing happens on a canvas ``supersample`` times larger than the output,
which :func:`draw_people` callers downsample (area filter) for smooth edges.

Clothing: shirt = torso and upper arms; trousers = hips, thighs and shins; skin =
neck, head, forearms and hands; shoes at the feet.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from .appearance import Outfit
from .poses import PlacedPerson

SHIFT = 3  # OpenCV fixed-point bits: coordinates in 1/8 pixel
_ONE = 1 << SHIFT
_LIGHT = np.array([-0.45, -0.9]) / np.hypot(0.45, 0.9)  # towards the light, image coordinates

# Radii in body heights.
RADII = {"upper_arm": 0.042, "forearm": 0.033, "hand": 0.032, "thigh": 0.058, "shin": 0.045, "shoe": 0.03,
         "neck": 0.035, "torso": 0.045, "hips": 0.06}
HEAD_AXES = (0.075, 0.092)  # half width, half height (body heights)

Colour = tuple[int, int, int]


def _shade(colour: Colour, factor: float) -> Colour:
    """Darken (factor < 1) or blend towards white (factor > 1)."""
    c = np.array(colour, np.float64)
    c = c * factor if factor <= 1 else c + (255 - c) * (factor - 1)
    return tuple(int(v) for v in np.clip(c, 0, 255))  # type: ignore[return-value]


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * _ONE).astype(np.int32)


def _capsule(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float, colour: Colour) -> None:
    """A shaded capsule from ``a`` to ``b`` (canvas pixels) of ``radius`` pixels."""
    axis = b - a
    length = float(np.hypot(*axis))
    normal = np.array([-axis[1], axis[0]]) / length if length > 1e-6 else -_LIGHT
    if normal.dot(_LIGHT) < 0:
        normal = -normal
    for factor, r, shift in ((0.55, 1.0, 0.0), (0.88, 0.78, 0.05), (1.35, 0.36, 0.32)):
        offset = normal * shift * radius
        pa, pb = _fixed(a + offset), _fixed(b + offset)
        thickness = max(1, int(round(2 * r * radius)))
        cv2.line(canvas, tuple(pa.tolist()), tuple(pb.tolist()), _shade(colour, factor), thickness, cv2.LINE_8, SHIFT)


def _blob(canvas: np.ndarray, polygon: np.ndarray, radius: float, colour: Colour) -> None:
    """A shaded convex region: the hull of ``polygon`` [N,2] grown by ``radius`` pixels."""
    hull = cv2.convexHull(polygon.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    centre = hull.mean(0)
    size = float(np.ptp(hull, axis=0).max()) + 2 * radius
    for factor, grow, shrink, shift in ((0.55, 1.0, 1.0, 0.0), (0.88, 0.72, 0.97, 0.03), (1.3, 0.3, 0.5, 0.15)):
        pts = centre + (hull - centre) * shrink + _LIGHT * shift * size
        fixed = _fixed(pts)
        shade = _shade(colour, factor)
        cv2.fillConvexPoly(canvas, fixed, shade, cv2.LINE_8, SHIFT)
        thickness = max(1, int(round(2 * grow * radius)))
        cv2.polylines(canvas, [fixed], True, shade, thickness, cv2.LINE_8, SHIFT)


def _ellipse(canvas: np.ndarray, centre: np.ndarray, axes: tuple[float, float], angle: float, colour: Colour,
             shaded: bool = True) -> None:
    passes = ((0.55, 1.0, 0.0), (0.9, 0.85, 0.04), (1.3, 0.4, 0.3)) if shaded else ((1.0, 1.0, 0.0),)
    for factor, scale, shift in passes:
        c = centre + _LIGHT * shift * max(axes)
        ax = (max(1, int(round(axes[0] * scale * _ONE))), max(1, int(round(axes[1] * scale * _ONE))))
        cv2.ellipse(canvas, tuple(_fixed(c).tolist()), ax, angle, 0, 360, _shade(colour, factor), -1, cv2.LINE_8, SHIFT)


def _person_parts(person: PlacedPerson, outfit: Outfit, ss: float) -> list[tuple[float, Callable[[np.ndarray], None]]]:
    """``(depth key, draw function)`` for every part of one person, canvas scale ``ss``."""
    body = person.body
    pts = person.points * ss
    z = body.joints[:, 2]
    unit = person.scale * ss  # canvas pixels per body height
    parts: list[tuple[float, Callable[[np.ndarray], None]]] = []

    def capsule(i: int, j_or_point: int | np.ndarray, depth: float, key: str, colour: Colour, bias: float = 0.02):
        end = pts[j_or_point] if isinstance(j_or_point, int) else j_or_point
        parts.append((depth + bias, lambda c, a=pts[i], b=end: _capsule(c, a, b, RADII[key] * unit, colour)))

    torso_idx = [5, 6, 12, 11]
    torso_depth = float(z[torso_idx].mean())
    parts.append((torso_depth, lambda c: _blob(c, pts[torso_idx], RADII["torso"] * unit, outfit.shirt)))
    parts.append((torso_depth + 0.001, lambda c: _capsule(c, pts[11], pts[12], RADII["hips"] * unit, outfit.trousers)))
    for side in (0, 1):
        sh, el, wr, hp, kn, an = 5 + side, 7 + side, 9 + side, 11 + side, 13 + side, 15 + side
        capsule(sh, el, (z[sh] + z[el]) / 2, "upper_arm", outfit.shirt)
        capsule(el, wr, (z[el] + z[wr]) / 2, "forearm", outfit.skin, 0.021)
        forearm = pts[wr] - pts[el]
        hand = pts[wr] + forearm / max(np.hypot(*forearm), 1e-6) * 0.03 * unit
        capsule(wr, hand, z[wr], "hand", outfit.skin, 0.022)
        capsule(hp, kn, (z[hp] + z[kn]) / 2, "thigh", outfit.trousers, 0.01)
        capsule(kn, an, (z[kn] + z[an]) / 2, "shin", outfit.trousers, 0.011)
        foot = person.project(body.feet[side]) * ss
        capsule(an, foot, (z[an] + body.feet[side][2]) / 2, "shoe", outfit.shoes, 0.012)
    # Head: ears, hair, face, eyes, nose; drawn together at the head's depth.
    centre = person.project(body.head_center) * ss
    up = person.project(body.head_center + 0.05 * body.head_up) * ss - centre
    up_unit = up / max(np.hypot(*up), 1e-6)
    angle = float(np.degrees(np.arctan2(up_unit[0], -up_unit[1])))
    neck_base = (pts[5] + pts[6]) / 2
    parts.append((torso_depth - 0.02, lambda c: _capsule(c, neck_base, centre, RADII["neck"] * unit, outfit.skin)))
    head_z = float(body.head_center[2])

    def head(c: np.ndarray) -> None:
        for ear in (3, 4):
            if z[ear] < head_z - 0.02:
                continue
            _ellipse(c, pts[ear], (0.018 * unit, 0.028 * unit), angle, _shade(outfit.skin, 0.9), shaded=False)
        ax = (HEAD_AXES[0] * unit, HEAD_AXES[1] * unit)
        _ellipse(c, centre + up_unit * 0.012 * unit, (ax[0] * 1.04, ax[1]), angle, outfit.hair)
        _ellipse(c, centre - up_unit * 0.01 * unit, (ax[0] * 0.93, ax[1] * 0.88), angle, outfit.skin)
        eye_r = max(0.4 * ss, 0.011 * unit)
        for eye in (1, 2):
            if z[eye] > head_z:
                cv2.circle(c, tuple(_fixed(pts[eye]).tolist()), int(round(eye_r * _ONE)), (20, 20, 25), -1,
                           cv2.LINE_8, SHIFT)
        if z[0] > head_z:
            cv2.circle(c, tuple(_fixed(pts[0]).tolist()), int(round(eye_r * 0.9 * _ONE)), _shade(outfit.skin, 0.7),
                       -1, cv2.LINE_8, SHIFT)

    parts.append((head_z + 0.03, head))
    return parts


def draw_people(canvas: np.ndarray, people: Sequence[PlacedPerson], outfits: Sequence[Outfit],
                supersample: float = 1.0) -> None:
    """Draw ``people`` (pixel coordinates × ``supersample``) onto RGB uint8 ``canvas`` in place."""
    for person, outfit in sorted(zip(people, outfits), key=lambda item: item[0].layer):
        for _, draw in sorted(_person_parts(person, outfit, supersample), key=lambda item: item[0]):
            draw(canvas)
