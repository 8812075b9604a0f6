"""Calibrate an estimator on the user's own rows: re-randomisation and injected effects.

A :class:`DataScenario` reads event-level or unit-level rows (a DataFrame, a DuckDB
relation, or a CSV / Parquet / DuckDB file), sums them per unit with the per-unit step
of the aggregation of :mod:`estimators.sources` (one definition of "per unit"), and
becomes a calibration scenario of :func:`validation.calibrate` beside the named ones.

Each replicate re-randomises the units into a control and a treatment arm:

* **permutation** when the arms together hold every unit (the default: the data's own
  size, ``floor(N/2)`` control and the rest treatment). An A/A replicate is then a
  re-randomisation of the very experiment that the data could have been; the truth is
  the finite-population one.
* **bootstrap** (units drawn with replacement) for any other ``n_per_arm``: the data
  stand for the population, the truth is that of the empirical distribution.

Under the effect, the treatment arm's numerators are multiplied by ``1 + lift``
(**scaling**): every treated unit's outcome is exactly ``(1 + lift) V_i``, so the true
relative lift is exactly ``lift`` in every replicate and the true difference is
``lift`` times the control value (the data's ratio ``sum V / sum M``, or mean of V).
For a ``lift < 0`` on count data, ``injection="thin"`` keeps the counts integral:
each of a treated unit's V_i events is kept with probability ``1 + lift``
(binomial thinning), whose expectation is exactly ``(1 + lift) V_i``. Denominators and
covariates are never changed (the effect is on the metric, not on exposure or the
pre-period).

Replicate ``r`` draws from child ``r`` of the scenario's seed alone (NumPy, no
threads), so the figures are identical for any thread or worker count.

When the data's size makes the power of the test at ``lift`` close to 1
(above :data:`POWER_INFORMATIVE_MAX`), the power cell could not tell a right s.e. from
a wrong one; :meth:`DataScenario.resolve` then picks the lift (when the user left it
to the default) or else the ``n_per_arm`` (bootstrap) that gives power
:data:`POWER_TARGET`, and says so in the scenario's description.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from validation.shipped import Shipped

ratio_sigma = Shipped("estimators.ratio", "ratio_sigma")
cuped_theta = Shipped("estimators.cuped", "cuped_theta")
formula_power = Shipped("estimators.power", "power")
formula_mde = Shipped("estimators.power", "mde")
formula_sample_size = Shipped("estimators.power", "sample_size")

__all__ = [
    "DEFAULT_LIFT",
    "POWER_INFORMATIVE_MAX",
    "POWER_TARGET",
    "DataCalibration",
    "DataFingerprint",
    "DataReplicate",
    "DataScenario",
    "FirstCallError",
    "probe_first_calls",
]

#: Relative lift injected when the user gives none.
DEFAULT_LIFT: float = 0.02
#: Above this formula power the power cell is uninformative; the design is changed.
POWER_INFORMATIVE_MAX: float = 0.9
#: Power of the changed design (where a rejection rate has its largest variance, so a
#: wrong s.e. moves it most).
POWER_TARGET: float = 0.5
_ARM = "__calibrate_arm__"
_INJECTIONS = ("scale", "thin")


class FirstCallError(ValueError):
    """The estimator raised or broke the protocol on its first call: the run stops."""


@dataclass(frozen=True, slots=True)
class DataFingerprint:
    """What data a calibration ran on.

    Attributes
    ----------
    source : str
        The path, or the type of the frame.
    rows : int
        Rows of the source (all arms, before the per-unit sums).
    units : int
        Units used (of the ``control`` arm when an arm column is given).
    sha256 : str
        SHA-256 of the per-unit table used (unit order, float64 bytes of V, M, X).
    """

    source: str
    rows: int
    units: int
    sha256: str


@dataclass(frozen=True, slots=True)
class DataReplicate:
    """One re-randomised experiment: per-unit arrays of each arm (float64).

    ``x_c`` / ``x_t`` have shape ``(n, k)``; ``m_c`` / ``m_t`` are None for a mean metric.
    """

    v_c: npt.NDArray[np.float64]
    m_c: npt.NDArray[np.float64] | None
    x_c: npt.NDArray[np.float64]
    v_t: npt.NDArray[np.float64]
    m_t: npt.NDArray[np.float64] | None
    x_t: npt.NDArray[np.float64]

    def estimator_args(self, kind: str) -> tuple[npt.NDArray[Any], ...]:
        """Positional arguments of a ``kind`` estimator, as ``calibrate.estimator_args``."""
        if kind == "ratio":
            return self.v_t, self.m_t, self.v_c, self.m_c
        if kind == "mean":
            return self.v_t, self.v_c
        y = np.concatenate([self.v_c, self.v_t])
        arm = np.concatenate([np.zeros(self.v_c.size, np.int64), np.ones(self.v_t.size, np.int64)])
        return y, arm, np.concatenate([self.x_c, self.x_t])


def _read_units(data, unit, numerator, denominator, covariates, arm, table):
    """Per-unit arrays and the row count, through ``estimators.sources``' per-unit query."""
    import duckdb
    import narwhals as nw

    from estimators.sources._spec import make_spec
    from estimators.sources._sql import units_query

    spec = make_spec(unit, arm or _ARM, numerator, denominator, tuple(covariates))
    view = f"_calibrate_src_{uuid.uuid4().hex[:12]}"
    con = duckdb.connect()
    try:
        if isinstance(data, (str, os.PathLike)):
            path = Path(data)
            quoted = path.as_posix().replace("'", "''")
            if not path.is_file():
                raise ValueError(f"`data` must be an existing file; got {str(path)!r}.")
            suffix = path.suffix.lower()
            if suffix in (".csv", ".tsv"):
                src = f"read_csv_auto('{quoted}')"
            elif suffix in (".parquet", ".pq"):
                src = f"read_parquet('{quoted}')"
            elif suffix in (".duckdb", ".db"):
                if not table:
                    raise ValueError(f"`table` is required for the DuckDB file {str(path)!r}.")
                con.execute(f"ATTACH '{quoted}' AS _user (READ_ONLY)")
                src = f"_user.{table}"
            else:
                raise ValueError(
                    "`data` path must end in .csv, .tsv, .parquet, .pq, .duckdb or .db; "
                    f"got {str(path)!r}."
                )
            source = str(path)
        else:
            try:
                native = nw.from_native(data)
            except TypeError as exc:
                raise TypeError(
                    "`data` must be a path or a DataFrame Narwhals knows (pandas, polars, "
                    f"pyarrow, DuckDB ...); got {type(data).__name__}."
                ) from exc
            if isinstance(native, nw.LazyFrame):
                native = native.collect()
            con.register(view, native.to_arrow())
            src, source = view, type(data).__name__
        cols = [c[0] for c in con.execute(f"SELECT * FROM {src} LIMIT 0").description]
        missing = [c for c in spec.columns if c != _ARM and c not in cols]
        if missing:
            raise ValueError(f"column(s) {missing} not in `data`; it has {cols[:20]}.")
        if arm is None:
            src = f"(SELECT *, 0 AS {_ARM} FROM {src})"
        rows = int(con.execute(f"SELECT COUNT(*) FROM {src}").fetchone()[0])
        cursor = con.execute(units_query(src, spec))
        names = [d[0] for d in cursor.description]
        fetched = cursor.fetchall()
        if not fetched:
            raise ValueError("`data` has no rows.")
        frame = dict(zip(names, map(list, zip(*fetched, strict=True)), strict=True))
    finally:
        con.close()
    return frame, rows, source, spec.k


