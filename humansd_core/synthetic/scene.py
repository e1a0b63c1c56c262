"""Whole synthetic samples: people + background + caption, in memory or written to a folder.

:func:`sample_scene` is deterministic in its generator's state; :func:`scene_rng`
gives sample ``i`` of seed ``s`` its own generator, so a dataset's samples do not
depend on how many are drawn or in which order.

:func:`write_dataset` writes the layout the trainer reads: for each sample
``NNNNNN.png`` (RGB), ``NNNNNN.json`` (OpenPose JSON with the canvas size, pixel
coordinates; :func:`humansd_core.pose.load_pose_file` reads it back) and
``NNNNNN.txt`` (the caption), each file written atomically.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import HumanSDError
from ..fileio import atomic_path, atomic_write_text
from ..pose.formats import write_openpose_json
from ..pose.keypoints import PoseSet
from .appearance import (
    BACKGROUND_KINDS,
    Background,
    Outfit,
    caption,
    check_background_kinds,
    render_background,
    sample_background,
    sample_outfits,
)
from .mannequin import draw_people
from .poses import PlacedPerson, sample_people, to_pose_set

SUPERSAMPLE = 2
MAX_SIZE = 4096


@dataclass(frozen=True)
class Scene:
    """One sample with everything that made it (people left to right)."""

    image: np.ndarray  # RGB uint8 [H, W, 3]
    pose: PoseSet
    caption: str
    people: list[PlacedPerson]
    outfits: list[Outfit]
    background: Background


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    width, height = (size, size) if isinstance(size, (int, np.integer)) else size
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 16 <= value <= MAX_SIZE:
            raise HumanSDError(f"synthetic scene {name}: expected a whole number of pixels in [16, {MAX_SIZE}], "
                               f"got {value!r}")
    return int(width), int(height)


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of dataset ``seed``."""
    return np.random.default_rng([int(seed), int(index)])


def generate_scene(rng: np.random.Generator, size: int | tuple[int, int], max_people: int = 3,
                   backgrounds: Sequence[str] = BACKGROUND_KINDS) -> Scene:
    """Draw one :class:`Scene` of ``size`` (``W`` or ``(W, H)`` pixels) with 1..``max_people`` people, on a
    background of one of the kinds ``backgrounds`` (all of :data:`~.appearance.BACKGROUND_KINDS` by default)."""
    width, height = _size(size)
    if not 1 <= max_people <= 3:
        raise HumanSDError(f"max_people: expected 1, 2 or 3, got {max_people!r}")
    people = sample_people(rng, width, height, max_people)
    people.sort(key=lambda p: float(p.points[11:13, 0].mean()))  # left to right, by the hips
    outfits = sample_outfits(rng, len(people))
    background = sample_background(rng, {name for o in outfits for name in (o.shirt_name, o.trousers_name)},
                                   backgrounds)
    canvas = np.ascontiguousarray(render_background(rng, background, width * SUPERSAMPLE, height * SUPERSAMPLE))
    draw_people(canvas, people, outfits, SUPERSAMPLE)
    image = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    return Scene(image, to_pose_set(people, width, height), caption(outfits, background), people, outfits, background)


def sample_scene(rng: np.random.Generator, size: int | tuple[int, int]) -> tuple[np.ndarray, PoseSet, str]:
    """``(image RGB uint8 [H, W, 3], PoseSet in pixels, caption)`` of one random scene."""
    scene = generate_scene(rng, size)
    return scene.image, scene.pose, scene.caption


def _write_png(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def write_dataset(out: str | os.PathLike[str], count: int, size: int | tuple[int, int], seed: int = 0,
                  start: int = 0, progress: Callable[[int], None] | None = None,
                  backgrounds: Sequence[str] = BACKGROUND_KINDS) -> list[Path]:
    """Write samples ``start .. start+count-1`` of ``seed`` to ``out`` (backgrounds of the kinds ``backgrounds``);
    returns the image paths.

    Per sample ``{index:06d}.png/.json/.txt``; the pose file is written before the
    image, so a reader that lists ``*.png`` never sees an image without its pose.
    """
    if count < 0 or start < 0:
        raise HumanSDError(f"synthetic dataset: count and start must be >= 0, got {count}, {start}")
    check_background_kinds(backgrounds)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(start, start + count):
        scene = generate_scene(scene_rng(seed, index), size, backgrounds=backgrounds)
        stem = folder / f"{index:06d}"
        write_openpose_json(stem.with_suffix(".json"), scene.pose)
        atomic_write_text(stem.with_suffix(".txt"), scene.caption + "\n")
        _write_png(stem.with_suffix(".png"), scene.image)
        paths.append(stem.with_suffix(".png"))
        if progress is not None:
            progress(index - start + 1)
    return paths
