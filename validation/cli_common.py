"""Pieces shared by the subcommands of ``python -m validation``.

Exit codes, loading the check modules, and what a run prints when it ends or is
interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from validation.interrupt import raise_if_received

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def load_checks(imports: Sequence[str]) -> bool:
    """Import the built-in check modules and ``imports``; print why and return False on error."""
    import traceback

    from validation.core import load_builtin_checks
    from validation.runner import import_check_modules

    try:
        load_builtin_checks()
        import_check_modules(imports)
    except Exception:  # noqa: BLE001 - reported, exit 1
        raise_if_received()  # an interrupt that an extension's import turned into an error
        print("could not import the check modules:\n" + traceback.format_exc(), file=sys.stderr)
        return False
    return True


def file_identity(path: Path) -> tuple[int, int] | None:
    """``(inode, mtime_ns)`` of ``path``, or None when it does not exist."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def print_interrupted_writing(out_dir: Path, previous: tuple[int, int] | None) -> None:
    """Say whether an interrupt while the report was written left the old report in place.

    The report's files are moved into place together with the signals held back
    (``validation.runner_io.AtomicWriter``), so an interrupt either precedes the moves
    (the previous report stays) or takes effect once all are done.
    """
    results = out_dir / "results.json"
    if file_identity(results) == previous:
        print(
            f"\ninterrupted while writing the report; {results} was not replaced.", file=sys.stderr
        )
    else:
        print(
            f"\ninterrupted just after the report was written; {results} is the new one.",
            file=sys.stderr,
        )


def print_interrupted(exc: Any, out_dir: Path) -> None:
    """Say which checks completed before an interrupt and that nothing was written."""
    print("\ninterrupted.", file=sys.stderr)
    if exc.current:
        print(f"  running when interrupted: {exc.current}", file=sys.stderr)
    if exc.completed:
        print(f"  completed ({len(exc.completed)}):", file=sys.stderr)
        for outcome in exc.completed:
            state = "ok" if outcome.ok else "FAILED"
            print(f"    {outcome.check.name}: {state} ({outcome.elapsed_s:.1f} s)", file=sys.stderr)
    else:
        print("  no check completed.", file=sys.stderr)
    print(
        f"  nothing was written; {(out_dir / 'results.json').resolve()} was left as it was.",
        file=sys.stderr,
    )


def print_summary(run: Any, paths: Any) -> int:
    """Print a finished run's tally, problems and files; return its exit status."""
    from validation.runner import QUICK_BUDGET_S

    print()
    print(
        f"cells passed: {run.n_passed}/{run.n_cells}; negative controls failed as expected: "
        f"{run.n_controls_failed}/{run.n_controls}; exact identities: {run.n_exact}"
    )
    print(
        f"family-wise false-failure bound: {run.family_wise_rate:.2%} "
        f"({run.n_cells} cells at z = {run.z:g}); seed {run.seed}; "
        f"elapsed {run.elapsed_s:.1f} s"
    )
    if run.profile == "quick" and run.elapsed_s > QUICK_BUDGET_S:
        print(f"note: the quick profile took longer than its {QUICK_BUDGET_S:.0f} s budget.")
    print(f"reproduce: {run.command}")
    for err in paths.plot_errors:
        print(f"plot failed (reported in the report): {err}")
    problems = run.problems
    if problems:
        print(f"\nFAILED: {len(problems)} problem(s):")
        for problem in problems:
            print(f"  - {problem}")
    else:
        print("\nPASSED: every claim holds and every negative control failed as it should.")
    print("\nreport written:")
    print(f"  {paths.html}")
    print(f"  {paths.markdown}")
    print(f"  {paths.results_json}")
    print(f"  {paths.html.parent / 'plots'}{'/' if paths.plots else ''} ({len(paths.plots)} PNGs)")
    return EXIT_OK if not problems else EXIT_FAILED
