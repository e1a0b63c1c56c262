"""The embedded tiny HumanSD: the demo model shipped inside the package, its evaluation and its recipe.

* :mod:`.model`: where its file is, its canvas, the demo's generation settings, the
  example poses;
* :mod:`.evaluation`: the evaluation set, the judge's pose-accuracy score and the
  prompt adherence read from the images' colours (the last line ``humansd demo`` prints);
* :mod:`.recipe`: how each shipped weights file was made
  (``python -m humansd_core.embedded.recipe.<step>``), the only code that writes into
  the package; its settings are the presets in ``humansd_core/assets/presets/``.
"""
from __future__ import annotations

from ..lazy_exports import lazy_getattr
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

# The evaluation needs numpy and torch: imported on first use, so reading the settings stays light.
_EXPORTS = {name: "evaluation" for name in (
    "Accuracy", "PoseScore", "derangement", "evaluation_set", "generate_images", "pose_accuracy", "score_adherence",
    "score_poses")}
__all__ = [
    "CFG", "EVAL_COUNT", "EVAL_SEED", "EXAMPLE_PROMPTS", "MAX_PEOPLE", "MODEL_NAME", "SEED", "SIZE", "STEPS",
    "embedded_model_path", "example_poses", *sorted(_EXPORTS),
]

__getattr__ = lazy_getattr(__name__, _EXPORTS)