def _select_units(frame, arm, control, denominator, k):
    n_all = len(frame.get("v", []))
    if n_all == 0:
        raise ValueError("`data` has no rows.")
    if sum(frame["nu"]):
        raise ValueError(f"`unit` is NULL on {sum(frame['nu'])} unit(s); drop those rows.")
    lo = np.array([str(a) for a in frame["arm_lo"]])
    hi = np.array([str(a) for a in frame["arm_hi"]])
    if np.any(lo != hi):
        raise ValueError(f"`arm`: {int(np.sum(lo != hi))} unit(s) carry more than one arm label.")
    keep = np.ones(n_all, dtype=bool)
    if arm is not None:
        labels = sorted(set(lo.tolist()))
        if str(control) not in labels:
            raise ValueError(f"`control` must be one of the labels {labels}; got {control!r}.")
        keep = lo == str(control)
    for col, role in (("nv", "numerator"), ("nm", "denominator")):
        if col in frame and np.any(np.asarray(frame[col])[keep] > 0):
            raise ValueError(
                f"`{role}` is NULL on some rows of "
                f"{int(np.sum(np.asarray(frame[col])[keep] > 0))} unit(s)."
            )
    v = np.asarray(frame["v"], dtype=np.float64)[keep]
    m = np.asarray(frame["m"], dtype=np.float64)[keep] if denominator is not None else None
    x = (
        np.column_stack([np.asarray(frame[f"x{j}"], np.float64)[keep] for j in range(k)])
        if k
        else np.zeros((v.size, 0))
    )
    if v.size < 4:
        raise ValueError(f"`data` must have at least 4 units to split into two arms; got {v.size}.")
    if m is not None and not np.sum(m) > 0:
        raise ValueError("`denominator` must have a positive total over the units used.")
    return v, m, x


