"""Simulated experiments of the delta-method checks: the coverage grid's samplers.

:func:`coverage_moments` draws the per-arm moments of one (distribution, n) scenario
of the ``delta-coverage`` grid (Deng, Knoblich, Lu, KDD 2018, Table 1 design extended
to a heavy-tailed ratio metric), replicate blocks through :func:`validation.mc.run_blocks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

import sim
from estimators.moments import RatioMoments
from sim._seed import child_sequences
from validation.mc import run_blocks

#: Users per arm of the coverage grid (Deng et al. 2018 Table 1 design).
COVERAGE_N: tuple[int, ...] = (20, 50, 200, 2000)
#: Data-generating distributions of the coverage grid.
COVERAGE_DISTRIBUTIONS: tuple[str, ...] = ("normal", "poisson", "bernoulli", "heavy")
#: Interval methods: absolute difference, then the four relative-lift intervals.
COVERAGE_METHODS: tuple[str, ...] = ("absolute", "delta", "log", "fieller", "delta-bc")
#: True relative lift of the treatment in every coverage scenario.
COVERAGE_LIFT: float = 0.3
_CONFIDENCE = 0.95
_CHUNK = 250  # replicates per generator in the NumPy samplers (fixed: determinism)

#: The heavy-tailed ratio metric: heterogeneous CTR, Poisson-lognormal views.
HEAVY_SCENARIO = dict(
    ctr_mean=0.1,
    concentration=2.0,
    views="lognormal",
    views_mean=5.0,
    views_dispersion=1.2,
    effect=COVERAGE_LIFT,
    effect_type="multiplicative",
)

# Mean-metric scenarios (M = 1): control mean, and the spread parameter.
_MEAN_SCENARIOS: dict[str, dict[str, float]] = {
    "normal": {"mean": 10.0, "sd": 5.0},
    "poisson": {"mean": 2.0},
    "bernoulli": {"mean": 0.5},
}


# ----------------------------------------------------------------------------- samplers
def _mean_metric_sums(
    dist: str, mean: float, n: int, n_replicates: int, ss: np.random.SeedSequence
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per-replicate (sum Y, sum Y^2) of ``n`` i.i.d. units; exact sufficient draws.

    normal: sum ~ N(n mu, n s^2) and the centred sum of squares ~ s^2 chi2(n-1),
    independent; Bernoulli: sum ~ Binomial(n, p) and Y^2 = Y; Poisson: per-unit draws.
    """
    if dist not in _MEAN_SCENARIOS:  # pragma: no cover - guarded by the callers
        raise ValueError(f"`dist` must be one of {sorted(_MEAN_SCENARIOS)}; got {dist!r}.")

    def block(a: int, b: int, child: np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray]:
        gen, r = np.random.default_rng(child), b - a
        if dist == "normal":
            sd = _MEAN_SCENARIOS["normal"]["sd"]
            s = gen.normal(n * mean, sd * math.sqrt(n), r)
            return s, sd**2 * gen.chisquare(n - 1, r) + s * s / n
        if dist == "bernoulli":
            s = gen.binomial(n, mean, r).astype(np.float64)
            return s, s
        y = gen.poisson(mean, (r, n)).astype(np.float64)
        return y.sum(1), (y * y).sum(1)

    parts = run_blocks(block, n_replicates, ss, _CHUNK)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@dataclass(frozen=True, slots=True)
class CoverageSample:
    """Replicated per-arm moments of one coverage scenario and its truth.

    Attributes
    ----------
    control, treatment : RatioMoments
        Moments with fields of shape ``(R,)``.
    difference, relative_lift : float
        True treatment-minus-control difference and relative lift.
    scenario : dict
        JSON-serialisable description.
    """

    control: Any
    treatment: Any
    difference: float
    relative_lift: float
    scenario: dict[str, Any]


def coverage_moments(
    dist: str, n_per_arm: int, n_replicates: int, ss: np.random.SeedSequence
) -> CoverageSample:
    """Simulate ``n_replicates`` experiments of one coverage scenario, as moments.

    Parameters
    ----------
    dist : {"normal", "poisson", "bernoulli", "heavy"}
        Mean metrics with M = 1 (normal mean 10 s.d. 5, Poisson mean 2, Bernoulli
        p = 0.5; treatment mean x 1.3), or the heavy-tailed ratio metric
        :data:`HEAVY_SCENARIO` simulated by :func:`sim.simulate_moments`.
    n_per_arm : int
        Users per arm.
    n_replicates : int
        Experiments.
    ss : numpy.random.SeedSequence
        Seed of the scenario; replicate chunks use its children.

    Returns
    -------
    CoverageSample
    """
    if dist not in COVERAGE_DISTRIBUTIONS:
        raise ValueError(f"`dist` must be one of {list(COVERAGE_DISTRIBUTIONS)}; got {dist!r}.")
    if dist == "heavy":
        scen = sim.BetaBinomialCtr(**HEAVY_SCENARIO)
        mom = sim.simulate_moments(scen, (n_per_arm, n_per_arm), n_replicates, rng=ss)
        truth = scen.truth()
        return CoverageSample(
            control=RatioMoments.from_simulator(mom, 0, covariates=False),
            treatment=RatioMoments.from_simulator(mom, 1, covariates=False),
            difference=truth.difference,
            relative_lift=truth.relative_lift,
            scenario={**scen.to_dict(), "n_per_arm": n_per_arm},
        )
    base = _MEAN_SCENARIOS[dist]["mean"]
    means = (base, base * (1.0 + COVERAGE_LIFT))
    ss_c, ss_t = child_sequences(ss, 2)
    arms = []
    for mean, child in zip(means, (ss_c, ss_t), strict=True):
        sy, syy = _mean_metric_sums(dist, mean, n_per_arm, n_replicates, child)
        arms.append(RatioMoments.from_mean_sums(float(n_per_arm), sy, syy))
    scenario = {"distribution": dist, **_MEAN_SCENARIOS[dist], "n_per_arm": n_per_arm}
    scenario["treatment_mean"] = means[1]
    return CoverageSample(
        control=arms[0],
        treatment=arms[1],
        difference=means[1] - means[0],
        relative_lift=COVERAGE_LIFT,
        scenario=scenario,
    )


def _arm_stats(m: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-arm (ratio, delta-method variance of the ratio with ddof 1, naive binomial variance).

    The first two are :meth:`RatioMoments.ratio` and :meth:`RatioMoments.ratio_variance`
    (docs/theory.md §1), the shipped formulas; the naive binomial variance
    ``R (1 - R) / sum M`` (each view an independent trial) is the deliberately wrong
    variant of the negative controls.
    """
    r = np.asarray(m.ratio(), dtype=np.float64)
    var = np.asarray(m.ratio_variance(ddof=1), dtype=np.float64)
    return r, var, r * (1.0 - r) / m.sum_m
