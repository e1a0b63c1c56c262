"""Fixtures every test gets (the one root conftest; ``tests/host/conftest.py`` adds the ComfyUI host)."""
from __future__ import annotations

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
