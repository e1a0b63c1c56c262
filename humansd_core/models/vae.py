"""LDM ``AutoencoderKL`` (the SD VAE): images ``[B, 3, H, W]`` in ``[-1, 1]`` <-> latents.

State-dict keys are exactly LDM's ``first_stage_model.*`` without that prefix.
Latents here are UNSCALED; the diffusion model sees ``latent * cfg.scale_factor``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configs import VAEConfig


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """``[B, C_in, H, W] -> [B, C_out, H, W]``: norm-SiLU-conv twice, 1×1 ``nin_shortcut`` if C changes."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut: nn.Module = (
            nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels (1×1 conv q/k/v/proj_out), residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        hidden = self.norm(x)
        q, k, v = (layer(hidden).reshape(b, 1, c, h * w).transpose(2, 3) for layer in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(2, 3).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Pad right/bottom by one, 3×3 conv stride 2: ``[B, C, H, W] -> [B, C, H/2, W/2]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest ×2 then 3×3 conv: ``[B, C, H, W] -> [B, C, 2H, 2W]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    """One resolution level: ``block`` (ResnetBlocks) then an optional ``downsample``/``upsample``."""

    def __init__(
        self, blocks: list[nn.Module], downsample: nn.Module | None = None, upsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.resample = None
        if downsample is not None:
            self.downsample = downsample
            self.resample = "downsample"
        if upsample is not None:
            self.upsample = upsample
            self.resample = "upsample"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.block:
            x = block(x)
        if self.resample is not None:
            x = getattr(self, self.resample)(x)
        return x


class _Mid(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    """``[B, 3, H, W] -> [B, 2·z_channels, H/f, W/f]`` (mean and log-variance moments)."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        in_mult = (1, *cfg.ch_mult)
        self.down = nn.ModuleList()
        for level, mult in enumerate(cfg.ch_mult):
            block_in, block_out = cfg.ch * in_mult[level], cfg.ch * mult
            blocks = [ResnetBlock(block_in if i == 0 else block_out, block_out) for i in range(cfg.num_res_blocks)]
            last = level == len(cfg.ch_mult) - 1
            self.down.append(_Level(blocks, downsample=None if last else Downsample(block_out)))
        ch = cfg.ch * cfg.ch_mult[-1]
        self.mid = _Mid(ch)
        self.norm_out = _norm(ch)
        self.conv_out = nn.Conv2d(ch, 2 * cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """``[B, z_channels, h, w] -> [B, 3, h·f, w·f]``; ``up[0]`` is the full-resolution level."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        block_in = cfg.ch * cfg.ch_mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, block_in, 3, padding=1)
        self.mid = _Mid(block_in)
        levels: list[nn.Module] = []
        for level in reversed(range(len(cfg.ch_mult))):
            block_out = cfg.ch * cfg.ch_mult[level]
            blocks = []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResnetBlock(block_in, block_out))
                block_in = block_out
            levels.insert(0, _Level(blocks, upsample=Upsample(block_out) if level else None))
        self.up = nn.ModuleList(levels)
        self.norm_out = _norm(block_in)
        self.conv_out = nn.Conv2d(block_in, cfg.out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    """The SD VAE. Images ``[B, 3, H, W]`` in ``[-1, 1]`` with H, W multiples of
    ``cfg.downsample_factor`` (8); latents ``[B, embed_dim, H/8, W/8]``, unscaled."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(2 * cfg.z_channels, 2 * cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)

    @property
    def dtype(self) -> torch.dtype:
        return self.quant_conv.weight.dtype

    def encode_dist(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mean, logvar)``, each ``[B, embed_dim, H/8, W/8]``, logvar clamped to [-30, 20]."""
        moments = self.quant_conv(self.encoder(images.to(self.dtype)))
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Posterior mean ``[B, embed_dim, H/8, W/8]`` (unscaled) of images in ``[-1, 1]``."""
        return self.encode_dist(images)[0]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 3, 8h, 8w]`` (roughly ``[-1, 1]``, not clamped) from unscaled latents."""
        return self.decoder(self.post_quant_conv(latents.to(self.dtype)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruction through the posterior mean (``decode(encode(images))``)."""
        return self.decode(self.encode(images))
