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

import base64
import html
import io
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from validation.core import Check, CheckResult
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

_MAX_RECSYS_PNGS = 4


# --------------------------------------------------------------------------- blocks


@dataclass(frozen=True, slots=True)
class Heading:
    """A section heading."""

    level: int
    text: str


@dataclass(frozen=True, slots=True)
class Paragraph:
    """A paragraph of runs ``(style, text)``, style in {"", "b", "code"}."""

    runs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Bullets:
    """A bullet list; each item is a tuple of runs as in :class:`Paragraph`."""

    items: tuple[tuple[tuple[str, str], ...], ...]


@dataclass(frozen=True, slots=True)
class Table:
    """A table of plain-text cells; ``row_classes`` ("pass", "fail" or "") colour rows."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    row_classes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Image:
    """A PNG: ``src`` is its path relative to the report (markdown); HTML embeds it."""

    src: str
    png: bytes
    alt: str


@dataclass(frozen=True, slots=True)
class Code:
    """A preformatted block."""

    text: str


Block = Heading | Paragraph | Bullets | Table | Image | Code


def _p(*runs: tuple[str, str] | str) -> Paragraph:
    return Paragraph(tuple(("", r) if isinstance(r, str) else r for r in runs))


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
    try:
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
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
    from matplotlib.ticker import FuncFormatter

    n = max(1, len(cells))
    fig = Figure(figsize=(8.0, 1.2 + 0.28 * n))
    ax = fig.subplots()
    ax.axvspan(-1.0, 1.0, color="#d8f0d8", label="acceptance band (±z·MCSE)")
    ax.axvline(0.0, color="#6a6", lw=0.8)
    labels = []
    for i, (_check, res) in enumerate(cells):
        y = n - 1 - i
        labels.append((y, res.name))
        d = _deviation(res.figure, res.expected, res.tolerance)
        if math.isfinite(d):
            own = uses_own_rule(res)
            ax.plot(
                [d],
                [y],
                "D" if own else "o",
                color=("#c22" if not res.passed else "#d90" if own else "#2a7"),
                label=("cell (FAIL)" if not res.passed else f"cell ({res.state})")
                + (", own rule" if own else ""),
            )
        ctrl = res.negative_control
        if ctrl is not None:
            dc = _deviation(ctrl.figure, res.expected, res.tolerance)
            if math.isfinite(dc):
                ax.plot(
                    [dc],
                    [y],
                    "x",
                    ms=8,
                    color="#555" if ctrl.failed_as_expected else "#c22",
                    label="negative control" if ctrl.failed_as_expected else "control (PASSED)",
                )
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
    return fig


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


# --------------------------------------------------------------------------- recsys


@dataclass(frozen=True, slots=True)
class RecsysRow:
    """One method × metric of a ``python -m recsys compare`` results file."""

    method: str
    metric: str
    mean: float
    sd: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None


@dataclass(frozen=True, slots=True)
class RecsysComparison:
    """What the report could read from a recsys ``results.json``.

    Attributes
    ----------
    path : str
        The file.
    rows : tuple of RecsysRow
        Per method and metric (empty when the structure was not understood).
    message : str or None
        Why nothing (or not everything) could be read.
    details : dict
        Configuration and data fingerprint, when present.
    pngs : tuple of (str, bytes)
        PNG files found next to the results file (e.g. Recall@K per epoch).
    """

    path: str
    rows: tuple[RecsysRow, ...] = ()
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    pngs: tuple[tuple[str, bytes], ...] = ()


_EXPECTED_RECSYS = (
    '{"methods": {METHOD: {METRIC: {"mean": x, "sd": x, "ci_low": x, "ci_high": x}}}} '
    '(or a list of {"method", "metric", "mean", ...} records)'
)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x


def _stats_row(method: str, metric: str, stats: Any) -> RecsysRow | None:
    if not isinstance(stats, dict):
        mean = _num(stats)
        return None if mean is None else RecsysRow(str(method), str(metric), mean)
    mean = _num(stats.get("mean"))
    if mean is None:
        return None
    sd = _num(stats.get("sd", stats.get("std", stats.get("stdev"))))
    lo = _num(stats.get("ci_low", stats.get("ci_lo", stats.get("lower"))))
    hi = _num(stats.get("ci_high", stats.get("ci_hi", stats.get("upper"))))
    for key in ("ci", "ci95", "ci_95", "confidence_interval"):
        pair = stats.get(key)
        if lo is None and isinstance(pair, (list, tuple)) and len(pair) == 2:
            lo, hi = _num(pair[0]), _num(pair[1])
        elif lo is None and isinstance(pair, dict):
            lo = _num(pair.get("low", pair.get("lower")))
            hi = _num(pair.get("high", pair.get("upper")))
    n_raw = stats.get("n", stats.get("n_seeds"))
    n = int(n_raw) if isinstance(n_raw, int) and not isinstance(n_raw, bool) else None
    if n is None and isinstance(stats.get("per_seed"), list):
        n = len(stats["per_seed"])
    return RecsysRow(str(method), str(metric), mean, sd, lo, hi, n)


def _rows_from_method_map(doc: dict[str, Any]) -> list[RecsysRow]:
    rows: list[RecsysRow] = []
    for method, metrics in doc.items():
        if not isinstance(metrics, dict):
            continue
        if isinstance(metrics.get("metrics"), dict):
            metrics = metrics["metrics"]
        for metric, stats in metrics.items():
            row = _stats_row(method, metric, stats)
            if row is not None:
                rows.append(row)
    return rows


def _rows_from_records(records: list[Any]) -> list[RecsysRow]:
    rows = []
    for rec in records:
        if isinstance(rec, dict) and "method" in rec and "metric" in rec:
            row = _stats_row(rec["method"], rec["metric"], rec)
            if row is not None:
                rows.append(row)
    return rows


def load_recsys_results(path: str | os.PathLike[str]) -> RecsysComparison:
    """Read a ``python -m recsys compare`` results file, defensively.

    Parameters
    ----------
    path : str or os.PathLike
        The ``results.json`` written by ``python -m recsys compare``.

    Returns
    -------
    RecsysComparison
        With ``rows`` when the per-method statistics were found, and ``message``
        explaining what could not be read otherwise; reading never raises for a file
        that exists, so a malformed file cannot sink the validation report.

    Notes
    -----
    Understood layouts: ``{"methods": {method: {metric: stats}}}`` (also under
    ``"results"``, ``"summary"`` or ``"metrics"``, or at the top level), where
    ``stats`` is ``{"mean", "sd" | "std", "ci_low", "ci_high" | "ci": [lo, hi], "n"}``
    or a bare number; ``{method: {"metrics": {...}}}``; and lists of records
    ``{"method", "metric", "mean", ...}``. PNG files in the same folder are included.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return RecsysComparison(str(p), message=f"could not read {p}: {exc}.")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return RecsysComparison(str(p), message=f"{p} is not valid JSON ({exc}).")
    pngs = []
    for png in sorted(p.parent.glob("*.png"))[:_MAX_RECSYS_PNGS]:
        try:
            data = png.read_bytes()
        except OSError:
            continue
        if data.startswith(b"\x89PNG"):
            pngs.append((png.name, data))
    rows: list[RecsysRow] = []
    details: dict[str, Any] = {}
    if isinstance(doc, list):
        rows = _rows_from_records(doc)
    elif isinstance(doc, dict):
        for key in (
            "ordering",
            "config",
            "configuration",
            "data_fingerprint",
            "fingerprint",
            "data",
        ):
            if key in doc and not isinstance(doc[key], list):
                details[key] = doc[key]
        for key in ("methods", "results", "summary", "metrics", "comparison", "rows"):
            candidate = doc.get(key)
            if isinstance(candidate, dict):
                rows = _rows_from_method_map(candidate)
            elif isinstance(candidate, list):
                rows = _rows_from_records(candidate)
            if rows:
                break
        if not rows:
            rows = _rows_from_method_map(doc)
    message = None
    if not rows:
        top = ", ".join(map(repr, list(doc)[:12])) if isinstance(doc, dict) else type(doc).__name__
        message = (
            f"could not find per-method metrics in {p} (top-level keys: {top}); "
            f"expected {_EXPECTED_RECSYS}."
        )
    return RecsysComparison(str(p), tuple(rows), message, details, tuple(pngs))


