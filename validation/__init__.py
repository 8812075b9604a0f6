"""Monte Carlo checks of the suite's formulas (docs/theory.md §5).

The checks test that the estimators are calibrated and the corrected gradients unbiased;
a registry feeds the report runner.

The public names are loaded on first use (PEP 562), so ``import validation`` and
``python -m validation`` start without importing NumPy's heavier neighbours (SciPy,
Numba, torch): ``python -m validation`` installs its Ctrl-C handler before any of them
is imported (see :mod:`validation.__main__`).

``validation.calibrate`` is the function :func:`validation.calibrate.calibrate`, also
after ``import validation.calibrate`` (which would otherwise rebind the package
attribute to the submodule); import the module's other names with
``from validation.calibrate import ...``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

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

__all__ = sorted(_EXPORTS, key=str.lower)


class _Package(types.ModuleType):
    """The ``validation`` package: public names resolved lazily, ``calibrate`` pinned.

    Importing a submodule makes the import system set the package attribute of the
    same name to that submodule. For ``calibrate``, whose public meaning is the
    function, :meth:`__setattr__` drops that binding, so ``validation.calibrate`` stays
    the function whichever is imported first.
    """

    def __getattr__(self, name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        self.__dict__[name] = value
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return  # the import system binding the submodule ``calibrate``: keep the function
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(_EXPORTS))


sys.modules[__name__].__class__ = _Package
