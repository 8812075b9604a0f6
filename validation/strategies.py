"""Hypothesis strategies that draw realistic A/B experiment data from the ``sim`` scenarios.

For property tests of *any* estimator, in a user's own test suite::

    from hypothesis import given
    from validation import properties, strategies

    @given(strategies.estimator_inputs("ratio"))
    def test_my_ratio_estimator(args):
        properties.check_all(my_ratio_estimator, args, kind="ratio")

Every experiment is simulated by :func:`sim.simulate_clicks` from a scenario and a
seed that hypothesis draws (so shrinking and the derandomised profile work), then
optionally made degenerate-but-valid:

* ``"unbalanced"``: one arm much smaller than the other (2-5 users against 10-40
  times as many);
* ``"zero-clicks"``: every user of one arm has zero clicks (that arm's CTR is 0);
* ``"constant-covariate"``: the pre-period clicks and views are the same for every
  user (a CUPED covariate with no variance).

Drawn data are always *valid* input: each arm has at least ``min_users_per_arm``
users and a positive total of views, and the metric varies within at least one arm
(otherwise every standard error is 0 and no test is defined).

References
----------
.. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics:
   A Practical Guide with Novel Ideas", KDD 2018.
.. [2] D. R. MacIver, Z. Hatfield-Dodds et al., "Hypothesis: A new approach to
   property-based testing", JOSS 4(43), 2019.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st

import sim
from validation.calibrate import KINDS, estimator_args

__all__ = [
    "CASES",
    "ctr_experiments",
    "ctr_moments",
    "ctr_scenarios",
    "estimator_inputs",
]

#: Kinds of drawn experiments: plain, and the degenerate-but-valid cases.
CASES: tuple[str, ...] = ("plain", "unbalanced", "zero-clicks", "constant-covariate")

_SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def ctr_scenarios() -> st.SearchStrategy[Any]:
    """Draw a CTR scenario: beta-binomial (any views law), Deng 2018 classes or docs/theory.md §2.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of :class:`sim.BetaBinomialCtr` (mean CTR 0.01-0.9, concentration 0.5-50,
        Poisson / negative-binomial / Poisson-lognormal views with mean 1-20,
        multiplicative effect -0.5 to +1), :class:`sim.Deng2018Classes` (additive
        effect ±0.05) or :class:`sim.ReferenceCtr` (additive effect ±0.02).

    Examples
    --------
    >>> from hypothesis import find, settings
    >>> type(find(ctr_scenarios(), lambda s: True, settings=settings(database=None))).__name__ in (
    ...     "BetaBinomialCtr", "Deng2018Classes", "ReferenceCtr")
    True
    """
    beta = st.builds(
        sim.BetaBinomialCtr,
        ctr_mean=st.floats(0.01, 0.9),
        concentration=st.floats(0.5, 50.0),
        views=st.sampled_from(("poisson", "negative_binomial", "lognormal")),
        views_mean=st.floats(1.0, 20.0),
        views_dispersion=st.floats(0.3, 1.5),
        effect=st.floats(-0.5, 1.0),
        effect_type=st.just("multiplicative"),
    )
    deng = st.builds(sim.Deng2018Classes, effect=st.floats(-0.05, 0.05))
    reference = st.builds(sim.ReferenceCtr, effect=st.floats(-0.02, 0.02))
    return st.one_of(beta, deng, reference)


def _validate_sizes(min_users_per_arm: Any, max_users_per_arm: Any) -> None:
    for name, value in (
        ("min_users_per_arm", min_users_per_arm),
        ("max_users_per_arm", max_users_per_arm),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"`{name}` must be an int; got {type(value).__name__}.")
    if min_users_per_arm < 2:
        raise ValueError(f"`min_users_per_arm` must be >= 2; got {min_users_per_arm}.")
    if max_users_per_arm < min_users_per_arm:
        raise ValueError(
            f"`max_users_per_arm` must be >= `min_users_per_arm` ({min_users_per_arm}); "
            f"got {max_users_per_arm}."
        )


def _linearised_variance(clicks: np.ndarray, views: np.ndarray) -> float:
    """Sample variance of L_i = V_i/Mbar - (Vbar/Mbar^2) M_i (docs/theory.md §1) in one arm."""
    v = clicks.astype(np.float64)
    m = views.astype(np.float64)
    mbar = m.mean()
    lin = v / mbar - (v.mean() / mbar**2) * m
    return float(lin.var(ddof=1))


def _valid(data: sim.ClickData) -> bool:
    """Each arm has views; the ratio and the mean vary within at least one arm."""
    arms = [data.arm == a for a in (0, 1)]
    if any(data.views[a].sum() == 0 for a in arms):
        return False
    lin = sum(_linearised_variance(data.clicks[a], data.views[a]) for a in arms)
    mean = sum(float(data.clicks[a].astype(np.float64).var(ddof=1)) for a in arms)
    return lin > 1e-12 and mean > 1e-12


def _degenerate(data: sim.ClickData, case: str, arm: int) -> sim.ClickData:
    if case == "zero-clicks":
        clicks = np.where(data.arm == arm, 0, data.clicks)
        return dataclasses.replace(data, clicks=clicks)
    if case == "constant-covariate":
        n = data.arm.size
        return dataclasses.replace(
            data,
            pre_clicks=np.full(n, 1, dtype=np.int64),
            pre_views=np.full(n, 4, dtype=np.int64),
        )
    return data


@st.composite
def _experiment(
    draw: Any,
    scenarios: st.SearchStrategy[Any],
    min_users_per_arm: int,
    max_users_per_arm: int,
    cases: tuple[str, ...],
) -> sim.ClickData:
    scenario = draw(scenarios)
    case = draw(st.sampled_from(cases))
    arm = draw(st.sampled_from((0, 1)))  # the arm made small / zero
    if case == "unbalanced":
        small = draw(st.integers(min_users_per_arm, min_users_per_arm + 3))
        big = draw(st.integers(10 * small, max(10 * small, 40 * small)))
        n_users = (small, big) if arm == 0 else (big, small)
    else:
        n_users = (
            draw(st.integers(min_users_per_arm, max_users_per_arm)),
            draw(st.integers(min_users_per_arm, max_users_per_arm)),
        )
    data = sim.simulate_clicks(scenario, n_users, rng=draw(_SEEDS))
    return _degenerate(data, case, arm)


def ctr_experiments(
    *,
    min_users_per_arm: int = 2,
    max_users_per_arm: int = 200,
    scenarios: st.SearchStrategy[Any] | Sequence[Any] | None = None,
    cases: Sequence[str] = CASES,
) -> st.SearchStrategy[sim.ClickData]:
    """Draw one user-level A/B experiment on a CTR metric.

    Parameters
    ----------
    min_users_per_arm, max_users_per_arm : int
        Users per arm (the small arm of an ``"unbalanced"`` draw has
        ``min_users_per_arm`` to ``min_users_per_arm + 3``, the other 10-40 times as
        many). Defaults 2 and 200.
    scenarios : strategy, sequence of scenarios or None
        Where scenarios come from; None uses :func:`ctr_scenarios`.
    cases : sequence of str
        Which of :data:`CASES` to draw (default all: plain and the degenerate-but-valid
        ones).

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of :class:`sim.ClickData`: per-user ``arm`` (0 control, 1 treatment),
        ``views``, ``clicks``, ``pre_views``, ``pre_clicks`` (pre-period covariates).

    Raises
    ------
    ValueError, TypeError
        For bad sizes or an unknown case.

    Examples
    --------
    >>> from hypothesis import find, settings
    >>> d = find(ctr_experiments(cases=["zero-clicks"]), lambda d: True,
    ...          settings=settings(database=None))
    >>> int(min(d.clicks[d.arm == 0].sum(), d.clicks[d.arm == 1].sum()))
    0
    """
    _validate_sizes(min_users_per_arm, max_users_per_arm)
    cases = tuple(cases)
    bad = [c for c in cases if c not in CASES]
    if bad or not cases:
        raise ValueError(f"`cases` must be a non-empty subset of {list(CASES)}; got {list(cases)}.")
    if scenarios is None:
        scenarios = ctr_scenarios()
    elif not isinstance(scenarios, st.SearchStrategy):
        scenarios = st.sampled_from(list(scenarios))
    return _experiment(scenarios, min_users_per_arm, max_users_per_arm, cases).filter(_valid)


def ctr_moments(
    *,
    n_replicates: int = 1,
    min_users_per_arm: int = 2,
    max_users_per_arm: int = 500,
    scenarios: st.SearchStrategy[Any] | Sequence[Any] | None = None,
) -> st.SearchStrategy[sim.Moments]:
    """Draw per-arm sufficient statistics of ``n_replicates`` simulated experiments.

    Parameters
    ----------
    n_replicates : int
        Experiments per draw (rows of the arrays). Default 1.
    min_users_per_arm, max_users_per_arm : int
        Users per arm (drawn independently, so arms may be very unequal).
    scenarios : strategy, sequence of scenarios or None
        Where scenarios come from; None uses :func:`ctr_scenarios`.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of :class:`sim.Moments` (``n``, ``sum_v``, ``sum_m``, ``sum_vv``, ``sum_mm``,
        ``sum_vm`` and the pre-period moments, arrays of shape ``(n_replicates, 2)``,
        column 0 control); ``estimators.RatioMoments.from_simulator(m, arm)`` turns
        an arm into the estimators' moments. Every arm has a positive sum of views.

    Examples
    --------
    >>> from hypothesis import find, settings
    >>> find(ctr_moments(n_replicates=3), lambda m: True,
    ...      settings=settings(database=None)).sum_v.shape
    (3, 2)
    """
    _validate_sizes(min_users_per_arm, max_users_per_arm)
    if isinstance(n_replicates, bool) or not isinstance(n_replicates, int):
        raise TypeError(f"`n_replicates` must be an int; got {type(n_replicates).__name__}.")
    if n_replicates < 1:
        raise ValueError(f"`n_replicates` must be >= 1; got {n_replicates}.")
    if scenarios is None:
        scenarios = ctr_scenarios()
    elif not isinstance(scenarios, st.SearchStrategy):
        scenarios = st.sampled_from(list(scenarios))
    sizes = st.integers(min_users_per_arm, max_users_per_arm)
    moments = st.builds(
        lambda scen, n_c, n_t, seed: sim.simulate_moments(scen, (n_c, n_t), n_replicates, rng=seed),
        scenarios,
        sizes,
        sizes,
        _SEEDS,
    )
    return moments.filter(lambda m: bool((m.sum_m > 0).all()))


def estimator_inputs(kind: str, **kwargs: Any) -> st.SearchStrategy[tuple[Any, ...]]:
    """Draw the positional arguments of a ``kind`` estimator (the calibrate protocol).

    Parameters
    ----------
    kind : {"ratio", "mean", "covariate"}
        ``"ratio"``: ``(num_t, den_t, num_c, den_c)`` = clicks and views per user;
        ``"mean"``: ``(y_t, y_c)`` with Y = clicks per user; ``"covariate"``:
        ``(y, arm, X)`` with X the pre-period clicks, shape ``(n, 1)``.
    **kwargs
        Passed to :func:`ctr_experiments`.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of tuples of float arrays (``arm`` is int 0/1).

    Examples
    --------
    >>> from hypothesis import find, settings
    >>> len(find(estimator_inputs("ratio"), lambda a: True, settings=settings(database=None)))
    4
    """
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {list(KINDS)}; got {kind!r}.")
    return ctr_experiments(**kwargs).map(lambda data: estimator_args(kind, data))
