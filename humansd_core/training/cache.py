"""On-disk caches of VAE latents and text embeddings (safetensors, written atomically).

Each entry is one small safetensors file named by the SHA-256 of everything it depends
on, so a changed image, pose, bucket, renderer threshold or network gives a new name
and a stale entry is never read:

* latents (``<dir>/latents/<hash>.safetensors``): ``mean``/``logvar`` ``[4, h, w]``
  (the VAE posterior of the centre-cropped, optionally flipped image, unscaled) and
  ``pose_latent`` ``[4, h, w]`` (``encode(skeleton·2−1).mean × scale_factor``);
  the hash covers the sample's :meth:`~.dataset.Record.identity`, bucket, flip, skeleton
  threshold and the VAE's weights and dtype (:func:`weights_fingerprint`).
* text (``<dir>/text/<hash>.safetensors``): ``context`` ``[77, C]`` of one caption;
  the hash covers the caption and the text tower's weights and dtype.

Only the writer (rank 0) writes; other ranks read after a barrier.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..fileio import atomic_write_with
from ..models.weights_digest import weights_digest
from ..pose.render import render_skeleton
from .augment import apply_to_image, apply_to_pose
from .dataset import TrainingDataset

logger = logging.getLogger(__name__)


def weights_fingerprint(module: nn.Module) -> str:
    """What a cache entry computed by ``module`` depends on: its weights' identity and the dtype it ran in."""
    dtype = next(module.parameters()).dtype
    return f"{weights_digest(module)}-{str(dtype).removeprefix('torch.')}"


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _read(path: Path) -> dict[str, torch.Tensor] | None:
    try:
        return load_file(str(path))
    except Exception:  # a file from an older layout or damaged by hand: recompute it
        logger.warning("cache entry %s unreadable; recomputing", path)
        return None


def _write(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    atomic_write_with(path, lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp)))


def _images(array: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` → float ``[3, H, W]`` in ``[-1, 1]``."""
    return torch.from_numpy(np.array(array)).permute(2, 0, 1).float() / 127.5 - 1.0


@torch.no_grad()
def build_latent_cache(dataset: TrainingDataset, vae: nn.Module, scale_factor: float, directory: Path, *,
                       flips: Sequence[bool], write: bool, batch_size: int = 8,
                       progress: Callable[[int, int], None] | None = None) -> dict[tuple[int, bool], dict]:
    """``{(sample index, flip): {"mean", "logvar", "pose_latent"}}`` (float32 CPU tensors) for every sample.

    Entries found on disk are read; missing ones are encoded (batched per bucket) and,
    when ``write``, saved. ``progress(done, total)`` is called after each batch.
    """
    param = next(vae.parameters())
    vae_id = weights_fingerprint(vae)
    threshold = dataset.options.pose_threshold
    wanted, pending = {}, []
    for index, record in enumerate(dataset.records):
        for flip in flips:
            bucket = dataset.buckets[dataset.bucket_of[index]]
            name = _digest({"sample": record.identity(), "bucket": bucket, "flip": flip, "threshold": threshold,
                            "vae": vae_id, "scale_factor": scale_factor, "version": 1})
            path = directory / "latents" / f"{name}.safetensors"
            entry = _read(path) if path.is_file() else None
            if entry is None:
                pending.append(((index, flip), path))
            else:
                wanted[(index, flip)] = entry
    groups: dict[int, list] = {}
    for item in pending:
        groups.setdefault(dataset.bucket_of[item[0][0]], []).append(item)
    chunks = [group[i:i + batch_size] for _, group in sorted(groups.items()) for i in range(0, len(group), batch_size)]
    done = 0
    for chunk in chunks:
        images, skeletons = [], []
        for (index, flip), _ in chunk:
            g = dataset.cached_geometry(index, flip)
            images.append(_images(apply_to_image(dataset.image(index), g)))
            skeletons.append(_images(render_skeleton(apply_to_pose(dataset.records[index].pose, g),
                                                     threshold=threshold)))
        mean, logvar = vae.encode_dist(torch.stack(images + skeletons).to(param.device, param.dtype))
        n = len(chunk)
        for i, (key, path) in enumerate(chunk):
            entry = {"mean": mean[i].float().cpu(), "logvar": logvar[i].float().cpu(),
                     "pose_latent": mean[n + i].float().cpu() * scale_factor}
            if write:
                _write(path, entry)
            wanted[key] = entry
        done += n
        if progress is not None:
            progress(done, len(pending))
    logger.info("latent cache: %d entries (%d encoded)", len(wanted), len(pending))
    return wanted


class TextCache:
    """``cache(captions) -> context [B, 77, C]`` from a frozen text tower, computed once per caption.

    Args:
        text_encoder: ``encoder(list[str]) -> [B, 77, C]``.
        directory: where entries are kept on disk (None: memory only).
        write: whether this process writes entries.
    """

    def __init__(self, text_encoder: nn.Module, directory: Path | None, write: bool) -> None:
        self.text_encoder, self.directory, self.write = text_encoder, directory, write
        self.fingerprint = weights_fingerprint(text_encoder)
        self.memory: dict[str, torch.Tensor] = {}

    def _path(self, caption: str) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / "text" / f"{_digest({'caption': caption, 'text': self.fingerprint})}.safetensors"

    @torch.no_grad()
    def prefill(self, captions: Sequence[str], batch_size: int = 16) -> None:
        """Load or compute the embeddings of every distinct caption."""
        todo = []
        for caption in dict.fromkeys(captions):
            if caption in self.memory:
                continue
            path = self._path(caption)
            entry = _read(path) if path is not None and path.is_file() else None
            if entry is None:
                todo.append(caption)
            else:
                self.memory[caption] = entry["context"]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            contexts = self.text_encoder(chunk).float().cpu()
            for caption, context in zip(chunk, contexts):
                self.memory[caption] = context.clone()
                path = self._path(caption)
                if self.write and path is not None:
                    _write(path, {"context": self.memory[caption]})
        logger.info("text cache: %d captions (%d encoded)", len(self.memory), len(todo))

    def __call__(self, captions: Sequence[str]) -> torch.Tensor:
        missing = [c for c in captions if c not in self.memory]
        if missing:
            self.prefill(missing)
        return torch.stack([self.memory[c] for c in captions])
