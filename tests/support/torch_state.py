"""Torch's process-wide settings that a test (or the code it runs) may change, captured and put back.

The root ``conftest.py`` restores them after every test, so no test runs under another
test's thread count, deterministic-algorithms flag, default dtype, grad mode or cuDNN
settings (``tests/test_torch_state_isolation.py`` checks it).
"""
from __future__ import annotations

from typing import Any

import torch

TorchState = dict[str, Any]


def capture() -> TorchState:
    """The current values of every setting :func:`restore` puts back."""
    return {
        "num_threads": torch.get_num_threads(),
        "num_interop_threads": torch.get_num_interop_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "default_dtype": torch.get_default_dtype(),
        "grad_enabled": torch.is_grad_enabled(),
        "anomaly_enabled": torch.is_anomaly_enabled(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_enabled": torch.backends.cudnn.enabled,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }


def restore(state: TorchState) -> list[str]:
    """Put back ``state`` (from :func:`capture`); returns the names of the settings that had changed.

    The inter-op thread count can only be set before any inter-op work has run: a test
    that changed it raises ``RuntimeError`` here instead of leaking it silently.
    """
    changed = [name for name, value in capture().items() if value != state[name]]
    torch.set_num_threads(state["num_threads"])
    if "num_interop_threads" in changed:
        try:
            torch.set_num_interop_threads(state["num_interop_threads"])
        except RuntimeError as exc:
            raise RuntimeError(f"a test changed torch's inter-op thread count, which cannot be put back: {exc}") \
                from exc
    torch.use_deterministic_algorithms(state["deterministic"], warn_only=state["deterministic_warn_only"])
    torch.set_default_dtype(state["default_dtype"])
    torch.set_grad_enabled(state["grad_enabled"])
    torch.autograd.set_detect_anomaly(state["anomaly_enabled"])
    torch.set_float32_matmul_precision(state["float32_matmul_precision"])
    torch.backends.cudnn.enabled = state["cudnn_enabled"]
    torch.backends.cudnn.benchmark = state["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = state["cudnn_deterministic"]
    torch.backends.cudnn.allow_tf32 = state["cudnn_allow_tf32"]
    torch.backends.cuda.matmul.allow_tf32 = state["cuda_matmul_allow_tf32"]
    return changed
