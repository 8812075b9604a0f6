"""Mutation harness: realistic wrong implementations that the report must catch.

A *mutant* replaces one public function (or method) of ``estimators``, ``recsys`` or
``sim`` in-process (no source edit) by a plausible wrong version: a dropped covariance
term, a ``z`` for a ``t``, a flipped sign, the wrong exponent, an expected count where an
inclusion probability belongs. The harness runs the checks that exercise the function
under the mutant and records which cells then fail; a mutant is *killed* when at least
one cell fails (or a check raises). ``python -m validation mutants`` exits 0 only when
every mutant is killed. The catalogue is :data:`MUTANTS`; docs/theory.md lists it too.

Swaps go into the defining submodule *and* the package namespace (whichever holds the
original), so both the internal callers of the package and the call-time lookups of
:mod:`validation.shipped` see the mutant.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from validation.mutants_catalogue import MUTANTS, Mutant, Wrapper

#: Suffix of a killer that is a check raising (not a failing cell).
RAISED = " (raised)"

__all__ = [
    "MUTANTS",
    "Mutant",
    "MutantOutcome",
    "Wrapper",
    "run_mutant",
    "select_mutants",
    "swapped",
]


def _owner_and_attr(target: str) -> tuple[Any, str, Any]:
    module_name, _, path = target.partition(":")
    module = importlib.import_module(module_name)
    *owners, attr = path.split(".")
    owner: Any = module
    for name in owners:
        owner = getattr(owner, name)
    return module, attr, owner


@contextlib.contextmanager
def swapped(mutant: Mutant) -> Iterator[None]:
    """Install ``mutant`` for the duration of the block; restore the originals after."""
    module, attr, owner = _owner_and_attr(mutant.target)
    original = getattr(owner, attr)
    replacement = mutant.make(original)
    places = [owner]
    if owner is module:
        package = importlib.import_module(module.__name__.split(".", 1)[0])
        if package is not module and getattr(package, attr, None) is original:
            places.append(package)
    saved = [(place, place.__dict__.get(attr, original)) for place in places]
    try:
        for place in places:
            setattr(place, attr, replacement)
        yield
    finally:
        for place, value in saved:
            setattr(place, attr, value)


def _killed_by_cells(killers: Sequence[str]) -> bool:
    """Return True when a killer is a cell (not only a check that raised)."""
    return any(not name.endswith(RAISED) for name in killers)


@dataclass(frozen=True, slots=True)
class MutantOutcome:
    """What the report did under one mutant."""

    mutant: Mutant
    killed_by: tuple[str, ...]
    elapsed_s: float

    @property
    def killed(self) -> bool:
        """True when at least one cell failed (or a check raised)."""
        return bool(self.killed_by)

    @property
    def kill(self) -> str:
        """Return how the mutant died: ``"cells"``, ``"raised"`` or ``""`` (survived).

        ``"cells"``: a cell failed its claim or its control; ``"raised"``: only checks
        raising killed it.
        """
        if _killed_by_cells(self.killed_by):
            return "cells"
        return "raised" if self.killed_by else ""


def select_mutants(only: Sequence[str] | None) -> list[Mutant]:
    """Mutants named in ``only`` (all when None); ValueError naming unknown names."""
    if not only:
        return list(MUTANTS)
    names = {m.name: m for m in MUTANTS}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise ValueError(f"unknown mutant(s) {unknown}; known: {', '.join(names)}.")
    return [names[n] for n in only]


def run_mutant(
    mutant: Mutant,
    *,
    profile: str = "quick",
    seed: int | None = None,
    stop_at_first_kill: bool = False,
) -> MutantOutcome:
    """Run the checks of ``mutant`` with it installed; return the killing cells.

    Parameters
    ----------
    mutant : Mutant
        The wrong implementation to install (:func:`swapped`).
    profile : {"quick", "full"}
        Profile of the checks.
    seed : int or None
        Root seed; None: the report's default seed.
    stop_at_first_kill : bool
        Skip the mutant's remaining listed checks once one check had a failing *cell*
        (a check that only raised does not stop the run). The checks that did run give
        the same figures either way (each check is seeded on its own, by name), so the
        verdict "killed by cells" is unchanged; only the kill map is shorter. The CLI
        leaves it False to print every killing cell.

    Returns
    -------
    MutantOutcome
    """
    from validation.runner import DEFAULT_SEED, cell_problems, run_checks, select_checks

    start = time.perf_counter()
    checks = select_checks(list(mutant.checks))
    root = DEFAULT_SEED if seed is None else seed
    killed: list[str] = []
    with swapped(mutant):
        for check in checks:
            run = run_checks([check], profile=profile, seed=root)
            for outcome in run.outcomes:
                if outcome.error is not None:
                    killed.append(f"{outcome.check.name}{RAISED}")
                for res in outcome.results:
                    if cell_problems(outcome.check, res):
                        killed.append(res.name)
            if stop_at_first_kill and _killed_by_cells(killed):
                break
    return MutantOutcome(mutant, tuple(killed), time.perf_counter() - start)


def command(args: Any) -> int:
    """Run ``python -m validation mutants`` (the mutation harness; exit 0 when all are killed)."""
    import json
    import sys

    import matplotlib

    from validation.cli_common import (
        EXIT_FAILED,
        EXIT_INTERRUPTED,
        EXIT_OK,
        EXIT_USAGE,
        load_checks,
    )
    from validation.interrupt import INTERRUPTS

    matplotlib.use("Agg")

    try:
        mutants = select_mutants(args.only)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.list:
        for m in mutants:
            print(f"{m.name:<36} {m.target}\n    {m.description}")
        return EXIT_OK
    if not load_checks([]):
        return EXIT_FAILED
    print(f"{'mutant':<36} {'state':<9} {'kill':<6} {'s':>6}  killing cells", flush=True)
    rows = []
    try:
        for m in mutants:
            outcome = run_mutant(m, profile=args.profile, seed=args.seed)
            state = "killed" if outcome.killed else "SURVIVED"
            cells = ", ".join(outcome.killed_by[:4]) + (
                f" (+{len(outcome.killed_by) - 4})" if len(outcome.killed_by) > 4 else ""
            )
            print(
                f"{m.name:<36} {state:<9} {outcome.kill:<6} {outcome.elapsed_s:>6.1f}  {cells}",
                flush=True,
            )
            rows.append(
                {
                    "mutant": m.name,
                    "target": m.target,
                    "description": m.description,
                    "killed_by": list(outcome.killed_by),
                    "kill": outcome.kill,
                    "elapsed_s": outcome.elapsed_s,
                }
            )
    except INTERRUPTS:
        print("\ninterrupted; nothing was written.", file=sys.stderr)
        return EXIT_INTERRUPTED
    killed = sum(bool(r["killed_by"]) for r in rows)
    print(f"mutation score: {killed}/{len(rows)} killed ({args.profile} profile)")
    if args.out is not None:
        from validation.runner_io import AtomicWriter

        doc = {"profile": args.profile, "seed": args.seed, "mutants": rows}
        with AtomicWriter(args.out) as writer:  # an interrupt leaves the previous file
            writer.stage("mutants.json", json.dumps(doc, indent=2))
            writer.commit()
    return EXIT_OK if killed == len(rows) else EXIT_FAILED
