"""Delta method, power and sample size, CUPED and OLS equivalences (docs/theory.md §1-3).

Pure functions of arrays (or of per-arm sufficient statistics) returning frozen
result objects. This package imports nothing else of the suite.
"""

from ._result import EstimatorWarning, TestResult
from .cuped import (
    RankDeficientWarning,
    cuped_test,
    cuped_test_from_moments,
    cuped_theta,
    fill_missing_covariates,
)
from .moments import RatioMoments
from .ols import ols_test
from .power import PilotSigma, SampleSizeResult, mde, power, sample_size, sigma_from_pilot
from .ratio import (
    linearize_ratio,
    mean_test,
    ratio_sigma,
    ratio_test,
    ratio_test_from_moments,
    ratio_variance,
)
from .sources import moments_from_frame, moments_from_sql, moments_sql
from .srm import SRMResult, srm_test

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
