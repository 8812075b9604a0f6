"""Monte Carlo checks of the delta method (docs/theory.md §1): coverage, Deng 2018 Table 2, A/A.

Three registered checks:

``delta-coverage``
    Coverage of the 95 % confidence interval for the absolute difference and the
    four relative-lift intervals (linear delta, log-scale delta, Fieller, delta with
    Deng's second-order bias correction) for n in {20, 50, 200, 2000} users per arm
    on normal, Poisson and Bernoulli mean metrics and a heavy-tailed ratio metric
    (beta-binomial clicks over Poisson-lognormal views), the design of Deng,
    Knoblich, Lu (2018) Table 1 extended to a ratio metric.
``deng2018-table2``
    The latent-class scenario of Deng et al. (2018) Table 2: the delta-method s.e. of
    a CTR over 1,000 users equals the true (replicate) s.d., the naive binomial s.e.
    does not.
``aa-calibration``
    A/A tests on a heterogeneous-CTR ratio metric: the delta z-test's
    false-positive rate is alpha and its p-values are uniform (Kolmogorov-Smirnov);
    the naive binomial test fails both.

Every cell's tolerance is ``z`` Monte Carlo standard errors (``ctx.z``, 4 by default:
a two-sided normal tail of 6.3e-5 per cell, so a report of up to 150 cells has a
family-wise false-failure rate below 1 %, :func:`validation.mc.family_wise_rate`).

References
----------
.. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics:
   A Practical Guide with Novel Ideas", KDD 2018.
.. [2] E. C. Fieller, "Some Problems in Interval Estimation", JRSS B 16(2), 1954.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

import sim
from estimators.moments import RatioMoments
from validation.ab_coverage import (
    BIAS_DISTRIBUTIONS,
    CoverageCell,
    check_delta_coverage,
    coverage_table,
    plot_coverage,
)
from validation.ab_mc import (
    ks_uniformity,
    pvalue_qq_figure,
    pvalue_quantiles,
    rejection_rate,
    sd_ratio,
)
from validation.ab_samples import (
    COVERAGE_DISTRIBUTIONS,
    COVERAGE_LIFT,
    COVERAGE_METHODS,
    COVERAGE_N,
    HEAVY_SCENARIO,
    CoverageSample,
    _arm_stats,
    coverage_moments,
)
from validation.core import CheckResult, NegativeControl, RunContext, register
from validation.shipped import Shipped

ratio_test_from_moments = Shipped("estimators.ratio", "ratio_test_from_moments")

__all__ = [
    "BIAS_DISTRIBUTIONS",
    "COVERAGE_DISTRIBUTIONS",
    "COVERAGE_LIFT",
    "COVERAGE_METHODS",
    "COVERAGE_N",
    "HEAVY_SCENARIO",
    "CoverageCell",
    "CoverageSample",
    "check_aa",
    "check_delta_coverage",
    "check_deng2018_table2",
    "coverage_moments",
    "coverage_table",
    "plot_aa",
    "plot_coverage",
    "plot_table2",
]


# ----------------------------------------------------------------------------- Table 2
#: Published figures of Deng, Knoblich, Lu (2018) Table 2 (CTR over 1,000 users).
DENG2018_TABLE2 = {"true_sd": 0.00895, "delta_se": 0.00908, "naive_se": 0.00522}
_TABLE2_USERS = 1_000


def plot_table2(results: list[CheckResult]):
    """Histogram of the replicate CTRs with the true s.d., delta and naive s.e. marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.4))
    ax = fig.subplots()
    if not results:
        return fig
    ex = results[0].extra
    labels = ("true s.d. (replicates)", "mean delta s.e.", "mean naive s.e.")
    keys = ("true_sd", "mean_delta_se", "mean_naive_se")
    ours = [ex[k] for k in keys]
    pub = [DENG2018_TABLE2[k] for k in ("true_sd", "delta_se", "naive_se")]
    x = np.arange(3)
    ax.bar(x - 0.2, ours, 0.4, label="this run")
    ax.bar(x + 0.2, pub, 0.4, label="Deng et al. 2018 Table 2")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("s.d. of the CTR, 1,000 users")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@register(
    "deng2018-table2",
    claim=(
        "On the Deng 2018 Table 2 latent-class scenario (1,000 users per arm, A/A), the "
        "replicate s.d. of the CTR difference divided by the mean delta-method s.e. "
        "equals 1 within z = 4 Monte Carlo s.e.; the naive binomial s.e. (control) "
        "underestimates it by about 40%. Per-arm CTR s.d. and s.e. are reported against "
        "the paper's Table 2."
    ),
    reference="Deng, Knoblich, Lu (KDD 2018), §3.1 and Table 2; docs/theory.md §1.",
    published="Deng et al. 2018 Table 2: true s.d. 0.00895, delta s.e. 0.00908, naive 0.00522.",
    group="ab",
    plot=plot_table2,
)
def check_deng2018_table2(ctx: RunContext) -> CheckResult:
    """Compare the true s.d. with the delta and naive s.e. of a CTR (see the claim)."""
    r, ss = ctx.replicates(2_000, 20_000), ctx.seed_sequence("deng2018-table2")
    scen = sim.Deng2018Classes()  # A/A: both arms are 1,000-user samples of one population
    mom = sim.simulate_moments(scen, (_TABLE2_USERS, _TABLE2_USERS), r, rng=ss)
    mc, mt = (RatioMoments.from_simulator(mom, a, covariates=False) for a in (0, 1))
    res = ratio_test_from_moments(mt, mc, relative=False, ddof=1)  # the shipped delta method
    diff, se = np.asarray(res.estimate), np.asarray(res.std_error)
    naive = np.sqrt(_arm_stats(mc)[2] + _arm_stats(mt)[2])  # views as independent trials
    band = sd_ratio(diff, se, z=ctx.z)
    return CheckResult(
        name="deng2018-table2",
        claim="sd(CTR_T - CTR_C over A/A replicates) / mean(delta s.e.) = 1 ± z s.e.",
        scenario={**scen.to_dict(), "n_users": _TABLE2_USERS},
        figure=band.figure,
        expected=1.0,
        tolerance=band.tolerance,
        n_replicates=r,
        seed=int(ss.entropy),
        negative_control=NegativeControl(
            "naive binomial s.e. (views as independent trials)", sd_ratio(diff, naive).figure
        ),
        extra={**_table2_figures(mc, mt), "true_ctr": scen.truth().ctr_control},
    )


