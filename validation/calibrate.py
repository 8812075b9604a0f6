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
  formula (:func:`estimators.power`) at the scenario's n, with sigma from a
  100,000-users-per-arm pilot of the same scenario (the s.d. of the linearised
  metric L_i for a ratio, of Y for a mean, of the CUPED-adjusted Y for covariates;
  the delta method once more for a relative lift); the band adds, in quadrature,
  the power error that the pilot's own Monte Carlo error induces;
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
import inspect
import math
import numbers
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

import sim
from sim._fanout import serial_unless_distributed
from sim._seed import RngLike, as_seed_sequence, child_sequences
from validation.ab_mc import coverage, ks_uniformity, mean_band, rejection_rate
from validation.core import Check, CheckResult, NegativeControl
from validation.mc import PILOT_BATCHES, Z_FAMILY, pilot_sigma
from validation.shipped import Shipped

cuped_theta = Shipped("estimators.cuped", "cuped_theta")
ratio_sigma = Shipped("estimators.ratio", "ratio_sigma")
formula_power = Shipped("estimators.power", "power")

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
KINDS: tuple[str, ...] = ("ratio", "mean", "covariate")
#: Items of the calibration battery (``checks=`` selects among them).
BATTERY: tuple[str, ...] = ("aa", "coverage", "bias", "power")
#: Replicates per stream of the CLI profiles.
PROFILE_REPLICATES: dict[str, int] = {"quick": 1_000, "full": 10_000}
#: Negative control: the estimator's standard errors multiplied by this factor.
CONTROL_SE_FACTOR: float = 0.7
#: Negative control of the bias cell: the estimate shifted by this many replicate s.d.
CONTROL_BIAS_SDS: float = 0.5
#: Users per arm of the pilot that gives the power formula its sigma.
PILOT_USERS: int = 100_000
_PILOT_KEY = 2**32 - 1  # spawn-key entry of the pilot (replicates use 0 .. R-1)
_FIELDS = ("estimate", "std_error", "ci_low", "ci_high", "pvalue")
_MAX_LISTED_FAILURES = 5

_CtrScenario = sim.ReferenceCtr | sim.Deng2018Classes | sim.BetaBinomialCtr
_CTR_TYPES = (sim.ReferenceCtr, sim.Deng2018Classes, sim.BetaBinomialCtr)


# --------------------------------------------------------------------------- protocol
class ProtocolError(ValueError):
    """An estimator's return value is outside the protocol (missing field, NaN, shape)."""


@dataclass(frozen=True, slots=True)
class EstimatorOutput:
    """The five protocol fields of one estimator call, as Python floats.

    Attributes
    ----------
    estimate, std_error : float
        Effect and its standard error (finite; ``std_error >= 0``).
    ci_low, ci_high : float
        Interval, ``ci_low <= ci_high``; an end may be infinite, never NaN.
    pvalue : float
        Two-sided p-value of "no effect", in [0, 1].
    """

    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    pvalue: float


def _field(result: Any, name: str) -> Any:
    if isinstance(result, Mapping):
        if name not in result:
            raise ProtocolError(f"returned a {type(result).__name__} without the key {name!r}.")
        return result[name]
    if not hasattr(result, name):
        raise ProtocolError(f"returned a {type(result).__name__} without the attribute `{name}`.")
    return getattr(result, name)


def estimator_output(result: Any) -> EstimatorOutput:
    """Read and check the protocol fields of an estimator's return value.

    Parameters
    ----------
    result : object or mapping
        What the estimator returned: attributes or keys ``estimate``, ``std_error``,
        ``ci_low``, ``ci_high``, ``pvalue``.

    Returns
    -------
    EstimatorOutput

    Raises
    ------
    ProtocolError
        A field is missing, is not a real scalar (e.g. an array of shape (3,)), is NaN,
        ``estimate`` or ``std_error`` is infinite, ``std_error < 0``, ``pvalue`` is
        outside [0, 1], or ``ci_low > ci_high``. The message names the field and
        the value.

    Examples
    --------
    >>> estimator_output({"estimate": 1.0, "std_error": 0.5, "ci_low": 0.02,
    ...                   "ci_high": 1.98, "pvalue": 0.0455}).std_error
    0.5
    """
    values: dict[str, float] = {}
    for name in _FIELDS:
        raw = _field(result, name)
        if isinstance(raw, (bool, np.bool_)):
            raise ProtocolError(f"`{name}` must be a real number; got the bool {raw}.")
        shape = np.shape(raw)
        if shape != ():
            raise ProtocolError(f"`{name}` must be a scalar; got shape {shape}.")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ProtocolError(
                f"`{name}` must be a real number; got {type(raw).__name__} {raw!r}."
            ) from None
        if math.isnan(value):
            raise ProtocolError(f"`{name}` is NaN on valid input.")
        values[name] = value
    for name in ("estimate", "std_error"):
        if math.isinf(values[name]):
            raise ProtocolError(f"`{name}` must be finite; got {values[name]}.")
    if values["std_error"] < 0:
        raise ProtocolError(f"`std_error` must be >= 0; got {values['std_error']}.")
    if not 0.0 <= values["pvalue"] <= 1.0:
        raise ProtocolError(f"`pvalue` must be in [0, 1]; got {values['pvalue']}.")
    if values["ci_low"] > values["ci_high"]:
        raise ProtocolError(
            f"`ci_low` must be <= `ci_high`; got {values['ci_low']} > {values['ci_high']}."
        )
    return EstimatorOutput(**values)


