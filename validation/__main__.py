"""Command line of the validation suite: ``python -m validation run | list | show | calibrate``.

``run`` runs the registered checks and writes the report (``results.json``,
``report.md``, ``report.html``, ``plots/``); ``list`` lists the checks; ``show NAME``
prints what a check claims, its reference and published figure, the scenario it
describes and, when a previous report holds it, the figures of its cells;
``calibrate MODULE:FUNCTION`` runs the calibration battery of
:mod:`validation.calibrate` on any estimator and writes the same report; ``mutants``
runs the mutation harness of :mod:`validation.mutants` (exit 0 only when every
catalogued wrong implementation is caught by some cell).

Exit status of ``run``: 0 when every claim holds and every negative control fails as
it should; 1 otherwise (the failures are printed); 2 for a usage error or a backend that cannot
be opened (an unreachable ``--scheduler`` is named within ``--connect-timeout``
seconds); 130 when
interrupted (SIGINT or SIGTERM), in which case nothing is written and a previous
report in the folder is left as it was. That holds at any moment after the interpreter
has started (about 0.1 s after launch): imports, parsing, checks and report writing,
for every subcommand, with a message on stderr and no traceback. The report's files
are moved into place with the signals held back, so an interrupt during those moves
takes effect once they are all done (the message says the report is the new one).
"""

from __future__ import annotations

# The first thing ``python -m validation`` does, before any other import: hold SIGINT and
# SIGTERM. A signal that arrives while this module loads is noted here and turned into
# exit status 130 as soon as ``main`` starts (``main`` then installs the handler of
# ``validation.interrupt``); the heavy imports (NumPy, SciPy, Numba, torch, Matplotlib)
# all happen inside ``main``.
import signal

_PENDING: list[int] = []


def _hold(signum: int, frame: object) -> None:
    _PENDING.append(signum)


if __name__ == "__main__":
    for _signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(_signum) is not signal.SIG_IGN:  # an ignored one stays ignored
            signal.signal(_signum, _hold)

