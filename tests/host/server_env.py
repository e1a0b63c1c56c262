"""The ComfyUI server's own Python environment, made the way a user's ComfyUI gets the pack.

A user has a ComfyUI with its own venv (torch, ComfyUI's ``requirements.txt``), clones
the pack into ``custom_nodes/`` and runs ``pip install -r requirements.txt`` with that
venv's pip (README, "Install in ComfyUI"). :func:`ensure_server_env` builds exactly that,
and nothing else, in ``<repo>/.cache/comfy-server-venv-<digest>/``:

1. ``python -m venv`` (no editable install of this project, no path to the checkout);
2. ``torch`` and ``torchvision`` at the versions of the project's ``.venv``, with what they
   require: the files the project's pip installed, hard-linked into the new venv's
   ``site-packages`` with their ``dist-info`` (:func:`link_distributions`). pip would extract
   the same wheels into the same files; a link costs no disk, where a second CUDA build of
   torch costs about 5.5 GB (the pre-installed torch of a user's ComfyUI venv);
3. ComfyUI's requirements (``comfy_setup.filtered_requirements``: no torchaudio, plus
   ``requests``) with torch/torchvision held by a constraints file;
4. the pack's ``requirements.txt``, from the pack folder the server loads, with NO
   constraint of ours and none of the machine's pip configuration (which may cap torch):
   only then does a requirement that would move torch show. The torch/torchvision
   versions are read before and after this step; any change fails set-up
   (:class:`HostSetupError` naming the package and both versions).

The digest covers everything installed (ComfyUI's version and requirements, the pins,
the pack's ``requirements.txt``, the Python version), so a change builds a fresh
environment and an unchanged one is reused; ``versions.json`` is written last and marks
a complete build. Older environments of this checkout are removed when a new one is
built. A file lock keeps concurrent test runs from racing.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .comfy_setup import (
    CACHE_DIR,
    COMFY_VERSION,
    PINNED_PACKAGES,
    HostSetupError,
    ensure_comfyui_source,
    filtered_requirements,
    install_comfy_requirements,
    locked,
    project_pins,
    run_pip,
)

ENV_PREFIX = "comfy-server-venv-"
RECORD_NAME = "versions.json"
# Bump when the recipe above changes in a way the digest cannot see.
RECIPE = 2


@dataclass(frozen=True)
class ServerEnv:
    """A built server environment: its venv, the ComfyUI folder it runs, what was recorded."""

    venv: Path
    comfy_dir: Path
    versions: dict[str, dict[str, str]]  # "project", "before_pack_requirements", "after_pack_requirements"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def server_environ() -> dict[str, str]:
    """The process environment for the server's interpreter: this one's, minus anything that would
    put other packages on its path (``PYTHONPATH`` to a checkout, an activated venv)."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV"}
    return {key: value for key, value in os.environ.items() if key not in dropped} | {"PYTHONUNBUFFERED": "1"}


def _user_pip_environ() -> dict[str, str]:
    """:func:`server_environ` without this machine's pip configuration files (one caps torch for
    every install) or a ``PIP_CONSTRAINT``: as on a user's machine, only the requirements decide."""
    environ = {key: value for key, value in server_environ().items() if key != "PIP_CONSTRAINT"}
    return environ | {"PIP_CONFIG_FILE": os.devnull}


def installed_versions(python: Path, packages: tuple[str, ...] = PINNED_PACKAGES) -> dict[str, str]:
    """``{package: version}`` as ``python``'s environment has them (``importlib.metadata``)."""
    code = ("import json, sys; from importlib import metadata; "
            "print(json.dumps({p: metadata.version(p) for p in sys.argv[1:]}))")
    cmd = [str(python), "-c", code, *packages]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=server_environ())
    if proc.returncode != 0:
        raise HostSetupError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def _requirement_closure(names: tuple[str, ...]) -> list[metadata.Distribution]:
    """The distributions of this interpreter that ``names`` need: themselves and, recursively,
    every requirement whose marker holds here, with the requirements of the extras asked for
    (``cuda-toolkit[cudart,...]``)."""
    found: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo = [(name, "") for name in names]
    while todo:
        name, extra = todo.pop()
        name = canonicalize_name(name)
        if (name, extra) in done:
            continue
        done.add((name, extra))
        dist = found.setdefault(name, metadata.distribution(name))
        for line in dist.requires or ():
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                todo.extend((req.name, wanted) for wanted in ("", *req.extras))
    return list(found.values())


