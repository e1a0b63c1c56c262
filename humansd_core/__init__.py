"""HumanSD core: pure-PyTorch pose encoding, model, sampling and training.

Never imports ComfyUI (``tests/test_core_isolation.py`` enforces it). Heavy
submodules are imported lazily so ``import humansd_core`` stays fast.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import HumanSDError

__version__ = "0.1.0"
__all__ = ["HumanSDError", "HumanSDPipeline", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import HumanSDPipeline


def __getattr__(name: str) -> Any:
    if name == "HumanSDPipeline":
        from .pipeline import HumanSDPipeline

        return HumanSDPipeline
    raise AttributeError(f"module 'humansd_core' has no attribute {name!r}")
