"""Read the tensors of a torch zip checkpoint whose pickle also holds arbitrary objects.

``torch.load(weights_only=True)`` refuses a file as soon as its pickle names a class
outside torch's allow-list (a PyTorch-Lightning checkpoint's hyper-parameters,
callbacks, loop state...). This module rebuilds such a file's structure without
running any of its code:

* tensor rebuild functions named by torch's own serialiser (``torch._utils.
  _rebuild_tensor_v2`` and friends) are mapped to our own functions that return a
  :class:`LazyTensor` (storage key, dtype, offset, size, stride) and read nothing;
* plain containers (``collections.OrderedDict``, ``set``, ``frozenset``) and torch
  dtypes / storage-type markers are resolved to harmless values;
* every other global becomes inert: the one restricted unpickler
  (:mod:`humansd_core.restricted_pickle`) with the policy ``"inert"`` turns it into a
  :class:`~humansd_core.restricted_pickle.Placeholder` that only records arguments. A
  payload such as ``os.system`` reduces to a placeholder instance, never a call.

Only the storages of tensors actually requested are read from the zip, one at a
time, so optimiser state and EMA copies cost nothing.

Zip layout (PyTorch ``torch.save`` format): ``<root>/data.pkl`` (the pickle),
``<root>/data/<key>`` (raw little-endian storage bytes), ``<root>/byteorder``.
"""
from __future__ import annotations

import collections
import math
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..restricted_pickle import RestrictedUnpickler
from .tensor_stream import TensorStreamer, fill, zip_member

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexDoubleStorage": torch.complex128,
    "ComplexFloatStorage": torch.complex64,
    "UntypedStorage": torch.uint8,
}


@dataclass(frozen=True)
class StorageRef:
    """A storage in the zip: record ``data/<key>``, ``numel`` elements of ``dtype``."""

    key: str
    dtype: torch.dtype
    numel: int


@dataclass(frozen=True)
class LazyTensor:
    """A tensor not yet read: a strided view of ``storage`` (element units of ``dtype``)."""

    storage: StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype

    @property
    def shape(self) -> torch.Size:
        return torch.Size(self.size)


def _rebuild_tensor_v2(storage: StorageRef, offset: int, size: Any, stride: Any, *_: Any) -> LazyTensor:
    return LazyTensor(storage, int(offset), tuple(size), tuple(stride), storage.dtype)


def _rebuild_tensor_v3(storage: StorageRef, offset: int, size: Any, stride: Any, _grad: Any, _hooks: Any,
                       dtype: torch.dtype, *_: Any) -> LazyTensor:
    return LazyTensor(storage, int(offset), tuple(size), tuple(stride), dtype)


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


def _rebuild_from_type_v2(func: Any, _new_type: Any, args: tuple, _state: Any) -> Any:
    return func(*args)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


def _torch_global(module: str, name: str) -> Any:
    """What a torch checkpoint's pickle may name: our rebuild functions, containers, dtypes; else None."""
    if (module, name) in _ALLOWED:
        return _ALLOWED[module, name]
    if module == "torch" and name in _STORAGE_DTYPES:
        return _STORAGE_DTYPES[name]
    if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
        return getattr(torch, name)
    return None


class _CheckpointUnpickler(RestrictedUnpickler):
    """The restricted unpickler with the inert policy, reading storages as :class:`StorageRef`."""

    def __init__(self, file: Any) -> None:
        super().__init__(file, _torch_global, unknown="inert")

    def persistent_load(self, pid: Any) -> StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, dtype, key, _location, numel = pid
        if not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(f"unsupported storage type {dtype!r}")
        return StorageRef(str(key), dtype, int(numel))


class LazyZipCheckpoint:
    """An open torch zip checkpoint: ``.obj`` is the unpickled structure (tensors as
    :class:`LazyTensor`), :meth:`materialize` reads one tensor. Use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
            names = self._zip.namelist()
            pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise CheckpointError(
                    f"{self.path}: not a torch zip checkpoint (found {len(pickles)} data.pkl records)"
                )
            self._root = pickles[0].rsplit("/", 1)[0]
            byteorder = f"{self._root}/byteorder"
            if byteorder in names and self._zip.read(byteorder).strip() != b"little":
                raise CheckpointError(f"{self.path}: big-endian checkpoints are not supported")
            with self._zip.open(pickles[0]) as handle:
                self.obj = _CheckpointUnpickler(handle).load()
            self._raw = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except CheckpointError:
            self.close()
            raise
        except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, OSError, ValueError, KeyError,
                AttributeError, TypeError, IndexError) as exc:
            self.close()
            raise CheckpointError(f"{self.path}: corrupt or unreadable checkpoint ({exc})") from exc
        self._storages: dict[str, torch.Tensor] = {}
        self._streamer = TensorStreamer()

    def materialize(self, lazy: LazyTensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Read ``lazy`` (CPU, own memory), cast to ``dtype`` if given.

        A tensor that is its whole storage (the usual case) streams straight into
        its result; other views read their storage once and keep it for siblings.
        """
        ref = lazy.storage
        record = f"{self._root}/data/{ref.key}"
        itemsize = torch.empty((), dtype=ref.dtype).element_size()
        whole = (
            lazy.offset == 0
            and lazy.stride == torch.empty(lazy.size, device="meta").stride()
            and math.prod(lazy.size) * torch.empty((), dtype=lazy.dtype).element_size() == ref.numel * itemsize
        )
        try:
            if self._zip.getinfo(record).file_size != ref.numel * itemsize:
                raise CheckpointError(f"{self.path}: tensor data {ref.key!r} has the wrong size")
            if whole and ref.key not in self._storages:
                with zip_member(self._zip, self._raw, record) as readinto:
                    return self._streamer.read(readinto, lazy.size, lazy.dtype, dtype)
            raw = self._storages.get(ref.key)
            if raw is None:
                raw = torch.empty(ref.numel * itemsize, dtype=torch.uint8)
                with zip_member(self._zip, self._raw, record) as readinto:
                    fill(readinto, raw)
                self._storages[ref.key] = raw
            tensor = raw.view(lazy.dtype).as_strided(lazy.size, lazy.stride, lazy.offset)
        except (zipfile.BadZipFile, KeyError, OSError, EOFError, RuntimeError) as exc:
            raise CheckpointError(f"{self.path}: cannot read tensor data {ref.key!r} ({exc})") from exc
        return tensor.to(dtype=dtype or lazy.dtype, copy=True)

    def close(self) -> None:
        self._storages = {}
        for handle in (getattr(self, "_zip", None), getattr(self, "_raw", None)):
            if handle is not None:
                handle.close()

    def __enter__(self) -> LazyZipCheckpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
