"""CUPED: variance reduction with pre-experiment covariates (docs/theory.md §3).

The adjusted metric of a unit is ``Y_cv = Y - theta' (X - Xbar)`` with ``Xbar`` the
pooled covariate mean; the effect is the difference of the arms' means of
``Y_cv`` and its standard error ``sqrt(s_T^2/n_T + s_C^2/n_C)`` with ``s_a^2`` the
within-arm variance of ``Y_cv`` (theta treated as known). Three choices of theta:

``"pooled"``
    OLS slope of Y on X (with intercept) on both arms' units together: the
    industry default (Deng et al. 2013).
``"within"``
    the pooled within-arm slope; the estimate equals the treatment coefficient of
    OLS ``Y ~ 1 + arm + X`` exactly (Frisch-Waugh-Lovell).
``"per_arm"``
    one slope per arm, covariates centred at the pooled mean; the estimate equals
    the treatment coefficient of Lin's (2013) interacted regression
    ``Y ~ 1 + arm + Xc + arm:Xc`` exactly.

Ratio metrics (``den`` given) and ratio covariates (``covariate_ratios``) are
replaced by their linearisations before theta is computed (docs/theory.md §3; Deng et al.
2013, appendix B): the metric by ``L_i = R_a + (V_i - R_a M_i)/Mbar_a`` in its
arm ``a`` (mean ``R_a``), a covariate ratio ``X_i/X_j`` by
``X_i/xbar_j - (xbar_i/xbar_j^2) X_j`` with pooled means.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
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
    split_arms,
)
from .moments import RatioMoments, _ArmStats, ratio_covariate_matrix

THETA_METHODS = ("pooled", "within", "per_arm")
_RANK_RTOL = 1e-10  # eigenvalue cut-off of the scaled normal equations
_CONST_RTOL = 1e-10  # a covariate whose centred sum of squares is below this share is constant
_ZERO_VAR_RTOL = 1e-13


class RankDeficientWarning(UserWarning):
    """The covariates' covariance matrix is singular; a least-squares theta is used."""


