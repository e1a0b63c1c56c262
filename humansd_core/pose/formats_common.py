"""Checks shared by the pose readers: numbers, canvas sizes, units and extents.

Every failure raises :class:`PoseFormatError` naming the source, the field and the
value at fault.

Units rule (normalised ``[0, 1]`` or pixels), decided **per person array**:
the array is normalised when every *present* point (confidence > 0) has both
coordinates within ``[-1, 2]``, i.e. inside the canvas or at most one canvas size
beyond it, in canvas units. Otherwise it is in pixels. A pixel skeleton that fits
in a 3 x 3 pixel box is not a drawable person, so the rule only misreads such
degenerate poses, while normalised poses whose limbs leave the canvas (x = -0.2 or
1.3) are still recognised (a plain "all <= 1" test gets those wrong). Normalised
arrays are scaled by the canvas size and so need one (from the data or the
caller); an array with no present point is all zeros either way.

Missing points (confidence 0) carry no position: readers store them as ``[0, 0, 0]``
whatever coordinates the file gives them (:func:`clear_missing`).

Extent rule: after conversion, every coordinate must lie within
``OFF_CANVAS_LIMIT`` canvas sizes of the canvas (``-10 W <= x <= 11 W``, same for
y with H). Points just off the canvas are ordinary poses; beyond that the value is
garbage and is reported.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..errors import PoseFormatError

NORMALISED_RANGE = (-1.0, 2.0)
OFF_CANVAS_LIMIT = 10.0


def _fail(source: str, field: str, message: str) -> PoseFormatError:
    return PoseFormatError(f"{source}: {field}: {message}")


def to_float(value: object, source: str, field: str) -> float:
    """One finite number (bools and strings refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _fail(source, field, f"expected a number, got {type(value).__name__} {value!r:.60}")
    try:
        number = float(value)
    except OverflowError:
        raise _fail(source, field, f"number too large: {value!r:.60}") from None
    if not math.isfinite(number):
        raise _fail(source, field, f"expected a finite number, got {number!r}")
    return number


def number_array(values: object, source: str, field: str, lengths: tuple[int, ...]) -> np.ndarray:
    """A flat list of finite numbers whose length is one of ``lengths``: float64 ``[n]``."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise _fail(source, field, f"expected a list of numbers, got {type(values).__name__}")
    if len(values) not in lengths:
        wanted = " or ".join(str(n) for n in lengths)
        raise _fail(source, field, f"expected {wanted} numbers, got {len(values)}")
    return np.array([to_float(v, source, f"{field}[{i}]") for i, v in enumerate(values)], np.float64)


def check_confidences(xyc: np.ndarray, source: str, field: str) -> None:
    """Confidences (column 2 of ``[K, 3]``) must lie in ``[0, 1]``."""
    bad = np.flatnonzero((xyc[:, 2] < 0.0) | (xyc[:, 2] > 1.0))
    if bad.size:
        k = int(bad[0])
        raise _fail(source, f"{field} point {k}", f"confidence {float(xyc[k, 2])!r} outside [0, 1]")


def clear_missing(xyc: np.ndarray) -> np.ndarray:
    """``[K, 3]`` with every confidence-0 point set to ``[0, 0, 0]`` (in place, returned)."""
    xyc[xyc[:, 2] == 0] = 0.0
    return xyc


def check_canvas_arg(canvas: object, source: str) -> tuple[int, int] | None:
    """Validate a caller's fallback ``(width, height)``."""
    if canvas is None:
        return None
    ok = isinstance(canvas, (tuple, list)) and len(canvas) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 < v <= 1e6 for v in canvas)
    if not ok:
        raise _fail(source, "canvas", f"expected (width, height) in whole pixels > 0, got {canvas!r:.60}")
    return int(canvas[0]), int(canvas[1])  # type: ignore[index]


def read_canvas(
    frame: Mapping[str, object], source: str, field: str = "", keys: tuple[str, str] = ("canvas_width", "canvas_height")
) -> tuple[int, int] | None:
    """``(width, height)`` from a dict's two ``keys``, or None when neither is given."""
    prefix = f"{field}." if field else ""
    raw = [frame.get(k) for k in keys]
    if raw[0] is None and raw[1] is None:
        return None
    size = []
    for key, value in zip(keys, raw):
        number = to_float(value, source, prefix + key) if value is not None else None
        if number is None or number <= 0 or number != int(number) or number > 1e6:
            raise _fail(source, prefix + key, f"expected a positive whole number of pixels, got {value!r:.60}")
        size.append(int(number))
    return size[0], size[1]


def looks_normalised(xyc: np.ndarray) -> bool:
    """The units rule of this module for one person ``[K, 3]``."""
    present = xyc[xyc[:, 2] > 0, :2]
    if present.size == 0:
        return False
    low, high = NORMALISED_RANGE
    return bool(((present >= low) & (present <= high)).all())


def to_pixels(xyc: np.ndarray, canvas: tuple[int, int] | None, source: str, field: str) -> np.ndarray:
    """Scale a normalised person ``[K, 3]`` to pixels (copy); pixel arrays pass through."""
    if not looks_normalised(xyc):
        return xyc
    if canvas is None:
        raise _fail(source, field, "coordinates look normalised (all within [-1, 2]) but no canvas size is "
                    "given; add canvas_width/canvas_height or pass a canvas size")
    out = xyc.copy()
    out[:, 0] *= canvas[0]
    out[:, 1] *= canvas[1]
    return out


def infer_canvas(people: list[np.ndarray], source: str) -> tuple[int, int]:
    """Smallest canvas holding every present pixel point, for inputs without a size."""
    present = [p[p[:, 2] > 0, :2] for p in people]
    points = np.concatenate(present) if present else np.zeros((0, 2))
    if points.size == 0:
        raise _fail(source, "canvas", "no canvas size in the data and no keypoint to infer it from; "
                    "pass a canvas size")
    width, height = (max(1, int(math.floor(v)) + 1) for v in points.max(axis=0))
    return width, height


def check_extent(xyc: np.ndarray, canvas: tuple[int, int], source: str, field: str) -> None:
    """The extent rule of this module for one pixel person ``[K, 3]``."""
    size = np.array(canvas, np.float64)
    low, high = -OFF_CANVAS_LIMIT * size, (OFF_CANVAS_LIMIT + 1.0) * size
    bad = np.argwhere((xyc[:, :2] < low) | (xyc[:, :2] > high))
    if bad.size:
        k, axis = (int(v) for v in bad[0])
        raise _fail(source, f"{field} point {k}", f"{'xy'[axis]} = {xyc[k, axis]:g} px is absurdly far from the "
                    f"{canvas[0]}x{canvas[1]} canvas (limit: {OFF_CANVAS_LIMIT:g} canvas sizes beyond it)")
