"""The pose as the canvas editor keeps it, made from any text ``pose_json`` accepts.

The browser editor of the pack (``web/``) edits one layout only, the pack's
``POSE_KEYPOINT`` writer layout: a list of frame dicts ``{"canvas_width", "canvas_height",
"people": [{"pose_keypoints_2d": [54 numbers], ...}]}``, OpenPose-18 body points in
pixels of the frame's canvas. :func:`editor_pose_from_text` turns every format the
readers of :mod:`.formats` accept into that layout, so the editor never parses a pose
format itself; the readers decide what is valid and their errors reach the user as they
are. What it keeps, so a first edit loses as little as possible:

- every frame, in order, and each frame's other keys; a single frame dict stays a dict
  (``single``);
- every person, in order, with its other keys (face and hand arrays, ids, ...), also
  people the readers skip (no body array, no point present), which are copied as they
  are; numeric face/hand arrays get the same units rule as bodies (normalised arrays
  become pixels) so a later move, scale or mirror of the person can move them along;
- each point's confidence (not rounded to 1.0/0), so the drawing is the same at every
  threshold; OpenPose-18 and BODY_25 keep their own neck point, a 17-point body gets the
  shoulders' midpoint (present when both shoulders are, with the lower confidence).

What it cannot keep, listed in :attr:`EditorPose.notes` so the editor can say so before
the text changes: BODY_25's mid-hip and six foot points (HumanSD draws neither), the
difference between normalised and pixel units (everything becomes pixels), a missing
canvas size (the inferred one is written), and for COCO annotations everything but the
keypoints (ids, boxes, areas, scores; annotations without a labelled point).

Numbers are written as the shortest decimal that reads back as the same float32 the
readers produce, so the server draws the converted text exactly as it drew the original.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import PoseFormatError
from .formats import decode_pose_json, parse_pose_data
from .formats_common import clear_missing, looks_normalised
from .formats_openpose import OPENPOSE18_FROM_COCO17, read_frame
from .keypoints import PoseSet

_LAYOUT_NAMES = {54: "OpenPose-18", 75: "BODY_25", 51: "COCO-17"}
_NECK = 1  # index of the neck in OpenPose-18 and BODY_25
_LEFT_SHOULDER, _RIGHT_SHOULDER = 5, 6
_FRAME_KEYS = ("canvas_width", "canvas_height", "people")


@dataclass(frozen=True)
class EditorPose:
    """A pose in the editor's layout.

    Attributes:
        frames: frame dicts in the ``POSE_KEYPOINT`` writer layout (pixels, 18 body points).
        single: the text held one frame dict rather than a list.
        source_format: what the text was, e.g. ``"OpenPose-18 frames"``, ``"COCO annotations"``.
        notes: what writing :attr:`frames` back changes compared to the text (empty when
            nothing but number formatting changes).
    """

    frames: list[dict]
    single: bool
    source_format: str
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The route's answer: ``{"frames", "single", "format", "notes"}``."""
        return {"frames": self.frames, "single": self.single, "format": self.source_format, "notes": self.notes}

    def text(self) -> str:
        """The pose as ``pose_json`` text (a dict for a single frame, else a list)."""
        return json.dumps(self.frames[0] if self.single and len(self.frames) == 1 else self.frames)


def _f32(value: float) -> float:
    """``value`` as the shortest decimal that reads back as the same float32."""
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))


def _numeric_triples(values: object) -> np.ndarray | None:
    """A flat list of finite numbers whose length is a multiple of 3 as ``[K, 3]``, else None."""
    if not isinstance(values, (list, tuple)) or not values or len(values) % 3:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return None
    return np.array(values, np.float64).reshape(-1, 3)


def _to_pixels(xyc: np.ndarray, canvas: tuple[int, int]) -> np.ndarray:
    """The readers' units rule applied to any ``[K, 3]`` array (copy)."""
    out = clear_missing(xyc.copy())
    if looks_normalised(out):
        out[:, 0] *= canvas[0]
        out[:, 1] *= canvas[1]
    return out


def _flat(xyc: np.ndarray) -> list[float]:
    return [_f32(v) for v in xyc.reshape(-1)]


def _body18(coco: np.ndarray, neck: np.ndarray | None) -> list[float]:
    """COCO-17 pixels ``[17, 3]`` (+ an optional neck ``[3]``) as 54 OpenPose-18 numbers."""
    if neck is None:
        ls, rs = coco[_LEFT_SHOULDER], coco[_RIGHT_SHOULDER]
        if ls[2] > 0 and rs[2] > 0:
            neck = np.array([(ls[0] + rs[0]) / 2.0, (ls[1] + rs[1]) / 2.0, min(ls[2], rs[2])])
        else:
            neck = np.zeros(3)
    rows = [neck if j is None else coco[j] for j in OPENPOSE18_FROM_COCO17]
    return _flat(np.stack(rows))


