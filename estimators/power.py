"""Power, sample size and minimum detectable effect of a two-sample test (docs/theory.md §2).

Conventions (see ``docs/estimators.md``):

* ``sigma`` is the per-unit standard deviation of the metric, common to both arms
  (for a ratio metric: the s.d. of the linearised ``L_i``, :func:`sigma_from_pilot`).
* ``n_per_arm`` / the returned ``n_control`` is the size of the control arm; the
  treatment arm has ``ratio * n_control`` units.
* ``mde`` is absolute (metric units) unless ``relative=True``, when it is a
  fraction of ``baseline`` (``delta = mde * baseline``).
* ``r2`` is the share of variance explained by CUPED covariates:
  ``sigma -> sigma * sqrt(1 - r2)``.
* ``method="normal"``: exact two-sided normal power
  ``Phi(delta/SE - z) + Phi(-delta/SE - z)``, ``SE = sigma sqrt(1/n_T + 1/n_C)``;
  ``"t"``: noncentral t with ``n_T + n_C - 2`` df (as statsmodels
  ``TTestIndPower``); ``"lehr"``: Lehr's rule ``n = 16 sigma^2 / delta^2`` per arm
  (alpha 0.05, power 0.8, two-sided only).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import optimize, stats

from ._validate import (
    ALTERNATIVES,
    as_float_array,
    check_choice,
    check_ddof,
    check_min_units,
    check_nonnegative,
    check_open_unit,
    clean_units,
)

METHODS = ("normal", "lehr", "t")


@dataclass(frozen=True, slots=True)
class SampleSizeResult:
    """Per-arm sample size from :func:`sample_size`.

    Usable wherever an integer is expected (``int(res)`` and ``operator.index``
    give ``n_control``), and accepted as ``n_per_arm`` by :func:`power` and
    :func:`mde`, which then use ``n_control`` and ``n_treatment`` exactly.

    Attributes
    ----------
    n_control : int
        Control-arm size, ``ceil(n_exact)``.
    n_treatment : int
        Treatment-arm size, ``ceil(ratio * n_control)``.
    n_exact : float
        Unrounded control-arm size solving the power equation (Lehr: the rule's
        value).
    ratio : float
        Allocation ratio ``n_treatment / n_control`` requested.
    method : str
        ``"normal"``, ``"lehr"`` or ``"t"``.
    achieved_power : float
        Power at ``(n_control, n_treatment)`` (normal power for ``"lehr"``).
    """

    n_control: int
    n_treatment: int
    n_exact: float
    ratio: float
    method: str
    achieved_power: float

    def __index__(self) -> int:
        return self.n_control

    def __int__(self) -> int:
        return self.n_control


@dataclass(frozen=True, slots=True)
class PilotSigma:
    """Standard deviation of a metric estimated from a pilot sample.

    Attributes
    ----------
    sigma : float
        s.d. of the metric per unit (of the linearised ``L_i`` for a ratio metric).
    r2 : float
        Share of the variance explained by the covariates (0 without covariates).
    sigma_adjusted : float
        ``sigma * sqrt(1 - r2)``, the s.d. of the CUPED-adjusted metric.
    n : int
        Number of pilot units used.
    """

    sigma: float
    r2: float
    sigma_adjusted: float
    n: int


# ---------------------------------------------------------------------- helpers
def _positive(name: str, value: Any, *, allow_zero: bool = False) -> np.ndarray:
    arr = as_float_array(name, value, ndim=(0, 1, 2, 3))
    ok = (arr >= 0) if allow_zero else (arr > 0)
    if not (np.isfinite(arr).all() and ok.all()):
        bad = arr[~(np.isfinite(arr) & ok)].ravel()[0]
        rel = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be finite and {rel}; got {float(bad)}.")
    return arr


def _check_power_above_alpha(target: float, alpha: float) -> None:
    """Refuse a target power <= ``alpha`` (a test's power at zero effect)."""
    if target <= alpha:
        raise ValueError(
            f"`power` must exceed `alpha` = {alpha} (the power of the test at zero effect, "
            f"reached by any sample size); got {target}."
        )


def _scalar_sigma(sigma: Any) -> float:
    """``sigma`` for the solvers, which return one size or effect: a positive scalar."""
    if np.ndim(sigma) != 0:
        raise ValueError(
            f"`sigma` must be a scalar here; got an array of shape {np.shape(sigma)} "
            "(call once per sigma, or use `power`, which broadcasts)."
        )
    return float(_positive("sigma", sigma))


def _effect(mde_value: Any, relative: bool, baseline: Any, name: str = "mde") -> np.ndarray:
    arr = as_float_array(name, mde_value, ndim=(0, 1, 2, 3))
    if not np.isfinite(arr).all() or (arr == 0).any():
        bad = arr[~np.isfinite(arr) | (arr == 0)].ravel()[0]
        raise ValueError(f"`{name}` must be finite and non-zero; got {float(bad)}.")
    if relative:
        if baseline is None:
            raise ValueError("`baseline` is required when `relative=True`.")
        base = as_float_array("baseline", baseline, ndim=(0, 1, 2, 3))
        if not np.isfinite(base).all() or (base == 0).any():
            bad = base[~np.isfinite(base) | (base == 0)].ravel()[0]
            raise ValueError(f"`baseline` must be finite and non-zero; got {float(bad)}.")
        return arr * np.abs(base)
    if baseline is not None:
        raise ValueError("`baseline` is only used with `relative=True`; got relative=False.")
    return arr


def _check_common(alpha, ratio, method, alternative, r2, relative, methods=METHODS):
    alpha = check_open_unit("alpha", alpha)
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real):
        raise TypeError(f"`ratio` must be a real number; got {type(ratio).__name__}.")
    ratio = float(ratio)
    if not (math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"`ratio` must be finite and > 0; got {ratio}.")
    check_choice("method", method, methods)
    check_choice("alternative", alternative, ALTERNATIVES)
    if isinstance(r2, bool) or not isinstance(r2, numbers.Real):
        raise TypeError(f"`r2` must be a real number; got {type(r2).__name__}.")
    r2 = float(r2)
    if not 0.0 <= r2 < 1.0:
        raise ValueError(f"`r2` must be in [0, 1); got {r2}.")
    if not isinstance(relative, bool):
        raise TypeError(f"`relative` must be a bool; got {type(relative).__name__}.")
    if method == "lehr" and (alpha != 0.05 or alternative != "two-sided"):
        raise ValueError(
            "Lehr's rule holds for alpha=0.05, two-sided, power=0.8 only; got "
            f"alpha={alpha}, alternative={alternative!r} (use method='normal')."
        )
    return alpha, ratio, r2


