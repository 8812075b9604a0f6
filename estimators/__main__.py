"""Command line: ``python -m estimators analyze PATH --unit U --arm A --metric NUM[/DEN]``.

Reads a CSV or Parquet file (or a DuckDB database with ``--table`` / ``--query``),
aggregates it inside DuckDB into per-arm moments, and prints every treatment arm
against control for every metric (see ``docs/data.md``). Exit status 0 on success,
2 on a usage error (a missing column, an unknown label, a bad option), 130 when
interrupted (SIGINT or SIGTERM), with one line and no traceback. The package imports
its names lazily, so this module installs its handler about 0.1 s after launch, before
SciPy or DuckDB is imported.
"""

from __future__ import annotations

import signal

_PENDING: list[int] = []


def _hold(signum: int, frame: object) -> None:
    _PENDING.append(signum)


if __name__ == "__main__":  # first: a signal while this module loads becomes exit 130
    for _signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(_signum) is not signal.SIG_IGN:  # an ignored one stays ignored
            signal.signal(_signum, _hold)

import argparse  # noqa: E402 - after the handler above, on purpose
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from estimators._interrupt import (  # noqa: E402
    INTERRUPTS,
    Interrupted,
    interrupts_raised,
    raise_if_received,
)

EXIT_INTERRUPTED = 130

#: Files larger than this show a progress bar (one step per metric query).
PROGRESS_BYTES = 50 * 2**20


class UsageError(Exception):
    """A problem with the command line or the data's columns/labels (exit 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m estimators")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("analyze", help="analyse an experiment from a CSV, Parquet or DuckDB file")
    p.add_argument("path", help="a .csv, .parquet or DuckDB database file")
    p.add_argument("--unit", required=True, help="randomisation-unit column (e.g. user_id)")
    p.add_argument("--arm", required=True, help="arm-label column (e.g. variant)")
    p.add_argument(
        "--metric",
        action="append",
        required=True,
        metavar="NUM[/DEN]",
        help="a metric: a column (mean per unit) or NUM/DEN (ratio); repeatable",
    )
    p.add_argument(
        "--covariate",
        action="append",
        default=[],
        metavar="NUM[/DEN]",
        help="a CUPED covariate: a column or a ratio NUM/DEN; repeatable",
    )
    p.add_argument(
        "--presence",
        action="store_true",
        help="add a covariate that is 1 when a unit has covariate rows, 0 otherwise",
    )
    p.add_argument("--control", help="control arm label (default 'control', else the first)")
    p.add_argument(
        "--adjust",
        choices=["holm", "bh", "none"],
        default="holm",
        help="p-value adjustment across metrics x arms (default holm)",
    )
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--table", help="table to read in a DuckDB database file")
    p.add_argument("--query", help="SELECT query to read in a DuckDB database file")
    p.add_argument("--nan-policy", choices=["raise", "omit"], default="raise")
    p.add_argument("--confidence-level", type=float, default=0.95)
    p.add_argument(
        "--progress",
        choices=["auto", "on", "off"],
        default="auto",
        help=f"progress bar on stderr (auto: files over {PROGRESS_BYTES >> 20} MiB)",
    )
    return parser


def _source(con, args: argparse.Namespace) -> str:
    path = Path(args.path)
    if not path.is_file():
        raise UsageError(f"PATH {args.path!r} is not a file.")
    suffix = path.suffix.lower()
    quoted = str(path).replace("'", "''")
    if suffix in (".csv", ".tsv", ".txt", ".gz"):
        source = f"SELECT * FROM read_csv_auto('{quoted}')"
    elif suffix in (".parquet", ".pq"):
        source = f"SELECT * FROM read_parquet('{quoted}')"
    else:
        if (args.table is None) == (args.query is None):
            raise UsageError(
                f"{args.path!r} is read as a DuckDB database; give exactly one of --table, --query."
            )
        con.execute(f"ATTACH '{quoted}' AS exp_db (READ_ONLY)")
        con.execute("USE exp_db")
        source = args.query or args.table
    if suffix in (".csv", ".tsv", ".txt", ".gz", ".parquet", ".pq") and (args.table or args.query):
        raise UsageError("--table and --query apply to DuckDB database files only.")
    return source


def _columns(con, source: str) -> list[str]:
    wrapped = source if " " in source.strip() else f"SELECT * FROM {source}"
    return [d[0] for d in con.execute(f"SELECT * FROM ({wrapped}) LIMIT 0").description]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (130 when interrupted)."""
    held = list(_PENDING)  # a signal held while this module loaded
    _PENDING.clear()
    try:
        with interrupts_raised():
            if held:
                raise Interrupted(held[0])
            args = _parser().parse_args(argv)
            try:
                status = _analyze(args)
            except Exception:
                raise_if_received()  # an interrupt that DuckDB or an import turned into an error
                raise
            raise_if_received()
            return status
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader (e.g. `| head`) closed the pipe: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except INTERRUPTS:
        print("\npython -m estimators: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _analyze(args: argparse.Namespace) -> int:
    import duckdb

    from .sources import moments_from_sql
    from .sources._analyze import Metric, analyze_moments

    try:
        metrics = [Metric.parse(m) for m in args.metric]
        covs = [Metric.parse(c) for c in args.covariate]
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    con = duckdb.connect()
    try:
        source = _source(con, args)
        try:
            present = _columns(con, source)
        except duckdb.Error as exc:
            raise UsageError(f"cannot read {args.path!r}: {exc}") from exc
        needed = {"--unit": [args.unit], "--arm": [args.arm]}
        needed["--metric"] = [c for m in metrics for c in (m.numerator, m.denominator) if c]
        needed["--covariate"] = [c for m in covs for c in (m.numerator, m.denominator) if c]
        for option, cols in needed.items():
            missing = [c for c in cols if c not in present]
            if missing:
                raise UsageError(
                    f"{option}: column {missing[0]!r} is not in {args.path!r}; "
                    f"its columns are {present}."
                )
        cov_cols: list[str] = []
        pairs = []
        for c in covs:
            for col in (c.numerator, c.denominator):
                if col is not None and col not in cov_cols:
                    cov_cols.append(col)
            if c.denominator is not None:
                pairs.append((cov_cols.index(c.numerator), cov_cols.index(c.denominator)))
        show = args.progress == "on" or (
            args.progress == "auto" and os.path.getsize(args.path) > PROGRESS_BYTES
        )
        from tqdm import tqdm

        moments = {}
        for metric in tqdm(metrics, desc="metrics", disable=not show, file=sys.stderr):
            try:
                moments[metric.name] = moments_from_sql(
                    con,
                    source,
                    unit=args.unit,
                    arm=args.arm,
                    numerator=metric.numerator,
                    denominator=metric.denominator,
                    covariates=cov_cols,
                    presence=args.presence,
                    nan_policy=args.nan_policy,
                )
            except ValueError as exc:
                raise UsageError(f"metric {metric.name!r}: {exc}") from exc
    finally:
        con.close()
    try:
        result = analyze_moments(
            moments,
            control=args.control,
            covariate_ratios=pairs,
            adjust=args.adjust,
            confidence_level=args.confidence_level,
        )
    except LookupError as exc:
        raise UsageError(f"--control: {exc.args[0]}") from exc
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.to_table())
    for w in result.warnings:
        print(f"WARNING: {w}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
