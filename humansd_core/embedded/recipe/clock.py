"""CPU and wall clocks of the recipe's steps (what the model card reports)."""
from __future__ import annotations

import resource
import time


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Clock:
    """Per-step CPU and wall time: :meth:`lap` records the time since the previous lap under a name."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, float]] = {}
        self.cpu, self.wall = cpu_seconds(), time.perf_counter()

    def lap(self, name: str) -> str:
        """Record ``{"cpu_s", "wall_s"}`` since the previous lap as ``rows[name]``; returns it as a line to print."""
        cpu, wall = cpu_seconds(), time.perf_counter()
        self.rows[name] = {"cpu_s": round(cpu - self.cpu, 1), "wall_s": round(wall - self.wall, 1)}
        line = f"[{name}] cpu {cpu - self.cpu:.0f} s, wall {wall - self.wall:.0f} s"
        self.cpu, self.wall = cpu, wall
        return line
