"""Draw the report's check plots in a second process while the checks still run.

A quick report spends about a fifth of its time drawing PNGs (15 check plots at
0.2–1.3 s each on these machines), mostly on one core while the checks keep the other
busy only in their multi-threaded stretches. :class:`BackgroundPlots` hands each
finished check to one spawned worker process, which draws it with
:func:`validation.report.render_check_plot` (the very function
:func:`~validation.report.write_report` would call), so the PNGs are the same bytes
either way. Anything the worker cannot do — an outcome that does not pickle, a check
module it cannot import, a crashed worker — falls back to drawing in this process;
a plot is never lost to the background path.

The worker ignores SIGINT (Ctrl-C goes to the whole process group; the command line
handles it in the main process) and is stopped by :meth:`BackgroundPlots.close`.
Plots only draw figures: they compute no verdict, so a wrong implementation swapped
into this process (the mutation harness) is judged here, never in the worker.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from validation.report import PlotOutcome
    from validation.runner import CheckOutcome


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _render(payload: bytes) -> PlotOutcome | None:
    import matplotlib

    matplotlib.use("Agg")
    from validation.report import render_check_plot

    return render_check_plot(pickle.loads(payload))


class BackgroundPlots:
    """Draw check plots in one worker process as the checks finish.

    Use as a context manager around the run; pass :meth:`submit` as (part of) the
    runner's ``on_outcome`` and :meth:`plots` to :func:`validation.report.write_report`.

    Parameters
    ----------
    enabled : bool, default True
        False draws nothing in the background (:meth:`plots` returns an empty dict and
        :func:`~validation.report.write_report` draws every plot itself).

    Examples
    --------
    >>> with BackgroundPlots(enabled=False) as background:
    ...     background.plots()
    {}
    """

    def __init__(self, enabled: bool = True) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[str, Future] = {}
        self._enabled = bool(enabled)

    def __enter__(self) -> BackgroundPlots:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def submit(self, outcome: CheckOutcome) -> None:
        """Queue the plot of a finished check (no-op for a check without cells)."""
        if not self._enabled or not outcome.results:
            return
        try:
            # pickled here, not in the pool's feeder thread: a check defined in a
            # function (no import path) then simply stays with this process
            payload = pickle.dumps(outcome)
        except Exception:  # noqa: BLE001 - drawn in this process instead
            return
        try:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_ignore_sigint,
                )
            self._futures[outcome.check.name] = self._pool.submit(_render, payload)
        except Exception:  # noqa: BLE001 - drawn in this process instead
            self._enabled = False

    def plots(self) -> dict[str, PlotOutcome]:
        """Wait for the queued plots; return those the worker drew, by check name.

        A plot the worker could not draw is left out (the caller draws it); a plot
        function that raised is kept, as the error it would give in this process.
        """
        done: dict[str, PlotOutcome] = {}
        for name, future in self._futures.items():
            try:
                plot = future.result()
            except Exception:  # noqa: BLE001 - pickling, import, a dead worker: redraw here
                continue
            if plot is not None:
                done[name] = plot
        return done

    def close(self) -> None:
        """Stop the worker now; queued plots not yet drawn are dropped."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if all(future.done() for future in self._futures.values()):
            pool.shutdown(wait=True)  # the worker is idle: let it exit
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:  # a plot being drawn is not waited for
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
