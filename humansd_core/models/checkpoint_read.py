"""Read model files safely: safetensors, or torch/Lightning ``.ckpt`` without running pickled code.

:func:`open_tensors` gives a :class:`TensorSource`: the file's tensor names and
shapes up front, and one tensor at a time on request, so a loader can cast and
place each tensor before reading the next (peak memory ≈ the loaded weights).

* safetensors (sniffed by its header, whatever the suffix): header parsed and
  checked against the file size; each ``get`` reads one tensor into fresh memory.
* torch zip files (``.ckpt``/``.pt``/``.pth``): ``torch.load(weights_only=True,
  mmap=True)`` first (tensors are file-backed, read when touched); if the pickle
  names other classes (Lightning hyper-parameters, callbacks...), the restricted
  unpickler of :mod:`.safe_unpickle`, which reads only requested tensors.
* legacy (pre-zip) torch files: ``torch.load(weights_only=True)`` only.

Every failure (missing, truncated, corrupt or foreign file) is a
:class:`~humansd_core.errors.CheckpointError` naming the file.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import pickle
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ..errors import CheckpointError
from .safe_unpickle import LazyTensor, LazyZipCheckpoint
from .tensor_stream import TensorStreamer

logger = logging.getLogger(__name__)


class TensorSource:
    """Tensor names, shapes and metadata of an open file; tensors read on demand."""

    def __init__(self, path: Path, shapes: dict[str, tuple[int, ...]], metadata: dict[str, str]) -> None:
        self.path = path
        self.shapes = shapes
        self.metadata = metadata

    def get(self, key: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The CPU tensor ``key``; floating tensors cast to ``dtype`` if given (else the file's dtype)."""
        raise NotImplementedError


# The safetensors format's dtype names; None where this torch has no such dtype (fp8 before
# torch 2.1, unsigned 16/32/64-bit before 2.3).
_SAFETENSORS_DTYPES: dict[str, torch.dtype | None] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": getattr(torch, "float8_e4m3fn", None), "F8_E5M2": getattr(torch, "float8_e5m2", None),
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U64": getattr(torch, "uint64", None), "U32": getattr(torch, "uint32", None),
    "U16": getattr(torch, "uint16", None), "U8": torch.uint8, "BOOL": torch.bool,
}


def _safetensors_dtype(name: str, path: Path, key: str) -> torch.dtype:
    """The torch dtype of a safetensors dtype name; ``CheckpointError`` saying so when it is not supported."""
    dtype = _SAFETENSORS_DTYPES.get(name)
    if dtype is None:
        why = (f"which this torch {torch.__version__} does not have" if name in _SAFETENSORS_DTYPES
               else f"not a dtype this reader supports ({', '.join(_SAFETENSORS_DTYPES)})")
        raise CheckpointError(f"{path}: tensor {key!r}: dtype {name} not supported ({why})")
    return dtype