def _table2_figures(mc: RatioMoments, mt: RatioMoments) -> dict[str, Any]:
    """Per-arm CTR figures on Table 2's scale: replicate s.d., mean delta and naive s.e."""
    (c_c, v_c, nv_c), (c_t, v_t, nv_t) = _arm_stats(mc), _arm_stats(mt)
    ctr_all = np.concatenate([c_c, c_t])
    return {
        "true_sd": float(ctr_all.std(ddof=1)),
        "mean_delta_se": float(np.sqrt(np.concatenate([v_c, v_t])).mean()),
        "mean_naive_se": float(np.sqrt(np.concatenate([nv_c, nv_t])).mean()),
        "n_ctr_samples": int(ctr_all.size),
        "published": DENG2018_TABLE2,
    }


# ----------------------------------------------------------------------------- A/A
_AA_USERS = 1_000


def plot_aa(results: list[CheckResult]):
    """QQ plot of the A/A p-values (delta vs naive) against Uniform(0, 1)."""
    return pvalue_qq_figure(
        results,
        [("delta", "delta method", "-"), ("naive", "naive binomial", "--")],
        "A/A p-values, Deng 2018 classes, 1,000 users per arm",
    )


@register(
    "aa-calibration",
    claim=(
        "In A/A tests of a heterogeneous-CTR ratio metric (Deng 2018 classes, 1,000 users "
        "per arm) the delta-method z-test rejects at alpha = 0.05 in 5% of experiments "
        "(± z = 4 s.e.) and its p-values are uniform (KS distance below the exact critical "
        "value at false-failure rate 6.3e-5); the naive binomial test fails both."
    ),
    reference="Deng, Knoblich, Lu (KDD 2018), §3.1; docs/theory.md §1 and §5.",
    group="ab",
    plot=plot_aa,
)
def check_aa(ctx: RunContext) -> list[CheckResult]:
    """A/A false-positive rate and p-value uniformity (see the registered claim)."""
    r = ctx.replicates(4_000, 20_000)
    scen = sim.Deng2018Classes(effect=0.0)
    ss = ctx.seed_sequence("aa-calibration")
    mom = sim.simulate_moments(scen, (_AA_USERS, _AA_USERS), r, rng=ss)
    mc = RatioMoments.from_simulator(mom, 0, covariates=False)
    mt = RatioMoments.from_simulator(mom, 1, covariates=False)
    res = ratio_test_from_moments(mt, mc, relative=False, ddof=1)
    p_delta = np.asarray(res.pvalue, dtype=np.float64)
    r_c, _, nv_c = _arm_stats(mc)
    r_t, _, nv_t = _arm_stats(mt)
    z_naive = (r_t - r_c) / np.sqrt(nv_t + nv_c)
    p_naive = 2.0 * stats.norm.sf(np.abs(z_naive))
    extra_q = pvalue_quantiles({"delta": p_delta, "naive": p_naive})
    seed = int(ss.entropy)
    scenario = {**scen.to_dict(), "n_per_arm": _AA_USERS}
    fpr = rejection_rate(p_delta, alpha=0.05, z=ctx.z)
    fpr_naive = rejection_rate(p_naive, alpha=0.05, z=ctx.z)
    ks = ks_uniformity(p_delta, z=ctx.z)
    ks_naive = ks_uniformity(p_naive, z=ctx.z)
    return [
        CheckResult(
            name="aa-calibration/false-positive-rate",
            claim="share of A/A p-values < 0.05 = 0.05 ± z s.e.",
            scenario=scenario,
            figure=fpr.figure,
            expected=0.05,
            tolerance=fpr.tolerance,
            n_replicates=r,
            seed=seed,
            negative_control=NegativeControl(
                "naive binomial z-test",
                fpr_naive.figure,
            ),
            extra=extra_q,
        ),
        CheckResult(
            name="aa-calibration/ks-uniformity",
            claim=(
                "KS distance of the A/A p-values from Uniform(0, 1) <= exact critical value "
                "at false-failure rate 6.3e-5"
            ),
            scenario=scenario,
            figure=ks.figure,
            expected=0.0,
            tolerance=ks.tolerance,
            rule="at_most",
            n_replicates=r,
            seed=seed,
            negative_control=NegativeControl("naive binomial z-test", ks_naive.figure),
            extra={},
        ),
    ]
