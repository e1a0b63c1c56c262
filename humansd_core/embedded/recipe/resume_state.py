"""Resume states of the recipe's own trainers (estimators, VAE): one ``torch.save`` file per run.

A state is a dict of tensors, state dicts and numbers plus the run's ``identity`` (its
options, as the trainer defines them); it is written atomically and read back with
``weights_only=True``, and a state of a run with another identity is refused, so a
changed option never continues an old run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...errors import HumanSDError
from ...fileio import atomic_write_with


def save_state(path: Path, state: dict[str, Any], identity: object) -> None:
    """Write ``state`` with its run's ``identity`` to ``path`` atomically."""
    atomic_write_with(path, lambda tmp: torch.save({**state, "identity": identity}, tmp))


def load_state(path: Path | None, identity: object, run: str) -> dict[str, Any] | None:
    """The state at ``path``, or None when ``path`` is None or no file; a state saved by another run
    (``run``: what the message calls it) raises :class:`HumanSDError`."""
    if path is None or not path.is_file():
        return None
    state = torch.load(path, weights_only=True)
    if state.get("identity") != identity:
        raise HumanSDError(f"{path}: the resume state of another run of {run}, with other options "
                           f"({state.get('identity')}, not {identity}); remove it or change the path")
    return state