_SIGNATURES = {
    ("num_t", "den_t", "num_c", "den_c"): "ratio",
    ("y_t", "y_c"): "mean",
    ("y", "arm", "X"): "covariate",
}
_ARITY = {4: "ratio", 2: "mean", 3: "covariate"}


def infer_kind(estimator: Callable[..., Any]) -> str:
    """Tell an estimator's kind from its signature.

    Parameters
    ----------
    estimator : callable
        The estimator.

    Returns
    -------
    {"ratio", "mean", "covariate"}
        From the names of its first parameters (``num_t, den_t, num_c, den_c``;
        ``y_t, y_c``; ``y, arm, X``), else from its number of required positional
        parameters (4, 2, 3).

    Raises
    ------
    TypeError
        If ``estimator`` is not callable or neither rule applies (pass ``kind``).

    Examples
    --------
    >>> import estimators
    >>> infer_kind(estimators.ratio_test), infer_kind(estimators.cuped_test)
    ('ratio', 'covariate')
    """
    if not callable(estimator):
        raise TypeError(f"`estimator` must be callable; got {type(estimator).__name__}.")
    try:
        params = list(inspect.signature(estimator).parameters.values())
    except (TypeError, ValueError):
        raise TypeError(
            f"cannot read the signature of {_name(estimator)}; pass `kind` (one of {list(KINDS)})."
        ) from None
    positional = [
        p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    names = tuple(p.name for p in positional)
    for sig, kind in _SIGNATURES.items():
        if names[: len(sig)] == sig:
            return kind
    required = sum(p.default is inspect.Parameter.empty for p in positional)
    if required in _ARITY:
        return _ARITY[required]
    raise TypeError(
        f"cannot infer the kind of {_name(estimator)} (positional parameters {names}); "
        f"pass `kind` (one of {list(KINDS)})."
    )


def _name(estimator: Any) -> str:
    module = getattr(estimator, "__module__", None)
    qual = getattr(estimator, "__qualname__", None) or type(estimator).__name__
    return f"{module}:{qual}" if module else str(qual)


def estimator_args(kind: str, data: Any) -> tuple[npt.NDArray[Any], ...]:
    """Return the positional arguments of a ``kind`` estimator for one simulated experiment.

    Parameters
    ----------
    kind : {"ratio", "mean", "covariate"}
        Estimator kind.
    data : sim.ClickData or sim.QueryData
        One experiment.

    Returns
    -------
    tuple of ndarray
        ``"ratio"``: ``(clicks_t, views_t, clicks_c, views_c)``; ``"mean"``:
        ``(y_t, y_c)`` with Y = clicks (or queries); ``"covariate"``: ``(y, arm, X)``
        with X the pre-period clicks (or queries), shape ``(n, 1)``. Float64, except
        ``arm`` (int64 0/1).

    Examples
    --------
    >>> d = sim.simulate_clicks(sim.Deng2018Classes(), 6, rng=0)
    >>> [a.shape for a in estimator_args("ratio", d)]
    [(3,), (3,), (3,), (3,)]
    """
    _check_kind(kind)
    from validation.data_scenario import DataReplicate  # own-data replicates (issue 14)

    if isinstance(data, DataReplicate):
        return data.estimator_args(kind)
    treated = data.arm == 1
    if isinstance(data, sim.ClickData):
        y, pre = data.clicks, data.pre_clicks
        if kind == "ratio":
            v = data.clicks.astype(np.float64)
            m = data.views.astype(np.float64)
            return v[treated], m[treated], v[~treated], m[~treated]
    elif isinstance(data, sim.QueryData):
        if kind == "ratio":
            raise ValueError(
                "`kind` 'ratio' needs a CTR scenario; the query scenario has no ratio."
            )
        y, pre = data.queries, data.pre_queries
    else:
        raise TypeError(f"`data` must be a ClickData or QueryData; got {type(data).__name__}.")
    yf = y.astype(np.float64)
    if kind == "mean":
        return yf[treated], yf[~treated]
    return yf, data.arm.astype(np.int64), pre.astype(np.float64)[:, None]


def _check_kind(kind: Any) -> str:
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {list(KINDS)}; got {kind!r}.")
    return kind


# --------------------------------------------------------------------------- scenarios
@dataclass(frozen=True, slots=True)
class CalibrationScenario:
    """A simulator, the experiment size and the estimand of one calibration scenario.

    Attributes
    ----------
    name : str
        Name (no spaces); the scenario's seed is derived from it.
    simulator : ReferenceCtr, Deng2018Classes, BetaBinomialCtr or QueryScenario
        The data-generating process under the effect; its A/A version sets the
        effect (``effect`` or ``effect_per_visit``) to 0. A ``QueryScenario`` needs
        fixed ``day_effects`` (then the truth is the same in every replicate).
    n_users : tuple of int
        ``(n_control, n_treatment)``, at least 2 each.
    estimand : {"difference", "relative"}
        Treatment minus control, or ``treatment / control - 1``.
    description : str
        One line for the report.
    """

    name: str
    simulator: Any
    n_users: tuple[int, int]
    estimand: str = "difference"
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or any(c.isspace() for c in self.name):
            raise ValueError(
                f"`name` must be a non-empty string without spaces; got {self.name!r}."
            )
        if not isinstance(self.simulator, (*_CTR_TYPES, sim.QueryScenario)):
            raise TypeError(
                "`simulator` must be a ReferenceCtr, Deng2018Classes, BetaBinomialCtr or "
                f"QueryScenario; got {type(self.simulator).__name__}."
            )
        if isinstance(self.simulator, sim.QueryScenario) and self.simulator.day_effects is None:
            raise ValueError(
                "`simulator` QueryScenario must have fixed `day_effects` (the truth must be "
                "the same in every replicate); got day_effects=None."
            )
        n_c, n_t = sim.split_users(tuple(self.n_users))
        if min(n_c, n_t) < 2:
            raise ValueError(f"`n_users` must have >= 2 users per arm; got {self.n_users}.")
        object.__setattr__(self, "n_users", (n_c, n_t))
        if self.estimand not in ("difference", "relative"):
            raise ValueError(
                f"`estimand` must be 'difference' or 'relative'; got {self.estimand!r}."
            )

    @property
    def kinds(self) -> tuple[str, ...]:
        """Estimator kinds this scenario can calibrate."""
        return KINDS if isinstance(self.simulator, _CTR_TYPES) else ("mean", "covariate")

    def aa_simulator(self) -> Any:
        """Return the same simulator with no treatment effect."""
        if isinstance(self.simulator, sim.QueryScenario):
            return dataclasses.replace(self.simulator, effect_per_visit=0.0)
        return dataclasses.replace(self.simulator, effect=0.0)

    def arm_values(self, kind: str) -> tuple[float, float]:
        """Exact population (control, treatment) value of the metric a ``kind`` estimator compares.

        The CTR for ``"ratio"``; E[Y] per user for ``"mean"`` and ``"covariate"``
        (Y = clicks: CTR times E[views], views being unaffected by treatment).
        """
        _check_kind(kind)
        s = self.simulator
        if isinstance(s, sim.QueryScenario):
            return s.expected_queries(0), s.expected_queries(1)
        t = s.truth()
        scale = 1.0 if kind == "ratio" else t.mean_views
        return t.ctr_control * scale, t.ctr_treatment * scale

    def truth(self, kind: str) -> float:
        """Exact value of the estimand for a ``kind`` estimator."""
        c, t = self.arm_values(kind)
        return t - c if self.estimand == "difference" else t / c - 1.0

    def simulate(self, ss: np.random.SeedSequence, *, aa: bool = False) -> Any:
        """Simulate one experiment (A/A when ``aa``) from the seed sequence ``ss``."""
        scen = self.aa_simulator() if aa else self.simulator
        if isinstance(scen, sim.QueryScenario):
            return sim.simulate_queries(scen, self.n_users, rng=ss)
        return sim.simulate_clicks(scen, self.n_users, rng=ss)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description."""
        return {
            "calibration_scenario": self.name,
            **self.simulator.to_dict(),
            "n_control": self.n_users[0],
            "n_treatment": self.n_users[1],
            "estimand": self.estimand,
        }


#: The heavy-tailed ratio metric of the built-in ``delta-coverage`` check (docs/theory.md §1).
_HEAVY = dict(
    ctr_mean=0.1,
    concentration=2.0,
    views="lognormal",
    views_mean=5.0,
    views_dispersion=1.2,
    effect_type="multiplicative",
)

#: Named scenarios (``python -m validation calibrate --scenario NAME``).
SCENARIOS: dict[str, CalibrationScenario] = {
    s.name: s
    for s in (
        CalibrationScenario(
            "deng-classes",
            sim.Deng2018Classes(effect=0.03),
            (1_000, 1_000),
            description="Deng 2018 Table 2 latent classes (the built-in A/A scenario), "
            "1,000 users per arm, CTR +0.03",
        ),
        CalibrationScenario(
            "small-n",
            sim.BetaBinomialCtr(
                ctr_mean=0.1,
                concentration=2.0,
                views_mean=5.0,
                effect=0.8,
                effect_type="multiplicative",
            ),
            (40, 40),
            description="40 users per arm, heterogeneous CTR (Beta, concentration 2), "
            "Poisson(5) views, CTR x1.8",
        ),
        CalibrationScenario(
            "heavy-tails",
            sim.BetaBinomialCtr(**_HEAVY, effect=0.3),
            (2_000, 2_000),
            description="Poisson-lognormal views (log-s.d. 1.2), heterogeneous CTR, 2,000 "
            "users per arm, CTR x1.3 (the built-in delta-coverage heavy scenario)",
        ),
        CalibrationScenario(
            "relative-lift",
            sim.BetaBinomialCtr(**_HEAVY, effect=0.3),
            (500, 500),
            estimand="relative",
            description="relative lift on the heavy-tailed ratio metric, 500 users per arm, "
            "CTR x1.3 capped at 1 (true lift 0.289)",
        ),
        CalibrationScenario(
            "reference",
            sim.ReferenceCtr(),
            (5_289, 5_289),
            description="Rome (2019) reference scenario (theory.md §2) at Lehr n = 5,289 per arm",
        ),
        CalibrationScenario(
            "queries",
            sim.QueryScenario(day_effects=(-3.0, 6.0, 1.5, 0.0, -1.0, 4.0, 2.5)),
            (200, 200),
            description="docs/theory.md §3 query scenario (fixed day effects), 200 users per arm",
        ),
    )
}


def get_scenario(name: str) -> CalibrationScenario:
    """Return the named scenario.

    Raises
    ------
    KeyError
        With the known names, if ``name`` is unknown.
    """
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(
            f"no calibration scenario named {name!r}; known: {', '.join(SCENARIOS)}."
        ) from None


def scenarios_for(kind: str, *, estimand: str | None = "difference") -> list[CalibrationScenario]:
    """Named scenarios that a ``kind`` estimator can be calibrated on.

    ``estimand=None`` keeps both estimands; the default keeps the scenarios of the
    absolute difference (a relative-lift scenario needs an estimator of the lift).
    """
    _check_kind(kind)
    return [
        s
        for s in SCENARIOS.values()
        if kind in s.kinds and (estimand is None or s.estimand == estimand)
    ]


def _scenario_seed(root: np.random.SeedSequence, name: str) -> np.random.SeedSequence:
    return np.random.SeedSequence(
        root.entropy, spawn_key=(*root.spawn_key, zlib.crc32(name.encode()))
    )


# --------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class ReplicateFailure:
    """One replicate on which the estimator raised or broke the protocol.

    Attributes
    ----------
    scenario : str
        Calibration scenario.
    stream : {"A/A", "effect"}
        Which simulated experiments.
    replicate : int
        Replicate index (its data: child ``replicate`` of the scenario's seed).
    reason : str
        ``"ExceptionType: message"`` or the protocol violation.
    """

    scenario: str
    stream: str
    replicate: int
    reason: str

    def __str__(self) -> str:
        return f"{self.scenario}: {self.stream} replicate {self.replicate}: {self.reason}"


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


# --------------------------------------------------------------------------- battery
@dataclass(frozen=True, slots=True)
class _Stream:
    """Outputs of one stream: (R, 5) array (NaN rows where the call failed)."""

    values: npt.NDArray[np.float64]
    ok: npt.NDArray[np.bool_]
    failures: tuple[ReplicateFailure, ...]
    warnings: tuple[str, ...]
    elapsed_s: float

    def column(self, name: str) -> npt.NDArray[np.float64]:
        return self.values[self.ok, _FIELDS.index(name)]


def _stream_block(
    start: int,
    stop: int,
    call: Callable[..., Any],
    kind: str,
    scenario: CalibrationScenario,
    ss: np.random.SeedSequence,
    aa: bool,
) -> list[tuple[list[float] | None, str | None, tuple[str, ...]]]:
    """Replicates ``[start, stop)`` of one stream: (output fields, failure, warnings) each.

    The block function of :func:`_run_stream` (module level, so that process and
    cluster backends of :func:`sim.map_blocks` can ship it); replicate r uses child r
    of ``ss``.
    """
    out: list[tuple[list[float] | None, str | None, tuple[str, ...]]] = []
    for child in child_sequences(ss, stop - start, start=start):
        args = estimator_args(kind, scenario.simulate(child, aa=aa))
        reason: str | None = None
        row: list[float] | None = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res = estimator_output(call(*args))
                row = [getattr(res, f) for f in _FIELDS]
            except Exception as exc:  # noqa: BLE001 - recorded per replicate, the run goes on
                text = str(exc).strip().splitlines()
                reason = (
                    f"{text[0] if text else ''}"
                    if isinstance(exc, ProtocolError)
                    else f"{type(exc).__name__}: {text[0] if text else ''}"
                )
        out.append((row, reason, tuple(f"{w.category.__name__}: {w.message}" for w in caught)))
    return out


def _run_stream(
    call: Callable[..., Any],
    kind: str,
    scenario: CalibrationScenario,
    ss: np.random.SeedSequence,
    n_replicates: int,
    *,
    aa: bool,
    tick: Callable[[], None],
) -> _Stream:
    stream = "A/A" if aa else "effect"
    values = np.full((n_replicates, len(_FIELDS)), np.nan)
    ok = np.zeros(n_replicates, dtype=bool)
    failures: list[ReplicateFailure] = []
    seen: dict[str, None] = {}
    t0 = time.perf_counter()
    # Blocks run on the backend of an enclosing sim.use_backend (processes or a cluster);
    # otherwise in this thread, one by one: catch_warnings is not thread-safe, and an
    # estimator need not be.
    blocks = sim.map_blocks(
        _stream_block,
        n_replicates,
        args=(call, kind, scenario, ss, aa),
        backend=serial_unless_distributed(),
        progress=lambda k: [tick() for _ in range(k)],
    )
    results = [rep for block in blocks for rep in block]
    for r, (row, reason, caught) in enumerate(results):
        if reason is not None:
            failures.append(ReplicateFailure(scenario.name, stream, r, reason))
        for w in caught:
            seen.setdefault(w, None)
        if row is not None:
            values[r] = row
            ok[r] = True
    return _Stream(values, ok, tuple(failures), tuple(seen), time.perf_counter() - t0)


#: Name of the negative control of the A/A, coverage and power cells.
CONTROL_NAME = f"estimate with s.e. = {CONTROL_SE_FACTOR:g} x its replicate s.d."


def _control_se(est: np.ndarray) -> float:
    """Return the control's s.e.: CONTROL_SE_FACTOR times the estimates' replicate s.d.

    It is anchored to the true sampling s.d. of the estimator (not to its own s.e.), so
    the control is too narrow by the same factor whatever the estimator returns.
    """
    return CONTROL_SE_FACTOR * float(np.std(est, ddof=1))


def _control_pvalues(est: np.ndarray) -> np.ndarray:
    """Two-sided normal p-values of "no effect" with the control's standard error."""
    se = _control_se(est)
    if not se > 0:
        return np.ones_like(est)
    return 2.0 * stats.norm.sf(np.abs(est) / se)


def _missing(name: str, claim: str, scenario: dict[str, Any], seed: int) -> CheckResult:
    """Return a cell with too few valid replicates to compute its figure (fails the suite)."""
    return CheckResult(
        name=name,
        claim=claim + " (not computed: fewer than 2 valid replicates)",
        scenario=scenario,
        figure=math.nan,
        expected=math.nan,
        tolerance=math.nan,
        n_replicates=0,
        seed=seed,
        negative_control=NegativeControl("(not computed: too few valid replicates)", math.nan),
    )


def _aa_cells(prefix, st: _Stream, alpha, z, scenario, seed) -> list[CheckResult]:
    fpr_claim = f"share of A/A p-values < {alpha:g} = {alpha:g} ± z s.e."
    ks_claim = (
        "KS distance of the A/A p-values from Uniform(0, 1) <= exact critical value at "
        "the false-failure rate of z normal s.e."
    )
    if st.ok.sum() < 2:
        return [
            _missing(f"{prefix}/false-positive-rate", fpr_claim, scenario, seed),
            _missing(f"{prefix}/ks-uniformity", ks_claim, scenario, seed),
        ]
    p = st.column("pvalue")
    pc = _control_pvalues(st.column("estimate"))
    ctrl_name = CONTROL_NAME
    fpr, fpr_c = rejection_rate(p, alpha=alpha, z=z), rejection_rate(pc, alpha=alpha, z=z)
    ks, ks_c = ks_uniformity(p, z=z), ks_uniformity(pc, z=z)
    probs = np.linspace(0.0, 1.0, 101)
    extra = {
        "probs": probs,
        "pvalue_quantiles": {"estimator": np.quantile(p, probs), "control": np.quantile(pc, probs)},
    }
    return [
        CheckResult(
            name=f"{prefix}/false-positive-rate",
            claim=fpr_claim,
            scenario=scenario,
            figure=fpr.figure,
            expected=alpha,
            tolerance=fpr.tolerance,
            n_replicates=fpr.n_replicates,
            seed=seed,
            negative_control=NegativeControl(ctrl_name, fpr_c.figure),
            extra=extra,
        ),
        CheckResult(
            name=f"{prefix}/ks-uniformity",
            claim=ks_claim,
            scenario=scenario,
            figure=ks.figure,
            expected=0.0,
            tolerance=ks.tolerance,
            rule="at_most",
            n_replicates=ks.n_replicates,
            seed=seed,
            negative_control=NegativeControl(ctrl_name, ks_c.figure),
        ),
    ]


def _coverage_cell(name, st: _Stream, truth, alpha, z, scenario, seed) -> CheckResult:
    level = 1.0 - alpha
    claim = f"share of {level:g} intervals covering the truth {truth:.6g} = {level:g} ± z s.e."
    if st.ok.sum() < 2:
        return _missing(name, claim, scenario, seed)
    est, lo, hi = st.column("estimate"), st.column("ci_low"), st.column("ci_high")
    band = coverage((lo <= truth) & (truth <= hi), expected=level, z=z)
    half = float(stats.norm.ppf(1.0 - alpha / 2)) * _control_se(est)
    ctrl = coverage((est - half <= truth) & (truth <= est + half), expected=level, z=z)
    return CheckResult(
        name=name,
        claim=claim,
        scenario=scenario,
        figure=band.figure,
        expected=level,
        tolerance=band.tolerance,
        n_replicates=band.n_replicates,
        seed=seed,
        negative_control=NegativeControl(
            CONTROL_NAME,
            ctrl.figure,
        ),
        extra={"truth": truth, "mean_width": float(np.mean(hi - lo))},
    )


def _bias_cell(name, st: _Stream, truth, z, scenario, seed) -> CheckResult:
    claim = f"mean(estimate - truth {truth:.6g}) = 0 ± z Monte Carlo s.e."
    if st.ok.sum() < 2:
        return _missing(name, claim, scenario, seed)
    err = st.column("estimate") - truth
    band = mean_band(err, z=z)
    sd = float(np.std(err, ddof=1))
    shifted = band.figure + CONTROL_BIAS_SDS * sd
    return CheckResult(
        name=name,
        claim=claim,
        scenario=scenario,
        figure=band.figure,
        expected=0.0,
        tolerance=band.tolerance,
        n_replicates=band.n_replicates,
        seed=seed,
        negative_control=NegativeControl(
            f"same estimate + {CONTROL_BIAS_SDS:g} replicate s.d.",
            shifted,
        ),
        extra={
            "truth": truth,
            "sd_estimate": sd,
            "mean_std_error": float(np.mean(st.column("std_error"))),
            "bias_over_sd": band.figure / sd if sd > 0 else math.nan,
        },
    )


def _pilot_sigmas(
    kind: str, scenario: CalibrationScenario, ss: np.random.SeedSequence
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Per-arm (control, treatment) sigma of the compared metric from a large pilot.

    Also returns their Monte Carlo s.e., from :data:`validation.mc.PILOT_BATCHES`
    batch means (:func:`validation.mc.pilot_sigma`).
    """
    pilot = dataclasses.replace(scenario, n_users=(PILOT_USERS, PILOT_USERS))
    data = pilot.simulate(np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, _PILOT_KEY)))
    if kind == "ratio":
        v_t, m_t, v_c, m_c = estimator_args("ratio", data)
        arms = ((v_c, m_c), (v_t, m_t))

        def sd(cols):
            return ratio_sigma(*cols)
    else:
        y, arm, x = estimator_args("covariate", data)
        if kind == "covariate":
            y = y - cuped_theta(y, x[:, 0]) * (x[:, 0] - x[:, 0].mean())
        arms = ((y[arm == 0],), (y[arm == 1],))

        def sd(cols):
            return float(np.std(cols[0], ddof=1))

    sigmas, ses = [], []
    for cols in arms:
        batches = [sd([c[b::PILOT_BATCHES] for c in cols]) for b in range(PILOT_BATCHES)]
        sigma, se = pilot_sigma(batches)
        sigmas.append(sigma)
        ses.append(se)
    return (sigmas[0], sigmas[1]), (ses[0], ses[1])


def _normal_power(kind, scenario: CalibrationScenario, s_c, s_t, alpha) -> tuple[float, float]:
    """(power, formula s.e.) of the scenario's test at its n for per-arm sigmas."""
    n_c, n_t = scenario.n_users
    c, t = scenario.arm_values(kind)
    var_c, var_t = s_c**2 / n_c, s_t**2 / n_t
    if scenario.estimand == "difference":
        se = math.sqrt(var_t + var_c)
    else:  # var(R_T/R_C - 1) ≈ var_T/R_C^2 + R_T^2 var_C/R_C^4 (docs/theory.md §1)
        se = math.sqrt(var_t / c**2 + t**2 * var_c / c**4)
    effect = scenario.truth(kind)
    sigma_eff = se / math.sqrt(1.0 / n_c + 1.0 / n_t)
    return float(formula_power(sigma_eff, effect, n_c, alpha=alpha, ratio=n_t / n_c)), se


def _formula_power(kind, scenario: CalibrationScenario, ss, alpha) -> tuple[float, dict[str, Any]]:
    """Return the normal power at the scenario's n with pilot sigmas (theory.md §2).

    ``info["pilot_power_se"]`` is the power error that the pilot's own Monte Carlo error
    induces (half the change between sigma ± s.e.); the power cell folds it into its band.
    """
    (s_c, s_t), (e_c, e_t) = _pilot_sigmas(kind, scenario, ss)
    value, se = _normal_power(kind, scenario, s_c, s_t, alpha)
    lo, _ = _normal_power(kind, scenario, s_c + e_c, s_t + e_t, alpha)
    hi, _ = _normal_power(kind, scenario, s_c - e_c, s_t - e_t, alpha)
    return value, {
        "sigma_control": s_c,
        "sigma_treatment": s_t,
        "formula_se": se,
        "pilot_power_se": abs(hi - lo) / 2.0,
    }


def _power_cell(name, st: _Stream, expected, info, alpha, z, scenario, seed) -> CheckResult:
    claim = (
        f"share of p-values < {alpha:g} under the effect = formula power {expected:.4f} ± z s.e."
    )
    if st.ok.sum() < 2:
        return _missing(name, claim, scenario, seed)
    band = rejection_rate(st.column("pvalue"), alpha=alpha, expected=expected, z=z)
    # the formula's sigma comes from a pilot: fold its error into the band in quadrature
    tolerance = math.hypot(band.tolerance, z * info.get("pilot_power_se", 0.0))
    pc = _control_pvalues(st.column("estimate"))
    ctrl = rejection_rate(pc, alpha=alpha, expected=expected, z=z)
    return CheckResult(
        name=name,
        claim=claim,
        scenario=scenario,
        figure=band.figure,
        expected=expected,
        tolerance=tolerance,
        n_replicates=band.n_replicates,
        seed=seed,
        negative_control=NegativeControl(
            CONTROL_NAME,
            ctrl.figure,
        ),
        extra={**info, "mean_std_error": float(np.mean(st.column("std_error")))},
    )


def _errors_cell(name, failures, n_calls, scenario, seed) -> CheckResult:
    k = _MAX_LISTED_FAILURES
    listed = "; ".join(f"{f.stream} replicate {f.replicate}: {f.reason}" for f in failures[:k])
    more = f" (+{len(failures) - k} more)" if len(failures) > k else ""
    claim = f"the estimator returned a valid result on all {n_calls} replicates" + (
        f"; {len(failures)} failed: {listed}{more}" if failures else ""
    )
    return CheckResult(
        name=name,
        claim=claim,
        scenario=scenario,
        figure=float(len(failures)),
        expected=0.0,
        tolerance=0.0,
        rule="at_most",
        n_replicates=n_calls,
        seed=seed,
        extra={"failures": [str(f) for f in failures]},
    )


def plot_aa_pvalues(results: list[CheckResult]):
    """QQ plot of the A/A p-values of the estimator and of its control against Uniform(0, 1)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    for res in results:
        q = res.extra.get("pvalue_quantiles")
        if q is None:
            continue
        probs = np.asarray(res.extra["probs"])
        ax.plot(probs, q["estimator"], label="estimator")
        ax.plot(probs, q["control"], ls="--", label=f"control: {CONTROL_NAME}")
        break
    ax.plot([0, 1], [0, 1], color="k", lw=0.8)
    ax.set_xlabel("Uniform(0, 1) quantile")
    ax.set_ylabel("A/A p-value quantile")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _scenario_outcomes(
    call: Callable[..., Any],
    estimator_name: str,
    kind: str,
    scenario: CalibrationScenario,
    ss: np.random.SeedSequence,
    n_replicates: int,
    *,
    alpha: float,
    z: float,
    checks: tuple[str, ...],
    tick: Callable[[], None],
) -> tuple[list[Any], tuple[ReplicateFailure, ...]]:
    """Run the battery on one scenario; return its CheckOutcomes and failures."""
    from validation.runner import CheckOutcome

    name = scenario.name
    seed = int(ss.entropy)
    desc = {**scenario.to_dict(), "kind": kind, "estimator": estimator_name}
    truth = scenario.truth(kind)
    outcomes: list[Any] = []
    streams: list[_Stream] = []

    def outcome(suffix, claim, cells, elapsed, ws=(), exact=False, plot=None):
        check = Check(
            name=f"{name}/{suffix}",
            claim=claim,
            function=lambda ctx: cells,
            reference="docs/theory.md §5; Deng, Knoblich, Lu (KDD 2018).",
            group=name,
            exact=exact,
            plot=plot,
        )
        outcomes.append(CheckOutcome(check, tuple(cells), elapsed, None, tuple(ws)))

    if "aa" in checks:
        st = _run_stream(call, kind, scenario, ss, n_replicates, aa=True, tick=tick)
        streams.append(st)
        outcome(
            "aa-calibration",
            f"A/A ({scenario.description or name}): the estimator rejects in {alpha:g} of "
            "experiments and its p-values are uniform; a test with an s.e. of "
            f"{CONTROL_SE_FACTOR:g} x the estimates' replicate s.d. (control) fails both.",
            _aa_cells(f"{name}/aa-calibration", st, alpha, z, desc, seed),
            st.elapsed_s,
            st.warnings,
            plot=plot_aa_pvalues,
        )
    if {"coverage", "bias", "power"} & set(checks):
        st = _run_stream(call, kind, scenario, ss, n_replicates, aa=False, tick=tick)
        streams.append(st)
        if "coverage" in checks:
            outcome(
                "coverage",
                f"Under the effect the {1 - alpha:g} interval covers the true "
                f"{scenario.estimand} at its nominal rate.",
                [_coverage_cell(f"{name}/coverage", st, truth, alpha, z, desc, seed)],
                st.elapsed_s,
                st.warnings,
            )
        if "bias" in checks:
            outcome(
                "bias",
                f"The estimate of the {scenario.estimand} is unbiased within z Monte Carlo s.e.",
                [_bias_cell(f"{name}/bias", st, truth, z, desc, seed)],
                0.0,
                st.warnings,
            )
        if "power" in checks:
            t0 = time.perf_counter()
            expected, info = _formula_power(kind, scenario, ss, alpha)
            outcome(
                "power",
                "Under the effect the rejection rate equals the normal power formula at the "
                "scenario's n (sigma from a 100,000-users-per-arm pilot).",
                [_power_cell(f"{name}/power", st, expected, info, alpha, z, desc, seed)],
                time.perf_counter() - t0,
                st.warnings,
            )
    failures = tuple(f for st in streams for f in st.failures)
    n_calls = n_replicates * len(streams)
    outcome(
        "estimator-errors",
        "The estimator returns finite estimate and s.e., ci_low <= ci_high and a p-value in "
        "[0, 1] on every replicate (a count, not a Monte Carlo figure: no negative control).",
        [_errors_cell(f"{name}/estimator-errors", failures, n_calls, desc, seed)],
        0.0,
        exact=True,
    )
    return outcomes, failures


# --------------------------------------------------------------------------- public API
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
