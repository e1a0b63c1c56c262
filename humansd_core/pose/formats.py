"""Read and write poses in the formats of the ecosystem (DESIGN.md §3a).

Readers (auto-detected, one :class:`PoseSet` per frame, COCO-17 pixels):

- ComfyUI ``POSE_KEYPOINT`` (a list of frame dicts or one dict) and OpenPose JSON
  (``people[*].pose_keypoints_2d``: OpenPose-18, CMU BODY_25 or COCO-17 by length),
  see :mod:`.formats_openpose`; normalised vs pixel units are decided per person
  by the rule documented in :mod:`.formats_common`;
- COCO keypoint annotations (a dataset dict, a list, or one annotation with 51
  numbers), see :mod:`.formats_coco`;
- HumanSD / MMPose ``.npz`` through a restricted unpickler, see :mod:`.npz`.

``canvas=(width, height)`` is the fallback canvas for inputs that carry none (CMU
OpenPose files, COCO annotations without image records, npz files); without it the
smallest canvas holding the points is used. Every problem raises
:class:`PoseFormatError` naming the source, field and value.

Writers produce ``POSE_KEYPOINT`` frames / OpenPose JSON as other packs expect (see
:func:`.formats_openpose.frame_dict`).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import PoseFormatError
from ..fileio import atomic_write_text
from .formats_coco import read_annotations, read_dataset
from .formats_common import check_canvas_arg
from .formats_openpose import frame_dict, read_frame
from .keypoints import PoseSet
from .npz import load_npz

MAX_JSON_BYTES = 256 * 1024 * 1024
DEFAULT_WRITE_THRESHOLD = 0.05

Canvas = tuple[int, int]


def _kind(item: object) -> str:
    if isinstance(item, Mapping):
        if "people" in item:
            return "frame"
        if "annotations" in item:
            return "dataset"
        if "keypoints" in item:
            return "annotation"
    return "unknown"


def parse_pose_data(data: object, source: str = "<input>", *, canvas: Canvas | None = None) -> list[PoseSet]:
    """Parse decoded pose data (dicts/lists as from ``json.loads``) into frames.

    Accepts a ``POSE_KEYPOINT`` list or frame dict, an OpenPose JSON dict, a COCO
    dataset dict, a list of COCO annotations or a single annotation. An empty list
    gives no frames; a frame without people gives an empty :class:`PoseSet`.
    """
    canvas = check_canvas_arg(canvas, source)
    kind = _kind(data)
    if kind == "frame":
        return [read_frame(data, source, canvas)]
    if kind == "dataset":
        return read_dataset(data, source, canvas)  # type: ignore[arg-type]
    if kind == "annotation":
        return read_annotations([data], source, canvas, field="annotation")
    if isinstance(data, (list, tuple)):
        kinds = [_kind(item) for item in data]
        if all(k == "frame" for k in kinds):
            return [read_frame(item, f"{source} frame {i}", canvas) for i, item in enumerate(data)]
        if all(k == "annotation" for k in kinds):
            return read_annotations(data, source, canvas)
        first = next(i for i, k in enumerate(kinds) if k != kinds[0] or k not in ("frame", "annotation"))
        raise PoseFormatError(
            f"{source}: item {first}: expected every item to be a frame dict with 'people' or every item a COCO "
            f"annotation with 'keypoints'; got {_describe(data[first])}"
        )
    raise PoseFormatError(
        f"{source}: unrecognised pose data: expected a frame ('people'), a COCO dataset ('annotations'), "
        f"an annotation ('keypoints') or a list of them; got {_describe(data)}"
    )


def _describe(value: object) -> str:
    if isinstance(value, Mapping):
        return f"a dict with keys {[str(k)[:40] for k in list(value)[:8]]}"
    return f"{type(value).__name__} {value!r:.60}"


def decode_pose_json(text: str, source: str = "<text>") -> object:
    """``json.loads`` with errors as :class:`PoseFormatError` naming ``source``, line and column."""
    if not isinstance(text, str):
        raise PoseFormatError(f"{source}: expected JSON text, got {type(text).__name__}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PoseFormatError(f"{source}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:  # e.g. integers too long, nesting too deep
        raise PoseFormatError(f"{source}: unreadable JSON: {exc}") from None


def parse_pose_text(text: str, source: str = "<text>", *, canvas: Canvas | None = None) -> list[PoseSet]:
    """Parse JSON text (any format of :func:`parse_pose_data`)."""
    return parse_pose_data(decode_pose_json(text, source), source, canvas=canvas)


def load_pose_file(path: str | os.PathLike[str], *, canvas: Canvas | None = None) -> list[PoseSet]:
    """Read a ``.json`` pose file (any format above) or a HumanSD/MMPose ``.npz``."""
    path = Path(path)
    if not path.is_file():
        raise PoseFormatError(f"{path}: no such pose file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return load_npz(path, canvas)
    if suffix != ".json":
        raise PoseFormatError(f"{path}: unsupported pose file type {suffix or '(none)'!r}; expected .json or .npz")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise PoseFormatError(f"{path}: file too large for a pose file ({path.stat().st_size} bytes)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise PoseFormatError(f"{path}: cannot read as UTF-8 text ({exc})") from None
    return parse_pose_text(text, str(path), canvas=canvas)


def to_openpose_json(pose: PoseSet, *, threshold: float = DEFAULT_WRITE_THRESHOLD) -> dict:
    """One frame as an OpenPose JSON dict (the ``POSE_KEYPOINT`` frame layout).

    18 body points in pixels, confidence 1.0 for points with confidence
    ``> threshold`` and ``[0, 0, 0]`` otherwise, canvas size, face/hands None.
    """
    return frame_dict(pose, threshold)


def to_pose_keypoint(poses: Sequence[PoseSet], *, threshold: float = DEFAULT_WRITE_THRESHOLD) -> list[dict]:
    """Frames as a ComfyUI ``POSE_KEYPOINT`` value: one :func:`to_openpose_json` dict per frame."""
    return [frame_dict(pose, threshold) for pose in poses]


def write_openpose_json(
    path: str | os.PathLike[str],
    poses: PoseSet | Sequence[PoseSet],
    *,
    threshold: float = DEFAULT_WRITE_THRESHOLD,
) -> None:
    """Write atomically: one :class:`PoseSet` as a frame dict, a sequence as a list of frames."""
    if isinstance(poses, PoseSet):
        payload: object = to_openpose_json(poses, threshold=threshold)
    else:
        payload = to_pose_keypoint(poses, threshold=threshold)
    atomic_write_text(path, json.dumps(payload, indent=1) + "\n")
