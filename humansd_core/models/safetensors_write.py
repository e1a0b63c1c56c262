"""Write a safetensors file one tensor at a time: the file costs one tensor's bytes of memory, not the whole model's.

``safetensors.torch.save_file`` first turns every tensor into ``bytes`` (a second
copy of the whole state in memory, plus a CPU copy of each GPU tensor). Saving a full
model or a full fine-tune's resume checkpoint that way needs twice the model's size;
:func:`write_safetensors` writes the same format (8-byte little-endian header size,
the JSON header padded with spaces to a multiple of 8, then the tensors' bytes back to
back in header order) streaming each tensor, cast and moved to the CPU on its own.
``safetensors.safe_open`` and ComfyUI read the result like any other safetensors file.
"""
from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import HumanSDError

_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}


def write_safetensors(path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor],
                      metadata: Mapping[str, str] | None = None, dtype: torch.dtype | None = None) -> None:
    """Write ``tensors`` (any device; floating ones cast to ``dtype`` when given) to ``path`` (not atomic:
    wrap it in :func:`humansd_core.fileio.atomic_write_with`)."""
    entries = []
    offset = 0
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    for name, tensor in tensors.items():
        target = dtype if dtype is not None and tensor.is_floating_point() else tensor.dtype
        if target not in _DTYPES:
            raise HumanSDError(f"{path}: tensor {name!r} has dtype {target}, which safetensors cannot hold")
        size = tensor.numel() * torch.empty((), dtype=target).element_size()
        header[name] = {"dtype": _DTYPES[target], "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        entries.append((tensor, target))
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    with open(Path(path), "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for tensor, target in entries:
            data = tensor.detach().to("cpu", target).contiguous()
            if data.numel():
                handle.write(memoryview(data.reshape(-1).view(torch.uint8).numpy()))
