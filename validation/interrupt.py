"""Ctrl-C and SIGTERM under ``python -m validation``: the names of :mod:`estimators._interrupt`.

The handler, the exception and the bookkeeping live once, in the lower package that
both command lines import (see that module for why an exception of our own, not
KeyboardInterrupt, is raised).
"""

from estimators._interrupt import (
    INTERRUPTS,
    SIGNALS,
    Interrupted,
    interrupts_raised,
    raise_if_received,
    raise_interrupted,
    received,
)

__all__ = [
    "INTERRUPTS",
    "SIGNALS",
    "Interrupted",
    "interrupts_raised",
    "raise_if_received",
    "raise_interrupted",
    "received",
]
