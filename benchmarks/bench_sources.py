"""Moments from event rows: DuckDB (moments_from_sql) vs DuckDB's plain SUM scan vs pandas.

What it measures, side by side in one run, on an on-disk DuckDB table of ``--rows``
event rows (``user_id`` BIGINT, ``variant`` VARCHAR, ``clicks`` and ``views`` INTEGER;
``--users`` users, 2 arms):

* ``scan``: ``SELECT SUM(CAST(clicks AS DOUBLE)), SUM(CAST(views AS DOUBLE)), COUNT(*)``
  over the table, DuckDB's own floor for reading the same columns;
* ``group``: ``SELECT SUM(..) .. GROUP BY user_id`` reduced per arm, the floor for
  any per-unit statistic (one hash aggregation over the rows);
* ``moments``: ``estimators.moments_from_sql`` (the full query: per-unit sums, NULL
  counts, arm check, shifts, shifted products up to third order);
* ``pandas``: ``groupby("user_id")`` sums then the per-arm moment sums in NumPy, on
  the first ``--pandas-rows`` rows (a pandas frame of 10^8 rows with a string column
  does not fit beside the other jobs of a shared machine), and ``moments`` on the
  same rows for the like-for-like ratio.

Each timed step runs in a fresh child process (so its peak RSS, from
``getrusage(RUSAGE_SELF)``, is that step's alone); the figure is the minimum of
``--runs`` runs. Run it with

    .venv/bin/python benchmarks/bench_sources.py --rows 100000000 --pandas-rows 20000000 \
        --markdown benchmarks/RESULTS_sources.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
KEYS = dict(unit="user_id", arm="variant", numerator="clicks", denominator="views")


def _connect(db: str, threads: int, memory: str):
    import duckdb

    con = duckdb.connect(db, read_only=True)
    con.execute(f"SET threads = {threads}")
    con.execute(f"SET memory_limit = '{memory}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def make_table(db: str, rows: int, users: int) -> None:
    import duckdb

    con = duckdb.connect(db)
    con.execute("SET memory_limit = '3GB'")
    # Deterministic pseudo-random columns from hash(i): the same table for a given size.
    con.execute(
        f"""
        CREATE OR REPLACE TABLE ev AS
        SELECT
          CAST(hash(i) % {users} AS BIGINT) AS user_id,
          CASE WHEN hash(hash(i) % {users}) % 2 = 0 THEN 'control' ELSE 'treatment' END
            AS variant,
          CAST(hash(i + 1) % 3 = 0 AS INTEGER) AS clicks,
          CAST(1 + hash(i + 2) % 3 AS INTEGER) AS views
        FROM range({rows}) t(i)
        """
    )
    con.close()


def task(name: str, db: str, threads: int, memory: str, limit: int | None) -> dict:
    """One timed step; returns seconds and a checksum of the result."""
    src = "ev" if limit is None else f"(SELECT * FROM ev LIMIT {limit})"
    if name == "pandas":
        import numpy as np

        con = _connect(db, threads, memory)
        frame = con.execute(f"SELECT * FROM {src}").df()
        con.close()
        t0 = time.perf_counter()
        per_unit = frame.groupby("user_id", sort=False).agg(
            variant=("variant", "first"), clicks=("clicks", "sum"), views=("views", "sum")
        )
        sums = {}
        for arm, g in per_unit.groupby("variant"):
            v = g["clicks"].to_numpy(np.float64)
            m = g["views"].to_numpy(np.float64)
            sums[arm] = [v.size, v.sum(), m.sum(), v @ v, m @ m, v @ m]
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "check": float(sums["control"][1])}
    sys.path.insert(0, str(ROOT))
    from estimators import moments_from_sql  # imported before the clock starts

    con = _connect(db, threads, memory)
    t0 = time.perf_counter()
    if name == "scan":
        out = con.execute(
            f"SELECT SUM(CAST(clicks AS DOUBLE)), SUM(CAST(views AS DOUBLE)), COUNT(*) FROM {src}"
        ).fetchall()
        check = float(out[0][0])
    elif name == "group":
        out = con.execute(
            "SELECT variant, COUNT(*), SUM(v), SUM(m), SUM(v * v), SUM(m * m), SUM(v * m) FROM ("
            "SELECT MIN(variant) AS variant, SUM(CAST(clicks AS DOUBLE)) AS v, "
            f"SUM(CAST(views AS DOUBLE)) AS m FROM {src} GROUP BY user_id) GROUP BY variant"
        ).fetchall()
        check = float(sum(r[2] for r in out))
    elif name == "moments":
        m = moments_from_sql(con, src, **KEYS)
        check = float(m["control"].sum_v + m["control"].n * m["control"].shift_v)
        check += float(m["treatment"].sum_v + m["treatment"].n * m["treatment"].shift_v)
    else:
        raise ValueError(f"unknown task {name!r}")
    seconds = time.perf_counter() - t0
    con.close()
    return {"seconds": seconds, "check": check}


def _child(name: str, args: argparse.Namespace, limit: int | None) -> dict:
    cmd = [
        sys.executable,
        str(HERE),
        "--task",
        name,
        "--db",
        args.db,
        "--threads",
        str(args.threads),
        "--memory",
        args.memory,
    ]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--users", type=int, default=None, help="default rows / 50")
    p.add_argument("--pandas-rows", type=int, default=None, help="default min(rows, 2e7)")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--memory", default="4GB", help="DuckDB memory_limit")
    p.add_argument("--db", default=None, help="DuckDB file (default: a temp file)")
    p.add_argument("--markdown", default=None)
    p.add_argument("--task", default=None, help=argparse.SUPPRESS)
    p.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.task:
        out = task(args.task, args.db, args.threads, args.memory, args.limit)
        out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        print(json.dumps(out))
        return
    users = args.users or max(args.rows // 50, 2)
    pandas_rows = args.pandas_rows or min(args.rows, 20_000_000)
    tmp = None
    if args.db is None:
        tmp = tempfile.mkdtemp(prefix="bench_sources_")
        args.db = os.path.join(tmp, "events.duckdb")
    t0 = time.perf_counter()
    make_table(args.db, args.rows, users)
    make_s = time.perf_counter() - t0
    results: dict[str, dict] = {}
    plan = [("scan", None), ("group", None), ("moments", None)]
    plan += [("pandas", pandas_rows), ("moments", pandas_rows)]
    for name, limit in plan:
        key = name if limit is None else f"{name}@{limit}"
        runs = [_child(name, args, limit) for _ in range(args.runs)]
        best = min(runs, key=lambda r: r["seconds"])
        best["peak_mib"] = max(r["peak_mib"] for r in runs)
        results[key] = best
        print(key, f"{best['seconds']:.3f} s", file=sys.stderr)
    assert (
        abs(results["scan"]["check"] - results["moments"]["check"])
        < 1e-6 * results["scan"]["check"]
    ), "moments and scan disagree on sum(clicks)"
    load = os.getloadavg()
    r = results
    lines = [
        "# Moments from event rows: DuckDB vs its own scan vs pandas (issue 13)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_sources.py --rows {args.rows} "
        f"--pandas-rows {pandas_rows} --runs {args.runs} --threads {args.threads} "
        f"--memory {args.memory}`",
        "",
        f"Data: {args.rows:,} event rows, {users:,} users, 2 arms, on-disk DuckDB table "
        f"(made in {make_s:.0f} s). DuckDB {args.threads} threads, memory_limit "
        f"{args.memory}. Load average at the end: {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} on {os.cpu_count()} cores (shared with other jobs). Minimum of "
        f"{args.runs} runs, each in a fresh process.",
        "",
        "| step | rows | seconds | rows/s | peak RSS of the process (MiB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, res in r.items():
        rows = args.rows if "@" not in key else int(key.split("@")[1])
        lines.append(
            f"| {key.split('@')[0]} | {rows:,} | {res['seconds']:.3f} | "
            f"{rows / res['seconds']:.3g} | {res['peak_mib']:.0f} |"
        )
    scan_ratio = r["moments"]["seconds"] / r["scan"]["seconds"]
    group_ratio = r["moments"]["seconds"] / r["group"]["seconds"]
    pandas_ratio = r[f"pandas@{pandas_rows}"]["seconds"] / r[f"moments@{pandas_rows}"]["seconds"]
    lines += [
        "",
        f"- moments / plain SUM scan: **{scan_ratio:.2f}x** (goal <= 2x)",
        f"- moments / per-unit GROUP BY floor: **{group_ratio:.2f}x**",
        f"- pandas groupby / moments on the same {pandas_rows:,} rows: **{pandas_ratio:.1f}x** "
        "(goal >= 10x; pandas timed after loading, loading excluded)",
        "",
        "Peak RSS is the maximum resident size of the step's own process "
        "(`getrusage(RUSAGE_SELF)` at its end; the pandas step includes its DataFrame).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    if tmp:
        os.remove(args.db)
        os.rmdir(tmp)


if __name__ == "__main__":
    main()
