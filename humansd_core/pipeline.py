"""``HumanSDPipeline``: poses + prompt -> images, over the three networks.

Conditioning (HumanSD's native pose input): each pose is drawn as the reference skeleton
image at the output size (:mod:`humansd_core.pose.render`), mapped to ``[-1, 1]``,
VAE-encoded (posterior mean) and scaled; that latent is concatenated to the noisy latent
at every UNet call (``[B, 8, h, w]``), in both branches of classifier-free guidance (the
unconditional branch keeps the pose; only the text changes).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from . import defaults
from .errors import HumanSDError
from .models.configs import ModelConfig
from .pose import DEFAULT_PLACE, PoseSet, place_and_check, render_skeleton
from .pose.transforms import PlaceMode
from .sampling import batch_seeds, sample_latents
from .assets import resolve_checkpoint

logger = logging.getLogger(__name__)

PoseInput = PoseSet | np.ndarray
ImageInput = torch.Tensor | Image.Image | np.ndarray


@dataclass
class GenerationResult:
    """What :meth:`HumanSDPipeline.generate` returns.

    Attributes:
        images: float32 ``[N, 3, H, W]`` in ``[0, 1]`` on the CPU, pose-major
            (all images of pose 0, then pose 1, ...).
        skeletons: float32 ``[N, 3, H, W]`` in ``[0, 1]``: the condition image of each.
        seeds: the seed of each image (the seed rule: ``seed + index``).
        parameters: the settings used (prompt as sent, a list of them when each pose had its own,
            negative, steps, ...).
    """

    images: torch.Tensor
    skeletons: torch.Tensor
    seeds: list[int]
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_pil(self) -> list[Image.Image]:
        """The images as RGB PIL images."""
        return [_to_pil(img) for img in self.images]

    def overlays(self) -> list[Image.Image]:
        """Each image with its skeleton drawn over it (non-black skeleton pixels replace the image's)."""
        mask = (self.skeletons > 0).any(dim=1, keepdim=True)
        return [_to_pil(img) for img in torch.where(mask, self.skeletons, self.images)]


def _to_pil(image: torch.Tensor) -> Image.Image:
    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")


class HumanSDPipeline:
    """HumanSD inference over a UNet, a VAE and a text encoder.

    Public parts (the seams): ``unet(x [B,8,h,w], t [B], context [B,77,C]) -> eps``,
    ``vae.encode(images in [-1,1]) -> latent mean`` (unscaled), ``vae.decode(latent)
    -> [-1,1]``, ``text_encoder(list[str]) -> [B,77,C]``; ``config`` a
    :class:`~humansd_core.models.configs.ModelConfig` (scale factor, sizes).
    """

    def __init__(self, unet: torch.nn.Module, vae: torch.nn.Module, text_encoder: torch.nn.Module,
                 config: ModelConfig) -> None:
        self.unet = unet
        self.vae = vae
        self.text_encoder = text_encoder
        self.config = config

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> HumanSDPipeline:
        """Load a HumanSD checkpoint (safetensors or Lightning ``.ckpt``, or ``"embedded"``: the tiny model
        shipped in the package, :func:`~humansd_core.assets.resolve_checkpoint`) onto ``device`` in
        ``dtype``."""
        from .models.checkpoint import load_models

        models = load_models(resolve_checkpoint(path), device=device, dtype=dtype)
        return cls(models.unet, models.vae, models.text_encoder, models.config)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def size_multiple(self) -> int:
        """Image sizes must be multiples of this: VAE factor × 2**(UNet downsamplings); 64 for SD."""
        return self.config.vae.downsample_factor * 2 ** (len(self.config.unet.channel_mult) - 1)

    def valid_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` rounded to the nearest multiple of :attr:`size_multiple` (at least one),
        with a logged warning when it changes."""
        m = self.size_multiple
        for name, v in (("width", width), ("height", height)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise HumanSDError(f"{name}: expected a positive whole number of pixels, got {v!r}")
        w, h = (max(m, math.floor(v / m + 0.5) * m) for v in (width, height))
        if (w, h) != (width, height):
            logger.warning("size %dx%d is not a multiple of %d; using %dx%d", width, height, m, w, h)
        return w, h

    def skeleton_images(self, poses: Sequence[PoseInput], width: int, height: int,
                        place: PlaceMode = DEFAULT_PLACE) -> torch.Tensor:
        """Condition images ``[N, 3, height, width]`` in ``[0, 1]``: PoseSets are put on the canvas with
        :func:`~humansd_core.pose.place_and_check` (``place``: ``"fit"``, the default, and ``"fill"`` scale
        the pose's canvas onto the output, ``"as-is"`` keeps the pixel coordinates; a person landing
        outside the output is a warning, every person of a pose outside an error) and drawn with the
        reference renderer; arrays (RGB uint8 ``[H, W, 3]``) are used as given."""
        out = []
        for index, pose in enumerate(poses):
            if isinstance(pose, PoseSet):
                array = render_skeleton(place_and_check(pose, width, height, place, frame=index))
            else:
                array = np.asarray(pose)
                if array.dtype != np.uint8 or array.shape != (height, width, 3):
                    raise HumanSDError(
                        f"pose {index}: skeleton image must be RGB uint8 [{height}, {width}, 3], "
                        f"got {array.dtype} {list(array.shape)}"
                    )
            out.append(torch.from_numpy(np.array(array)).permute(2, 0, 1).float() / 255)
        return torch.stack(out)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Scaled latents ``[B, 4, H/8, W/8]`` (float32) of images ``[B, 3, H, W]`` in ``[0, 1]``."""
        images = images.to(self.device) * 2 - 1
        return self.vae.encode(images).float() * self.config.scale_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in ``[0, 1]`` (float32, CPU) from scaled latents."""
        images = self.vae.decode(latents / self.config.scale_factor).float()
        if not torch.isfinite(images).all():
            logger.warning("non-finite values in the decoded images (shown black); with float16 weights "
                           "this is usually an overflow: try bfloat16 or float32")
            images = images.nan_to_num(nan=-1.0)
        return ((images + 1) / 2).clamp(0, 1).cpu()

    @torch.no_grad()
    def generate(
        self,
        poses: PoseInput | Sequence[PoseInput],
        prompt: str | Sequence[str],
        *,
        negative: str = defaults.NEGATIVE_PROMPT,
        steps: int = defaults.STEPS,
        cfg: float = defaults.CFG,
        sampler: str = defaults.SAMPLER,
        schedule: str = defaults.SCHEDULE,
        seed: int = defaults.SEED,
        width: int = defaults.WIDTH,
        height: int = defaults.HEIGHT,
        eta: float | None = None,
        strength: float = defaults.STRENGTH,
        init_images: ImageInput | Sequence[ImageInput] | None = None,
        added_prompt: str = defaults.ADDED_PROMPT,
        images_per_pose: int = 1,
        place: PlaceMode = DEFAULT_PLACE,
        batch_size: int | None = None,
        callback: Callable[[dict], None] | None = None,
        progress: bool | None = None,
    ) -> GenerationResult:
        """Generate ``len(poses) * images_per_pose`` images.

        Args:
            poses: one pose or several (PoseSet, or a skeleton image RGB uint8 ``[H, W, 3]``
                already at the output size; a ``[N, H, W, 3]`` array is N of them).
            prompt: the text, or one text per pose (a batch of different prompts samples as
                fast as one); ``added_prompt`` is appended to each with ``", "`` (reference).
            negative: the unconditional branch's text (the pose latent is kept there).
            width, height: output size; rounded to the nearest valid multiple
                (:meth:`valid_size`, 64 for SD) with a warning.
            seed: image ``i`` (pose-major order) uses ``seed + i``, so it equals a single
                image generated with ``seed + i`` (:mod:`humansd_core.sampling.noise`).
            eta: stochasticity of DDIM / Euler ancestral (None: 0 for DDIM, 1 for Euler a.).
            strength, init_images: img2img (one image for all, or one per pose): skip the
                first ``1 - strength`` of the schedule; tensors ``[B,3,H,W]`` in ``[0,1]``,
                PIL images or uint8 arrays, resized to the output size. Strength 1 ignores
                them (pure noise, as the reference).
            place: how PoseSets meet the output canvas (:meth:`skeleton_images`).
            batch_size: images per UNet batch (None: all at once); results don't depend on it.
            callback: per sampler step, the sampler's info dict plus ``"total"``.
            progress: tqdm bar per batch (None: only on a terminal).

        Raises:
            HumanSDError: bad input, or out of memory (naming the size and batch tried).
        """
        if isinstance(poses, PoseSet) or (isinstance(poses, np.ndarray) and poses.ndim == 3):
            pose_list: list[PoseInput] = [poses]
        else:
            pose_list = list(poses)
        if not pose_list:
            raise HumanSDError("poses: at least one pose is needed")
        if images_per_pose < 1:
            raise HumanSDError(f"images_per_pose: expected at least 1, got {images_per_pose}")
        width, height = self.valid_size(width, height)
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if len(prompts) not in (1, len(pose_list)):
            raise HumanSDError(f"prompt: expected one text or one per pose ({len(pose_list)}), got {len(prompts)}")
        full_prompts = [defaults.with_added_prompt(text, added_prompt) for text in prompts]
        count = len(pose_list) * images_per_pose
        skeletons = self.skeleton_images(pose_list, width, height, place).repeat_interleave(images_per_pose, 0)
        init = None
        if init_images is not None and strength == 1.0:
            logger.info("strength 1: the init images are not used (pure noise start)")
        if init_images is not None and strength < 1.0:
            init = _image_batch(init_images, width, height)
            if init.shape[0] not in (1, len(pose_list)):
                raise HumanSDError(f"init_images: expected 1 or {len(pose_list)} images, got {init.shape[0]}")
            init = init.expand(len(pose_list), -1, -1, -1).repeat_interleave(images_per_pose, 0)
        seeds = batch_seeds(seed, count)
        context = self.text_encoder(full_prompts)  # [1 or len(poses), 77, C]
        context = context.expand(count, -1, -1) if len(full_prompts) == 1 else \
            context.repeat_interleave(images_per_pose, 0)  # [count, 77, C]
        uncond = self.text_encoder([negative]) if cfg != 1.0 else None
        chunk = batch_size or count
        images = []
        for start in range(0, count, chunk):
            stop = min(count, start + chunk)
            try:
                pose_latent = self.encode_images(skeletons[start:stop])
                n = pose_latent.shape[0]
                latents = sample_latents(
                    self.unet, pose_latent, context[start:stop],
                    None if uncond is None else uncond.expand(n, -1, -1),
                    seeds=seeds[start:stop], sampler=sampler, steps=steps, cfg=cfg, eta=eta, schedule=schedule,
                    strength=strength, init_latent=None if init is None else self.encode_images(init[start:stop]),
                    callback=callback, disable=None if progress is None else not progress,
                )
                images.append(self.decode_latents(latents))
            except torch.cuda.OutOfMemoryError as exc:  # = torch.OutOfMemoryError (any device) in torch >= 2.5
                raise HumanSDError(
                    f"out of memory generating a batch of {stop - start} image(s) at {width}x{height} "
                    f"on {self.device}; try a smaller size or batch_size"
                ) from exc
        parameters = {
            "prompt": full_prompts[0] if len(full_prompts) == 1 else full_prompts, "negative": negative,
            "steps": steps, "cfg": cfg, "sampler": sampler, "schedule": schedule, "seed": seed, "width": width,
            "height": height, "eta": eta, "strength": strength, "place": place,
        }
        return GenerationResult(torch.cat(images), skeletons, seeds, parameters)


def _image_batch(images: ImageInput | Sequence[ImageInput], width: int, height: int) -> torch.Tensor:
    """``[B, 3, height, width]`` float32 in ``[0, 1]`` from a tensor ``[B,3,H,W]`` / ``[3,H,W]`` in
    ``[0, 1]``, PIL images or RGB uint8 arrays (resized to the output size, Lanczos)."""
    if isinstance(images, torch.Tensor):
        batch = images[None] if images.ndim == 3 else images
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise HumanSDError(f"init_images: expected a tensor [B, 3, H, W], got {list(images.shape)}")
        batch = batch.float().cpu()
        if batch.shape[-2:] != (height, width):
            batch = torch.nn.functional.interpolate(batch, size=(height, width), mode="bicubic", antialias=True)
        return batch.clamp(0, 1)
    items = [images] if isinstance(images, (Image.Image, np.ndarray)) else list(images)
    out = []
    for index, item in enumerate(items):
        if isinstance(item, torch.Tensor):
            out.append(_image_batch(item, width, height))
            continue
        pil = item if isinstance(item, Image.Image) else _array_to_pil(item, index)
        pil = pil.convert("RGB")
        if pil.size != (width, height):
            pil = pil.resize((width, height), Image.Resampling.LANCZOS)
        out.append(torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1)[None].float() / 255)
    return torch.cat(out)


def _array_to_pil(array: np.ndarray, index: int) -> Image.Image:
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise HumanSDError(f"init_images[{index}]: expected RGB uint8 [H, W, 3], got {array.dtype} {list(array.shape)}")
    return Image.fromarray(array, "RGB")
