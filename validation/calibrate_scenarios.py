"""Named calibration scenarios of :func:`validation.calibrate` (docs/calibrate.md).

A :class:`CalibrationScenario` is a simulator, the arm sizes and the estimand; the
scenario's seed derives from its name (:func:`_scenario_seed`), so a scenario named
like a built-in check and run with the report's seed sees that check's data.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

import sim
from validation.calibrate_protocol import KINDS, _check_kind

_CTR_TYPES = (sim.ReferenceCtr, sim.Deng2018Classes, sim.BetaBinomialCtr)


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