def _power_core(
    delta: Any, sigma: Any, n_c: Any, n_t: Any, alpha: float, alternative: str, method: str
) -> np.ndarray:
    """Power of the two-sample test at effect ``delta`` (vectorised)."""
    se = sigma * np.sqrt(1.0 / n_c + 1.0 / n_t)
    ncp = delta / se  # = d * sqrt(n_c n_t / (n_c + n_t)) with d = delta / sigma
    a = alpha / 2.0 if alternative == "two-sided" else alpha
    if method == "t":
        df = n_c + n_t - 2.0
        crit = stats.t.isf(a, df)
        upper = stats.nct.sf(crit, df, ncp)
        # P(T' < -crit | ncp) = P(T' > crit | -ncp). scipy's nct.cdf returns NaN far in
        # the lower tail for large ncp (e.g. df=13, ncp=10); its sf does not.
        lower = stats.nct.sf(crit, df, -ncp)
    else:
        crit = stats.norm.isf(a)
        upper = stats.norm.sf(crit - ncp)
        lower = stats.norm.cdf(-crit - ncp)
    if alternative == "two-sided":
        return upper + lower
    return upper if alternative == "greater" else lower


def _scalar(x: np.ndarray) -> float | np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return float(x) if x.ndim == 0 else x


def _arms(n_per_arm: Any, ratio: float) -> tuple[np.ndarray, np.ndarray, float]:
    if isinstance(n_per_arm, SampleSizeResult):
        if not math.isclose(ratio, n_per_arm.ratio) and ratio != 1.0:
            raise ValueError(
                f"`ratio` ({ratio}) differs from the SampleSizeResult's ratio "
                f"({n_per_arm.ratio}); pass ratio={n_per_arm.ratio} or a plain number."
            )
        return (
            np.asarray(float(n_per_arm.n_control)),
            np.asarray(float(n_per_arm.n_treatment)),
            n_per_arm.ratio,
        )
    n_c = _positive("n_per_arm", n_per_arm)
    return n_c, ratio * n_c, ratio


