"""The validation report: ``report.md``, a self-contained ``report.html`` and PNG plots.

:func:`write_report` turns a :class:`~validation.runner.SuiteRun` into the three files
of the report directory (plus ``plots/*.png``), staged in temporary files and moved
into place together, ``results.json`` last, so an interrupted write never leaves a
half-written file. Both documents are rendered from one list of blocks, so the
markdown and the HTML always say the same thing; the HTML embeds every PNG as base64
and needs no other file.

Each check's plot comes from the ``plot(results)`` function it registered (a
matplotlib Figure); a check without one gets the standard deviation plot
(:func:`deviation_figure`): every cell's ``(figure - expected) / tolerance`` against
the acceptance band [-1, 1], with its negative control beside it. A plot function that
raises is reported in the document, never fatal. ``docs/report.md`` explains how to
read the report.

References
----------
.. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics:
   A Practical Guide with Novel Ideas", KDD 2018.
"""

from __future__ import annotations

import io
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from validation.core import Check, CheckResult
from validation.findings import calibration_map, findings_blocks
from validation.recsys_section import (
    RecsysComparison,
    load_recsys_results,
    recsys_blocks,
    recsys_figure,
    with_recsys_extra,
)
from validation.render import (
    Block,
    Bullets,
    Code,
    Heading,
    Image,
    Table,
    Toc,
    _p,
    render_html,
    render_markdown,
)
from validation.runner import (
    QUICK_BUDGET_S,
    AtomicWriter,
    CheckOutcome,
    SuiteRun,
    _fmt,
    cell_problems,
    results_json,
    uses_own_rule,
)

#: Order of the report's sections; other groups follow alphabetically.
GROUP_ORDER: tuple[str, ...] = ("ab", "power", "cuped", "retrieval")


# --------------------------------------------------------------------------- plots


@dataclass(frozen=True, slots=True)
class PlotOutcome:
    """A rendered plot or why there is none.

    Attributes
    ----------
    key : str
        Check name (or ``"overview"``, ``"recsys"``).
    png : bytes or None
        The PNG, None when drawing failed.
    error : str or None
        What went wrong.
    default : bool
        True when the standard deviation plot stands in for a registered one.
    """

    key: str
    png: bytes | None
    error: str | None = None
    default: bool = False


def figure_png(fig: Any) -> bytes:
    """Return ``fig`` (a matplotlib Figure) as PNG bytes and close it if pyplot owns it."""
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise TypeError(
            f"a plot function must return a matplotlib Figure; got {type(fig).__name__}."
        )
    buf = io.BytesIO()
    if fig.get_layout_engine() is None:
        # the tight layout at draw time costs one extra layout pass; bbox_inches="tight"
        # drew every figure twice (about 5 s of a quick report's 15 plots)
        fig.set_layout_engine("tight")
    try:
        # fast zlib level: the PNGs are a few % larger, encoding several times faster
        fig.savefig(
            buf,
            format="png",
            dpi=100,
            metadata={"Software": None},
            pil_kwargs={"compress_level": 1},
        )
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close(fig)
    return buf.getvalue()


def _deviation(value: float, expected: float, tolerance: float) -> float:
    if not (math.isfinite(tolerance) and tolerance > 0):
        return math.nan
    return (float(value) - float(expected)) / float(tolerance)


