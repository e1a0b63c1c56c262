"""Named colours, clothing, backgrounds and the captions that describe them.

Every colour in a scene comes from :data:`COLOURS` by name (with a small jitter of
its RGB value), so a caption can say exactly what is drawn. Within one scene all
shirts and trousers have distinct colours and the background uses colours that no
clothing uses, so the people stand out and the caption is unambiguous.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import HumanSDError

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (205, 35, 35), "orange": (240, 135, 25), "yellow": (240, 215, 45), "green": (45, 155, 55),
    "blue": (35, 75, 205), "purple": (125, 55, 165), "pink": (240, 135, 185), "white": (236, 236, 236),
    "black": (28, 28, 28), "grey": (128, 128, 128), "brown": (120, 75, 40), "teal": (20, 140, 140),
}
SKIN_TONES: tuple[tuple[int, int, int], ...] = ((241, 204, 175), (224, 172, 130), (190, 135, 95), (140, 95, 60),
                                                (95, 62, 40))
HAIR_COLOURS: tuple[tuple[int, int, int], ...] = ((25, 20, 18), (80, 50, 30), (200, 160, 90), (150, 60, 30),
                                                  (170, 170, 170))
SHOE_COLOURS: tuple[tuple[int, int, int], ...] = ((30, 30, 30), (240, 240, 240), (100, 60, 30))
BACKGROUND_KINDS: tuple[str, ...] = ("plain", "gradient", "striped", "checkered", "noisy")
COLOUR_JITTER = 10
NUMBER_WORDS = {1: "a person", 2: "two people", 3: "three people"}


@dataclass(frozen=True)
class Outfit:
    """One person's colours (RGB uint8 triples) and the names of the clothing colours."""

    shirt_name: str
    trousers_name: str
    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shoes: tuple[int, int, int]


@dataclass(frozen=True)
class Background:
    """A background: ``kind`` (one of :data:`BACKGROUND_KINDS`) and its colour names."""

    kind: str
    colours: tuple[str, ...]


def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    values = np.clip(np.array(rgb) + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, 3), 0, 255)
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def sample_outfits(rng: np.random.Generator, count: int) -> list[Outfit]:
    """``count`` outfits whose shirt and trousers colours are all distinct (``count`` ≤ 6)."""
    names = list(COLOURS)
    chosen = rng.choice(len(names), size=2 * count, replace=False)
    outfits = []
    for i in range(count):
        shirt, trousers = names[chosen[2 * i]], names[chosen[2 * i + 1]]
        outfits.append(Outfit(
            shirt, trousers, _jitter(rng, COLOURS[shirt]), _jitter(rng, COLOURS[trousers]),
            _jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))]), HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))],
            SHOE_COLOURS[rng.integers(len(SHOE_COLOURS))]))
    return outfits


def sample_background(rng: np.random.Generator, used: set[str],
                      kinds: Sequence[str] = BACKGROUND_KINDS) -> Background:
    """A background of one of ``kinds`` (:data:`BACKGROUND_KINDS`, all by default) and one or two colours not
    in ``used`` (the clothing colours)."""
    free = [name for name in COLOURS if name not in used]
    kind = str(rng.choice(check_background_kinds(kinds)))
    count = 1 if kind in ("plain", "noisy") else 2
    picks = rng.choice(len(free), size=count, replace=False)
    return Background(kind, tuple(free[i] for i in picks))


def check_background_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """``kinds`` as a tuple, or HumanSDError naming the first one not in :data:`BACKGROUND_KINDS`."""
    for kind in kinds:
        if kind not in BACKGROUND_KINDS:
            raise HumanSDError(f"background kind {kind!r}: choose from {list(BACKGROUND_KINDS)}")
    if not kinds:
        raise HumanSDError(f"background kinds: give at least one of {list(BACKGROUND_KINDS)}")
    return tuple(kinds)


def render_background(rng: np.random.Generator, background: Background, width: int, height: int) -> np.ndarray:
    """RGB uint8 ``[height, width, 3]`` for ``background`` (pattern geometry drawn from ``rng``)."""
    c = [np.array(_jitter(rng, COLOURS[name]), np.float32) for name in background.colours]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) / max(width, height)
    angle = rng.uniform(0, np.pi)
    along = xs * np.cos(angle) + ys * np.sin(angle)
    if background.kind == "plain":
        image = np.broadcast_to(c[0], (height, width, 3))
    elif background.kind == "gradient":
        t = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
        image = c[0] * (1 - t[..., None]) + c[1] * t[..., None]
    elif background.kind == "striped":
        angle = rng.choice([0.0, np.pi / 2, np.pi / 4, 3 * np.pi / 4])
        along = xs * np.cos(angle) + ys * np.sin(angle)
        stripe = (np.floor(along / rng.uniform(0.06, 0.2)) % 2)[..., None]
        image = c[0] * (1 - stripe) + c[1] * stripe
    elif background.kind == "checkered":
        period = rng.uniform(0.08, 0.25)
        check = ((np.floor(xs / period) + np.floor(ys / period)) % 2)[..., None]
        image = c[0] * (1 - check) + c[1] * check
    else:  # noisy: smooth value noise modulating the colour's brightness, plus grain
        cells = int(rng.integers(3, 9))
        coarse = rng.uniform(0.7, 1.3, (cells, cells)).astype(np.float32)
        smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        grain = rng.normal(1.0, 0.06, (height, width)).astype(np.float32)
        image = c[0] * (smooth * grain)[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def describe_person(outfit: Outfit) -> str:
    return f"in {_a(outfit.shirt_name)} shirt and {outfit.trousers_name} trousers"


def describe_background(background: Background) -> str:
    names = background.colours
    if background.kind == "plain":
        return f"on a plain {names[0]} background"
    if background.kind == "noisy":
        return f"on a noisy {names[0]} background"
    if background.kind == "gradient":
        return f"on {_a(names[0])} to {names[1]} gradient background"
    return f"on {_a(names[0])} and {names[1]} {background.kind} background"


def caption(outfits: list[Outfit], background: Background) -> str:
    """E.g. ``"a person in a red shirt and blue trousers, on a plain green background"``.

    Several people are listed left to right as the caller orders ``outfits``:
    ``"two people, one in a ... and one in a ..., on a ..."``.
    """
    where = describe_background(background)
    if len(outfits) == 1:
        return f"a person {describe_person(outfits[0])}, {where}"
    if not outfits:
        return f"an empty scene {where}"
    parts = [f"one {describe_person(o)}" for o in outfits]
    listed = ", ".join(parts[:-1]) + f" and {parts[-1]}"
    return f"{NUMBER_WORDS.get(len(outfits), f'{len(outfits)} people')}, {listed}, {where}"
