"""Core types of the validation suite: check results, negative controls and the registry.

A *check* is a Monte Carlo experiment that tests one claim of docs/theory.md against a
simulator whose truth is known. Each check is a function registered with
:func:`register`; it receives a :class:`RunContext` (profile, seed, z) and returns one
or more :class:`CheckResult`. Later work only adds checks; the runner and the report
read the registry.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from validation.mc import Z_FAMILY

Profile = Literal["quick", "full"]
PROFILES: tuple[Profile, ...] = ("quick", "full")


#: The rules a claim can state. ``within``: ``|figure - expected| <= tolerance``;
#: ``at_most``: ``figure <= expected + tolerance``; ``at_least``:
#: ``figure >= expected - tolerance``; ``below`` / ``above``: the figure is *clearly*
#: below ``expected - tolerance`` / above ``expected + tolerance`` (a documented
#: breakdown, e.g. "the delta interval under-covers here").
Rule = Literal["within", "at_most", "at_least", "below", "above"]
RULES: tuple[Rule, ...] = ("within", "at_most", "at_least", "below", "above")
#: Rules that claim a formula *breaks* in a scenario (the report shows them amber).
BREAKDOWN_RULES: tuple[Rule, ...] = ("below", "above")


def rule_holds(rule: str, figure: float, expected: float, tolerance: float) -> bool:
    """Return whether ``figure`` satisfies ``rule`` against ``expected ± tolerance``.

    The one place where a verdict is computed: every cell's claim and every negative
    control go through it. A non-finite figure never holds.

    Examples
    --------
    >>> rule_holds("within", 0.949, 0.95, 0.004), rule_holds("below", 0.80, 0.95, 0.01)
    (True, True)
    """
    if rule not in RULES:
        raise ValueError(f"`rule` must be one of {RULES}; got {rule!r}.")
    try:
        f, e, t = float(figure), float(expected), float(tolerance)
    except (TypeError, ValueError):
        return False
    if not (math.isfinite(f) and math.isfinite(e) and math.isfinite(t)):
        return False
    if rule == "within":
        return abs(f - e) <= t
    if rule == "at_most":
        return f <= e + t
    if rule == "at_least":
        return f >= e - t
    if rule == "below":
        return f < e - t
    return f > e + t


@dataclass(frozen=True, slots=True)
class Claim:
    """A figure, its expected value, a Monte Carlo tolerance and a rule; judges itself.

    Attributes
    ----------
    figure : float
        The measured statistic.
    expected : float
        Its value under the claim.
    tolerance : float
        ``z`` Monte Carlo standard errors of ``figure`` (see :mod:`validation.mc`).
    rule : {"within", "at_most", "at_least", "below", "above"}
        How ``figure`` is compared with ``expected ± tolerance`` (:func:`rule_holds`).
    """

    figure: float
    expected: float
    tolerance: float
    rule: Rule = "within"

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"`rule` must be one of {RULES}; got {self.rule!r}.")

    @property
    def holds(self) -> bool:
        """Whether the claim holds for its own figure."""
        return rule_holds(self.rule, self.figure, self.expected, self.tolerance)

    def holds_for(self, figure: float) -> bool:
        """Whether the same claim (expected, tolerance, rule) holds for ``figure``."""
        return rule_holds(self.rule, figure, self.expected, self.tolerance)


@dataclass(frozen=True, slots=True)
class NegativeControl:
    """A variant for which the claim is false; the check must reject it.

    The single negative-control rule of the suite: a control fails as it should when
    the *cell's own claim* (same expected value, tolerance and rule) does not hold for
    the control's figure. :class:`CheckResult` fills ``failed_as_expected`` from its
    claim; checks give only the name and the figure.

    Attributes
    ----------
    name : str
        What the control is, e.g. ``"naive binomial s.e."``.
    figure : float
        The control's value of the check's statistic.
    failed_as_expected : bool or None
        Set by the cell: True when its claim does not hold for ``figure``. A control
        that passes is a failure of the suite.
    """

    name: str
    figure: float
    failed_as_expected: bool | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of one cell of one check.

    Attributes
    ----------
    name : str
        Unique cell name, ``"<check>/<cell>"`` or just ``"<check>"``.
    claim : str
        The claim in one sentence; for an exact identity, why there is no control.
    scenario : dict
        The simulator settings (JSON-serialisable).
    figure : float
        The measured statistic (e.g. empirical coverage).
    expected : float
        Its value under the claim (e.g. 0.95).
    tolerance : float
        Half-width of the acceptance band, ``z`` Monte Carlo standard errors.
    rule : {"within", "at_most", "at_least", "below", "above"}
        How the figure is judged (:func:`rule_holds`); ``passed`` is computed from it.
    n_replicates : int
        Monte Carlo replicates behind ``figure``.
    seed : int
        Entropy of the root seed sequence; the cell is reproduced from it and the name.
    negative_control : NegativeControl or None
        None only for exact identities (the claim says why).
    extra : dict
        Series for plots and details (JSON-serialisable); not part of the verdict.
    rule : str
        See above; default ``"within"``.
    n_undefined : int
        Replicates where the statistic is undefined (a zero control ratio, a failed
        fit); excluded from ``figure`` and shown in the report, never scored as misses.
    seed_key : str
        Name of the seed stream of the cell (:meth:`RunContext.seed_sequence`); with
        ``seed`` it reproduces the cell alone (``run --only CHECK --seed SEED``).
        Defaults to the check name (the part of ``name`` before ``/``).
    passed : bool
        Computed from the claim: whether the cell's :attr:`verdict` holds. A check
        leaves it out; a value given that contradicts the claim raises ``ValueError``
        (so a hand-written verdict cannot disagree with the stored rule).
    """

    name: str
    claim: str
    scenario: dict[str, Any]
    figure: float
    expected: float
    tolerance: float
    passed: bool | None = None
    n_replicates: int = 0
    seed: int = 0
    negative_control: NegativeControl | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    rule: Rule = "within"
    n_undefined: int = 0
    seed_key: str = ""

    def __post_init__(self) -> None:
        verdict = self.verdict
        if self.passed is not None and bool(self.passed) != verdict.holds:
            raise ValueError(
                f"cell {self.name!r}: `passed={self.passed!r}` contradicts its claim "
                f"(figure {self.figure!r}, expected {self.expected!r} ± {self.tolerance!r}, "
                f"rule {self.rule!r}); leave `passed` out and state the rule with `rule=`."
            )
        object.__setattr__(self, "passed", verdict.holds)
        if not self.seed_key:
            object.__setattr__(self, "seed_key", self.name.split("/", 1)[0])
        ctrl = self.negative_control
        if ctrl is not None:
            failed = not verdict.holds_for(ctrl.figure)
            judged = NegativeControl(ctrl.name, ctrl.figure, failed)
            object.__setattr__(self, "negative_control", judged)
        if self.n_undefined < 0:
            raise ValueError(f"`n_undefined` must be >= 0; got {self.n_undefined}.")

    @property
    def verdict(self) -> Claim:
        """The cell's :class:`Claim` (figure, expected, tolerance, rule)."""
        return Claim(self.figure, self.expected, self.tolerance, self.rule)

    @property
    def state(self) -> str:
        """``"holds"``, ``"breaks as stated"`` (a documented breakdown) or ``"fails"``."""
        if not self.ok:
            return "fails"
        return "breaks as stated" if self.rule in BREAKDOWN_RULES else "holds"

    @property
    def ok(self) -> bool:
        """True when the claim holds and the negative control (if any) failed."""
        return self.passed and (
            self.negative_control is None or self.negative_control.failed_as_expected
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (the ``results.json`` schema of a check)."""
        out = asdict(self)
        out["negative_control"] = (
            None if self.negative_control is None else asdict(self.negative_control)
        )
        return _jsonable(out)


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and tuples to plain JSON types; non-finite -> str."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


@dataclass(frozen=True, slots=True)
class RunContext:
    """What a check receives from the runner.

    Attributes
    ----------
    profile : {"quick", "full"}
        Size of the run; checks pick their replicate counts with :meth:`replicates`.
    seed : int
        Root seed of the run.
    z : float
        Tolerance multiplier (Monte Carlo standard errors) for every cell.
    progress : callable or None
        ``progress(done, total)``, for long checks to report progress.
    """

    profile: Profile
    seed: int
    z: float = Z_FAMILY
    progress: Callable[[int, int], None] | None = None

    def replicates(self, quick: int, full: int) -> int:
        """Return ``quick`` or ``full`` according to the profile."""
        return quick if self.profile == "quick" else full

    def seed_sequence(self, name: str) -> np.random.SeedSequence:
        """Seed sequence of the check or cell ``name``.

        It depends only on the root seed and the name, so a check gives the same
        figures whether it runs alone (``--only``) or with all the others.
        """
        return np.random.SeedSequence(self.seed, spawn_key=(zlib.crc32(name.encode()),))


CheckFunction = Callable[[RunContext], "CheckResult | list[CheckResult]"]
PlotFunction = Callable[[list[CheckResult]], Any]


@dataclass(frozen=True, slots=True)
class Check:
    """A registered check: its function and what the report says about it.

    Attributes
    ----------
    name : str
        Registry key (kebab-case).
    claim : str
        The claim tested, one or two sentences.
    function : callable
        ``function(ctx) -> CheckResult | list[CheckResult]``.
    reference : str
        The paper and equation / docs/theory.md section the claim comes from.
    published : str
        A published figure the check reproduces, with its source, or "".
    group : str
        Report section (``"ab"``, ``"power"``, ``"cuped"``, ``"retrieval"``...).
    exact : bool
        True for exact identities (no negative control).
    plot : callable or None
        ``plot(results) -> matplotlib.figure.Figure`` drawing this check's cells (from
        their ``extra`` series); the report saves it as a PNG. None: no plot.
    """

    name: str
    claim: str
    function: CheckFunction
    reference: str = ""
    published: str = ""
    group: str = "misc"
    exact: bool = False
    plot: PlotFunction | None = None

    def run(self, ctx: RunContext) -> list[CheckResult]:
        """Run the check and return its cells as a list."""
        out = self.function(ctx)
        return [out] if isinstance(out, CheckResult) else list(out)


_REGISTRY: dict[str, Check] = {}


def register(
    name: str,
    *,
    claim: str,
    reference: str = "",
    published: str = "",
    group: str = "misc",
    exact: bool = False,
    plot: PlotFunction | None = None,
) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check function under ``name`` (decorator).

    Raises
    ------
    ValueError
        If ``name`` is already registered or empty.
    """
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"`name` must be a non-empty string without spaces; got {name!r}.")

    def decorator(function: CheckFunction) -> CheckFunction:
        if name in _REGISTRY:
            raise ValueError(f"a check named {name!r} is already registered.")
        _REGISTRY[name] = Check(
            name=name,
            claim=claim,
            function=function,
            reference=reference,
            published=published,
            group=group,
            exact=exact,
            plot=plot,
        )
        return function

    return decorator


def unregister(name: str) -> None:
    """Remove a check (for tests that register temporary checks)."""
    _REGISTRY.pop(name, None)


def get_check(name: str) -> Check:
    """Return the registered check ``name``.

    Raises
    ------
    KeyError
        With the list of known names, if ``name`` is not registered.
    """
    load_builtin_checks()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "(none)"
        raise KeyError(f"no check named {name!r}; known checks: {known}") from None


def iter_checks() -> Iterator[Check]:
    """Iterate over the registered checks in name order (built-in ones loaded first)."""
    load_builtin_checks()
    for key in sorted(_REGISTRY):
        yield _REGISTRY[key]


#: Modules whose import registers the built-in checks. Later work appends to it.
BUILTIN_CHECK_MODULES: list[str] = [
    "validation.ab_checks",
    "validation.power_checks",
    "validation.retrieval_checks",
    "validation.retrieval_frequency",
    "validation.retrieval_training",
    "validation.retrieval_shipped",
    "validation.cuped_checks",
    "validation.deng2018",
]


def load_builtin_checks() -> None:
    """Import every module of :data:`BUILTIN_CHECK_MODULES` (idempotent)."""
    import importlib

    for module in BUILTIN_CHECK_MODULES:
        importlib.import_module(module)
