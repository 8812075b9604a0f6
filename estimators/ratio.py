"""Ratio metrics with the delta method, and two-sample tests of means (SPEC §1).

Conventions (see ``docs/estimators.md``):

* Users (randomisation units) are the rows; ``num`` is V_i (e.g. clicks), ``den`` is
  M_i (e.g. views). The metric of an arm is ``R = sum V / sum M = Vbar / Mbar``.
* ``ddof=1`` by default: arm variances are sample variances with ``n - 1``, which
  makes :func:`mean_test` with ``distribution="t"`` Welch's t-test. ``ddof=0``
  reproduces the cluster-robust OLS standard error without small-sample correction.
* ``distribution="z"`` (default) uses the normal; ``"t"`` uses Student t with the
  Welch-Satterthwaite degrees of freedom of the estimate's two variance terms.
* Arms are independent: variances add.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _inference as inf
from ._result import TestResult
from ._validate import (
    ALTERNATIVES,
    ARM_NAMES,
    DEGENERATE_POLICIES,
    DISTRIBUTIONS,
    NAN_POLICIES,
    as_float_array,
    check_choice,
    check_ddof,
    check_min_units,
    check_nonnegative,
    check_open_unit,
    clean_units,
)
from .moments import RatioMoments, _ArmStats

CI_METHODS = ("delta", "log", "fieller", "delta-bc")

# Relative tolerance under which a variance computed from moments counts as 0.
_ZERO_VAR_RTOL = 1e-13


# ---------------------------------------------------------------------- helpers
def _validate_common(
    relative: Any,
    ci_method: Any,
    alternative: Any,
    confidence_level: Any,
    ddof: Any,
    distribution: Any,
) -> tuple[bool, str, str, float, float, str]:
    if not isinstance(relative, bool | np.bool_):
        raise TypeError(f"`relative` must be a bool; got {type(relative).__name__}.")
    check_choice("ci_method", ci_method, CI_METHODS)
    check_choice("alternative", alternative, ALTERNATIVES)
    confidence_level = check_open_unit("confidence_level", confidence_level)
    ddof = check_ddof(ddof)
    check_choice("distribution", distribution, DISTRIBUTIONS)
    return bool(relative), ci_method, alternative, confidence_level, ddof, distribution


def _unit_arrays(
    names: tuple[str, str | None], values: tuple[Any, Any], arm: str, nan_policy: str
) -> _ArmStats:
    """Validate one arm's per-unit arrays and return its centred moments."""
    cols = {names[0]: as_float_array(names[0], values[0])}
    if names[1] is not None:
        cols[names[1]] = as_float_array(names[1], values[1])
    cols = clean_units(cols, nan_policy, arm=arm)
    v = cols[names[0]]
    if names[1] is not None:
        m = cols[names[1]]
        check_nonnegative(names[1], m, arm=arm)
    else:
        m = np.ones_like(v)
    check_min_units(names[0], v.shape[0], arm=arm)
    if names[1] is not None and m.sum() == 0:
        raise ValueError(
            f"`{names[1]}` sums to 0 in the {ARM_NAMES[arm]} arm; the ratio is undefined."
        )
    return _ArmStats.from_units(np.column_stack([v, m]))


def _arm_delta(st: _ArmStats, ddof: float) -> dict[str, np.ndarray]:
    """Ratio of means and its delta-method moments of one arm (:meth:`_ArmStats.delta`)."""
    return st.delta(ddof, _ZERO_VAR_RTOL)


