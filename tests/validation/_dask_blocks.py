"""Block functions for tests/validation/test_dask.py, importable by Dask workers."""

from __future__ import annotations

import time

import numpy as np


def sleepy_block(start, stop, delay_s):
    """Replicate indices as floats, after ``delay_s`` seconds per block."""
    time.sleep(delay_s)
    return np.arange(start, stop, dtype=float)
