"""Model configurations: the real SD2.1-base HumanSD layout and a tiny one for tests.

A :class:`ModelConfig` fully determines the three networks (UNet, VAE, text tower)
and the latent scale factor. It round-trips through JSON; files we write carry that
JSON in their safetensors metadata under :data:`CONFIG_METADATA_KEY`.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import CheckpointError

CONFIG_METADATA_KEY = "humansd_config"


@dataclass(frozen=True)
class UNetConfig:
    """LDM ``openaimodel.UNetModel`` hyper-parameters (SD2.x flavour).

    ``attention_resolutions`` are downsampling factors (1 = full latent size) at
    which a SpatialTransformer follows each ResBlock. Every channel count
    (``model_channels * mult``) must be a multiple of 32 (GroupNorm with 32 groups)
    and of ``num_head_channels``.
    """

    in_channels: int = 8
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    num_head_channels: int = 64
    transformer_depth: int = 1
    use_linear_in_transformer: bool = True
    context_dim: int = 1024

    def __post_init__(self) -> None:
        for mult in self.channel_mult:
            ch = self.model_channels * mult
            if ch % 32 or ch % self.num_head_channels:
                raise CheckpointError(
                    f"UNet channel count {ch} must be a multiple of 32 and of "
                    f"num_head_channels={self.num_head_channels}"
                )


@dataclass(frozen=True)
class VAEConfig:
    """LDM ``AutoencoderKL`` hyper-parameters (no attention outside the mid-block).

    The image is downsampled by ``2 ** (len(ch_mult) - 1)`` (8 for SD).
    """

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 4
    embed_dim: int = 4
    in_channels: int = 3
    out_ch: int = 3

    def __post_init__(self) -> None:
        for mult in self.ch_mult:
            if (self.ch * mult) % 32:
                raise CheckpointError(f"VAE channel count {self.ch * mult} must be a multiple of 32")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)


@dataclass(frozen=True)
class TextConfig:
    """OpenCLIP text tower (``open_clip.transformer.TextTransformer``) hyper-parameters.

    The conditioning is always the penultimate block's output followed by
    ``ln_final``: ``[B, context_length, width]``. Tokenizer: ``ViT-H-14``'s, whatever
    the width, so ``vocab_size`` and ``context_length`` stay 49408 and 77.
    """

    width: int = 1024
    heads: int = 16
    layers: int = 24
    output_dim: int = 1024
    context_length: int = 77
    vocab_size: int = 49408

    def __post_init__(self) -> None:
        if self.layers < 2:
            raise CheckpointError(f"text tower needs at least 2 layers for the penultimate output, got {self.layers}")


@dataclass(frozen=True)
class ModelConfig:
    """The three networks plus the latent scale factor (latent = VAE mean × scale)."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    text: TextConfig = field(default_factory=TextConfig)
    scale_factor: float = 0.18215

    def __post_init__(self) -> None:
        if self.unet.context_dim != self.text.width:
            raise CheckpointError(
                f"UNet context_dim {self.unet.context_dim} != text width {self.text.width}"
            )
        if self.unet.out_channels != self.vae.embed_dim or self.unet.in_channels != 2 * self.vae.embed_dim:
            raise CheckpointError(
                f"UNet in/out channels {self.unet.in_channels}/{self.unet.out_channels} do not fit a HumanSD "
                f"model with {self.vae.embed_dim}-channel latents "
                f"(expected {2 * self.vae.embed_dim}/{self.vae.embed_dim})"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Compact JSON string (stored in safetensors metadata)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        try:
            return cls(
                unet=UNetConfig(**_tuples(data["unet"])),
                vae=VAEConfig(**_tuples(data["vae"])),
                text=TextConfig(**data["text"]),
                scale_factor=float(data.get("scale_factor", 0.18215)),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"invalid model config {data!r}: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"model config is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise CheckpointError(f"model config must be a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def sd21_humansd_config() -> ModelConfig:
    """The real HumanSD model: SD2.1-base with an 8-channel UNet input."""
    return ModelConfig()


def tiny_config() -> ModelConfig:
    """Same code paths as :func:`sd21_humansd_config` at a few channels.

    Attention at both UNet levels and the middle, two text blocks (the first one
    gives the penultimate output), a 3-downsample VAE so 64×64 images give 8×8
    latents. Runs a forward pass in milliseconds on a CPU.
    """
    return ModelConfig(
        unet=UNetConfig(
            model_channels=32,
            channel_mult=(1, 2),
            num_res_blocks=1,
            attention_resolutions=(1, 2),
            num_head_channels=16,
            context_dim=32,
        ),
        vae=VAEConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1),
        text=TextConfig(width=32, heads=2, layers=2, output_dim=32),
    )


NAMED_CONFIGS = {"sd21_humansd": sd21_humansd_config, "tiny": tiny_config}


def named_config(name: str) -> ModelConfig:
    """A config by name: one of :data:`NAMED_CONFIGS` (``sd21_humansd``, ``tiny``)."""
    try:
        return NAMED_CONFIGS[name]()
    except KeyError:
        raise CheckpointError(f"unknown model config {name!r}; choose from {sorted(NAMED_CONFIGS)}") from None
