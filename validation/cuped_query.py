"""The ``cuped-query`` check: the docs/theory.md §3 query scenario over many draws.

The per-experiment s.e. ratio CUPED / plain as a distribution (published single draw
0.84), the coverage of the CUPED interval for the exact true effect, the pooled-theta
shrinkage bias and the identity CUPED x (1 + q) = OLS (Deng, Xu, Kohavi, Walker,
WSDM 2013).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import sim
from validation.ab_mc import coverage
from validation.core import CheckResult, NegativeControl, RunContext, register
from validation.cuped_cells import _adjusted_arm_vars, _arr, _bias_result, _Cell, _cover, _cuped
from validation.cuped_data import _COL_DUMMY0, _COL_PRE, _DESIGNS, query_moments, shrinkage_q
from validation.shipped import Shipped

ratio_test_from_moments = Shipped("estimators.ratio", "ratio_test_from_moments")

#: Published single draw of the docs/theory.md §3 query scenario (1,000 users).
PUBLISHED_QUERY = {
    "se_ratio": 0.84,
    "ttest": (5.01, 1.05),
    "cuped": (4.46, 0.88),
    "ols": (4.49, 0.88),
}
_QUERY_USERS = (500, 500)
_N_OLS = 100  # replicates of the query scenario also fitted with statsmodels


def plot_query(results: list[CheckResult]):
    """Histogram of the query scenario's s.e. ratio CUPED/plain, published 0.84 marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.subplots()
    hist = next((r.extra["histogram"] for r in results if "histogram" in r.extra), None)
    if hist is not None:
        edges = np.asarray(hist["edges"])
        for coding, counts in hist["counts"].items():
            ax.stairs(counts, edges, label=coding, fill=coding == hist["main"], alpha=0.6)
    ax.axvline(PUBLISHED_QUERY["se_ratio"], color="r", lw=1.2, label="published single draw 0.84")
    ax.set_xlabel("s.e. ratio CUPED / plain, per experiment (1,000 users)")
    ax.set_ylabel("experiments")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _se_ratio_consistency(
    ratio: np.ndarray, err_cuped: np.ndarray, err_plain: np.ndarray, z: float
) -> tuple[float, float, float]:
    """(mean ratio, sd(err_cuped)/sd(err_plain), z s.e. of their difference).

    The s.e. linearises ``mean(r) - sqrt(mean(A)/mean(B))`` with A, B the squared
    centred errors, jointly over the replicates (docs/theory.md §1 linearisation).
    """
    r = ratio.size
    a = (err_cuped - err_cuped.mean()) ** 2 * (r / (r - 1))
    b = (err_plain - err_plain.mean()) ** 2 * (r / (r - 1))
    rho = math.sqrt(a.mean() / b.mean())
    lin = ratio - 0.5 * rho * (a / a.mean() - b / b.mean())
    return float(ratio.mean()), rho, z * float(np.std(lin, ddof=1) / math.sqrt(r))


_HIST_EDGES = np.linspace(0.6, 1.0, 81)