# ----------------------------------------------------------------- public API
def power(
    sigma: npt.ArrayLike,
    mde: npt.ArrayLike,
    n_per_arm: npt.ArrayLike | SampleSizeResult,
    *,
    alpha: float = 0.05,
    ratio: float = 1.0,
    method: str = "normal",
    alternative: str = "two-sided",
    relative: bool = False,
    baseline: npt.ArrayLike | None = None,
    r2: float = 0.0,
) -> float | npt.NDArray[np.float64]:
    """Power of the two-sample test to detect an effect ``mde`` (docs/theory.md §2).

    Parameters
    ----------
    sigma : array_like
        Per-unit standard deviation of the metric (common to both arms).
    mde : array_like
        True effect: absolute, or relative to ``baseline`` when ``relative=True``.
        Its sign matters only for one-sided alternatives.
    n_per_arm : array_like or SampleSizeResult
        Control-arm size (may be fractional); the treatment arm has
        ``ratio * n_per_arm``. A :class:`SampleSizeResult` supplies both arm sizes.
    alpha : float, default 0.05
        Significance level.
    ratio : float, default 1.0
        Allocation ``n_treatment / n_control``.
    method : {"normal", "t"}, default "normal"
        Exact normal power, or noncentral t with ``n_T + n_C - 2`` df.
    alternative : {"two-sided", "less", "greater"}, default "two-sided"
        Alternative of the test.
    relative : bool, default False
        Interpret ``mde`` as a fraction of ``baseline``.
    baseline : array_like, optional
        Control mean for a relative ``mde``.
    r2 : float, default 0.0
        CUPED R^2: the test uses ``sigma * sqrt(1 - r2)``.

    Returns
    -------
    float or ndarray
        Power, broadcast over the array arguments.

    Notes
    -----
    Two-sided normal: ``Phi(delta/SE - z_{1-alpha/2}) + Phi(-delta/SE - z_{1-alpha/2})``
    with ``SE = sigma sqrt(1/n_T + 1/n_C)`` (docs/theory.md §2) [1]_. The t variant replaces
    the normal by the noncentral t with noncentrality ``delta/SE`` (statsmodels
    ``TTestIndPower``).

    References
    ----------
    .. [1] J. Cohen, "Statistical Power Analysis for the Behavioral Sciences",
       2nd ed., Erlbaum, 1988, ch. 2.

    Examples
    --------
    >>> round(power(1.0, 0.2, 393), 3)
    0.801
    """
    if method == "lehr":
        raise ValueError("`method` 'lehr' is a sample-size rule; use 'normal' or 't' for power.")
    alpha, ratio, r2 = _check_common(
        alpha, ratio, method, alternative, r2, relative, ("normal", "t")
    )
    sig = _positive("sigma", sigma) * math.sqrt(1.0 - r2)
    delta = _effect(mde, relative, baseline)
    n_c, n_t, _ = _arms(n_per_arm, ratio)
    if method == "t" and np.any(n_c + n_t <= 2):
        raise ValueError("the t method needs n_control + n_treatment > 2.")
    return _scalar(_power_core(delta, sig, n_c, n_t, alpha, alternative, method))