class DataScenario:
    """A calibration scenario made of the user's rows (re-randomised, effect injected).

    Parameters
    ----------
    data : DataFrame-like or path
        Anything :func:`estimators.sources.moments_from_frame` accepts (pandas, polars,
        pyarrow, DuckDB relation), or the path of a CSV, Parquet or DuckDB file
        (give ``table`` for DuckDB). Event-level rows are summed per unit.
    unit, numerator : str
        Unit column and the column summed per unit into the numerator V.
    denominator : str, optional
        Column summed into the denominator M: a ratio metric ``sum V / sum M``
        (None: the mean of V per unit).
    covariates : sequence of str
        Columns summed into the covariates X (pre-period values, for CUPED estimators).
    arm, control : str, optional
        With an arm column, only the units of the ``control`` label are used
        (pre-period or A/A data are the natural input).
    n_per_arm : int, optional
        Units per arm of each replicate. None: the data's own size (permutation);
        otherwise units are drawn with replacement (bootstrap).
    lift : float, optional
        Relative effect injected, > -1 (None: :data:`DEFAULT_LIFT`, adjustable when the
        power cell would be uninformative; see the module docstring).
    injection : {"scale", "thin"}
        Multiply treated numerators by ``1 + lift``, or thin counts binomially (only for
        ``lift < 0`` and non-negative integer numerators).
    estimand : {"difference", "relative"}
        What the estimator estimates: treatment minus control, or the relative lift.
    name : str
        Scenario name (no spaces); the seed derives from it.
    table : str, optional
        Table of a DuckDB file.

    Raises
    ------
    ValueError, TypeError
        For a bad argument, a missing column, NULL values, a unit in two arms or an
        unknown ``control`` label (the message names the parameter and the value).

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"user": [1, 1, 2, 3, 4, 5], "clicks": [1, 0, 2, 1, 0, 3],
    ...                      "views": [2, 1, 3, 1, 2, 4]})
    >>> s = DataScenario(rows, unit="user", numerator="clicks", denominator="views")
    >>> s.fingerprint.rows, s.fingerprint.units
    (6, 5)
    """

    def __init__(
        self,
        data: Any,
        *,
        unit: str,
        numerator: str,
        denominator: str | None = None,
        covariates: Sequence[str] = (),
        arm: str | None = None,
        control: Any = None,
        n_per_arm: int | None = None,
        lift: float | None = None,
        injection: str = "scale",
        estimand: str = "difference",
        name: str = "data",
        table: str | None = None,
    ) -> None:
        if isinstance(covariates, str):
            covariates = (covariates,)
        if (arm is None) != (control is None):
            raise ValueError(
                f"`arm` and `control` go together; got arm={arm!r}, control={control!r}."
            )
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ValueError(f"`name` must be a non-empty string without spaces; got {name!r}.")
        if n_per_arm is not None and (
            isinstance(n_per_arm, bool) or not isinstance(n_per_arm, int) or n_per_arm < 2
        ):
            raise ValueError(f"`n_per_arm` must be an int >= 2; got {n_per_arm!r}.")
        if lift is not None and not (
            isinstance(lift, (int, float)) and math.isfinite(lift) and lift > -1
        ):
            raise ValueError(f"`lift` must be a finite number > -1; got {lift!r}.")
        if injection not in _INJECTIONS:
            raise ValueError(f"`injection` must be one of {list(_INJECTIONS)}; got {injection!r}.")
        if estimand not in ("difference", "relative"):
            raise ValueError(f"`estimand` must be 'difference' or 'relative'; got {estimand!r}.")
        frame, rows, source, k = _read_units(
            data, unit, numerator, denominator, covariates, arm, table
        )
        v, m, x = _select_units(frame, arm, control, denominator, k)
        if injection == "thin":
            if lift is None or lift >= 0:
                raise ValueError(f"`injection` 'thin' needs a `lift` < 0; got lift={lift!r}.")
            if np.any(v < 0) or np.any(v != np.round(v)):
                raise ValueError(
                    "`injection` 'thin' needs non-negative integer numerators (counts)."
                )
        self.columns = {
            "unit": unit,
            "numerator": numerator,
            "denominator": denominator,
            "covariates": list(covariates),
            "arm": arm,
            "control": control,
        }
        self.v, self.m, self.x = v, m, x
        self.n_per_arm, self.lift, self.injection = n_per_arm, lift, injection
        self.estimand, self.name = estimand, name
        digest = hashlib.sha256()
        for a in (v, m, x):
            if a is not None:
                digest.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
        self.fingerprint = DataFingerprint(source, rows, int(v.size), digest.hexdigest())

    @property
    def n_units(self) -> int:
        """Units used."""
        return int(self.v.size)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Estimator kinds the data can calibrate (a ratio needs M, a covariate kind X)."""
        return tuple(
            k
            for k in ("ratio", "mean", "covariate")
            if (k != "ratio" or self.m is not None) and (k != "covariate" or self.x.shape[1])
        )

    def design(self, n_per_arm: int | None, lift: float) -> DataCalibration:
        """Return the scenario at ``n_per_arm`` units per arm (None: the data's) and ``lift``."""
        n_c = n_per_arm if n_per_arm is not None else self.n_units // 2
        n_t = n_per_arm if n_per_arm is not None else self.n_units - n_c
        return DataCalibration(self.name, self, (n_c, n_t), float(lift), self.estimand)

    def _sigma(self, kind: str) -> float:
        """S.d. of the compared per-unit metric on the data (for the design choice only)."""
        if kind == "ratio":
            return float(ratio_sigma(self.v, self.m))
        y = self.v
        if kind == "covariate":
            y = y - cuped_theta(y, self.x[:, 0]) * (self.x[:, 0] - self.x[:, 0].mean())
        return float(np.std(y, ddof=1))

    def resolve(self, kind: str, *, alpha: float = 0.05) -> DataCalibration:
        """Return the calibration scenario for a ``kind`` estimator (design fixed, note set).

        Raises
        ------
        ValueError
            If these data cannot calibrate a ``kind`` estimator.
        """
        if kind not in self.kinds:
            raise ValueError(
                f"scenario {self.name!r} cannot calibrate a {kind!r} estimator "
                f"(it supports {list(self.kinds)}; a ratio needs `denominator`, "
                "a covariate estimator `covariates`)."
            )
        lift = DEFAULT_LIFT if self.lift is None else self.lift
        scen = self.design(self.n_per_arm, lift)
        sigma, base = self._sigma(kind), scen.arm_values(kind)[0]
        n_c, n_t = scen.n_users
        p = float(formula_power(sigma, abs(lift) * abs(base), n_c, alpha=alpha, ratio=n_t / n_c))
        if p <= POWER_INFORMATIVE_MAX or not sigma > 0:
            return scen
        was = f"power {p:.3f} at lift {lift:g} and {n_c:,} units per arm"
        if self.lift is None:
            delta = float(formula_mde(sigma, n_c, alpha=alpha, power=POWER_TARGET, ratio=n_t / n_c))
            new = self.design(self.n_per_arm, delta / abs(base))
            note = f"lift set to {new.lift:.4g} for power {POWER_TARGET:g} ({was} is uninformative)"
        elif self.n_per_arm is None:
            size = formula_sample_size(
                sigma, abs(lift) * abs(base), alpha=alpha, power=POWER_TARGET
            )
            new = self.design(max(2, int(size.n_control)), lift)
            note = (
                f"n per arm set to {new.n_users[0]:,} (bootstrap) for power {POWER_TARGET:g} "
                f"({was} is uninformative)"
            )
        else:
            return dataclasses.replace(
                scen,
                note=f"{was}: the power cell is uninformative (both n_per_arm and lift were fixed)",
            )
        return dataclasses.replace(new, note=note)


@dataclass(frozen=True, slots=True)
class DataCalibration:
    """A :class:`DataScenario` at a fixed design: what :func:`validation.calibrate` runs.

    It offers the attributes of :class:`validation.calibrate.CalibrationScenario`
    (``name``, ``n_users``, ``estimand``, ``description``, ``kinds``, ``arm_values``,
    ``truth``, ``simulate``, ``to_dict``), so the battery runs on it unchanged.
    """

    name: str
    data: DataScenario
    n_users: tuple[int, int]
    lift: float
    estimand: str
    note: str = ""

    @property
    def kinds(self) -> tuple[str, ...]:
        """Estimator kinds the data support."""
        return self.data.kinds

    @property
    def permutation(self) -> bool:
        """True when the arms hold every unit once (permutation), else bootstrap."""
        return sum(self.n_users) == self.data.n_units

    @property
    def description(self) -> str:
        """One line for the report."""
        d, f = self.data, self.data.fingerprint
        how = "permutation of all units" if self.permutation else "bootstrap (with replacement)"
        text = (
            f"your data ({f.source}: {f.rows:,} rows, {f.units:,} units), {how}, "
            f"{self.n_users[0]:,} + {self.n_users[1]:,} units, numerator x{1 + self.lift:g} "
            f"({'binomial thinning' if d.injection == 'thin' else 'scaling'})"
        )
        return text + (f"; {self.note}" if self.note else "")

    def arm_values(self, kind: str) -> tuple[float, float]:
        """Exact (control, treatment) values: the data's ratio (or mean V), (1 + lift) times it."""
        d = self.data
        c = float(np.sum(d.v) / np.sum(d.m)) if kind == "ratio" else float(np.mean(d.v))
        return c, (1.0 + self.lift) * c

    def truth(self, kind: str) -> float:
        """Exact value of the estimand: ``lift`` times the control value, or ``lift``."""
        c, t = self.arm_values(kind)
        return t - c if self.estimand == "difference" else self.lift

    def simulate(self, ss: np.random.SeedSequence, *, aa: bool = False) -> DataReplicate:
        """Re-randomise the units from ``ss`` (effect injected unless ``aa``)."""
        d, rng = self.data, np.random.default_rng(ss)
        n_c, n_t = self.n_users
        if self.permutation:
            idx = rng.permutation(d.n_units)
        else:
            idx = rng.integers(0, d.n_units, size=n_c + n_t)
        ic, it = idx[:n_c], idx[n_c:]
        v_t = d.v[it]
        if not aa and self.lift != 0.0:
            if d.injection == "thin":
                v_t = rng.binomial(v_t.astype(np.int64), 1.0 + self.lift).astype(np.float64)
            else:
                v_t = v_t * (1.0 + self.lift)
        m = d.m
        return DataReplicate(
            d.v[ic],
            None if m is None else m[ic],
            d.x[ic],
            v_t,
            None if m is None else m[it],
            d.x[it],
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description: data fingerprint, columns, design and the effect."""
        d = self.data
        return {
            "calibration_scenario": self.name,
            "data": dataclasses.asdict(d.fingerprint),
            "columns": d.columns,
            "design": "permutation" if self.permutation else "bootstrap",
            "n_control": self.n_users[0],
            "n_treatment": self.n_users[1],
            "effect": f"treatment numerator x (1 + {self.lift:.6g}) by "
            + ("binomial thinning" if d.injection == "thin" else "scaling"),
            "lift": self.lift,
            "estimand": self.estimand,
            "design_note": self.note,
        }


def probe_first_calls(
    call: Callable[..., Any], kind: str, scenario: Any, ss: np.random.SeedSequence
) -> None:
    """Call the estimator on replicate 0 of both streams of an own-data scenario.

    These are the very first calls of the run (same data as replicate 0); any other
    scenario is left alone.

    Raises
    ------
    FirstCallError
        With the first exception or protocol violation (so a keyword typo, a wrong
        signature or a tuple return stops the run at once instead of failing every call).
    """
    from sim._seed import child_sequences
    from validation.calibrate import estimator_output

    if not isinstance(scenario, DataCalibration):  # named scenarios count failures instead
        return
    child = child_sequences(ss, 1)[0]
    for aa in (True, False):
        args = scenario.simulate(child, aa=aa).estimator_args(kind)
        try:
            with warnings.catch_warnings():  # the run records warnings; the probe only calls
                warnings.simplefilter("ignore")
                estimator_output(call(*args))
        except Exception as exc:  # noqa: BLE001 - re-raised with context
            stream = "A/A" if aa else "effect"
            raise FirstCallError(
                f"the estimator failed on its first call ({scenario.name}, {stream} replicate 0; "
                f"the run stopped): {type(exc).__name__}: {exc}"
            ) from exc


def add_data_arguments(parser: Any) -> None:
    """Add the own-data options of ``python -m validation calibrate`` to ``parser``."""
    g = parser.add_argument_group("your own data (a DataScenario; see docs/calibrate.md)")
    g.add_argument("--data", metavar="PATH", help="CSV, Parquet or DuckDB file of rows")
    g.add_argument("--table", metavar="NAME", help="table of a DuckDB --data file")
    g.add_argument("--unit", metavar="COL", help="unit column (rows are summed per unit)")
    g.add_argument("--numerator", metavar="COL", help="numerator column V")
    g.add_argument("--denominator", metavar="COL", help="denominator column M (ratio metric)")
    g.add_argument(
        "--covariate", action="append", default=[], metavar="COL", help="covariate (repeatable)"
    )
    g.add_argument("--arm", metavar="COL", help="arm column; only --control units are used")
    g.add_argument("--control", metavar="LABEL", help="control label of --arm")
    g.add_argument("--n-per-arm", type=int, default=None, metavar="N", help="default: the data's")
    g.add_argument("--lift", type=float, default=None, help=f"default: {DEFAULT_LIFT:g}")
    g.add_argument("--estimand", choices=("difference", "relative"), default="difference")


def data_scenario_from_args(args: Any) -> DataScenario | None:
    """Return the :class:`DataScenario` of the ``--data`` options (None without ``--data``).

    Raises
    ------
    ValueError
        For an option missing (``--unit``, ``--numerator``) or given without ``--data``.
    """
    if args.data is None:
        given = [
            f"--{k}"
            for k in ("unit", "numerator", "denominator", "arm", "control", "table")
            if getattr(args, k) is not None
        ]
        if given or args.covariate or args.n_per_arm is not None or args.lift is not None:
            raise ValueError(f"{', '.join(given) or 'the own-data options'} need `--data PATH`.")
        return None
    missing = [f"--{k}" for k in ("unit", "numerator") if getattr(args, k) is None]
    if missing:
        raise ValueError(f"`--data` needs {' and '.join(missing)}.")
    return DataScenario(
        args.data,
        unit=args.unit,
        numerator=args.numerator,
        denominator=args.denominator,
        covariates=tuple(args.covariate),
        arm=args.arm,
        control=args.control,
        n_per_arm=args.n_per_arm,
        lift=args.lift,
        estimand=args.estimand,
        table=args.table,
    )