def _compare(
    st_t: _ArmStats,
    st_c: _ArmStats,
    *,
    labels: dict[str, str | None],
    relative: bool,
    ci_method: str,
    alternative: str,
    confidence_level: float,
    ddof: float,
    distribution: str,
    degenerate: str,
    kind: str,
) -> TestResult:
    """Delta-method comparison of two independent arms (vectorised over replicates)."""
    shape = np.broadcast_shapes(st_t.n.shape, st_c.n.shape)
    problems = inf.Problems(shape, degenerate)
    for a, st in (("t", st_t), ("c", st_c)):
        arm = ARM_NAMES[a]
        problems.add(st.n < 2, f"`{labels['num_' + a]}` has fewer than 2 units in the {arm} arm")
        if labels["den_" + a] is not None:
            problems.add(
                ~(st.mean[..., 1] > 0),
                f"`{labels['den_' + a]}` has a total <= 0 in the {arm} arm; the ratio is undefined",
            )
    t = _arm_delta(st_t, ddof)
    c = _arm_delta(st_c, ddof)
    rt, rc, vt, vc = t["r"], c["r"], t["var_r"], c["var_r"]
    problems.add(
        ~(vt + vc > 0),
        "the standard error is 0: the (linearised) metric does not vary within either arm",
    )
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if not relative:
            if ci_method != "delta":
                raise ValueError(
                    f"`ci_method` must be 'delta' for an absolute difference; got {ci_method!r} "
                    "(the other methods are for relative=True)."
                )
            estimate = rt - rc
            ct, cc = vt, vc
            se = np.sqrt(ct + cc)
            df = inf.welch_df(ct, cc, t["n"], c["n"]) if distribution == "t" else np.inf
            statistic = estimate / se
            q = inf.crit(confidence_level, df, alternative, distribution)
            low, high = inf.wald_interval(estimate, se, q, alternative)
        else:
            problems.add(
                ~(rc > 0),
                f"a relative lift needs a control {kind} > 0; the control {kind} is <= 0",
            )
            if ci_method == "log":
                problems.add(
                    ~(rt > 0),
                    f"ci_method='log' needs a treatment {kind} > 0; the treatment {kind} is <= 0",
                )
            lift = rt / rc
            # delta-method variance of R_T/R_C (SPEC §1): var_T/R_C^2 + R_T^2 var_C/R_C^4
            ct, cc = vt / rc**2, rt**2 * vc / rc**4
            se = np.sqrt(ct + cc)
            if ci_method in ("delta", "delta-bc"):
                estimate = lift - 1.0
                if ci_method == "delta-bc":
                    # Second-order bias of Vbar/Mbar (Deng et al. 2018, percent-change section):
                    # E[Vbar/Mbar] ~ mu_V/mu_M + (mu_V var(Mbar)/mu_M^3 - cov(Vbar, Mbar)/mu_M^2)
                    bias_t = (t["mean_v"] * t["var_m"] / t["mean_m"] - t["cov_vm"]) / t[
                        "mean_m"
                    ] ** 2
                    # and of its inverse Mbar/Vbar (the control enters as a denominator)
                    bias_inv_c = (c["mean_m"] * c["var_v"] / c["mean_v"] - c["cov_vm"]) / c[
                        "mean_v"
                    ] ** 2
                    estimate = estimate - (bias_t / rc + rt * bias_inv_c)
                df = inf.welch_df(ct, cc, t["n"], c["n"]) if distribution == "t" else np.inf
                statistic = estimate / se
                q = inf.crit(confidence_level, df, alternative, distribution)
                low, high = inf.wald_interval(estimate, se, q, alternative)
            elif ci_method == "log":
                estimate = lift - 1.0
                lt, lc = vt / rt**2, vc / rc**2
                se_log = np.sqrt(lt + lc)
                df = inf.welch_df(lt, lc, t["n"], c["n"]) if distribution == "t" else np.inf
                statistic = np.log(lift) / se_log
                q = inf.crit(confidence_level, df, alternative, distribution)
                log_low, log_high = inf.wald_interval(np.log(lift), se_log, q, alternative)
                low, high = np.expm1(log_low), np.expm1(log_high)
                se = lift * se_log  # equals the delta-method s.e. of the lift
            else:  # fieller
                estimate = lift - 1.0
                df = inf.welch_df(vt, vc, t["n"], c["n"]) if distribution == "t" else np.inf
                statistic = (rt - rc) / np.sqrt(vt + vc)
                q = inf.crit(confidence_level, df, alternative, distribution)
                low, high = _fieller(rt, rc, vt, vc, q, alternative)
        pvalue = inf.pvalue(statistic, df, alternative, distribution)
    ci = ci_method if relative else "delta"
    method = f"{kind}/{ci}/{'relative' if relative else 'absolute'}/{distribution}"
    fin = problems.finish
    return TestResult(
        estimate=fin(estimate),
        std_error=fin(se),
        statistic=fin(statistic),
        pvalue=fin(pvalue),
        ci_low=fin(low),
        ci_high=fin(high),
        confidence_level=confidence_level,
        alternative=alternative,
        n_control=fin(c["n"]),
        n_treatment=fin(t["n"]),
        method=method,
        df=fin(df),
        control_value=fin(rc),
        treatment_value=fin(rt),
    )


