"""Training samples checked one by one, for hosts that show the user what was found and why something was left out.

:func:`scan_dataset` (the CLI's reader) stops at the first bad pose file and trains
an image without a caption on the empty caption. A data node wants a report instead:
:func:`check_folder` looks at every image of a folder (``<stem>.png/.jpg/...`` with a
pose file ``<stem>.json``/``.npz`` and a caption ``<stem>.txt``) and either stops at
the bad ones, naming each file and what is wrong with it, or leaves them out and lists
them (:class:`CheckedSamples`). A sample is bad when its image does not decode, its
pose file is missing or unreadable or holds no visible keypoint, or its caption file is
missing or empty.

:func:`write_sample_folder` writes in-memory samples (images, poses, captions) in the
same layout, so they take the same path; the folder's name is the digest of its
content, so the same samples give the same folder (and a resumed run its caches).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import HumanSDError
from ..fileio import atomic_path, atomic_write_text
from ..pose.formats import load_pose_file, write_openpose_json
from ..pose.keypoints import PoseSet
from .augment import fit_pose_to_image
from .data import IMAGE_SUFFIXES, POSE_SUFFIXES, Record

logger = logging.getLogger(__name__)

COMPLETE_MARKER = ".complete"  # written last by write_sample_folder


@dataclass
class CheckedSamples:
    """What :func:`check_folder` found: the usable samples and the ones left out, with why."""

    folder: Path
    records: list[Record] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def report(self, limit: int = 20) -> str:
        """One line of counts, then one line per left-out file (the first ``limit``)."""
        lines = [f"{len(self.records)} samples in {self.folder}" +
                 (f"; {len(self.skipped)} left out:" if self.skipped else "")]
        lines += [f"  {path.name}: {reason}" for path, reason in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more")
        return "\n".join(lines)


def _decoded_size(image: Path) -> tuple[tuple[int, int], str]:
    """The image's size after decoding all of it (a truncated file fails here, not mid-training)."""
    try:
        with Image.open(image) as img:
            img.load()
            return img.size, ""
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return (0, 0), f"image unreadable ({exc})"


def _check_pose(image: Path) -> tuple[PoseSet | None, str]:
    pose_path = next((image.with_suffix(s) for s in POSE_SUFFIXES if image.with_suffix(s).is_file()), None)
    if pose_path is None:
        return None, f"no pose file ({image.stem}.json or {image.stem}.npz)"
    try:
        frames = load_pose_file(pose_path)
    except HumanSDError as exc:
        return None, f"pose file {pose_path.name} unreadable: {exc}"
    if not frames or frames[0].visible_count() == 0:
        return None, f"pose file {pose_path.name} has no person with a visible keypoint"
    if len(frames) > 1:
        logger.warning("%s: %d frames; training uses the first", pose_path, len(frames))
    return frames[0], ""


def _check_caption(image: Path, caption_ext: str) -> tuple[str | None, str]:
    path = image.with_suffix(caption_ext)
    if not path.is_file():
        return None, f"no caption file {path.name}"
    try:
        caption = path.read_text(encoding="utf-8-sig").strip()
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"caption file {path.name} unreadable ({exc})"
    if not caption:
        return None, f"caption file {path.name} is empty"
    return caption, ""


