"""Where the Monte Carlo of ``python -m validation run | calibrate`` runs.

The command line options ``--scheduler ADDRESS`` (an existing Dask cluster),
``--backend {threads,loky,dask,ray}`` and ``--workers N`` (``--backend dask --workers
N`` starts a ``LocalCluster`` of N single-threaded worker processes) choose a
:class:`sim.Backend`; :func:`cli_backend` opens it around the run, so every block of
replicates the checks and the calibration battery hand to :func:`sim.map_blocks`
(including :func:`sim.simulate_moments`) runs there. The figures do not depend on the
backend (replicate ``r`` is seeded by its index only), so ``results.json``'s
``checks`` are the same as in a default run; where the work ran is printed, not
recorded with the figures. See docs/scaling.md.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from sim import Backend, SchedulerUnreachableError, use_backend
from sim._fanout import BACKENDS

__all__ = ["add_backend_options", "backend_from_options", "cli_backend", "run_with_backend"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0; got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0; got {value}")
    return value


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--scheduler``, ``--backend``, ``--workers`` and ``--connect-timeout``."""
    group = parser.add_argument_group(
        "where the replicates run (the figures are the same on every backend)"
    )
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (implies "
        "--backend dask)",
    )
    group.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="threads: this process (default); loky: local processes; dask: a Dask "
        "LocalCluster (or --scheduler); ray: Ray",
    )
    group.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="threads, processes or LocalCluster workers (default: one per core)",
    )
    group.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="seconds to wait for the scheduler before exit status 2 (default: 5)",
    )


def backend_from_options(args: argparse.Namespace) -> Backend | None:
    """Return the :class:`sim.Backend` the options ask for, or None for the default.

    Raises
    ------
    ValueError
        When the options contradict each other (the message names them).
    """
    kind = args.backend
    if args.scheduler is not None:
        if kind not in (None, "dask", "ray"):
            raise ValueError(f"`--scheduler` needs --backend dask or ray; got --backend {kind}.")
        kind = kind or "dask"
    if kind is None:
        if args.workers is not None:
            raise ValueError("`--workers` needs --backend (threads, loky, dask or ray).")
        return None
    return Backend(
        kind,
        workers=args.workers,
        scheduler=args.scheduler,
        connect_timeout=args.connect_timeout,
    )


@contextlib.contextmanager
def cli_backend(args: argparse.Namespace, prog: str) -> Iterator[Any]:
    """Open the backend of the options for the block; print where the work runs.

    Yields the open session (None for the default thread backend, which needs no
    session). Entering raises :class:`ValueError` for contradictory options,
    :class:`ImportError` when the backend's library is missing and
    :class:`sim.SchedulerUnreachableError` when the scheduler does not answer; the
    command line turns each into exit status 2 (:func:`run_with_backend`).
    """
    backend = backend_from_options(args)
    if backend is None:
        print(f"{prog}: replicates run in this process (threads)", flush=True)
        yield None
        return
    with use_backend(backend) as session:
        print(f"{prog}: replicates run on {session.description}", flush=True)
        yield session


def run_with_backend(
    args: argparse.Namespace, prog: str, command: Callable[..., int], *command_args: Any
) -> int:
    """Run ``command(*command_args)`` inside :func:`cli_backend`; its exit status.

    Exit status 2, with the reason on stderr, when the backend cannot be opened (an
    unreachable scheduler is named); 130 when interrupted while it starts.
    """
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(cli_backend(args, prog))
        except (SchedulerUnreachableError, ValueError, ImportError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("\ninterrupted while starting the backend; nothing was written.", file=sys.stderr)
            return 130
        return command(*command_args)
