"""Shared inference helpers.

P-values, quantiles, Welch degrees of freedom and the handling of degenerate
replicates on the vectorised path.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

ArrayLike = np.ndarray | float


def welch_df(v_t: ArrayLike, v_c: ArrayLike, n_t: ArrayLike, n_c: ArrayLike) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of ``v_t + v_c``.

    ``v_a`` is arm ``a``'s variance contribution to the estimate and ``n_a`` its
    number of units: ``df = (v_t + v_c)^2 / (v_t^2/(n_t - 1) + v_c^2/(n_c - 1))``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return (v_t + v_c) ** 2 / (v_t**2 / (n_t - 1.0) + v_c**2 / (n_c - 1.0))


def quantile(level: float, df: ArrayLike, distribution: str) -> np.ndarray:
    """Upper ``level`` quantile of N(0, 1) or of Student t with ``df``."""
    if distribution == "z":
        return np.asarray(stats.norm.ppf(level))
    return np.asarray(stats.t.ppf(level, df))


def pvalue(statistic: ArrayLike, df: ArrayLike, alternative: str, distribution: str) -> np.ndarray:
    """P-value of ``statistic`` under N(0, 1) or Student t with ``df``."""
    dist = stats.norm() if distribution == "z" else stats.t(df)
    if alternative == "two-sided":
        return np.asarray(np.minimum(1.0, 2.0 * dist.sf(np.abs(statistic))))
    if alternative == "greater":
        return np.asarray(dist.sf(statistic))
    return np.asarray(dist.cdf(statistic))


def crit(confidence_level: float, df: ArrayLike, alternative: str, distribution: str) -> np.ndarray:
    """Critical value of a confidence interval (one- or two-sided)."""
    level = (1.0 + confidence_level) / 2.0 if alternative == "two-sided" else confidence_level
    return quantile(level, df, distribution)


def wald_interval(
    estimate: ArrayLike, std_error: ArrayLike, q: ArrayLike, alternative: str
) -> tuple[np.ndarray, np.ndarray]:
    """``estimate -/+ q * std_error`` with an infinite end for one-sided alternatives."""
    low = estimate - q * std_error
    high = estimate + q * std_error
    if alternative == "greater":
        high = np.full_like(np.asarray(high, dtype=float), np.inf)
    elif alternative == "less":
        low = np.full_like(np.asarray(low, dtype=float), -np.inf)
    return np.asarray(low, dtype=float), np.asarray(high, dtype=float)


class Problems:
    """Collects invalid replicates with a reason; raises or masks them with NaN.

    On the per-unit (scalar) path every problem raises ``ValueError`` with its
    message. On the vectorised moments path ``degenerate="raise"`` raises naming the
    first offending replicates and ``degenerate="nan"`` sets those replicates' outputs
    to NaN (an explicit opt-in, never silent).
    """

    def __init__(self, shape: tuple[int, ...], degenerate: str = "raise") -> None:
        self.shape = shape
        self.degenerate = degenerate
        self.bad = np.zeros(shape, dtype=bool)

    def add(self, mask: ArrayLike, message: str) -> None:
        """Register the replicates where ``mask`` is true as invalid, for ``message``."""
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), self.shape) & ~self.bad
        if not mask.any():
            return
        if self.degenerate == "raise":
            if self.shape == ():
                raise ValueError(message)
            idx = np.argwhere(mask)
            shown = [tuple(int(j) for j in i) if len(i) > 1 else int(i[0]) for i in idx[:5]]
            more = f" and {len(idx) - 5} more" if len(idx) > 5 else ""
            raise ValueError(
                f"{message} (replicates {shown}{more}; pass degenerate='nan' to mark "
                "such replicates with NaN instead)."
            )
        self.bad = self.bad | mask

    def finish(self, value: ArrayLike, trailing: tuple[int, ...] = ()) -> ArrayLike:
        """Return ``value`` as a float (scalar path) or an array with NaN at invalid cells.

        ``trailing`` is the shape of a per-replicate vector (e.g. ``theta``).
        """
        arr = np.broadcast_to(np.asarray(value, dtype=float), self.shape + trailing).copy()
        if self.bad.any():
            arr[self.bad] = np.nan
        if arr.ndim == 0:
            return float(arr)
        return arr
