"""``humansd demo --output DIR``: a first look at the project without any weights.

Renders the bundled example poses (``humansd_core/assets/poses/*.json``, one per
format the readers accept) as HumanSD skeleton images, letterboxed into 512 x 512
tiles, and writes them as one contact sheet ``DIR/demo_poses.png``.
"""
from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from ..pose import load_pose_file, place_on_canvas, render_skeleton
from .pose import write_png

TILE = 512
GAP = 8
COLUMNS = 2


def example_pose_files() -> list[Path]:
    """The bundled example pose files, sorted by name."""
    folder = resources.files("humansd_core") / "assets" / "poses"
    return sorted(Path(str(folder)).glob("*.json"))


def contact_sheet(tiles: list[tuple[str, np.ndarray]], columns: int = COLUMNS) -> np.ndarray:
    """Labelled RGB uint8 ``[T, T, 3]`` tiles on a grey grid: ``[rows*(T+gap)+gap, ...]``."""
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (TILE + GAP) + GAP, columns * (TILE + GAP) + GAP, 3), 64, np.uint8)
    for i, (label, tile) in enumerate(tiles):
        top, left = GAP + (i // columns) * (TILE + GAP), GAP + (i % columns) * (TILE + GAP)
        sheet[top:top + TILE, left:left + TILE] = tile
        cv2.putText(sheet, label, (left + 10, top + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (230, 230, 230), 2, cv2.LINE_AA)
    return sheet


def _demo(args: argparse.Namespace) -> int:
    tiles = []
    for path in example_pose_files():
        for i, frame in enumerate(load_pose_file(path)):
            label = path.stem if i == 0 else f"{path.stem} #{i}"
            tiles.append((label, render_skeleton(place_on_canvas(frame, TILE, TILE, "fit"))))
            print(f"{path.name}: {frame.num_people} people on {frame.canvas_width}x{frame.canvas_height}")
    output = Path(args.output) / "demo_poses.png"
    write_png(output, contact_sheet(tiles))
    print(f"wrote {output} ({len(tiles)} skeleton images; the image model is not bundled yet)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    parser = subparsers.add_parser("demo", help="render the bundled example poses into a contact sheet")
    parser.add_argument("--output", default="out/demo", help="output folder (default %(default)s)")
    parser.set_defaults(func=_demo)
