"""Synthetic training data: random people as shaded mannequins over simple backgrounds, with captions.

``sample_scene(rng, size) -> (image, PoseSet, caption)`` for in-memory training;
``write_dataset(out, count, size, seed)`` for the folder layout the trainer reads
(``humansd synth``). Needs no weights and no network.
"""
from __future__ import annotations

from .appearance import COLOURS, Background, Outfit, caption
from .poses import JOINT_LIMITS, PlacedPerson, limb_angle, sample_people
from .scene import Scene, generate_scene, sample_scene, scene_rng, write_dataset

__all__ = [
    "COLOURS", "JOINT_LIMITS", "Background", "Outfit", "PlacedPerson", "Scene", "caption", "generate_scene",
    "limb_angle", "sample_people", "sample_scene", "scene_rng", "write_dataset",
]
