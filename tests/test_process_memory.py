"""The peak-RSS reader that the memory benchmark and the in-ComfyUI parity script share.

Measured in a fresh process, as the benchmark measures (one step per process): a
long-lived test process has allocator and thread state that can hide a new block.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

MIB = 2**20
PROBE = """
import json
import numpy as np
from humansd_core.process_memory import peak_rss_bytes, reset_peak_rss
big = np.ones(300 * 2**20, np.uint8)   # touched: 300 MiB resident, then freed
lifetime = peak_rss_bytes()
del big
reset_peak_rss()
before = peak_rss_bytes()
block = np.ones(100 * 2**20, np.uint8)
after = peak_rss_bytes()
print(json.dumps({"lifetime": lifetime, "before": before, "after": after, "sum": int(block.sum())}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak reset needs /proc (Linux)")
def test_peak_after_reset_sees_a_new_allocation_and_nothing_before_it() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True)
    seen = json.loads(out.stdout)
    assert seen["sum"] == 100 * MIB
    assert seen["after"] - seen["before"] >= 90 * MIB
    # the 300 MiB block freed before the reset no longer counts in the peak
    assert seen["lifetime"] - seen["after"] >= 150 * MIB