def _fieller(
    rt: np.ndarray, rc: np.ndarray, vt: np.ndarray, vc: np.ndarray, q: np.ndarray, alternative: str
) -> tuple[np.ndarray, np.ndarray]:
    """Fieller interval for ``R_T/R_C - 1`` with independent arms (``R_C > 0``).

    The set ``{rho : (R_T - rho R_C)^2 <= q^2 (var_T + rho^2 var_C)}`` is bounded iff
    ``a = R_C^2 - q^2 var_C > 0``; its ends are the roots of
    ``a rho^2 - 2 R_T R_C rho + (R_T^2 - q^2 var_T)``. Otherwise it is reported as
    ``(-inf, inf)``. One-sided: the lower root bounds "greater", the upper "less".
    """
    a = rc**2 - q**2 * vc
    b = rt * rc
    disc = q**2 * (vc * rt**2 + vt * a)  # = b^2 - a c, > 0 whenever a > 0
    bounded = a > 0
    root = np.sqrt(np.where(bounded, disc, 0.0))
    safe_a = np.where(bounded, a, 1.0)
    lo = np.where(bounded, (b - root) / safe_a - 1.0, -np.inf)
    hi = np.where(bounded, (b + root) / safe_a - 1.0, np.inf)
    if alternative == "greater":
        hi = np.full_like(np.asarray(hi, dtype=float), np.inf)
    elif alternative == "less":
        lo = np.full_like(np.asarray(lo, dtype=float), -np.inf)
    return np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)


