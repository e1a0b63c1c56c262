"""Draw HumanSD skeleton images: the pose condition the model sees.

Pixel-exact to the reference (DESIGN.md §1 "Skeleton image"): 16 COCO-17 limbs in a
fixed order, colour ``i`` from a 16-hue HLS palette, each limb whose two ends have
confidence ``> threshold`` drawn as an OpenCV line of ``thickness`` (default line
type) followed by filled circles of radius ``thickness // 2`` at both ends; people
in order, later strokes over earlier ones; coordinates truncated with ``int()``.
"""
from __future__ import annotations

import colorsys
import logging
from collections.abc import Sequence

import cv2
import numpy as np

from .. import defaults
from ..errors import HumanSDError
from .keypoints import PoseSet

logger = logging.getLogger(__name__)

# (a, b) joint indices of the 16 limbs; limb i is drawn in palette colour i.
SKELETON_LIMBS: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (5, 11), (6, 12), (11, 13), (12, 14), (13, 15), (14, 16),
)
DEFAULT_THICKNESS = defaults.LINE_THICKNESS
DEFAULT_THRESHOLD = defaults.KEYPOINT_THRESHOLD
MAX_THICKNESS = 1024


def _build_palette(count: int = len(SKELETON_LIMBS)) -> np.ndarray:
    """HLS palette: hue ``(i/count + 0.01) mod 1``, lightness 0.6, saturation 0.65."""
    rows = [colorsys.hls_to_rgb((i / count + 0.01) % 1.0, 0.6, 0.65) for i in range(count)]
    return np.array([[int(255 * c) for c in row] for row in rows], dtype=np.uint8)


_PALETTE = _build_palette()
_PALETTE.setflags(write=False)
_COLOURS: tuple[tuple[int, int, int], ...] = tuple(tuple(int(c) for c in row) for row in _PALETTE)  # type: ignore[misc]
_LIMB_A = np.array([a for a, _ in SKELETON_LIMBS])
_LIMB_B = np.array([b for _, b in SKELETON_LIMBS])


def skeleton_palette() -> np.ndarray:
    """The limb colours, RGB uint8 ``[16, 3]`` (read-only, computed once at import)."""
    return _PALETTE


def scaled_thickness(width: int, height: int, base: int = DEFAULT_THICKNESS, base_size: int = 512) -> int:
    """Line thickness scaled with the shorter image side: ``base`` at ``base_size`` px.

    The model was trained at 512 px with thickness 10; ``scaled_thickness(1024, 768)``
    is 15. Rounded half up, at least 1.
    """
    if min(width, height, base, base_size) <= 0:
        raise HumanSDError(f"scaled_thickness: sizes must be positive, got {width}x{height}, base {base}/{base_size}")
    return max(1, int(base * min(width, height) / base_size + 0.5))


def _check_options(threshold: float, thickness: int) -> None:
    if isinstance(thickness, bool) or not isinstance(thickness, (int, np.integer)) or not 1 <= thickness <= MAX_THICKNESS:
        raise HumanSDError(f"thickness: expected a whole number in [1, {MAX_THICKNESS}], got {thickness!r}")
    if not np.isfinite(threshold):
        raise HumanSDError(f"threshold: expected a finite number, got {threshold!r}")


def _check_size(width: object, height: object) -> tuple[int, int]:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise HumanSDError(f"{name}: expected a positive whole number of pixels, got {value!r}")
    return int(width), int(height)  # type: ignore[call-overload]


def render_skeleton(
    pose: PoseSet,
    width: int | None = None,
    height: int | None = None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    thickness: int = DEFAULT_THICKNESS,
    canvas: np.ndarray | None = None,
) -> np.ndarray:
    """Draw ``pose`` and return an RGB uint8 image ``[H, W, 3]``.

    Args:
        pose: people to draw; keypoint coordinates are used as-is (pixels), so a
            pose on another canvas size should go through
            :func:`~humansd_core.pose.transforms.place_on_canvas` first.
        width, height: image size; default the pose's canvas size.
        threshold: a limb is drawn when both ends have confidence ``> threshold``.
        thickness: line thickness in pixels (10 = the reference at 512 px); the
            end circles have radius ``thickness // 2``.
        canvas: optional RGB uint8 ``[H, W, 3]`` image to draw over (copied, never
            modified); black when omitted.
    """
    _check_options(threshold, thickness)
    w, h = _check_size(pose.canvas_width if width is None else width, pose.canvas_height if height is None else height)
    if canvas is None:
        image = np.zeros((h, w, 3), np.uint8)
    else:
        if canvas.dtype != np.uint8 or canvas.shape != (h, w, 3):
            raise HumanSDError(f"canvas: expected uint8 [{h}, {w}, 3], got {canvas.dtype} {list(canvas.shape)}")
        image = np.ascontiguousarray(canvas).copy()
    if pose.num_people == 0:
        logger.warning("render_skeleton: the pose has no people; the skeleton image is empty")
        return image
    _draw_people(image, pose.keypoints, threshold, thickness)
    return image


def _draw_people(image: np.ndarray, keypoints: np.ndarray, threshold: float, thickness: int) -> None:
    """Draw ``keypoints`` ``[P, 17, 3]`` onto ``image`` in place."""
    radius = thickness // 2
    points = np.trunc(keypoints[..., :2]).astype(np.int64).tolist()  # int() truncation, as Python ints
    visible = keypoints[..., 2] > threshold
    drawn = visible[:, _LIMB_A] & visible[:, _LIMB_B]  # [P, 16]
    for person, limb in zip(*np.nonzero(drawn)):  # row-major: people in order, limbs in order
        a, b = SKELETON_LIMBS[limb]
        colour = _COLOURS[limb]
        pa, pb = points[person][a], points[person][b]
        cv2.line(image, pa, pb, colour, thickness)
        cv2.circle(image, pa, radius, colour, -1)
        cv2.circle(image, pb, radius, colour, -1)


def render_batch(
    poses: Sequence[PoseSet],
    width: int | None = None,
    height: int | None = None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    thickness: int = DEFAULT_THICKNESS,
) -> np.ndarray:
    """Draw several frames at one size: RGB uint8 ``[N, H, W, 3]``.

    ``width``/``height`` default to the frames' common canvas size; frames on
    different canvases need an explicit size (place them on it first).
    """
    if width is None or height is None:
        sizes = {p.canvas_size for p in poses}
        if len(sizes) != 1:
            raise HumanSDError(
                f"render_batch: give width and height (frames have canvas sizes {sorted(sizes)})"
            )
        (cw, ch), = sizes
        width = cw if width is None else width
        height = ch if height is None else height
    _check_options(threshold, thickness)
    w, h = _check_size(width, height)
    out = np.zeros((len(poses), h, w, 3), np.uint8)
    for i, pose in enumerate(poses):
        if pose.num_people == 0:
            logger.warning("render_batch: frame %d has no people; its skeleton image is empty", i)
            continue
        _draw_people(out[i], pose.keypoints, threshold, thickness)
    return out
