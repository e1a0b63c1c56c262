"""Atomic file writing: write to a temporary file beside the target, then rename.

A failure part-way leaves any existing file at ``path`` untouched and no partial
file behind. A file written here gets the permissions an ordinary
``open(path, "w")`` would give it: a new file ``0o666`` less the process umask
(and the folder's default ACL, where it has one), a replaced file keeps its mode.
The umask is never read: the temporary file is created with ``os.open(...,
0o666)``, so the kernel applies the umask itself, atomically and safely for
threads (``os.umask``, the only portable way to read it, sets it process-wide).
After the rename the folder is fsynced, so the new name survives a crash (POSIX;
skipped where a folder cannot be opened, as on Windows).
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import HumanSDError

# fsync of a folder fails with these on filesystems that do not support it: nothing to do there.
_NO_DIR_FSYNC = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF})


def _create_temp(target: Path) -> tuple[Path, int]:
    """Create an empty ``.<name>.<random>.tmp`` beside ``target``; returns it and its permission bits."""
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        if mode & 0o600 != 0o600:  # a umask that denies the owner: writers still need to open it
            os.chmod(tmp, mode | 0o600)
        return tmp, mode
    raise FileExistsError(errno.EEXIST, f"no free temporary name beside {target}")


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable; silently nothing where folders cannot be opened or synced."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows (PermissionError) and other systems without folder handles
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_DIR_FSYNC:
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success rename it onto ``path``.

    The caller writes the whole file to the yielded path (any writer that takes a
    filename, even one that deletes and re-creates it). On success the file gets
    ``path``'s current mode when ``path`` exists, else the mode a new file gets
    under the umask, then replaces ``path`` and the folder is fsynced (an error
    there is raised, with the new file already in place). On an exception before
    the rename the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp, new_mode = _create_temp(target)
    try:
        yield tmp
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = new_mode
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def require_file(path: str | os.PathLike[str], what: str = "") -> Path:
    """``path`` as a Path if it is a file this process can open for reading, else ``HumanSDError``.

    The message starts with ``what`` (e.g. ``"--pose"``, when given) and the path, and
    says which of missing, a folder or unreadable (with the system's reason) it is.
    """
    file = Path(path).expanduser()
    where = f"{what} {file}" if what else str(file)
    if file.is_dir():
        raise HumanSDError(f"{where}: a folder, not a file")
    try:
        with open(file, "rb"):
            pass
    except FileNotFoundError:
        raise HumanSDError(f"{where}: file not found") from None
    except OSError as exc:
        raise HumanSDError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    return file
