"""Read the named colours of the synthetic world back from an image: prompt adherence without CLIP.

The paper scores text adherence with a CLIP score. The synthetic world allows a
direct reading instead, since every colour in a scene is one of the named
:data:`~.appearance.COLOURS` (with a small jitter):

* **background**: the median RGB of the image's border (a frame :data:`BORDER`
  pixels wide) → the nearest palette colour (Euclidean in RGB). People rarely reach
  the border and the median ignores those who do.
* **shirt**: per person, a vote over the pixels of the torso — the quadrilateral of
  the person's shoulders and hips (COCO joints 5, 6, 12, 11), scaled about its centre
  by :data:`TORSO_SHRINK`: each pixel goes to the nearest palette colour under one
  of the mannequin's three shading tones (:data:`SHADES`: dark rim, main fill,
  highlight; ``mannequin._blob``), and the most frequent name wins. Arms across
  the torso and the shading do not move a plurality vote the way they move a mean.

A prompt names its colours in the caption grammar of :func:`.appearance.caption`:
"... on a plain <colour> background", people "in a <colour> shirt" listed left to
right (by the mean x of their hips), which is how :func:`match_people` pairs them
with the pose's people.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..errors import HumanSDError
from ..pose.keypoints import PoseSet
from .appearance import COLOURS

BORDER = 4  # pixels of the frame whose median is the background colour (128 px images)
TORSO_SHRINK = 0.8  # the torso quadrilateral scaled by this about its centroid
SHADES = (0.55, 0.88, 1.3)  # the mannequin's torso tones (mannequin._blob): rim, main fill, highlight
MIN_TORSO_PIXELS = 4
_PALETTE_NAMES = tuple(COLOURS)
_PALETTE = np.array([COLOURS[name] for name in _PALETTE_NAMES], np.float64)  # [12, 3]
_BACKGROUND = re.compile(r"on an? (?:plain|noisy) (\w+) background")
_SHIRT = re.compile(r"in an? (\w+) shirt")


def nearest_colour(rgb: np.ndarray) -> str:
    """The palette name nearest to ``rgb`` (``[3]``, 0..255), Euclidean in RGB."""
    distance = np.linalg.norm(_PALETTE - np.asarray(rgb, np.float64)[None], axis=1)
    return _PALETTE_NAMES[int(np.argmin(distance))]


def _shaded(factor: float) -> np.ndarray:
    """The palette as the mannequin shades it: darkened (factor < 1) or blended towards white."""
    return _PALETTE * factor if factor <= 1 else _PALETTE + (255 - _PALETTE) * (factor - 1)


_SHADED = np.concatenate([_shaded(f) for f in SHADES])  # [3·12, 3]


def vote_colour(pixels: np.ndarray) -> str:
    """The palette name most of ``pixels [N,3]`` (0..255) are nearest to under some shading tone."""
    distance = ((pixels[:, None, :] - _SHADED[None]) ** 2).sum(-1)  # [N, 36]
    names = np.argmin(distance, axis=1) % len(_PALETTE_NAMES)
    return _PALETTE_NAMES[int(np.bincount(names, minlength=len(_PALETTE_NAMES)).argmax())]


def _as_rgb255(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """``[3,H,W]`` float in ``[0,1]`` (torch) or ``[H,W,3]`` uint8 → ``[H,W,3]`` float64 in 0..255."""
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise HumanSDError(f"colour reading: expected an image [3,H,W], got {list(image.shape)}")
        return (image.detach().float().clamp(0, 1) * 255).permute(1, 2, 0).cpu().numpy().astype(np.float64)
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise HumanSDError(f"colour reading: expected an image [H,W,3], got {list(array.shape)}")
    return array.astype(np.float64)


def border_pixels(image: torch.Tensor | np.ndarray, border: int = BORDER) -> np.ndarray:
    """The RGB pixels ``[N,3]`` (0..255) of the image's ``border``-pixel frame."""
    pixels = _as_rgb255(image)
    return np.concatenate([pixels[:border].reshape(-1, 3), pixels[-border:].reshape(-1, 3),
                           pixels[border:-border, :border].reshape(-1, 3),
                           pixels[border:-border, -border:].reshape(-1, 3)])


def background_colour(image: torch.Tensor | np.ndarray, border: int = BORDER) -> str:
    """The palette name nearest to the median colour of the image's border frame."""
    return nearest_colour(np.median(border_pixels(image, border), axis=0))


def match_people(pose: PoseSet) -> list[int]:
    """Indices of the pose's people from left to right by the mean x of their hips (the caption's order)."""
    return sorted(range(pose.num_people), key=lambda i: float(pose.keypoints[i, 11:13, 0].mean()))


