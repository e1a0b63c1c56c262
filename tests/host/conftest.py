"""Session fixture ``comfy_host``: a real ComfyUI server with this pack loaded.

Setup failures always fail the tests (never skip), in CI and locally alike.
"""
from __future__ import annotations

import time
from typing import Iterator

import pytest

from .comfy_server import ComfyHost
from .comfy_setup import REPO_ROOT, ensure_comfyui

_TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="session")
def comfy_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyHost]:
    began = time.perf_counter()
    comfy_dir = ensure_comfyui()
    _TIMINGS["provision"] = time.perf_counter() - began
    host = ComfyHost(comfy_dir, REPO_ROOT, tmp_path_factory.mktemp("comfy_host"))
    try:
        host.start()
        _TIMINGS["start"] = host.start_seconds
        yield host
    finally:
        host.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _TIMINGS:
        parts = ", ".join(f"{key} {value:.1f} s" for key, value in _TIMINGS.items())
        terminalreporter.write_line(f"ComfyUI host: {parts}")
