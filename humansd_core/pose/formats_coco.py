"""COCO keypoint annotations: a dataset dict, a list of annotations, or one annotation.

Each annotation's ``keypoints`` holds 51 numbers, COCO-17 ``x, y, v`` in pixels.
The third value of an annotation is read as **visibility flags** when every one is
0, 1 or 2 (0 = not labelled -> confidence 0; 1 = labelled but hidden and 2 =
visible -> confidence 1.0, since a labelled point's position is known and the
reference draws both); otherwise as **confidences**, which must lie in ``[0, 1]``
(detector results). An optional ``score`` in ``[0, 1]`` is the person's score.

Frames: a dataset yields one :class:`PoseSet` per entry of ``images`` (canvas from
its ``width``/``height``; images without annotations give empty frames), then one
per further ``image_id`` met in the annotations; a bare list of annotations is
grouped by ``image_id`` in order of appearance. Annotations without any labelled
point (crowd regions, people with ``num_keypoints`` 0) are skipped.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from ..errors import PoseFormatError
from .formats_common import check_extent, clear_missing, infer_canvas, number_array, read_canvas, to_float
from .keypoints import PoseSet

_NO_IMAGE = object()  # group key for annotations without an image_id


def read_annotation(ann: object, source: str, field: str) -> tuple[np.ndarray, float] | None:
    """``([17, 3] pixels with confidences, person score)``, or None without labelled points."""
    if not isinstance(ann, Mapping):
        raise PoseFormatError(f"{source}: {field}: expected an annotation dict, got {type(ann).__name__}")
    xyc = number_array(ann.get("keypoints"), source, f"{field}.keypoints", (51,)).reshape(17, 3)
    third = xyc[:, 2]
    if np.isin(third, (0.0, 1.0, 2.0)).all():
        xyc[:, 2] = (third > 0).astype(np.float64)
    elif ((third < 0) | (third > 1)).any():
        k = int(np.flatnonzero((third < 0) | (third > 1))[0])
        raise PoseFormatError(f"{source}: {field}.keypoints point {k}: third value {float(third[k])!r} is neither a "
                              "visibility flag (0/1/2 for every point) nor a confidence in [0, 1]")
    if not (clear_missing(xyc)[:, 2] > 0).any():
        return None
    score = 1.0 if ann.get("score") is None else to_float(ann["score"], source, f"{field}.score")
    if not 0.0 <= score <= 1.0:
        raise PoseFormatError(f"{source}: {field}.score: {score!r} outside [0, 1]")
    return xyc, score


def _image_key(ann: object, source: str, field: str) -> Hashable:
    image_id = ann.get("image_id", _NO_IMAGE) if isinstance(ann, Mapping) else _NO_IMAGE
    if image_id is not _NO_IMAGE and not isinstance(image_id, (int, str)):
        raise PoseFormatError(f"{source}: {field}.image_id: expected a number or a string, got {image_id!r:.60}")
    return image_id


def _frame(people: list[tuple[str, np.ndarray, float]], canvas: tuple[int, int] | None, source: str) -> PoseSet:
    size = canvas or infer_canvas([p for _, p, _ in people], source)
    for field, xyc, _ in people:
        check_extent(xyc, size, source, field)
    keypoints = np.stack([p for _, p, _ in people]) if people else np.zeros((0, 17, 3))
    return PoseSet(keypoints, size[0], size[1], np.array([s for _, _, s in people]))


def read_annotations(
    annotations: Sequence[object],
    source: str,
    canvas: tuple[int, int] | None = None,
    images: Sequence[object] = (),
    field: str = "annotations",
) -> list[PoseSet]:
    """Annotations (and optional COCO image records) -> one PoseSet per image."""
    sizes: dict[Hashable, tuple[int, int] | None] = {}
    for i, image in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(image, Mapping) or not isinstance(image.get("id"), (int, str)):
            raise PoseFormatError(f"{source}: {where}: expected a dict with an 'id', got {image!r:.60}")
        sizes[image["id"]] = read_canvas(image, source, where, keys=("width", "height"))
    groups: dict[Hashable, list[tuple[str, np.ndarray, float]]] = {key: [] for key in sizes}
    for i, ann in enumerate(annotations):
        where = f"{field}[{i}]"
        key = _image_key(ann, source, where)
        person = read_annotation(ann, source, where)
        group = groups.setdefault(key, [])
        if person is not None:
            group.append((where, *person))
    return [_frame(people, sizes.get(key) or canvas, f"{source} image {key!r}" if key is not _NO_IMAGE else source)
            for key, people in groups.items()]


def read_dataset(data: Mapping[str, object], source: str, canvas: tuple[int, int] | None = None) -> list[PoseSet]:
    """A COCO dataset dict with ``annotations`` (and usually ``images``)."""
    annotations, images = data.get("annotations"), data.get("images", [])
    for name, value in (("annotations", annotations), ("images", images)):
        if not isinstance(value, (list, tuple)):
            raise PoseFormatError(f"{source}: {name}: expected a list, got {type(value).__name__}")
    return read_annotations(annotations, source, canvas, images)  # type: ignore[arg-type]
