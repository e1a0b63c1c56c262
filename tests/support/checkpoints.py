"""Random-weight checkpoints for tests, written through the real file format.

- :func:`tiny_checkpoint` writes a tiny-config file (float32, a few MB) where asked.
- :func:`random_lora` writes a small LoRA for the full-size UNet in the key format ComfyUI's
  stock ``LoraLoaderModelOnly`` reads.
- :func:`full_random_checkpoint` writes the full SD2.1-layout HumanSD file (fp16, about
  2.6 GB) ONCE into the git-ignored ``<repo>/.cache/`` and returns its path on every
  later call, in this process or another: the name carries a hash of the config so a
  layout change writes a new file, an exclusive lock file keeps concurrent test runs
  from writing it twice, and the write itself is atomic (no half-written file is ever
  seen under the final name).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch

from safetensors.torch import save_file

from humansd_core.models.checkpoint import write_random_checkpoint
from humansd_core.models.configs import sd21_humansd_config, tiny_config

CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache"
# Full-size LDM UNet layers a test LoRA adapts (attention projections and a conv), with their weight shapes.
LORA_TARGETS = {
    "input_blocks.1.1.transformer_blocks.0.attn1.to_q": (320, 320),
    "middle_block.1.transformer_blocks.0.attn2.to_k": (1280, 1024),
    "output_blocks.11.1.proj_out": (320, 320),
}


class RecordingUNet(torch.nn.Module):
    """The real UNet, recording every call's inputs as ``(x, t, context)`` clones."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.clone(), t.clone(), context.clone()))
        return self.unet(x, t, context)


def tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """Write a tiny-config HumanSD file of random (non-zero) float32 weights to ``path``."""
    write_random_checkpoint(path, tiny_config(), dtype=torch.float32, seed=seed)
    return path


def random_lora(path: Path, rank: int = 4, seed: int = 0) -> Path:
    """Write an fp16 LoRA of :data:`LORA_TARGETS` with ``diffusion_model.<key>.lora_up/.lora_down/.alpha`` keys."""
    generator = torch.Generator().manual_seed(seed)
    lora: dict[str, torch.Tensor] = {}
    for key, (out_features, in_features) in LORA_TARGETS.items():
        lora[f"diffusion_model.{key}.lora_down.weight"] = torch.randn(rank, in_features, generator=generator) * 0.01
        lora[f"diffusion_model.{key}.lora_up.weight"] = torch.randn(out_features, rank, generator=generator) * 0.01
        lora[f"diffusion_model.{key}.alpha"] = torch.tensor(float(rank))
    save_file({k: v.half() for k, v in lora.items()}, str(path))
    return path


def cached_file(path: Path, write: Callable[[Path], None]) -> Path:
    """``path`` in the cache, written once by ``write(tmp_path)`` under a lock, then renamed into place."""
    if path.exists():
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not path.exists():
                tmp = path.with_name(path.name + ".partial")
                write(tmp)
                os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path


def full_random_checkpoint() -> Path:
    """The cached full-size HumanSD-layout checkpoint (fp16, random weights, seed 0)."""
    config = sd21_humansd_config()
    digest = hashlib.sha256(config.to_json().encode()).hexdigest()[:12]
    return cached_file(CACHE_DIR / f"humansd-random-full-fp16-{digest}.safetensors",
                       lambda tmp: write_random_checkpoint(tmp, config, dtype=torch.float16, seed=0))


def random_openpose_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """The real OpenPose body network's weights under the CMU file's names (block prefix stripped), random.

    He-initialised with zero biases: with the default init the 6-stage network's
    output hardly depends on its input, which would let input bugs pass unseen.
    """
    from humansd_core.pose.detect import body_network_class

    torch.manual_seed(seed)
    network = body_network_class()()
    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            torch.nn.init.zeros_(module.bias)
    return {name.split(".", 1)[1]: t.detach().clone().contiguous() for name, t in network.state_dict().items()}
