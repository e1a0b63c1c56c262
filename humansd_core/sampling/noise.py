"""Per-image seeded noise, so a batch reproduces single-image runs.

Rule: image ``i`` of a batch started with seed ``s`` draws all its noise (the initial
latent noise, then every ancestral step's) from its own ``torch.Generator`` seeded
with ``s + i``, on the CPU in float32. Image ``i`` of a batch is therefore identical to
a batch of one generated with seed ``s + i`` (same pose, prompt and settings), on any
device and with any batch size.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


class BatchNoise:
    """Draw ``[B, *shape]`` standard normal noise, row ``i`` from the generator of ``seeds[i]``.

    Callable as a sampler's ``noise_sampler(sigma, sigma_next)`` (the sigmas are ignored).
    """

    def __init__(self, seeds: Sequence[int], shape: Sequence[int], device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        self.shape = tuple(shape)
        self.device = torch.device(device)
        self.dtype = dtype

    def __call__(self, sigma: object = None, sigma_next: object = None) -> torch.Tensor:
        rows = [torch.randn(self.shape, generator=g, dtype=torch.float32) for g in self.generators]
        return torch.stack(rows).to(device=self.device, dtype=self.dtype)


def batch_seeds(seed: int, count: int) -> list[int]:
    """Seeds of a batch of ``count`` images started with ``seed``: ``seed, seed+1, ...``
    (wrapping at 2**64, torch's seed range)."""
    return [(int(seed) + i) % 2**64 for i in range(count)]
