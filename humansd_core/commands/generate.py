"""``humansd generate``: images from a pose file and a prompt.

``humansd generate --ckpt model.safetensors --pose pose.json --prompt "a dancer" -o out.png``

Defaults are the reference's (:mod:`humansd_core.defaults`: DDIM, 50 steps, cfg 10,
seed 1234, 512x512, its negative and added prompts). ``--pose`` is any file
:func:`humansd_core.pose.load_pose_file` reads (every frame is one pose) or a
skeleton image (``.png``/``.jpg``/``.webp``, resized to the output size).

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

import numpy as np
from PIL import Image, PngImagePlugin

from .. import defaults
from ..errors import HumanSDError
from ..fileio import atomic_path

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


def _poses(path: Path, width: int, height: int) -> list[Any]:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        try:
            with Image.open(path) as img:
                skeleton = img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise HumanSDError(f"{path}: cannot read the skeleton image: {exc}") from exc
        if skeleton.size != (width, height):
            logger.info("resizing skeleton image %s from %dx%d to %dx%d", path, *skeleton.size, width, height)
            skeleton = skeleton.resize((width, height), Image.Resampling.NEAREST)
        return [np.asarray(skeleton)]
    from ..pose import load_pose_file

    frames = load_pose_file(path)
    if not frames:
        raise HumanSDError(f"{path}: no frames in the pose file")
    return frames


def _save(path: Path, image: Image.Image, text: str | None) -> None:
    info = None
    if text is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", text)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)


def _generate(args: argparse.Namespace) -> int:
    import torch

    from ..pipeline import HumanSDPipeline

    output = Path(args.output)
    if output.suffix.lower() != ".png":
        raise HumanSDError(f"-o {output}: the output must be a .png file")
    if args.batch < 1:
        raise HumanSDError(f"--batch: expected at least 1, got {args.batch}")
    init = None
    if args.init_image:
        try:
            with Image.open(args.init_image) as img:
                init = img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise HumanSDError(f"--init-image {args.init_image}: cannot read the image: {exc}") from exc
    pipe = HumanSDPipeline.from_checkpoint(args.ckpt, device=args.device, dtype=getattr(torch, DTYPES[args.dtype]))
    width, height = pipe.valid_size(args.width, args.height)
    poses = _poses(Path(args.pose), width, height)
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
        pose_ref = f"{Path(args.pose).name}#{i // args.batch}"
        _save(path, image, format_parameters(result.parameters, result.seeds[i], Path(args.ckpt).name, pose_ref))
        if overlays:
            _save(path.with_name(f"{path.stem}_overlay.png"), overlays[i], None)
        print(f"wrote {path} (seed {result.seeds[i]})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``humansd generate``."""
    p = subparsers.add_parser("generate", help="generate images from a pose and a prompt",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="HumanSD checkpoint (.safetensors or .ckpt)")
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
    p.add_argument("--place", choices=("as-is", "fit", "fill"), default="as-is",
                   help="pose canvas -> output: keep pixel coordinates (as-is), or scale to fit/fill "
                        "(default: %(default)s)")
    p.add_argument("--batch", type=int, default=1, help="images per pose (default: %(default)s)")
    p.add_argument("--strength", type=float, default=defaults.STRENGTH,
                   help="img2img strength with --init-image: 1 = ignore the init (default: %(default)s)")
    p.add_argument("--init-image", help="init image for img2img")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda, cuda:1, mps (default: %(default)s)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="weights' dtype (default: %(default)s)")
    p.add_argument("--overlay", action="store_true", help="also write NAME_overlay.png: the skeleton over the image")
    p.set_defaults(func=_generate)