# ----------------------------------------------------------------- public API
def linearize_ratio(num: npt.ArrayLike, den: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Per-unit linearisation of the ratio of means ``Vbar / Mbar``.

    Parameters
    ----------
    num : array_like, shape (n,)
        Numerator per unit, V_i (e.g. clicks of user i).
    den : array_like, shape (n,)
        Denominator per unit, M_i (e.g. page views of user i); non-negative, not all 0.

    Returns
    -------
    ndarray, shape (n,)
        ``L_i = V_i / Mbar - (Vbar / Mbar^2) M_i`` (mean 0 by construction).

    Notes
    -----
    SPEC §1 with the sample means plugged in for mu_V and mu_M. Then
    ``var(Vbar/Mbar) ~ var(L) / n`` (the delta method [1]_), and any
    covariance with the ratio is the ordinary covariance with L ([2]_, App. B).

    References
    ----------
    .. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric
       Analytics: A Practical Guide with Novel Ideas", KDD 2018.
    .. [2] A. Deng, Y. Xu, R. Kohavi, T. Walker, "Improving the Sensitivity of
       Online Controlled Experiments by Utilizing Pre-Experiment Data", WSDM 2013.

    Examples
    --------
    >>> linearize_ratio([1.0, 3.0], [2.0, 2.0]).tolist()
    [-0.5, 0.5]
    """
    v = as_float_array("num", num)
    m = as_float_array("den", den)
    cols = clean_units({"num": v, "den": m}, "raise")
    v, m = cols["num"], cols["den"]
    check_nonnegative("den", m)
    check_min_units("num", v.shape[0], minimum=1)
    if m.sum() == 0:
        raise ValueError("`den` sums to 0; the ratio is undefined.")
    a, b = _ArmStats.from_units(np.column_stack([v, m])).linear_coefficients()
    return a * v + b * m


def ratio_variance(num: npt.ArrayLike, den: npt.ArrayLike, *, ddof: float = 1) -> float:
    """Delta-method variance of the ratio of means ``sum V / sum M`` of one sample.

    Parameters
    ----------
    num, den : array_like, shape (n,)
        Numerator and denominator per unit (see :func:`linearize_ratio`).
    ddof : float, default 1
        Delta degrees of freedom of the variance of L (``n - ddof`` divisor).

    Returns
    -------
    float
        ``var(L) / n = (s_V^2 - 2 R s_VM + R^2 s_M^2) / (n Mbar^2)`` (SPEC §1, [1]_).

    References
    ----------
    .. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric
       Analytics: A Practical Guide with Novel Ideas", KDD 2018.

    Examples
    --------
    >>> round(ratio_variance([1.0, 3.0], [2.0, 2.0], ddof=0), 6)
    0.125
    """
    ddof = check_ddof(ddof)
    lin = linearize_ratio(num, den)
    n = lin.shape[0]
    check_min_units("num", n)
    return float(_ArmStats.from_units(np.column_stack([num, den])).delta(ddof)["var_r"])


def ratio_sigma(num: npt.ArrayLike, den: npt.ArrayLike, *, ddof: float = 1) -> float:
    """Return the standard deviation of the linearised ratio metric (sigma for power).

    Parameters
    ----------
    num, den : array_like, shape (n,)
        A pilot sample's numerator and denominator per unit.
    ddof : float, default 1
        Delta degrees of freedom.

    Returns
    -------
    float
        ``sd(L)`` so that ``var(Vbar/Mbar) ~ sigma^2 / n`` (SPEC §2); pass it as
        ``sigma`` to :func:`~estimators.sample_size`.

    Examples
    --------
    >>> round(ratio_sigma([1.0, 3.0], [2.0, 2.0], ddof=0), 6)
    0.5
    """
    ddof = check_ddof(ddof)
    lin = linearize_ratio(num, den)
    check_min_units("num", lin.shape[0])
    return float(math.sqrt(lin @ lin / (lin.shape[0] - ddof)))


_RATIO_DOC_PARAMS = """
    relative : bool, default False
        ``False``: ``R_T - R_C``. ``True``: the lift ``R_T / R_C - 1`` (needs R_C > 0).
    ci_method : {"delta", "log", "fieller", "delta-bc"}, default "delta"
        Interval for the relative lift: linear delta method; delta method on
        ``log(R_T/R_C)`` mapped back (asymmetric, better at small n on skewed
        data); Fieller's exact-pivot interval (may be unbounded, then reported as
        ``(-inf, inf)``); delta with the second-order bias correction of the point
        estimate ([1]_, on the percent change). Must be "delta" when ``relative=False``.
    alternative : {"two-sided", "less", "greater"}, default "two-sided"
        Alternative hypothesis (treatment less / greater than control).
    confidence_level : float, default 0.95
        Confidence level of the interval.
    ddof : float, default 1
        Delta degrees of freedom of the arm variances. ``ddof=0`` equals the
        cluster-robust OLS s.e. with ``use_correction=False``.
    distribution : {"z", "t"}, default "z"
        Normal, or Student t with Welch-Satterthwaite degrees of freedom.
