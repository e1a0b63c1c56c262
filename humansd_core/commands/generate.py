"""``humansd generate``: images from a pose file and a prompt.

``humansd generate --ckpt model.safetensors --pose pose.json --prompt "a dancer" -o out.png``
(``--ckpt embedded``: the tiny model shipped in the package, trained at 128 x 128 on
synthetic mannequins.)

Defaults are the reference's (DDIM, 50 steps, cfg 10, seed 1234, 512x512, its
negative and added prompts: :mod:`humansd_core.defaults`). ``--pose`` is a pose file
(OpenPose or ``POSE_KEYPOINT`` or COCO ``.json``, HumanSD/MMPose ``.npz``; every frame
is one pose), scaled onto the output with ``--place fit`` unless told otherwise, or a
skeleton image (``.png``/``.jpg``/``.webp``, resized to the output size). A person that
lands outside the output is a warning; every person of a frame outside is an error.

Output naming: image 0 goes to ``out.png`` itself, image ``i >= 1`` to
``out_0001.png``, ``out_0002.png``, ... (four-digit index before the suffix); images
are pose-major (``--batch`` images of frame 0, then of frame 1, ...) and image ``i``
has seed ``--seed + i``. Each PNG carries the generation settings in its ``parameters``
text chunk (the A1111 layout most image tools read). ``--overlay`` also writes
``<name>_overlay.png`` with the skeleton drawn over each image. Every file is written
atomically, and only after all images are generated: a failure leaves no new file.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from .. import defaults
from ..errors import HumanSDError
from ..fileio import atomic_path, require_file
from ..assets import EMBEDDED, resolve_checkpoint
from . import add_command

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def output_paths(output: Path, count: int) -> list[Path]:
    """``output`` for image 0, then ``stem_0001.suffix``, ``stem_0002.suffix``, ..."""
    return [output if i == 0 else output.with_name(f"{output.stem}_{i:04d}{output.suffix}") for i in range(count)]


def format_parameters(params: dict[str, Any], seed: int, model: str, pose: str) -> str:
    """The PNG ``parameters`` text: prompt, ``Negative prompt: ...``, then ``Key: value`` pairs."""
    pairs = {
        "Steps": params["steps"], "Sampler": params["sampler"], "Schedule type": params["schedule"],
        "CFG scale": params["cfg"], "Seed": seed, "Size": f"{params['width']}x{params['height']}",
        "Model": model, "Eta": "default" if params["eta"] is None else params["eta"],
        "Denoising strength": params["strength"], "Pose": pose,
    }
    return "\n".join([
        params["prompt"], f"Negative prompt: {params['negative']}", ", ".join(f"{k}: {v}" for k, v in pairs.items())
    ])


def _read_poses(path: Path) -> list[Any] | Image.Image:
    """The frames of a pose file, or a skeleton image (RGB) to resize to the output size later."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise HumanSDError(f"{path}: cannot read the skeleton image: {exc}") from exc
    from ..pose import load_pose_file

    frames = load_pose_file(path)
    if not frames:
        raise HumanSDError(f"{path}: no frames in the pose file")
    return frames


def _at_size(poses: list[Any] | Image.Image, path: Path, width: int, height: int) -> list[Any]:
    """Pose frames as they are, or the skeleton image resized to ``width x height`` as ``[H, W, 3]`` uint8."""
    if not isinstance(poses, Image.Image):
        return poses
    import numpy as np

    if poses.size != (width, height):
        logger.info("resizing skeleton image %s from %dx%d to %dx%d", path, *poses.size, width, height)
        poses = poses.resize((width, height), Image.Resampling.NEAREST)
    return [np.asarray(poses)]


def _save(path: Path, image: Image.Image, text: str | None) -> None:
    info = None
    if text is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", text)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)


