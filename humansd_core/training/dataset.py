"""Training samples: image + pose + caption, from a folder or a JSONL manifest.

Sources:

* a folder: every image (``.png .jpg .jpeg .webp .bmp``, sorted by name) with a pose
  file of the same stem (``.json`` in any format :func:`~humansd_core.pose.load_pose_file`
  reads, or ``.npz``) and a caption ``<stem>.txt`` (missing: empty caption, logged);
* a ``.jsonl`` manifest: one object a line, ``{"image": path, "pose": path or inline
  pose data, "caption": text}``; relative paths are relative to the manifest's folder.

Images without a pose get one from the OpenPose body detector when its weights are
given (the result is kept as OpenPose JSON in the cache folder), else an error names
them. Each pose is reduced to its first ``max_people`` people and scaled to its image's
pixel size (its canvas may differ, e.g. normalised coordinates on a 1×1 canvas); the
first frame of a multi-frame file is used.

:class:`TrainingDataset` turns ``(sample index, epoch)`` into one training item with
all randomness (caption dropout, zoom, crop, flip) drawn from a generator seeded by
``(seed, epoch, index)``: an item does not depend on the rank, worker or run that asks
for it, which is what makes resumed and distributed runs reproducible.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import HumanSDError, PoseFormatError
from ..pose.formats import load_pose_file, parse_pose_data, write_openpose_json
from ..pose.keypoints import PoseSet
from ..pose.render import render_skeleton
from .augment import Geometry, apply_to_image, apply_to_pose, fit_pose_to_image, plan_geometry
from .config import DataOptions

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
POSE_SUFFIXES = (".json", ".npz")


@dataclass(frozen=True)
class Record:
    """One sample as found on disk: ``pose`` is on the image's ``width x height`` canvas."""

    image: Path
    pose: PoseSet
    caption: str
    width: int
    height: int

    def identity(self) -> dict[str, object]:
        """What a cache entry of this sample depends on: the image file (path, size, mtime) and the pose."""
        stat = self.image.stat()
        kp = np.ascontiguousarray(self.pose.keypoints)
        return {"image": str(self.image.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "pose": kp.round(4).tolist(), "size": [self.width, self.height]}


def load_image(path: Path) -> Image.Image:
    """The image as RGB (HumanSDError naming the file when unreadable)."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise HumanSDError(f"{path}: cannot read the image ({exc})") from None


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, ValueError) as exc:
        raise HumanSDError(f"{path}: cannot read the image ({exc})") from None


def _first_frame(frames: list[PoseSet], source: str) -> PoseSet:
    if not frames:
        raise PoseFormatError(f"{source}: no frames in the pose data")
    if len(frames) > 1:
        logger.warning("%s: %d frames; training uses the first", source, len(frames))
    return frames[0]


def _scan_folder(root: Path, caption_ext: str) -> list[tuple[Path, PoseSet | None, str]]:
    entries = []
    for image in sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        pose_path = next((image.with_suffix(s) for s in POSE_SUFFIXES if image.with_suffix(s).is_file()), None)
        pose = _first_frame(load_pose_file(pose_path), str(pose_path)) if pose_path else None
        caption_path = image.with_suffix(caption_ext)
        caption = caption_path.read_text(encoding="utf-8").strip() if caption_path.is_file() else None
        if caption is None:
            logger.warning("%s: no caption file %s; using an empty caption", image, caption_path.name)
        entries.append((image, pose, caption or ""))
    return entries


def _scan_manifest(path: Path) -> list[tuple[Path, PoseSet | None, str]]:
    entries = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise HumanSDError(f"{path}: cannot read the manifest ({exc})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HumanSDError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get("image"), str):
            raise HumanSDError(f"{where}: expected an object with an \"image\" path")
        caption = item.get("caption", "")
        if not isinstance(caption, str):
            raise HumanSDError(f"{where}: \"caption\" must be a string")
        image = path.parent / item["image"]
        pose_value = item.get("pose")
        if pose_value is None:
            pose = None
        elif isinstance(pose_value, str):
            pose = _first_frame(load_pose_file(path.parent / pose_value), f"{where} ({pose_value})")
        else:
            pose = _first_frame(parse_pose_data(pose_value, where), where)
        entries.append((image, pose, caption))
    return entries


def _detect_poses(images: Sequence[Path], weights: str, cache_dir: Path) -> dict[Path, PoseSet]:
    """Poses of ``images`` from the OpenPose body detector, kept as JSON under ``cache_dir/poses``."""
    import hashlib

    from ..pose.detect import OpenPoseBodyDetector

    detector = None
    found = {}
    for image in images:
        digest = hashlib.sha256(str(image.resolve()).encode()).hexdigest()[:16]
        cached = cache_dir / "poses" / f"{image.stem}-{digest}.json"
        if cached.is_file() and cached.stat().st_mtime_ns >= image.stat().st_mtime_ns:
            found[image] = _first_frame(load_pose_file(cached), str(cached))
            continue
        if detector is None:
            detector = OpenPoseBodyDetector.from_file(weights, device="cuda" if torch.cuda.is_available() else "cpu")
        pose = detector.detect(np.array(load_image(image)))
        write_openpose_json(cached, pose)
        found[image] = pose
    return found


def scan_dataset(source: str | os.PathLike[str], *, caption_ext: str = ".txt", max_people: int = 10,
                 detector_weights: str = "", cache_dir: Path | None = None) -> list[Record]:
    """All samples of a folder or ``.jsonl`` manifest (see the module docstring)."""
    source = Path(source)
    if source.is_dir():
        entries = _scan_folder(source, caption_ext)
    elif source.is_file() and source.suffix.lower() == ".jsonl":
        entries = _scan_manifest(source)
    else:
        raise HumanSDError(f"data {source}: expected a folder or a .jsonl manifest")
    if not entries:
        raise HumanSDError(f"data {source}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    missing = [image for image, pose, _ in entries if pose is None]
    if missing and not detector_weights:
        shown = ", ".join(p.name for p in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise HumanSDError(f"data {source}: {len(missing)} image(s) have no pose file ({shown}); add "
                           "<stem>.json pose files or give detector_weights (OpenPose body_pose_model.pth)")
    detected = _detect_poses(missing, detector_weights, cache_dir or source.parent / "cache") if missing else {}
    records = []
    for image, pose, caption in entries:
        if not image.is_file():
            raise HumanSDError(f"data {source}: image {image} does not exist")
        width, height = _image_size(image)
        pose = fit_pose_to_image(pose if pose is not None else detected[image], width, height, max_people)
        records.append(Record(image, pose, caption, width, height))
    logger.info("data %s: %d samples", source, len(records))
    return records


class TrainingDataset(torch.utils.data.Dataset):
    """``dataset[(index, epoch)] -> dict`` (collate with :func:`collate`).

    Item keys: ``index``, ``caption`` (after dropout), ``pose`` (augmented, on the
    bucket canvas), and either ``latent``/``logvar``/``pose_latent`` (from the latent
    cache, see :mod:`.cache`) or ``image``/``skeleton`` (uint8 ``[3, H, W]``).

    With a latent cache only the flip is random (both variants are cached); crops are
    centred and there is no zoom.
    """

    def __init__(self, records: Sequence[Record], buckets: Sequence[tuple[int, int]], bucket_of: Sequence[int],
                 options: DataOptions, seed: int, latent_cache: dict | None = None) -> None:
        self.records, self.buckets, self.bucket_of = list(records), list(buckets), list(bucket_of)
        self.options, self.seed = options, seed
        self.latent_cache = latent_cache
        self._pixels: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.records)

    def cached_geometry(self, index: int, flip: bool) -> Geometry:
        """The fixed (centre-crop, no zoom) transform of the latent cache."""
        record = self.records[index]
        bw, bh = self.buckets[self.bucket_of[index]]
        return plan_geometry(record.width, record.height, bw, bh, None, flip=flip)

    def image(self, index: int) -> Image.Image | np.ndarray:
        """The source image (kept decoded in memory when ``cache = "pixels"``)."""
        if self.options.cache != "pixels":
            return load_image(self.records[index].image)
        if index not in self._pixels:
            self._pixels[index] = np.asarray(load_image(self.records[index].image))
        return self._pixels[index]

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, epoch = key
        opts, record = self.options, self.records[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        caption = "" if rng.random() < opts.caption_dropout else record.caption
        if self.latent_cache is not None:
            flip = bool(rng.random() < opts.flip_prob)
            entry = self.latent_cache[(index, flip)]
            pose = apply_to_pose(record.pose, self.cached_geometry(index, flip))
            return {"index": index, "caption": caption, "pose": pose, **entry}
        bw, bh = self.buckets[self.bucket_of[index]]
        g = plan_geometry(record.width, record.height, bw, bh, rng, random_crop=opts.random_crop,
                          zoom_max=opts.zoom_max, flip_prob=opts.flip_prob)
        pose = apply_to_pose(record.pose, g)
        image = apply_to_image(self.image(index), g)
        skeleton = render_skeleton(pose, threshold=opts.pose_threshold)
        return {"index": index, "caption": caption, "pose": pose,
                "image": torch.from_numpy(image.copy()).permute(2, 0, 1),
                "skeleton": torch.from_numpy(skeleton).permute(2, 0, 1)}


def collate(items: Sequence[dict]) -> dict:
    """Stack tensors (``[B, ...]``); lists for ``index``, ``caption``, ``pose``."""
    out: dict = {}
    for key in items[0]:
        values = [item[key] for item in items]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return out
