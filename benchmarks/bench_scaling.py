"""Scaling of the A/B replicate engine (issue 7, item 3).

``sim.simulate_moments(ReferenceCtr(), n_users, n_replicates)`` (docs/theory.md §2 reference
scenario) timed

* against ``n_users`` = 10^3 ... 10^6 at a fixed budget of about ``--budget``
  user-replicates per cell (n_replicates = budget / n_users, at least 8), and
* against ``n_replicates`` = 10 ... 10^4 at 10,578 users (the published power check),

each at 1 and 2 numba threads, measured side by side (the two thread counts run
back to back inside every repetition). The table gives the median wall time and
process CPU time of ``--runs`` runs, ns per simulated user, replicates per second
and the 1 -> 2 thread speed-up. ``simulate_moments`` parallelises over replicates
in chunks of ``chunk_size``; a cell with few replicates uses
``chunk_size = max(1, min(16, n_replicates // 8))`` (it does not change the result)
so that both threads get work. Usage::

    .venv/bin/python benchmarks/bench_scaling.py [--runs 3] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numba

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim import ReferenceCtr, simulate_moments  # noqa: E402

USERS_GRID = (1_000, 10_000, 100_000, 1_000_000)
REPS_GRID = (10, 100, 1_000, 10_000)
N_REFERENCE = 10_578


def _chunk(n_replicates: int) -> int:
    return max(1, min(16, n_replicates // 8))


def time_cell(scenario, n_users: int, n_replicates: int, threads: tuple[int, ...], runs: int):
    """Median (wall, CPU) seconds per thread count, interleaved within each run."""
    wall = {t: [] for t in threads}
    cpu = {t: [] for t in threads}
    chunk = _chunk(n_replicates)
    for _ in range(runs):
        for t in threads:
            numba.set_num_threads(t)
            c0, t0 = time.process_time(), time.perf_counter()
            simulate_moments(scenario, n_users, n_replicates, rng=0, chunk_size=chunk)
            wall[t].append(time.perf_counter() - t0)
            cpu[t].append(time.process_time() - c0)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return (
        {t: statistics.median(v) for t, v in wall.items()},
        {t: statistics.median(v) for t, v in cpu.items()},
    )


def _rows(cells, threads):
    lines = []
    for (n_users, n_reps), (wall, cpu) in cells.items():
        t1 = threads[0]
        work = n_users * n_reps
        row = f"| {n_users:,} | {n_reps:,} | {_chunk(n_reps)} |"
        for t in threads:
            row += f" {wall[t]:.3f} | {cpu[t]:.3f} | {wall[t] / work * 1e9:.1f} |"
        row += f" {n_reps / min(wall.values()):,.0f} |"
        if len(threads) > 1:
            row += f" {wall[t1] / wall[threads[-1]]:.2f}x |"
        lines.append(row)
    return lines


def main(argv=None):
    """Command-line entry point; returns {(n_users, n_replicates): (wall, cpu)}."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--budget", type=float, default=2e7, help="user-replicates per cell")
    ap.add_argument("--max-users", type=int, default=USERS_GRID[-1])
    ap.add_argument("--max-reps", type=int, default=REPS_GRID[-1])
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args(argv)

    scenario = ReferenceCtr()
    threads = tuple(sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}))
    simulate_moments(scenario, 1_000, 4, rng=0)  # JIT load, pool draw
    load0 = os.getloadavg()[0]

    by_users = {}
    for n in (n for n in USERS_GRID if n <= args.max_users):
        reps = max(8, int(args.budget // n))
        by_users[(n, reps)] = time_cell(scenario, n, reps, threads, args.runs)
    by_reps = {}
    for reps in (r for r in REPS_GRID if r <= args.max_reps):
        runs = args.runs if reps * N_REFERENCE <= 4 * args.budget else 1
        by_reps[(N_REFERENCE, reps)] = time_cell(scenario, N_REFERENCE, reps, threads, runs)

    head = "| n_users | n_replicates | chunk |"
    sep = "| ---: | ---: | ---: |"
    for t in threads:
        head += f" wall s, {t} thr | CPU s, {t} thr | ns / user, {t} thr |"
        sep += " ---: | ---: | ---: |"
    head += " replicates / s (best) |"
    sep += " ---: |"
    if len(threads) > 1:
        head += " speed-up 1 -> 2 threads |"
        sep += " ---: |"
    lines = [
        f"Scaling of `simulate_moments` (reference scenario); median of {args.runs} "
        f"runs (the 10^4-replicate cell: 1 run when it exceeds 4x the budget); thread "
        f"counts interleaved within each run; load average {load0:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end (2 cores shared with other jobs). Only the two "
        "thread counts of one cell are side by side; cells run one after another, so "
        "their ns / user also moves with the load (on a virtual machine whose host is "
        "busy, CPU time inflates too).",
        "",
        f"Against n_users (about {args.budget:.0e} user-replicates per cell):",
        "",
        head,
        sep,
        *_rows(by_users, threads),
        "",
        f"Against n_replicates ({N_REFERENCE:,} users):",
        "",
        head,
        sep,
        *_rows(by_reps, threads),
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return {**by_users, **by_reps}


if __name__ == "__main__":
    main()
