"""The pack as users install it (README, "Install in ComfyUI"), checked where the set-up could lie.

The session's server runs ComfyUI's own environment with the pack's ``requirements.txt``
and nothing else (``server_env.py``), loading a clone-like copy of this checkout
(``pack_copy.py``). These tests make sure that is what really runs: the core is not
importable by name there (so every lookup inside the pack must be relative), the
requirements did not move torch, the server loads the copy; and that a stale
``humansd_core`` installed into ComfyUI's environment (a user who once ran
``pip install .`` there) does not win over the pack's own files.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psutil
import pytest

from humansd_core import embedded

from .comfy_server import PACK_NAME, ComfyHost
from .comfy_setup import REPO_ROOT, project_pins
from .inference_prompts import MANNEQUIN, MANNEQUIN_JUDGE, load_api, node_id, saved_images, set_inputs, upload_mannequin_scene
from .pack_copy import checkout_files
from .server_env import ServerEnv, installed_versions, server_environ

pytestmark = pytest.mark.host

STALE_MARKER = "STALE humansd_core from site-packages was imported"


def _run_python(env: ServerEnv, code: str) -> subprocess.CompletedProcess:
    """``code`` in ``env``'s interpreter, from the ComfyUI folder, as the server runs (``python main.py``)."""
    return subprocess.run([str(env.python), "-c", code], cwd=env.comfy_dir, env=server_environ(),
                          capture_output=True, text=True, timeout=120)


def test_pack_requirements_left_torch_as_comfyui_had_it(server_env: ServerEnv) -> None:
    versions = server_env.versions
    assert versions["project"] == project_pins()
    assert versions["before_pack_requirements"] == versions["after_pack_requirements"] == versions["project"]
    assert installed_versions(server_env.python) == versions["project"]  # and still so now


def test_core_is_not_importable_by_name_in_the_server_interpreter(server_env: ServerEnv, comfy_host: ComfyHost) -> None:
    proc = _run_python(server_env, "import humansd_core")
    assert proc.returncode != 0 and "No module named 'humansd_core'" in proc.stderr, proc.stderr
    # ... and that interpreter, from that folder, with no PYTHONPATH, is the running server.
    server = psutil.Process(comfy_host.pid)
    assert server.cmdline()[:2] == [str(server_env.python), "main.py"]
    assert Path(server.cwd()) == server_env.comfy_dir
    assert "PYTHONPATH" not in server.environ()
    prefix = _run_python(server_env, "import sys; print(sys.prefix)")
    assert Path(prefix.stdout.strip()) == server_env.venv


def test_server_loads_the_pack_from_its_clone_like_copy(comfy_host: ComfyHost, installed_pack: Path) -> None:
    assert installed_pack.is_dir() and not installed_pack.is_symlink()
    copied = sorted(str(p.relative_to(installed_pack)) for p in installed_pack.rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts)
    assert copied == checkout_files(REPO_ROOT)
    assert not any(name.startswith((".venv/", ".cache/", "out/")) for name in copied)
    assert installed_pack.parent in comfy_host.custom_nodes
    loaded = [line for line in comfy_host.log_text().splitlines() if line.strip().endswith(f"/{PACK_NAME}")]
    assert loaded and all(line.split("seconds: ")[-1] == str(installed_pack) for line in loaded), loaded


# --- a stale copy of the core installed into ComfyUI's environment --------------------------

def _environment_with_stale_core(env: ServerEnv, dest: Path) -> ServerEnv:
    """A venv that sees all of ``env``'s packages (``env`` itself is left untouched) plus, in its own
    site-packages and so found first, a ``humansd_core`` as ``pip install .`` would have put it there:
    the package's files, but its ``__init__`` raises :data:`STALE_MARKER` and every packaged file
    (weights, presets, poses) holds only that marker, so code or data reached there, by import or
    by path, fails loudly."""
    subprocess.run([str(env.python), "-m", "venv", "--without-pip", str(dest)], check=True, capture_output=True)
    (site,) = (dest / "lib").glob("python3*/site-packages")
    (base,) = (env.venv / "lib").glob("python3*/site-packages")
    (site / "zz_comfy_server_env.pth").write_text(f"import site; site.addsitedir({str(base)!r})\n")
    stale = site / "humansd_core"
    shutil.copytree(REPO_ROOT / "humansd_core", stale, ignore=shutil.ignore_patterns("__pycache__"))
    (stale / "__init__.py").write_text(f"raise RuntimeError({STALE_MARKER!r} + ': ' + __file__)\n")
    for packaged in (stale / "assets").rglob("*"):
        if packaged.is_file():
            packaged.write_text(STALE_MARKER)
    return ServerEnv(dest, env.comfy_dir, env.versions)


@pytest.fixture(scope="module")
def stale_env(server_env: ServerEnv, tmp_path_factory: pytest.TempPathFactory) -> ServerEnv:
    return _environment_with_stale_core(server_env, tmp_path_factory.mktemp("stale") / "venv")


@pytest.fixture(scope="module")
def stale_host(stale_env: ServerEnv, installed_pack: Path, tmp_path_factory: pytest.TempPathFactory):
    host = ComfyHost(stale_env, [installed_pack.parent], tmp_path_factory.mktemp("comfy_stale_host"))
    try:
        host.start()
        yield host
    finally:
        host.stop()


def test_the_stale_copy_is_what_import_humansd_core_finds(stale_env: ServerEnv) -> None:
    proc = _run_python(stale_env, "import humansd_core")
    assert proc.returncode != 0 and STALE_MARKER in proc.stderr, proc.stderr
    found = _run_python(stale_env, "from importlib.util import find_spec as f; "
                                   "print(all(f(n) for n in ('torch', 'comfyui_frontend_package', 'open_clip')))")
    assert found.stdout.strip() == "True", found.stderr  # and it sees the server's packages


def test_pack_uses_its_own_files_beside_a_stale_installed_copy(stale_host: ComfyHost) -> None:
    """The main workflow (embedded model: the pack's weights and presets) and the photo workflow with
    the bundled mannequin detector and judge (the pack's estimator weights) run to images; had any
    lookup reached the installed copy, it would have met the marker. Both at 2 steps (the run's
    length is not what is checked here)."""
    main = set_inputs(load_api("humansd_keypoints_to_image"), "HumanSDSampler", steps=2)
    _, photo_name = upload_mannequin_scene(stale_host, 0)
    photo = set_inputs(load_api("humansd_photo_to_image"), "HumanSDSampler", steps=2)
    set_inputs(photo, "LoadImage", image=photo_name)
    set_inputs(photo, "HumanSDPoseFromImage", detector=MANNEQUIN)
    set_inputs(photo, "HumanSDPoseScore", detector=MANNEQUIN_JUDGE)
    for prompt in (main, photo):
        image = saved_images(stale_host, stale_host.run_prompt(prompt, timeout=300), node_id(prompt, "SaveImage"))
        assert image.shape == (1, embedded.SIZE, embedded.SIZE, 3) and image.std() > 0.02
    log = stale_host.log_text()
    assert STALE_MARKER not in log
    assert not [line for line in log.splitlines() if PACK_NAME in line and "IMPORT FAILED" in line]
