"""Where an estimator breaks on the user's data: interval coverage against units per arm.

:func:`coverage_curve` runs the coverage cell of the calibration battery on a
:class:`~validation.data_scenario.DataScenario` at several experiment sizes (units
drawn with replacement from the data, the effect injected as in the battery) and
returns the coverage at each size with its ``z`` Monte Carlo tolerance. It is a map,
not a claim: a delta-method interval is expected to under-cover on heavy-tailed data
at a few dozen units per arm, and the curve shows from which size on it holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim._seed import RngLike, as_seed_sequence, child_sequences
from validation.ab_mc import coverage
from validation.mc import Z_FAMILY

__all__ = ["CoverageCurve", "coverage_curve", "default_sizes"]


@dataclass(frozen=True, slots=True)
class CoverageCurve:
    """Coverage of the estimator's intervals at each number of units per arm.

    Attributes
    ----------
    scenario : str
        Scenario name.
    n_per_arm : tuple of int
        Units per arm (bootstrap from the data).
    coverage : tuple of float
        Share of intervals covering the truth (NaN where every call failed).
    tolerance : tuple of float
        ``z`` Monte Carlo s.e. of the nominal level at that number of valid replicates.
    n_valid : tuple of int
        Replicates with a valid result at each size.
    confidence_level : float
        Nominal level ``1 - alpha``.
    seed : int
        Root seed entropy.
    """

    scenario: str
    n_per_arm: tuple[int, ...]
    coverage: tuple[float, ...]
    tolerance: tuple[float, ...]
    n_valid: tuple[int, ...]
    confidence_level: float
    seed: int

    def holds(self) -> tuple[bool, ...]:
        """Whether coverage is within its tolerance of the nominal level, per size."""
        level = self.confidence_level
        return tuple(
            bool(abs(c - level) <= t) for c, t in zip(self.coverage, self.tolerance, strict=True)
        )

    def smallest_n(self) -> int | None:
        """Smallest size from which coverage holds at it and every larger size (None: never)."""
        ok = self.holds()
        for i, n in enumerate(self.n_per_arm):
            if all(ok[i:]):
                return n
        return None

    def to_markdown(self) -> str:
        """Section for ``report.md``."""
        lines = [
            f"## Coverage against units per arm ({self.scenario})",
            "",
            f"Share of {self.confidence_level:g} intervals covering the true effect on your "
            "data, units drawn with replacement (a map of where the estimator breaks, not a "
            "claim; it does not change the exit status).",
            "",
            "| units per arm | coverage | tolerance | holds |",
            "|---|---|---|---|",
        ]
        for n, c, t, ok in zip(
            self.n_per_arm, self.coverage, self.tolerance, self.holds(), strict=True
        ):
            lines.append(f"| {n:,} | {c:.3f} | ± {t:.3f} | {'yes' if ok else '**no**'} |")
        n0 = self.smallest_n()
        lines += [
            "",
            f"Coverage holds from {n0:,} units per arm on."
            if n0
            else "Coverage holds at none of the sizes tried.",
        ]
        return "\n".join(lines) + "\n"

    def plot(self) -> Any:
        """Coverage against units per arm, with the tolerance band (matplotlib Figure)."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5, 3.5))
        ax = fig.subplots()
        n = np.asarray(self.n_per_arm, float)
        tol = np.asarray(self.tolerance)
        ax.fill_between(
            n,
            self.confidence_level - tol,
            self.confidence_level + tol,
            color="0.85",
            label="nominal ± tolerance",
        )
        ax.plot(n, self.coverage, marker="o", label="estimator")
        ax.set_xscale("log")
        ax.set_xlabel("units per arm")
        ax.set_ylabel("coverage")
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        return fig

    def write(self, out_dir: str | Path) -> Path:
        """Write ``coverage_by_n.json``, ``plots/coverage_by_n.png``; append to ``report.md``."""
        out = Path(out_dir)
        (out / "plots").mkdir(parents=True, exist_ok=True)
        path = out / "coverage_by_n.json"
        path.write_text(
            json.dumps(
                {**asdict(self), "holds": self.holds(), "smallest_n": self.smallest_n()}, indent=2
            )
        )
        self.plot().savefig(out / "plots" / "coverage_by_n.png", dpi=100)
        report = out / "report.md"
        if report.exists():
            with report.open("a") as fh:
                fh.write("\n" + self.to_markdown() + "\n![](plots/coverage_by_n.png)\n")
        return path