def deviation_figure(cells: Sequence[tuple[Check, CheckResult]], title: str) -> Any:
    """Plot each cell's ``(figure - expected) / tolerance`` against the band [-1, 1].

    A cell passes under the symmetric rule when its point lies in the shaded band; its
    negative control (a cross) should lie outside it. The axis is symmetric-log beyond
    ±1 so that distant controls stay on the page.

    Parameters
    ----------
    cells : sequence of (Check, CheckResult)
        The cells to draw, top to bottom.
    title : str
        The axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import PlaceHolderLayoutEngine
    from matplotlib.ticker import FuncFormatter

    n = max(1, len(cells))
    fig = Figure(figsize=(8.0, 1.2 + 0.28 * n))
    ax = fig.subplots()
    ax.axvspan(-1.0, 1.0, color="#d8f0d8", label="acceptance band (±z·MCSE)")
    ax.axvline(0.0, color="#6a6", lw=0.8)
    labels = []
    # one Line2D per (marker, colour, legend label), not one per point: a quick report's
    # overview has ~340 points, and drawing them one artist each took ~3 s
    points: dict[tuple[str, str, str, float], tuple[list[float], list[float]]] = {}

    def add(style: tuple[str, str, str, float], x: float, y: float) -> None:
        xs, ys = points.setdefault(style, ([], []))
        xs.append(x)
        ys.append(y)

    for i, (_check, res) in enumerate(cells):
        y = n - 1 - i
        labels.append((y, res.name))
        d = _deviation(res.figure, res.expected, res.tolerance)
        if math.isfinite(d):
            own = uses_own_rule(res)
            color = "#c22" if not res.passed else "#d90" if own else "#2a7"
            label = ("cell (FAIL)" if not res.passed else f"cell ({res.state})") + (
                ", own rule" if own else ""
            )
            add(("D" if own else "o", color, label, 6.0), d, y)
        ctrl = res.negative_control
        if ctrl is not None:
            dc = _deviation(ctrl.figure, res.expected, res.tolerance)
            if math.isfinite(dc):
                ok = ctrl.failed_as_expected
                label = "negative control" if ok else "control (PASSED)"
                add(("x", "#555" if ok else "#c22", label, 8.0), dc, y)
    for (marker, color, label, size), (xs, ys) in points.items():
        ax.plot(xs, ys, marker, ms=size, color=color, label=label, linestyle="none")
    ax.set_xscale("symlog", linthresh=1.0)
    # At most ~5 decades labelled per side, so labels never overlap however far a
    # negative control lands (controls can sit 1e10 tolerances away).
    lo, hi = ax.get_xlim()
    top = max(1, math.ceil(math.log10(max(abs(lo), abs(hi), 10.0))))
    step = max(1, math.ceil(top / 5))
    decades = [10.0**k for k in range(step, top + 1, step)]
    ax.set_xticks(sorted([0.0, 1.0, -1.0, *decades, *(-d for d in decades)]))
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _pos: f"{v:g}" if abs(v) < 1e3 else f"{v:.0e}".replace("e+0", "e"))
    )
    ax.set_yticks([y for y, _ in labels], [name for _, name in labels], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("(figure − expected) / tolerance")
    ax.set_title(title, fontsize=10)
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    ax.legend(
        unique.values(), unique.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0)
    )
    ax.grid(axis="x", alpha=0.3)
    # Margins from the measured width of the longest label instead of a tight layout:
    # the tight layout measured every tick label several times (2 s of 3 for the
    # overview's ~170 labels).
    left = _text_width_in(max((name for _, name in labels), key=len, default=""), 8) + 0.3
    right = _text_width_in(max(unique, key=len, default=""), 7) + 0.75
    width, height = max(8.0, left + 4.5 + right), fig.get_figheight()
    fig.set_size_inches(width, height)
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=0.62 / height, top=1 - 0.4 / height
    )
    # keep these margins: a placeholder engine, so that figure_png adds no tight layout
    fig.set_layout_engine(PlaceHolderLayoutEngine(adjust_compatible=True, colorbar_gridspec=True))
    return fig


def _text_width_in(text: str, size: float) -> float:
    """Width in inches of ``text`` set in the default font at ``size`` points."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    renderer = RendererAgg(1, 1, 72.0)
    width, _, _ = renderer.get_text_width_height_descent(
        text, FontProperties(size=size), ismath=False
    )
    return width / 72.0


def render_check_plot(outcome: CheckOutcome) -> PlotOutcome | None:
    """Draw the plot of one check: its registered function or the deviation plot.

    Returns None for a check that produced no cells (it raised). A plot function that
    raises, or returns something other than a Figure, gives a :class:`PlotOutcome`
    with ``error`` set.
    """
    check = outcome.check
    if not outcome.results:
        return None
    if check.plot is None:
        fig = deviation_figure([(check, r) for r in outcome.results], check.name)
        return PlotOutcome(check.name, figure_png(fig), default=True)
    try:
        return PlotOutcome(check.name, figure_png(check.plot(list(outcome.results))))
    except Exception as exc:  # noqa: BLE001 - reported in the document
        return PlotOutcome(check.name, None, error=f"{type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- document


def _group_key(group: str) -> tuple[int, str]:
    return (GROUP_ORDER.index(group), "") if group in GROUP_ORDER else (len(GROUP_ORDER), group)


def _compact(value: Any) -> str:
    if isinstance(value, float):
        return _fmt(value, 4)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_compact(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_compact(v)}" for k, v in value.items()) + "}"
    return str(value)


