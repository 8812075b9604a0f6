"""Packages whose public names are imported on first use (PEP 562), for fast start-up.

``python -m estimators`` and ``python -m validation`` import their package before their
``__main__`` module can install a Ctrl-C handler; an eager package (SciPy, Numba) made
that window several seconds long, and an interrupt inside it ended the process with a
traceback and status -2. :func:`make_lazy` turns a package into one that imports the
submodule defining a public name when the name is first read.

A public name may also be a submodule's name (``estimators.power`` is the function
:func:`estimators.power.power`; ``validation.calibrate`` the function
:func:`validation.calibrate.calibrate`). Importing such a submodule makes the import
system bind the package attribute to the submodule; the lazy package ignores that
binding, so the attribute stays the function whichever is imported first, as with the
eager ``from .power import power`` it replaces.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Mapping
from typing import Any

__all__ = ["make_lazy"]


class _LazyPackage(types.ModuleType):
    """A package resolving ``__lazy_exports__`` (name -> defining module) on first use."""

    def __getattr__(self, name: str) -> Any:
        exports = self.__dict__.get("__lazy_exports__", {})
        if name not in exports:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], self.__name__), name)
        self.__dict__[name] = value
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in self.__dict__.get(
            "__lazy_exports__", {}
        ):
            return  # the import system binding a submodule named like a public function
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.__dict__.get("__lazy_exports__", {})))


def make_lazy(package: str, exports: Mapping[str, str]) -> None:
    """Make ``package`` import its public names on first use.

    Parameters
    ----------
    package : str
        The package's name (``__name__`` in its ``__init__``); it must be imported.
    exports : mapping of str to str
        Public name -> the module defining it, absolute (``"validation.core"``) or
        relative to ``package`` (``".ratio"``).

    Raises
    ------
    ValueError
        If ``package`` is not an imported module.
    """
    module = sys.modules.get(package)
    if module is None:
        raise ValueError(f"`package` must be an imported module; got {package!r}.")
    module.__dict__["__lazy_exports__"] = dict(exports)
    module.__class__ = _LazyPackage
