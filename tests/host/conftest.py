"""Session fixtures of the host tests: the pack installed as users install it, in a real ComfyUI.

- ``installed_pack``: this checkout copied as a clone would be (``pack_copy.py``) to
  ``<session>/custom_nodes/ComfyUI-HumanSD``;
- ``server_env``: ComfyUI's own environment with the pack's ``requirements.txt``
  installed from that copy (``server_env.py``);
- ``comfy_host``: the ComfyUI server of that environment, loading that copy;
- ``browser``, ``frontend``, ``comfy_page``: ComfyUI's frontend in headless Chromium
  (``browser.py``): one browser and one tab per session, reset before each test.

Setup failures always fail the tests (never skip), in CI and locally alike.

``HUMANSD_COMFY_ARGS`` (optional, for manual checks; CI does not set it) adds arguments to
the server's command line, e.g. ``--front-end-root <folder>/comfyui_frontend_package/static``
to run the browser tests against another frontend version unpacked from its wheel.
"""
from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Iterator

import pytest

from playwright.sync_api import Browser, sync_playwright

from .browser import SCREENSHOT_DIR, VIEWPORT, ComfyPage, launch_chromium
from .comfy_server import PACK_NAME, ComfyHost
from .comfy_setup import REPO_ROOT
from .pack_copy import copy_checkout
from .server_env import ServerEnv, ensure_server_env

_TIMINGS: dict[str, float] = {}
_SESSION_START = time.time()


def _add_time(key: str, seconds: float) -> None:
    _TIMINGS[key] = _TIMINGS.get(key, 0.0) + seconds


@pytest.fixture(scope="session")
def installed_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's copy of the pack: ``<session>/custom_nodes/ComfyUI-HumanSD``."""
    began = time.perf_counter()
    pack = copy_checkout(REPO_ROOT, tmp_path_factory.mktemp("custom_nodes", numbered=False) / PACK_NAME)
    _add_time("pack copy", time.perf_counter() - began)
    return pack


@pytest.fixture(scope="session")
def server_env(installed_pack: Path) -> ServerEnv:
    began = time.perf_counter()
    env = ensure_server_env(installed_pack)
    _add_time("server env", time.perf_counter() - began)
    return env


@pytest.fixture(scope="session")
def comfy_host(server_env: ServerEnv, installed_pack: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyHost]:
    host = ComfyHost(server_env, [installed_pack.parent], tmp_path_factory.mktemp("comfy_host"),
                     extra_args=shlex.split(os.environ.get("HUMANSD_COMFY_ARGS", "")))
    try:
        host.start()
        _TIMINGS["server start"] = host.start_seconds
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium (Debian's), one for the session."""
    with sync_playwright() as playwright:
        began = time.perf_counter()
        chromium = launch_chromium(playwright)
        _add_time("browser launch", time.perf_counter() - began)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def frontend(browser: Browser, comfy_host: ComfyHost) -> Iterator[ComfyPage]:
    """One tab on ``comfy_host``'s frontend in a fresh browser context (no stored settings), opened
    once (:meth:`ComfyPage.open`: app up, first-run template dialog closed)."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = ComfyPage(context.new_page(), comfy_host.base_url).open()
        _add_time("page open", page.open_seconds)
        yield page
    finally:
        context.close()


@pytest.fixture
def comfy_page(frontend: ComfyPage) -> ComfyPage:
    """The session's frontend tab, :meth:`~ComfyPage.reset` for this test (blank workflow, nothing recorded)."""
    return frontend.reset()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _TIMINGS:
        parts = ", ".join(f"{key} {value:.1f} s" for key, value in _TIMINGS.items())
        terminalreporter.write_line(f"ComfyUI host: {parts}")
    shots = [p for p in SCREENSHOT_DIR.glob("*.png") if p.stat().st_mtime >= _SESSION_START]
    if shots:
        terminalreporter.write_line(f"ComfyUI frontend screenshots ({len(shots)} this run): {SCREENSHOT_DIR}")
