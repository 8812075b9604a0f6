"""Simulated data of the CUPED checks: query-metric moments, shrinkage q, pilots.

:func:`query_moments` keeps, per replicate and arm, the moments of the docs/theory.md
§3 query metric and of every covariate column a CUPED cell uses (:class:`QueryMoments`);
:func:`shrinkage_q` is the exact factor by which pooled-theta CUPED shrinks the OLS
estimate; :func:`pilot_variance_ratio` predicts Var(CUPED) / Var(plain) from a large
independent pilot (Deng, Xu, Kohavi, Walker, WSDM 2013).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

import sim
from estimators import RatioMoments
from sim._seed import child_sequences
from validation.mc import PILOT_BATCHES
from validation.shipped import Shipped

ols_test = Shipped("estimators.ols", "ols_test")
ratio_covariate_matrix = Shipped("estimators.moments", "ratio_covariate_matrix")

_POST_NOISE_SD = 5.0  # s.d. of the noise of the post-treatment control covariate
_N_OLS = 100  # replicates of the query scenario also fitted with statsmodels

# Columns of the query-data covariate matrix built per replicate (see _query_columns).
_COL_PRE, _COL_NOISE, _COL_POST = 0, 1, 2
_COL_DUMMY0 = 3  # dummies of first_visit_dow = -1, 0, 1, ..., 6 (8 columns)
_DOW_LEVELS = np.arange(-1, 7)
_DESIGNS: dict[str, list[int]] = {
    "pre": [_COL_PRE],
    "many": [_COL_PRE, _COL_NOISE, *range(_COL_DUMMY0 + 1, _COL_DUMMY0 + 8)],
    "singular": [_COL_PRE, *range(_COL_DUMMY0, _COL_DUMMY0 + 8)],
    "drop-one": [_COL_PRE, *range(_COL_DUMMY0 + 1, _COL_DUMMY0 + 8)],
    "post": [_COL_POST],
}


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True, slots=True)
class QueryMoments:
    """Per-replicate, per-arm moments of the query metric and every covariate column.

    Attributes
    ----------
    n, sum_y, sum_yy : ndarray, shape (R, 2)
        Users, sum of Y and of Y^2 per replicate and arm (column 0 control).
    sum_x : ndarray, shape (R, 2, 11)
        Covariate sums; columns: pre-period queries, N(0, 1) noise, the
        post-treatment control ``Y + N(0, 5^2)``, then the dummies of
        ``first_visit_dow`` = -1 (never visited), 0, ..., 6.
    sum_xx : ndarray, shape (R, 2, 11, 11)
        Cross-products of the covariates.
    sum_yx : ndarray, shape (R, 2, 11)
        Sums of Y times each covariate.
    truth : ndarray, shape (R,)
        Exact average treatment effect of each replicate (given its day effects).
    visitors : QueryMoments or None
        The same over users who visited at least once (for the query scenario).
    ols : ndarray, shape (m, 2)
        statsmodels OLS ``Y ~ 1 + arm + X`` (estimate, HC2 s.e.) on the first ``m``
        replicates, ``X`` = the ``"drop-one"`` design; empty when not requested.
    scenario : dict
        JSON-serialisable description.
    """

    n: npt.NDArray[np.float64]
    sum_y: npt.NDArray[np.float64]
    sum_yy: npt.NDArray[np.float64]
    sum_x: npt.NDArray[np.float64]
    sum_xx: npt.NDArray[np.float64]
    sum_yx: npt.NDArray[np.float64]
    truth: npt.NDArray[np.float64]
    visitors: QueryMoments | None
    ols: npt.NDArray[np.float64]
    scenario: dict[str, Any]

    def arm(self, arm: int, columns: list[int] | None) -> RatioMoments:
        """Moments of arm ``arm`` (0 control) with the covariate ``columns`` (None: none)."""
        n = self.n[:, arm]
        if columns is None:
            return RatioMoments.from_mean_sums(n, self.sum_y[:, arm], self.sum_yy[:, arm])
        idx = np.asarray(columns)
        return RatioMoments.from_mean_sums(
            n,
            self.sum_y[:, arm],
            self.sum_yy[:, arm],
            sum_x=self.sum_x[:, arm][:, idx],
            sum_xx=self.sum_xx[:, arm][:, idx][:, :, idx],
            sum_yx=self.sum_yx[:, arm][:, idx],
        )


def _query_columns(data: Any, gen: np.random.Generator) -> npt.NDArray[np.float64]:
    """Covariate matrix of one replicate (columns as in :class:`QueryMoments`)."""
    y = data.queries.astype(np.float64)
    n = y.size
    x = np.empty((n, _COL_DUMMY0 + 8))
    x[:, _COL_PRE] = data.pre_queries
    x[:, _COL_NOISE] = gen.standard_normal(n)
    x[:, _COL_POST] = y + _POST_NOISE_SD * gen.standard_normal(n)
    x[:, _COL_DUMMY0:] = data.first_visit_dow[:, None] == _DOW_LEVELS
    return x


def _accumulate(out: dict[str, np.ndarray], r: int, y, x, arm, mask=None) -> None:
    for a in (0, 1):
        sel = arm == a if mask is None else (arm == a) & mask
        ya, xa = y[sel], x[sel]
        out["n"][r, a] = ya.size
        out["sum_y"][r, a] = ya.sum()
        out["sum_yy"][r, a] = ya @ ya
        out["sum_x"][r, a] = xa.sum(0)
        out["sum_xx"][r, a] = xa.T @ xa
        out["sum_yx"][r, a] = ya @ xa


def _empty_sums(r: int, k: int) -> dict[str, np.ndarray]:
    return {
        "n": np.empty((r, 2)),
        "sum_y": np.empty((r, 2)),
        "sum_yy": np.empty((r, 2)),
        "sum_x": np.empty((r, 2, k)),
        "sum_xx": np.empty((r, 2, k, k)),
        "sum_yx": np.empty((r, 2, k)),
    }


def query_moments(
    scenario: sim.QueryScenario,
    n_users: tuple[int, int],
    n_replicates: int,
    ss: np.random.SeedSequence,
    *,
    visitors: bool = False,
    n_ols: int = 0,
    progress: Any = None,
) -> QueryMoments:
    """Simulate ``n_replicates`` query experiments and keep per-arm moments.

    Parameters
    ----------
    scenario : sim.QueryScenario
        The docs/theory.md §3 scenario.
    n_users : tuple of int
        ``(n_control, n_treatment)``.
    n_replicates : int
        Experiments.
    ss : numpy.random.SeedSequence
        Root seed: replicate r is ``sim.simulate_queries(scenario, n_users,
        rng=child_r)`` of its first child; the noise columns use the second child.
    visitors : bool
        Also keep the moments over users who visited at least once.
    n_ols : int
        Fit statsmodels OLS on the first ``n_ols`` replicates (a cross-check).
    progress : callable or None
        ``progress(done, total)``.

    Returns
    -------
    QueryMoments
    """
    ss_sim, ss_noise = child_sequences(ss, 2)
    kids = child_sequences(ss_sim, n_replicates)
    noise_kids = child_sequences(ss_noise, n_replicates)
    k = _COL_DUMMY0 + 8
    sums = _empty_sums(n_replicates, k)
    vis = _empty_sums(n_replicates, k) if visitors else None
    truth = np.empty(n_replicates)
    n_ols = min(n_ols, n_replicates)
    ols = np.empty((n_ols, 2))
    for r in range(n_replicates):
        data = sim.simulate_queries(scenario, n_users, rng=kids[r])
        y = data.queries.astype(np.float64)
        x = _query_columns(data, np.random.default_rng(noise_kids[r]))
        _accumulate(sums, r, y, x, data.arm)
        if vis is not None:
            _accumulate(vis, r, y, x, data.arm, data.visit_days > 0)
        truth[r] = data.true_effect_given_days
        if r < n_ols:
            res = ols_test(y, data.arm, x[:, _DESIGNS["drop-one"]])
            ols[r] = res.estimate, res.std_error
        if progress is not None and (r + 1) % 500 == 0:
            progress(r + 1, n_replicates)
    desc = {**scenario.to_dict(), "n_control": n_users[0], "n_treatment": n_users[1]}
    vis_m = None
    if vis is not None:
        vis_m = QueryMoments(**vis, truth=truth, visitors=None, ols=ols[:0], scenario=desc)
    return QueryMoments(**sums, truth=truth, visitors=vis_m, ols=ols, scenario=desc)


def shrinkage_q(
    moments_t: RatioMoments, moments_c: RatioMoments, pairs: tuple[tuple[int, int], ...] = ()
) -> npt.NDArray[np.float64]:
    """``q = c d' S_w^+ d`` per replicate: pooled CUPED = OLS estimate / (1 + q) exactly.

    ``c = n_T n_C / n``, ``d`` the treatment-minus-control difference of the
    (transformed) covariate means and ``S_w`` the sum of the arms' within-arm sums of
    squares. With ``pairs`` the covariates are the linearised ratios of
    :func:`estimators.cuped_test` (pooled means) followed by the unpaired columns.
    Depends on the covariates and the assignment only, not on the metric.
    """
    nt, nc = moments_t.n, moments_c.n
    n = nt + nc
    mx_t = moments_t.sum_x / nt[:, None]
    mx_c = moments_c.sum_x / nc[:, None]
    ss_t = moments_t.sum_xx - nt[:, None, None] * mx_t[:, :, None] * mx_t[:, None, :]
    ss_c = moments_c.sum_xx - nc[:, None, None] * mx_c[:, :, None] * mx_c[:, None, :]
    k = mx_t.shape[-1]
    pooled = (moments_t.sum_x + moments_c.sum_x) / n[:, None]
    B = ratio_covariate_matrix(pooled, list(pairs), k)  # the shipped transform
    d = (B @ (mx_t - mx_c)[:, :, None])[:, :, 0]
    sw = B @ (ss_t + ss_c) @ np.swapaxes(B, 1, 2)
    sw_pinv = np.linalg.pinv(sw, rtol=1e-10, hermitian=True)
    return nt * nc / n * np.einsum("ri,rij,rj->r", d, sw_pinv, d)


def pilot_variance_ratio(
    y_by_arm: tuple[np.ndarray, np.ndarray],
    x_by_arm: tuple[np.ndarray, np.ndarray],
    n_per_arm: tuple[int, int],
    *,
    n_batches: int = PILOT_BATCHES,
) -> tuple[float, float, float]:
    """Asymptotic Var(CUPED) / Var(plain) of a scenario from a large pilot, with its s.e.

    Parameters
    ----------
    y_by_arm, x_by_arm : tuple of ndarray
        Control then treatment: the metric (already linearised for a ratio metric)
        and the covariates (``(N, k)``) of a large independent sample.
    n_per_arm : tuple of int
        ``(n_control, n_treatment)`` of the experiment being predicted (weights).
    n_batches : int
        Batches for the batch-means standard error.

    Returns
    -------
    (ratio, std_error, r2)
        ``ratio = sum_a var_a(Y - theta' X) / n_a / sum_a var_a(Y) / n_a`` with
        ``theta`` the population pooled slope ``(sum_a pi_a S_a,XX)^+ sum_a pi_a
        S_a,XY`` (the limit of the pooled CUPED theta; the arms' covariate means are
        equal), i.e. ``1 - R^2`` when the arms share their covariances; its
        batch-means standard error; and the control arm's R^2.
    """

    # This is the truth side of the variance-reduction cells: the population optimum,
    # computed here from covariances and never with the shipped CUPED (a wrong theta in
    # estimators.cuped would otherwise move the prediction along with the figure).
    def ratio_of(ys, xs):
        covs = [np.cov(np.column_stack([y, x]), rowvar=False) for y, x in zip(ys, xs, strict=True)]
        pi = np.asarray(n_per_arm, dtype=np.float64) / sum(n_per_arm)
        sxx = sum(p * c[1:, 1:] for p, c in zip(pi, covs, strict=True))
        sxy = sum(p * c[1:, 0] for p, c in zip(pi, covs, strict=True))
        theta = np.linalg.pinv(sxx, rtol=1e-10, hermitian=True) @ sxy
        num = den = 0.0
        for c, n_a in zip(covs, n_per_arm, strict=True):
            resid = c[0, 0] - 2 * theta @ c[1:, 0] + theta @ c[1:, 1:] @ theta
            num += resid / n_a
            den += c[0, 0] / n_a
        c0 = covs[0]
        th0 = np.linalg.pinv(c0[1:, 1:], rtol=1e-10, hermitian=True) @ c0[1:, 0]
        r2 = float(th0 @ c0[1:, 0] / c0[0, 0])
        return float(num / den), r2

    ratio, r2 = ratio_of(y_by_arm, x_by_arm)
    parts = []
    for b in range(n_batches):
        ys, xs = [], []
        for y, x in zip(y_by_arm, x_by_arm, strict=True):
            sl = slice(b * y.size // n_batches, (b + 1) * y.size // n_batches)
            ys.append(y[sl])
            xs.append(x[sl])
        parts.append(ratio_of(ys, xs)[0])
    se = float(np.std(parts, ddof=1) / math.sqrt(n_batches))
    return ratio, se, r2


def _post_treatment_ratio_moments(mom: Any, arm: int) -> RatioMoments:
    """Ratio-metric moments whose covariate is the experiment-period clicks V (post-treatment)."""
    m = RatioMoments.from_simulator(mom, arm, covariates=False)
    return RatioMoments(
        n=m.n,
        sum_v=m.sum_v,
        sum_m=m.sum_m,
        sum_vv=m.sum_vv,
        sum_mm=m.sum_mm,
        sum_vm=m.sum_vm,
        sum_x=m.sum_v[:, None],
        sum_xx=m.sum_vv[:, None, None],
        sum_vx=m.sum_vv[:, None],
        sum_mx=m.sum_vm[:, None],
    )
