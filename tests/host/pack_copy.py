"""The pack as a ``git clone`` of this checkout would put it in ``custom_nodes/``: a plain folder.

:func:`copy_checkout` copies the files git would hand a clone of the working tree —
``git ls-files --cached --others --exclude-standard``: tracked files as they are now on
disk (uncommitted edits included) plus new files that are not ignored — and nothing else
(``.venv``, ``.cache``, ``out/`` and other ignored files stay behind). No symlink back to
the checkout: the server sees only the copy, as it would see a user's clone.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .comfy_setup import HostSetupError


def checkout_files(repo: Path) -> list[str]:
    """Paths (relative to ``repo``) a clone of the working tree would hold; tracked files deleted on disk are left out."""
    cmd = ["git", "-C", str(repo), "ls-files", "--cached", "--others", "--exclude-standard", "-z"]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise HostSetupError(f"{cmd[0]} not found: the host tests copy the pack as a clone would ({exc})") from exc
    if proc.returncode != 0:
        raise HostSetupError(f"{' '.join(cmd)} failed with exit code {proc.returncode}: "
                             f"{proc.stderr.decode(errors='replace')[-2000:]}")
    names = sorted({name for name in proc.stdout.decode().split("\0") if name})
    return [name for name in names if (repo / name).is_file() or (repo / name).is_symlink()]


def copy_checkout(repo: Path, dest: Path) -> Path:
    """Copy :func:`checkout_files` of ``repo`` into the new folder ``dest``; returns ``dest``."""
    files = checkout_files(repo)
    if "__init__.py" not in files or "requirements.txt" not in files:
        raise HostSetupError(f"{repo} does not look like the pack's checkout (no __init__.py / requirements.txt)")
    dest.mkdir(parents=True)
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, target, follow_symlinks=False)
    return dest
