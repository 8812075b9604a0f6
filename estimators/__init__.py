"""Delta method, power and sample size, CUPED and OLS equivalences (docs/theory.md §1-3).

Pure functions of arrays (or of per-arm sufficient statistics) returning frozen
result objects. This package imports nothing else of the suite. Its public names are
imported on first use (``estimators._lazy``), so ``python -m estimators`` starts (and
can be interrupted cleanly) before SciPy is loaded.
"""

from ._lazy import make_lazy

#: Public name -> the submodule defining it (imported when the name is first read).
_EXPORTS: dict[str, str] = {
    "EstimatorWarning": "._result",
    "TestResult": "._result",
    "RankDeficientWarning": ".cuped",
    "cuped_test": ".cuped",
    "cuped_test_from_moments": ".cuped",
    "cuped_theta": ".cuped",
    "fill_missing_covariates": ".cuped",
    "RatioMoments": ".moments",
    "ols_test": ".ols",
    "PilotSigma": ".power",
    "SampleSizeResult": ".power",
    "mde": ".power",
    "power": ".power",
    "sample_size": ".power",
    "sigma_from_pilot": ".power",
    "linearize_ratio": ".ratio",
    "mean_test": ".ratio",
    "ratio_sigma": ".ratio",
    "ratio_test": ".ratio",
    "ratio_test_from_moments": ".ratio",
    "ratio_variance": ".ratio",
    "moments_from_frame": ".sources",
    "moments_from_sql": ".sources",
    "moments_sql": ".sources",
    "SRMResult": ".srm",
    "srm_test": ".srm",
}

__all__: list[str] = [
    "EstimatorWarning",
    "PilotSigma",
    "RankDeficientWarning",
    "RatioMoments",
    "SRMResult",
    "SampleSizeResult",
    "TestResult",
    "cuped_test",
    "cuped_test_from_moments",
    "cuped_theta",
    "fill_missing_covariates",
    "linearize_ratio",
    "mde",
    "mean_test",
    "moments_from_frame",
    "moments_from_sql",
    "moments_sql",
    "ols_test",
    "power",
    "ratio_sigma",
    "ratio_test",
    "ratio_test_from_moments",
    "ratio_variance",
    "sample_size",
    "sigma_from_pilot",
    "srm_test",
]

make_lazy(__name__, _EXPORTS)
