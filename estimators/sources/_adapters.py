"""``RatioMoments`` from other tools' per-arm aggregates (GrowthBook, tea-tasting)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..moments import RatioMoments


def _field(row: Mapping[str, Any], key: str) -> float:
    if key not in row:
        raise ValueError(f"`row` has no field {key!r}; it has {sorted(row)}.")
    value = row[key]
    if value is None:
        raise ValueError(f"`row[{key!r}]` is None.")
    return float(value)


def moments_from_growthbook(row: Mapping[str, Any], *, ratio: bool | None = None) -> RatioMoments:
    """Moments of one variation from GrowthBook-style per-variation sums.

    Parameters
    ----------
    row : mapping
        One variation's row of a GrowthBook-style metric query: ``count`` (units),
        ``main_sum``, ``main_sum_squares`` and, for a ratio metric,
        ``denominator_sum``, ``denominator_sum_squares`` and
        ``main_denominator_sum_product``; for CUPED on a mean metric also
        ``covariate_sum``, ``covariate_sum_squares`` and
        ``main_covariate_sum_product`` (the covariate becomes X_0).
    ratio : bool, optional
        Whether the row describes a ratio metric; inferred from the presence of
        ``denominator_sum`` when ``None``.

    Returns
    -------
    RatioMoments
        Raw (unshifted) sums, exactly the row's; a mean metric has ``M = 1``.

    Examples
    --------
    >>> m = moments_from_growthbook({"count": 3, "main_sum": 6.0, "main_sum_squares": 14.0})
    >>> float(m.sum_m), float(m.sum_vv)
    (3.0, 14.0)
    """
    if not isinstance(row, Mapping):
        raise TypeError(f"`row` must be a mapping of GrowthBook field names; got {type(row)}.")
    n = _field(row, "count")
    ratio = "denominator_sum" in row if ratio is None else ratio
    sum_v, sum_vv = _field(row, "main_sum"), _field(row, "main_sum_squares")
    if ratio:
        sum_m, sum_mm = _field(row, "denominator_sum"), _field(row, "denominator_sum_squares")
        sum_vm = _field(row, "main_denominator_sum_product")
    else:
        sum_m, sum_mm, sum_vm = n, n, sum_v
    kw: dict[str, Any] = {}
    if "covariate_sum" in row:
        if ratio:
            raise ValueError(
                "covariate fields on a ratio metric row are not read (they would need the "
                "pre-period denominator's sums too); analyse the covariate as a mean metric."
            )
        sx = _field(row, "covariate_sum")
        kw = dict(
            sum_x=np.array([sx]),
            sum_xx=np.array([[_field(row, "covariate_sum_squares")]]),
            sum_vx=np.array([_field(row, "main_covariate_sum_product")]),
            sum_mx=np.array([sx]),
        )
    return RatioMoments(
        n=n, sum_v=sum_v, sum_m=sum_m, sum_vv=sum_vv, sum_mm=sum_mm, sum_vm=sum_vm, **kw
    )


def _lookup(table: Mapping[Any, Any], key: Any, what: str) -> float:
    if key in table:
        return float(table[key])
    if isinstance(key, tuple) and key[::-1] in table:
        return float(table[key[::-1]])
    raise ValueError(f"the aggregates have no {what} for {key!r}; they have {sorted(table)}.")


def moments_from_tea_tasting(
    aggregates: Any,
    *,
    numerator: str,
    denominator: str | None = None,
    covariates: Sequence[str] = (),
) -> RatioMoments:
    """Moments of one variant from tea-tasting's ``Aggregates``.

    Parameters
    ----------
    aggregates : tea_tasting.aggr.Aggregates
        One variant's aggregates: ``count_`` (units), ``mean_`` (column -> mean),
        ``var_`` (column -> sample variance, divisor ``n - 1``) and ``cov_``
        (column pair -> sample covariance).
    numerator, denominator : str
        Column names of V and M (``denominator=None`` for a mean metric).
    covariates : sequence of str
        Column names of the covariates X.

    Returns
    -------
    RatioMoments
        Stored about the means (shift = mean, shifted sums 0, shifted squares
        ``(n - 1)`` times the (co)variances), so no precision is lost.

    Notes
    -----
    tea-tasting [1]_ keeps means and sample (co)variances; with ``c`` the mean,
    ``sum (Z - c) = 0`` and ``sum (Z_a - c_a)(Z_b - c_b) = (n - 1) cov(Z_a, Z_b)``.
    Third-order sums are not part of tea-tasting's aggregates and stay unset.

    References
    ----------
    .. [1] E. Nikolaev, "tea-tasting: a Python package for the statistical
       analysis of A/B tests", 2024, https://github.com/e10v/tea-tasting.
    """
    n = float(aggregates.count_)
    cols = [numerator] + ([denominator] if denominator is not None else []) + list(covariates)
    means = {c: _lookup(aggregates.mean_, c, "mean") for c in cols}
    var, cov = aggregates.var_, aggregates.cov_

    def ss(a: str, b: str) -> float:
        # (n - 1) * sample covariance: the sum of products about the means.
        return (n - 1.0) * (_lookup(var, a, "variance") if a == b else _lookup(cov, (a, b), "cov"))

    v = numerator
    kw: dict[str, Any] = dict(n=n, sum_v=0.0, sum_vv=ss(v, v), shift_v=means[v])
    if denominator is not None:
        m = denominator
        kw.update(sum_m=0.0, sum_mm=ss(m, m), sum_vm=ss(v, m), shift_m=means[m])
    else:
        kw.update(sum_m=n, sum_mm=n, sum_vm=0.0, shift_m=0.0)
    if covariates:
        xs = list(covariates)
        kw["sum_x"] = np.zeros(len(xs))
        kw["sum_xx"] = np.array([[ss(a, b) for b in xs] for a in xs])
        kw["sum_vx"] = np.array([ss(v, x) for x in xs])
        kw["sum_mx"] = (
            np.array([ss(denominator, x) for x in xs])
            if denominator is not None
            else np.zeros(len(xs))
        )
        kw["shift_x"] = np.array([means[x] for x in xs])
    return RatioMoments(**kw)