class _SafetensorsSource(TensorSource):
    """Streams tensors out of a safetensors file with plain reads into fresh memory.

    The format is an 8-byte little-endian header length, a JSON header
    (``name -> {dtype, shape, data_offsets}`` plus ``__metadata__``), then the raw
    data. Reading each tensor with ``readinto`` (instead of the library's memory
    map) keeps no file pages resident, so casting while loading costs only the
    result (the library still writes our files and checks them in the tests).
    """

    def __init__(self, path: Path, handle: BinaryIO) -> None:
        self._handle = handle
        self._streamer = TensorStreamer()
        self._entries: dict[str, tuple[torch.dtype, tuple[int, ...], int, int]] = {}
        size = path.stat().st_size
        try:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_len))
            metadata = header.pop("__metadata__", None) or {}
            self._data_start = 8 + header_len
            data_len = size - self._data_start
            for key, entry in header.items():
                dtype = _safetensors_dtype(str(entry["dtype"]), path, key)
                shape = tuple(int(n) for n in entry["shape"])
                begin, end = (int(n) for n in entry["data_offsets"])
                nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
                if not 0 <= begin <= end <= data_len or end - begin != nbytes:
                    raise CheckpointError(
                        f"{path}: tensor {key!r} lies outside the file or has the wrong size (truncated or corrupt)"
                    )
                self._entries[key] = (dtype, shape, begin, end)
            used = max((e[3] for e in self._entries.values()), default=0)
            if used != data_len:
                raise CheckpointError(f"{path}: data section is {data_len} bytes, header describes {used} (truncated?)")
        except CheckpointError:
            raise
        except (struct.error, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{path}: corrupt safetensors header ({exc!r})") from exc
        shapes = {k: e[1] for k, e in self._entries.items()}
        super().__init__(path, shapes, {str(k): str(v) for k, v in metadata.items()})

    def get(self, key: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        src_dtype, shape, begin, _ = self._entries[key]
        self._handle.seek(self._data_start + begin)
        try:
            return self._streamer.read(self._handle.readinto, shape, src_dtype, _cast_to(src_dtype, dtype))
        except EOFError as exc:
            raise CheckpointError(f"{self.path}: tensor {key!r} is truncated ({exc})") from exc


class _TorchSource(TensorSource):
    """Tensors of a torch file: ``torch.load(weights_only=True, mmap=True)`` results (file-backed,
    returned without a copy when no cast is needed) or the restricted reader's lazy tensors.

    A cast of a zip file's tensor is streamed from the zip by the restricted reader
    (opened on first need) instead: casting the memory-mapped tensor would leave
    its file pages resident next to the result.
    """

    def __init__(self, path: Path, tensors: Mapping[str, Any], lazy: LazyZipCheckpoint | None, zip_file: bool) -> None:
        super().__init__(path, {k: tuple(v.shape) for k, v in tensors.items()}, {})
        self._tensors = tensors
        self._lazy = lazy
        self._zip_file = zip_file
        self._lazy_tensors: Mapping[str, Any] = tensors if lazy is not None else {}

    def get(self, key: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        value = self._tensors[key]
        cast = _cast_to(value.dtype, dtype)
        if cast == value.dtype:
            cast = None
        if cast is not None and self._zip_file and self._lazy is None:
            self._lazy = LazyZipCheckpoint(self.path)
            self._lazy_tensors = _tensor_dict(self._lazy.obj, self.path)
        lazy = self._lazy_tensors.get(key)
        if isinstance(lazy, LazyTensor):
            assert self._lazy is not None
            return self._lazy.materialize(lazy, cast)
        return value if cast is None else value.to(cast)

    def close(self) -> None:
        if self._lazy is not None:
            self._lazy.close()


def _cast_to(src: torch.dtype, dtype: torch.dtype | None) -> torch.dtype | None:
    """``dtype`` for floating-point sources, None (keep) otherwise."""
    return dtype if dtype is not None and src.is_floating_point else None


def _sniff(path: Path) -> str:
    """``"safetensors"``, ``"zip"`` (torch zip) or ``"pickle"`` (legacy torch)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: model file not found")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(9)
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if len(head) == 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if 8 + header_len > size:
            raise CheckpointError(f"{path}: truncated safetensors file (header of {header_len} bytes, file {size})")
        return "safetensors"
    if head[:1] == b"\x80":
        return "pickle"
    raise CheckpointError(f"{path}: not a safetensors or PyTorch checkpoint file")


def _tensor_dict(obj: Any, path: Path) -> dict[str, Any]:
    """The flat ``name -> tensor`` mapping of a loaded checkpoint (``obj["state_dict"]`` if any)."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, (torch.Tensor, LazyTensor))}
    if not tensors:
        raise CheckpointError(f"{path}: no tensors found")
    return tensors


@contextlib.contextmanager
def open_tensors(path: str | Path) -> Iterator[TensorSource]:
    """Open a model file for reading; tensors are valid only inside the ``with`` block
    unless copied (safetensors and restricted-pickle tensors own their memory anyway)."""
    path = Path(path)
    kind = _sniff(path)
    if kind == "safetensors":
        with open(path, "rb") as handle:
            yield _SafetensorsSource(path, handle)
        return
    fallback = False
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=kind == "zip")
    except pickle.UnpicklingError as exc:
        if kind != "zip":
            raise CheckpointError(
                f"{path}: legacy torch file holding objects other than tensors; re-save it as safetensors"
            ) from exc
        fallback = True
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({exc})") from exc
    if fallback:
        logger.info("%s holds non-tensor objects; reading only its tensors with the restricted unpickler", path.name)
        lazy = LazyZipCheckpoint(path)
        source = _TorchSource(path, _tensor_dict(lazy.obj, path), lazy, zip_file=True)
    else:
        source = _TorchSource(path, _tensor_dict(obj, path), None, zip_file=kind == "zip")
    try:
        yield source
    finally:
        source.close()


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(state dict, metadata)`` of a model file, opened (and a ``.ckpt``'s pickle parsed) once.

    The state dict is every tensor of a safetensors or torch/Lightning checkpoint
    (``state_dict`` if nested), in the file's dtype, on the CPU; never executes pickled
    code. The metadata is a safetensors file's ``__metadata__`` (``{}`` for torch files).
    """
    with open_tensors(path) as source:
        return {key: source.get(key) for key in source.shapes}, dict(source.metadata)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a model file (see :func:`read_checkpoint`)."""
    return read_checkpoint(path)[0]


def read_metadata(path: str | Path) -> dict[str, str]:
    """A safetensors file's ``__metadata__``; ``{}`` for torch checkpoints, whose pickle is then not read at all."""
    path = Path(path)
    if _sniff(path) != "safetensors":
        return {}
    with open_tensors(path) as source:
        return dict(source.metadata)
