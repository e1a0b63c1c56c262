"""Pose conditioning in ComfyUI's terms (host side).

HumanSD's UNet input is ``cat([z_t, 0.18215 * VAE(skeleton)])`` for both the
conditional and the unconditional branch. ComfyUI builds it from the conditioning's
``concat_latent_image``: ``BaseModel.concat_cond`` applies ``process_latent_in``
(x 0.18215 for SD2) and resizes it to the noise batch, so the raw ``vae.encode``
output goes on **both** the positive and the negative conditioning.
"""
from __future__ import annotations

from typing import Any

import torch

from ..humansd_core.errors import HumanSDError


def with_concat_latent(conditioning: list, latent: torch.Tensor) -> list:
    """A copy of ``conditioning`` (``[[cond, options], ...]``) with ``options["concat_latent_image"] = latent``.

    The option dicts are copied, never changed in place (other nodes share them).
    """
    out = []
    for cond, options in conditioning:
        options = options.copy()
        options["concat_latent_image"] = latent
        out.append([cond, options])
    return out


def encode_pose(vae: Any, skeleton: torch.Tensor) -> torch.Tensor:
    """Raw VAE latent ``[N,4,H/8,W/8]`` (unscaled) of skeleton images ``[N,H,W,3]`` in ``[0,1]``."""
    return vae.encode(skeleton[..., :3])


def check_batches(pose_count: int, latent_count: int) -> None:
    """Each latent needs its pose: counts must match, or a single pose serves the whole batch."""
    if pose_count != latent_count and pose_count != 1:
        raise HumanSDError(
            f"pose batch of {pose_count} does not match the latent batch of {latent_count}: give one pose "
            f"per latent image, or a single pose for all"
        )


def encode_text(clip: Any, text: str) -> list:
    """CONDITIONING of ``text`` (as ComfyUI's CLIPTextEncode)."""
    if clip is None:
        raise HumanSDError("clip: no text encoder given (the checkpoint may lack one)")
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))
