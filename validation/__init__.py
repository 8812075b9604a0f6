"""Monte Carlo checks of the suite's formulas (docs/theory.md §5).

The checks test that the estimators are calibrated and the corrected gradients unbiased;
a registry feeds the report runner.
"""

# ``validation.calibrate(estimator, scenario, ...)`` is the function; import names of the
# module with ``from validation.calibrate import ...`` (the attribute is the function).
from validation.calibrate import Calibration, CalibrationScenario, calibrate
from validation.core import (
    Check,
    CheckResult,
    NegativeControl,
    RunContext,
    get_check,
    iter_checks,
    register,
)
from validation.data_scenario import DataScenario
from validation.mc import Z_FAMILY, family_wise_rate, mcse_mean, mcse_proportion

__all__ = [
    "Calibration",
    "CalibrationScenario",
    "DataScenario",
    "calibrate",
    "Check",
    "CheckResult",
    "NegativeControl",
    "RunContext",
    "Z_FAMILY",
    "family_wise_rate",
    "get_check",
    "iter_checks",
    "mcse_mean",
    "mcse_proportion",
    "register",
]
