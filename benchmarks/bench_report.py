"""Wall time of the validation report's profiles (issue 7, item 5).

Runs ``python -m validation run --profile P --no-progress --out DIR`` as a child
process for each requested profile and records its wall time, the child's CPU time
(user + system, all threads, from ``getrusage(RUSAGE_CHILDREN)``), the load average
before and after, and the report's own summary (checks, cells, passes) from its
``results.json``. Each record is appended to ``benchmarks/report_timings.jsonl`` so a
long ``full`` run, made once, can be quoted later by ``run_all.py`` without
repeating it. Usage::

    .venv/bin/python benchmarks/bench_report.py --profile quick [--runs 3]
    .venv/bin/python benchmarks/bench_report.py --profile full --runs 1   # long

The report's own ``timing`` block (per-check seconds) is kept in the record too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = Path(__file__).resolve().parent / "report_timings.jsonl"


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_profile(profile: str, *, timeout_s: float | None = None) -> dict:
    """Run one validation profile in a child process and return its timing record.

    Parameters
    ----------
    profile : {"quick", "full"}
        The validation profile.
    timeout_s : float, optional
        Kill the child after this many seconds; the record then says ``timed_out``.

    Returns
    -------
    dict
        ``profile``, ``wall_s``, ``cpu_s``, ``returncode``, ``timed_out``,
        ``load_before``, ``load_after``, ``date`` (UTC), ``summary`` (from
        ``results.json``; None when the run did not finish) and ``check_seconds``.
    """
    if profile not in ("quick", "full"):
        raise ValueError(f"`profile` must be 'quick' or 'full'; got {profile!r}.")
    with tempfile.TemporaryDirectory(prefix=f"report-{profile}-") as out:
        cmd = [sys.executable, "-m", "validation", "run", "--profile", profile]
        cmd += ["--no-progress", "--out", out]
        load_before = os.getloadavg()[0]
        c0, t0 = _child_cpu(), time.perf_counter()
        timed_out = False
        try:
            proc = subprocess.run(
                cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
            )
            rc = proc.returncode
            tail = (proc.stdout + proc.stderr)[-2000:]
        except subprocess.TimeoutExpired as exc:
            timed_out, rc = True, None
            tail = str(exc)[-2000:]
        wall = time.perf_counter() - t0
        cpu = _child_cpu() - c0
        summary, check_seconds = None, None
        results = Path(out) / "results.json"
        if results.exists():
            doc = json.loads(results.read_text())
            summary = doc.get("summary")
            check_seconds = doc.get("timing")
    return {
        "profile": profile,
        "wall_s": wall,
        "cpu_s": cpu,
        "returncode": rc,
        "timed_out": timed_out,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python"] + cmd[1:-2]),
        "summary": summary,
        "check_seconds": check_seconds,
        "output_tail": tail if rc != 0 else "",
    }


def load_records(path: Path = RECORDS) -> list[dict]:
    """All timing records appended so far (oldest first)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def markdown(records: list[dict]) -> str:
    """Markdown table of the median wall/CPU time per profile over ``records``."""
    lines = [
        "| profile | runs | wall s (median) | CPU s (median) | checks | cells passed "
        "| exit code | load avg before | date (UTC) |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- | --- | --- |",
    ]
    for profile in ("quick", "full"):
        recs = [r for r in records if r["profile"] == profile]
        if not recs:
            continue
        last = recs[-1]
        s = last.get("summary") or {}
        passed = f"{s.get('n_passed', '?')}/{s.get('n_cells', '?')}" if s else "n/a"
        loads = ", ".join(f"{r['load_before']:.1f}" for r in recs)
        lines.append(
            f"| {profile} | {len(recs)} | {statistics.median(r['wall_s'] for r in recs):.1f} "
            f"| {statistics.median(r['cpu_s'] for r in recs):.1f} | {s.get('n_checks', 'n/a')} "
            f"| {passed} | {sorted({str(r['returncode']) for r in recs})} "
            f"| {loads} | {last['date']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    """Command-line entry point; returns the new records."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=("quick", "full"), default="quick")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=None, help="seconds per run")
    ap.add_argument("--no-record", action="store_true", help="do not append to the log")
    args = ap.parse_args(argv)
    new = []
    for _ in range(args.runs):
        rec = run_profile(args.profile, timeout_s=args.timeout)
        new.append(rec)
        print(
            f"{rec['profile']}: wall {rec['wall_s']:.1f} s, CPU {rec['cpu_s']:.1f} s, "
            f"exit {rec['returncode']}, load {rec['load_before']:.1f} -> {rec['load_after']:.1f}",
            flush=True,
        )
        if not args.no_record:
            with RECORDS.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
    print(markdown(new))
    return new


if __name__ == "__main__":
    main()