def _site_packages(python: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=server_environ(), check=True)
    return Path(proc.stdout.strip())


def link_distributions(python: Path, names: tuple[str, ...] = PINNED_PACKAGES) -> list[str]:
    """Hard-link ``names`` and their requirements (:func:`_requirement_closure`) from this
    interpreter's ``site-packages`` into ``python``'s: every file each ``RECORD`` lists there,
    ``dist-info`` included, so ``python``'s pip and ``importlib.metadata`` see them installed.
    Files outside ``site-packages`` (console scripts, whose first line names this interpreter)
    are left out. A distribution the new venv already has (setuptools) is not linked over: where
    its version differs, ``python``'s pip installs this interpreter's version, as a pip install
    of torch would. A file system without hard links gets copies. Returns the linked names."""
    source_root = Path(sysconfig.get_paths()["purelib"]).resolve()
    target_root = _site_packages(python)
    present = {canonicalize_name(d.metadata["Name"]): d.version
               for d in metadata.distributions(path=[str(target_root)])}
    linked, upgrades = [], []
    for dist in _requirement_closure(names):
        name = canonicalize_name(dist.metadata["Name"])
        if name in present:
            if present[name] != dist.version:
                upgrades.append(f"{name}=={dist.version}")
            continue
        for entry in dist.files or ():
            source = Path(dist.locate_file(entry)).resolve()
            if not source.is_relative_to(source_root) or not source.is_file():
                continue
            target = target_root / source.relative_to(source_root)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
        linked.append(name)
    if upgrades:
        run_pip(python, "install", *upgrades)
    return sorted(linked)


def _digest(comfy_dir: Path, pins: dict[str, str], pack_requirements: str) -> str:
    recipe = [RECIPE, COMFY_VERSION, list(sys.version_info[:2]), pins,
              filtered_requirements(comfy_dir / "requirements.txt"), pack_requirements]
    return hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:12]


def _check_unchanged(before: dict[str, str], after: dict[str, str], step: str) -> None:
    changed = [f"{pkg} {before[pkg]} -> {after.get(pkg)}" for pkg in before if after.get(pkg) != before[pkg]]
    if changed:
        raise HostSetupError(f"{step} changed {', '.join(changed)} (before -> after)")


def _build(venv: Path, comfy_dir: Path, pins: dict[str, str], pack_requirements: Path) -> dict[str, dict[str, str]]:
    shutil.rmtree(venv, ignore_errors=True)
    cmd = [sys.executable, "-m", "venv", str(venv)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise HostSetupError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{proc.stderr[-3000:]}")
    python = venv / "bin" / "python"
    link_distributions(python)
    _check_unchanged(pins, installed_versions(python), f"linking {pins} into {venv}")
    install_comfy_requirements(python, comfy_dir, pins)
    before = installed_versions(python)
    run_pip(python, "install", "-r", str(pack_requirements), env=_user_pip_environ())
    after = installed_versions(python)
    _check_unchanged(before, after, f"{python} -m pip install -r {pack_requirements}")
    return {"project": pins, "before_pack_requirements": before, "after_pack_requirements": after}


def ensure_server_env(pack_dir: Path) -> ServerEnv:
    """The server environment for the pack folder ``pack_dir`` (its ``requirements.txt``), built if needed."""
    comfy_dir = ensure_comfyui_source()
    pins = project_pins()
    pack_requirements = pack_dir / "requirements.txt"
    venv = CACHE_DIR / f"{ENV_PREFIX}{_digest(comfy_dir, pins, pack_requirements.read_text())}"
    record = venv / RECORD_NAME
    with locked(CACHE_DIR / f"{ENV_PREFIX}build.lock"):
        if not record.exists():
            for old in CACHE_DIR.glob(f"{ENV_PREFIX}*"):
                if old.is_dir() and old != venv:
                    shutil.rmtree(old, ignore_errors=True)
            versions = _build(venv, comfy_dir, pins, pack_requirements)
            record.write_text(json.dumps(versions, indent=1) + "\n")
    return ServerEnv(venv, comfy_dir, json.loads(record.read_text()))