def check_folder(folder: str | os.PathLike[str], *, caption_ext: str = ".txt", max_people: int = 10,
                 skip_bad: bool = False) -> CheckedSamples:
    """Every image of ``folder`` (sorted by name) with its pose and caption, checked (see the module docstring).

    ``skip_bad``: leave bad samples out and list them; else raise :class:`HumanSDError`
    naming every bad file and why. Zero usable samples always raise.
    """
    root = Path(folder)
    if not root.is_dir():
        raise HumanSDError(f"data folder {root}: not a folder")
    images = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise HumanSDError(f"data folder {root}: no images ({', '.join(IMAGE_SUFFIXES)})")
    found = CheckedSamples(root)
    for image in images:
        pose, pose_problem = _check_pose(image)
        caption, caption_problem = _check_caption(image, caption_ext)
        size, image_problem = _decoded_size(image)
        problem = image_problem or pose_problem or caption_problem
        if problem:
            found.skipped.append((image, problem))
            continue
        width, height = size
        found.records.append(Record(image, fit_pose_to_image(pose, width, height, max_people), caption, width, height))
    if found.skipped and not skip_bad:
        shown = "; ".join(f"{path.name}: {reason}" for path, reason in found.skipped[:10])
        more = f" (and {len(found.skipped) - 10} more)" if len(found.skipped) > 10 else ""
        raise HumanSDError(f"data folder {root}: {len(found.skipped)} bad sample(s): {shown}{more}. Fix them, or "
                           "let bad samples be skipped")
    if not found.records:
        reasons = "; ".join(f"{path.name}: {reason}" for path, reason in found.skipped[:10])
        raise HumanSDError(f"data folder {root}: no usable sample ({reasons})")
    logger.info("%s", found.report())
    return found


def samples_digest(images: Sequence[np.ndarray], poses: Sequence[PoseSet], captions: Sequence[str]) -> str:
    """SHA-256 (hex, 16 chars) over the samples' pixels, keypoints, canvases and captions."""
    digest = hashlib.sha256()
    for image, pose, caption in zip(images, poses, captions, strict=True):
        digest.update(np.ascontiguousarray(image).tobytes())
        digest.update(json.dumps([list(image.shape), pose.canvas_size, caption]).encode())
        digest.update(np.ascontiguousarray(pose.keypoints, np.float32).tobytes())
    return digest.hexdigest()[:16]


def write_sample_folder(parent: str | os.PathLike[str], images: Sequence[np.ndarray], poses: Sequence[PoseSet],
                        captions: Sequence[str]) -> Path:
    """Write samples as ``<parent>/samples-<digest>/NNNNNN.png/.json/.txt``; returns the folder.

    ``images``: RGB uint8 ``[H, W, 3]``; ``poses``: one frame per image (its canvas is
    scaled onto the image when read back); ``captions``: one per image. A folder already
    completed for the same samples is reused as it is.
    """
    if not (len(images) == len(poses) == len(captions)) or not images:
        raise HumanSDError(f"samples: {len(images)} images, {len(poses)} poses and {len(captions)} captions; "
                           "expected the same number (at least one) of each")
    folder = Path(parent) / f"samples-{samples_digest(images, poses, captions)}"
    if (folder / COMPLETE_MARKER).is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for index, (image, pose, caption) in enumerate(zip(images, poses, captions)):
        stem = folder / f"{index:06d}"
        write_openpose_json(stem.with_suffix(".json"), pose)
        atomic_write_text(stem.with_suffix(".txt"), caption + "\n")
        with atomic_path(stem.with_suffix(".png")) as tmp:
            Image.fromarray(np.ascontiguousarray(image), "RGB").save(tmp, format="PNG")
    atomic_write_text(folder / COMPLETE_MARKER, f"{len(images)}\n")
    return folder


def synthetic_folder(parent: str | os.PathLike[str], count: int, size: int, seed: int,
                     progress: Callable[[int, int], None] | None = None) -> Path:
    """``<parent>/synthetic-s<seed>-n<count>-<size>px``: the first ``count`` synthetic mannequin scenes of ``seed``
    (:func:`humansd_core.synthetic.write_dataset`, ``size²`` pixels), written once; ``progress(done, count)``."""
    from ..synthetic import write_dataset

    if count < 1:
        raise HumanSDError(f"synthetic scenes: count must be at least 1, got {count}")
    folder = Path(parent) / f"synthetic-s{seed}-n{count}-{size}px"
    if not (folder / COMPLETE_MARKER).is_file():
        write_dataset(folder, count, size, seed=seed,
                      progress=None if progress is None else (lambda done: progress(done, count)))
        atomic_write_text(folder / COMPLETE_MARKER, f"{count}\n")
    return folder