def shirt_colours(image: torch.Tensor | np.ndarray, pose: PoseSet) -> list[str | None]:
    """Per person of ``pose`` (left to right, see :func:`match_people`): the torso's colour name, or None
    when the torso covers fewer than :data:`MIN_TORSO_PIXELS` pixels. ``pose`` must be on the image's canvas."""
    pixels = _as_rgb255(image)
    height, width = pixels.shape[:2]
    if (pose.canvas_width, pose.canvas_height) != (width, height):
        raise HumanSDError(f"shirt colours: pose canvas {pose.canvas_width}x{pose.canvas_height} is not the "
                           f"image's {width}x{height}")
    names: list[str | None] = []
    for index in match_people(pose):
        corners = pose.keypoints[index, [5, 6, 12, 11], :2].astype(np.float64)
        centre = corners.mean(0)
        quad = centre + TORSO_SHRINK * (corners - centre)
        mask = np.zeros((height, width), np.uint8)
        cv2.fillConvexPoly(mask, np.round(quad * 8).astype(np.int32), 1, cv2.LINE_8, 3)
        inside = pixels[mask.astype(bool)]
        names.append(vote_colour(inside) if len(inside) >= MIN_TORSO_PIXELS else None)
    return names


def named_background(prompt: str) -> str | None:
    """The background colour a caption-grammar prompt names ("on a plain teal background"), or None."""
    match = _BACKGROUND.search(prompt)
    return match.group(1) if match and match.group(1) in COLOURS else None


def named_shirts(prompt: str) -> list[str]:
    """The shirt colours a caption-grammar prompt names, in order (left to right)."""
    return [name for name in _SHIRT.findall(prompt) if name in COLOURS]


@dataclass(frozen=True)
class Adherence:
    """Fractions of images (background) and of people (shirt) whose read colour is the named one.

    ``background_chance`` / ``shirt_chance``: the same reading scored against the
    prompts of a fixed derangement of the images (what ignoring the text would get).
    """

    background: float
    shirt: float
    background_chance: float
    shirt_chance: float
    images: int
    people: int

    def line(self) -> str:
        """``prompt adherence: background=<b> shirt=<s> (chance <cb> / <cs>)``, as ``humansd demo`` prints it."""
        return (f"prompt adherence: background={self.background:.3f} shirt={self.shirt:.3f} "
                f"(chance {self.background_chance:.3f} / {self.shirt_chance:.3f})")


def _fractions(read_bg: Sequence[str], read_shirts: Sequence[Sequence[str | None]],
               prompts: Sequence[str]) -> tuple[float, float, int, int]:
    """``(background hit fraction, shirt hit fraction, backgrounds counted, shirts counted)`` of readings
    against the colours ``prompts`` name (a prompt naming no plain/noisy background counts no background)."""
    bg_hits = bg_total = shirt_hits = shirt_total = 0
    for background, shirts, prompt in zip(read_bg, read_shirts, prompts):
        wanted = named_background(prompt)
        if wanted is not None:
            bg_total += 1
            bg_hits += background == wanted
        named = named_shirts(prompt)
        for read, want in zip(shirts, named):
            shirt_total += 1
            shirt_hits += read == want
    return bg_hits / max(bg_total, 1), shirt_hits / max(shirt_total, 1), bg_total, shirt_total


def prompt_adherence(images: torch.Tensor, poses: Sequence[PoseSet], prompts: Sequence[str],
                     order: Sequence[int] | None = None) -> Adherence:
    """Score ``images [N,3,H,W]`` in ``[0,1]`` against the colours their ``prompts`` name.

    Only prompts naming a plain/noisy background count for the background; a person's
    shirt counts when the prompt names as many shirts as the pose has people.
    ``order``: the derangement for the chance level (None: no chance level, NaN).
    """
    if not len(images) == len(poses) == len(prompts):
        raise HumanSDError(f"prompt adherence: {len(images)} images, {len(poses)} poses, {len(prompts)} prompts")
    backgrounds = [background_colour(image) for image in images]
    shirts = [shirt_colours(image, pose) if len(named_shirts(prompt)) == pose.num_people else []
              for image, pose, prompt in zip(images, poses, prompts)]
    bg, shirt, n_bg, n_shirt = _fractions(backgrounds, shirts, prompts)
    bg_chance = shirt_chance = float("nan")
    if order is not None:
        others = [prompts[int(j)] for j in order]
        # chance: another image's prompt, scored on the background only (shirts need matching people counts)
        bg_chance, _, _, _ = _fractions(backgrounds, [[] for _ in images], others)
        shirt_chance = _shirt_chance(shirts, prompts, order)
    return Adherence(bg, shirt, bg_chance, shirt_chance, n_bg, n_shirt)


def _shirt_chance(shirts: Sequence[Sequence[str | None]], prompts: Sequence[str], order: Sequence[int]) -> float:
    """Shirt hits when each read person is compared with the shirt named for some person of another prompt."""
    hits = total = 0
    for i, read in enumerate(shirts):
        other = named_shirts(prompts[int(order[i])])
        if not other:
            continue
        for k, name in enumerate(read):
            total += 1
            hits += name == other[k % len(other)]
    return hits / max(total, 1)
