"""Seeded A/B click and query simulators (docs/theory.md §1-3) behind numba kernels.

Conventions shared by every function here:

* ``n_users`` is an int (the total, split as evenly as possible, the control arm
  getting the odd user: ``n_control = n - n // 2``) or a tuple
  ``(n_control, n_treatment)`` for unequal allocation; each arm needs >= 1 user.
* Arms are assigned by complete randomisation to these fixed counts. Users are
  exchangeable, so the arrays simply hold the control block first, then the
  treatment block (``arm`` = 0 ... 0, 1 ... 1).
* ``rng`` (int, ``numpy.random.SeedSequence`` or None) is normalised once with
  :func:`sim.as_seed_sequence`; one experiment uses
  ``numpy.random.Generator(numpy.random.PCG64(seed_sequence))``. Replicate ``r`` of
  :func:`simulate_moments` uses child ``r`` of the root sequence
  (:func:`sim.child_sequences`), so it equals
  ``simulate_clicks(scenario, n_users, rng=child_sequences(as_seed_sequence(rng), R)[r])``
  exactly, whatever the thread count or chunking.
* Results keep ``seed`` (the root entropy) and the ``scenario``.

References
----------
.. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics:
   A Practical Guide with Novel Ideas", KDD 2018.
.. [2] A. Deng, Y. Xu, R. Kohavi, T. Walker, "Improving the Sensitivity of Online
   Controlled Experiments by Utilizing Pre-Experiment Data", WSDM 2013.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sim import _ab_kernels as _k
from sim._fanout import Backend, map_blocks
from sim._seed import RngLike, as_seed_sequence, child_sequences
from sim.scenarios import (
    BetaBinomialCtr,
    CtrTruth,
    Deng2018Classes,
    QueryScenario,
    ReferenceCtr,
)

__all__ = [
    "MOMENT_NAMES",
    "ClickData",
    "CtrScenario",
    "Moments",
    "QueryData",
    "simulate_clicks",
    "simulate_moments",
    "simulate_queries",
    "simulate_sessions",
    "split_users",
]

CtrScenario = ReferenceCtr | Deng2018Classes | BetaBinomialCtr
_CTR_SCENARIOS = (ReferenceCtr, Deng2018Classes, BetaBinomialCtr)

#: Names of the per-arm sufficient statistics, in the kernels' order (V = clicks,
#: M = views, ``pre_`` = pre-period; cross-products pair an experiment and a
#: pre-period quantity of the same user).
MOMENT_NAMES: tuple[str, ...] = (
    "n",
    "sum_v",
    "sum_m",
    "sum_vv",
    "sum_mm",
    "sum_vm",
    "pre_sum_v",
    "pre_sum_m",
    "pre_sum_vv",
    "pre_sum_mm",
    "pre_sum_vm",
    "sum_v_pre_v",
    "sum_v_pre_m",
    "sum_m_pre_v",
    "sum_m_pre_m",
    "sum_vvv",
    "sum_vvm",
    "sum_vmm",
    "sum_mmm",
)
assert len(MOMENT_NAMES) == _k.N_MOMENTS

_IntArray = npt.NDArray[np.int64]
_FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class ClickData:
    """Per-user data of one simulated A/B experiment on a CTR metric.

    Attributes
    ----------
    arm : ndarray of int64, shape (n,)
        0 control, 1 treatment (control block first).
    views, clicks : ndarray of int64, shape (n,)
        Experiment-period views (M) and clicks (V) per user.
    pre_views, pre_clicks : ndarray of int64, shape (n,)
        Pre-period views and clicks of the same latent user (no treatment effect), a
        CUPED covariate.
    truth : CtrTruth
        The scenario's population CTRs (exact).
    seed : int
        Entropy of the root seed sequence.
    scenario : ReferenceCtr, Deng2018Classes or BetaBinomialCtr
        The scenario simulated.
    """

    arm: _IntArray
    views: _IntArray
    clicks: _IntArray
    pre_views: _IntArray
    pre_clicks: _IntArray
    truth: CtrTruth
    seed: int
    scenario: CtrScenario

    @property
    def n_control(self) -> int:
        """Number of control users."""
        return int(np.count_nonzero(self.arm == 0))

    @property
    def n_treatment(self) -> int:
        """Number of treatment users."""
        return int(np.count_nonzero(self.arm == 1))

    def moments(self) -> dict[str, _FloatArray]:
        """Per-arm sufficient statistics, as in :class:`Moments` (arrays of shape (2,))."""
        v = self.clicks.astype(np.float64)
        m = self.views.astype(np.float64)
        pv = self.pre_clicks.astype(np.float64)
        pm = self.pre_views.astype(np.float64)
        columns = {
            "n": np.ones_like(v),
            "sum_v": v,
            "sum_m": m,
            "sum_vv": v * v,
            "sum_mm": m * m,
            "sum_vm": v * m,
            "pre_sum_v": pv,
            "pre_sum_m": pm,
            "pre_sum_vv": pv * pv,
            "pre_sum_mm": pm * pm,
            "pre_sum_vm": pv * pm,
            "sum_v_pre_v": v * pv,
            "sum_v_pre_m": v * pm,
            "sum_m_pre_v": m * pv,
            "sum_m_pre_m": m * pm,
            "sum_vvv": v * v * v,
            "sum_vvm": v * v * m,
            "sum_vmm": v * m * m,
            "sum_mmm": m * m * m,
        }
        return {
            name: np.array([col[self.arm == a].sum() for a in (0, 1)])
            for name, col in columns.items()
        }


@dataclass(frozen=True, slots=True)
class Moments:
    """Per-replicate, per-arm sufficient statistics of a CTR scenario.

    Each statistic is a float64 array of shape ``(n_replicates, 2)``, column 0
    control and column 1 treatment: ``n`` (users), ``sum_v``, ``sum_m``, ``sum_vv``,
    ``sum_mm``, ``sum_vm`` (V = clicks, M = views per user), the same for the
    pre-period pair (``pre_sum_v`` ... ``pre_sum_vm``) and the cross-products
    ``sum_v_pre_v``, ``sum_v_pre_m``, ``sum_m_pre_v``, ``sum_m_pre_m``, and the
    third-order sums ``sum_vvv``, ``sum_vvm``, ``sum_vmm``, ``sum_mmm`` (skewness of
    the linearised ratio). All are sums of integers, hence exact (below 2**53).

    Attributes
    ----------
    truth : CtrTruth
        The scenario's population CTRs.
    seed : int
        Entropy of the root seed sequence.
    scenario : ReferenceCtr, Deng2018Classes or BetaBinomialCtr
        The scenario simulated.
    """

    n: _FloatArray
    sum_v: _FloatArray
    sum_m: _FloatArray
    sum_vv: _FloatArray
    sum_mm: _FloatArray
    sum_vm: _FloatArray
    pre_sum_v: _FloatArray
    pre_sum_m: _FloatArray
    pre_sum_vv: _FloatArray
    pre_sum_mm: _FloatArray
    pre_sum_vm: _FloatArray
    sum_v_pre_v: _FloatArray
    sum_v_pre_m: _FloatArray
    sum_m_pre_v: _FloatArray
    sum_m_pre_m: _FloatArray
    sum_vvv: _FloatArray
    sum_vvm: _FloatArray
    sum_vmm: _FloatArray
    sum_mmm: _FloatArray
    truth: CtrTruth
    seed: int
    scenario: CtrScenario

    @property
    def n_replicates(self) -> int:
        """Number of replicates (rows)."""
        return int(self.n.shape[0])

    def as_dict(self) -> dict[str, _FloatArray]:
        """All 19 statistics by name (arrays of shape (n_replicates, 2))."""
        return {name: getattr(self, name) for name in MOMENT_NAMES}

    def arm(self, arm: int) -> dict[str, _FloatArray]:
        """All statistics of one arm (0 control, 1 treatment), arrays of shape (R,).

        The keys ``n, sum_v, sum_m, sum_vv, sum_mm, sum_vm`` are the ratio-metric
        moments of the experiment period (clicks / views).
        """
        if arm not in (0, 1):
            raise ValueError(f"`arm` must be 0 or 1; got {arm}.")
        return {name: getattr(self, name)[:, arm] for name in MOMENT_NAMES}

    def replicate(self, r: int) -> dict[str, _FloatArray]:
        """All statistics of replicate ``r``, arrays of shape (2,) (control, treatment)."""
        if not -self.n_replicates <= r < self.n_replicates:
            raise IndexError(f"`r` must be in [0, {self.n_replicates}); got {r}.")
        return {name: getattr(self, name)[r] for name in MOMENT_NAMES}

    def ctr(self) -> _FloatArray:
        """Observed CTR sum_v / sum_m per replicate and arm, shape (n_replicates, 2)."""
        return self.sum_v / self.sum_m


@dataclass(frozen=True, slots=True)
class QueryData:
    """Per-user data of one simulated experiment of the docs/theory.md §3 query scenario.

    Attributes
    ----------
    arm : ndarray of int64, shape (n,)
        0 control, 1 treatment (control block first).
    queries : ndarray of int64, shape (n,)
        Y, total queries over the experiment.
    pre_queries : ndarray of int64, shape (n,)
        Pre-period queries (CUPED covariate).
    first_visit_dow : ndarray of int64, shape (n,)
        Day of week (0-6) of the user's first visit, or -1 for users who never
        visited (their Y is 0). For "first-visit day" dummies treat -1 as an eighth
        level: a full set of 8 dummies (or of 7 when nobody has -1) is collinear with
        the intercept, which a least-squares CUPED handles (docs/theory.md §3); or drop one level.
    visit_days : ndarray of int64, shape (n,)
        Number of days with a visit.
    day_effects : ndarray of float64, shape (7,)
        The day-of-week effects of this experiment (drawn or fixed).
    true_effect : float
        The scenario's average treatment effect on Y (over random day effects), exact.
    true_effect_given_days : float
        The average treatment effect given this experiment's ``day_effects``, exact.
    seed : int
        Entropy of the root seed sequence.
    scenario : QueryScenario
        The scenario simulated.
    """

    arm: _IntArray
    queries: _IntArray
    pre_queries: _IntArray
    first_visit_dow: _IntArray
    visit_days: _IntArray
    day_effects: _FloatArray
    true_effect: float
    true_effect_given_days: float
    seed: int
    scenario: QueryScenario


# --------------------------------------------------------------------------- validation
def split_users(n_users: int | tuple[int, int]) -> tuple[int, int]:
    """Return ``(n_control, n_treatment)`` for an ``n_users`` argument.

    An int is split as evenly as possible with the odd user in control
    (``n - n // 2``, ``n // 2``); a tuple is taken as ``(n_control, n_treatment)``.

    Examples
    --------
    >>> split_users(5), split_users((3, 7))
    ((3, 2), (3, 7))
    """
    if isinstance(n_users, tuple):
        if len(n_users) != 2:
            raise ValueError(
                f"`n_users` as a tuple must be (n_control, n_treatment); got {n_users!r}."
            )
        for name, value in zip(("n_control", "n_treatment"), n_users, strict=True):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(
                    f"`n_users` entries must be ints; got {type(value).__name__} for {name}."
                )
            if value < 1:
                raise ValueError(f"`n_users` {name} must be >= 1; got {value}.")
        return int(n_users[0]), int(n_users[1])
    if isinstance(n_users, bool) or not isinstance(n_users, numbers.Integral):
        raise TypeError(
            f"`n_users` must be an int or a tuple (n_control, n_treatment); "
            f"got {type(n_users).__name__}."
        )
    if n_users < 2:
        raise ValueError(f"`n_users` must be >= 2 (one user per arm); got {n_users}.")
    n = int(n_users)
    return n - n // 2, n // 2


def _validate_ctr_scenario(scenario: Any) -> None:
    if not isinstance(scenario, _CTR_SCENARIOS):
        raise TypeError(
            "`scenario` must be a ReferenceCtr, Deng2018Classes or BetaBinomialCtr; "
            f"got {type(scenario).__name__}."
        )


def _validate_simulate_moments(scenario: Any, n_replicates: Any) -> int:
    _validate_ctr_scenario(scenario)
    if isinstance(n_replicates, bool) or not isinstance(n_replicates, numbers.Integral):
        raise TypeError(f"`n_replicates` must be an int; got {type(n_replicates).__name__}.")
    if n_replicates < 1:
        raise ValueError(f"`n_replicates` must be >= 1; got {n_replicates}.")
    return int(n_replicates)


# --------------------------------------------------------------------------- engine
def _generator(ss: np.random.SeedSequence) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(ss))


def _kernel_call(scenario: CtrScenario) -> Callable[..., None]:
    """Bind a scenario's parameters; the result runs one experiment.

    ``run(gen, n_control, n_treatment, store, views, clicks, pre_views, pre_clicks,
    moments)`` fills ``moments`` (2, 19) and, when ``store``, the per-user arrays.
    """
    if isinstance(scenario, ReferenceCtr):
        ctr_c, ctr_t, low, width = scenario.pool_arrays()

        def run(gen, n_c, n_t, store, v, c, pv, pc, out):
            _k._reference_kernel(gen, n_c, n_t, ctr_c, ctr_t, low, width, store, v, c, pv, pc, out)

    elif isinstance(scenario, Deng2018Classes):
        cdf, views_means, ctr_means, ctr_sds = scenario.kernel_arrays()
        effect = float(scenario.effect)

        def run(gen, n_c, n_t, store, v, c, pv, pc, out):
            _k._classes_kernel(
                gen, n_c, n_t, cdf, views_means, ctr_means, ctr_sds, effect,
                store, v, c, pv, pc, out,
            )  # fmt: skip

    else:
        a, b = scenario.beta_params
        code = scenario.views_code
        mean = float(scenario.views_mean)
        disp = float(scenario.views_dispersion)
        effect = float(scenario.effect)
        mult = scenario.effect_type == "multiplicative"

        def run(gen, n_c, n_t, store, v, c, pv, pc, out):
            _k._beta_kernel(
                gen, n_c, n_t, a, b, code, mean, disp, effect, mult,
                store, v, c, pv, pc, out,
            )  # fmt: skip

    return run


_EMPTY = np.empty(0, dtype=np.int64)


def _per_user(
    scenario: CtrScenario, n_c: int, n_t: int, gen: np.random.Generator
) -> tuple[_IntArray, _IntArray, _IntArray, _IntArray]:
    """Run one experiment storing per-user (views, clicks, pre_views, pre_clicks)."""
    n = n_c + n_t
    views, clicks, pre_views, pre_clicks = (np.empty(n, dtype=np.int64) for _ in range(4))
    out = np.empty((2, _k.N_MOMENTS))
    _kernel_call(scenario)(gen, n_c, n_t, True, views, clicks, pre_views, pre_clicks, out)
    return views, clicks, pre_views, pre_clicks


def _make_progress(progress: bool | Callable[[int], Any], total: int):
    """Return (update(k), close()) for ``progress``; tqdm on stderr when True."""
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=total, file=sys.stderr, unit="rep", desc="simulate_moments")
        return bar.update, bar.close
    if callable(progress):
        return progress, lambda: None
    return (lambda k: None), (lambda: None)


# --------------------------------------------------------------------------- public API
def simulate_clicks(
    scenario: CtrScenario, n_users: int | tuple[int, int], *, rng: RngLike = None
) -> ClickData:
    """Simulate one A/B experiment on a CTR metric: per-user views and clicks.

    Parameters
    ----------
    scenario : ReferenceCtr, Deng2018Classes or BetaBinomialCtr
        The data-generating process (see each class).
    n_users : int or tuple of int
        Total users (split evenly, control gets the odd one) or
        ``(n_control, n_treatment)``.
    rng : int, numpy.random.SeedSequence or None
        Seed; None draws fresh entropy (kept in ``seed``).

    Returns
    -------
    ClickData
        Per-user ``arm``, ``views``, ``clicks``, ``pre_views``, ``pre_clicks``, the
        exact ``truth``, ``seed`` and ``scenario``.

    Notes
    -----
    V = clicks and M = views per user (docs/theory.md §1); the estimand of the ratio metric
    sum V / sum M is ``truth.ctr_*`` = mu_V / mu_M per arm [1]_.

    Examples
    --------
    >>> data = simulate_clicks(ReferenceCtr(), 10, rng=0)
    >>> data.arm.tolist()
    [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    >>> bool((data.clicks <= data.views).all())
    True
    """
    _validate_ctr_scenario(scenario)
    n_c, n_t = split_users(n_users)
    ss = as_seed_sequence(rng)
    views, clicks, pre_views, pre_clicks = _per_user(scenario, n_c, n_t, _generator(ss))
    arm = np.repeat(np.array([0, 1], dtype=np.int64), [n_c, n_t])
    return ClickData(
        arm=arm,
        views=views,
        clicks=clicks,
        pre_views=pre_views,
        pre_clicks=pre_clicks,
        truth=scenario.truth(),
        seed=ss.entropy,
        scenario=scenario,
    )


def _moments_block(
    start: int,
    stop: int,
    scenario: CtrScenario,
    n_c: int,
    n_t: int,
    ss: np.random.SeedSequence,
) -> _FloatArray:
    """Moments of replicates ``[start, stop)``, shape (stop - start, 2, N_MOMENTS).

    The block function of :func:`simulate_moments` (module level, so that process and
    cluster backends can ship it); replicate r uses child r of ``ss``.
    """
    run = _kernel_call(scenario)
    out = np.empty((stop - start, 2, _k.N_MOMENTS))
    for i, child in enumerate(child_sequences(ss, stop - start, start=start)):
        run(_generator(child), n_c, n_t, False, _EMPTY, _EMPTY, _EMPTY, _EMPTY, out[i])
    return out


def simulate_moments(
    scenario: CtrScenario,
    n_users: int | tuple[int, int],
    n_replicates: int,
    *,
    rng: RngLike = None,
    progress: bool | Callable[[int], Any] = False,
    chunk_size: int | None = None,
    backend: Backend | str | Any | None = None,
) -> Moments:
    """Simulate many independent experiments and keep only their sufficient statistics.

    Parameters
    ----------
    scenario : ReferenceCtr, Deng2018Classes or BetaBinomialCtr
        The data-generating process.
    n_users : int or tuple of int
        Users per experiment, as in :func:`simulate_clicks`.
    n_replicates : int
        Number of experiments, >= 1.
    rng : int, numpy.random.SeedSequence or None
        Root seed; replicate r uses its child r.
    progress : bool or callable, optional
        True shows a tqdm bar on stderr; a callable is called with the number of
        replicates of each finished block (from worker threads on the thread backend).
    chunk_size : int or None, optional
        Replicates per block of work (does not change the result); None: the
        backend's default (16 on threads).
    backend : sim.Backend, str, dask.distributed.Client or None, optional
        Where the blocks run (:mod:`sim._fanout`): ``"threads"`` (in this process),
        ``"loky"`` (local processes), ``"dask"`` (a ``LocalCluster`` started for the
        call), a Dask scheduler address ``"tcp://host:port"``, a
        ``dask.distributed.Client``, ``"ray"``, or a :class:`sim.Backend`. None: the
        backend of the enclosing :func:`sim.use_backend` block, else threads.

    Returns
    -------
    Moments
        Arrays of shape (n_replicates, 2) (column 0 control, 1 treatment).

    Raises
    ------
    sim.SchedulerUnreachableError
        When a scheduler address does not answer within its connect timeout.

    Notes
    -----
    Each replicate runs a serial, GIL-free numba kernel with its own
    ``Generator(PCG64(child_r))``; blocks of replicates run on the backend
    (``numba.get_num_threads()`` Python threads by default). Since replicate r depends
    only on (root entropy, r), the result is bit-identical for any backend, worker
    count, thread count and chunking, and row r equals
    ``simulate_clicks(scenario, n_users, rng=child_r).moments()``.

    Examples
    --------
    >>> mom = simulate_moments(Deng2018Classes(), 200, 3, rng=1)
    >>> mom.sum_v.shape
    (3, 2)
    >>> mom.n[0].tolist()
    [100.0, 100.0]
    >>> same = simulate_moments(Deng2018Classes(), 200, 3, rng=1, backend="threads",
    ...                         chunk_size=2)
    >>> bool((same.sum_v == mom.sum_v).all())
    True
    """
    n_replicates = _validate_simulate_moments(scenario, n_replicates)
    n_c, n_t = split_users(n_users)
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
            raise TypeError(f"`chunk_size` must be an int; got {type(chunk_size).__name__}.")
        if chunk_size < 1:
            raise ValueError(f"`chunk_size` must be >= 1; got {chunk_size}.")
    ss = as_seed_sequence(rng)
    update, close = _make_progress(progress, n_replicates)
    try:
        blocks = map_blocks(
            _moments_block,
            n_replicates,
            args=(scenario, n_c, n_t, ss),
            block_size=chunk_size,
            backend=backend,
            progress=update,
        )
    finally:
        close()
    out = np.concatenate(blocks)
    fields = {name: np.ascontiguousarray(out[:, :, j]) for j, name in enumerate(MOMENT_NAMES)}
    return Moments(**fields, truth=scenario.truth(), seed=ss.entropy, scenario=scenario)


def simulate_sessions(
    scenario: CtrScenario, n_users: int | tuple[int, int], *, rng: RngLike = None
):
    """Simulate one experiment at session level: one row per view.

    Parameters
    ----------
    scenario : ReferenceCtr, Deng2018Classes or BetaBinomialCtr
        The data-generating process.
    n_users : int or tuple of int
        As in :func:`simulate_clicks`.
    rng : int, numpy.random.SeedSequence or None
        Seed; the same seed gives the same users as :func:`simulate_clicks`.

    Returns
    -------
    pandas.DataFrame
        Columns ``user`` (int64, index into the :func:`simulate_clicks` arrays),
        ``arm`` (0/1) and ``click`` (0/1), sorted by user. Users with zero views
        have no rows.

    Notes
    -----
    The per-user counts are those of ``simulate_clicks`` with the same seed. Given a
    user's click count, the Bernoulli sessions are exchangeable, so which of the
    user's views are the clicked ones is a uniformly random arrangement, drawn from
    the same generator after the per-user draws. The delta-method s.e. equals the
    user-clustered OLS s.e. of ``click ~ arm`` on these rows (docs/theory.md §1).

    Examples
    --------
    >>> rows = simulate_sessions(ReferenceCtr(), 4, rng=0)
    >>> list(rows.columns)
    ['user', 'arm', 'click']
    """
    import pandas as pd

    _validate_ctr_scenario(scenario)
    n_c, n_t = split_users(n_users)
    gen = _generator(as_seed_sequence(rng))
    views, clicks, _, _ = _per_user(scenario, n_c, n_t, gen)
    n = n_c + n_t
    user = np.repeat(np.arange(n, dtype=np.int64), views)
    arm = (user >= n_c).astype(np.int64)
    # rank of each row within its user: 0 .. views-1
    starts = np.repeat(np.cumsum(views) - views, views)
    rank = np.arange(user.size, dtype=np.int64) - starts
    click = (rank < np.repeat(clicks, views)).astype(np.int64)
    # uniformly random arrangement within each user (stable sort by user keeps blocks)
    order = np.lexsort((gen.random(user.size), user))
    return pd.DataFrame({"user": user, "arm": arm, "click": click[order]})


def simulate_queries(
    scenario: QueryScenario, n_users: int | tuple[int, int], *, rng: RngLike = None
) -> QueryData:
    """Simulate one experiment of the docs/theory.md §3 CUPED query scenario.

    Parameters
    ----------
    scenario : QueryScenario
        The data-generating process.
    n_users : int or tuple of int
        As in :func:`simulate_clicks`.
    rng : int, numpy.random.SeedSequence or None
        Seed.

    Returns
    -------
    QueryData
        Per-user ``queries`` (Y), ``pre_queries``, ``first_visit_dow`` (-1: never
        visited), ``visit_days``, the experiment's ``day_effects`` and the exact
        true effects.

    Notes
    -----
    Random day effects (``scenario.day_effects is None``) are drawn first, seven
    ``Uniform(low, high)`` values from the experiment's generator, then the users.
    CUPED [2]_ on Y with the pre-period queries and first-visit-day dummies as
    covariates reduces the s.e.; the published single draw of 1,000 users gave a
    CUPED / plain s.e. ratio of about 0.84 (docs/theory.md §3). Over 200 draws of 1,000 users
    (pooled least-squares theta) this simulator gives 0.77 (s.d. 0.02) with the
    never-visited users as their own level (-1), 0.86 (s.d. 0.03) when only users
    who visited are analysed, and 0.89 (s.d. 0.02) when never-visited users are
    lumped into day 0 (an ``argmax`` coding): how never-visitors enter the
    covariates matters more than the Monte Carlo noise.

    Examples
    --------
    >>> data = simulate_queries(QueryScenario(), 1000, rng=0)
    >>> data.queries.shape, int(data.first_visit_dow.min()) >= -1
    ((1000,), True)
    """
    if not isinstance(scenario, QueryScenario):
        raise TypeError(f"`scenario` must be a QueryScenario; got {type(scenario).__name__}.")
    n_c, n_t = split_users(n_users)
    ss = as_seed_sequence(rng)
    gen = _generator(ss)
    if scenario.day_effects is None:
        day_effects = gen.uniform(scenario.day_effect_low, scenario.day_effect_high, 7)
    else:
        day_effects = np.asarray(scenario.day_effects, dtype=np.float64)
    n = n_c + n_t
    queries = np.empty(n, dtype=np.int64)
    pre_queries = np.empty(n, dtype=np.int64)
    first_visit_dow = np.empty(n, dtype=np.int64)
    visit_days = np.empty(n, dtype=np.int64)
    _k._queries_kernel(
        gen, n_c, n_t, float(scenario.rate_mean), float(scenario.rate_sd), scenario.n_days,
        float(scenario.visit_prob), day_effects, float(scenario.effect_per_visit),
        queries, pre_queries, first_visit_dow, visit_days,
    )  # fmt: skip
    return QueryData(
        arm=np.repeat(np.array([0, 1], dtype=np.int64), [n_c, n_t]),
        queries=queries,
        pre_queries=pre_queries,
        first_visit_dow=first_visit_dow,
        visit_days=visit_days,
        day_effects=day_effects,
        true_effect=scenario.true_effect(),
        true_effect_given_days=scenario.true_effect(day_effects),
        seed=ss.entropy,
        scenario=scenario,
    )
