"""SD2.x text conditioning: OpenCLIP's own ``TextTransformer``, penultimate layer.

:class:`TextEncoder` *is* an ``open_clip.transformer.TextTransformer`` (not a rewrite)
plus the checkpoint's unused ``logit_scale``, so its state-dict keys are exactly
LDM's ``cond_stage_model.model.*`` without that prefix.
"""
from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from open_clip.transformer import TextTransformer
from torch import nn

from .configs import TextConfig

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _tokenizer() -> Any:
    """OpenCLIP's ViT-H-14 BPE tokenizer (vocabulary bundled with open_clip; no download)."""
    import open_clip

    return open_clip.get_tokenizer("ViT-H-14")


class TextEncoder(TextTransformer):
    """``prompts (list[str]) or tokens [B, 77] -> context [B, 77, width]``.

    The context is the output of the penultimate residual block (causal mask)
    passed through ``ln_final``; no pooling, no projection (LDM's
    ``FrozenOpenCLIPEmbedder(layer="penultimate")``).
    """

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__(
            context_length=cfg.context_length,
            vocab_size=cfg.vocab_size,
            width=cfg.width,
            heads=cfg.heads,
            layers=cfg.layers,
            output_dim=cfg.output_dim,
        )
        self.config = cfg
        # Part of the CLIP checkpoint layout; never used for text conditioning.
        self.logit_scale = nn.Parameter(torch.full((), math.log(1 / 0.07)))

    def rebuild_causal_mask(self) -> None:
        """Recreate the non-persistent causal mask buffer on the weights' device.

        Needed after building on the meta device and loading weights with ``assign``.
        """
        self.attn_mask = self.build_causal_mask().to(self.positional_embedding.device)

    def tokenize(self, prompts: str | Sequence[str]) -> torch.Tensor:
        """Token ids ``LongTensor [B, 77]`` (start, BPE tokens, end, zero padding).

        Prompts longer than the context are truncated, with a logged warning.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        tokenizer = _tokenizer()
        for index, prompt in enumerate(prompts):
            count = len(tokenizer.encode(prompt)) + 2
            if count > self.context_length:
                logger.warning(
                    "prompt %d has %d tokens (with start/end); truncated to %d: %.60r...",
                    index, count, self.context_length, prompt,
                )
        return tokenizer(list(prompts), context_length=self.context_length)

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [B, 77]`` -> context ``[B, 77, width]`` in the weights' dtype."""
        tokens = tokens.to(self.token_embedding.weight.device)
        out = self.forward_intermediates(
            tokens, indices=[self.transformer.layers - 2], stop_early=True, intermediates_only=True, output_fmt="NLC"
        )
        return self.ln_final(out["text_intermediates"][0])

    def forward(self, prompts: str | Sequence[str] | torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Context ``[B, 77, width]`` for prompts (strings) or token ids ``[B, 77]``."""
        tokens = prompts if isinstance(prompts, torch.Tensor) else self.tokenize(prompts)
        return self.encode_tokens(tokens)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute block activations in the backward pass (open_clip's own mechanism)."""
        self.set_grad_checkpointing(enabled)
