"""The front of the report: findings (where formulas break, what failed) and the calibration map.

:func:`findings_blocks` lists, first in the report, every cell whose claim is a
documented breakdown (state *breaks as stated*: a ``below`` / ``above`` rule that holds,
e.g. "the delta interval under-covers: 0.81 at n = 20, heavy tails") and every cell that
fails. :func:`calibration_map` draws the coverage of every interval method by sample
size and distribution (the table of the ``delta-coverage`` check) as a heat map
centred on the nominal 0.95, marking the cells inside the Monte Carlo band.
"""

from __future__ import annotations

from typing import Any

from validation.render import Block, Bullets, Heading, _p
from validation.runner import SuiteRun, _fmt, cell_problems

#: The check whose ``extra["table"]`` feeds the calibration map.
MAP_CHECK = "delta-coverage"


def _finding(res: Any) -> tuple[tuple[str, str], ...]:
    side = "<" if res.rule == "below" else ">"
    bound = res.expected - res.tolerance if res.rule == "below" else res.expected + res.tolerance
    undefined = f", {res.n_undefined} undefined replicates" if res.n_undefined else ""
    return (
        ("code", res.name),
        ("", f": {_fmt(res.figure)} {side} {_fmt(bound)} (R = {res.n_replicates}{undefined}) — "),
        ("", res.claim),
    )


def findings_blocks(run: SuiteRun) -> list[Block]:
    """Return the Findings section: documented breakdowns, then failures."""
    breaks, fails = [], []
    for outcome in run.outcomes:
        for res in outcome.results:
            if cell_problems(outcome.check, res):
                fails.append(res)
            elif res.state == "breaks as stated":
                breaks.append(res)
    out: list[Block] = [Heading(2, "Findings")]
    out.append(
        _p(
            f"{len(breaks)} documented breakdowns hold as stated (amber in the tables): "
            "the formula is shown to fail in that scenario, by a margin of more than the "
            "Monte Carlo tolerance."
        )
    )
    if breaks:
        out.append(Bullets(tuple(_finding(r) for r in breaks)))
    if fails:
        out.append(_p(("b", f"{len(fails)} cells fail"), " (red; details under Problems):"))
        out.append(
            Bullets(
                tuple(
                    (("code", r.name), ("", f": {_fmt(r.figure)} vs {_fmt(r.expected)}"))
                    for r in fails
                )
            )
        )
    undefined = [r for o in run.outcomes for r in o.results if getattr(r, "n_undefined", 0)]
    if undefined:
        out.append(
            _p(
                f"{len(undefined)} cells have undefined replicates (a zero control ratio, "
                "a failed fit); they are counted next to R and left out of the figure."
            )
        )
    return out


def calibration_map(run: SuiteRun) -> Any | None:
    """Heat map of interval coverage: method x n, one panel per distribution.

    Colours diverge from the nominal 0.95 (white); a dot marks cells within
    0.95 ± z Monte Carlo s.e.; numbers are the coverages. Returns None when the run has
    no ``delta-coverage`` table.
    """
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    table = None
    for outcome in run.outcomes:
        if outcome.check.name == MAP_CHECK:
            for res in outcome.results:
                table = res.extra.get("table") or table
    if not table:
        return None
    dists = list(dict.fromkeys(row["dist"] for row in table))
    methods = list(dict.fromkeys(row["method"] for row in table))
    ns = sorted({int(row["n_per_arm"]) for row in table})
    fig = Figure(figsize=(3.2 * len(dists) + 1.2, 3.4), layout="constrained")  # has a colorbar
    axes = fig.subplots(1, len(dists), squeeze=False)[0]
    norm = TwoSlopeNorm(vcenter=0.95, vmin=0.75, vmax=1.0)
    image = None
    for ax, dist in zip(axes, dists, strict=True):
        grid = np.full((len(methods), len(ns)), np.nan)
        inside = np.zeros_like(grid, dtype=bool)
        for row in table:
            if row["dist"] != dist:
                continue
            i, j = methods.index(row["method"]), ns.index(int(row["n_per_arm"]))
            grid[i, j] = row["coverage"]
            inside[i, j] = (
                abs(row["coverage"] - 0.95)
                <= run.z * (0.95 * 0.05 / max(row.get("n_replicates", 1), 1)) ** 0.5
            )
        image = ax.imshow(grid, cmap="RdBu", norm=norm, aspect="auto")
        for i in range(len(methods)):
            for j in range(len(ns)):
                if np.isfinite(grid[i, j]):
                    mark = " •" if inside[i, j] else ""
                    ax.text(j, i, f"{grid[i, j]:.3f}{mark}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(ns)), [str(n) for n in ns], fontsize=7)
        ax.set_yticks(range(len(methods)), methods if ax is axes[0] else [], fontsize=7)
        ax.set_xlabel("users per arm", fontsize=8)
        ax.set_title(dist, fontsize=9)
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes), fraction=0.03, pad=0.02)
        bar.set_label("coverage (nominal 0.95; • within z s.e.)", fontsize=7)
    return fig
