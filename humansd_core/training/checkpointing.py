"""Resume checkpoints: one safetensors file per save, written atomically, the last K kept.

``<run>/checkpoints/step-00000100.safetensors`` holds tensors only (never pickles):

* ``param.<name>``: the trained parameters (LoRA adapters, or whole networks);
* ``optim.<param index>.<key>``: AdamW's per-parameter state (``step``, ``exp_avg``, ...);
* ``ema.<key>``: the EMA copy's state, when EMA is on;
* ``extra.<key>``: other trainer tensors (e.g. the fitted linear latent decoder).

Its metadata key ``humansd_train_state`` holds JSON: the step, the data position, the
optimiser's param groups and scalar state, the LR scheduler's and gradient scaler's
state dicts, and the RNG states of every rank (Python, NumPy, torch CPU and CUDA) as
integer lists. The file is written to a temporary name and renamed, so a process
killed while saving leaves the previous checkpoints as they were (and at most a
``.step-*.tmp`` file, removed by :func:`remove_partial`).
"""
from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

from ..errors import CheckpointError
from ..fileio import atomic_write_with
from ..models.safetensors_write import write_safetensors

logger = logging.getLogger(__name__)

STATE_KEY = "humansd_train_state"
NAME_RE = re.compile(r"step-(\d{8})\.safetensors")


def checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"step-{step:08d}.safetensors"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the checkpoints in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := NAME_RE.fullmatch(p.name))]
    return sorted(found)


def prune_checkpoints(directory: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for _, path in list_checkpoints(directory)[:-keep]:
        path.unlink(missing_ok=True)


def remove_partial(directory: Path) -> None:
    """Delete temporary files left by a process killed while saving."""
    if directory.is_dir():
        for path in directory.glob(".step-*.tmp"):
            path.unlink(missing_ok=True)


# -- RNG states ------------------------------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """This process's RNG states as JSON-ready data."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": [version, list(internal), gauss],
        "numpy": {"state": {"key": np_state["state"]["key"].tolist(), "pos": int(np_state["state"]["pos"])},
                  "has_gauss": int(np_state["has_gauss"]), "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state().tolist(),
        "cuda": [s.tolist() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Set this process's RNGs from :func:`capture_rng` data."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": np.array(np_state["state"]["key"], dtype=np.uint32),
                                   "pos": np_state["state"]["pos"]},
                         "has_gauss": np_state["has_gauss"], "gauss": np_state["gauss"]})
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if state["cuda"] and torch.cuda.is_available():
        cuda_states = [torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


# -- optimiser state -------------------------------------------------------------------------------


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """AdamW's state dict split into tensors (``optim.<i>.<key>``) and JSON (groups, scalars)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in sd["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_tensors` (tensors moved to their parameters' devices by torch)."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    groups = meta["param_groups"]
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# -- files -----------------------------------------------------------------------------------------


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Write tensors + JSON state to ``path`` atomically (one tensor at a time: no second copy in memory)."""
    metadata = {STATE_KEY: json.dumps(state)}
    atomic_write_with(path, lambda tmp: write_safetensors(tmp, tensors, metadata))
    logger.info("saved checkpoint %s", path)


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, state)`` of a checkpoint; CheckpointError naming the file when unreadable."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            meta = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:  # safetensors raises several types for damaged files
        raise CheckpointError(f"{path}: not a readable training checkpoint ({exc})") from None
    if STATE_KEY not in meta:
        raise CheckpointError(f"{path}: no {STATE_KEY!r} metadata; not a training checkpoint")
    return tensors, json.loads(meta[STATE_KEY])


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest checkpoint whose header reads back (older ones are tried when the newest does not)."""
    for step, path in reversed(list_checkpoints(directory)):
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:  # reads the header only
                ok = STATE_KEY in (handle.metadata() or {})
        except Exception as exc:  # safetensors raises several types for damaged files
            logger.warning("skipping checkpoint of step %d: %s", step, exc)
            continue
        if ok:
            return path
        logger.warning("skipping checkpoint of step %d: no %s metadata", step, STATE_KEY)
    return None