# ---------------------------------------------------------------------- helpers
def _solve_normal(gram: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-norm solution of ``gram @ theta = rhs`` (stacked), and a rank flag.

    The system is scaled to unit diagonal first (so the rank cut-off does not depend
    on the covariates' units), then solved with the pseudo-inverse. With a singular
    ``gram`` (e.g. a full set of dummies) any solution gives the same fitted
    adjustment; the pseudo-inverse picks the minimum-norm one.
    """
    d = np.sqrt(np.clip(np.diagonal(gram, axis1=-2, axis2=-1), 0.0, None))
    d = np.where(d > 0, d, 1.0)
    scaled = gram / (d[..., :, None] * d[..., None, :])
    eig = np.linalg.eigvalsh(scaled)
    deficient = eig[..., 0] <= _RANK_RTOL * np.maximum(eig[..., -1], 1e-300)
    pinv = np.linalg.pinv(scaled, rtol=_RANK_RTOL, hermitian=True)
    theta = (pinv @ (rhs / d)[..., None])[..., 0] / d
    return theta, deficient


def _warn_rank(deficient: np.ndarray, what: str) -> None:
    if np.any(deficient):
        count = int(np.sum(deficient))
        where = "" if np.ndim(deficient) == 0 else f" in {count} of {deficient.size} replicates"
        warnings.warn(
            f"the covariance matrix of the covariates{what} is rank-deficient{where}; "
            "theta is the minimum-norm least-squares solution (the adjustment is still "
            "well defined).",
            RankDeficientWarning,
            stacklevel=3,
        )


def _check_pairs(covariate_ratios: Any, k: int, x_name: str) -> list[tuple[int, int]]:
    if covariate_ratios is None:
        return []
    try:
        pairs = [tuple(int(j) for j in pair) for pair in covariate_ratios]
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"`covariate_ratios` must be a sequence of (numerator, denominator) column "
            f"index pairs; got {covariate_ratios!r}."
        ) from exc
    used: list[int] = []
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1] or not all(0 <= j < k for j in pair):
            raise ValueError(
                f"`covariate_ratios` entries must be pairs of two different column indices "
                f"of `{x_name}` in [0, {k}); got {pair}."
            )
        if set(pair) & set(used):
            raise ValueError(f"`covariate_ratios` uses a column twice; got {pairs}.")
        used.extend(pair)
    return pairs


def _cuped_core(
    st_t: _ArmStats,
    st_c: _ArmStats,
    *,
    pairs: list[tuple[int, int]],
    theta: str,
    alternative: str,
    confidence_level: float,
    ddof: float,
    distribution: str,
    degenerate: str,
    labels: dict[str, str | None],
    is_ratio: bool,
) -> TestResult:
    """CUPED comparison from the arms' centred moments of ``z = (V, M, X)``."""
    shape = np.broadcast_shapes(st_t.n.shape, st_c.n.shape)
    p = st_t.mean.shape[-1]
    k = p - 2
    problems = inf.Problems(shape, degenerate)

    def bc(st: _ArmStats) -> tuple[np.ndarray, ...]:
        return (
            np.broadcast_to(st.n, shape),
            np.broadcast_to(st.mean, shape + (p,)),
            np.broadcast_to(st.ss, shape + (p, p)),
            np.broadcast_to(st.raw, shape + (p,)),
        )

    nt, mt, sst, rawt = bc(st_t)
    nc, mc, ssc, rawc = bc(st_c)
    for a, n_a, m_a in (("t", nt, mt), ("c", nc, mc)):
        problems.add(n_a < 2, f"`{labels['y']}` has fewer than 2 units in the {ARM_NAMES[a]} arm")
        if is_ratio:
            problems.add(
                ~(m_a[..., 1] > 0),
                f"`{labels['den']}` has a total <= 0 in the {ARM_NAMES[a]} arm; "
                "the ratio is undefined",
            )
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        n = nt + nc
        mz = (nt[..., None] * mt + nc[..., None] * mc) / n[..., None]
        dt, dc = mt - mz, mc - mz
        ss_tot = (
            sst
            + ssc
            + nt[..., None, None] * dt[..., :, None] * dt[..., None, :]
            + nc[..., None, None] * dc[..., :, None] * dc[..., None, :]
        )
        sum_sq = nt[..., None] * rawt + nc[..., None] * rawc
        for j in range(k):
            const = ss_tot[..., 2 + j, 2 + j] <= _CONST_RTOL * sum_sq[..., 2 + j]
            value = float(np.ravel(mz[..., 2 + j])[0]) if const.any() else 0.0
            problems.add(
                const,
                f"`{labels['X']}` column {j} is constant (value {value:.6g}) across both arms; "
                "a constant covariate carries no information: drop it",
            )
        for j in range(k):
            within = (sst[..., 2 + j, 2 + j] <= _CONST_RTOL * nt * rawt[..., 2 + j]) & (
                ssc[..., 2 + j, 2 + j] <= _CONST_RTOL * nc * rawc[..., 2 + j]
            )
            problems.add(
                within,
                f"`{labels['X']}` column {j} is constant within each arm but differs between "
                "the arms: it is a function of the arm (e.g. the arm indicator) and would "
                "absorb the treatment effect; a covariate must not depend on treatment",
            )
        for _, j in pairs:
            problems.add(
                ~(mz[..., 2 + j] > 0),
                f"`{labels['X']}` column {j} is the denominator of a covariate ratio and must "
                "have a positive pooled mean",
            )
        # Covariate transform W = B X: linearised ratios first, then unpaired columns.
        B = ratio_covariate_matrix(mz[..., 2:], pairs, k)  # bad replicates are masked
        kk = B.shape[-2]

        def transform(m_a: np.ndarray, ss_a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # u = (L, W): L = R_a + (V - R_a M)/Mbar_a (docs/theory.md §1 linearisation), W = B X
            A = np.zeros(shape + (1 + kk, p))
            r_a = m_a[..., 0] / m_a[..., 1]
            A[..., 0, 0], A[..., 0, 1] = _ArmStats(n, m_a, ss_a, m_a).linear_coefficients()
            A[..., 1:, 2:] = B
            A = np.nan_to_num(A, nan=0.0, posinf=0.0, neginf=0.0)
            mean_u = np.concatenate([r_a[..., None], (B @ m_a[..., 2:, None])[..., 0]], axis=-1)
            ss_u = A @ ss_a @ np.swapaxes(A, -1, -2)
            return mean_u, 0.5 * (ss_u + np.swapaxes(ss_u, -1, -2))

        mu_t, su_t = transform(mt, sst)
        mu_c, su_c = transform(mc, ssc)
        mu = (nt[..., None] * mu_t + nc[..., None] * mu_c) / n[..., None]

        if theta == "pooled":
            et, ec = mu_t - mu, mu_c - mu
            gram = (
                su_t
                + su_c
                + nt[..., None, None] * et[..., :, None] * et[..., None, :]
                + nc[..., None, None] * ec[..., :, None] * ec[..., None, :]
            )
            th, deficient = _solve_normal(gram[..., 1:, 1:], gram[..., 1:, 0])
            th_t = th_c = th
        elif theta == "within":
            gram = su_t + su_c
            th, deficient = _solve_normal(gram[..., 1:, 1:], gram[..., 1:, 0])
            th_t = th_c = th
        else:
            th_t, def_t = _solve_normal(su_t[..., 1:, 1:], su_t[..., 1:, 0])
            th_c, def_c = _solve_normal(su_c[..., 1:, 1:], su_c[..., 1:, 0])
            deficient = def_t | def_c
            th = np.stack([th_c, th_t], axis=-2)
        _warn_rank(deficient & ~problems.bad, f" ({theta} theta)")

        def adjusted(n_a, mu_a, su_a, th_a):
            y_adj = mu_a[..., 0] - np.sum(th_a * (mu_a[..., 1:] - mu[..., 1:]), axis=-1)
            quad = (
                su_a[..., 0, 0]
                - 2.0 * np.sum(th_a * su_a[..., 1:, 0], axis=-1)
                + np.einsum("...i,...ij,...j->...", th_a, su_a[..., 1:, 1:], th_a)
            )
            quad = np.where(quad > _ZERO_VAR_RTOL * su_a[..., 0, 0], quad, 0.0)
            var_adj = quad / (n_a - ddof) / n_a
            var_raw = su_a[..., 0, 0] / (n_a - ddof) / n_a
            return y_adj, var_adj, var_raw

        yt, vt, v0t = adjusted(nt, mu_t, su_t, th_t)
        yc, vc, v0c = adjusted(nc, mu_c, su_c, th_c)
        problems.add(
            ~(vt + vc > 0),
            "the standard error is 0: the adjusted metric does not vary within either arm",
        )
        estimate = yt - yc
        se = np.sqrt(vt + vc)
        reduction = 1.0 - (vt + vc) / (v0t + v0c)
        df = inf.welch_df(vt, vc, nt, nc) if distribution == "t" else np.inf
        statistic = estimate / se
        q = inf.crit(confidence_level, df, alternative, distribution)
        low, high = inf.wald_interval(estimate, se, q, alternative)
        pvalue = inf.pvalue(statistic, df, alternative, distribution)
    fin = problems.finish
    kind = "ratio" if is_ratio else "mean"
    return TestResult(
        estimate=fin(estimate),
        std_error=fin(se),
        statistic=fin(statistic),
        pvalue=fin(pvalue),
        ci_low=fin(low),
        ci_high=fin(high),
        confidence_level=confidence_level,
        alternative=alternative,
        n_control=fin(nc),
        n_treatment=fin(nt),
        method=f"cuped/{theta}/{kind}/{distribution}",
        df=fin(df),
        control_value=fin(yc),
        treatment_value=fin(yt),
        theta=np.asarray(fin(th, th.shape[len(shape) :])),
        variance_reduction=fin(reduction),
    )


def _validate_options(theta, alternative, confidence_level, ddof, distribution):
    check_choice("theta", theta, THETA_METHODS)
    check_choice("alternative", alternative, ALTERNATIVES)
    confidence_level = check_open_unit("confidence_level", confidence_level)
    ddof = check_ddof(ddof)
    check_choice("distribution", distribution, DISTRIBUTIONS)
    return confidence_level, ddof


# ----------------------------------------------------------------- public API
def cuped_theta(y: npt.ArrayLike, X: npt.ArrayLike) -> float | npt.NDArray[np.float64]:
    """CUPED coefficient(s): the OLS slope of ``y`` on ``X`` with an intercept.

    Parameters
    ----------
    y : array_like, shape (n,)
        Metric per unit (for a ratio metric pass :func:`~estimators.linearize_ratio`).
    X : array_like, shape (n,) or (n, k)
        Covariates per unit (e.g. the pre-period metric); no constant column.

    Returns
    -------
    float or ndarray of shape (k,)
        ``theta = Sigma^+ Z`` with ``Sigma = cov(X)`` and ``Z_j = cov(y, X_j)``
        (docs/theory.md §3); a float when ``X`` is 1-dimensional.

    Warns
    -----
    RankDeficientWarning
        When ``cov(X)`` is singular (e.g. a full set of category dummies): theta is
        then the minimum-norm least-squares solution, and ``theta' (X - Xbar)`` is
        the same for every solution of the normal equations.

    Notes
    -----
    ``theta`` minimises ``var(y - theta' X)``; the variance-reduction factor is
    ``1 - R^2`` of that regression [1]_.

    References
    ----------
    .. [1] A. Deng, Y. Xu, R. Kohavi, T. Walker, "Improving the Sensitivity of
       Online Controlled Experiments by Utilizing Pre-Experiment Data", WSDM 2013.

    Examples
    --------
    >>> cuped_theta([1.0, 2.0, 4.0], [0.0, 1.0, 2.0])
    1.5
    """
    yv = as_float_array("y", y)
    xv = as_float_array("X", X, ndim=(1, 2))
    one_d = xv.ndim == 1
    x2 = xv[:, None] if one_d else xv
    cols = clean_units({"y": yv, "X": x2}, "raise")
    yv, x2 = cols["y"], cols["X"]
    check_min_units("y", yv.shape[0])
    z = np.column_stack([yv, x2])
    mean = z.mean(axis=0)
    dev = z - mean
    ss = dev.T @ dev
    for j in range(x2.shape[1]):
        if ss[1 + j, 1 + j] <= _CONST_RTOL * (x2[:, j] @ x2[:, j]):
            raise ValueError(
                f"`X` column {j} is constant (value {x2[0, j]:.6g}); a constant covariate "
                "carries no information: drop it."
            )
    theta, deficient = _solve_normal(ss[1:, 1:], ss[1:, 0])
    _warn_rank(deficient, "")
    return float(theta[0]) if one_d else theta


def cuped_test(
    y: npt.ArrayLike | RatioMoments,
    arm: npt.ArrayLike | RatioMoments,
    X: npt.ArrayLike | None = None,
    *,
    den: npt.ArrayLike | None = None,
    covariate_ratios: Sequence[tuple[int, int]] = (),
    theta: str = "pooled",
    alternative: str = "two-sided",
    confidence_level: float = 0.95,
    ddof: float = 1,
    distribution: str = "z",
    nan_policy: str = "raise",
) -> TestResult:
    """Treatment effect on a mean or ratio metric, adjusted by CUPED (docs/theory.md §3).

    Parameters
    ----------
    y : array_like, shape (n,)
        Metric per unit; the numerator V_i when ``den`` is given. Alternatively
        ``cuped_test(moments_t, moments_c, ...)`` with two :class:`RatioMoments`
        (see :func:`cuped_test_from_moments`).
    arm : array_like, shape (n,)
        1 (or True) for treatment, 0 (or False) for control.
    X : array_like, shape (n,) or (n, k)
        Covariates per unit, unaffected by treatment (pre-period values, or
        dummies). Use :func:`fill_missing_covariates` for units without pre-period data.
    den : array_like, shape (n,), optional
        Denominator M_i of a ratio metric ``sum V / sum M`` (counts, >= 0).
    covariate_ratios : sequence of (int, int), optional
        Pairs ``(i, j)`` of columns of ``X``: the covariate ``X_i / X_j`` (a ratio of
        pooled means, e.g. pre-period CTR) replaces the two columns, linearised with
        pooled means. Covariates are ordered ratios first, then the unpaired columns.
    theta : {"pooled", "within", "per_arm"}, default "pooled"
        How the coefficients are estimated (see the module docstring).
    alternative : {"two-sided", "less", "greater"}, default "two-sided"
        Alternative hypothesis.
    confidence_level : float, default 0.95
        Confidence level of the interval.
    ddof : float, default 1
        Delta degrees of freedom of the within-arm variances.
    distribution : {"z", "t"}, default "z"
        Normal or Welch t (Satterthwaite degrees of freedom).
    nan_policy : {"raise", "omit"}, default "raise"
        ``"omit"`` drops every unit with a NaN in ``y``, ``arm``, ``den`` or ``X``.

    Returns
    -------
    TestResult
        ``estimate`` is the difference of the arms' adjusted means; ``theta`` holds
        the coefficients (``(k,)``, or ``(2, k)`` control row then treatment row for
        ``"per_arm"``); ``variance_reduction`` is ``1 - Var(adjusted) / Var(plain)``
        of the estimate.

    Warns
    -----
    RankDeficientWarning
        When the covariates' covariance matrix is singular.

    Notes
    -----
    ``Y_cv = Y - theta' (X - Xbar)``, ``estimate = Ybar_cv,T - Ybar_cv,C`` and
    ``std_error = sqrt(s_T^2/n_T + s_C^2/n_C)`` with ``s_a^2`` the variance of
    ``Y_cv`` within arm ``a`` [1]_. This s.e. treats theta as known; it equals the
    HC0 s.e. of the OLS (``"within"``) or Lin (``"per_arm"``) coefficient with
    ``ddof=0`` when the arms' covariate means coincide, and differs by O(1/n)
    otherwise.

    References
    ----------
    .. [1] A. Deng, Y. Xu, R. Kohavi, T. Walker, "Improving the Sensitivity of
       Online Controlled Experiments by Utilizing Pre-Experiment Data", WSDM 2013.
    .. [2] W. Lin, "Agnostic notes on regression adjustments to experimental data:
       reexamining Freedman's critique", Ann. Appl. Stat. 7 (2013) 295-318.

    Examples
    --------
    >>> res = cuped_test([3.0, 5.0, 4.0, 6.0, 2.0, 3.0], [1, 1, 1, 0, 0, 0],
    ...                  [1.0, 3.0, 2.0, 4.0, 1.0, 2.0])
    >>> round(res.estimate, 4), round(float(res.theta[0]), 4)
    (0.7317, 1.1951)
    """
    if isinstance(y, RatioMoments) or isinstance(arm, RatioMoments):
        if not (isinstance(y, RatioMoments) and isinstance(arm, RatioMoments)):
            raise TypeError("pass either per-unit arrays or two RatioMoments (treatment, control).")
        if X is not None or den is not None:
            raise TypeError("with RatioMoments pass only `moments_t` and `moments_c`.")
        return cuped_test_from_moments(
            y,
            arm,
            covariate_ratios=covariate_ratios,
            theta=theta,
            alternative=alternative,
            confidence_level=confidence_level,
            ddof=ddof,
            distribution=distribution,
        )
    confidence_level, ddof = _validate_options(
        theta, alternative, confidence_level, ddof, distribution
    )
    check_choice("nan_policy", nan_policy, NAN_POLICIES)
    if X is None:
        raise TypeError("`X` is required: CUPED needs at least one covariate.")
    cols: dict[str, np.ndarray] = {"y": as_float_array("y", y)}
    arm_arr = np.asarray(arm)
    if arm_arr.dtype == np.bool_ or np.issubdtype(arm_arr.dtype, np.number):
        cols["arm"] = as_float_array("arm", arm_arr)
    else:
        raise TypeError(f"`arm` must be 0/1 or boolean; got dtype {arm_arr.dtype}.")
    if den is not None:
        cols["den"] = as_float_array("den", den)
    xv = as_float_array("X", X, ndim=(1, 2))
    cols["X"] = xv[:, None] if xv.ndim == 1 else xv
    cols = clean_units(cols, nan_policy)
    treated = split_arms(cols["arm"], cols["y"].shape[0])
    v = cols["y"]
    if den is not None:
        m = cols["den"]
        check_nonnegative("den", m)
    else:
        m = np.ones_like(v)
    x = cols["X"]
    pairs = _check_pairs(covariate_ratios, x.shape[1], "X")
    z = np.column_stack([v, m, x])
    stats = {}
    for a, mask in (("t", treated), ("c", ~treated)):
        check_min_units("y", int(mask.sum()), arm=a)
        if den is not None and m[mask].sum() == 0:
            raise ValueError(f"`den` sums to 0 in the {ARM_NAMES[a]} arm; the ratio is undefined.")
        stats[a] = _ArmStats.from_units(z[mask])
    labels = {"y": "y", "den": "den", "X": "X"}
    return _cuped_core(
        stats["t"],
        stats["c"],
        pairs=pairs,
        theta=theta,
        alternative=alternative,
        confidence_level=confidence_level,
        ddof=ddof,
        distribution=distribution,
        degenerate="raise",
        labels=labels,
        is_ratio=den is not None,
    )


def cuped_test_from_moments(
    moments_t: RatioMoments,
    moments_c: RatioMoments,
    *,
    covariate_ratios: Sequence[tuple[int, int]] = (),
    theta: str = "pooled",
    alternative: str = "two-sided",
    confidence_level: float = 0.95,
    ddof: float = 1,
    distribution: str = "z",
    degenerate: str = "raise",
) -> TestResult:
    """:func:`cuped_test` from per-arm sufficient statistics, vectorised over replicates.

    Parameters
    ----------
    moments_t, moments_c : RatioMoments
        Treatment and control moments with covariates (``sum_x`` etc.). A mean
        metric has ``M = 1`` (:meth:`RatioMoments.from_mean_sums`); otherwise the
        metric is the ratio ``sum V / sum M``.
    covariate_ratios : sequence of (int, int), optional
        Covariate ratios as in :func:`cuped_test`; ``[(0, 1)]`` with
        :meth:`RatioMoments.from_simulator` is the pre-period ratio metric.
    theta : {"pooled", "within", "per_arm"}, default "pooled"
        How the coefficients are estimated.
    alternative : {"two-sided", "less", "greater"}, default "two-sided"
        Alternative hypothesis.
    confidence_level : float, default 0.95
        Confidence level of the interval.
    ddof : float, default 1
        Delta degrees of freedom of the within-arm variances.
    distribution : {"z", "t"}, default "z"
        Normal or Welch t.
    degenerate : {"raise", "nan"}, default "raise"
        Invalid replicates (fewer than 2 units, zero total denominator, a constant
        covariate, zero s.e.) raise, or give NaN in their cells when ``"nan"``.

    Returns
    -------
    TestResult
        Same as :func:`cuped_test` on the units the moments summarise; the mean
        metric is detected by ``sum_m == n`` and ``sum_mm == n`` in both arms.
    """
    confidence_level, ddof = _validate_options(
        theta, alternative, confidence_level, ddof, distribution
    )
    check_choice("degenerate", degenerate, DEGENERATE_POLICIES)
    for name, m in (("moments_t", moments_t), ("moments_c", moments_c)):
        if not isinstance(m, RatioMoments):
            raise TypeError(f"`{name}` must be a RatioMoments; got {type(m).__name__}.")
        if m.k == 0:
            raise ValueError(f"`{name}` has no covariates (sum_x is None); CUPED needs some.")
        if (m.sum_m < 0).any():
            raise ValueError(f"`{name}.sum_m` holds counts and must be >= 0; got a negative sum.")
    if moments_t.k != moments_c.k:
        raise ValueError(
            f"`moments_t` and `moments_c` must have the same covariates; got {moments_t.k} "
            f"and {moments_c.k}."
        )
    pairs = _check_pairs(covariate_ratios, moments_t.k, "moments.sum_x")
    is_mean = all(
        np.array_equal(np.broadcast_to(m.sum_m, m.n.shape), m.n) and np.array_equal(m.sum_mm, m.n)
        for m in (moments_t, moments_c)
    )
    labels = {"y": "moments.n", "den": "moments.sum_m", "X": "moments.sum_x"}
    return _cuped_core(
        moments_t._stats(),
        moments_c._stats(),
        pairs=pairs,
        theta=theta,
        alternative=alternative,
        confidence_level=confidence_level,
        ddof=ddof,
        distribution=distribution,
        degenerate=degenerate,
        labels=labels,
        is_ratio=not is_mean,
    )


def fill_missing_covariates(X: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Fill missing covariates and append a presence indicator per affected column.

    Parameters
    ----------
    X : array_like, shape (n,) or (n, k)
        Covariates with NaN where a unit has no pre-period data (new users).

    Returns
    -------
    ndarray, shape (n, k + k_missing)
        ``X`` with each NaN replaced by its column's observed mean, followed by one
        column per column that had NaN: 1 where the value was observed, 0 where it
        was filled. Columns without NaN get no indicator (it would be constant).

    Notes
    -----
    With the indicator in the regression, the CUPED adjustment does not depend on
    the fill value (the filled column and the indicator span the same space for
    any fill), so new users are adjusted by their own arm-independent mean [1]_.

    References
    ----------
    .. [1] A. Deng, Y. Xu, R. Kohavi, T. Walker, "Improving the Sensitivity of
       Online Controlled Experiments by Utilizing Pre-Experiment Data", WSDM 2013.

    Examples
    --------
    >>> fill_missing_covariates([1.0, float("nan"), 3.0]).tolist()
    [[1.0, 1.0], [2.0, 0.0], [3.0, 1.0]]
    """
    xv = as_float_array("X", X, ndim=(1, 2))
    x2 = (xv[:, None] if xv.ndim == 1 else xv).copy()
    if np.isinf(x2).any():
        raise ValueError("`X` must not contain inf; use NaN for missing values.")
    missing = np.isnan(x2)
    indicators = []
    for j in range(x2.shape[1]):
        if missing[:, j].all():
            raise ValueError(f"`X` column {j} has no observed value; cannot fill it.")
        if missing[:, j].any():
            x2[missing[:, j], j] = x2[~missing[:, j], j].mean()
            indicators.append((~missing[:, j]).astype(np.float64))
    if indicators:
        x2 = np.column_stack([x2, *indicators])
    return x2