def sample_size(
    sigma: float,
    mde: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    method: str = "normal",
    alternative: str = "two-sided",
    relative: bool = False,
    baseline: float | None = None,
    r2: float = 0.0,
) -> SampleSizeResult:
    """Control-arm size needed to detect ``mde`` with the given power (docs/theory.md §2).

    Parameters
    ----------
    sigma : float
        Per-unit standard deviation (for a ratio metric the s.d. of the linearised
        metric, :func:`sigma_from_pilot`).
    mde : float
        Effect to detect: absolute, or a fraction of ``baseline`` if ``relative``.
    alpha : float, default 0.05
        Significance level.
    power : float, default 0.8
        Target power.
    ratio : float, default 1.0
        Allocation ``n_treatment / n_control``.
    method : {"normal", "lehr", "t"}, default "normal"
        Exact normal power, Lehr's rule ``16 sigma^2/delta^2`` (times
        ``(1 + 1/ratio)/2`` for unequal allocation), or noncentral t.
    alternative : {"two-sided", "less", "greater"}, default "two-sided"
        Alternative of the test (``"less"`` needs ``mde < 0``, ``"greater"``
        ``mde > 0``).
    relative : bool, default False
        Interpret ``mde`` as a fraction of ``baseline``.
    baseline : float, optional
        Control mean for a relative ``mde``.
    r2 : float, default 0.0
        CUPED R^2 (``sigma * sqrt(1 - r2)``).

    Returns
    -------
    SampleSizeResult
        ``n_control = ceil(n_exact)`` (an int; the result also acts as one),
        ``n_treatment = ceil(ratio * n_control)``, the unrounded ``n_exact`` and the
        power achieved at the rounded sizes, which is at least ``power`` for
        ``"normal"`` and ``"t"``.

    Notes
    -----
    Normal, equal arms, one tail: ``n = 2 (z_{1-alpha/2} + z_{1-beta})^2
    sigma^2/delta^2`` (about ``15.7 sigma^2/delta^2``); the exact two-sided power
    adds the far tail, so ``n_exact`` is found by root finding [1]_. Lehr's rule
    rounds 15.7 up to 16 [2]_.

    References
    ----------
    .. [1] J. Cohen, "Statistical Power Analysis for the Behavioral Sciences",
       2nd ed., Erlbaum, 1988, ch. 2.
    .. [2] R. Lehr, "Sixteen S-squared over D-squared: a relation for crude sample
       size estimates", Statistics in Medicine 11 (1992) 1099-1102.

    Examples
    --------
    >>> res = sample_size(1.0, 0.2)
    >>> res.n_control, round(res.n_exact, 2)
    (393, 392.44)
    >>> sample_size(1.0, 0.2, method="lehr").n_control
    400
    """
    target = check_open_unit("power", power)
    alpha, ratio, r2 = _check_common(alpha, ratio, method, alternative, r2, relative)
    if method == "lehr" and target != 0.8:
        raise ValueError(f"Lehr's rule holds for power=0.8 only; got power={target}.")
    sig = _scalar_sigma(sigma) * math.sqrt(1.0 - r2)
    delta = float(_effect(mde, relative, baseline))
    if alternative == "greater" and delta < 0 or alternative == "less" and delta > 0:
        raise ValueError(f"`mde` must have the sign of the alternative {alternative!r}; got {mde}.")
    a = alpha / 2.0 if alternative == "two-sided" else alpha
    _check_power_above_alpha(target, alpha)
    factor = 1.0 + 1.0 / ratio  # SE^2 = sigma^2 (1 + 1/ratio) / n_control
    z_sum = stats.norm.isf(a) + stats.norm.ppf(target)
    n_closed = z_sum**2 * sig**2 * factor / delta**2
    if method == "lehr":
        n_exact = 16.0 * sig**2 / delta**2 * factor / 2.0
    elif method == "normal" and alternative != "two-sided":
        n_exact = n_closed
    else:

        def gap(n: float) -> float:
            return float(_power_core(delta, sig, n, ratio * n, alpha, alternative, method)) - target

        lo = 3.0 / (1.0 + ratio) if method == "t" else n_closed * 1e-9  # t: df >= 1
        hi = max(n_closed, 2.0 * lo)
        while gap(hi) < 0:
            hi *= 2.0
        if gap(lo) >= 0:
            n_exact = lo
        else:
            n_exact = optimize.brentq(gap, lo, hi, xtol=1e-12, rtol=1e-14, maxiter=500)
    n_control = max(math.ceil(n_exact - 1e-9 * n_exact), 1)
    if method == "t":
        n_control = max(n_control, 2)
    n_treatment = math.ceil(ratio * n_control - 1e-9 * ratio * n_control)
    achieved = float(
        _power_core(
            delta,
            sig,
            float(n_control),
            float(n_treatment),
            alpha,
            alternative,
            "t" if method == "t" else "normal",
        )
    )
    return SampleSizeResult(n_control, n_treatment, float(n_exact), ratio, method, achieved)


