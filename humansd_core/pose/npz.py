"""HumanSD / MMPose ``.npz`` pose files, read without trusting their pickles.

HumanSD stores one image's detections as ``np.savez(path, results)``: member
``arr_0.npy`` is an object array (a pickle) of dicts ``{"keypoints": [17, 3]
(x, y, score) pixels, "score": person score, "area": box area}`` (MMPose 1.x
style ``keypoints [17, 2]`` + ``keypoint_scores [17]`` is accepted too). A plain
numeric ``[P, 17, 3]`` array also works. The files carry no canvas size: it comes
from the caller, else the smallest canvas holding the points.

Object arrays are unpickled by :class:`~humansd_core.restricted_pickle.RestrictedUnpickler`
with the policy ``"refuse"``: it admits only the numpy names an array pickle needs
(array and scalar reconstruction, dtypes); anything else (``os.system``,
``builtins.eval``, ...) stops the load with :class:`PoseFormatError` before it can run.
"""
from __future__ import annotations

import codecs
import importlib
import io
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import PoseFormatError
from ..restricted_pickle import RestrictedUnpickler
from .formats_common import check_canvas_arg, check_confidences, check_extent, clear_missing, infer_canvas, to_float
from .keypoints import PoseSet

MAX_MEMBER_BYTES = 256 * 1024 * 1024
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes; latin-1 only."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _numpy_global(module: str, name: str) -> object | None:
    """The numpy global an array pickle names, if it is one of :data:`_ALLOWED_GLOBALS`; else None."""
    if (module, name) == ("_codecs", "encode"):
        return _latin1_encode
    if (module, name) not in _ALLOWED_GLOBALS:
        return None
    real_module = module.replace("numpy.core.", "numpy._core.") if hasattr(np, "_core") else module
    return getattr(importlib.import_module(real_module), name)


def _read_npy(data: bytes, source: str) -> object:
    """One ``.npy`` member: a numeric array, or the restricted-unpickled object array."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(stream)
    except (ValueError, TypeError, SyntaxError, OverflowError) as exc:
        raise PoseFormatError(f"{source}: not a valid .npy member ({exc})") from None
    if dtype.hasobject:
        try:
            return RestrictedUnpickler(stream, _numpy_global, unknown="refuse").load()
        except Exception as exc:  # noqa: BLE001 - any failure of an untrusted pickle is a format error
            raise PoseFormatError(f"{source}: unsafe or corrupt pickled content: {exc}") from None
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count * dtype.itemsize > len(data):
        raise PoseFormatError(f"{source}: array of shape {list(shape)} is larger than the file")
    try:
        return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except (ValueError, TypeError, OSError) as exc:
        raise PoseFormatError(f"{source}: unreadable array ({exc})") from None


def _member(path: Path) -> tuple[bytes, str]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".npy")]
            name = "arr_0.npy" if "arr_0.npy" in names else (names[0] if len(names) == 1 else None)
            if name is None:
                raise PoseFormatError(f"{path}: expected one array (arr_0), found members {archive.namelist()[:10]}")
            info = archive.getinfo(name)
            if info.file_size > MAX_MEMBER_BYTES:
                raise PoseFormatError(f"{path}: member {name} is too large ({info.file_size} bytes)")
            return archive.read(name), f"{path}:{name}"
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise PoseFormatError(f"{path}: not a readable .npz archive ({exc})") from None


def _person(entry: object, source: str, field: str) -> tuple[np.ndarray, float]:
    """One detection dict -> ``([17, 3], score)``."""
    if not isinstance(entry, Mapping):
        raise PoseFormatError(f"{source}: {field}: expected a dict with 'keypoints', got {type(entry).__name__}")
    kp = entry.get("keypoints")
    if not isinstance(kp, np.ndarray) or kp.dtype.kind not in "fiu" or kp.shape not in ((17, 3), (17, 2)):
        got = f"{kp.dtype} {list(kp.shape)}" if isinstance(kp, np.ndarray) else type(kp).__name__
        raise PoseFormatError(f"{source}: {field}.keypoints: expected a numeric [17, 3] array, got {got}")
    xyc = np.zeros((17, 3), np.float64)
    xyc[:, : kp.shape[1]] = kp
    if kp.shape[1] == 2:
        scores = entry.get("keypoint_scores")
        if not isinstance(scores, np.ndarray) or scores.shape != (17,) or scores.dtype.kind not in "fiu":
            raise PoseFormatError(f"{source}: {field}.keypoint_scores: expected 17 numbers with [17, 2] keypoints")
        xyc[:, 2] = scores
    if not np.isfinite(xyc).all():
        raise PoseFormatError(f"{source}: {field}.keypoints: non-finite value in {xyc.tolist()}")
    check_confidences(xyc, source, f"{field}.keypoints")
    clear_missing(xyc)
    score = 1.0 if entry.get("score") is None else to_float(entry["score"], source, f"{field}.score")
    if not 0.0 <= score <= 1.0:
        raise PoseFormatError(f"{source}: {field}.score: {score!r} outside [0, 1]")
    return xyc, score


def load_npz(path: str | Path, canvas: tuple[int, int] | None = None) -> list[PoseSet]:
    """A HumanSD/MMPose ``.npz`` -> ``[PoseSet]`` (one frame). ``canvas`` = ``(W, H)``."""
    canvas = check_canvas_arg(canvas, str(path))
    data, source = _member(Path(path))
    content = _read_npy(data, source)
    if isinstance(content, np.ndarray) and content.dtype.kind in "fiu":
        if content.ndim != 3 or content.shape[1:] != (17, 3):
            raise PoseFormatError(f"{source}: expected a [people, 17, 3] array, got shape {list(content.shape)}")
        if not np.isfinite(content).all():
            raise PoseFormatError(f"{source}: non-finite keypoint value")
        people = [(f"[{i}]", p.astype(np.float64), 1.0) for i, p in enumerate(content)]
        for field, xyc, _ in people:
            check_confidences(xyc, source, field)
            clear_missing(xyc)
    elif isinstance(content, (list, tuple)) or (isinstance(content, np.ndarray) and content.dtype == object
                                                 and content.ndim == 1):
        people = [(f"[{i}]", *_person(e, source, f"[{i}]")) for i, e in enumerate(content)]
    else:
        kind = f"{content.dtype} array {list(content.shape)}" if isinstance(content, np.ndarray) else type(content).__name__
        raise PoseFormatError(f"{source}: unknown npz content ({kind}); expected a list of detection dicts")
    size = canvas or infer_canvas([p for _, p, _ in people], source)
    for field, xyc, _ in people:
        check_extent(xyc, size, source, field)
    keypoints = np.stack([p for _, p, _ in people]) if people else np.zeros((0, 17, 3))
    return [PoseSet(keypoints, size[0], size[1], np.array([s for _, _, s in people]))]
