"""Names a user types for runs and saved files, made safe: they never leave their folder.

* :func:`checked_name`: a relative name of one or more ``/``-separated parts (letters,
  digits, space, ``_ - . ( ) +``), no part ``.``/``..`` or hidden, at most 200 characters;
  else :class:`HumanSDError` naming it and what is wrong.
* :func:`free_file`: ``<folder>/<name><suffix>``, or with ``_00001``, ``_00002``...
  appended when taken (ComfyUI's habit), checked to lie inside ``folder``.
* :func:`run_folder`: a training run's folder ``<parent>/<name>_NNNNN``: a new one, or
  (``resume``) the newest one that holds a checkpoint.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import HumanSDError
from .checkpointing import list_checkpoints

_PART = re.compile(r"[A-Za-z0-9_\-.()+ ]+")
MAX_NAME = 200


def checked_name(name: str, what: str = "name", allow_subfolders: bool = True) -> str:
    """``name`` stripped of spaces at the ends and with ``\\`` read as ``/``, if it is safe (module docstring)."""
    text = str(name).strip().replace("\\", "/")
    parts = text.split("/")
    problem = ""
    if not text:
        problem = "it is empty"
    elif len(text) > MAX_NAME:
        problem = f"it is longer than {MAX_NAME} characters"
    elif text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        problem = "it is an absolute path"
    elif len(parts) > 1 and not allow_subfolders:
        problem = "it names a subfolder"
    else:
        for part in parts:
            if part in ("", ".", "..") or part.startswith("."):
                problem = f"its part {part!r} is empty, hidden or leaves the folder"
                break
            if not _PART.fullmatch(part) or part != part.strip():
                problem = (f"its part {part!r} has characters other than letters, digits, space and _ - . ( ) +, "
                           "or spaces at an end")
                break
    if problem:
        raise HumanSDError(f"{what} {name!r}: not usable as a file name ({problem})")
    return text


def _inside(folder: Path, path: Path) -> Path:
    root = folder.resolve()
    resolved = path.resolve()
    if os.path.commonpath([root, resolved]) != str(root):
        raise HumanSDError(f"{path}: outside the folder {root}")
    return resolved


def free_file(folder: str | os.PathLike[str], name: str, suffix: str, overwrite: bool = False,
              what: str = "name") -> Path:
    """The file ``name`` + ``suffix`` in ``folder`` (see the module docstring); ``overwrite``: the name as is."""
    name = checked_name(name, what)
    if name.lower().endswith(suffix.lower()):
        name = name[: -len(suffix)]
    base = Path(folder) / name
    path = base.with_name(base.name + suffix)
    counter = 0
    while not overwrite and path.exists():
        counter += 1
        path = base.with_name(f"{base.name}_{counter:05d}{suffix}")
    return _inside(Path(folder), path)


def run_folder(parent: str | os.PathLike[str], name: str, resume: bool) -> Path:
    """``<parent>/<name>_NNNNN``: with ``resume`` the highest-numbered one holding a checkpoint (HumanSDError if
    none), else the next unused number."""
    name = checked_name(name, "run name", allow_subfolders=False)
    parent = Path(parent)
    pattern = re.compile(re.escape(name) + r"_(\d{5})")
    taken = sorted((int(m.group(1)), p) for p in (parent.iterdir() if parent.is_dir() else [])
                   if (m := pattern.fullmatch(p.name)) and p.is_dir())
    if resume:
        for _, path in reversed(taken):
            if list_checkpoints(path / "checkpoints"):
                return _inside(parent, path)
        raise HumanSDError(f"resume: no run {name!r} with a checkpoint in {parent} (looked for {name}_NNNNN/"
                           "checkpoints/step-*.safetensors); start it without resume first")
    number = taken[-1][0] + 1 if taken else 1
    return _inside(parent, parent / f"{name}_{number:05d}")
