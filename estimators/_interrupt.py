"""Ctrl-C and SIGTERM under the command lines: one exception, raised by our handler.

``python -m estimators`` and ``python -m validation`` promise exit status 130, a
one-line message and no traceback whenever they are interrupted. Two things broke that
during the first seconds of a run: the default SIGINT handler raised KeyboardInterrupt
before the command had a chance to catch it, and a KeyboardInterrupt that surfaces in
code run by the interpreter's C layer (an extension module's import, DuckDB's, for
instance) marks the process as interrupted for good: even when caught, the interpreter
then ends by SIGINT (status -2). :func:`interrupts_raised` installs a handler that
raises :class:`Interrupted`, an exception of our own that sets no such mark; the command
lines catch :data:`INTERRUPTS` (it and KeyboardInterrupt) and return 130.
``validation.interrupt`` re-exports these names (``validation`` depends on
``estimators``, not the reverse).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = [
    "INTERRUPTS",
    "SIGNALS",
    "Interrupted",
    "interrupts_raised",
    "raise_if_received",
    "raise_interrupted",
    "received",
]

#: The signals that interrupt a run: Ctrl-C and a polite kill.
SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):  # noqa: N818 - named like KeyboardInterrupt, its sibling
    """SIGINT or SIGTERM, raised by :func:`raise_interrupted` instead of KeyboardInterrupt.

    A ``BaseException`` so that ``except Exception`` (a check's failure, a plot's)
    does not swallow it, and not a KeyboardInterrupt so that the interpreter does not
    turn the exit status into -2 when it passes through C code.

    Attributes
    ----------
    signum : int
        The signal that was received.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


#: What an interrupt may arrive as: our own exception, or KeyboardInterrupt where the
#: default handler was still (or again) in place, e.g. when ``main`` runs in-process.
INTERRUPTS: tuple[type[BaseException], ...] = (KeyboardInterrupt, Interrupted)


#: Signals :func:`raise_interrupted` received inside the current :func:`interrupts_raised`.
_received: list[int] = []


def raise_interrupted(signum: int, frame: Any) -> None:
    """Signal handler: note ``signum`` and raise :class:`Interrupted` for it."""
    _received.append(int(signum))
    raise Interrupted(signum)


def received() -> int | None:
    """Return the first signal :func:`raise_interrupted` received in the block, or None.

    Extension code can swallow the exception it raised: NumPy's C import, interrupted
    while it imports ``datetime``, reports an ImportError instead (measured: one launch
    in twelve of ``python -m validation run``, signalled 0.5 s in). Whoever catches an
    ``Exception`` where an interrupt may have landed asks this first.
    """
    return _received[0] if _received else None


def raise_if_received() -> None:
    """Raise :class:`Interrupted` again if an interrupt came (and was swallowed) in the block."""
    signum = received()
    if signum is not None:
        raise Interrupted(signum)


@contextlib.contextmanager
def interrupts_raised() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted`.

    The previous handlers are restored on leaving. A signal the process inherited as
    ignored (a background job of a shell script, ``nohup``) stays ignored, as Python
    itself does for SIGINT. Only the main thread can set signal handlers; elsewhere the
    block runs with the handlers as they are.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        signum: signal.signal(signum, raise_interrupted)
        for signum in SIGNALS
        if signal.getsignal(signum) is not signal.SIG_IGN
    }
    _received.clear()
    try:
        yield
    finally:
        _received.clear()
        for signum, handler in previous.items():
            if handler is not None:  # None: set outside Python; nothing to restore
                signal.signal(signum, handler)
