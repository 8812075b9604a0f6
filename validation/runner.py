"""Run registered checks, judge the suite and write ``results.json`` (docs/theory.md §5).

The runner selects checks from the registry of :mod:`validation.core`, runs each with
a :class:`~validation.core.RunContext` carrying the run's root seed, records what every
check returned (or the traceback summary of a check that raised, after which the run
continues) and judges the suite: it holds when every cell passes, every negative
control fails as it should, no check raised and every check that is not an exact
identity supplied a control.

Determinism: the runner adds nothing random and nothing time-dependent to the
``"checks"`` list of ``results.json``; wall-clock times, dates and the thread count
live in the separate ``"timing"`` and ``"versions"`` keys. A check's figures therefore
depend only on the seed, the profile and the check's name
(:meth:`~validation.core.RunContext.seed_sequence`), whether it runs alone or with the
others and whatever the number of numba threads, provided the check itself follows
the seeding rules of STYLE.md.

References
----------
.. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics:
   A Practical Guide with Novel Ideas", KDD 2018 (the coverage tables the checks
   reproduce).
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import importlib
import importlib.metadata
import math
import shlex
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from validation.core import PROFILES, Check, CheckResult, RunContext, iter_checks
from validation.interrupt import INTERRUPTS, raise_if_received
from validation.mc import Z_FAMILY, family_wise_rate
from validation.runner_format import (  # noqa: F401 - re-exported: report, findings, CLI
    _fmt,
    cell_problems,
    format_outcome_lines,
    state_label,
    uses_own_rule,
)
from validation.runner_io import (  # noqa: F401 - re-exported: the CLI and the report import them here
    NONDETERMINISTIC_KEYS,
    AtomicWriter,
    package_versions,
    results_json,
    signals_deferred,
    strip_nondeterministic,
    write_results,
)

#: Root seed of a run when ``--seed`` is not given (printed on every report).
DEFAULT_SEED: int = 20180819

#: Wall-clock budget of the ``quick`` profile, seconds, on 2 cores (a note, not a verdict).
QUICK_BUDGET_S: float = 60.0


_SCHEMA_VERSION = 1


class UnknownCheckError(ValueError):
    """A ``--only`` selector that matches no registered check name, group or pattern."""


class RunInterrupted(KeyboardInterrupt):  # noqa: N818 (it is a KeyboardInterrupt)
    """The run was interrupted (SIGINT or SIGTERM); ``completed`` holds what finished.

    Attributes
    ----------
    completed : tuple of CheckOutcome
        The checks that finished before the interrupt, in run order.
    current : str or None
        The check that was running when the interrupt came.
    """

    def __init__(self, completed: tuple[CheckOutcome, ...], current: str | None) -> None:
        super().__init__(f"interrupted during {current!r}" if current else "interrupted")
        self.completed = completed
        self.current = current


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What one check produced in a run.

    Attributes
    ----------
    check : Check
        The registered check.
    results : tuple of CheckResult
        Its cells (empty when it raised).
    elapsed_s : float
        Wall-clock seconds it took (reported under ``"timing"``, never with the figures).
    error : str or None
        Traceback summary when the check raised; the check then counts as failed.
    warnings : tuple of str
        Distinct warnings the check emitted, ``"Category: message"``.
    """

    check: Check
    results: tuple[CheckResult, ...]
    elapsed_s: float
    error: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def problems(self) -> tuple[str, ...]:
        """Everything that makes this check fail the suite, one sentence each."""
        name = self.check.name
        if self.error is not None:
            last = self.error.strip().splitlines()[-1] if self.error.strip() else "error"
            return (f"check {name!r} raised {last}",)
        if not self.results:
            return (f"check {name!r} returned no cells (a check that cannot fail).",)
        out: list[str] = []
        for res in self.results:
            out.extend(cell_problems(self.check, res))
        return tuple(out)

    @property
    def ok(self) -> bool:
        """True when the check ran, every cell holds and every control failed."""
        return not self.problems


