"""Monte Carlo checks of the suite's formulas (docs/theory.md §5).

The checks test that the estimators are calibrated and the corrected gradients unbiased;
a registry feeds the report runner.

The public names are loaded on first use (PEP 562, ``estimators._lazy``), so ``import
validation`` and ``python -m validation`` start without importing SciPy, Numba or torch:
``python -m validation`` installs its Ctrl-C handler before any of them is imported
(see :mod:`validation.__main__`).

``validation.calibrate`` is the function :func:`validation.calibrate.calibrate`, also
after ``import validation.calibrate`` (which would otherwise rebind the package
attribute to the submodule); import the module's other names with
``from validation.calibrate import ...``.
"""

from estimators._lazy import make_lazy

#: Public name -> the module that defines it (imported on first access).
_EXPORTS: dict[str, str] = {
    "Calibration": "validation.calibrate",
    "CalibrationScenario": "validation.calibrate",
    "calibrate": "validation.calibrate",
    "Check": "validation.core",
    "CheckResult": "validation.core",
    "NegativeControl": "validation.core",
    "RunContext": "validation.core",
    "get_check": "validation.core",
    "iter_checks": "validation.core",
    "register": "validation.core",
    "DataScenario": "validation.data_scenario",
    "Z_FAMILY": "validation.mc",
    "family_wise_rate": "validation.mc",
    "mcse_mean": "validation.mc",
    "mcse_proportion": "validation.mc",
}

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

make_lazy(__name__, _EXPORTS)
