"""How well the embedded model's people follow their poses: the evaluation set and the judge's score.

The *judge* estimator (a tiny heatmap network trained on mannequins, not the one that
shaped the training loss) reads keypoints from each generated image inside the
condition person's box (:mod:`humansd_core.pose.heatmap_decode`); PCK@0.1 and OKS
(:mod:`humansd_core.pose.metrics`) compare them with the condition pose. The baseline
scores the same images against other images' poses (a fixed derangement), i.e. what a
model that ignored the pose would get. ``humansd demo`` prints :meth:`PoseScore.line`;
the recipe scores its models and its estimators with the same functions.

Prompt adherence (:mod:`humansd_core.synthetic.colour_reading`): the background colour
read from each image's border and each person's shirt colour read from the pose's torso
are compared with the colours the prompt names; the chance level scores the same
readings against the prompts of the same derangement. The demo prints
:meth:`~humansd_core.synthetic.colour_reading.Adherence.line` beside the pose score.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import CheckpointError, HumanSDError
from ..pose import PoseSet
from ..pose.heatmap_decode import keypoints_from_heatmaps, person_boxes
from ..pose.heatmaps import HeatmapEstimator
from ..pose.metrics import pck, pose_agreement
from .model import CFG, EVAL_COUNT, EVAL_SEED, EXAMPLE_PROMPTS, MAX_PEOPLE, SEED, SIZE, STEPS, example_poses

if TYPE_CHECKING:  # pragma: no cover - imported where used (the colour reading needs OpenCV)
    from ..synthetic.colour_reading import Adherence


def evaluation_set(count: int = EVAL_COUNT, seed: int = EVAL_SEED, size: int = SIZE, examples: bool = True,
                   plain: bool = True) -> list[tuple[PoseSet, str]]:
    """``(pose, prompt)`` pairs: the bundled examples (if ``examples``) then ``count`` sampled scenes.

    Sampled scenes are :func:`humansd_core.synthetic.generate_scene` of ``seed`` (1 to
    :data:`~.model.MAX_PEOPLE` people); only their poses and clothing are kept. The prompt
    names the people's clothes and, with ``plain``, a plain background of a colour no one
    wears (the demo's request: a person, not a pattern); without it, the scene's own
    caption, whose striped or checkered backgrounds the tiny model renders poorly.
    """
    from ..synthetic import COLOURS, Background, caption, generate_scene, scene_rng

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


@torch.no_grad()
def generate_images(pipe: object, items: Sequence[tuple[PoseSet, str]], steps: int = STEPS,
                    cfg: float = CFG) -> torch.Tensor:
    """Images ``[N,3,SIZE,SIZE]`` in ``[0,1]`` of ``(pose, prompt)`` items as the demo makes them.

    ``pipe``: a :class:`~humansd_core.pipeline.HumanSDPipeline`; DDIM ``steps``, guidance
    ``cfg``, empty negative and added prompt, seed ``SEED + i``.
    """
    return torch.cat([pipe.generate(pose, prompt, negative="", added_prompt="", steps=steps, cfg=cfg,
                                    seed=SEED + i, width=SIZE, height=SIZE, progress=False).images
                      for i, (pose, prompt) in enumerate(items)])


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A fixed permutation of ``range(n)`` with no fixed point (``n >= 2``): the baseline's pairing."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        if n < 2 or not np.any(order == np.arange(n)):
            return order


@dataclass(frozen=True)
class Accuracy:
    """PCK@α over all joints and mean OKS over all people of a set of images."""

    pck: float
    oks: float
    joints: int
    people: int


def pose_accuracy(estimator: HeatmapEstimator, images: torch.Tensor, references: Sequence[PoseSet],
                  alpha: float = 0.1, batch_size: int = 32) -> Accuracy:
    """Score ``estimator`` on ``images [N,3,H,W]`` in ``[0,1]`` against ``references`` (boxes from them)."""
    if len(images) != len(references):
        raise HumanSDError(f"pose_accuracy: {len(images)} images for {len(references)} poses")
    correct = total = 0
    oks: list[float] = []
    for start in range(0, len(images), batch_size):
        heat = estimator(images[start:start + batch_size])
        for maps, ref in zip(heat, references[start:start + batch_size]):
            pred = keypoints_from_heatmaps(maps, ref.canvas_width, ref.canvas_height, person_boxes(ref))
            c, t = pck(pred, ref, alpha)
            correct, total = correct + c, total + t
            oks.extend(pose_agreement(ref, pred, threshold=0.0).per_person)
    return Accuracy(correct / max(total, 1), float(np.mean(oks)) if oks else 0.0, total, len(oks))


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


def score_poses(images: torch.Tensor, poses: Sequence[PoseSet], judge: HeatmapEstimator | None = None) -> PoseScore:
    """Score ``images [N,3,H,W]`` in ``[0,1]`` against ``poses`` (and a derangement of them) with the judge.

    Every pose must be on the images' canvas. ``judge``: a heatmap estimator (default:
    the shipped judge, :func:`humansd_core.pose.mannequin_estimator.shipped_estimator`).
    """
    from ..pose.mannequin_estimator import shipped_estimator

    if len(poses) < 2:
        raise CheckpointError("score_poses: at least two images are needed for the random-pose baseline")
    judge = judge if judge is not None else shipped_estimator("judge")
    matched = pose_accuracy(judge, images, list(poses))
    baseline = pose_accuracy(judge, images, [poses[int(j)] for j in derangement(len(poses))])
    return PoseScore(matched.pck, matched.oks, baseline.pck, baseline.oks, len(poses))


def score_adherence(images: torch.Tensor, items: Sequence[tuple[PoseSet, str]]) -> Adherence:
    """Background and shirt colour adherence of ``images [N,3,H,W]`` in ``[0,1]`` to ``items``' prompts.

    Every pose must be on the images' canvas (:func:`~humansd_core.synthetic.colour_reading.prompt_adherence`;
    the chance level: the prompts of :func:`derangement`, as the pose score's baseline).
    """
    from ..synthetic.colour_reading import prompt_adherence

    if len(items) < 2:
        raise HumanSDError("score_adherence: at least two images are needed for the chance level")
    return prompt_adherence(images, [pose for pose, _ in items], [prompt for _, prompt in items],
                            derangement(len(items)))
