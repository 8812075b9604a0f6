"""Ratio metrics with the delta method, and two-sample tests of means (docs/theory.md §1).

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
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from . import _inference as inf
from ._result import EstimatorWarning, TestResult
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

CI_METHODS = ("delta", "log", "fieller", "delta-bc", "edgeworth", "edgeworth-bc", "edgeworth-t")

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
    if ci_method.startswith("edgeworth") and distribution != "z":
        raise ValueError(
            f"`distribution` must be 'z' with ci_method={ci_method!r} (the Edgeworth "
            f"expansion corrects the normal); got {distribution!r}."
        )
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
        orphan = (m == 0) & (v != 0)
        if orphan.any():
            i = int(np.flatnonzero(orphan)[0])
            raise ValueError(
                f"`{names[0]}` is non-zero where `{names[1]}` is 0 in the {ARM_NAMES[arm]} arm "
                f"(first at unit {i}: {v[i]:g} / 0); a numerator needs a denominator "
                "(e.g. clicks need views)."
            )
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
        ~np.isfinite(vt + vc),
        "the variance overflows float64: the metric's values are too large (their squares "
        "exceed 1.8e308); rescale the metric (e.g. to other units) before testing",
    )
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
            # delta-method variance of R_T/R_C (docs/theory.md §1): var_T/R_C^2 + R_T^2 var_C/R_C^4
            ct, cc = vt / rc**2, rt**2 * vc / rc**4
            se = np.sqrt(ct + cc)
            if ci_method.startswith("edgeworth"):
                problems.add(
                    ~np.isfinite(t["mu3_l"] + c["mu3_l"]),
                    f"ci_method={ci_method!r} needs the third-order sums (sum_vvv, sum_vvm, "
                    "sum_vmm, sum_mmm) of both arms' moments",
                )
            if ci_method in ("delta", "delta-bc", "edgeworth", "edgeworth-bc", "edgeworth-t"):
                estimate = lift - 1.0
                if ci_method.endswith("-bc"):
                    bias = _lift_bias(t, c)
                    _warn_large_bias(bias, lift, problems.bad)
                    estimate = estimate - bias
                statistic = estimate / se
                if ci_method.startswith("edgeworth"):
                    df = np.inf
                    stud = ci_method == "edgeworth-t"
                    gamma = _lift_skewness(t, c, rt, rc, se)
                    low, high = _edgeworth_interval(
                        estimate, se, gamma, confidence_level, alternative, stud
                    )
                    pvalue = _edgeworth_pvalue(statistic, gamma, alternative, stud)
                else:
                    df = inf.welch_df(ct, cc, t["n"], c["n"]) if distribution == "t" else np.inf
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
        if not (relative and ci_method.startswith("edgeworth")):
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


def _lift_bias(t: dict[str, np.ndarray], c: dict[str, np.ndarray]) -> np.ndarray:
    """Second-order bias of ``R_T/R_C`` (Deng et al. 2018, the percent-change section).

    ``E[Vbar/Mbar] ~ mu_V/mu_M + mu_V var(Mbar)/mu_M^3 - cov(Vbar, Mbar)/mu_M^2`` for the
    treatment ratio, the same for the inverse ``Mbar/Vbar`` of the control (which
    enters as a denominator); the lift's bias is ``bias_T/R_C + R_T bias_inv_C``. For a
    mean metric this is Algorithm 1's ``bc = Ybar/Xbar^3 s_x^2/n``, which the
    estimate subtracts.
    """
    bias_t = (t["mean_v"] * t["var_m"] / t["mean_m"] - t["cov_vm"]) / t["mean_m"] ** 2
    bias_inv_c = (c["mean_m"] * c["var_v"] / c["mean_v"] - c["cov_vm"]) / c["mean_v"] ** 2
    return bias_t / c["r"] + t["r"] * bias_inv_c


def _warn_large_bias(bias: np.ndarray, ratio: np.ndarray, bad: np.ndarray) -> None:
    """Warn where the second-order correction exceeds 25% of the ratio ``R_T/R_C``.

    The relative bias is about the squared coefficient of variation of the control's
    ratio; beyond 0.25 (a control ratio with a relative s.e. above ~0.5, e.g. near 0)
    the expansion behind the correction no longer holds.
    """
    large = (np.abs(bias) > 0.25 * np.abs(ratio)) & ~bad
    if np.any(large):
        count = int(np.sum(large))
        warnings.warn(
            f"the bias correction of the lift exceeds 25% of the ratio R_T/R_C in {count} "
            "replicate(s): the control ratio is poorly determined (close to 0) and the "
            "expansion behind the '-bc' methods breaks down (the corrected estimate may "
            "even change sign).",
            EstimatorWarning,
            stacklevel=4,
        )


def _lift_skewness(
    t: dict[str, np.ndarray],
    c: dict[str, np.ndarray],
    rt: np.ndarray,
    rc: np.ndarray,
    se: np.ndarray,
) -> np.ndarray:
    """Skewness of the linearised lift of two independent arms (Deng et al. 2018, §2.2).

    The lift ``R_T/R_C - 1`` is linearised as ``Lbar_T/R_C - (R_T/R_C^2) Lbar_C``, a
    difference of two independent means of L. Its third cumulant is
    ``mu3_T/(R_C^3 n_T^2) - R_T^3 mu3_C/(R_C^6 n_C^2)`` and its skewness that over
    ``se^3``; with equal arms of n paired units this is ``kappa_W / sqrt(n)`` for the
    paper's ``W_i = Y_i/mu_x - mu_y X_i/mu_x^2``.
    """
    k3 = t["mu3_l"] / (rc**3 * t["n"] ** 2) - rt**3 * c["mu3_l"] / (rc**6 * c["n"] ** 2)
    return k3 / se**3


def _edgeworth_cdf(x: np.ndarray, gamma: np.ndarray, studentized: bool) -> np.ndarray:
    """One-term Edgeworth cdf of a standardised (or studentised) mean with skewness ``gamma``.

    Standardised, variance known (Deng et al. 2018 §2.2): ``Phi(x) - gamma/6 (x^2 - 1)
    phi(x)``. Studentised, variance estimated (Hall 1992, §2.6): ``Phi(x) + gamma/6
    (2 x^2 + 1) phi(x)``.
    """
    if studentized:
        return stats.norm.cdf(x) + gamma / 6.0 * (2.0 * x * x + 1.0) * stats.norm.pdf(x)
    return stats.norm.cdf(x) - gamma / 6.0 * (x * x - 1.0) * stats.norm.pdf(x)


def _edgeworth_slope(x: np.ndarray, gamma: np.ndarray, studentized: bool) -> np.ndarray:
    """``F'(x) / phi(x)`` of :func:`_edgeworth_cdf` (positive where ``F`` increases)."""
    if studentized:
        return 1.0 + gamma / 6.0 * (3.0 * x - 2.0 * x**3)
    return 1.0 + gamma / 6.0 * (x**3 - 3.0 * x)


