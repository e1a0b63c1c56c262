"""``humansd demo --output DIR``: the main job with the embedded model — a pose in, a person in that pose out.

Loads the tiny HumanSD shipped inside the package (``assets/weights/humansd_tiny.safetensors``,
trained on synthetic mannequins; see ``assets/MODEL_CARD.md``), generates one image for
each bundled example pose (fitted onto the model's 128 x 128 canvas) and for a fixed set
of sampled poses with their captions, and writes ``DIR/demo.png``: a contact sheet of
(pose | result | overlay) triplets; all images are sampled in one batch, each pose with
its own prompt. Then the judge estimator scores how well the images follow their poses,
and the background and shirt colours read back from the images are compared with the
ones their prompts name; the last line printed is
``pose accuracy: PCK@0.1=<x> OKS=<y> random-pose baseline PCK@0.1=<z> | prompt adherence:
background=<b> shirt=<s> (chance <cb> / <cs>)``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import embedded
from ..errors import CheckpointError, HumanSDError
from ..assets import EMBEDDED, ESTIMATOR_NAMES, resolve_checkpoint, shipped_weights
from . import add_command
from .pose import write_png

if TYPE_CHECKING:  # pragma: no cover - numpy and torch are imported by the handler, after the files are checked
    import numpy as np
    import torch

ZOOM = 2  # tiles are drawn at 2x the model's size
GAP = 6
COLUMNS = 3  # triplets per row
LABEL_HEIGHT = 18


def _tile(image: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` in ``[0, 1]`` → RGB uint8 ``[ZOOM·H, ZOOM·W, 3]`` (nearest, so pixels stay visible)."""
    import numpy as np
    import torch

    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(array.repeat(ZOOM, 0).repeat(ZOOM, 1))


def contact_sheet(triplets: list[tuple[str, list[np.ndarray]]], columns: int = COLUMNS) -> np.ndarray:
    """Labelled rows of tile triplets (each RGB uint8 ``[T, T, 3]``) on a grey sheet."""
    import cv2
    import numpy as np

    tile = triplets[0][1][0].shape[0]
    cell_w, cell_h = 3 * tile + 2 * GAP, tile + LABEL_HEIGHT
    rows = -(-len(triplets) // columns)
    sheet = np.full((rows * (cell_h + GAP) + GAP, columns * (cell_w + 3 * GAP) + GAP, 3), 48, np.uint8)
    for i, (label, tiles) in enumerate(triplets):
        top = GAP + (i // columns) * (cell_h + GAP)
        left = GAP + (i % columns) * (cell_w + 3 * GAP)
        cv2.putText(sheet, label, (left, top + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (225, 225, 225), 1, cv2.LINE_AA)
        for k, image in enumerate(tiles):
            x = left + k * (tile + GAP)
            sheet[top + LABEL_HEIGHT:top + LABEL_HEIGHT + tile, x:x + tile] = image
    return sheet


def _label(index: int, prompt: str, limit: int = 44) -> str:
    return f"{index}: {prompt if len(prompt) <= limit else prompt[:limit - 3] + '...'}"


def _demo(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    model_path = resolve_checkpoint(args.model, "--model")
    judge_path = shipped_weights(ESTIMATOR_NAMES["judge"])

    import torch  # only now: the files are there

    from ..pipeline import HumanSDPipeline
    from ..pose.mannequin_estimator import TinyHeatmapEstimator

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        pipe = HumanSDPipeline.from_checkpoint(model_path)
    except HumanSDError as exc:
        if str(model_path) in str(exc):
            raise
        raise CheckpointError(f"{model_path}: damaged or not a HumanSD model ({exc})") from exc
    judge = TinyHeatmapEstimator.from_file(judge_path)
    size = embedded.SIZE
    items = embedded.evaluation_set(count=args.count)
    print(f"model {model_path.name}: {len(items)} poses at {size}x{size}, {args.steps} DDIM steps, cfg {args.cfg}")
    # One batch of every pose with its own prompt; image i uses seed + i, as if generated alone.
    result = pipe.generate([pose for pose, _ in items], [prompt for _, prompt in items], negative="",
                           added_prompt="", steps=args.steps, cfg=args.cfg, seed=args.seed, width=size, height=size,
                           progress=False)
    images_t, skeletons_t = result.images, result.skeletons
    mask = (skeletons_t > 0).any(dim=1, keepdim=True)
    overlays = torch.where(mask, 0.5 * skeletons_t + 0.5 * images_t, images_t)
    triplets = [(_label(i, prompt), [_tile(skeletons_t[i]), _tile(images_t[i]), _tile(overlays[i])])
                for i, (_, prompt) in enumerate(items)]
    sheet_path = Path(args.output) / "demo.png"
    write_png(sheet_path, contact_sheet(triplets))
    score = embedded.score_poses(images_t, [pose for pose, _ in items], judge)
    adherence = embedded.score_adherence(images_t, items)
    print(f"wrote {sheet_path} (pose | result | overlay for {len(items)} poses) in "
          f"{time.perf_counter() - began:.1f} s")
    if score.pck < 3 * score.baseline_pck:
        print("warning: the images follow their poses less than 3x better than chance; the weights may be damaged")
    print(f"{score.line()} | {adherence.line()}")
    return 0


def _at_least(low: int):  # noqa: ANN202 - an argparse type
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}")
        return value
    return parse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    parser = add_command(subparsers, "demo", __doc__, "generate people in given poses with the embedded tiny model")
    parser.add_argument("--output", default="out/demo", help="output folder (default %(default)s)")
    parser.add_argument("--model", default=EMBEDDED,
                        help=f"a HumanSD checkpoint trained at 128 x 128, or {EMBEDDED} for the tiny model shipped "
                             "in the package (default %(default)s)")
    parser.add_argument("--count", type=_at_least(0), default=embedded.EVAL_COUNT,
                        help="sampled poses besides the bundled examples (default %(default)s)")
    parser.add_argument("--steps", type=_at_least(1), default=embedded.STEPS, help="DDIM steps (default %(default)s)")
    parser.add_argument("--cfg", type=float, default=embedded.CFG, help="guidance scale (default %(default)s)")
    parser.add_argument("--seed", type=int, default=embedded.SEED, help="seed of the first image (default %(default)s)")
    parser.add_argument("--threads", type=_at_least(0), default=1,
                        help="torch CPU threads (default %(default)s: as fast for a model this small, and it does "
                             "not stall on a busy machine; 0: torch's default)")
    parser.set_defaults(func=_demo)

