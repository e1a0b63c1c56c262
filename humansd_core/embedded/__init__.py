"""The embedded tiny HumanSD: the demo model shipped inside the package, its evaluation and its recipe.

* :mod:`.model`: where its file is, its canvas, the demo's generation settings, the
  example poses;
* :mod:`.evaluation`: the evaluation set and the judge's pose-accuracy score (the last
  line ``humansd demo`` prints);
* :mod:`.recipe`: how each shipped weights file was made
  (``python -m humansd_core.embedded.recipe.<step>``), the only code that writes into
  the package; its settings are the presets in ``humansd_core/assets/presets/``.
"""
from __future__ import annotations

from .evaluation import Accuracy, PoseScore, derangement, evaluation_set, generate_images, pose_accuracy, score_poses
from .model import (
    CFG,
    EVAL_COUNT,
    EVAL_SEED,
    EXAMPLE_PROMPTS,
    MAX_PEOPLE,
    MODEL_NAME,
    SEED,
    SIZE,
    STEPS,
    embedded_model_path,
    example_poses,
)

__all__ = [
    "CFG", "EVAL_COUNT", "EVAL_SEED", "EXAMPLE_PROMPTS", "MAX_PEOPLE", "MODEL_NAME", "SEED", "SIZE", "STEPS",
    "Accuracy", "PoseScore", "derangement", "embedded_model_path", "evaluation_set", "example_poses",
    "generate_images", "pose_accuracy", "score_poses",
]