@register(
    "cuped-query",
    claim=(
        "docs/theory.md §3 query scenario (1,000 users, random day effects; covariates pre-period "
        "queries and first-visit-day dummies): the per-experiment s.e. ratio CUPED/plain "
        "averages the true ratio of the estimates' s.d.s; the CUPED CI covers the exact "
        "true effect at 0.95; CUPED's mean error is the pooled-theta shrinkage; and CUPED "
        "equals the OLS estimate / (1 + q) exactly (z = 4 Monte Carlo s.e.)."
    ),
    reference="Deng, Xu, Kohavi, Walker (WSDM 2013); docs/theory.md §3.",
    published=(
        "docs/theory.md §3 single draw: s.e. ratio 0.84; t-test 5.01 (1.05), CUPED 4.46 (0.88), "
        "OLS 4.49 (0.88)."
    ),
    group="cuped",
    plot=plot_query,
)
def check_cuped_query(ctx: RunContext, n_replicates: int | None = None) -> list[CheckResult]:
    """Run the docs/theory.md §3 query scenario over many draws (see the registered claim)."""
    r = n_replicates if n_replicates is not None else ctx.replicates(2_000, 20_000)
    scen = sim.QueryScenario()
    ss = ctx.seed_sequence("cuped-query")
    qm = query_moments(
        scen, _QUERY_USERS, r, ss, visitors=True, n_ols=min(_N_OLS, r), progress=ctx.progress
    )
    truth = qm.truth
    seed = int(ss.entropy)
    desc = {**qm.scenario, "covariates": "pre-period queries + 7 first-visit-day dummies"}
    cols = _DESIGNS["drop-one"]
    mt, mc = qm.arm(1, cols), qm.arm(0, cols)
    pmt, pmc = qm.arm(1, None), qm.arm(0, None)
    plain = ratio_test_from_moments(pmt, pmc, ddof=1)
    pe, pse = _arr(plain.estimate), _arr(plain.std_error)
    res, _ = _cuped(mt, mc)
    within, _ = _cuped(mt, mc, theta="within")
    est, se, est_w = _arr(res.estimate), _arr(res.std_error), _arr(within.estimate)
    q = shrinkage_q(mt, mc)
    ratio = se / pse

    # alternative codings of never-visitors (first_visit_dow = -1)
    argmax_cols = [_COL_PRE, *range(_COL_DUMMY0 + 2, _COL_DUMMY0 + 8)]  # -1 lumped into day 0
    arg_res, _ = _cuped(qm.arm(1, argmax_cols), qm.arm(0, argmax_cols))
    ratio_arg = _arr(arg_res.std_error) / pse
    vis = qm.visitors
    vis_cols = [_COL_PRE, *range(_COL_DUMMY0 + 1, _COL_DUMMY0 + 7)]
    vis_res, _ = _cuped(vis.arm(1, vis_cols), vis.arm(0, vis_cols))
    vis_plain = ratio_test_from_moments(vis.arm(1, None), vis.arm(0, None), ddof=1)
    ratio_vis = _arr(vis_res.std_error) / _arr(vis_plain.std_error)
    probs = (0.005, 0.05, 0.25, 0.5, 0.75, 0.95, 0.995)

    def summary(x: np.ndarray) -> dict[str, Any]:
        return {
            "mean": float(x.mean()),
            "sd": float(x.std(ddof=1)),
            "quantiles": dict(
                zip([str(p) for p in probs], np.quantile(x, probs).tolist(), strict=True)
            ),
            "share_below_0.84": float(np.mean(x < PUBLISHED_QUERY["se_ratio"])),
        }

    main = "never-visited as its own level"
    codings = {
        main: ratio,
        "never-visited lumped into day 0 (argmax coding)": ratio_arg,
        "visitors only": ratio_vis,
    }
    hist = {
        "edges": _HIST_EDGES,
        "counts": {k: np.histogram(v, _HIST_EDGES)[0] for k, v in codings.items()},
        "main": main,
    }
    distribution = {k: summary(v) for k, v in codings.items()}

    # 1. s.e. ratio: mean per-experiment ratio = ratio of the estimates' s.d.s
    fig, expected, tol = _se_ratio_consistency(ratio, est - truth, pe - truth, ctx.z)
    v_t, v_c = _adjusted_arm_vars(mt, mc, _arr(res.theta))
    summed = (np.sqrt(v_t) + np.sqrt(v_c)) / pse
    out = [
        CheckResult(
            name="cuped-query/se-ratio",
            claim=(
                "mean over experiments of s.e.(CUPED)/s.e.(plain) = sd(CUPED error)/sd(plain "
                "error) ± z s.e.; the distribution and where 0.84 falls are in extra"
            ),
            scenario=desc,
            figure=fig,
            expected=expected,
            tolerance=tol,
            n_replicates=r,
            seed=seed,
            negative_control=NegativeControl(
                "CUPED s.e. of the arms summed, se_T + se_C",
                float(summed.mean()),
            ),
            extra={"distribution": distribution, "histogram": hist, "main_coding": main},
        )
    ]
    # 2. coverage of the exact true effect (given the experiment's day effects)
    band = coverage(_cover(est, se, truth), z=ctx.z)
    c_unadj = float(_cover(est, pse, truth).mean())
    out.append(
        CheckResult(
            name="cuped-query/coverage",
            claim="coverage of the CUPED 95% CI for the exact true effect = 0.95 ± z s.e.",
            scenario=desc,
            figure=band.figure,
            expected=0.95,
            tolerance=band.tolerance,
            n_replicates=r,
            seed=seed,
            negative_control=NegativeControl(
                "un-adjusted (plain) s.e. with the CUPED estimate",
                c_unadj,
            ),
            extra={
                "kind": "coverage",
                "plain_coverage": float(_cover(pe, pse, truth).mean()),
                "coverage_of_unconditional_effect": float(
                    _cover(est, se, scen.true_effect()).mean()
                ),
                "true_effect": scen.true_effect(),
                "sd_of_true_effect_given_days": float(truth.std(ddof=1)),
            },
        )
    )
    # 3. bias (pooled shrinkage) with a post-treatment control
    post_t, post_c = qm.arm(1, _DESIGNS["post"]), qm.arm(0, _DESIGNS["post"])
    post, _ = _cuped(post_t, post_c)
    cell = _Cell(
        name="query",
        scenario=desc,
        seed=seed,
        truth=truth,
        plain=pe,
        estimate=est,
        std_error=se,
        q=q,
        within=est_w,
        k=len(cols),
        n_total=sum(_QUERY_USERS),
        pilot=(math.nan, math.nan, math.nan),
        n_rank_warnings=0,
        control_bias=(_arr(post.estimate), shrinkage_q(post_t, post_c)),
        control_coverage=("", pse),
        control_reduction=("", pe),
        extra={},
    )
    out.append(_bias_result(ctx, cell, "cuped-query", "docs/theory.md §3 query scenario"))
    # 4. CUPED = OLS / (1 + q), OLS = statsmodels on the first replicates
    scale = se
    dev = float(np.max(np.abs(est * (1.0 + q) - est_w) / scale))
    dev_t = float(np.max(np.abs(pe * (1.0 + q) - est_w) / scale))
    n_ols = qm.ols.shape[0]
    sm_dev = float(np.max(np.abs(qm.ols[:, 0] - est_w[:n_ols]) / scale[:n_ols]))
    # (mean, mean s.e., replicate s.d.); the OLS s.e. here is CUPED-within's (theta known)
    estimates = {
        "ttest": (float(pe.mean()), float(pse.mean()), float(pe.std(ddof=1))),
        "cuped": (float(est.mean()), float(se.mean()), float(est.std(ddof=1))),
        "ols": (float(est_w.mean()), float(_arr(within.std_error).mean()), float(est_w.std())),
    }
    out.append(
        CheckResult(
            name="cuped-query/cuped-vs-ols",
            claim=(
                "per experiment, CUPED (pooled theta) x (1 + q) = OLS y ~ 1 + arm + X "
                "(max deviation / s.e. <= 1e-9; statsmodels OLS on the first replicates); "
                "mean and s.d. of t-test, CUPED and OLS estimates in extra"
            ),
            scenario=desc,
            figure=max(dev, sm_dev),
            expected=0.0,
            tolerance=1e-9,
            rule="at_most",
            n_replicates=r,
            seed=seed,
            negative_control=NegativeControl(
                "t-test (difference in means) in place of CUPED", dev_t
            ),
            extra={
                "estimates_mean_se_sd": estimates,
                "published": PUBLISHED_QUERY,
                "statsmodels_max_dev_over_se": sm_dev,
                "statsmodels_mean_hc2_se": float(qm.ols[:, 1].mean()) if n_ols else math.nan,
                "n_statsmodels": n_ols,
                "mean_q": float(q.mean()),
                "mean_true_effect": float(truth.mean()),
            },
        )
    )
    return out