def _person(person: Mapping, canvas: tuple[int, int], source: str, field: str, notes: list[str]) -> dict:
    """One OpenPose person dict in the editor layout (other keys kept)."""
    body = person.get("pose_keypoints_2d")
    out = {key: value for key, value in person.items()}
    if body is None or (isinstance(body, (list, tuple)) and len(body) == 0):
        return out  # nothing the editor draws; kept as it is
    xyc = np.array(body, np.float64).reshape(-1, 3)  # the readers validated it
    layout = _LAYOUT_NAMES[xyc.size]
    one = read_frame({"people": [person], "canvas_width": canvas[0], "canvas_height": canvas[1]}, source)
    if layout == "BODY_25":
        notes.append(f"{field}: BODY_25 becomes OpenPose-18: its mid-hip and six foot points are not kept "
                     "(HumanSD draws neither)")
    elif layout == "COCO-17":
        notes.append(f"{field}: the 17-point body becomes OpenPose-18 (neck = the shoulders' midpoint)")
    if one.num_people == 0:
        out["pose_keypoints_2d"] = [0.0] * 54
        return out
    if looks_normalised(clear_missing(xyc.copy())):
        notes.append(f"{field}: normalised coordinates become pixels of the {canvas[0]}x{canvas[1]} canvas")
    pixels = _to_pixels(xyc, canvas)
    neck = pixels[_NECK] if layout != "COCO-17" else None
    out["pose_keypoints_2d"] = _body18(one.keypoints[0].astype(np.float64), neck)
    for key, value in person.items():
        if key != "pose_keypoints_2d" and key.endswith("_keypoints_2d"):
            extra = _numeric_triples(value)
            if extra is not None:
                out[key] = _flat(_to_pixels(extra, canvas))
    return out


def _frame(frame: Mapping, pose: PoseSet, source: str, notes: list[str]) -> dict:
    canvas = pose.canvas_size
    if frame.get("canvas_width") is None and frame.get("canvas_height") is None:
        notes.append(f"{source}: no canvas size in the text; the inferred {canvas[0]}x{canvas[1]} is written")
    people = [_person(person, canvas, source, f"{source} people[{j}]", notes)
              for j, person in enumerate(frame["people"])]
    out = {"canvas_width": canvas[0], "canvas_height": canvas[1], "people": people}
    out.update({key: value for key, value in frame.items() if key not in _FRAME_KEYS})
    return out


def _coco_frame(pose: PoseSet) -> dict:
    people = [{"pose_keypoints_2d": _body18(person.astype(np.float64), None)} for person in pose.keypoints]
    return {"canvas_width": pose.canvas_width, "canvas_height": pose.canvas_height, "people": people}


def _is_frame(item: object) -> bool:
    return isinstance(item, Mapping) and "people" in item


def editor_pose_from_data(data: object, source: str = "pose_json") -> EditorPose:
    """Decoded pose data (any format :func:`~.formats.parse_pose_data` reads) in the editor's layout.

    Raises :class:`PoseFormatError` with the readers' message (naming the field) when the
    data is not a valid pose.
    """
    poses = parse_pose_data(data, source)  # the readers decide what is valid
    notes: list[str] = []
    if _is_frame(data) or (isinstance(data, Sequence) and data and all(_is_frame(item) for item in data)):
        single = isinstance(data, Mapping)
        items = [data] if single else list(data)  # type: ignore[arg-type]
        names = [source] if single else [f"{source} frame {i}" for i in range(len(items))]
        frames = [_frame(item, pose, name, notes) for item, pose, name in zip(items, poses, names)]
        layouts = sorted({_LAYOUT_NAMES[len(p["pose_keypoints_2d"])] for item in items for p in item["people"]
                          if isinstance(p, Mapping) and isinstance(p.get("pose_keypoints_2d"), (list, tuple))
                          and len(p["pose_keypoints_2d"]) in _LAYOUT_NAMES})
        kind = f"{'/'.join(layouts) or 'OpenPose'} {'frame' if single else 'frames'}"
        return EditorPose(frames, single, kind, notes)
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)) and not data:
        return EditorPose([], False, "no frames", [])
    notes.append(f"{source}: COCO annotations become POSE_KEYPOINT frames: ids, boxes, areas, scores and "
                 "annotations without a labelled point are not kept")
    return EditorPose([_coco_frame(pose) for pose in poses], False, "COCO annotations", notes)


def editor_pose_from_text(text: str, source: str = "pose_json") -> EditorPose:
    """JSON text (what ``pose_json`` accepts) in the editor's layout; errors as :func:`editor_pose_from_data`."""
    return editor_pose_from_data(decode_pose_json(text, source), source)
