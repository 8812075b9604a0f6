"""Calibrate *any* A/B estimator against the suite's simulators (docs/theory.md §5).

The estimator protocol
----------------------
An estimator is a plain callable of one of three kinds:

``"ratio"``
    ``fn(num_t, den_t, num_c, den_c)``: per-user numerators V_i (clicks) and
    denominators M_i (views) of the treatment and the control arm, float arrays;
    it compares the ratio metric ``sum V / sum M`` (docs/theory.md §1).
``"mean"``
    ``fn(y_t, y_c)``: per-user values of a mean metric in each arm.
``"covariate"``
    ``fn(y, arm, X)``: per-user metric, arm (1 treatment, 0 control) and covariates
    of shape ``(n, k)`` (the pre-period metric), a CUPED / regression adjustment.

It returns an object or a mapping with ``estimate``, ``std_error``, ``ci_low``,
``ci_high`` and ``pvalue`` (a :class:`estimators.TestResult` qualifies): a
two-sided test of "no effect" at level ``alpha`` and a ``1 - alpha`` interval for
the treatment-minus-control difference (or the relative lift
``treatment / control - 1``, for a scenario whose ``estimand`` is ``"relative"``).
:func:`estimator_output` reads and checks one result; :func:`infer_kind` tells the
kind from the parameter names (``num_t, den_t, num_c, den_c`` / ``y_t, y_c`` /
``y, arm, X``) or the number of required positional parameters (4 / 2 / 3).

The calibration battery
-----------------------
:func:`calibrate` simulates ``n_replicates`` A/A experiments (the scenario with its
effect set to 0) and ``n_replicates`` experiments under the effect, calls the
estimator on each, and returns the cells of the built-in report
(:class:`~validation.core.CheckResult`, same tolerances ``z * mcse`` from
:mod:`validation.ab_mc`), per scenario:

* ``<scenario>/aa-calibration``: A/A false-positive rate at ``alpha`` and the
  Kolmogorov-Smirnov distance of the A/A p-values from Uniform(0, 1);
* ``<scenario>/coverage``: share of ``1 - alpha`` intervals that cover the truth;
* ``<scenario>/bias``: mean of ``estimate - truth``, against 0 ± z Monte Carlo s.e.;
* ``<scenario>/power``: rejection rate under the effect against the normal power
  formula (:func:`estimators.power`) at the scenario's n, with the test's s.e. from
  a 100,000-users-per-arm pilot of the same scenario: the shipped
  :func:`estimators.ratio_test_from_moments` on the pilot arms' moments set to the
  scenario's arm sizes (the linearised metric L_i for a ratio, Y for a mean, the
  CUPED-adjusted Y for covariates; the lift's s.e. for a relative estimand); the band
  adds, in quadrature, the power error that the pilot's own Monte Carlo error induces;
* ``<scenario>/estimator-errors``: the number of replicates on which the estimator
  raised or returned something outside the protocol (NaN, wrong shape, missing
  field), each listed with its replicate index and reason. The run keeps going.

Every Monte Carlo cell has a negative control built from the estimator's own
estimates on the same replicates, wrong by construction whatever the estimator
returns, which the cell must reject: a normal test and interval whose standard error
is :data:`CONTROL_SE_FACTOR` times the estimates' replicate s.d. (the true sampling
s.d.), for the A/A, coverage and power cells; the estimate shifted by
:data:`CONTROL_BIAS_SDS` of that s.d., for the bias cell. It shows that the cell, at
this number of replicates, detects an s.e. 30 % too small or a bias of half an s.d.

Seeds: the scenario named ``name`` uses ``SeedSequence(entropy, spawn_key=(*key,
crc32(name)))`` of ``rng`` -- the rule of :meth:`validation.core.RunContext.seed_sequence`
-- and replicate ``r`` of both streams uses its child ``r`` (common random numbers),
so replicate ``r`` is exactly replicate ``r`` of ``sim.simulate_moments`` with that
seed. A scenario named like a built-in check and run with the report's seed
therefore sees the very data of the built-in check.

References
----------
.. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics:
   A Practical Guide with Novel Ideas", KDD 2018.
.. [2] A. Deng, Y. Xu, R. Kohavi, T. Walker, "Improving the Sensitivity of Online
   Controlled Experiments by Utilizing Pre-Experiment Data", WSDM 2013.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sim
from sim._seed import RngLike, as_seed_sequence
from validation.calibrate_battery import (
    CONTROL_BIAS_SDS,
    CONTROL_NAME,
    CONTROL_SE_FACTOR,
    ReplicateFailure,
    _scenario_outcomes,
)
from validation.calibrate_protocol import (
    KINDS,
    EstimatorOutput,
    ProtocolError,
    _check_kind,
    _name,
    estimator_args,
    estimator_output,
    infer_kind,
)
from validation.calibrate_scenarios import (
    SCENARIOS,
    CalibrationScenario,
    _scenario_seed,
    get_scenario,
    scenarios_for,
)
from validation.core import CheckResult
from validation.mc import Z_FAMILY

__all__ = [
    "BATTERY",
    "CONTROL_BIAS_SDS",
    "CONTROL_NAME",
    "CONTROL_SE_FACTOR",
    "KINDS",
    "PROFILE_REPLICATES",
    "SCENARIOS",
    "Calibration",
    "CalibrationScenario",
    "EstimatorOutput",
    "ProtocolError",
    "ReplicateFailure",
    "calibrate",
    "estimator_args",
    "estimator_output",
    "get_scenario",
    "infer_kind",
    "scenarios_for",
]

#: Estimator kinds and their call signatures.
#: Items of the calibration battery (``checks=`` selects among them).
BATTERY: tuple[str, ...] = ("aa", "coverage", "bias", "power")
#: Replicates per stream of the CLI profiles.
PROFILE_REPLICATES: dict[str, int] = {"quick": 1_000, "full": 10_000}


@dataclass(frozen=True, slots=True)
class Calibration:
    """Outcome of :func:`calibrate`: a report run plus the replicates that failed.

    Attributes
    ----------
    estimator : str
        ``module:qualname`` of the estimator.
    kind : str
        Estimator kind.
    run : validation.runner.SuiteRun
        The cells as a report run (``run.to_dict()`` is the ``results.json`` document,
        with a ``"calibration"`` key describing the estimator, scenarios and failures).
    failures : tuple of ReplicateFailure
        Every replicate on which the estimator raised or broke the protocol.
    """

    estimator: str
    kind: str
    run: Any
    failures: tuple[ReplicateFailure, ...]

    @property
    def ok(self) -> bool:
        """True when every cell holds, every control failed and no replicate failed."""
        return self.run.ok

    @property
    def problems(self) -> list[str]:
        """What makes the calibration fail, one sentence each (names the cell)."""
        return self.run.problems

    def cells(self) -> dict[str, CheckResult]:
        """Cells by name."""
        return {res.name: res for _, res in self.run.cells()}

    def verdicts(self) -> dict[str, bool]:
        """``cell name -> passed``."""
        return {name: bool(res.passed) for name, res in self.cells().items()}

    def failed_cells(self) -> list[str]:
        """Names of the cells whose claim does not hold."""
        return [name for name, ok in self.verdicts().items() if not ok]

    def write_report(self, out_dir: Any) -> Any:
        """Write ``results.json``, ``report.md``, ``report.html`` and plots (built-in writer)."""
        from validation.report import write_report

        return write_report(self.run, out_dir)


def _validate_calibrate(estimator, scenario, n_replicates, kind, alpha, z, checks):
    if not callable(estimator):
        raise TypeError(f"`estimator` must be callable; got {type(estimator).__name__}.")
    kind = infer_kind(estimator) if kind is None else _check_kind(kind)
    from validation.data_scenario import DataCalibration, DataScenario

    if isinstance(scenario, (str, CalibrationScenario, DataScenario)):
        items: list[Any] = [scenario]
    elif isinstance(scenario, Sequence):
        items = list(scenario)
    else:
        raise TypeError(
            "`scenario` must be a name or a CalibrationScenario (or a sequence of them); "
            f"got {type(scenario).__name__}."
        )
    if not items:
        raise ValueError("`scenario` must name at least one scenario; got an empty sequence.")
    scenarios: list[CalibrationScenario] = []
    for item in items:
        if isinstance(item, str):
            if item not in SCENARIOS:
                raise ValueError(
                    f"`scenario` must be a CalibrationScenario or one of {list(SCENARIOS)}; "
                    f"got {item!r}."
                )
            item = SCENARIOS[item]
        if isinstance(item, DataScenario):  # own data: fix the design for this kind
            item = item.resolve(kind, alpha=alpha)
        if not isinstance(item, (CalibrationScenario, DataCalibration)):
            raise TypeError(
                f"`scenario` must be a name or a CalibrationScenario; got {type(item).__name__}."
            )
        if kind not in item.kinds:
            raise ValueError(
                f"scenario {item.name!r} cannot calibrate a {kind!r} estimator "
                f"(it supports {list(item.kinds)})."
            )
        scenarios.append(item)
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise ValueError(f"`scenario` names must be unique; got {names}.")
    if isinstance(n_replicates, bool) or not isinstance(n_replicates, numbers.Integral):
        raise TypeError(f"`n_replicates` must be an int; got {type(n_replicates).__name__}.")
    if n_replicates < 2:
        raise ValueError(f"`n_replicates` must be >= 2; got {n_replicates}.")
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        raise ValueError(f"`alpha` must be in (0, 1); got {alpha}.")
    if not (isinstance(z, (int, float)) and math.isfinite(z) and z > 0):
        raise ValueError(f"`z` must be a positive finite number; got {z!r}.")
    chosen = BATTERY if checks is None else tuple(checks)
    bad = [c for c in chosen if c not in BATTERY]
    if bad or not chosen:
        raise ValueError(f"`checks` must be a non-empty subset of {list(BATTERY)}; got {chosen}.")
    return kind, scenarios, int(n_replicates), chosen


def calibrate(
    estimator: Callable[..., Any],
    scenario: str | CalibrationScenario | Sequence[str | CalibrationScenario],
    *,
    n_replicates: int,
    rng: RngLike = None,
    kind: str | None = None,
    alpha: float = 0.05,
    z: float = Z_FAMILY,
    checks: Sequence[str] | None = None,
    estimator_kwargs: Mapping[str, Any] | None = None,
    progress: bool | None = False,
    profile: str = "custom",
    command: str = "",
    backend: Any = None,
) -> Calibration:
    """Run the calibration battery on an estimator (see the module docstring).

    Parameters
    ----------
    estimator : callable
        A ``"ratio"``, ``"mean"`` or ``"covariate"`` estimator (module docstring).
    scenario : str, CalibrationScenario or sequence of them
        Named scenarios (:data:`SCENARIOS`) or custom ones.
    n_replicates : int
        Simulated experiments per stream (A/A and under the effect), >= 2.
    rng : int, numpy.random.SeedSequence or None
        Root seed; each scenario's seed derives from it and the scenario's name.
    kind : {"ratio", "mean", "covariate"} or None
        Estimator kind; None infers it (:func:`infer_kind`).
    alpha : float, default 0.05
        Level of the test; intervals are expected at ``1 - alpha``.
    z : float, default 4
        Tolerance multiplier (Monte Carlo standard errors), as in the report.
    checks : sequence of {"aa", "coverage", "bias", "power"} or None
        Battery items to run (None: all). The error count is always reported.
    estimator_kwargs : mapping or None
        Keyword arguments passed to every call (e.g. ``{"relative": True}``).
    progress : bool or None, default False
        tqdm bar on stderr over replicates (None: only on a terminal).
    profile : str
        Label recorded in ``results.json``.
    command : str
        Command line that reproduces the run (recorded).
    backend : sim.Backend, str, dask.distributed.Client or None
        Where the replicates run (:func:`sim.map_blocks`): ``"loky"``, ``"dask"``, a
        Dask scheduler address, a client, ...; the figures are the same on every
        backend. None: the backend of an enclosing :func:`sim.use_backend` block, else
        one replicate after another in this thread. On a process or cluster backend
        the estimator must be importable there (or picklable by cloudpickle).

    Returns
    -------
    Calibration
        ``.ok``, ``.problems`` (each naming its cell), ``.failures`` (replicate and
        reason), ``.cells()``, ``.write_report(out_dir)``.

    Raises
    ------
    ValueError, TypeError
        For a bad argument (the message names it), a scenario that does not support
        the estimator's kind, or a kind that cannot be inferred.

    Notes
    -----
    The tolerances are ``z`` Monte Carlo standard errors of the claimed value
    (docs/theory.md §5; :mod:`validation.ab_mc`): ``z sqrt(p (1 - p) / R)`` for a rate or a
    coverage, ``z sd / sqrt(R)`` for the bias, the exact KS critical value at tail
    ``P(|N(0, 1)| > z)`` for uniformity. The power formula is
    ``Phi(delta/SE - z_{1-alpha/2}) + Phi(-delta/SE - z_{1-alpha/2})`` [1]_.

    References
    ----------
    .. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric
       Analytics: A Practical Guide with Novel Ideas", KDD 2018.

    Examples
    --------
    >>> import estimators
    >>> cal = calibrate(estimators.mean_test, "queries", n_replicates=50, rng=0,
    ...                 checks=["bias"])
    >>> sorted(cal.verdicts())
    ['queries/bias', 'queries/estimator-errors']
    """
    from validation.runner import SuiteRun, package_versions

    kind, scenarios, r, chosen = _validate_calibrate(
        estimator, scenario, n_replicates, kind, alpha, z, checks
    )
    kwargs = dict(estimator_kwargs or {})
    name = _name(estimator)

    def call(*args: Any) -> Any:
        return estimator(*args, **kwargs)

    root = as_seed_sequence(rng)
    n_streams = int("aa" in chosen) + int(bool({"coverage", "bias", "power"} & set(chosen)))
    total = len(scenarios) * n_streams * r
    from tqdm import tqdm

    disable = None if progress is None else not progress
    bar = tqdm(total=total, desc="calibrate", unit="rep", file=sys.stderr, disable=disable)
    stack = contextlib.ExitStack()  # holds the backend's session, when one is asked for
    outcomes: list[Any] = []
    failures: list[ReplicateFailure] = []
    started = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    t0 = time.perf_counter()
    from validation.data_scenario import probe_first_calls

    for scen in scenarios:  # own data: an estimator failing its first calls stops the run
        probe_first_calls(call, kind, scen, _scenario_seed(root, scen.name))
    try:
        if backend is not None:
            stack.enter_context(sim.use_backend(backend))
        for scen in scenarios:
            bar.set_postfix_str(scen.name, refresh=False)
            outs, fails = _scenario_outcomes(
                call,
                name,
                kind,
                scen,
                _scenario_seed(root, scen.name),
                r,
                alpha=float(alpha),
                z=float(z),
                checks=chosen,
                tick=lambda: bar.update(1),
            )
            outcomes.extend(outs)
            failures.extend(fails)
    finally:
        stack.close()
        bar.close()
    info = {
        "estimator": name,
        "kind": kind,
        "estimator_kwargs": {k: repr(v) for k, v in kwargs.items()},
        "scenarios": [s.to_dict() for s in scenarios],
        "n_replicates": r,
        "alpha": float(alpha),
        "checks": list(chosen),
        "control_se_factor": CONTROL_SE_FACTOR,
        "control_bias_sds": CONTROL_BIAS_SDS,
        "failures": [dataclasses.asdict(f) for f in failures],
    }
    run = SuiteRun(
        seed=int(root.entropy),
        profile=profile,
        z=float(z),
        outcomes=tuple(outcomes),
        versions=package_versions(),
        command=command,
        started_utc=started,
        elapsed_s=time.perf_counter() - t0,
        extra={"calibration": info},
    )
    return Calibration(estimator=name, kind=kind, run=run, failures=tuple(failures))