def mde(
    sigma: float,
    n_per_arm: float | SampleSizeResult,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    method: str = "normal",
    alternative: str = "two-sided",
    relative: bool = False,
    baseline: float | None = None,
    r2: float = 0.0,
) -> float:
    """Minimum detectable effect: the effect with the given power at ``n_per_arm``.

    Parameters
    ----------
    sigma : float
        Per-unit standard deviation.
    n_per_arm : float or SampleSizeResult
        Control-arm size; the treatment arm has ``ratio * n_per_arm`` units.
    alpha : float, default 0.05
        Significance level.
    power : float, default 0.8
        Target power.
    ratio : float, default 1.0
        Allocation ``n_treatment / n_control``.
    method : {"normal", "lehr", "t"}, default "normal"
        The inverse of :func:`power` (normal or t), or of Lehr's rule.
    alternative : {"two-sided", "less", "greater"}, default "two-sided"
        Alternative; for ``"less"`` the returned effect is negative.
    relative : bool, default False
        Return the effect as a fraction of ``baseline``.
    baseline : float, optional
        Control mean for a relative effect.
    r2 : float, default 0.0
        CUPED R^2.

    Returns
    -------
    float
        ``delta`` with ``power(sigma, delta, n_per_arm, ...) == power`` (to 1e-10);
        divided by ``|baseline|`` when ``relative``.

    Examples
    --------
    >>> round(mde(1.0, 393), 4)
    0.1999
    """
    target = check_open_unit("power", power)
    alpha, ratio, r2 = _check_common(alpha, ratio, method, alternative, r2, relative)
    if method == "lehr" and target != 0.8:
        raise ValueError(f"Lehr's rule holds for power=0.8 only; got power={target}.")
    sig = _scalar_sigma(sigma) * math.sqrt(1.0 - r2)
    n_c, n_t, _ = _arms(n_per_arm, ratio)
    n_c, n_t = float(n_c), float(n_t)
    if method == "t" and n_c + n_t <= 2:
        raise ValueError("the t method needs n_control + n_treatment > 2.")
    se = sig * math.sqrt(1.0 / n_c + 1.0 / n_t)
    a = alpha / 2.0 if alternative == "two-sided" else alpha
    _check_power_above_alpha(target, alpha)
    z_sum = stats.norm.isf(a) + stats.norm.ppf(target)
    if method == "lehr":
        delta = math.sqrt(16.0 * sig**2 * (1.0 + n_c / n_t) / 2.0 / n_c)
    elif method == "normal" and alternative != "two-sided":
        delta = z_sum * se
    else:
        alt = "greater" if alternative == "less" else alternative

        def gap(d: float) -> float:
            return float(_power_core(d, sig, n_c, n_t, alpha, alt, method)) - target

        hi = z_sum * se
        while gap(hi) < 0:
            hi *= 2.0
        delta = optimize.brentq(gap, 0.0, hi, xtol=1e-14 * hi, rtol=1e-14, maxiter=500)
    if alternative == "less":
        delta = -delta
    if relative:
        if baseline is None:
            raise ValueError("`baseline` is required when `relative=True`.")
        base = float(_positive("baseline", abs(float(baseline))))
        return delta / base
    if baseline is not None:
        raise ValueError("`baseline` is only used with `relative=True`; got relative=False.")
    return float(delta)


