"""The run's loss log (JSONL) and its plot (PNG).

The log gets one JSON object a line (``step``, ``loss``, ``plain_loss``, ``lr``, ...),
appended as training goes; a resumed run first rewrites it (atomically) without the
lines after its checkpoint's step, so the log of an interrupted-and-resumed run reads
like an uninterrupted one. The plot is drawn with PIL (no matplotlib needed).
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..fileio import atomic_path, atomic_write_text


class LossLog:
    """Append-only JSONL log of training statistics at ``path``."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        self.entries: list[dict] = []
        if resume_step is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a kill
                    continue
                if isinstance(entry, dict) and entry.get("step", math.inf) <= resume_step:
                    self.entries.append(entry)
        atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in self.entries))

    def append(self, entry: dict) -> None:
        self.entries.append(entry)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < 3 or window < 2:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def plot_losses(entries: Sequence[dict], path: Path, key: str = "loss", size: tuple[int, int] = (640, 360)) -> None:
    """Write a line plot of ``entry[key]`` over ``entry["step"]`` (grey: raw, blue: moving mean)."""
    width, height = size
    left, right, top, bottom = 64, 16, 24, 32
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    points = [(e["step"], e[key]) for e in entries if key in e and math.isfinite(e[key])]
    draw.text((left, 6), f"{key} over steps ({len(points)} points)", fill="black")
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    if points:
        steps = np.array([p[0] for p in points], dtype=np.float64)
        values = np.array([p[1] for p in points], dtype=np.float64)
        lo, hi = float(values.min()), float(values.max())
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        s0, s1 = float(steps.min()), float(max(steps.max(), steps.min() + 1))

        def xy(s: np.ndarray, v: np.ndarray) -> list[tuple[float, float]]:
            x = left + (s - s0) / (s1 - s0) * (width - left - right)
            y = height - bottom - (v - lo) / (hi - lo) * (height - top - bottom)
            return list(zip(x.tolist(), y.tolist()))

        if len(points) > 1:
            draw.line(xy(steps, values), fill=(170, 170, 170), width=1)
            draw.line(xy(steps, _smooth(values, max(2, len(values) // 20))), fill=(30, 90, 200), width=2)
        else:
            (x, y), = xy(steps, values)
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(30, 90, 200))
        for value, y in ((hi, top), (lo, height - bottom)):
            draw.text((4, y - 6), f"{value:.4g}", fill="black")
        draw.text((left, height - bottom + 6), f"{int(s0)}", fill="black")
        draw.text((width - right - 48, height - bottom + 6), f"{int(s1)}", fill="black")
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
