"""The Monte Carlo in-process vs on a 2-worker Dask LocalCluster (issue 15).

Measured in one process, one after the other:

1. **Profile run.** ``validation.runner.run_checks`` on the selected checks (default:
   every check of the ``full`` profile whose replicates go through ``sim.map_blocks``;
   ``--all`` for the whole profile), first in-process (numba's thread count of
   Python threads, 2 here), then inside ``sim.use_backend(Backend("dask",
   workers=2))`` (a ``LocalCluster`` of 2 single-threaded worker processes, started
   before the clock starts; its start-up is reported apart). The figures of the two
   runs are compared (they must be identical); the table gives each check's wall
   time on both and the overhead ratio cluster / in-process.
2. **Model inputs.** The serial cost of one replicate (``simulate_moments`` of the
   reference scenario at 10,578 users, one thread) -> replicates per second per core;
   the cost of one block on the cluster (a block that does nothing, 400 of them);
   and ``simulate_moments`` of 512 replicates on the cluster at block sizes 1, 16
   and 128 against in-process. docs/scaling.md turns these into the model for N
   machines.

Usage::

    .venv/bin/python benchmarks/bench_dask.py [--profile full] [--all] [--only NAME ...]
        [--markdown benchmarks/RESULTS_dask.md] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim import Backend, ReferenceCtr, map_blocks, simulate_moments, use_backend  # noqa: E402
from validation.runner import run_checks, select_checks, strip_nondeterministic  # noqa: E402

#: Checks whose replicates run through sim.map_blocks (simulate_moments or calibrate).
FANOUT_CHECKS = (
    "aa-calibration",
    "cuped-calibration",
    "delta-coverage",
    "deng2018-table2",
    "power-calibration",
)


def _noop_block(start, stop):
    return np.zeros(stop - start)


def _timed_run(checks, profile):
    t0 = time.perf_counter()
    run = run_checks(checks, profile=profile, show_progress=False)
    return run, time.perf_counter() - t0


def profile_rows(checks, profile, session_backend):
    """Run ``checks`` in-process, then on the cluster; per-check seconds and identity."""
    here, here_s = _timed_run(checks, profile)
    t0 = time.perf_counter()
    with use_backend(session_backend) as session:
        start_s = time.perf_counter() - t0
        there, there_s = _timed_run(checks, profile)
        where = session.description
    same = strip_nondeterministic(here.to_dict()) == strip_nondeterministic(there.to_dict())
    per_check = [
        (a.check.name, a.elapsed_s, b.elapsed_s)
        for a, b in zip(here.outcomes, there.outcomes, strict=True)
    ]
    return {
        "in_process_s": here_s,
        "cluster_s": there_s,
        "cluster_start_s": start_s,
        "where": where,
        "identical": same,
        "ok": (here.ok, there.ok),
        "per_check": per_check,
    }


def model_inputs(session_backend, n_users=10_578):
    """Replicate cost, block cost and block-size sweep (see the module docstring)."""
    scen = ReferenceCtr()
    simulate_moments(scen, n_users, 4, rng=0)  # JIT cache load, pool draw
    r = 256
    t0 = time.perf_counter()
    ref = simulate_moments(scen, n_users, r, rng=1, backend=Backend("threads", workers=1))
    rep_s = (time.perf_counter() - t0) / r
    out = {"n_users": n_users, "replicate_s": rep_s, "replicates_per_s_per_core": 1 / rep_s}
    r_sweep = 512
    t0 = time.perf_counter()
    local = simulate_moments(scen, n_users, r_sweep, rng=2)
    out["sweep_in_process_s"] = time.perf_counter() - t0
    with use_backend(session_backend) as session:
        map_blocks(_noop_block, 8, block_size=1)  # warm the workers (imports)
        n_blocks = 400
        t0 = time.perf_counter()
        map_blocks(_noop_block, n_blocks, block_size=1)
        out["block_overhead_s"] = (time.perf_counter() - t0) / n_blocks
        out["slots"] = session.slots
        sweep = {}
        for b in (1, 16, 128):
            t0 = time.perf_counter()
            mom = simulate_moments(scen, n_users, r_sweep, rng=2, chunk_size=b)
            sweep[b] = time.perf_counter() - t0
            assert np.array_equal(mom.sum_v, local.sum_v), "cluster figures differ"
        out["sweep_cluster_s"] = sweep
        check = simulate_moments(scen, n_users, r, rng=1, chunk_size=16)
        assert np.array_equal(check.sum_m, ref.sum_m)
    out["sweep_replicates"] = r_sweep
    return out


def markdown(prof, model, profile, selection, load):
    lines = [
        f"Load average {load[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end (2 cores "
        "shared with other jobs: every figure moves with the load).",
        "",
        f"### Profile run: `{profile}` profile, {selection}",
        "",
        f"Cluster: {prof['where']} (start-up {prof['cluster_start_s']:.1f} s, not in the "
        "times below). Figures identical in-process and on the cluster: "
        f"**{prof['identical']}**; suite verdicts (in-process, cluster): {prof['ok']}.",
        "",
        "| check | in-process s | 2-worker LocalCluster s | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, a, b in prof["per_check"]:
        lines.append(f"| {name} | {a:.2f} | {b:.2f} | {b / a:.2f} |")
    lines.append(
        f"| **total** | **{prof['in_process_s']:.1f}** | **{prof['cluster_s']:.1f}** | "
        f"**{prof['cluster_s'] / prof['in_process_s']:.2f}** |"
    )
    sw = model["sweep_cluster_s"]
    lines += [
        "",
        "### Model inputs",
        "",
        f"- one replicate of the reference scenario at {model['n_users']:,} users, one "
        f"thread: {model['replicate_s'] * 1e3:.2f} ms -> "
        f"**{model['replicates_per_s_per_core']:.0f} replicates / s per core**",
        f"- one block on the cluster (a block that does nothing; {model['slots']} task "
        f"slots): **{model['block_overhead_s'] * 1e3:.2f} ms** of wall time per block",
        f"- `simulate_moments` of {model['sweep_replicates']:,} replicates: in-process "
        f"{model['sweep_in_process_s']:.2f} s; cluster with blocks of 1 / 16 / 128: "
        f"{sw[1]:.2f} / {sw[16]:.2f} / {sw[128]:.2f} s (identical figures)",
    ]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", choices=("quick", "full"))
    ap.add_argument("--all", action="store_true", help="every registered check")
    ap.add_argument("--only", nargs="+", default=None, help="check names (default: fan-out ones)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    load = os.getloadavg()
    names = None if args.all else (args.only or list(FANOUT_CHECKS))
    checks = select_checks(names)
    selection = "every check" if args.all else "checks " + ", ".join(c.name for c in checks)
    backend = Backend("dask", workers=args.workers, connect_timeout=60)
    simulate_moments(ReferenceCtr(), 1_000, 4, rng=0)  # JIT cache load before the clock
    prof = profile_rows(checks, args.profile, backend)
    model = model_inputs(backend)
    text = markdown(prof, model, args.profile, selection, load)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps({"profile": prof, "model": model}, indent=1, default=str))
    return prof, model


if __name__ == "__main__":
    main()