def default_sizes(n_units: int) -> tuple[int, ...]:
    """Five sizes, geometric from 20 units per arm to the data's own (half the units)."""
    top = max(20, n_units // 2)
    return tuple(int(n) for n in np.unique(np.geomspace(20, top, 5).round().astype(int)))


def coverage_curve(
    estimator: Callable[..., Any],
    scenario: Any,
    *,
    n_per_arm: Sequence[int] | None = None,
    n_replicates: int = 200,
    rng: RngLike = None,
    kind: str | None = None,
    alpha: float = 0.05,
    z: float = Z_FAMILY,
    estimator_kwargs: Mapping[str, Any] | None = None,
) -> CoverageCurve:
    """Coverage of the estimator's ``1 - alpha`` intervals at several units per arm.

    Parameters
    ----------
    estimator : callable
        A protocol estimator (:mod:`validation.calibrate`).
    scenario : DataScenario
        The data; its lift (resolved as for :func:`validation.calibrate`) is injected.
    n_per_arm : sequence of int, optional
        Sizes (default :func:`default_sizes`).
    n_replicates : int, default 200
        Replicates per size; replicate r of size n uses child r of the seed derived from
        ``rng`` and ``"<name>/n=<n>"``, as the battery's scenarios do.
    rng : int, numpy.random.SeedSequence or None
        Root seed.
    kind : {"ratio", "mean", "covariate"} or None
        Estimator kind (None: from the signature).
    alpha, z : float
        Level and tolerance multiplier (Monte Carlo s.e.).
    estimator_kwargs : mapping, optional
        Keywords for every call.

    Returns
    -------
    CoverageCurve

    Notes
    -----
    Coverage and its tolerance ``z sqrt(p (1 - p) / R)`` at ``p = 1 - alpha`` come from
    :func:`validation.ab_mc.coverage`, the helper of the battery's coverage cell.
    Replicates where the estimator raised or broke the protocol are left out.
    """
    from validation.calibrate import _scenario_seed, estimator_output, infer_kind
    from validation.data_scenario import DataScenario

    if not isinstance(scenario, DataScenario):
        raise TypeError(f"`scenario` must be a DataScenario; got {type(scenario).__name__}.")
    kind = infer_kind(estimator) if kind is None else kind
    sizes = default_sizes(scenario.n_units) if n_per_arm is None else tuple(n_per_arm)
    if not sizes or any(isinstance(n, bool) or int(n) != n or n < 2 for n in sizes):
        raise ValueError(f"`n_per_arm` must be ints >= 2; got {sizes}.")
    if n_replicates < 2:
        raise ValueError(f"`n_replicates` must be >= 2; got {n_replicates}.")
    base = scenario.resolve(kind, alpha=alpha)
    kwargs = dict(estimator_kwargs or {})
    root = as_seed_sequence(rng)
    level = 1.0 - alpha
    cov, tol, valid = [], [], []
    for n in sizes:
        design = scenario.design(int(n), base.lift)
        truth = design.truth(kind)
        ss = _scenario_seed(root, f"{scenario.name}/n={int(n)}")
        hits = []
        for child in child_sequences(ss, n_replicates):
            args = design.simulate(child).estimator_args(kind)
            try:
                out = estimator_output(estimator(*args, **kwargs))
            except Exception:  # noqa: BLE001, S112 - failed calls are left out of the share
                continue
            hits.append(out.ci_low <= truth <= out.ci_high)
        if hits:
            band = coverage(np.asarray(hits), expected=level, z=z)
            cov.append(band.figure)
            tol.append(band.tolerance)
        else:
            cov.append(float("nan"))
            tol.append(float("nan"))
        valid.append(len(hits))
    return CoverageCurve(
        scenario.name,
        tuple(int(n) for n in sizes),
        tuple(cov),
        tuple(tol),
        tuple(valid),
        level,
        int(root.entropy),
    )


def write_curve(
    estimator: Callable[..., Any],
    scenario: Any,
    out_dir: str | Path,
    *,
    n_replicates: int,
    rng: RngLike,
    kind: str,
    estimator_kwargs: Mapping[str, Any] | None = None,
) -> CoverageCurve:
    """Compute the curve (at most 200 replicates per size), write it and print one line.

    The ``--data`` step of ``python -m validation calibrate`` after the report is written.
    """
    curve = coverage_curve(
        estimator,
        scenario,
        n_replicates=min(n_replicates, 200),
        rng=rng,
        kind=kind,
        estimator_kwargs=estimator_kwargs,
    )
    curve.write(out_dir)
    n0 = curve.smallest_n()
    pairs = ", ".join(f"{n}: {c:.3f}" for n, c in zip(curve.n_per_arm, curve.coverage, strict=True))
    print(
        f"coverage by units per arm on your data ({pairs}); "
        + (f"holds from {n0:,} per arm on" if n0 else "holds at no size tried")
        + f"; see {Path(out_dir) / 'coverage_by_n.json'}"
    )
    return curve
