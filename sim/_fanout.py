"""One fan-out layer for Monte Carlo replicate blocks: threads, loky, Dask or Ray.

The unit of work is a *replicate block*, the half-open index range ``[start, stop)``
of replicates. A block function ``function(start, stop, *args)`` returns the results of
its replicates as an array (or anything with ``len`` equal to ``stop - start``); the
layer runs the blocks on a backend and hands their results back in block order. A
replicate's result depends only on its index (replicate ``r`` draws from child ``r``
of the root seed sequence, :func:`sim.child_sequences`), so the concatenated figures
are bit-identical for every backend, worker count and block size.

Backends (:class:`Backend`):

``"threads"``
    Python threads in this process, ``numba.get_num_threads()`` of them unless
    ``workers`` says otherwise (the numba kernels release the GIL). The default.
``"loky"``
    ``workers`` local processes through ``joblib`` (``pip install joblib``).
``"dask"``
    ``dask.distributed``: the scheduler at ``scheduler`` (an existing cluster), or a
    ``LocalCluster`` of ``workers`` single-threaded worker processes started for the
    session (``pip install 'abrec-validate[dask]'``).
``"ray"``
    Ray, imported only when asked: ``ray.init(address=scheduler)`` or a local Ray with
    ``workers`` CPUs (``pip install ray``).

Every block runs with numba pinned to one thread (``numba.set_num_threads(1)`` around
the call; numba's setting is per thread), so a worker process that owns one core does
not start one numba thread per core of its machine, and a block that itself calls
:func:`map_blocks` runs its inner blocks serially. (The one exception: a thread
backend with a single thread runs the blocks in the calling thread, as a plain loop.)
Dask workers of a ``LocalCluster`` started here also get ``NUMBA_NUM_THREADS=1``.
Warnings a block emits in another process are re-emitted in the caller, in block
order, once all blocks are in (so a ``warnings.catch_warnings`` around the call
records them as if the blocks had run there; on a worker with several threads two
blocks' warnings can be mixed up, so use single-threaded workers for exact warning
records).
``dask``, ``joblib`` and ``ray`` are imported only by the backend that uses them.

Faults. An interrupt (Ctrl-C) while blocks run cancels the blocks still queued or
running (``Client.cancel`` on Dask, ``ray.cancel`` on Ray; joblib terminates its
workers) and re-raises. A Dask worker lost mid-run is replaced by its nanny and the
scheduler reruns the blocks it held; since blocks are pure functions of their
indices, the figures are unchanged. An unreachable scheduler raises
:class:`SchedulerUnreachableError`, naming the address, within ``connect_timeout``
seconds.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import logging
import math
import numbers
import re
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numba

BACKENDS: tuple[str, ...] = ("threads", "loky", "dask", "ray")

#: Replicates per block on the thread backend when the caller does not choose.
THREAD_BLOCK_SIZE: int = 16

#: Blocks per task slot on the process and cluster backends when the caller does not
#: choose: enough for load balance and to bound the work a lost worker takes with it.
BLOCKS_PER_SLOT: int = 8

_ADDRESS = re.compile(r"^(?:[a-z][a-z0-9+.-]*://\S+|[^\s/:]+:\d+)$")  # scheme://... or host:port

BlockFunction = Callable[..., Any]
ProgressCallback = Callable[[int], Any]


class SchedulerUnreachableError(ConnectionError):
    """The scheduler of a distributed backend could not be reached in time."""

    def __init__(self, address: str, timeout: float, reason: str) -> None:
        super().__init__(
            f"cannot reach the scheduler at {address} within {timeout:g} s ({reason})."
        )
        self.address = address
        self.timeout = timeout


@dataclass(frozen=True, slots=True)
class Backend:
    """Where replicate blocks run.

    Attributes
    ----------
    kind : {"threads", "loky", "dask", "ray"}
        The backend (see the module docstring).
    workers : int or None
        Threads (``"threads"``), processes (``"loky"``), worker processes of the
        ``LocalCluster`` started for the session (``"dask"`` without ``scheduler``) or
        CPUs of a local Ray (``"ray"``). None: ``numba.get_num_threads()`` threads, or
        one worker per core.
    scheduler : str or None
        Address of an existing Dask scheduler (``"tcp://host:8786"``) or Ray cluster
        (``"ray://host:10001"`` or ``"auto"``); only with ``"dask"`` and ``"ray"``.
    connect_timeout : float
        Seconds to wait for the scheduler (and, on Dask, for its first worker) before
        :class:`SchedulerUnreachableError`.
    client : object or None
        An existing ``dask.distributed.Client`` to use as it is (then ``kind`` is
        ``"dask"``); the session neither starts nor closes it.

    Examples
    --------
    >>> Backend("dask", scheduler="tcp://127.0.0.1:8786")
    Backend(kind='dask', workers=None, scheduler='tcp://127.0.0.1:8786', connect_timeout=5.0)
    >>> Backend("dask", workers=0)
    Traceback (most recent call last):
    ...
    ValueError: `workers` must be an int >= 1 or None; got 0.
    """

    kind: str = "threads"
    workers: int | None = None
    scheduler: str | None = None
    connect_timeout: float = 5.0
    client: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        _validate_backend(self)


def _validate_backend(b: Backend) -> None:
    if b.kind not in BACKENDS:
        raise ValueError(f"`kind` must be one of {', '.join(BACKENDS)}; got {b.kind!r}.")
    if b.workers is not None and (
        isinstance(b.workers, bool) or not isinstance(b.workers, numbers.Integral) or b.workers < 1
    ):
        raise ValueError(f"`workers` must be an int >= 1 or None; got {b.workers!r}.")
    if b.scheduler is not None:
        if b.kind not in ("dask", "ray"):
            raise ValueError(
                f"`scheduler` is only for the 'dask' and 'ray' backends; got kind {b.kind!r}."
            )
        if not isinstance(b.scheduler, str) or not (
            b.scheduler == "auto" or _ADDRESS.match(b.scheduler)
        ):
            raise ValueError(
                f"`scheduler` must be an address such as 'tcp://host:8786'; got {b.scheduler!r}."
            )
        if b.workers is not None:
            raise ValueError(
                "`workers` and `scheduler` exclude each other (an existing cluster has its "
                f"own workers); got workers={b.workers} and scheduler={b.scheduler!r}."
            )
    if b.client is not None and b.kind != "dask":
        raise ValueError(f"`client` is only for the 'dask' backend; got kind {b.kind!r}.")
    timeout = b.connect_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout > 0:
        raise ValueError(f"`connect_timeout` must be a number > 0; got {timeout!r}.")


def as_backend(backend: Backend | str | Any) -> Backend:
    """Normalise ``backend`` to a :class:`Backend`.

    Parameters
    ----------
    backend : Backend, str or dask.distributed.Client
        A :class:`Backend`; a backend name (``"threads"``, ``"loky"``, ``"dask"``,
        ``"ray"``); a Dask scheduler address (``"tcp://host:8786"``); or a
        ``dask.distributed.Client``.

    Returns
    -------
    Backend

    Raises
    ------
    ValueError
        For an unknown name or a malformed address.
    TypeError
        For another type.

    Examples
    --------
    >>> as_backend("tcp://10.0.0.5:8786").kind
    'dask'
    >>> as_backend("threads").workers is None
    True
    """
    if isinstance(backend, Backend):
        return backend
    if isinstance(backend, str):
        if backend in BACKENDS:
            return Backend(backend)
        if "://" in backend:
            return Backend("dask", scheduler=backend)
        raise ValueError(
            f"`backend` must be one of {', '.join(BACKENDS)} or a scheduler address "
            f"('tcp://host:port'); got {backend!r}."
        )
    if type(backend).__module__.startswith("distributed"):
        return Backend("dask", client=backend)
    raise TypeError(
        "`backend` must be a Backend, a backend name, a scheduler address or a "
        f"dask.distributed.Client; got {type(backend).__name__}."
    )


# --------------------------------------------------------------------------- block calls
def _call_pinned(function: BlockFunction, start: int, stop: int, args: tuple) -> Any:
    """Run one block with numba pinned to one thread (the task owns one core)."""
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return function(start, stop, *args)
    finally:
        numba.set_num_threads(previous)


def _call_remote(function: BlockFunction, start: int, stop: int, args: tuple) -> tuple:
    """Run one block in another process: (result, the warnings it emitted)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _call_pinned(function, start, stop, args)
    return result, [(w.category, str(w.message), w.filename, w.lineno) for w in caught]