@dataclass(frozen=True, slots=True)
class SuiteRun:
    """A finished run: settings, outcomes in run order and the suite's verdict.

    Attributes
    ----------
    seed : int
        Root seed.
    profile : {"quick", "full"}
        Profile the checks ran with.
    z : float
        Tolerance multiplier passed to every check.
    outcomes : tuple of CheckOutcome
        One per check, in run order.
    versions : dict
        Package versions, Python, platform and numba thread count.
    command : str
        Command line that reproduces the figures.
    started_utc : str
        ISO-8601 start time (reported under ``"timing"``).
    elapsed_s : float
        Wall-clock seconds of the whole run.
    extra : dict
        Further top-level keys of ``results.json`` (e.g. ``"recsys_comparison"``).
    """

    seed: int
    profile: str
    z: float
    outcomes: tuple[CheckOutcome, ...]
    versions: dict[str, Any]
    command: str = ""
    started_utc: str = ""
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def cells(self) -> Iterator[tuple[Check, CheckResult]]:
        """Iterate over ``(check, cell)`` pairs in run order."""
        for outcome in self.outcomes:
            for res in outcome.results:
                yield outcome.check, res

    @property
    def n_cells(self) -> int:
        """Number of cells (a check that raised or returned none counts as one failed cell)."""
        return sum(max(1, len(o.results)) for o in self.outcomes)

    @property
    def n_passed(self) -> int:
        """Cells whose claim holds."""
        return sum(1 for _, r in self.cells() if r.passed)

    @property
    def n_controls(self) -> int:
        """Cells with a negative control."""
        return sum(1 for _, r in self.cells() if r.negative_control is not None)

    @property
    def n_controls_failed(self) -> int:
        """Negative controls that failed, as they should."""
        return sum(
            1
            for _, r in self.cells()
            if r.negative_control is not None and r.negative_control.failed_as_expected
        )

    @property
    def n_exact(self) -> int:
        """Cells of exact identities without a control."""
        return sum(1 for c, r in self.cells() if r.negative_control is None and c.exact)

    @property
    def family_wise_rate(self) -> float:
        """Bonferroni bound on the chance that any cell fails by Monte Carlo noise alone."""
        return family_wise_rate(self.n_cells, self.z)

    @property
    def problems(self) -> list[str]:
        """Everything that makes the suite fail, one sentence each."""
        out: list[str] = []
        if not self.outcomes:
            out.append("no checks ran: the registry is empty or the selection matched none.")
        seen: dict[str, str] = {}
        for check, res in self.cells():
            if res.name in seen:
                out.append(
                    f"cell name {res.name!r} is returned by both {seen[res.name]!r} and "
                    f"{check.name!r}; cell names must be unique."
                )
            seen.setdefault(res.name, check.name)
        for outcome in self.outcomes:
            out.extend(outcome.problems)
        return out

    @property
    def ok(self) -> bool:
        """True when every claim holds and every negative control failed."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """Return the ``results.json`` document.

        Keys: ``seed``, ``profile``, ``versions``, ``checks`` (the schema of
        :meth:`CheckResult.to_dict` plus ``check``, ``group``, ``reference``,
        ``published``, ``exact``, ``seed_entropy``, ``ok``, ``problems`` and, for a
        check that raised, ``error``), ``z``, ``summary``, ``command``, ``timing``.
        Only ``timing`` and ``versions`` may differ between runs with the same seed.
        """
        checks: list[dict[str, Any]] = []
        for outcome in self.outcomes:
            checks.extend(_outcome_dicts(outcome))
        return {
            "schema_version": _SCHEMA_VERSION,
            "seed": self.seed,
            "profile": self.profile,
            "z": self.z,
            "command": self.command,
            "versions": self.versions,
            "summary": {
                "ok": self.ok,
                "n_checks": len(self.outcomes),
                "n_cells": self.n_cells,
                "n_passed": self.n_passed,
                "n_controls": self.n_controls,
                "n_controls_failed_as_expected": self.n_controls_failed,
                "n_exact": self.n_exact,
                "family_wise_false_failure_bound": self.family_wise_rate,
                "problems": self.problems,
            },
            "checks": checks,
            **self.extra,
            "timing": {
                "started_utc": self.started_utc,
                "elapsed_s": round(self.elapsed_s, 3),
                "checks_s": {o.check.name: round(o.elapsed_s, 3) for o in self.outcomes},
            },
        }


def _outcome_dicts(outcome: CheckOutcome) -> list[dict[str, Any]]:
    check = outcome.check
    common = {
        "check": check.name,
        "group": check.group,
        "reference": check.reference,
        "published": check.published,
        "exact": check.exact,
    }
    if outcome.error is not None or not outcome.results:
        return [
            {
                "name": check.name,
                "claim": check.claim,
                "scenario": {},
                "figure": None,
                "expected": None,
                "tolerance": None,
                "passed": False,
                "n_replicates": 0,
                "negative_control": None,
                **common,
                "seed_entropy": None,
                "ok": False,
                "problems": list(outcome.problems),
                "error": outcome.error,
                "warnings": list(outcome.warnings),
            }
        ]
    out = []
    for res in outcome.results:
        d = res.to_dict()
        extra = d.pop("extra", {})
        d.update(common)
        d["seed_entropy"] = d.get("seed")
        problems = cell_problems(check, res)
        d["ok"] = not problems
        d["problems"] = problems
        d["warnings"] = list(outcome.warnings)
        d["extra"] = extra
        out.append(d)
    return out


def select_checks(only: Sequence[str] | None = None) -> list[Check]:
    """Return the registered checks that ``only`` selects, in name order.

    Parameters
    ----------
    only : sequence of str or None
        Each entry is a check name, a group name (``"ab"``, ``"retrieval"``...), a
        shell-style pattern on check names (``"ab-*"``) or a cell name
        (``"aa-calibration/false-positive-rate"``: its check runs, and the cell has the
        figure it has in the full run, since its seed depends only on the run seed and
        the cell's seed key). None or empty: every check.

    Returns
    -------
    list of Check

    Raises
    ------
    UnknownCheckError
        If an entry matches nothing; the message lists the known names and groups.
    """
    checks = list(iter_checks())
    if not only:
        return checks
    chosen: set[str] = set()
    unknown: list[str] = []
    for selector in only:
        if "/" in selector:  # a cell: run its check
            selector = selector.split("/", 1)[0]
        hits = {
            c.name
            for c in checks
            if c.name == selector or c.group == selector or fnmatch.fnmatchcase(c.name, selector)
        }
        if not hits:
            unknown.append(selector)
        chosen |= hits
    if unknown:
        names = ", ".join(c.name for c in checks) or "(none registered)"
        groups = ", ".join(sorted({c.group for c in checks})) or "(none)"
        raise UnknownCheckError(
            f"`--only` matched no check for {', '.join(map(repr, unknown))}; "
            f"known checks: {names}; groups: {groups}."
        )
    return [c for c in checks if c.name in chosen]


def import_check_modules(modules: Iterable[str]) -> None:
    """Import extra modules whose import registers checks (``--import``)."""
    for module in modules:
        importlib.import_module(module)


def reproduce_command(
    *, profile: str, seed: int, only: Sequence[str] | None = None, imports: Sequence[str] = ()
) -> str:
    """Return the command line that reproduces a run's figures.

    Examples
    --------
    >>> reproduce_command(profile="quick", seed=7, only=["ab-*"])
    "python -m validation run --profile quick --seed 7 --only 'ab-*'"
    """
    parts = ["python", "-m", "validation", "run", "--profile", profile, "--seed", str(seed)]
    for module in imports:
        parts += ["--import", module]
    if only:
        parts += ["--only", *only]
    return " ".join(shlex.quote(p) for p in parts)


def _validate_run_checks(profile: str, seed: int, z: float) -> None:
    if profile not in PROFILES:
        raise ValueError(f"`profile` must be one of {PROFILES}; got {profile!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` must be an int; got {type(seed).__name__}.")
    if seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer; got {seed}.")
    if not (isinstance(z, (int, float)) and math.isfinite(z) and z > 0):
        raise ValueError(f"`z` must be a positive finite number; got {z!r}.")


def run_checks(
    checks: Sequence[Check] | None = None,
    *,
    profile: str = "quick",
    seed: int = DEFAULT_SEED,
    z: float = Z_FAMILY,
    show_progress: bool | None = None,
    on_outcome: Callable[[CheckOutcome], None] | None = None,
    command: str = "",
) -> SuiteRun:
    """Run ``checks`` (default: every registered check) and return the suite's outcome.

    Parameters
    ----------
    checks : sequence of Check or None
        What to run, in order; None runs :func:`select_checks` ``()``.
    profile : {"quick", "full"}
        Passed to every check through its :class:`RunContext`.
    seed : int
        Root seed, a non-negative integer.
    z : float
        Tolerance multiplier passed to every check.
    show_progress : bool or None
        Draw tqdm progress bars on stderr; None draws them only on a terminal.
    on_outcome : callable or None
        Called with each :class:`CheckOutcome` as soon as its check finishes (the
        CLI prints the console table from it).
    command : str
        The command that reproduces the run (recorded in the report).

    Returns
    -------
    SuiteRun

    Raises
    ------
    RunInterrupted
        On KeyboardInterrupt or :class:`validation.interrupt.Interrupted` (SIGINT or
        SIGTERM under the CLI's handler), carrying the checks
        that completed. Nothing is written.

    Notes
    -----
    A check that raises an ``Exception`` is recorded with its traceback summary and
    counts as failed; the run continues. Warnings a check emits are recorded (once per
    location) rather than raised.
    """
    _validate_run_checks(profile, seed, z)
    from tqdm import tqdm

    if checks is None:
        checks = select_checks(None)
    versions = package_versions()
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    disable = None if show_progress is None else not show_progress
    completed: list[CheckOutcome] = []
    outer = tqdm(total=len(checks), desc="checks", unit="check", file=sys.stderr, disable=disable)
    current: str | None = None
    try:
        for check in checks:
            current = check.name
            outer.set_postfix_str(check.name, refresh=True)
            outcome = _run_one(check, profile=profile, seed=seed, z=z, disable=disable)
            raise_if_received()  # an interrupt that C code turned into the check's error
            completed.append(outcome)
            outer.update(1)
            if on_outcome is not None:
                on_outcome(outcome)
            current = None
    except INTERRUPTS as exc:  # Ctrl-C, or SIGINT/SIGTERM under the CLI's handler
        raise RunInterrupted(tuple(completed), current) from exc
    finally:
        outer.close()
    return SuiteRun(
        seed=seed,
        profile=profile,
        z=float(z),
        outcomes=tuple(completed),
        versions=versions,
        command=command,
        started_utc=started,
        elapsed_s=time.perf_counter() - t0,
    )


def _run_one(
    check: Check, *, profile: str, seed: int, z: float, disable: bool | None
) -> CheckOutcome:
    from tqdm import tqdm

    bar: list[Any] = []

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(
                tqdm(total=total, desc=check.name, leave=False, file=sys.stderr, disable=disable)
            )
        b = bar[0]
        if b.total != total:
            b.total = total
        b.n = done
        b.refresh()

    ctx = RunContext(profile=profile, seed=seed, z=z, progress=progress)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    error: str | None = None
    results: tuple[CheckResult, ...] = ()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            out = check.run(ctx)
            bad = [type(r).__name__ for r in out if not isinstance(r, CheckResult)]
            if bad:
                raise TypeError(
                    f"check {check.name!r} must return CheckResult objects; got {bad[0]}."
                )
            results = tuple(out)
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            error = _traceback_summary(exc)
        finally:
            if bar:
                bar[0].close()
    seen: dict[str, None] = {}
    for w in caught:
        seen.setdefault(f"{w.category.__name__}: {w.message}", None)
    return CheckOutcome(
        check=check,
        results=results,
        elapsed_s=time.perf_counter() - t0,
        error=error,
        warnings=tuple(seen),
    )


def _traceback_summary(exc: BaseException, max_lines: int = 12) -> str:
    lines = "".join(traceback.format_exception(exc)).rstrip().splitlines()
    if len(lines) > max_lines:
        lines = ["  ..."] + lines[-max_lines:]
    return "\n".join(lines)
