"""The embedded tiny HumanSD: where it lives, how it is checked, how its pose accuracy is scored.

The package ships a small HumanSD trained on synthetic mannequins
(``humansd_core/assets/weights/humansd_tiny.safetensors``, recipe and numbers in
``humansd_core/assets/MODEL_CARD.md``) so that a fresh clone can show the main job
without downloading anything. Its generation settings and its evaluation set live
here, shared by ``humansd demo``, the tests and the recipe script.

Pose accuracy: the *judge* estimator (a tiny heatmap network trained on mannequins,
not the one that shaped the training loss) reads keypoints from each generated image
inside the condition person's box; PCK@0.1 and OKS compare them with the condition
pose. The baseline scores the same images against other images' poses (a fixed
derangement), i.e. what a model that ignored the pose would get.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CheckpointError
from .shipped_files import (  # noqa: F401  (re-exported: the embedded model's file checks)
    EMBEDDED_MODEL_NAME,
    POSES_DIR,
    SUMS_NAME,
    WEIGHTS_DIR,
    check_weights,
    file_digest,
    record_digest,
    shipped_digest,
)

if TYPE_CHECKING:  # pragma: no cover - imported where used: reading the constants stays light (the CLI parser)
    import numpy as np
    import torch

    from .pose import PoseSet

MODEL_NAME = EMBEDDED_MODEL_NAME
SIZE = 128  # the model's canvas (16 x 16 latents)
# Generation settings of the demo and the evaluation (the model knows no negative prompt:
# it was trained with caption dropout, so "" is its unconditional text).
STEPS = 25
CFG = 3.0
SEED = 1234
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


def weights_dir() -> Path:
    """``humansd_core/assets/weights`` of this copy of the package (found from ``__file__``)."""
    return WEIGHTS_DIR


def embedded_model_path() -> Path:
    """Path of the embedded model file (it may be missing in a broken install; see :func:`check_weights`)."""
    return weights_dir() / MODEL_NAME


def example_poses(size: int = SIZE) -> list[PoseSet]:
    """The bundled example poses (first frame of each ``assets/poses/*.json``), fitted onto ``size²``."""
    from .pose import load_pose_file, place_on_canvas

    return [place_on_canvas(load_pose_file(path)[0], size, size, "fit") for path in sorted(POSES_DIR.glob("*.json"))]


def evaluation_set(count: int = EVAL_COUNT, seed: int = EVAL_SEED, size: int = SIZE, examples: bool = True,
                   plain: bool = True) -> list[tuple[PoseSet, str]]:
    """``(pose, prompt)`` pairs: the bundled examples (if ``examples``) then ``count`` sampled scenes.

    Sampled scenes are :func:`humansd_core.synthetic.generate_scene` of ``seed`` (1 to
    :data:`MAX_PEOPLE` people); only their poses and clothing are kept. The prompt names
    the people's clothes and, with ``plain``, a plain background of a colour no one
    wears (the demo's request: a person, not a pattern); without it, the scene's own
    caption, whose striped or checkered backgrounds the tiny model renders poorly.
    """
    import numpy as np

    from .synthetic import COLOURS, Background, caption, generate_scene, scene_rng

    items = list(zip(example_poses(size), EXAMPLE_PROMPTS)) if examples else []
    for index in range(count):
        scene = generate_scene(scene_rng(seed, index), size, max_people=MAX_PEOPLE)
        text = scene.caption
        if plain:
            worn = {name for o in scene.outfits for name in (o.shirt_name, o.trousers_name)}
            free = [name for name in COLOURS if name not in worn]
            colour = free[int(np.random.default_rng([seed, index, 1]).integers(len(free)))]
            text = caption(scene.outfits, Background("plain", (colour,)))
        items.append((scene.pose, text))
    return items


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A fixed permutation of ``range(n)`` with no fixed point (``n >= 2``): the baseline's pairing."""
    import numpy as np

    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        if n < 2 or not np.any(order == np.arange(n)):
            return order


@dataclass(frozen=True)
class PoseScore:
    """Judge PCK@0.1 / OKS of images against their condition poses, and against random other poses."""

    pck: float
    oks: float
    baseline_pck: float
    baseline_oks: float
    images: int

    def line(self) -> str:
        return (f"pose accuracy: PCK@0.1={self.pck:.3f} OKS={self.oks:.3f} "
                f"random-pose baseline PCK@0.1={self.baseline_pck:.3f}")


def score_poses(images: torch.Tensor, poses: Sequence[PoseSet], judge: object | None = None) -> PoseScore:
    """Score ``images [N,3,H,W]`` in ``[0,1]`` against ``poses`` (and a derangement of them) with the judge.

    Every pose must be on the images' canvas. ``judge``: a heatmap estimator (default:
    the shipped judge, :func:`humansd_core.training.tiny_estimator.shipped_estimator`).
    """
    from .training.tiny_estimator import shipped_estimator
    from .training.tiny_estimator_eval import pose_accuracy

    if len(poses) < 2:
        raise CheckpointError("score_poses: at least two images are needed for the random-pose baseline")
    judge = judge if judge is not None else shipped_estimator("judge")
    matched = pose_accuracy(judge, images, list(poses))
    baseline = pose_accuracy(judge, images, [poses[int(j)] for j in derangement(len(poses))])
    return PoseScore(matched.pck, matched.oks, baseline.pck, baseline.oks, len(poses))