def _replayed(outs: list[tuple]) -> list[Any]:
    """Re-emit the blocks' warnings here, in block order; return the blocks' results.

    A warning a block emits on a worker is thus seen by the caller (and recorded by a
    ``warnings.catch_warnings`` around the call) as if the block had run here.
    """
    for _, records in outs:
        for category, message, filename, lineno in records:
            warnings.warn_explicit(message, category, filename, lineno)
    return [result for result, _ in outs]


def _check_block(result: Any, start: int, stop: int) -> Any:
    if len(result) != stop - start:
        raise ValueError(
            f"a block function must return one result per replicate; block [{start}, {stop}) "
            f"returned {len(result)}."
        )
    return result


def blocks_of(n_items: int, block_size: int) -> list[tuple[int, int]]:
    """Split ``range(n_items)`` into consecutive ``[start, stop)`` blocks.

    Examples
    --------
    >>> blocks_of(10, 4)
    [(0, 4), (4, 8), (8, 10)]
    """
    return [(s, min(s + block_size, n_items)) for s in range(0, n_items, block_size)]


# --------------------------------------------------------------------------- executors
class Session(abc.ABC):
    """An open backend: runs replicate blocks and says where they ran.

    Created by :func:`use_backend`; not instantiated directly.

    Attributes
    ----------
    backend : Backend
        The backend it was opened for.
    description : str
        Where the work runs, for logs and reports (e.g. ``"dask scheduler
        tcp://127.0.0.1:8786: 2 workers, 2 threads"``).
    slots : int
        Blocks that can run at the same time.
    """

    backend: Backend
    description: str
    slots: int

    def default_block_size(self, n_items: int) -> int:
        """Replicates per block when the caller does not choose."""
        return max(1, math.ceil(n_items / (BLOCKS_PER_SLOT * self.slots)))

    @abc.abstractmethod
    def run(
        self,
        function: BlockFunction,
        blocks: Sequence[tuple[int, int]],
        args: tuple,
        on_block: Callable[[int, int], Any],
    ) -> list[Any]:
        """Run ``function(start, stop, *args)`` for every block; results in block order.

        ``on_block(start, stop)`` is called as each block's result arrives.
        """

    def close(self) -> None:  # noqa: B027 - most sessions hold nothing to release
        """Release what the session started (threads, processes, cluster, client)."""
        return None


