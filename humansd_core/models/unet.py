"""The HumanSD denoiser: LDM's SD2.x UNet with an 8-channel input.

State-dict keys are exactly LDM's ``model.diffusion_model.*`` without that prefix.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import SpatialTransformer
from .configs import UNetConfig
from .unet_blocks import (
    Downsample,
    GroupNorm32,
    ResBlock,
    TimestepEmbedSequential,
    Upsample,
    timestep_embedding,
)


class UNetModel(nn.Module):
    """``forward(x [B, in_ch, h, w], timesteps [B], context [B, 77, context_dim]) -> eps [B, out_ch, h, w]``.

    ``timesteps`` are DDPM steps (0..999, int or float). Inputs are cast to the
    weights' dtype and the output back to ``x``'s dtype. Any ``h, w`` work (odd
    sizes included: upsampling follows the skip connection's size).

    Channels-last: after ``unet.to(memory_format=torch.channels_last)`` inputs are
    converted too; on CPU that takes 0.81× the time of NCHW at full size
    (``benchmarks/unet_memory_format.py``), so :func:`load_models` does it there.
    """

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.config = cfg
        self.gradient_checkpointing = False
        mc = cfg.model_channels
        emb_dim = 4 * mc
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def transformer(ch: int) -> SpatialTransformer:
            heads = ch // cfg.num_head_channels
            return SpatialTransformer(
                ch, heads, cfg.num_head_channels, cfg.transformer_depth, cfg.context_dim, cfg.use_linear_in_transformer
            )

        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(cfg.in_channels, mc, 3, padding=1))])
        skip_channels = [mc]
        ch, ds = mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb_dim, mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(transformer(ch))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_channels.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch)))
                skip_channels.append(ch)
                ds *= 2

        self.middle_block = TimestepEmbedSequential(
            ResBlock(ch, emb_dim, ch), transformer(ch), ResBlock(ch, emb_dim, ch)
        )

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(ch + skip_channels.pop(), emb_dim, mc * mult)]
                ch = mc * mult
                if ds in cfg.attention_resolutions:
                    layers.append(transformer(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), nn.Conv2d(ch, cfg.out_channels, 3, padding=1))
        nn.init.zeros_(self.out[2].weight)
        nn.init.zeros_(self.out[2].bias)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute each block's activations in the backward pass (saves memory in training)."""
        self.gradient_checkpointing = bool(enabled)

    def _run(self, block: TimestepEmbedSequential, *args: object) -> torch.Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        dtype = self.time_embed[0].weight.dtype
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(dtype))
        context = context.to(dtype)
        h = x.to(dtype)
        if self.input_blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last):
            h = h.contiguous(memory_format=torch.channels_last)
        skips = []
        for block in self.input_blocks:
            h = self._run(block, h, emb, context)
            skips.append(h)
        h = self._run(self.middle_block, h, emb, context)
        for block in self.output_blocks:
            h = torch.cat([h, skips.pop()], dim=1)
            size = tuple(skips[-1].shape[-2:]) if skips else None
            h = self._run(block, h, emb, context, size)
        return self.out(h).to(x.dtype)
