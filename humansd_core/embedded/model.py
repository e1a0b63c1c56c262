"""The embedded tiny HumanSD: where its file lives, its canvas, the demo's generation settings, the example poses.

The package ships a small HumanSD trained on synthetic mannequins
(``humansd_core/assets/weights/humansd_tiny.safetensors``, recipe and numbers in
``humansd_core/assets/MODEL_CARD.md``) so that a fresh clone can show the main job
without downloading anything. Its generation settings live here, shared by
``humansd demo``, the evaluation (:mod:`.evaluation`), the tests and the recipe; this
module imports neither numpy nor torch, so the CLI parser can read them.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import defaults
from ..assets import EMBEDDED_MODEL_NAME, POSES_DIR, WEIGHTS_DIR

if TYPE_CHECKING:  # pragma: no cover - imported where used: reading the settings stays light (the CLI parser)
    from ..pose import PoseSet

MODEL_NAME = EMBEDDED_MODEL_NAME
SIZE = 128  # the model's canvas (16 x 16 latents)
# Generation settings of the demo and the evaluation (the model knows no negative prompt:
# it was trained with caption dropout, so "" is its unconditional text).
STEPS = 25
CFG = 3.0
SEED = defaults.SEED
EVAL_SEED = 20250  # scenes of this seed are not in the training set (seed 0)
EVAL_COUNT = 24
MAX_PEOPLE = 2
EXAMPLE_PROMPTS = (
    "a person in a red shirt and blue trousers, on a plain white background",
    "a person in a yellow shirt and black trousers, on a plain teal background",
    "a person in a green shirt and white trousers, on a plain grey background",
    "two people, one in a blue shirt and grey trousers and one in an orange shirt and brown trousers, "
    "on a plain pink background",
)


def embedded_model_path() -> Path:
    """Path of the embedded model file (missing in a broken install: :func:`~humansd_core.assets.check_weights`)."""
    return WEIGHTS_DIR / MODEL_NAME


def example_poses(size: int = SIZE) -> list[PoseSet]:
    """The bundled example poses (first frame of each ``assets/poses/*.json``), fitted onto ``size²``."""
    from ..pose import load_pose_file, place_on_canvas

    return [place_on_canvas(load_pose_file(path)[0], size, size, "fit") for path in sorted(POSES_DIR.glob("*.json"))]