def _library(module: str, kind: str, install: str) -> Any:
    """Import the library a backend needs (only when that backend is asked for)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"the {kind!r} backend needs {module}: {install}") from exc


class _ThreadSession(Session):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.slots = backend.workers or numba.get_num_threads()
        self.description = f"in-process: {self.slots} thread{'s' if self.slots > 1 else ''}"

    def default_block_size(self, n_items: int) -> int:
        return THREAD_BLOCK_SIZE

    def run(self, function, blocks, args, on_block):
        import concurrent.futures

        n = min(self.slots, len(blocks))
        call = _call_pinned if n > 1 else (lambda f, start, stop, a: f(start, stop, *a))

        def one(start: int, stop: int) -> Any:
            out = _check_block(call(function, start, stop, args), start, stop)
            on_block(start, stop)
            return out

        if n <= 1:
            return [one(s, e) for s, e in blocks]
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=n)
        try:
            futures = [pool.submit(one, s, e) for s, e in blocks]
            return [f.result() for f in futures]
        finally:  # on an error or an interrupt, queued blocks never start
            pool.shutdown(wait=True, cancel_futures=True)


class _LokySession(Session):
    def __init__(self, backend: Backend) -> None:
        self._joblib = joblib = _library("joblib", "loky", "pip install 'abrec-validate[loky]'")
        self.backend = backend
        self.slots = backend.workers or joblib.cpu_count()
        self.description = f"loky: {self.slots} local processes"

    def run(self, function, blocks, args, on_block):
        joblib = self._joblib
        parallel = joblib.Parallel(n_jobs=self.slots, backend="loky", return_as="generator")
        calls = (joblib.delayed(_call_remote)(function, s, e, args) for s, e in blocks)
        out = []
        for (s, e), (res, records) in zip(blocks, parallel(calls), strict=True):
            out.append((_check_block(res, s, e), records))
            on_block(s, e)
        return _replayed(out)


class _DaskSession(Session):
    def __init__(self, backend: Backend) -> None:
        self._distributed = distributed = _library(
            "distributed", "dask", "pip install 'abrec-validate[dask]'"
        )
        self.backend = backend
        self._cluster = None
        self._own_client = backend.client is None
        timeout = float(backend.connect_timeout)
        if backend.client is not None:
            self.client = backend.client
            where = f"dask client of scheduler {self.client.scheduler.address}"
        elif backend.scheduler is not None:
            address = backend.scheduler
            try:
                self.client = distributed.Client(address, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise SchedulerUnreachableError(address, timeout, str(exc) or "timed out") from exc
            where = f"dask scheduler {address}"
        else:
            self._cluster = distributed.LocalCluster(
                n_workers=backend.workers or _cpu_count(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                # no dashboard, and the scheduler's HTTP routes on a free local port
                # (not on 8787, which another cluster of this machine may hold)
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.ERROR,
                env={"NUMBA_NUM_THREADS": "1"},
            )
            self.client = distributed.Client(self._cluster, set_as_default=False)
            where = f"dask LocalCluster {self._cluster.scheduler_address}"
        address = self.client.scheduler.address
        try:
            self.client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            self.close()
            raise SchedulerUnreachableError(
                address, timeout, "no worker joined the scheduler"
            ) from exc
        workers = self.client.scheduler_info()["workers"].values()
        self.slots = max(1, sum(int(w.get("nthreads", 1)) for w in workers))
        n = len(workers)
        self.description = f"{where}: {n} worker{'s' if n != 1 else ''}, {self.slots} threads"

    def run(self, function, blocks, args, on_block):
        distributed = self._distributed
        token = uuid.uuid4().hex  # fresh keys per call: never another call's (or user's) result
        n = len(blocks)
        futures = self.client.map(  # one graph update for all blocks
            _call_remote,
            [function] * n,
            [s for s, _ in blocks],
            [e for _, e in blocks],
            [args] * n,
            key=[f"abrec-block-{token}-{s}-{e}" for s, e in blocks],
            pure=False,
        )
        index = {f.key: i for i, f in enumerate(futures)}
        out: list[Any] = [None] * n
        try:
            # results are gathered in batches by the client's event loop; the iteration
            # polls every 0.1 s, so an interrupt is seen at once
            done = distributed.as_completed(futures, with_results=True, loop=self.client.loop)
            for batch in done.batches():
                for fut, (result, records) in batch:
                    i = index[fut.key]
                    s, e = blocks[i]
                    out[i] = (_check_block(result, s, e), records)
                    on_block(s, e)
        except BaseException:
            self.client.cancel(futures, force=True)
            raise
        return _replayed(out)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._own_client:
                self.client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()


class _RaySession(Session):
    def __init__(self, backend: Backend) -> None:
        self._ray = ray = _library("ray", "ray", "pip install ray")
        self.backend = backend
        self._started = not ray.is_initialized()
        if self._started:
            if backend.scheduler is not None:
                try:
                    ray.init(address=backend.scheduler, log_to_driver=False)
                except (ConnectionError, OSError, TimeoutError) as exc:
                    raise SchedulerUnreachableError(
                        backend.scheduler, backend.connect_timeout, str(exc)
                    ) from exc
            else:
                ray.init(num_cpus=backend.workers or _cpu_count(), log_to_driver=False)
        self.slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.description = f"ray: {self.slots} CPUs"
        self._remote = ray.remote(num_cpus=1)(_call_remote)

    def run(self, function, blocks, args, on_block):
        ray = self._ray
        refs = [self._remote.remote(function, s, e, args) for s, e in blocks]
        index = {ref: i for i, ref in enumerate(refs)}
        out: list[Any] = [None] * len(blocks)
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=0.25)
                for ref in done:
                    i = index[ref]
                    s, e = blocks[i]
                    result, records = ray.get(ref)
                    out[i] = (_check_block(result, s, e), records)
                    on_block(s, e)
        except BaseException:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise
        return _replayed(out)

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_SESSIONS: dict[str, type[Session]] = {
    "threads": _ThreadSession,
    "loky": _LokySession,
    "dask": _DaskSession,
    "ray": _RaySession,
}

_ACTIVE: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "sim_fanout_session", default=None
)


def open_session(backend: Backend | str | Any) -> Session:
    """Open ``backend`` (start its cluster or connect to its scheduler); close it yourself.

    Raises
    ------
    SchedulerUnreachableError
        When a scheduler address does not answer within ``connect_timeout``.
    """
    b = as_backend(backend)
    return _SESSIONS[b.kind](b)


@contextlib.contextmanager
def use_backend(backend: Backend | str | Any) -> Iterator[Session]:
    """Open ``backend`` for the block; :func:`map_blocks` calls inside it use it by default.

    The cluster or client the session started is closed when the block exits (also on
    an error or an interrupt). Calls running inside blocks on workers are not affected
    (they run serially, numba pinned to one thread).

    Examples
    --------
    >>> with use_backend(Backend("threads", workers=2)) as session:
    ...     session.description
    'in-process: 2 threads'
    """
    session = open_session(backend)
    token = _ACTIVE.set(session)
    try:
        yield session
    finally:
        _ACTIVE.reset(token)
        session.close()


def active_session() -> Session | None:
    """Return the session of the innermost :func:`use_backend` block, or None."""
    return _ACTIVE.get()


def serial_unless_distributed() -> Backend | None:
    """Backend for block functions that must not share a process's threads.

    Returns None (:func:`map_blocks` then uses the enclosing :func:`use_backend`
    session) when that session runs blocks in other processes (loky, Dask, Ray), and
    otherwise ``Backend("threads", workers=1)``: the blocks run one after another in
    the calling thread, as a plain loop. For block functions that record warnings
    (``warnings.catch_warnings`` is not thread-safe) or call code that need not be
    thread-safe (a user's estimator).

    Examples
    --------
    >>> serial_unless_distributed()
    Backend(kind='threads', workers=1, scheduler=None, connect_timeout=5.0)
    """
    session = active_session()
    if session is not None and session.backend.kind != "threads":
        return None
    return Backend("threads", workers=1)


def map_blocks(
    function: BlockFunction,
    n_items: int,
    *,
    args: tuple = (),
    block_size: int | None = None,
    backend: Backend | str | Any | None = None,
    progress: ProgressCallback | None = None,
) -> list[Any]:
    """Run ``function(start, stop, *args)`` over replicate blocks of ``range(n_items)``.

    Parameters
    ----------
    function : callable
        A picklable (module-level, or cloudpickle-able) function of a block; it returns
        one result per replicate (anything with ``len == stop - start``), depending
        only on the replicate indices and ``args``.
    n_items : int
        Number of replicates, >= 0.
    args : tuple, optional
        Further arguments, the same for every block (sent with each block).
    block_size : int or None, optional
        Replicates per block; None: the backend's default (16 on threads, otherwise
        about ``BLOCKS_PER_SLOT`` blocks per task slot). It never changes the results.
    backend : Backend, str, dask.distributed.Client or None, optional
        Where to run; None: the session of the enclosing :func:`use_backend`, else
        threads in this process. A backend given here is opened for this call only.
    progress : callable or None, optional
        Called with the number of replicates of each finished block.

    Returns
    -------
    list
        The blocks' results in block order (block ``k`` covers replicates
        ``[k * block_size, (k + 1) * block_size)``).

    Notes
    -----
    Replicate ``r`` is placed in the block that holds index ``r``; the blocks' results
    come back in index order whatever order they finished in. A block function that
    seeds replicate ``r`` from child ``r`` of one root seed sequence therefore gives
    bit-identical results for any backend, worker count and block size.

    Examples
    --------
    >>> import numpy as np
    >>> def squares(start, stop):
    ...     return np.arange(start, stop) ** 2
    >>> np.concatenate(map_blocks(squares, 7, block_size=3)).tolist()
    [0, 1, 4, 9, 16, 25, 36]
    """
    if isinstance(n_items, bool) or not isinstance(n_items, numbers.Integral) or n_items < 0:
        raise ValueError(f"`n_items` must be an int >= 0; got {n_items!r}.")
    if block_size is not None and (
        isinstance(block_size, bool)
        or not isinstance(block_size, numbers.Integral)
        or block_size < 1
    ):
        raise ValueError(f"`block_size` must be an int >= 1 or None; got {block_size!r}.")
    if not isinstance(args, tuple):
        raise TypeError(f"`args` must be a tuple; got {type(args).__name__}.")
    if n_items == 0:
        return []

    def on_block(start: int, stop: int) -> None:
        if progress is not None:
            progress(stop - start)

    with contextlib.ExitStack() as stack:
        if backend is not None:
            session = stack.enter_context(use_backend(backend))
        else:
            session = active_session() or _ThreadSession(Backend("threads"))
        size = int(block_size) if block_size is not None else session.default_block_size(n_items)
        return session.run(function, blocks_of(int(n_items), size), args, on_block)
