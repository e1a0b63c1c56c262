"""Stream tensor bytes from files into fresh tensors, casting on the way.

Used by the checkpoint readers so that loading costs the loaded tensors' size and
no more: each result is allocated once and filled by ``readinto`` (no temporary
``bytes``, no file pages kept mapped), and a dtype cast goes through one reused
16 MiB staging buffer.
"""
from __future__ import annotations

import contextlib
import struct
import zipfile
from collections.abc import Callable, Iterator
from typing import BinaryIO

import torch

_CHUNK_BYTES = 16 * 2**20

ReadInto = Callable[[memoryview], "int | None"]


def fill(readinto: ReadInto, buffer: torch.Tensor) -> None:
    """Fill a contiguous 1-D uint8 tensor from ``readinto`` in chunks; EOFError if the data ends early."""
    view = memoryview(buffer.numpy())
    pos = 0
    while pos < len(view):
        got = readinto(view[pos : pos + _CHUNK_BYTES])
        if not got:
            raise EOFError(f"data ends after {pos} of {len(view)} bytes")
        pos += got


class TensorStreamer:
    """Reads contiguous tensors from streams; keeps one staging buffer for casts."""

    def __init__(self) -> None:
        self._staging: torch.Tensor | None = None

    def read(
        self, readinto: ReadInto, shape: tuple[int, ...], src_dtype: torch.dtype, dst_dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """A new ``dst_dtype`` (default ``src_dtype``) tensor of ``shape`` from raw ``src_dtype`` bytes."""
        dst_dtype = dst_dtype or src_dtype
        out = torch.empty(shape, dtype=dst_dtype)
        flat = out.view(-1)
        if dst_dtype == src_dtype:
            fill(readinto, flat.view(torch.uint8))
            return out
        if self._staging is None:
            self._staging = torch.empty(_CHUNK_BYTES, dtype=torch.uint8)
        step = _CHUNK_BYTES // torch.empty((), dtype=src_dtype).element_size()
        for start in range(0, flat.numel(), step):
            count = min(step, flat.numel() - start)
            chunk = self._staging[: count * (_CHUNK_BYTES // step)]
            fill(readinto, chunk)
            flat[start : start + count].copy_(chunk.view(src_dtype))
        return out


class _Bounded:
    """``readinto`` over the next ``size`` bytes of a file."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self._left = size

    def readinto(self, view: memoryview) -> int:
        count = min(len(view), self._left)
        got = self._handle.readinto(view[:count]) if count else 0
        self._left -= got or 0
        return got or 0


@contextlib.contextmanager
def zip_member(archive: zipfile.ZipFile, raw: BinaryIO, name: str) -> Iterator[ReadInto]:
    """``readinto`` for one zip member: straight from the file for stored (uncompressed)
    members, as ``torch.save`` writes them; through ``zipfile`` otherwise."""
    info = archive.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        with archive.open(info) as handle:
            yield handle.readinto
        return
    raw.seek(info.header_offset)
    header = raw.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {name}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    raw.seek(info.header_offset + 30 + name_len + extra_len)
    yield _Bounded(raw, info.file_size).readinto
