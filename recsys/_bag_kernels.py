"""numba kernels of :mod:`recsys.model` (private; the callers pass checked, contiguous arrays)."""

from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def _scatter_rows_kernel(grad, rows, grad_out):  # pragma: no cover - jitted
    """grad[rows[k, s]] += grad_out[k] for every bag k and slot s (an unweighted bag sum).

    ``grad`` (R, d) accumulated in place; ``rows`` (K, S) int64 in [0, R); ``grad_out``
    (K, d). One pass in the order of the bags: no sort, deterministic.
    """
    n_bags, n_slots = rows.shape
    dim = grad_out.shape[1]
    for k in range(n_bags):
        for s in range(n_slots):
            r = rows[k, s]
            for c in range(dim):
                grad[r, c] += grad_out[k, c]


@njit(cache=True, nogil=True, error_model="numpy")
def _scatter_weighted_rows_kernel(grad, rows, weights, grad_out):  # pragma: no cover - jitted
    """grad[rows[k, s]] += weights[k, s] * grad_out[k]; slots of weight 0 are skipped.

    ``weights`` (K, S) of the same dtype as ``grad``; otherwise as
    :func:`_scatter_rows_kernel`.
    """
    n_bags, n_slots = rows.shape
    dim = grad_out.shape[1]
    for k in range(n_bags):
        for s in range(n_slots):
            w = weights[k, s]
            if w == 0:
                continue
            r = rows[k, s]
            for c in range(dim):
                grad[r, c] += w * grad_out[k, c]
