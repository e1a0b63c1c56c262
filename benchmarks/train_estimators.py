"""Train the two shipped tiny pose estimators on synthetic mannequins and report their accuracy.

    python benchmarks/train_estimators.py                # both, writes humansd_core/assets/weights/
    python benchmarks/train_estimators.py --only judge --minutes 8 --out /tmp/w

Roles (humansd_core.training.tiny_estimator): ``loss`` = stride-4 conv net (seed 1),
the heatmap-guided loss's estimator; ``judge`` = small U-Net (seed 2), which scores
pose accuracy, so no result is graded by the network that shaped it. Each trains
from scratch on fresh scenes for ``--steps`` steps or ``--minutes`` minutes of wall
time (whichever ends first; the learning-rate schedule is laid out for
``--steps``), then each is scored on the same held-out scenes (PCK@0.1 of the person's box
diagonal, mean OKS; top-down with the true boxes) drawn at its working size and at
128 px. The safetensors files carry the architecture, the seed, the steps run and
the held-out scores in their metadata.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humansd_core.training.tiny_estimator import SHIPPED, EstimatorConfig  # noqa: E402
from humansd_core.training.tiny_estimator_train import evaluate, train_estimator  # noqa: E402

ROLES = {
    "loss": (EstimatorConfig("strided", 16, 64), 1),
    "judge": (EstimatorConfig("unet", 16, 64), 2),
}
EVAL_SEED = 99  # held-out scenes: seed stream 99 + EVAL_SEED_OFFSET, never drawn in training


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(ROLES), help="train one role only")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=8.0, help="wall-time limit per estimator")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (the scene worker is another process; 2 threads ran 8x slower here)")
    parser.add_argument("--eval-count", type=int, default=400)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "humansd_core/assets/weights"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    for role in [args.only] if args.only else list(ROLES):
        config, seed = ROLES[role]
        print(f"== {role}: {config} seed {seed}", flush=True)
        result = train_estimator(config, seed=seed, steps=args.steps, batch_size=args.batch,
                                 time_limit=args.minutes * 60, log=lambda s: print("  " + s, flush=True))
        at_work = evaluate(result.estimator, EVAL_SEED, args.eval_count)
        at_128 = evaluate(result.estimator, EVAL_SEED, args.eval_count, size=128)
        print(f"  trained {result.steps} steps in {result.seconds:.0f} s ({result.seconds / result.steps:.2f} s/step)")
        print(f"  held-out {args.eval_count} scenes at {config.input_size} px: PCK@0.1 {at_work.pck:.3f}  "
              f"OKS {at_work.oks:.3f}; at 128 px: PCK@0.1 {at_128.pck:.3f}  OKS {at_128.oks:.3f}")
        path = Path(args.out) / SHIPPED[role]
        meta = {"role": role, "seed": str(seed), "steps": str(result.steps), "batch": str(args.batch),
                "train_seconds": f"{result.seconds:.0f}",
                "heldout": json.dumps({"count": args.eval_count, "pck@0.1": round(at_work.pck, 4),
                                       "oks": round(at_work.oks, 4), "pck@0.1_128px": round(at_128.pck, 4)}),
                "command": "python benchmarks/train_estimators.py " + " ".join(sys.argv[1:])}
        result.estimator.save(path, meta)
        print(f"  wrote {path} ({path.stat().st_size / 1e6:.2f} MB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
