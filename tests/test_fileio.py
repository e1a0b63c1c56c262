"""Atomic writes: the permissions an ordinary write gives, the old file kept on failure, no temporary left."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from humansd_core.fileio import atomic_path, atomic_write_text, atomic_write_with

REPO = Path(__file__).resolve().parents[1]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_under_umask(umask: int, path: Path) -> tuple[int, int]:
    """In a fresh process with ``umask``: the modes of an atomic write and of a plain ``open(..., "w")``."""
    code = (
        "import os, stat, sys\n"
        "from humansd_core.fileio import atomic_write_text\n"
        f"os.umask({umask:#o})\n"
        "atomic_write_text(sys.argv[1], 'x')\n"
        "open(sys.argv[1] + '.plain', 'w').close()\n"
        "print(stat.S_IMODE(os.stat(sys.argv[1]).st_mode), stat.S_IMODE(os.stat(sys.argv[1] + '.plain').st_mode))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env,
                          check=True, timeout=60)
    atomic, plain = proc.stdout.split()
    return int(atomic), int(plain)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664), (0o277, 0o400)],
                         ids=["umask022", "umask077", "umask002", "umask277"])
def test_a_new_file_gets_the_mode_of_an_ordinary_write(tmp_path: Path, umask: int, expected: int) -> None:
    atomic, plain = _write_under_umask(umask, tmp_path / "new.txt")
    assert (oct(atomic), oct(plain)) == (oct(expected), oct(expected))


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_replacing_a_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    target.write_text("old")
    target.chmod(0o640)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and oct(_mode(target)) == oct(0o640)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_a_writer_that_recreates_the_file_still_gets_the_target_mode(tmp_path: Path) -> None:
    target = tmp_path / "image.png"
    target.write_text("old")
    target.chmod(0o604)

    def recreate(tmp: Path) -> None:
        tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"new")
        os.close(fd)

    atomic_write_with(target, recreate)
    assert target.read_text() == "new" and oct(_mode(target)) == oct(0o604)


def test_a_failure_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.png.") and tmp.suffix == ".tmp"
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_writes_create_missing_folders_and_leave_only_the_target(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "pose.json"
    atomic_write_text(target, "{}")
    atomic_write_text(target, "[]")
    assert target.read_text() == "[]" and [p.name for p in target.parent.iterdir()] == ["pose.json"]
