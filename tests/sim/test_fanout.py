"""Tests of the fan-out layer (sim._fanout) and simulate_moments(backend=...).

The Dask tests start one ``LocalCluster`` of 2 single-threaded worker processes for the
module (dashboard off) through the layer itself; every wait on it is bounded (connect
and worker timeouts, bounded polling loops), so a broken cluster fails the test instead
of hanging it. Figures are compared bit for bit (``np.array_equal``), never within a
tolerance: the claim is that the backend does not change a single bit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numba
import numpy as np
import pytest
from _fanout_blocks import (
    failing_block,
    numba_threads_block,
    slow_moments_block,
    warning_block,
    wrong_length_block,
)

from sim import (
    MOMENT_NAMES,
    Backend,
    BetaBinomialCtr,
    Deng2018Classes,
    ReferenceCtr,
    SchedulerUnreachableError,
    as_seed_sequence,
    map_blocks,
    simulate_moments,
    use_backend,
)
from sim._fanout import as_backend, blocks_of, open_session

distributed = pytest.importorskip("distributed")
# the scheduler serves HTTP even without a dashboard: on a free port, not 8787 (which
# another cluster on this machine may hold; the warning would be an error here)
NO_HTTP_PORT = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}

SCENARIO = Deng2018Classes()
N_USERS, N_REPS, SEED = 80, 23, 11


def _assert_same_moments(a, b):
    for name in MOMENT_NAMES:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.seed == b.seed


@pytest.fixture(scope="module")
def in_process():
    return simulate_moments(SCENARIO, N_USERS, N_REPS, rng=SEED)


@pytest.fixture(scope="module")
def dask_session():
    session = open_session(Backend("dask", workers=2, connect_timeout=60))
    try:
        yield session
    finally:
        session.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scheduler_tasks(client, prefix="abrec-block"):
    def keys(dask_scheduler):
        return [str(k) for k in dask_scheduler.tasks if str(k).startswith(prefix)]

    return client.run_on_scheduler(keys)


# --------------------------------------------------------------------------- the layer
def test_blocks_cover_every_index_once():
    for n, size in [(1, 1), (10, 3), (10, 10), (10, 11), (64, 16)]:
        blocks = blocks_of(n, size)
        assert [i for s, e in blocks for i in range(s, e)] == list(range(n))
        assert all(0 < e - s <= size for s, e in blocks)


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("block_size", [1, 4, None, 100])
def test_map_blocks_in_index_order(workers, block_size):
    def block(start, stop):
        time.sleep(0.001 * ((7 * start) % 5))  # blocks finish out of order
        return np.arange(start, stop)

    seen = []
    out = map_blocks(
        block, 37, block_size=block_size, backend=Backend("threads", workers=workers),
        progress=seen.append,
    )  # fmt: skip
    assert np.concatenate(out).tolist() == list(range(37))
    assert sum(seen) == 37


def test_map_blocks_empty_and_active_session():
    assert map_blocks(lambda s, e: [0] * (e - s), 0) == []
    with use_backend(Backend("threads", workers=2)) as session:
        assert session.description == "in-process: 2 threads"
        assert len(map_blocks(numba_threads_block, 5)[0]) == 5


def test_thread_blocks_pin_numba_to_one_thread():
    before = numba.get_num_threads()
    out = np.concatenate(map_blocks(numba_threads_block, 6, block_size=1, backend="threads"))
    if min(numba.get_num_threads(), 6) > 1:
        assert (out[:, 0] == 1).all()
    assert numba.get_num_threads() == before  # the caller's setting is restored


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: Backend("cluster"),
            r"`kind` must be one of threads, loky, dask, ray; got 'cluster'",
        ),
        (lambda: Backend("dask", workers=0), r"`workers` must be an int >= 1 or None; got 0"),
        (lambda: Backend("dask", workers=True), r"`workers` must be an int >= 1 or None; got True"),
        (lambda: Backend("threads", scheduler="tcp://h:1"), r"`scheduler` is only for the 'dask'"),
        (lambda: Backend("dask", scheduler="not an address"), r"`scheduler` must be an address"),
        (
            lambda: Backend("dask", scheduler="tcp://h:1", workers=2),
            r"`workers` and `scheduler` exclude each other",
        ),
        (lambda: Backend("dask", connect_timeout=0), r"`connect_timeout` must be a number > 0"),
        (lambda: Backend("loky", client=object()), r"`client` is only for the 'dask' backend"),
        (lambda: as_backend("dusk"), r"`backend` must be one of .* got 'dusk'"),
        (lambda: map_blocks(failing_block, -1), r"`n_items` must be an int >= 0; got -1"),
        (lambda: map_blocks(failing_block, 3, block_size=0), r"`block_size` must be an int >= 1"),
        (lambda: map_blocks(wrong_length_block, 5, block_size=2), r"block \[0, 2\) returned 3"),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_type_errors():
    with pytest.raises(TypeError, match=r"`backend` must be a Backend.*got int"):
        as_backend(3)
    with pytest.raises(TypeError, match=r"`args` must be a tuple; got list"):
        map_blocks(failing_block, 3, args=[1])


def test_block_error_propagates():
    with pytest.raises(ArithmeticError, match=r"replicate 3 failed"):
        map_blocks(failing_block, 8, block_size=2, backend=Backend("threads", workers=2))


@pytest.mark.slow
def test_importing_sim_imports_no_distributed_library():
    code = (
        "import sys, sim; sim.map_blocks(lambda s, e: [0] * (e - s), 9, block_size=2); "
        "print(sorted(m for m in ('dask', 'distributed', 'joblib', 'ray') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- simulate_moments
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("chunk_size", [1, 7, None])
def test_moments_identical_on_threads(in_process, workers, chunk_size):
    mom = simulate_moments(
        SCENARIO, N_USERS, N_REPS, rng=SEED, chunk_size=chunk_size,
        backend=Backend("threads", workers=workers),
    )  # fmt: skip
    _assert_same_moments(mom, in_process)


@pytest.mark.slow  # starting loky's processes takes about 10 s on 2 busy cores
def test_moments_identical_on_loky(in_process):
    pytest.importorskip("joblib")
    mom = simulate_moments(
        SCENARIO, N_USERS, N_REPS, rng=SEED, chunk_size=5, backend=Backend("loky", workers=2)
    )
    _assert_same_moments(mom, in_process)
    pinned = np.concatenate(map_blocks(numba_threads_block, 4, block_size=1, backend="loky"))
    assert (pinned[:, 0] == 1).all()


@pytest.mark.slow
def test_moments_identical_on_dask_any_block_size(dask_session, in_process):
    assert dask_session.description.startswith("dask LocalCluster tcp://127.0.0.1:")
    assert dask_session.description.endswith(": 2 workers, 2 threads")
    address = dask_session.client.scheduler.address
    for chunk_size, backend in [
        (1, Backend("dask", client=dask_session.client)),
        (7, dask_session.client),
        (None, address),  # a new client of the same scheduler
    ]:
        mom = simulate_moments(
            SCENARIO, N_USERS, N_REPS, rng=SEED, chunk_size=chunk_size, backend=backend
        )
        _assert_same_moments(mom, in_process)
    with use_backend(address) as session:  # the ambient session of a use_backend block
        assert session.description == f"dask scheduler {address}: 2 workers, 2 threads"
        _assert_same_moments(simulate_moments(SCENARIO, N_USERS, N_REPS, rng=SEED), in_process)


@pytest.mark.parametrize("scenario", [ReferenceCtr(), BetaBinomialCtr()])
def test_moments_identical_on_dask_other_scenarios(dask_session, scenario):
    ss = as_seed_sequence(5).spawn(1)[0]  # a child sequence: spawn_key travels with it
    here = simulate_moments(scenario, (30, 50), 9, rng=ss, chunk_size=4, backend="threads")
    there = simulate_moments(scenario, (30, 50), 9, rng=ss, backend=dask_session.client)
    _assert_same_moments(here, there)


def test_dask_workers_pin_numba(dask_session):
    out = np.concatenate(
        map_blocks(numba_threads_block, 4, block_size=1, backend=dask_session.client)
    )
    assert out.tolist() == [[1, 1]] * 4  # one numba thread, NUMBA_NUM_THREADS=1 on the worker


def test_dask_block_warnings_reach_the_caller_in_block_order(dask_session):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        map_blocks(warning_block, 6, block_size=2, backend=dask_session.client)
    assert [str(w.message) for w in caught] == [
        "block [0, 2) warns",
        "block [2, 4) warns",
        "block [4, 6) warns",
    ]
    assert all(w.category is RuntimeWarning for w in caught)


def test_dask_block_error_propagates(dask_session):
    with pytest.raises(ArithmeticError, match=r"replicate 3 failed"):
        map_blocks(failing_block, 8, block_size=2, backend=dask_session.client)


def test_unreachable_scheduler_fails_fast_naming_it():
    address = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    with pytest.raises(SchedulerUnreachableError, match=rf"scheduler at {address} within 2 s"):
        simulate_moments(
            SCENARIO, 20, 2, rng=0, backend=Backend("dask", scheduler=address, connect_timeout=2)
        )
    assert time.monotonic() - t0 < 8.0


def test_interrupt_cancels_the_cluster_futures(dask_session):
    client = dask_session.client
    main = threading.get_ident()
    started = threading.Event()

    def interrupt_once_running():
        deadline = time.monotonic() + 30
        while not _scheduler_tasks(client) and time.monotonic() < deadline:
            time.sleep(0.05)
        started.set()
        time.sleep(0.3)
        signal.pthread_kill(main, signal.SIGINT)

    timer = threading.Thread(target=interrupt_once_running, daemon=True)
    timer.start()
    args = (2.0, SCENARIO, 40, 40, as_seed_sequence(0))
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt) as excinfo:  # excinfo keeps the futures referenced
        map_blocks(slow_moments_block, 20, args=args, block_size=1, backend=client)
    timer.join(5)
    assert started.is_set()
    assert time.monotonic() - t0 < 20.0  # not the 20 s x 2.0 s / 2 workers of the whole run
    deadline = time.monotonic() + 10
    while _scheduler_tasks(client) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _scheduler_tasks(client) == [], "the interrupted run left tasks on the scheduler"
    assert excinfo.value is not None


@pytest.mark.slow
def test_killed_worker_is_retried_and_figures_identical(dask_session):
    client = dask_session.client
    ss = as_seed_sequence(SEED)
    args = (0.25, SCENARIO, 40, 40, ss)
    expected = map_blocks(
        slow_moments_block, 12, args=(0.0, *args[1:]), block_size=1, backend="threads"
    )
    killed = {}

    def kill_a_busy_worker():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                killed.update(address=busy[0], pid=pid)
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    killer.start()
    got = map_blocks(slow_moments_block, 12, args=args, block_size=1, backend=client)
    killer.join(5)
    assert killed, "no worker was busy: the test did not kill anything"
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    # the nanny restarts the killed worker; wait for 2 live workers (for the other tests)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = client.run(os.getpid, on_error="ignore")
        if len(pids) == 2:
            break
        time.sleep(0.2)
    assert len(pids) == 2 and killed["pid"] not in pids.values()


def test_scheduler_without_workers_fails_fast():
    with distributed.LocalCluster(
        n_workers=0,
        processes=False,
        dashboard_address=None,
        scheduler_kwargs=NO_HTTP_PORT,
        silence_logs=40,
    ) as lc:
        address = lc.scheduler_address
        t0 = time.monotonic()
        with pytest.raises(SchedulerUnreachableError, match=r"no worker joined the scheduler"):
            open_session(Backend("dask", scheduler=address, connect_timeout=1))
        assert time.monotonic() - t0 < 6.0


def test_moments_identical_on_ray(in_process):
    pytest.importorskip("ray")  # optional: exercised only where ray is installed
    mom = simulate_moments(
        SCENARIO, N_USERS, N_REPS, rng=SEED, chunk_size=4, backend=Backend("ray", workers=2)
    )
    _assert_same_moments(mom, in_process)
