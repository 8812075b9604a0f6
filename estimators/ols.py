"""Regression cross-checks of the estimators with statsmodels OLS (docs/theory.md §1, §3)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _inference as inf
from ._result import TestResult
from ._validate import (
    ALTERNATIVES,
    DISTRIBUTIONS,
    NAN_POLICIES,
    as_float_array,
    check_choice,
    check_min_units,
    check_open_unit,
    clean_units,
    split_arms,
)

COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3", "cluster")


def ols_test(
    y: npt.ArrayLike,
    arm: npt.ArrayLike,
    X: npt.ArrayLike | None = None,
    cluster: npt.ArrayLike | None = None,
    interacted: bool = False,
    *,
    cov_type: str | None = None,
    use_correction: bool = True,
    alternative: str = "two-sided",
    confidence_level: float = 0.95,
    distribution: str = "z",
    nan_policy: str = "raise",
) -> TestResult:
    """Treatment coefficient of OLS ``y ~ 1 + arm (+ X) (+ arm:Xc)`` via statsmodels.

    Parameters
    ----------
    y : array_like, shape (n,)
        Outcome per row (a unit, or a session when ``cluster`` groups rows by user).
    arm : array_like, shape (n,)
        1 (or True) for treatment, 0 (or False) for control.
    X : array_like, shape (n,) or (n, k), optional
        Covariates (main effects).
    cluster : array_like, shape (n,), optional
        Cluster (randomisation unit) label of each row; selects the cluster-robust
        covariance ``cov_type="cluster"`` with ``groups=cluster``.
    interacted : bool, default False
        Lin's (2013) regression: add ``arm * (X - Xbar)`` with ``Xbar`` the pooled
        covariate mean, so the arm coefficient is the average treatment effect.
    cov_type : {"nonrobust", "HC0", "HC1", "HC2", "HC3", "cluster"}, optional
        Covariance of the coefficients. Default: ``"cluster"`` when ``cluster`` is
        given, otherwise ``"HC2"`` (whose s.e. of a difference in means equals the
        Welch s.e. exactly).
    use_correction : bool, default True
        Cluster-robust only: statsmodels' small-sample factor
        ``G/(G-1) * (N-1)/(N-K)`` (``True``) or none (``False``, which equals the
        delta method with ``ddof=0``).
    alternative : {"two-sided", "less", "greater"}, default "two-sided"
        Alternative hypothesis.
    confidence_level : float, default 0.95
        Confidence level of the interval.
    distribution : {"z", "t"}, default "z"
        Normal, or Student t with statsmodels' degrees of freedom (``G - 1`` for
        clusters, the residual df otherwise).
    nan_policy : {"raise", "omit"}, default "raise"
        ``"omit"`` drops rows with a NaN in any column.

    Returns
    -------
    TestResult
        ``estimate`` is the arm coefficient; ``theta`` the covariates' main-effect
        coefficients (for ``interacted=True`` the interaction coefficients follow).

    Notes
    -----
    By Frisch-Waugh-Lovell the arm coefficient of ``y ~ 1 + arm + X`` equals
    CUPED with ``theta="within"``, and the interacted one CUPED with
    ``theta="per_arm"`` [1]_. On session rows, ``y = click`` clustered by user gives
    the delta-method s.e. of the CTR difference (docs/theory.md §1) [2]_.

    References
    ----------
    .. [1] W. Lin, "Agnostic notes on regression adjustments to experimental data:
       reexamining Freedman's critique", Ann. Appl. Stat. 7 (2013) 295-318.
    .. [2] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric
       Analytics: A Practical Guide with Novel Ideas", KDD 2018.

    Examples
    --------
    >>> res = ols_test([3.0, 5.0, 4.0, 1.0, 2.0, 3.0], [1, 1, 1, 0, 0, 0])
    >>> round(res.estimate, 4), round(res.std_error, 4)
    (2.0, 0.8165)
    """
    import statsmodels.api as sm  # lazy: statsmodels is only needed here

    check_choice("alternative", alternative, ALTERNATIVES)
    confidence_level = check_open_unit("confidence_level", confidence_level)
    check_choice("distribution", distribution, DISTRIBUTIONS)
    check_choice("nan_policy", nan_policy, NAN_POLICIES)
    if not isinstance(interacted, bool):
        raise TypeError(f"`interacted` must be a bool; got {type(interacted).__name__}.")
    if cov_type is None:
        cov_type = "cluster" if cluster is not None else "HC2"
    check_choice("cov_type", cov_type, COV_TYPES)
    if (cov_type == "cluster") != (cluster is not None):
        raise ValueError(
            f"`cov_type` 'cluster' needs `cluster` and vice versa; got cov_type={cov_type!r} "
            f"and cluster {'given' if cluster is not None else 'None'}."
        )
    cols: dict[str, np.ndarray] = {"y": as_float_array("y", y), "arm": as_float_array("arm", arm)}
    if X is not None:
        xv = as_float_array("X", X, ndim=(1, 2))
        cols["X"] = xv[:, None] if xv.ndim == 1 else xv
    if interacted and X is None:
        raise ValueError("`interacted=True` needs covariates `X`.")
    if cluster is not None:
        labels = np.asarray(cluster)
        if labels.dtype.kind in "fc" and np.isnan(labels).any():
            first = int(np.flatnonzero(np.isnan(labels))[0])
            raise ValueError(
                f"`cluster` contains NaN (first at row {first}); every row needs a cluster "
                "label (NaN labels would silently form one cluster)."
            )
        if labels.dtype == object and any(
            lab is None or (isinstance(lab, float) and np.isnan(lab)) for lab in labels.ravel()
        ):
            raise ValueError("`cluster` contains missing labels (None or NaN).")
        codes = np.unique(labels, return_inverse=True)[1].reshape(-1)
        cols["cluster"] = codes.astype(np.float64)
    cols = clean_units(cols, nan_policy)
    treated = split_arms(cols["arm"], cols["y"].shape[0]).astype(np.float64)
    check_min_units("y", int(treated.sum()), arm="t")
    check_min_units("y", int((1 - treated).sum()), arm="c")
    parts = [np.ones_like(treated), treated]
    k = 0
    if X is not None:
        x = cols["X"]
        k = x.shape[1]
        for j in range(k):
            if np.ptp(x[:, j]) == 0:
                raise ValueError(
                    f"`X` column {j} is constant (value {x[0, j]:.6g}); drop it (the intercept "
                    "is already in the model)."
                )
        parts.append(x)
        if interacted:
            parts.append(treated[:, None] * (x - x.mean(axis=0)))
    design = np.column_stack(parts)
    kw: dict[str, Any] = {"cov_type": cov_type, "use_t": distribution == "t"}
    if cov_type == "cluster":
        kw["cov_kwds"] = {
            "groups": cols["cluster"].astype(np.int64),
            "use_correction": use_correction,
        }
    fit = sm.OLS(cols["y"], design).fit(**kw)
    estimate = float(fit.params[1])
    se = float(fit.bse[1])
    if not se > 0:
        raise ValueError("the standard error is 0: `y` is fitted exactly; the test is undefined.")
    df = (
        float(fit.df_resid_inference)
        if distribution == "t" and cov_type == "cluster"
        else (float(fit.df_resid) if distribution == "t" else np.inf)
    )
    statistic = estimate / se
    q = inf.crit(confidence_level, df, alternative, distribution)
    low, high = inf.wald_interval(estimate, se, q, alternative)
    pvalue = inf.pvalue(statistic, df, alternative, distribution)
    theta = np.asarray(fit.params[2:], dtype=np.float64) if k else None
    suffix = "/interacted" if interacted else ""
    return TestResult(
        estimate=estimate,
        std_error=se,
        statistic=float(statistic),
        pvalue=float(pvalue),
        ci_low=float(low),
        ci_high=float(high),
        confidence_level=confidence_level,
        alternative=alternative,
        n_control=float((1 - treated).sum())
        if cluster is None
        else float(len(np.unique(cols["cluster"][treated == 0]))),
        n_treatment=float(treated.sum())
        if cluster is None
        else float(len(np.unique(cols["cluster"][treated == 1]))),
        method=f"ols/{cov_type}{suffix}/{distribution}",
        df=df,
        theta=theta,
    )
