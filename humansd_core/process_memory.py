"""This process's peak resident memory, for benchmarks and memory tests.

On Linux the peak is the kernel's high-water mark ``VmHWM``, which
:func:`reset_peak_rss` can reset (``/proc/self/clear_refs``) so that a later reading
covers only what ran in between. Elsewhere the lifetime peak from
``resource.getrusage`` is returned: an upper bound of the peak since a reset.
"""
from __future__ import annotations

import contextlib
import resource
import sys
from pathlib import Path


def reset_peak_rss() -> None:
    """Linux: start a new peak-RSS measurement from the current RSS (elsewhere: no effect)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_bytes() -> int:
    """Peak resident memory in bytes since the process started or :func:`reset_peak_rss` was called."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