def recsys_figure(comparison: RecsysComparison) -> Any:
    """Bar chart of each method's mean per metric with its CI (or ±1 s.d.) as error bar."""
    from matplotlib.figure import Figure

    metrics = list(dict.fromkeys(r.metric for r in comparison.rows))[:6]
    methods = list(dict.fromkeys(r.method for r in comparison.rows))
    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig = Figure(figsize=(3.4 * ncols + 0.6, 3.0 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    by_key = {(r.method, r.metric): r for r in comparison.rows}
    for ax, metric in zip(axes, metrics, strict=False):
        xs, means, lows, highs = [], [], [], []
        for i, method in enumerate(methods):
            row = by_key.get((method, metric))
            if row is None or not math.isfinite(row.mean):
                continue
            row = _finite_row(row)
            xs.append(i)
            means.append(row.mean)
            if row.ci_low is not None and row.ci_high is not None:
                lows.append(max(0.0, row.mean - row.ci_low))
                highs.append(max(0.0, row.ci_high - row.mean))
            elif row.sd is not None and row.sd >= 0:
                lows.append(row.sd)
                highs.append(row.sd)
            else:
                lows.append(0.0)
                highs.append(0.0)
        ax.bar(xs, means, yerr=[lows, highs], capsize=4, color="#7aa6d6")
        ax.set_xticks(range(len(methods)), methods, rotation=30, fontsize=8)
        ax.set_title(metric, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("recsys comparison: mean over seeds, 95% CI", fontsize=10)
    return fig


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
                "Each cell's (figure − expected) / tolerance: a cell holds inside the green "
                "band; its negative control (×) must fall outside it."
            )
        )
        blocks.append(Image("plots/overview.png", overview.png, "overview of all cells"))

    groups = sorted({o.check.group for o in run.outcomes}, key=_group_key)
    for group in groups:
        blocks.append(Heading(2, f"Group: {group}"))
        for outcome in (o for o in run.outcomes if o.check.group == group):
            blocks.extend(_check_blocks(outcome, plots.get(outcome.check.name)))

    if recsys is not None:
        blocks.extend(_recsys_blocks(recsys, recsys_plot))

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


def _recsys_blocks(recsys: RecsysComparison, plot: PlotOutcome | None) -> list[Block]:
    out: list[Block] = [Heading(2, "Recsys comparison")]
    out.append(
        _p(
            "From ",
            ("code", recsys.path),
            " (written by ",
            ("code", "python -m recsys compare"),
            ").",
        )
    )
    if recsys.message:
        out.append(_p(("b", "Note: "), recsys.message))
    if recsys.rows:
        rows = tuple(
            (
                r.method,
                r.metric,
                _fmt(r.mean, 4),
                "" if r.sd is None else _fmt(r.sd, 3),
                ""
                if r.ci_low is None or r.ci_high is None
                else f"[{_fmt(r.ci_low, 4)}, {_fmt(r.ci_high, 4)}]",
                "" if r.n is None else str(r.n),
            )
            for r in recsys.rows
        )
        out.append(Table(("method", "metric", "mean", "sd", "95% CI", "n"), rows))
    if plot is not None:
        if plot.png is not None:
            out.append(Image("plots/recsys.png", plot.png, "recsys comparison"))
        else:
            out.append(_p(("b", "Plot failed: "), plot.error or "unknown error"))
    for name, png in recsys.pngs:
        out.append(_p("From the comparison's folder: ", ("code", name)))
        out.append(Image(f"plots/recsys-{_safe_name(name)}", png, name))
    if recsys.details:
        text = json.dumps(recsys.details, indent=1, default=str)
        if len(text) > 4000:
            text = text[:4000] + "\n…"
        out.append(Code(text))
    return out


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


# --------------------------------------------------------------------------- renderers


def _md_escape(text: str) -> str:
    text = text.replace("\\", "\\\\")
    for ch in "*_`<>|":
        text = text.replace(ch, "\\" + ch)
    return text


def _md_runs(runs: Sequence[tuple[str, str]]) -> str:
    parts = []
    for style, text in runs:
        if style == "b":
            parts.append(f"**{_md_escape(text).strip()}**" + (" " if text.endswith(" ") else ""))
        elif style == "code":
            parts.append("`" + text.replace("`", "'") + "`")
        else:
            parts.append(_md_escape(text))
    return "".join(parts)


def _md_cell(text: str) -> str:
    return _md_escape(text).replace("\n", " ")


def render_markdown(blocks: Sequence[Block]) -> str:
    """Render blocks as GitHub-flavoured markdown (images as relative links)."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {_md_escape(block.text)}")
        elif isinstance(block, Paragraph):
            out.append(_md_runs(block.runs))
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {_md_runs(item)}" for item in block.items))
        elif isinstance(block, Table):
            lines = [
                "| " + " | ".join(_md_cell(h) for h in block.header) + " |",
                "|" + "|".join("---" for _ in block.header) + "|",
            ]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
        elif isinstance(block, Image):
            out.append(f"![{_md_escape(block.alt)}]({block.src})")
        elif isinstance(block, Code):
            out.append("```\n" + block.text.replace("```", "'''") + "\n```")
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left;
         vertical-align: top; }
th { background: #f2f2f2; }
tr.pass td { background: #f1faf1; }
tr.fail td { background: #fde8e8; }
tr.breaks td { background: #fff4d6; }
code, pre { background: #f6f6f6; font-size: 0.9em; }
pre { padding: 0.6em; overflow-x: auto; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0;
      border: 1px solid #eee; }
h3 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
"""


def _html_runs(runs: Sequence[tuple[str, str]]) -> str:
    parts = []
    for style, text in runs:
        esc = html.escape(text)
        if style == "b":
            parts.append(f"<strong>{esc}</strong>")
        elif style == "code":
            parts.append(f"<code>{esc}</code>")
        else:
            parts.append(esc)
    return "".join(parts)


def render_html(blocks: Sequence[Block], title: str = "Validation report") -> str:
    """Render blocks as one self-contained HTML page (PNGs embedded as base64)."""
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_html_runs(block.runs)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{_html_runs(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            rows = []
            for i, row in enumerate(block.rows):
                cls = block.row_classes[i] if i < len(block.row_classes) else ""
                attr = f' class="{cls}"' if cls else ""
                cells = "".join(f"<td>{html.escape(c)}</td>" for c in row)
                rows.append(f"<tr{attr}>{cells}</tr>")
            body.append(
                f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            )
        elif isinstance(block, Image):
            data = base64.b64encode(block.png).decode("ascii")
            body.append(
                f'<img alt="{html.escape(block.alt, quote=True)}" '
                f'src="data:image/png;base64,{data}">'
            )
        elif isinstance(block, Code):
            body.append(f"<pre>{html.escape(block.text)}</pre>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


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
    plots: dict[str, PlotOutcome] = {}
    for outcome in run.outcomes:
        plot = render_check_plot(outcome)
        if plot is not None:
            plots[outcome.check.name] = plot
    cells = list(run.cells())
    overview = (
        PlotOutcome("overview", figure_png(deviation_figure(cells, "all cells"))) if cells else None
    )
    recsys = recsys_plot = None
    if recsys_results is not None:
        recsys = load_recsys_results(recsys_results)
        if recsys.rows:
            try:
                recsys_plot = PlotOutcome("recsys", figure_png(recsys_figure(recsys)))
            except Exception as exc:  # noqa: BLE001 - reported in the document
                recsys_plot = PlotOutcome("recsys", None, error=f"{type(exc).__name__}: {exc}")
    blocks = build_blocks(run, plots, recsys=recsys, recsys_plot=recsys_plot, overview=overview)
    if recsys is not None:
        run = _with_extra(run, recsys)
    written_plots: list[Path] = []
    with AtomicWriter(out) as writer:
        for block in blocks:
            if isinstance(block, Image):
                written_plots.append(writer.stage(block.src, block.png))
        writer.stage("report.md", render_markdown(blocks))
        writer.stage("report.html", render_html(blocks))
        writer.stage("results.json", results_json(run), last=True)
        writer.commit()
    errors = tuple(f"{k}: {p.error}" for k, p in plots.items() if p.error is not None)
    return ReportPaths(
        results_json=out / "results.json",
        markdown=out / "report.md",
        html=out / "report.html",
        plots=tuple(written_plots),
        plot_errors=errors,
    )


def _with_extra(run: SuiteRun, recsys: RecsysComparison) -> SuiteRun:
    from dataclasses import replace

    info = {
        "path": recsys.path,
        "message": recsys.message,
        "rows": [
            {
                "method": r.method,
                "metric": r.metric,
                "mean": r.mean,
                "sd": r.sd,
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
                "n": r.n,
            }
            for r in (_finite_row(row) for row in recsys.rows)
        ],
    }
    return replace(run, extra={**run.extra, "recsys_comparison": info})


def _finite_row(row: RecsysRow) -> RecsysRow:
    """Return ``row`` with non-finite numbers replaced by None (strict JSON)."""
    from dataclasses import replace

    def fin(x: float | None) -> float | None:
        return x if x is not None and math.isfinite(x) else None

    return replace(
        row, mean=fin(row.mean), sd=fin(row.sd), ci_low=fin(row.ci_low), ci_high=fin(row.ci_high)
    )
