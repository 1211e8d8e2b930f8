"""The device runner's peak memory is its own, not inherited from the process that started it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from edgeseal.runtime.evaluate import peak_rss_mb


def test_peak_rss_is_not_inherited_from_a_large_parent():
    ballast = np.ones(300 * 2**20, dtype=np.uint8)  # touched: 300 MiB resident in this (parent) process
    assert peak_rss_mb() > 300
    code = "from edgeseal.runtime.evaluate import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 5 < child < 150, child
    del ballast