def _scenario_text(scenario: dict[str, Any], limit: int = 160) -> str:
    text = ", ".join(f"{k}={_compact(v)}" for k, v in scenario.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell_row(check: Check, res: CheckResult) -> tuple[tuple[str, ...], str]:
    ctrl = res.negative_control
    if ctrl is None:
        ctrl_cells = ("— (exact identity)" if check.exact else "MISSING", "", "")
    else:
        ctrl_cells = (
            ctrl.name,
            _fmt(ctrl.figure, 5),
            "fails as expected" if ctrl.failed_as_expected else "PASSED (suite failure)",
        )
    row = (
        res.name,
        _scenario_text(res.scenario),
        _fmt(res.figure, 5),
        f"{_fmt(res.expected, 5)} ± {_fmt(res.tolerance, 3)}",
        str(res.n_replicates) + (f" ({res.n_undefined} undefined)" if res.n_undefined else ""),
        res.state + ("" if res.rule == "within" else f" (rule {res.rule})"),
        *ctrl_cells,
    )
    if cell_problems(check, res):
        return row, "fail"
    return row, ("breaks" if res.state == "breaks as stated" else "pass")


_CELL_HEADER = (
    "cell",
    "scenario",
    "figure",
    "expected ± tolerance",
    "replicates",
    "claim",
    "negative control",
    "control figure",
    "control",
)


def build_blocks(
    run: SuiteRun,
    plots: dict[str, PlotOutcome],
    *,
    recsys: RecsysComparison | None = None,
    recsys_plot: PlotOutcome | None = None,
    overview: PlotOutcome | None = None,
    calmap: PlotOutcome | None = None,
) -> list[Block]:
    """Return the report as blocks (rendered by :func:`render_markdown` and :func:`render_html`)."""
    blocks: list[Block] = [Heading(1, "Validation report")]
    problems = run.problems
    if run.ok:
        blocks.append(
            _p(
                ("b", "Verdict: PASS"),
                " — every claim holds and every negative control failed as it should.",
            )
        )
    else:
        blocks.append(_p(("b", "Verdict: FAIL"), f" — {len(problems)} problem(s), listed below."))
    front = findings_blocks(run)
    if calmap is not None:
        front.append(Heading(2, "Calibration map"))
        if calmap.png is not None:
            front.append(
                _p(
                    "Coverage of the 95% intervals by method, users per arm and "
                    "distribution (check delta-coverage); white is nominal, red "
                    "under-covers, blue over-covers; • marks coverage within z s.e. of 0.95."
                )
            )
            front.append(Image("plots/calibration-map.png", calmap.png, "calibration map"))
        else:
            front.append(_p(("b", "Plot failed: "), calmap.error or "unknown error"))
    groups = sorted({o.check.group for o in run.outcomes}, key=_group_key)
    sections = [h.text for h in front if isinstance(h, Heading)]
    sections += ["Summary"] + (["Problems"] if problems else [])
    sections += ["Overview"] if overview is not None and overview.png is not None else []
    sections += [f"Group: {g}" for g in groups]
    sections += ["Recsys comparison"] if recsys is not None else []
    sections += ["Environment"]
    blocks.append(Heading(2, "Contents"))
    blocks.append(Toc(tuple((2, t) for t in sections)))
    blocks.extend(front)
    blocks.append(Heading(2, "Summary"))
    fw = run.family_wise_rate
    summary_rows = [
        ("profile", run.profile),
        ("seed", str(run.seed)),
        ("checks", str(len(run.outcomes))),
        ("cells passed", f"{run.n_passed} / {run.n_cells}"),
        (
            "negative controls failed as expected",
            f"{run.n_controls_failed} / {run.n_controls}",
        ),
        ("exact identities (no control)", str(run.n_exact)),
        ("tolerance", f"z = {_fmt(run.z)} Monte Carlo standard errors per cell"),
        (
            "family-wise false-failure bound",
            f"{fw:.2%} (Bonferroni: {run.n_cells} cells × P(|N(0,1)| > {_fmt(run.z)}))",
        ),
        ("reproduce", run.command or "(not recorded)"),
        ("elapsed", f"{run.elapsed_s:.1f} s"),
        ("started (UTC)", run.started_utc),
    ]
    blocks.append(Table(("summary", ""), tuple(summary_rows)))
    if run.profile == "quick" and run.elapsed_s > QUICK_BUDGET_S:
        blocks.append(
            _p(
                f"Note: the quick profile took {run.elapsed_s:.0f} s, over its "
                f"{QUICK_BUDGET_S:.0f} s budget on 2 cores (per-check times are below)."
            )
        )
    blocks.append(
        _p(
            "How to read this report: ",
            ("code", "docs/report.md"),
            " in the repository. Every figure is reproduced by the command above.",
        )
    )
    if problems:
        blocks.append(Heading(2, "Problems"))
        blocks.append(Bullets(tuple((("", p),) for p in problems)))
    if overview is not None and overview.png is not None:
        blocks.append(Heading(2, "Overview"))
        blocks.append(
            _p(
                "Each cell's (figure − expected) / tolerance. A cell with the rule `within` "
                "holds inside the green band; `at_most` / `at_least` hold on their side of "
                "it; a documented breakdown (`below` / `above`, amber) holds outside it on "
                "the stated side. Each negative control (×) is judged by its cell's own "
                "claim and must not hold."
            )
        )
        blocks.append(Image("plots/overview.png", overview.png, "overview of all cells"))

    for group in groups:
        blocks.append(Heading(2, f"Group: {group}"))
        for outcome in (o for o in run.outcomes if o.check.group == group):
            blocks.extend(_check_blocks(outcome, plots.get(outcome.check.name)))

    if recsys is not None:
        blocks.extend(recsys_blocks(recsys, recsys_plot))

    blocks.append(Heading(2, "Environment"))
    blocks.append(
        Table(("package", "version"), tuple((k, str(v)) for k, v in run.versions.items()))
    )
    timing = tuple((o.check.name, f"{o.elapsed_s:.2f}") for o in run.outcomes)
    blocks.append(Heading(3, "Time per check"))
    blocks.append(Table(("check", "seconds"), timing))
    return blocks


def _check_blocks(outcome: CheckOutcome, plot: PlotOutcome | None) -> list[Block]:
    check = outcome.check
    verdict = "PASS" if outcome.ok else "FAIL"
    out: list[Block] = [Heading(3, f"{check.name} — {verdict}")]
    out.append(_p(("b", "Claim: "), check.claim))
    if check.reference:
        out.append(_p(("b", "Reference: "), check.reference))
    if check.published:
        out.append(_p(("b", "Published figure: "), check.published))
    if check.exact:
        out.append(_p("Exact identity: no negative control is expected."))
    if outcome.error is not None:
        out.append(_p(("b", "The check raised"), " (recorded as failed):"))
        out.append(Code(outcome.error))
    elif not outcome.results:
        out.append(_p(("b", "The check returned no cells"), " (recorded as failed)."))
    else:
        rows, classes = zip(*(_cell_row(check, r) for r in outcome.results), strict=True)
        out.append(Table(_CELL_HEADER, tuple(rows), tuple(classes)))
        if any(uses_own_rule(r) for r in outcome.results):
            out.append(
                _p(
                    "(rule at_most / at_least): a one-sided bound; (rule below / above): a "
                    "documented breakdown, the figure must leave the band on that side; "
                    "otherwise |figure − expected| ≤ tolerance. The negative control is "
                    "judged by the same claim and must not hold."
                )
            )
        own = [r for r in outcome.results if r.claim and r.claim != check.claim]
        if own:
            out.append(Bullets(tuple(((("code", r.name), ("", f": {r.claim}"))) for r in own)))
    for problem in outcome.problems:
        if outcome.error is None:
            out.append(_p(("b", "Problem: "), problem))
    if outcome.warnings:
        out.append(Bullets(tuple((("", "warning: "), ("code", w)) for w in outcome.warnings)))
    if plot is not None:
        if plot.png is not None:
            if plot.default:
                out.append(_p("No plot registered; (figure − expected) / tolerance of each cell:"))
            out.append(Image(f"plots/{_safe_name(check.name)}.png", plot.png, check.name))
        else:
            out.append(_p(("b", "Plot failed: "), plot.error or "unknown error"))
    out.append(_p(f"Elapsed: {outcome.elapsed_s:.1f} s."))
    return out


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True, slots=True)
class ReportPaths:
    """Where :func:`write_report` put things (absolute paths).

    Attributes
    ----------
    results_json, markdown, html : Path
        The three files.
    plots : tuple of Path
        The PNGs under ``plots/``.
    plot_errors : tuple of str
        ``"<check>: <error>"`` for each plot that failed (also in the report).
    """

    results_json: Path
    markdown: Path
    html: Path
    plots: tuple[Path, ...]
    plot_errors: tuple[str, ...] = ()


