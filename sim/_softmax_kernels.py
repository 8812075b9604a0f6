"""numba kernels of :mod:`sim.softmax` (private; the public wrappers validate inputs)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def _categorical_rows_kernel(cdf, rows, uniforms, out):  # pragma: no cover - jitted
    """out[i] = first j with cdf[rows[i], j] > uniforms[i] (inverse-CDF, binary search)."""
    n_cols = cdf.shape[1]
    for i in range(rows.shape[0]):
        r = rows[i]
        u = uniforms[i] * cdf[r, n_cols - 1]
        lo, hi = 0, n_cols - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if cdf[r, mid] > u:
                hi = mid
            else:
                lo = mid + 1
        out[i] = lo


@njit(cache=True, nogil=True, error_model="numpy")
def _uniform_excluding_kernel(excluded, n_items, uniforms, out):  # pragma: no cover - jitted
    """Uniform draws from range(n_items) minus each row's excluded ids.

    ``excluded`` (S, B) ids to exclude per row (duplicates allowed); ``uniforms`` (S, M)
    in [0, 1); ``out`` (S, M) int64. Draw v uniform in [0, N - D) over the D distinct
    excluded ids and skip past them in sorted order.
    """
    n_sets, b = excluded.shape
    m = uniforms.shape[1]
    buf = np.empty(b, dtype=np.int64)
    for s in range(n_sets):
        for j in range(b):
            buf[j] = excluded[s, j]
        srt = np.sort(buf)
        d = 0
        for j in range(b):  # compact to distinct ids
            if j == 0 or srt[j] != srt[j - 1]:
                srt[d] = srt[j]
                d += 1
        free = n_items - d
        for k in range(m):
            v = np.int64(uniforms[s, k] * free)
            if v >= free:
                v = free - 1
            for j in range(d):  # skip excluded ids at or below the running value
                if srt[j] <= v:
                    v += 1
                else:
                    break
            out[s, k] = v