import argparse  # noqa: E402 - after the handler above, on purpose
import inspect  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from validation.cli_common import (  # noqa: E402
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    file_identity,
    load_checks,
    print_interrupted,
    print_interrupted_writing,
    print_summary,
)
from validation.interrupt import (  # noqa: E402
    INTERRUPTS,
    Interrupted,
    interrupts_raised,
    raise_if_received,
    received,
)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer; got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python -m validation``."""
    from validation.backend import add_backend_options
    from validation.core import PROFILES
    from validation.runner import DEFAULT_SEED

    parser = argparse.ArgumentParser(
        prog="python -m validation",
        description="Monte Carlo validation of the A/B-test and retrieval formulas.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{run,list,show,calibrate,mutants}"
    )

    run = sub.add_parser(
        "run",
        help="run the checks and write the report",
        description="Run the registered checks and write results.json, report.md, "
        "report.html and plots/ into --out.",
    )
    run.add_argument("--profile", choices=PROFILES, default="quick", help="default: quick")
    run.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="run only these checks: check names (power-mde-roundtrip), group names "
        "(retrieval), shell patterns (cuped-*) or cell names "
        "(aa-calibration/false-positive-rate: its check runs)",
    )
    run.add_argument("--out", default="report", help="report folder (default: report/)")
    run.add_argument(
        "--seed", type=_seed, default=DEFAULT_SEED, help=f"root seed (default: {DEFAULT_SEED})"
    )
    run.add_argument(
        "--recsys-results",
        metavar="PATH",
        help="results.json of `python -m recsys compare` to include in the report",
    )
    run.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (it may register extra checks); repeatable",
    )
    progress = run.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress", dest="progress", action="store_true", default=None, help="always draw bars"
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never draw progress bars"
    )
    add_backend_options(run)

    lst = sub.add_parser("list", help="list the registered checks")
    lst.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE")

    show = sub.add_parser("show", help="describe one check")
    show.add_argument("name")
    show.add_argument(
        "--results",
        metavar="PATH",
        default=str(Path("report") / "results.json"),
        help="a previous results.json whose cells of NAME to print (default: "
        "report/results.json, if present)",
    )
    show.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE")
    _add_calibrate_parser(sub)
    mut = sub.add_parser(
        "mutants",
        help="run the report under each wrong implementation; exit 0 if all are caught",
        description="Mutation harness: swap each catalogued wrong implementation of a "
        "public function into its module, run the checks that exercise it, and print the "
        "cells that failed (killed it). Exit 0 only when every mutant is killed. "
        "Example: --only sample-size-21pct-small loss-logq-added",
    )
    mut.add_argument("--profile", choices=PROFILES, default="quick", help="default: quick")
    mut.add_argument("--only", nargs="+", metavar="NAME", help="mutant names (see --list)")
    mut.add_argument("--list", action="store_true", help="list the catalogue and exit")
    mut.add_argument("--seed", type=_seed, default=DEFAULT_SEED, help=f"default: {DEFAULT_SEED}")
    mut.add_argument("--out", default=None, help="also write mutants.json into this folder")
    return parser


def _add_calibrate_parser(sub: Any) -> None:
    """Add ``calibrate MODULE:FUNCTION`` (validation.calibrate) to the subcommands."""
    from validation.backend import add_backend_options
    from validation.calibrate import BATTERY, KINDS, SCENARIOS
    from validation.core import PROFILES

    cal = sub.add_parser(
        "calibrate",
        help="calibrate any estimator (A/A, coverage, bias, power) and write the report",
        description="Run the calibration battery of validation.calibrate on the estimator "
        "MODULE:FUNCTION and write results.json, report.md, report.html and plots/ into "
        f"--out. Scenarios: {', '.join(SCENARIOS)}.",
    )
    cal.add_argument("estimator", metavar="MODULE:FUNCTION")
    cal.add_argument(
        "--scenario",
        nargs="+",
        metavar="NAME",
        help="scenarios to run (default: every difference scenario the estimator's kind fits)",
    )
    cal.add_argument("--profile", choices=PROFILES, default="quick", help="default: quick")
    cal.add_argument(
        "--replicates", type=_seed, default=None, metavar="R", help="override the profile's R"
    )
    cal.add_argument("--kind", choices=KINDS, default=None, help="default: from the signature")
    cal.add_argument("--check", nargs="+", choices=BATTERY, default=None, help="default: all")
    cal.add_argument(
        "--kwarg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument for every call, VALUE a Python literal (repeatable)",
    )
    cal.add_argument("--out", required=True, help="report folder")
    cal.add_argument("--seed", type=_seed, default=None, help="root seed (default: the report's)")
    from validation.data_scenario import add_data_arguments

    add_data_arguments(cal)  # --data PATH --unit COL ... (validation.data_scenario)
    progress = cal.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None)
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    add_backend_options(cal)


def _cmd_list(args: argparse.Namespace) -> int:
    from validation.core import iter_checks

    if not load_checks(args.imports):
        return EXIT_FAILED
    checks = list(iter_checks())
    if not checks:
        print("no checks are registered.")
        return EXIT_OK
    width = max(len(c.name) for c in checks)
    for c in checks:
        claim = " ".join(c.claim.split())
        claim = claim if len(claim) <= 90 else claim[:89] + "…"
        kind = "exact" if c.exact else "MC"
        print(f"{c.name:<{width}}  {c.group:<10} {kind:<5}  {claim}")
    print(f"{len(checks)} checks")
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    from validation.core import get_check, iter_checks
    from validation.report import _scenario_text
    from validation.runner import _fmt

    if not load_checks(args.imports):
        return EXIT_FAILED
    try:
        check = get_check(args.name)
    except KeyError:
        known = ", ".join(c.name for c in iter_checks()) or "(none registered)"
        print(f"error: no check named {args.name!r}; known checks: {known}", file=sys.stderr)
        return EXIT_USAGE
    wrap = textwrap.TextWrapper(width=88, subsequent_indent="    ")
    print(check.name)
    print(wrap.fill(f"  claim: {check.claim}"))
    print(
        f"  group: {check.group}"
        + ("  (exact identity: no negative control)" if check.exact else "")
    )
    print(wrap.fill(f"  reference: {check.reference or '(none given)'}"))
    print(wrap.fill(f"  published figure: {check.published or '(none)'}"))
    doc = inspect.getdoc(check.function)
    if doc:
        print("  scenario (from the check's docstring):")
        print(textwrap.indent(doc, "    "))
    if check.plot is not None:
        print(f"  plot: {getattr(check.plot, '__qualname__', check.plot)!s}")
    path = Path(args.results)
    if path.is_file():
        try:
            doc_json = json.loads(path.read_text(encoding="utf-8"))
            cells = [c for c in doc_json.get("checks", []) if c.get("check") == check.name]
        except (OSError, ValueError, AttributeError) as exc:
            print(f"  (could not read {path}: {exc})")
            cells = []
        if cells:
            print(
                f"  last run ({path}, seed {doc_json.get('seed')}, "
                f"profile {doc_json.get('profile')}):"
            )
            for cell in cells:
                scen = _scenario_text(cell.get("scenario") or {}, limit=10_000)
                verdict = "PASS" if cell.get("passed") else "FAIL"
                print(
                    f"    {verdict} {cell.get('name')}: {_fmt(cell.get('figure'))} vs "
                    f"{_fmt(cell.get('expected'))} ± {_fmt(cell.get('tolerance'))}"
                    f" (R={cell.get('n_replicates')})"
                )
                if scen:
                    print(
                        textwrap.fill(
                            f"scenario: {scen}",
                            88,
                            initial_indent=" " * 6,
                            subsequent_indent=" " * 8,
                        )
                    )
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from tqdm import tqdm

    from validation.plot_worker import BackgroundPlots
    from validation.report import write_report
    from validation.runner import (
        RunInterrupted,
        UnknownCheckError,
        format_outcome_lines,
        reproduce_command,
        run_checks,
        select_checks,
    )

    if args.recsys_results is not None and not Path(args.recsys_results).is_file():
        print(
            f"error: `--recsys-results` must be an existing file; got {args.recsys_results!r}.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        print(f"error: `--out` must be a folder; got the file {str(out_dir)!r}.", file=sys.stderr)
        return EXIT_USAGE
    if not load_checks(args.imports):
        return EXIT_FAILED
    try:
        checks = select_checks(args.only)
    except UnknownCheckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    command = reproduce_command(
        profile=args.profile, seed=args.seed, only=args.only, imports=args.imports
    )
    print(
        f"validation: {len(checks)} checks, profile {args.profile}, seed {args.seed}",
        flush=True,
    )

    def echo(outcome: Any) -> None:
        for line in format_outcome_lines(outcome):
            tqdm.write(line, file=sys.stdout)
        sys.stdout.flush()

    previous = file_identity(out_dir / "results.json")
    try:
        # plots drawn in a second process while the next checks run
        with BackgroundPlots(enabled=len(checks) > 1) as background:

            def finished(outcome: Any) -> None:
                echo(outcome)
                background.submit(outcome)

            run = run_checks(
                checks,
                profile=args.profile,
                seed=args.seed,
                show_progress=args.progress,
                on_outcome=finished,
                command=command,
            )
            paths = write_report(
                run, out_dir, recsys_results=args.recsys_results, plots=background.plots
            )
        raise_if_received()  # one that a plot's C code turned into a plot error
    except RunInterrupted as exc:
        print_interrupted(exc, out_dir)
        return EXIT_INTERRUPTED
    except INTERRUPTS:
        print_interrupted_writing(out_dir, previous)
        return EXIT_INTERRUPTED
    return print_summary(run, paths)


def _cmd_calibrate(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """Run ``python -m validation calibrate`` (see :func:`validation.calibrate.calibrate`)."""
    import ast
    import importlib
    import shlex

    import matplotlib

    matplotlib.use("Agg")
    from tqdm import tqdm

    from validation.calibrate import PROFILE_REPLICATES, calibrate, infer_kind, scenarios_for
    from validation.runner import DEFAULT_SEED, format_outcome_lines

    module_name, sep, func_name = args.estimator.partition(":")
    if not (module_name and sep and func_name):
        print(
            f"error: the estimator must be MODULE:FUNCTION; got {args.estimator!r}.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        print(f"error: `--out` must be a folder; got the file {str(out_dir)!r}.", file=sys.stderr)
        return EXIT_USAGE
    kwargs: dict[str, Any] = {}
    for item in args.kwarg:
        key, eq, text = item.partition("=")
        try:
            if not (key.isidentifier() and eq):
                raise ValueError
            kwargs[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            print(f"error: `--kwarg` must be KEY=LITERAL; got {item!r}.", file=sys.stderr)
            return EXIT_USAGE
    try:
        if "" not in sys.path:
            sys.path.insert(0, "")  # MODULE may live in the current folder, as with python -m
        estimator: Any = importlib.import_module(module_name)
        for part in func_name.split("."):
            estimator = getattr(estimator, part)
        kind = args.kind or infer_kind(estimator)
    except Exception as exc:  # noqa: BLE001 - reported, usage error
        raise_if_received()
        print(f"error: cannot use {args.estimator!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from validation.data_scenario import data_scenario_from_args

    try:  # --data: the user's rows, beside any --scenario
        own = data_scenario_from_args(args)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    named = args.scenario or ([] if own else [s.name for s in scenarios_for(kind)])
    scenarios: list[Any] = ([own] if own else []) + list(named)
    seed = DEFAULT_SEED if args.seed is None else args.seed
    r = args.replicates if args.replicates is not None else PROFILE_REPLICATES[args.profile]
    command = "python -m validation calibrate " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])[1:]
    )
    if args.seed is None:
        command += f" --seed {seed}"
    print(
        f"calibrate: {args.estimator} ({kind}), scenarios "
        f"{', '.join(getattr(s, 'name', s) for s in scenarios)}, "
        f"R = {r} per stream, seed {seed}",
        flush=True,
    )
    try:
        cal = calibrate(
            estimator,
            scenarios,
            n_replicates=r,
            rng=seed,
            kind=kind,
            checks=args.check,
            estimator_kwargs=kwargs,
            progress=args.progress,
            profile=args.profile if args.replicates is None else "custom",
            command=command,
        )
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except INTERRUPTS:
        print(f"\ninterrupted; nothing was written to {out_dir.resolve()}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    for outcome in cal.run.outcomes:
        for line in format_outcome_lines(outcome):
            tqdm.write(line, file=sys.stdout)
    if cal.failures:
        print(f"\nestimator failures ({len(cal.failures)}; the run went on):")
        for failure in cal.failures[:20]:
            print(f"  - {failure}")
        if len(cal.failures) > 20:
            print(f"  ... {len(cal.failures) - 20} more in results.json")
    previous = file_identity(out_dir / "results.json")
    try:
        paths = cal.write_report(out_dir)
        raise_if_received()
    except INTERRUPTS:
        print_interrupted_writing(out_dir, previous)
        return EXIT_INTERRUPTED
    if own is not None and (args.check is None or "coverage" in args.check):
        # --data: where the estimator breaks on these data (validation.data_curve)
        from validation.data_curve import write_curve

        try:
            write_curve(
                estimator,
                own,
                out_dir,
                n_replicates=r,
                rng=seed,
                kind=kind,
                estimator_kwargs=kwargs,
            )
        except INTERRUPTS:
            print(
                f"\ninterrupted while adding the --data coverage curve; the report in {out_dir} "
                "was written, the curve may be missing.",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
    return print_summary(cal.run, paths)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (130 when interrupted, at any phase).

    SIGINT and SIGTERM raise :class:`validation.interrupt.Interrupted` while ``main``
    runs (main thread only; the previous handlers are restored on return). The
    subcommands catch it where they can say what was kept; anywhere else (imports,
    parsing, loading the checks, starting the backend) it ends here, with one line.
    """
    try:
        with interrupts_raised():
            if _PENDING:  # a signal held while this module loaded
                raise Interrupted(_PENDING[0])
            try:
                status = _main(argv)
            except Exception:
                raise_if_received()  # an interrupt that C code turned into an error
                raise
            if status != EXIT_INTERRUPTED and received() is not None:
                # an interrupt swallowed past every place that could say more
                print("\npython -m validation: interrupted.", file=sys.stderr)
                return EXIT_INTERRUPTED
            return status
    except INTERRUPTS:
        print("\npython -m validation: interrupted; nothing was written.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    from validation.backend import run_with_backend

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for usage errors, 0 for --help
        return int(exc.code or 0)
    if args.command == "list":
        return _cmd_list(args)
    if args.command == "show":
        return _cmd_show(args)
    if args.command == "calibrate":
        return run_with_backend(args, "calibrate", _cmd_calibrate, args, argv)
    if args.command == "mutants":
        from validation.mutants import command

        return command(args)
    return run_with_backend(args, "validation", _cmd_run, args)


if __name__ == "__main__":
    sys.exit(main())
