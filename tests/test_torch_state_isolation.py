"""A test that changes torch's process-wide settings does not leak them into the next test (root conftest)."""
from __future__ import annotations

import torch
from support.torch_state import TorchState, capture

_SEEN: list[TorchState] = []


def test_a_test_may_change_torch_settings() -> None:
    _SEEN.append(capture())
    torch.set_num_threads(1 if torch.get_num_threads() > 1 else 2)
    torch.use_deterministic_algorithms(not torch.are_deterministic_algorithms_enabled())
    torch.set_default_dtype(torch.float64)
    torch.set_grad_enabled(False)
    torch.backends.cudnn.benchmark = not torch.backends.cudnn.benchmark
    torch.set_float32_matmul_precision("medium")
    assert capture() != _SEEN[0]


def test_the_next_test_starts_with_the_settings_from_before() -> None:
    assert _SEEN, "runs after the test above (file order)"
    assert capture() == _SEEN[0]
