"""``humansd pose``: render skeleton images from pose files, convert pose files.

``humansd pose render INPUT -W 512 -H 512 [--place fit|fill|as-is] -o out.png`` reads
a pose file (OpenPose or ``POSE_KEYPOINT`` or COCO ``.json``, HumanSD/MMPose ``.npz``),
scales its canvas onto W x H (``fit``, the default, as everywhere), prints what it read
and writes the skeleton image(s) atomically. One frame is written to ``out.png``
itself; several frames go to ``out_0000.png``, ``out_0001.png``, ... (the output name
with a four-digit frame index before the suffix).

``humansd pose convert INPUT -o out.json`` writes the poses as OpenPose JSON (one
frame: a frame dict) or ``POSE_KEYPOINT`` (several frames: a list of frame dicts).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from .. import defaults
from ..errors import HumanSDError
from ..fileio import atomic_path
from . import add_command

if TYPE_CHECKING:  # pragma: no cover - numpy and the pose code are imported by the handlers
    import numpy as np

    from ..pose.keypoints import PoseSet


def frame_paths(output: Path, count: int) -> list[Path]:
    """``[output]`` for one frame, else ``stem_0000.suffix``, ``stem_0001.suffix``, ..."""
    if count == 1:
        return [output]
    return [output.with_name(f"{output.stem}_{i:04d}{output.suffix}") for i in range(count)]


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB uint8 ``[H, W, 3]`` image as PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def _read(args: argparse.Namespace) -> list[PoseSet]:
    from ..pose import filter_people, load_pose_file

    canvas = (args.width, args.height) if args.width and args.height else None
    frames = load_pose_file(args.input, canvas=canvas)
    if not frames:
        raise HumanSDError(f"{args.input}: no frames in the file")
    return [filter_people(frame, args.min_score) for frame in frames]


def _render(args: argparse.Namespace) -> int:
    from ..pose import place_and_check, render_skeleton, scaled_thickness, threshold_keypoints

    frames = _read(args)
    mode = args.place
    images, kept = [], 0
    for index, frame in enumerate(frames):
        width, height = args.width or frame.canvas_width, args.height or frame.canvas_height
        placed = place_and_check(frame, width, height, mode, frame=index, threshold=args.threshold)
        thickness = scaled_thickness(width, height) if args.scale_thickness else args.thickness
        kept += threshold_keypoints(placed, args.threshold).visible_count()
        images.append(render_skeleton(placed, threshold=args.threshold, thickness=thickness))
    people = sum(f.num_people for f in frames)
    print(f"read {args.input}: {len(frames)} frame(s), {people} people, "
          f"{kept} keypoints kept (confidence > {args.threshold:g}), placement {mode}")
    for path, image in zip(frame_paths(Path(args.output), len(images)), images):
        write_png(path, image)
        print(f"wrote {path} ({image.shape[1]}x{image.shape[0]})")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from ..pose import write_openpose_json

    frames = _read(args)
    write_openpose_json(args.output, frames[0] if len(frames) == 1 else frames, threshold=args.threshold)
    print(f"read {args.input}: {len(frames)} frame(s), {sum(f.num_people for f in frames)} people")
    print(f"wrote {args.output}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="pose file: .json (POSE_KEYPOINT, OpenPose, COCO) or .npz (HumanSD/MMPose)")
    parser.add_argument("-W", "--width", type=_positive_int, help="image width (default: the pose's canvas); "
                        "with -H, also the canvas of inputs that carry none (CMU OpenPose, npz)")
    parser.add_argument("-H", "--height", type=_positive_int, help="image height (default: the pose's canvas)")
    parser.add_argument("--threshold", type=float, default=defaults.KEYPOINT_THRESHOLD,
                        help="keep keypoints with confidence above this (default %(default)s)")
    parser.add_argument("--min-score", type=float, default=defaults.KEYPOINT_THRESHOLD,
                        help="keep people with score above this (default %(default)s)")
    parser.add_argument("-o", "--output", required=True, help="output file")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pose render`` and ``pose convert``."""
    pose = add_command(subparsers, "pose", __doc__, "render or convert pose files")
    actions = pose.add_subparsers(dest="pose_command", required=True, metavar="ACTION")

    render = add_command(actions, "render", __doc__, "draw the HumanSD skeleton image of a pose file")
    _add_common(render)
    place = render.add_mutually_exclusive_group()
    place.add_argument("--place", choices=defaults.PLACE_MODES,
                       help="pose canvas -> W x H: scale to fit inside (fit, letterbox) or to cover it (fill, crop), "
                            f"or keep the pixel coordinates (as-is) (default: {defaults.PLACE})")
    place.add_argument("--fit", dest="place", action="store_const", const="fit", help="the same as --place fit")
    place.add_argument("--fill", dest="place", action="store_const", const="fill", help="the same as --place fill")
    render.set_defaults(place=defaults.PLACE)
    width = render.add_mutually_exclusive_group()
    width.add_argument("--thickness", type=_positive_int, default=defaults.LINE_THICKNESS,
                       help="line thickness in pixels (default %(default)s, as trained at 512 px)")
    width.add_argument("--scale-thickness", action="store_true",
                       help="scale the thickness with the shorter image side (10 at 512 px)")
    render.set_defaults(func=_render)

    convert = add_command(actions, "convert", __doc__, "write a pose file as OpenPose JSON / POSE_KEYPOINT")
    _add_common(convert)
    convert.set_defaults(func=_convert)
