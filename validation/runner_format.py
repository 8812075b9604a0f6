"""Verdict words and console lines of the runner: a cell's problems, its state, the table.

:func:`cell_problems` says, one sentence each, why a cell fails the suite (its claim,
its negative control, a missing control, a non-finite figure); :func:`format_outcome_lines`
prints the console table with its column headers' order.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from validation.core import Check, CheckResult

if TYPE_CHECKING:
    from validation.runner import CheckOutcome


def uses_own_rule(res: CheckResult) -> bool:
    """Tell whether the cell's rule is other than ``|figure - expected| <= tolerance``.

    Every cell stores its rule (:data:`validation.core.RULES`): a one-sided bound
    (``at_most``, ``at_least``) or a documented breakdown (``below``, ``above``). The
    report names the rule so that a verdict outside the ± band is not read as an error.
    """
    return res.rule != "within"


_RULE_TEXT = {
    "within": "outside",
    "at_most": "above (rule at_most)",
    "at_least": "below (rule at_least)",
    "below": "not clearly below (rule below)",
    "above": "not clearly above (rule above)",
}


def state_label(res: CheckResult) -> str:
    """Console word of a cell's state: HOLDS, BREAKS (as stated) or FAIL."""
    return {"holds": "HOLDS", "breaks as stated": "BREAKS", "fails": "FAIL"}[res.state]


def cell_problems(check: Check, res: CheckResult) -> list[str]:
    """Return why the cell ``res`` of ``check`` fails the suite (empty when it holds).

    A cell fails when its claim does not hold, when its negative control passes (the
    check could not tell a false claim from a true one), when a check not registered
    as an exact identity returns no control, or when its figure or tolerance is not a
    finite number.
    """
    out: list[str] = []
    for label, value in (("figure", res.figure), ("tolerance", res.tolerance)):
        if not _is_finite_number(value):
            out.append(f"cell {res.name!r}: {label} is not a finite number ({value!r}).")
    if not res.passed:
        where = _RULE_TEXT.get(res.rule, "outside")
        out.append(
            f"cell {res.name!r} failed: figure {_fmt(res.figure)} {where} "
            f"{_fmt(res.expected)} ± {_fmt(res.tolerance)}."
        )
    ctrl = res.negative_control
    if ctrl is None:
        if not check.exact:
            out.append(
                f"cell {res.name!r} has no negative control, and check {check.name!r} is "
                "not registered as an exact identity (exact=True)."
            )
    elif not ctrl.failed_as_expected:
        out.append(
            f"negative control {ctrl.name!r} of cell {res.name!r} passed (figure "
            f"{_fmt(ctrl.figure)}): the check cannot tell the false claim from the true one."
        )
    return out


def format_outcome_lines(outcome: CheckOutcome) -> list[str]:
    """Return the console-table lines of one finished check (one per cell).

    Columns: verdict, cell name, figure, expected ± tolerance, replicates, and the
    negative control's verdict; then the check's elapsed time.
    """
    check = outcome.check
    lines: list[str] = []
    if outcome.error is not None:
        last = outcome.error.strip().splitlines()[-1] if outcome.error.strip() else "error"
        lines.append(f"ERROR {check.name:<40} raised {last}")
    elif not outcome.results:
        lines.append(f"FAIL  {check.name:<40} returned no cells")
    if outcome.results:
        lines.append(
            f"{'state':<6} {'cell':<40} {'figure':>10}  {'expected ± tolerance':<22} "
            f"{'rule':<8} {'R (undef.)':<12} negative control"
        )
    for res in outcome.results:
        band = f"{_fmt(res.expected)} ± {_fmt(res.tolerance)}"
        ctrl = res.negative_control
        if ctrl is None:
            ctrl_text = (
                "exact identity, no control" if check.exact else "NO CONTROL (suite failure)"
            )
        elif ctrl.failed_as_expected:
            ctrl_text = f"control {ctrl.name} = {_fmt(ctrl.figure)}: fails as expected"
        else:
            ctrl_text = f"control {ctrl.name} = {_fmt(ctrl.figure)}: PASSED (suite failure)"
        reps = f"{res.n_replicates}" + (f" ({res.n_undefined})" if res.n_undefined else "")
        lines.append(
            f"{state_label(res):<6} {res.name:<40} {_fmt(res.figure):>10}  {band:<22} "
            f"{res.rule:<8} {reps:<12} {ctrl_text}"
        )
    lines.append(f"      {check.name} took {outcome.elapsed_s:.1f} s")
    return lines


def _is_finite_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _fmt(value: Any, digits: int = 4) -> str:
    """Format a figure with ``digits`` significant digits; non-numbers as they are.

    Examples
    --------
    >>> _fmt(0.951234), _fmt(0.0021794, 3), _fmt(None)
    ('0.9512', '0.00218', 'None')
    """
    if isinstance(value, bool) or value is None:
        return str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{x:.{digits}g}"
