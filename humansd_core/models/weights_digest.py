"""The identity of a network's weights: one SHA-256 over its state dict.

Hashed per tensor, sorted by name: the name, the shape and the values **rounded to
fp16**, so a network hashes alike whichever dtype it was loaded in (an fp16 file
loaded as fp32, bf16 autocast aside). Used where a file records which weights it
belongs to: a LoRA's ``base_model_hash``, the distilled loss net's source models, the
training caches' keys (which add the dtype they were computed in).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable

from torch import nn


def weights_digest(module: nn.Module, skip: Callable[[str], bool] | None = None) -> str:
    """SHA-256 (hex) of ``module``'s state dict (names, shapes, values as fp16), leaving out names ``skip`` accepts."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        if skip is not None and skip(name):
            continue
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().half().contiguous().numpy().tobytes())
    return digest.hexdigest()
