"""The shipped public functions, looked up at call time (the code under test).

Every check calls the functions users import (``estimators.ratio_test_from_moments``,
``recsys.sampled_softmax_loss``, ...). A check must test the function *as it is now*:
a wrong version swapped into the package namespace (``estimators.power``) or into the
defining submodule (``estimators.power.sample_size``), before or after ``validation``
is imported, must be the one the check runs. Binding the names at import
(``from estimators import power``) would freeze the original, so the check modules
bind a :class:`Shipped` proxy instead, which resolves the name on every call.

Resolution rule: read the attribute in the package and in the defining submodule. When
both hold the same object, that is the function. When they differ, one of them was
replaced; the replacement is the one whose code does not come from the defining
submodule's source file, and it wins. (Internal calls inside the package go through the
submodule's globals, so a swap there reaches them too.)
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Any


def _source_file(obj: Any) -> str | None:
    """File of the code of ``obj`` (a function, method or class), or None."""
    code = getattr(obj, "__code__", None)
    if code is not None:
        return code.co_filename
    func = getattr(obj, "__func__", None)
    if func is not None:
        return _source_file(func)
    try:
        return inspect.getsourcefile(obj)
    except TypeError:
        return None


def resolve(module: str, name: str) -> Any:
    """Return the current object ``name`` of the defining submodule ``module``.

    Parameters
    ----------
    module : str
        Dotted path of the defining submodule, e.g. ``"estimators.ratio"``.
    name : str
        The public name, e.g. ``"ratio_test_from_moments"``.

    Returns
    -------
    object
        The package attribute or the submodule attribute, whichever was replaced if
        they differ (see the module docstring).

    Raises
    ------
    AttributeError
        If neither the package nor the submodule defines ``name``.
    """
    sub = sys.modules.get(module) or importlib.import_module(module)
    package_name = module.split(".", 1)[0]
    package = sys.modules.get(package_name) or importlib.import_module(package_name)
    in_sub = getattr(sub, name, None)
    in_pkg = getattr(package, name, None) if package is not sub else None
    if in_pkg is None or in_pkg is in_sub:
        if in_sub is None:
            raise AttributeError(f"neither {package_name} nor {module} defines {name!r}.")
        return in_sub
    if in_sub is None:
        return in_pkg
    home = getattr(sub, "__file__", None)
    if _source_file(in_sub) != home:
        return in_sub
    return in_pkg


class Shipped:
    """A call-time proxy of a public function (or class) of a shipped package.

    Parameters
    ----------
    module : str
        Defining submodule, e.g. ``"estimators.power"``.
    name : str
        Public name, e.g. ``"sample_size"``.

    Examples
    --------
    >>> size = Shipped("estimators.power", "sample_size")
    >>> size(1.0, 0.1).n_control > 0
    True
    """

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name

    @property
    def target(self) -> Any:
        """The object the name refers to now."""
        return resolve(self.module, self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the current target."""
        return self.target(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(resolve(self.module, self.name), attr)

    def __repr__(self) -> str:
        return f"Shipped({self.module}.{self.name})"
