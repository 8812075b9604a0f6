"""Benchmark of the A/B replicate engine on the docs/theory.md §2 reference scenario.

1,000 replicates x 10,578 users (5,289 per arm, the published power check), all
in one run:

* suite: ``sim.simulate_moments`` at 1 and 2 numba threads;
* RNG floor: a numba kernel making only the random draws the scenario needs, from
  the same generator (PCG64 per replicate, created the same way), 1 and 2 threads;
* vectorised NumPy (benchmarks/baselines.py), timed on ``--numpy-reps`` replicates
  and extrapolated to 1,000;
* straightforward pandas (Python loop over users building session rows, then a
  groupby), timed on ``--pandas-reps`` replicates and extrapolated to 1,000.

Each timing is the median of ``--runs`` runs. Usage::

    .venv/bin/python benchmarks/bench_sim.py [--runs 5] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baselines import numpy_replicate, pandas_replicate  # noqa: E402

from sim import ReferenceCtr, as_seed_sequence, child_sequences, simulate_moments  # noqa: E402
from sim._ab_kernels import _reference_floor_kernel  # noqa: E402

N_USERS = 10_578
N_REPLICATES = 1_000


CPU = {}


def _median_time(fn, runs, key=None):
    """Median wall time of ``runs`` calls; the median process CPU time goes to CPU[key]."""
    times, cpu = [], []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    if key is not None:
        CPU[key] = statistics.median(cpu)
    return statistics.median(times)


def _floor(children, pool, threads):
    _, _, low, width = pool
    size = pool[0].size

    def work(chunk):
        for ss in chunk:
            _reference_floor_kernel(
                np.random.Generator(np.random.PCG64(ss)), N_USERS, size, low, width
            )

    chunks = [children[i : i + 16] for i in range(0, len(children), 16)]
    if threads == 1:
        for c in chunks:
            work(c)
    else:
        with concurrent.futures.ThreadPoolExecutor(threads) as ex:
            list(ex.map(work, chunks))


def _baseline(fn, children, pool, reps):
    n_c, n_t = N_USERS - N_USERS // 2, N_USERS // 2
    for ss in children[:reps]:
        fn(np.random.Generator(np.random.PCG64(ss)), n_c, n_t, *pool)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--numpy-reps", type=int, default=200)
    ap.add_argument("--pandas-reps", type=int, default=3)
    ap.add_argument("--pandas-runs", type=int, default=3)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args(argv)

    scenario = ReferenceCtr()
    pool = scenario.pool_arrays()
    children = child_sequences(as_seed_sequence(0), N_REPLICATES)
    max_threads = numba.config.NUMBA_NUM_THREADS

    # warm-up (JIT load from cache, pool draw)
    simulate_moments(scenario, N_USERS, 4, rng=0)
    _floor(children[:2], pool, 1)

    res = {}
    for threads in sorted({1, min(2, max_threads)}):
        numba.set_num_threads(threads)
        res[f"suite_{threads}"] = _median_time(
            lambda: simulate_moments(scenario, N_USERS, N_REPLICATES, rng=0),
            args.runs,
            f"suite_{threads}",
        )
        res[f"floor_{threads}"] = _median_time(
            lambda t=threads: _floor(children, pool, t), args.runs, f"floor_{threads}"
        )
    numba.set_num_threads(max_threads)
    res["numpy"] = _median_time(
        lambda: _baseline(numpy_replicate, children, pool, args.numpy_reps), args.runs, "numpy"
    ) * (N_REPLICATES / args.numpy_reps)
    CPU["numpy"] *= N_REPLICATES / args.numpy_reps
    res["pandas"] = _median_time(
        lambda: _baseline(pandas_replicate, children, pool, args.pandas_reps),
        args.pandas_runs,
        "pandas",
    ) * (N_REPLICATES / args.pandas_reps)
    CPU["pandas"] *= N_REPLICATES / args.pandas_reps

    best = min(v for k, v in res.items() if k.startswith("suite"))
    t2 = res.get("suite_2", res["suite_1"])
    f2 = res.get("floor_2", res["floor_1"])
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
        f"(numba threads available: {max_threads}); numpy {np.__version__}, "
        f"numba {numba.__version__}; load average at start {os.getloadavg()[0]:.2f}.",
        "",
        f"docs/theory.md §2 reference scenario, {N_REPLICATES:,} replicates x {N_USERS:,} users; "
        f"median of {args.runs} runs (pandas: {args.pandas_runs} runs of {args.pandas_reps} "
        f"replicates, NumPy: {args.numpy_reps} replicates, both extrapolated to "
        f"{N_REPLICATES:,}).",
        "",
        "Wall = elapsed seconds; CPU = process CPU seconds (all threads), which other jobs "
        "on shared cores disturb far less than wall time.",
        "",
        "| implementation | wall s / 1,000 reps | replicates / s (wall) | wall / suite best "
        "| CPU s / 1,000 reps | CPU / suite 1-thread CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    labels = {
        "suite_1": "suite `simulate_moments`, 1 thread",
        "suite_2": "suite `simulate_moments`, 2 threads",
        "floor_1": "RNG floor (draws only), 1 thread",
        "floor_2": "RNG floor (draws only), 2 threads",
        "numpy": "vectorised NumPy (extrapolated)",
        "pandas": "pandas loop + groupby (extrapolated)",
    }
    for key, label in labels.items():
        if key in res:
            t = res[key]
            lines.append(
                f"| {label} | {t:.3f} | {N_REPLICATES / t:,.0f} | {t / best:.2f}x "
                f"| {CPU[key]:.3f} | {CPU[key] / CPU['suite_1']:.2f}x |"
            )
    lines += [
        "",
        f"- vs pandas: {res['pandas'] / best:,.0f}x wall, "
        f"{CPU['pandas'] / CPU['suite_1']:,.0f}x CPU (target >= 500x)",
        f"- vs NumPy: {res['numpy'] / best:.1f}x wall, "
        f"{CPU['numpy'] / CPU['suite_1']:.1f}x CPU (target >= 3x)",
        f"- suite / RNG floor at 1 thread: {res['suite_1'] / res['floor_1']:.2f} wall, "
        f"{CPU['suite_1'] / CPU['floor_1']:.2f} CPU (target <= 1.25); "
        f"at 2 threads: {t2 / f2:.2f} wall",
        f"- thread scaling 1 -> 2: {res['suite_1'] / t2:.2f}x wall (target >= 1.8x); "
        f"load average at end {os.getloadavg()[0]:.2f}",
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