def _edgeworth_quantile(p: float, gamma: np.ndarray, studentized: bool) -> np.ndarray:
    """Solve ``F(x) = p`` for the one-term Edgeworth cdf ``F`` (Newton from Cornish-Fisher).

    Where ``F`` is not increasing at the root (|gamma| of order 3 or more) or Newton
    does not converge, the Cornish-Fisher value (the same expansion inverted to the
    same order: ``z + gamma (z^2 - 1)/6``, studentised ``z - gamma (2 z^2 + 1)/6``)
    is returned.
    """
    z = float(stats.norm.ppf(p))
    gamma = np.asarray(gamma, dtype=float)
    if studentized:
        cf = z - gamma * (2.0 * z * z + 1.0) / 6.0
    else:
        cf = z + gamma * (z * z - 1.0) / 6.0
    x = cf.copy()
    for _ in range(30):
        dens = stats.norm.pdf(x) * _edgeworth_slope(x, gamma, studentized)
        step = (_edgeworth_cdf(x, gamma, studentized) - p) / np.where(dens > 0, dens, np.inf)
        x = x - np.clip(step, -1.0, 1.0)
    ok = (
        np.isfinite(x)
        & (_edgeworth_slope(x, gamma, studentized) > 0)
        & (np.abs(_edgeworth_cdf(x, gamma, studentized) - p) < 1e-10)
    )
    return np.where(ok, x, cf)


