"""Reference inference defaults of HumanSD, in one place.

These are the values of the paper's demo script (``scripts/pose2img.py``): DDIM, 50
steps, eta 0, guidance 10, seed 1234, 512x512, its negative prompt and the prompt it
appends to the user's. The pipeline, the CLI and the ComfyUI nodes all read them from
here, and so do the skeleton renderer (keypoint threshold 0.05, line thickness 10) and
the pose placement (``fit``). Plain values only: option lists read them without
importing numpy or torch.
"""
from __future__ import annotations

STEPS = 50
CFG = 10.0
SAMPLER = "ddim"
SCHEDULE = "uniform"
ETA = 0.0  # DDIM's; the API's eta=None means each sampler's own default (DDIM 0)
SEED = 1234
WIDTH = 512
HEIGHT = 512
STRENGTH = 1.0

# Names of humansd_core.sampling.SAMPLERS / SCHEDULES, for option lists that should not
# import torch (the CLI parser, node widgets); tests keep them equal.
SAMPLER_NAMES = ("ddim", "euler", "euler_ancestral", "dpmpp_2m")
SCHEDULE_NAMES = ("uniform", "karras")

# The skeleton image (humansd_core.pose.render): keypoints with confidence above the
# threshold are drawn, limbs 10 px thick (as the 512-px model was trained).
KEYPOINT_THRESHOLD = 0.05
LINE_THICKNESS = 10
# How a pose's canvas meets the output (humansd_core.pose.transforms.place_on_canvas):
# every entry point's default is "fit", the whole canvas scaled onto the output.
PLACE_MODES = ("as-is", "fit", "fill")
PLACE = "fit"

NEGATIVE_PROMPT = (
    "longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, fewer digits, "
    "cropped, worst quality, low quality"
)
ADDED_PROMPT = "detailed background, best quality, extremely detailed"


def with_added_prompt(prompt: str, added_prompt: str = ADDED_PROMPT) -> str:
    """The prompt the model sees: ``"<prompt>, <added_prompt>"`` (the reference's join).

    An empty ``added_prompt`` leaves ``prompt`` unchanged; an empty ``prompt`` gives
    ``added_prompt`` alone.
    """
    parts = [p for p in (prompt.strip(), added_prompt.strip()) if p]
    return ", ".join(parts)