def sigma_from_pilot(
    y: npt.ArrayLike,
    *,
    den: npt.ArrayLike | None = None,
    X: npt.ArrayLike | None = None,
    covariate_ratios: Sequence[tuple[int, int]] = (),
    ddof: float = 1,
    nan_policy: str = "raise",
) -> PilotSigma:
    """Per-unit standard deviation for power, from a pilot sample (docs/theory.md §2, §3).

    Parameters
    ----------
    y : array_like, shape (n,)
        Metric per unit, or the numerator V_i of a ratio metric.
    den : array_like, shape (n,), optional
        Denominator M_i of a ratio metric: sigma is then the s.d. of
        ``L_i = V_i/Mbar - (Vbar/Mbar^2) M_i``.
    X : array_like, shape (n,) or (n, k), optional
        Pre-period covariates for the CUPED-adjusted sigma.
    covariate_ratios : sequence of (int, int), optional
        Column pairs of ``X`` used as linearised ratio covariates (as in
        :func:`~estimators.cuped_test`).
    ddof : float, default 1
        Delta degrees of freedom.
    nan_policy : {"raise", "omit"}, default "raise"
        ``"omit"`` drops units with a NaN in any column.

    Returns
    -------
    PilotSigma
        ``sigma``, the CUPED ``r2`` and ``sigma_adjusted = sigma sqrt(1 - r2)``.

    Examples
    --------
    >>> round(sigma_from_pilot([1.0, 3.0], den=[2.0, 2.0], ddof=0).sigma, 6)
    0.5
    """
    from .cuped import _check_pairs, _solve_normal, _warn_rank

    ddof = check_ddof(ddof)
    check_choice("nan_policy", nan_policy, ("raise", "omit"))
    cols = {"y": as_float_array("y", y)}
    if den is not None:
        cols["den"] = as_float_array("den", den)
    if X is not None:
        xv = as_float_array("X", X, ndim=(1, 2))
        cols["X"] = xv[:, None] if xv.ndim == 1 else xv
    cols = clean_units(cols, nan_policy)
    v = cols["y"]
    n = v.shape[0]
    check_min_units("y", n)
    if den is not None:
        m = cols["den"]
        check_nonnegative("den", m)
        if m.sum() == 0:
            raise ValueError("`den` sums to 0; the ratio is undefined.")
        lin = v / m.mean() - (v.mean() / m.mean() ** 2) * m
    else:
        lin = v - v.mean()
    var = float(lin @ lin) / (n - ddof)
    if not var > 0:
        raise ValueError("the pilot metric does not vary; sigma would be 0.")
    r2 = 0.0
    if X is not None:
        x = cols["X"]
        pairs = _check_pairs(covariate_ratios, x.shape[1], "X")
        xbar = x.mean(axis=0)
        paired = {c for pair in pairs for c in pair}
        ws = []
        for i, j in pairs:
            if not xbar[j] > 0:
                raise ValueError(f"`X` column {j} is a ratio denominator with mean <= 0.")
            ws.append(x[:, i] / xbar[j] - xbar[i] / xbar[j] ** 2 * x[:, j])
        ws += [x[:, j] for j in range(x.shape[1]) if j not in paired]
        w = np.column_stack(ws)
        wc = w - w.mean(axis=0)
        for j in range(wc.shape[1]):
            if wc[:, j] @ wc[:, j] <= 1e-10 * (w[:, j] @ w[:, j]):
                raise ValueError(f"`X` covariate {j} is constant; drop it.")
        theta, deficient = _solve_normal(wc.T @ wc, wc.T @ lin)
        _warn_rank(deficient, "")
        resid = lin - wc @ theta
        r2 = float(min(max(1.0 - (resid @ resid) / (lin @ lin), 0.0), 1.0 - 1e-15))
    sigma = math.sqrt(var)
    return PilotSigma(sigma, r2, sigma * math.sqrt(1.0 - r2), n)