def _edgeworth_interval(
    estimate: np.ndarray,
    se: np.ndarray,
    gamma: np.ndarray,
    confidence_level: float,
    alternative: str,
    studentized: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Invert ``P((estimate - lift)/se <= x) = F(x)`` for the interval of the lift."""
    tail = (1.0 - confidence_level) / (2.0 if alternative == "two-sided" else 1.0)
    low = estimate - _edgeworth_quantile(1.0 - tail, gamma, studentized) * se
    high = estimate - _edgeworth_quantile(tail, gamma, studentized) * se
    if alternative == "greater":
        high = np.full_like(np.asarray(high, dtype=float), np.inf)
    elif alternative == "less":
        low = np.full_like(np.asarray(low, dtype=float), -np.inf)
    return np.asarray(low, dtype=float), np.asarray(high, dtype=float)


def _edgeworth_pvalue(
    statistic: np.ndarray, gamma: np.ndarray, alternative: str, studentized: bool
) -> np.ndarray:
    """P-value of ``statistic = estimate/se`` under the Edgeworth cdf (clipped to [0, 1])."""
    cdf = np.clip(_edgeworth_cdf(statistic, gamma, studentized), 0.0, 1.0)
    if alternative == "two-sided":
        return np.minimum(1.0, 2.0 * np.minimum(cdf, 1.0 - cdf))
    if alternative == "greater":
        return 1.0 - cdf
    return cdf


def _fieller(
    rt: np.ndarray, rc: np.ndarray, vt: np.ndarray, vc: np.ndarray, q: np.ndarray, alternative: str
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Fieller confidence set for ``R_T/R_C - 1`` with independent arms (``R_C > 0``).

    The set of ratios ``rho`` not rejected by the pivot ``P(rho) = (R_T - rho R_C) /
    sqrt(var_T + rho^2 var_C)`` at the critical value ``q`` is
    ``{rho : a rho^2 - 2 b rho + c <= 0}`` with ``a = R_C^2 - q^2 var_C``,
    ``b = R_T R_C``, ``c = R_T^2 - q^2 var_T`` and ``b^2 - a c = q^2 (var_C R_T^2 +
    var_T a)``:

    * ``a > 0``: the bounded interval between the two roots;
    * ``a < 0`` and ``b^2 - a c > 0``: two rays ``(-inf, r1] U [r2, inf)``, returned
      as ``low = r2 > high = r1`` (see :attr:`TestResult.ci_kind`);
    * ``a < 0`` and ``b^2 - a c <= 0``, or ``a = 0``: the whole line, or one ray.

    One-sided ("greater" keeps ``P <= q``, "less" keeps ``P >= -q``): with ``a > 0``
    the lower (upper) root bounds the set; with ``a < 0`` the rejected gap between the
    roots has ``P`` of the sign of ``R_T``, so the side that rejects there gets the two
    rays and the other side the whole line.
    """
    a = rc**2 - q**2 * vc
    b = rt * rc
    c = rt**2 - q**2 * vt
    disc = q**2 * (vc * rt**2 + vt * a)
    root = np.sqrt(np.maximum(disc, 0.0))
    safe_a = np.where(a != 0, a, 1.0)
    r1, r2 = (b - root) / safe_a, (b + root) / safe_a  # a > 0: r1 < r2; a < 0: r1 > r2
    bounded = a > 0
    rays = (a < 0) & (disc > 0)
    linear = a == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ray_start = np.where(b > 0, c / (2.0 * b), -np.inf)  # a = 0: rho >= c/(2b)
    # two-sided set, encoded as (low, high); rays: low = r1 (start of the right ray)
    lo = np.where(bounded | rays, r1, np.where(linear, ray_start, -np.inf))
    hi = np.where(bounded | rays, r2, np.inf)
    if alternative != "two-sided":
        gap_positive = rt > 0  # sign of P inside the rejected gap when a < 0
        rejects_gap = gap_positive if alternative == "greater" else ~gap_positive
        if alternative == "greater":
            lo = np.where(bounded | linear, lo, np.where(rays & rejects_gap, r1, -np.inf))
            hi = np.where(rays & rejects_gap, r2, np.inf)
        else:
            hi = np.where(bounded, r2, np.where(rays & rejects_gap, r2, np.inf))
            lo = np.where(rays & rejects_gap, r1, -np.inf)
    return np.asarray(lo - 1.0, dtype=float), np.asarray(hi - 1.0, dtype=float)


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
    docs/theory.md §1 with the sample means plugged in for mu_V and mu_M. Then
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
        ``var(L) / n = (s_V^2 - 2 R s_VM + R^2 s_M^2) / (n Mbar^2)`` (docs/theory.md §1, [1]_).

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
        ``sd(L)`` so that ``var(Vbar/Mbar) ~ sigma^2 / n`` (docs/theory.md §2); pass it as
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
    ci_method : {"delta", "log", "fieller", "delta-bc", "edgeworth", "edgeworth-bc", \
"edgeworth-t"}, default "delta"
        Interval for the relative lift: linear delta method; delta method on
        ``log(R_T/R_C)`` mapped back (asymmetric, better at small n on skewed
        data); Fieller's exact confidence set (an interval, two rays encoded as
        ``ci_low > ci_high``, or the whole line: see ``TestResult.ci_kind``); delta
        with the second-order bias correction of the point estimate ([1]_, on the
        percent change); the one-term Edgeworth expansion of the linearised lift
        ([1]_ §2.2, its standardised polynomial), the same centred on the
        bias-corrected lift, or the studentised expansion ([3]_), which is the one
        that corrects the tails when the variance is estimated. The Edgeworth
        methods need third-order sums and ``distribution="z"``. Must be "delta"
        when ``relative=False``.
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
        if (m.sum_m + m.n * m.shift_m < 0).any():
            raise ValueError(
                f"`{name}.sum_m` holds counts and must be >= 0 (about shift 0); got a negative sum."
            )
        if relative and ci_method.startswith("edgeworth") and not m.has_third:
            raise ValueError(
                f"ci_method={ci_method!r} needs the third-order sums of `{name}` (sum_vvv, "
                "sum_vvm, sum_vmm, sum_mmm; e.g. `sum_yyy` in RatioMoments.from_mean_sums)."
            )
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
    ``L_i = V_i/Mbar - (Vbar/Mbar^2) M_i`` (docs/theory.md §1, [1]_); the absolute
    difference has variance ``var_T + var_C``, the lift ``var_T/R_C^2 +
    R_T^2 var_C/R_C^4`` (std_error is always this, on the scale of the estimate).
    ``"log"`` uses ``var_T/R_T^2 + var_C/R_C^2`` for ``log(R_T/R_C)``; ``"fieller"``
    inverts the pivot ``(R_T - rho R_C)/sqrt(var_T + rho^2 var_C)``; ``"delta-bc"``
    subtracts the O(1/n) bias of ``R_T/R_C`` ([1]_, on the percent change) from the estimate.
    The Edgeworth methods give ``(estimate - lift)/se`` the cdf
    ``Phi(t) - gamma/6 (t^2 - 1) phi(t)`` ([1]_ §2.2) or, ``"edgeworth-t"``,
    ``Phi(t) + gamma/6 (2 t^2 + 1) phi(t)`` ([3]_), with ``gamma`` the skewness of the
    linearised lift ``Lbar_T/R_C - (R_T/R_C^2) Lbar_C``, and invert it.
    A mean metric is the special case M = 1.

    References
    ----------
    .. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric
       Analytics: A Practical Guide with Novel Ideas", KDD 2018.
    .. [2] E. C. Fieller, "Some problems in interval estimation", J. R. Stat. Soc.
       B 16 (1954) 175-185.
    .. [3] P. Hall, "The Bootstrap and Edgeworth Expansion", Springer, 1992, §2.6.
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
