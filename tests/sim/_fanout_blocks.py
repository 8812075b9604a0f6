"""Block functions for tests/sim/test_fanout.py, importable by worker processes."""

from __future__ import annotations

import os
import time

import numba
import numpy as np

from sim.ab import _moments_block


def slow_moments_block(start, stop, delay_s, *moment_args):
    """``sim.ab._moments_block`` after ``delay_s`` seconds (so a test can act mid-run)."""
    time.sleep(delay_s)
    return _moments_block(start, stop, *moment_args)


def numba_threads_block(start, stop):
    """Per replicate: numba's thread count and the worker's NUMBA_NUM_THREADS setting."""
    env = int(os.environ.get("NUMBA_NUM_THREADS", "0"))
    return np.array([[numba.get_num_threads(), env]] * (stop - start))


def wrong_length_block(start, stop):
    """Returns one result too many (a broken block function)."""
    return np.zeros(stop - start + 1)


def failing_block(start, stop):
    """Raises in the block that holds replicate 3."""
    if start <= 3 < stop:
        raise ArithmeticError(f"replicate 3 failed in block [{start}, {stop})")
    return np.zeros(stop - start)


def warning_block(start, stop):
    """Warns once per block, naming the block (a worker's warning must reach the caller)."""
    import warnings

    warnings.warn(f"block [{start}, {stop}) warns", RuntimeWarning, stacklevel=1)
    return np.zeros(stop - start)
