"""Fixtures every test gets (the one root conftest; ``tests/host/conftest.py`` adds the ComfyUI host)."""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from support.torch_state import capture, restore


@pytest.fixture(autouse=True)
def restore_torch_state() -> Iterator[None]:
    """Torch's process-wide settings after a test are those before it (threads, deterministic algorithms,
    default dtype, grad mode, cuDNN flags): the trainer and the CLI commands set some of them."""
    before = capture()
    yield
    restore(before)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """In CI (``CI=true``) a skipped test is a failure: a skip there would stand in for a pass.
    The skips in the suite guard platforms (POSIX modes, Linux /proc, an older torch) that CI
    has, so in CI they never fire; elsewhere they stay skips."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true" and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every test must run: {report.longrepr}"
