"""The peak-RSS reader that the memory benchmark and the in-ComfyUI parity script share."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from humansd_core.process_memory import peak_rss_bytes, reset_peak_rss


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak reset needs /proc (Linux)")
def test_peak_after_reset_sees_a_new_allocation_and_nothing_before_it() -> None:
    big = np.ones(300 * 2**20, np.uint8)  # touched: 300 MiB resident
    del big
    reset_peak_rss()
    before = peak_rss_bytes()
    block = np.ones(100 * 2**20, np.uint8)
    after = peak_rss_bytes()
    assert block.sum() == block.size
    assert after - before >= 90 * 2**20
    # the 300 MiB block freed before the reset no longer counts in the peak
    assert after - before < 250 * 2**20