def write_report(
    run: SuiteRun,
    out_dir: str | os.PathLike[str],
    *,
    recsys_results: str | os.PathLike[str] | None = None,
    plots: Mapping[str, PlotOutcome] | Callable[[], Mapping[str, PlotOutcome]] | None = None,
) -> ReportPaths:
    """Write ``results.json``, ``report.md``, ``report.html`` and ``plots/*.png``.

    Parameters
    ----------
    run : SuiteRun
        The finished run.
    out_dir : str or os.PathLike
        The report directory (created if missing).
    recsys_results : str, os.PathLike or None
        A ``results.json`` of ``python -m recsys compare`` to include.
    plots : mapping of str to PlotOutcome, or a callable returning one, optional
        Check plots already drawn, by check name (the callable, such as
        :meth:`validation.plot_worker.BackgroundPlots.plots`, is called once the
        overview plots are drawn); the others are drawn here with
        :func:`render_check_plot`.

    Returns
    -------
    ReportPaths

    Notes
    -----
    Every file is written to a temporary file in its final folder and moved into place
    with ``os.replace`` once all are ready, ``results.json`` last, with SIGINT/SIGTERM
    held back during the moves; an interrupt before then leaves the previous files
    untouched and removes the temporary ones.
    """
    out = Path(out_dir).resolve()
    cells = list(run.cells())
    overview = (
        PlotOutcome("overview", figure_png(deviation_figure(cells, "all cells"))) if cells else None
    )
    try:
        cal_fig = calibration_map(run)
        calmap = None if cal_fig is None else PlotOutcome("calibration-map", figure_png(cal_fig))
    except Exception as exc:  # noqa: BLE001 - reported in the document
        calmap = PlotOutcome("calibration-map", None, error=f"{type(exc).__name__}: {exc}")
    recsys = recsys_plot = None
    if recsys_results is not None:
        recsys = load_recsys_results(recsys_results)
        if recsys.rows:
            try:
                recsys_plot = PlotOutcome("recsys", figure_png(recsys_figure(recsys)))
            except Exception as exc:  # noqa: BLE001 - reported in the document
                recsys_plot = PlotOutcome("recsys", None, error=f"{type(exc).__name__}: {exc}")
    # the check plots last: a background worker (``plots``) may still be drawing them
    drawn = dict((plots() if callable(plots) else plots) or {})
    check_plots: dict[str, PlotOutcome] = {}
    for outcome in run.outcomes:
        name = outcome.check.name
        plot = drawn[name] if name in drawn and outcome.results else render_check_plot(outcome)
        if plot is not None:
            check_plots[name] = plot
    blocks = build_blocks(
        run, check_plots, recsys=recsys, recsys_plot=recsys_plot, overview=overview, calmap=calmap
    )
    if recsys is not None:
        run = with_recsys_extra(run, recsys)
    written_plots: list[Path] = []
    with AtomicWriter(out) as writer:
        for block in blocks:
            if isinstance(block, Image):
                written_plots.append(writer.stage(block.src, block.png))
        writer.stage("report.md", render_markdown(blocks))
        writer.stage("report.html", render_html(blocks))
        writer.stage("results.json", results_json(run), last=True)
        writer.commit()
    errors = tuple(f"{k}: {p.error}" for k, p in check_plots.items() if p.error is not None)
    return ReportPaths(
        results_json=out / "results.json",
        markdown=out / "report.md",
        html=out / "report.html",
        plots=tuple(written_plots),
        plot_errors=errors,
    )