def _generate(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.suffix.lower() != ".png":
        raise HumanSDError(f"-o {output}: the output must be a .png file")
    if args.batch < 1:
        raise HumanSDError(f"--batch: expected at least 1, got {args.batch}")
    ckpt = resolve_checkpoint(args.ckpt, "--ckpt")
    pose_path = require_file(args.pose, "--pose")
    init = None
    if args.init_image:
        try:
            with Image.open(require_file(args.init_image, "--init-image")) as img:
                init = img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise HumanSDError(f"--init-image {args.init_image}: cannot read the image: {exc}") from exc
    poses = _read_poses(pose_path)

    import torch  # only now: the files are there

    from ..pipeline import HumanSDPipeline

    if args.dtype != "fp32" and torch.device(args.device).type == "cpu":
        logger.warning("--dtype %s on the CPU: most CPUs emulate half-precision convolutions, which can be "
                       "10-100x slower than fp32 (--dtype fp32)", args.dtype)
    pipe = HumanSDPipeline.from_checkpoint(ckpt, device=args.device, dtype=getattr(torch, DTYPES[args.dtype]))
    width, height = pipe.valid_size(args.width, args.height)
    poses = _at_size(poses, pose_path, width, height)
    print(f"generating {len(poses) * args.batch} image(s) at {width}x{height} from {len(poses)} pose(s)")
    result = pipe.generate(
        poses, args.prompt, negative=args.negative, steps=args.steps, cfg=args.cfg, sampler=args.sampler,
        schedule=args.schedule, seed=args.seed, width=width, height=height, eta=args.eta, strength=args.strength,
        init_images=init, added_prompt=args.added_prompt, images_per_pose=args.batch, place=args.place,
        progress=True,
    )
    paths = output_paths(output, len(result.seeds))
    overlays = result.overlays() if args.overlay else []
    for i, (path, image) in enumerate(zip(paths, result.to_pil(), strict=True)):
        pose_ref = f"{pose_path.name}#{i // args.batch}"
        _save(path, image, format_parameters(result.parameters, result.seeds[i], ckpt.name, pose_ref))
        if overlays:
            _save(path.with_name(f"{path.stem}_overlay.png"), overlays[i], None)
        print(f"wrote {path} (seed {result.seeds[i]})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``humansd generate``."""
    p = add_command(subparsers, "generate", __doc__, "generate images from a pose and a prompt")
    p.add_argument("--ckpt", required=True,
                   help=f"HumanSD checkpoint (.safetensors or .ckpt), or {EMBEDDED} for the tiny model shipped "
                        "in the package (trained at 128 x 128)")
    p.add_argument("--pose", required=True, help="pose file (.json/.npz; one image per frame) or a skeleton image")
    p.add_argument("--prompt", required=True, help="what to draw")
    p.add_argument("-o", "--output", required=True, help="output .png (more images: NAME_0001.png, ...)")
    p.add_argument("--negative", default=defaults.NEGATIVE_PROMPT, help="negative prompt (default: the reference's)")
    p.add_argument("--added-prompt", default=defaults.ADDED_PROMPT,
                   help="appended to the prompt with ', ' (default: %(default)r; '' for none)")
    p.add_argument("--steps", type=int, default=defaults.STEPS, help="sampling steps (default: %(default)s)")
    p.add_argument("--cfg", type=float, default=defaults.CFG, help="guidance scale (default: %(default)s)")
    p.add_argument("--sampler", choices=defaults.SAMPLER_NAMES, default=defaults.SAMPLER, help="(default: %(default)s)")
    p.add_argument("--schedule", choices=defaults.SCHEDULE_NAMES, default=defaults.SCHEDULE,
                   help="sigma schedule; uniform = the reference DDIM timesteps (default: %(default)s)")
    p.add_argument("--eta", type=float, default=None,
                   help="noise of DDIM / Euler ancestral (default: 0 for DDIM, as the reference; 1 for Euler a.)")
    p.add_argument("--seed", type=int, default=defaults.SEED, help="seed of image 0; image i uses seed + i")
    p.add_argument("--width", type=int, default=defaults.WIDTH,
                   help="rounded to the nearest multiple of 64 (default: %(default)s)")
    p.add_argument("--height", type=int, default=defaults.HEIGHT,
                   help="rounded to the nearest multiple of 64 (default: %(default)s)")
    p.add_argument("--place", choices=defaults.PLACE_MODES, default=defaults.PLACE,
                   help="pose canvas -> output: scale the whole canvas to fit inside (fit, letterbox) or to cover "
                        "the output (fill, crop), or keep the pixel coordinates (as-is) (default: %(default)s)")
    p.add_argument("--batch", type=int, default=1, help="images per pose (default: %(default)s)")
    p.add_argument("--strength", type=float, default=defaults.STRENGTH,
                   help="img2img strength with --init-image: 1 = ignore the init (default: %(default)s)")
    p.add_argument("--init-image", help="init image for img2img")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda, cuda:1, mps (default: %(default)s)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="weights' dtype (default: %(default)s)")
    p.add_argument("--overlay", action="store_true", help="also write NAME_overlay.png: the skeleton over the image")
    p.set_defaults(func=_generate)
