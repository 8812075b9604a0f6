"""Monte Carlo helpers of the A/B-test checks: coverage, p-value uniformity, variance ratios.

Every helper returns a figure together with the half-width of its acceptance band,
``z`` Monte Carlo standard errors (docs/theory.md §5), so a check only states its claim. The
Kolmogorov-Smirnov helper states its own false-failure rate: the exact one-sample KS
critical value at the same two-sided tail probability as ``z`` normal standard errors
(6.3e-5 for ``z = 4``), so a KS cell weighs the same as any other cell in the report's
family-wise bound (:func:`validation.mc.family_wise_rate`).

References
----------
.. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics:
   A Practical Guide with Novel Ideas", KDD 2018.
.. [2] R. Simard, P. L'Ecuyer, "Computing the Two-Sided Kolmogorov-Smirnov
   Distribution", Journal of Statistical Software 39(11), 2011 (``scipy.stats.kstwo``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from validation.mc import Z_FAMILY, mcse_proportion, two_sided_tail

__all__ = [
    "BandFigure",
    "coverage",
    "ks_uniformity",
    "mean_band",
    "pvalue_qq_figure",
    "pvalue_quantiles",
    "rejection_rate",
    "sd_ratio",
    "variance_ratio",
]


@dataclass(frozen=True, slots=True)
class BandFigure:
    """A Monte Carlo figure with the half-width of its acceptance band.

    Attributes
    ----------
    figure : float
        The statistic (coverage, rejection rate, KS distance, ratio...).
    tolerance : float
        ``z`` Monte Carlo standard errors of ``figure`` (or, for KS, the critical
        distance at the stated false-failure rate).
    mcse : float
        One Monte Carlo standard error (``tolerance / z``; for KS, ``nan``).
    n_replicates : int
        Replicates behind ``figure``.
    """

    figure: float
    tolerance: float
    mcse: float
    n_replicates: int


def _as_bool(name: str, values: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size < 1:
        raise ValueError(f"`{name}` must be a non-empty 1-d array; got shape {arr.shape}.")
    return arr.astype(bool)


def coverage(covered: npt.ArrayLike, *, expected: float = 0.95, z: float = Z_FAMILY) -> BandFigure:
    """Share of replicates whose interval covered the truth, with ``z`` s.e. of ``expected``.

    The band uses the *claimed* proportion, ``sqrt(p (1 - p) / R)`` at ``p = expected``,
    so it does not depend on the noisy estimate (docs/theory.md §5).

    Examples
    --------
    >>> b = coverage(np.r_[np.ones(95, bool), np.zeros(5, bool)])
    >>> round(b.figure, 2), round(b.tolerance, 4)
    (0.95, 0.0872)
    """
    hits = _as_bool("covered", covered)
    r = hits.size
    se = mcse_proportion(expected, r)
    return BandFigure(float(hits.mean()), z * se, se, r)


def rejection_rate(
    pvalues: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    expected: float | None = None,
    z: float = Z_FAMILY,
) -> BandFigure:
    """Share of p-values below ``alpha`` with ``z`` s.e. of ``expected`` (default ``alpha``).

    Use ``expected = alpha`` for an A/A false-positive rate and ``expected =`` the
    formula's power for a power check.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or p.size < 1:
        raise ValueError(f"`pvalues` must be a non-empty 1-d array; got shape {p.shape}.")
    if np.isnan(p).any():
        raise ValueError("`pvalues` must not contain NaN.")
    target = alpha if expected is None else expected
    se = mcse_proportion(target, p.size)
    return BandFigure(float(np.mean(p < alpha)), z * se, se, p.size)


def ks_uniformity(pvalues: npt.ArrayLike, *, z: float = Z_FAMILY) -> BandFigure:
    """Kolmogorov-Smirnov distance of p-values from Uniform(0, 1), with its critical value.

    ``tolerance`` is the exact critical distance of the one-sample KS statistic for
    ``R`` draws at false-failure rate ``two_sided_tail(z)`` (6.3e-5 at ``z = 4``):
    a sample of truly uniform p-values exceeds it with that probability.

    Examples
    --------
    >>> u = (np.arange(1000) + 0.5) / 1000
    >>> b = ks_uniformity(u)
    >>> b.figure <= b.tolerance
    True
    """
    p = np.sort(np.asarray(pvalues, dtype=np.float64))
    if p.ndim != 1 or p.size < 1:
        raise ValueError(f"`pvalues` must be a non-empty 1-d array; got shape {p.shape}.")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("`pvalues` must lie in [0, 1] and contain no NaN.")
    r = p.size
    d = float(stats.kstest(p, "uniform").statistic)
    crit = float(stats.kstwo.isf(two_sided_tail(z), r))
    return BandFigure(d, crit, math.nan, r)


