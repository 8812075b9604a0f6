"""Temporary checks shared by the runner, report and CLI tests.

``register_tmp_checks(prefix)`` registers a small, fast family of checks whose names
start with ``prefix`` and returns their names, for ``unregister`` in teardown. The
coverage check is a genuine Monte Carlo check: the 95% z-interval of a normal mean
with known variance, whose negative control (half the width) must fail.
"""

from __future__ import annotations

import math

import numpy as np

from validation import CheckResult, NegativeControl, register
from validation.mc import proportion_tolerance


def coverage_cells(ctx, name: str) -> list[CheckResult]:
    out = []
    for n in (5, 50):
        cell = f"{name}/n={n}"
        n_rep = ctx.replicates(400, 10_000)
        rng = np.random.default_rng(ctx.seed_sequence(cell))
        draws = rng.standard_normal((n_rep, n))
        half = 1.959963984540054 / math.sqrt(n)  # known unit variance
        covered = np.abs(draws.mean(axis=1)) <= half
        covered_naive = np.abs(draws.mean(axis=1)) <= half / 2
        fig, fig_ctrl = float(covered.mean()), float(covered_naive.mean())
        tol = proportion_tolerance(0.95, n_rep, ctx.z)
        if ctx.progress is not None:
            ctx.progress(n, 50)
        out.append(
            CheckResult(
                name=cell,
                claim="z-interval with known variance covers 95%",
                scenario={"n": n, "dist": "normal"},
                figure=fig,
                expected=0.95,
                tolerance=tol,
                passed=abs(fig - 0.95) <= tol,
                n_replicates=n_rep,
                seed=ctx.seed,
                negative_control=NegativeControl(
                    "half-width interval", fig_ctrl, abs(fig_ctrl - 0.95) > tol
                ),
                extra={"n": n},
            )
        )
    return out


def exact_cell(name: str, seed: int) -> CheckResult:
    value = float(np.sum(np.arange(10)))
    return CheckResult(
        name,
        "sum 0..9 is 45 (identity: no control)",
        {},
        value,
        45.0,
        1e-12,
        value == 45.0,
        1,
        seed,
    )


def register_tmp_checks(prefix: str, *, plot=None) -> list[str]:
    names = [f"{prefix}-coverage", f"{prefix}-exact"]

    @register(
        names[0],
        claim="A 95% z-interval covers the mean 95% of the time.",
        reference="any textbook",
        published="",
        group="tmpgroup",
        plot=plot,
    )
    def _coverage(ctx):
        """Normal(0, 1) samples of n in {5, 50}."""
        return coverage_cells(ctx, names[0])

    @register(
        names[1],
        claim="Sum of 0..9 is 45 (exact identity, hence no control).",
        group="tmpexact",
        exact=True,
    )
    def _exact(ctx):
        return exact_cell(names[1], ctx.seed)

    return names
