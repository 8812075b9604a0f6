"""The recsys comparison section of the validation report (``--recsys-results``).

:func:`load_recsys_results` reads the ``results.json`` of ``python -m recsys compare``
(two layouts accepted), :func:`recsys_figure` draws it with error bars, and
:func:`recsys_blocks` renders the section; a file that cannot be read becomes a
message in the report, never an error.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from validation.render import Block, Code, Heading, Image, Table, _p
from validation.runner import SuiteRun, _fmt

_MAX_RECSYS_PNGS = 4


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


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


def recsys_blocks(recsys: RecsysComparison, plot: Any) -> list[Block]:
    """Return the report section of a recsys comparison (table, plot, PNGs, details)."""
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


def with_recsys_extra(run: SuiteRun, recsys: RecsysComparison) -> SuiteRun:
    """Return ``run`` with the comparison stored in ``extra`` (for ``results.json``)."""
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

    def fin(x: float | None) -> float | None:
        return x if x is not None and math.isfinite(x) else None

    return replace(
        row, mean=fin(row.mean), sd=fin(row.sd), ci_low=fin(row.ci_low), ci_high=fin(row.ci_high)
    )