def mean_band(values: npt.ArrayLike, *, z: float = Z_FAMILY) -> BandFigure:
    """Mean of replicate values with ``z`` times its Monte Carlo s.e. ``sd / sqrt(R)``."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 2:
        raise ValueError(f"`values` must be a 1-d array of >= 2 values; got shape {v.shape}.")
    se = float(v.std(ddof=1) / math.sqrt(v.size))
    return BandFigure(float(v.mean()), z * se, se, v.size)


def variance_ratio(
    numerator: npt.ArrayLike, denominator: npt.ArrayLike, *, z: float = Z_FAMILY
) -> BandFigure:
    """Ratio of the replicate variances of two paired estimators, with its delta-method s.e.

    With a_r = (x_r - xbar)^2 and b_r = (y_r - ybar)^2 over the same replicates,
    the ratio is abar / bbar and its Monte Carlo s.e. is
    ``sd(a - ratio * b) / (sqrt(R) * bbar)`` (the linearisation of docs/theory.md §1 applied to
    the replicates), which accounts for the pairing.

    Examples
    --------
    >>> g = np.random.default_rng(0)
    >>> x = g.normal(size=4000)
    >>> b = variance_ratio(0.5 * x + 0.1 * g.normal(size=4000), x)
    >>> abs(b.figure - 0.26) < b.tolerance
    True
    """
    x = np.asarray(numerator, dtype=np.float64)
    y = np.asarray(denominator, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(
            "`numerator` and `denominator` must be 1-d arrays of the same length >= 2; "
            f"got {x.shape} and {y.shape}."
        )
    a = (x - x.mean()) ** 2 * (x.size / (x.size - 1))
    b = (y - y.mean()) ** 2 * (y.size / (y.size - 1))
    ratio = float(a.mean() / b.mean())
    se = float(np.std(a - ratio * b, ddof=1) / (math.sqrt(x.size) * b.mean()))
    return BandFigure(ratio, z * se, se, x.size)


def sd_ratio(
    values: npt.ArrayLike, std_errors: npt.ArrayLike, *, z: float = Z_FAMILY
) -> BandFigure:
    """Replicate s.d. of an estimate over the mean of its estimated standard errors.

    ``figure = sd(values) / mean(std_errors)``: 1 when the standard error is right.
    Its Monte Carlo s.e. linearises ``sqrt(mean(a)) / mean(s)`` with
    a_r = (x_r - xbar)^2 R/(R-1), jointly over the replicates (docs/theory.md §1 linearisation).
    """
    x = np.asarray(values, dtype=np.float64)
    s = np.asarray(std_errors, dtype=np.float64)
    if x.shape != s.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(
            "`values` and `std_errors` must be 1-d arrays of the same length >= 2; "
            f"got {x.shape} and {s.shape}."
        )
    r = x.size
    a = (x - x.mean()) ** 2 * (r / (r - 1))
    var = a.mean()
    sd = math.sqrt(var)
    sbar = s.mean()
    ratio = sd / sbar
    # d ratio = d var / (2 sd sbar) - ratio d sbar / sbar
    lin = a / (2.0 * sd * sbar) - ratio * s / sbar
    se = float(np.std(lin, ddof=1) / math.sqrt(r))
    return BandFigure(float(ratio), z * se, se, r)


def pvalue_quantiles(series: dict[str, npt.ArrayLike]) -> dict[str, Any]:
    """Return the ``extra`` that :func:`pvalue_qq_figure` draws: quantiles per series.

    That is ``{"probs": 101 probabilities 0..1, "pvalue_quantiles": {key: quantiles}}``.
    """
    probs = np.linspace(0.0, 1.0, 101)
    return {
        "probs": probs,
        "pvalue_quantiles": {k: np.quantile(np.asarray(v), probs) for k, v in series.items()},
    }


def pvalue_qq_figure(
    results: Sequence[Any], series: Sequence[tuple[str, str, str]], title: str | None = None
) -> Any:
    """QQ plot of A/A p-values against Uniform(0, 1), the picture of :func:`ks_uniformity`.

    Parameters
    ----------
    results : sequence of CheckResult
        Cells of a check; the first whose ``extra`` holds ``"pvalue_quantiles"`` and
        ``"probs"`` (as :func:`pvalue_quantiles` makes them) is drawn.
    series : sequence of (key, label, linestyle)
        Which quantile lists to draw, with their legend labels and line styles.
    title : str, optional
        The axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    for res in results:
        q = res.extra.get("pvalue_quantiles")
        if q is None:
            continue
        probs = np.asarray(res.extra["probs"])
        for key, label, ls in series:
            ax.plot(probs, q[key], ls=ls, label=label)
        break
    ax.plot([0, 1], [0, 1], color="k", lw=0.8)
    ax.set_xlabel("Uniform(0, 1) quantile")
    ax.set_ylabel("A/A p-value quantile")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