"""


def ratio_test(
    num_t: npt.ArrayLike | RatioMoments,
    den_t: npt.ArrayLike | RatioMoments,
    num_c: npt.ArrayLike | None = None,
    den_c: npt.ArrayLike | None = None,
    *,
    relative: bool = False,
    ci_method: str = "delta",
    alternative: str = "two-sided",
    confidence_level: float = 0.95,
    ddof: float = 1,
    distribution: str = "z",
    nan_policy: str = "raise",
) -> TestResult:
    """Compare a ratio metric ``sum V / sum M`` between two arms by the delta method.

    Parameters
    ----------
    num_t, den_t : array_like, shape (n_t,)
        Treatment units' numerators V_i and denominators M_i (counts, >= 0).
        Alternatively pass two :class:`RatioMoments` as ``ratio_test(moments_t,
        moments_c, ...)`` (see :func:`ratio_test_from_moments`).
    num_c, den_c : array_like, shape (n_c,)
        Control units' numerators and denominators.
    nan_policy : {"raise", "omit"}, default "raise"
        ``"omit"`` drops a unit whose numerator or denominator is NaN.
    """
    if isinstance(num_t, RatioMoments) or isinstance(den_t, RatioMoments):
        if not (isinstance(num_t, RatioMoments) and isinstance(den_t, RatioMoments)):
            raise TypeError("pass either four arrays or two RatioMoments (treatment, control).")
        if num_c is not None or den_c is not None:
            raise TypeError("with RatioMoments pass only `moments_t` and `moments_c`.")
        return ratio_test_from_moments(
            num_t,
            den_t,
            relative=relative,
            ci_method=ci_method,
            alternative=alternative,
            confidence_level=confidence_level,
            ddof=ddof,
            distribution=distribution,
        )
    opts = _validate_common(relative, ci_method, alternative, confidence_level, ddof, distribution)
    check_choice("nan_policy", nan_policy, NAN_POLICIES)
    if num_c is None or den_c is None:
        raise TypeError("`num_c` and `den_c` are required with per-unit arrays.")
    st_t = _unit_arrays(("num_t", "den_t"), (num_t, den_t), "t", nan_policy)
    st_c = _unit_arrays(("num_c", "den_c"), (num_c, den_c), "c", nan_policy)
    labels = {"num_t": "num_t", "den_t": "den_t", "num_c": "num_c", "den_c": "den_c"}
    return _compare(st_t, st_c, labels=labels, **_opts(opts), degenerate="raise", kind="ratio")


def _opts(opts: tuple) -> dict[str, Any]:
    keys = ("relative", "ci_method", "alternative", "confidence_level", "ddof", "distribution")
    return dict(zip(keys, opts, strict=True))


def ratio_test_from_moments(
    moments_t: RatioMoments,
    moments_c: RatioMoments,
    *,
    relative: bool = False,
    ci_method: str = "delta",
    alternative: str = "two-sided",
    confidence_level: float = 0.95,
    ddof: float = 1,
    distribution: str = "z",
    degenerate: str = "raise",
) -> TestResult:
    """:func:`ratio_test` from per-arm sufficient statistics, vectorised over replicates.

    Parameters
    ----------
    moments_t, moments_c : RatioMoments
        Treatment and control moments; their fields broadcast (e.g. shape ``(R,)``
        for R simulated replicates), and the result's fields have that shape.
    degenerate : {"raise", "nan"}, default "raise"
        What to do with replicates where the test is undefined (fewer than 2 units,
        zero total denominator, zero standard error, non-positive control ratio
        for a lift): raise ``ValueError`` naming them, or return NaN in their cells
        (an explicit opt-in for Monte Carlo loops, which must count them).

    Returns
    -------
    TestResult
        Identical (to rounding) to :func:`ratio_test` on the units the moments
        summarise.
    """
    opts = _validate_common(relative, ci_method, alternative, confidence_level, ddof, distribution)
    check_choice("degenerate", degenerate, DEGENERATE_POLICIES)
    for name, m in (("moments_t", moments_t), ("moments_c", moments_c)):
        if not isinstance(m, RatioMoments):
            raise TypeError(f"`{name}` must be a RatioMoments; got {type(m).__name__}.")
        if (m.sum_m < 0).any():
            raise ValueError(f"`{name}.sum_m` holds counts and must be >= 0; got a negative sum.")
    labels = {
        "num_t": "moments_t.n",
        "den_t": "moments_t.sum_m",
        "num_c": "moments_c.n",
        "den_c": "moments_c.sum_m",
    }
    return _compare(
        moments_t._stats(),
        moments_c._stats(),
        labels=labels,
        **_opts(opts),
        degenerate=degenerate,
        kind="ratio",
    )


def mean_test(
    y_t: npt.ArrayLike | RatioMoments,
    y_c: npt.ArrayLike | RatioMoments,
    *,
    relative: bool = False,
    ci_method: str = "delta",
    alternative: str = "two-sided",
    confidence_level: float = 0.95,
    ddof: float = 1,
    distribution: str = "z",
    nan_policy: str = "raise",
) -> TestResult:
    """Compare the means of a per-unit metric between two arms (z or Welch t).

    Parameters
    ----------
    y_t, y_c : array_like, shape (n_t,) and (n_c,)
        Metric per unit in the treatment and control arm, or two
        :class:`RatioMoments` (e.g. from :meth:`RatioMoments.from_mean_sums`).
    nan_policy : {"raise", "omit"}, default "raise"
        ``"omit"`` drops NaN units.
    """
    if isinstance(y_t, RatioMoments) or isinstance(y_c, RatioMoments):
        return ratio_test(
            y_t,
            y_c,
            relative=relative,
            ci_method=ci_method,
            alternative=alternative,
            confidence_level=confidence_level,
            ddof=ddof,
            distribution=distribution,
        )
    opts = _validate_common(relative, ci_method, alternative, confidence_level, ddof, distribution)
    check_choice("nan_policy", nan_policy, NAN_POLICIES)
    st_t = _unit_arrays(("y_t", None), (y_t, None), "t", nan_policy)
    st_c = _unit_arrays(("y_c", None), (y_c, None), "c", nan_policy)
    labels = {"num_t": "y_t", "den_t": None, "num_c": "y_c", "den_c": None}
    return _compare(st_t, st_c, labels=labels, **_opts(opts), degenerate="raise", kind="mean")


_RETURNS = """
    Returns
    -------
    TestResult
        Estimate, standard error, statistic, p-value and interval; ``control_value``
        and ``treatment_value`` are the arms' {what}.

    Notes
    -----
    Each arm's ratio R = Vbar/Mbar has delta-method variance ``var(L)/n`` with
    ``L_i = V_i/Mbar - (Vbar/Mbar^2) M_i`` (SPEC §1, [1]_); the absolute
    difference has variance ``var_T + var_C``, the lift ``var_T/R_C^2 +
    R_T^2 var_C/R_C^4`` (std_error is always this, on the scale of the estimate).
    ``"log"`` uses ``var_T/R_T^2 + var_C/R_C^2`` for ``log(R_T/R_C)``; ``"fieller"``
    inverts the pivot ``(R_T - rho R_C)/sqrt(var_T + rho^2 var_C)``; ``"delta-bc"``
    subtracts the O(1/n) bias of ``R_T/R_C`` ([1]_, on the percent change) from the estimate.
    A mean metric is the special case M = 1.

    References
    ----------
    .. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric
       Analytics: A Practical Guide with Novel Ideas", KDD 2018.
    .. [2] E. C. Fieller, "Some problems in interval estimation", J. R. Stat. Soc.
       B 16 (1954) 175-185.
"""

ratio_test.__doc__ = (
    ratio_test.__doc__.replace(
        "    nan_policy :", _RATIO_DOC_PARAMS.strip("\n") + "\n    nan_policy :"
    )
    + _RETURNS.format(what="ratios")
    + """
    Examples
    --------
    >>> res = ratio_test([1, 2, 0, 3], [4, 4, 2, 5], [0, 1, 1, 0], [3, 4, 5, 2])
    >>> round(res.estimate, 4), round(res.std_error, 4)
    (0.2571, 0.1281)
"""
)
mean_test.__doc__ = (
    mean_test.__doc__.replace(
        "    nan_policy :", _RATIO_DOC_PARAMS.strip("\n") + "\n    nan_policy :"
    )
    + _RETURNS.format(what="means")
    + """
    Examples
    --------
    >>> res = mean_test([3.0, 5.0, 4.0], [1.0, 2.0, 3.0], distribution="t")
    >>> round(res.estimate, 4), round(res.df, 4)
    (2.0, 4.0)
"""
)
ratio_test_from_moments.__doc__ = ratio_test_from_moments.__doc__.replace(
    "    degenerate :", _RATIO_DOC_PARAMS.strip("\n") + "\n    degenerate :"
)
