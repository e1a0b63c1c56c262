"""Which UNet layers a LoRA adapts by default (names only: read by the config without importing torch)."""
from __future__ import annotations

# Module-name patterns (``re.search`` on names such as
# ``input_blocks.1.1.transformer_blocks.0.attn1.to_q``) of the spatial transformers:
# attention projections, proj_in/proj_out and the feed-forward layers.
DEFAULT_TARGETS: tuple[str, ...] = (
    r"\.attn[12]\.to_(q|k|v)$",
    r"\.attn[12]\.to_out\.0$",
    r"\.proj_(in|out)$",
    r"\.ff\.net\.0\.proj$",
    r"\.ff\.net\.2$",
)
# The 8-channel 3x3 input conv (noisy latent + pose latent).
INPUT_CONV_TARGET = r"^input_blocks\.0\.0$"
