"""Seeded, numba-accelerated simulators whose ground truth is known.

A/B click data (SPEC §1-3) and synthetic softmax / retrieval problems (SPEC §4).
"""

from sim._seed import RngLike, as_seed_sequence, child_sequences

__all__ = ["RngLike", "as_seed_sequence", "child_sequences"]
