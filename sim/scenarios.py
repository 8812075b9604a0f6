"""Scenarios of the A/B click and query simulators, with their exact ground truth.

Each scenario is a frozen dataclass whose fields are the simulator's parameters,
validated in ``__post_init__`` (``ValueError`` naming the field and the value). Each
has ``truth()`` (computed analytically from the parameters, not by simulation),
``to_dict()`` (JSON-serialisable) and ``describe()`` (one readable line).

References
----------
.. [1] S. Rome, "Calculating Statistical Power When Your Analysis Requires the Delta
   Method", blog post, 2019 (the docs/theory.md §2 reference scenario).
.. [2] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics:
   A Practical Guide with Novel Ideas", KDD 2018 (Table 2 scenario).
.. [3] A. Deng, Y. Xu, R. Kohavi, T. Walker, "Improving the Sensitivity of Online
   Controlled Experiments by Utilizing Pre-Experiment Data", WSDM 2013 (CUPED).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import special

__all__ = [
    "BetaBinomialCtr",
    "CtrTruth",
    "Deng2018Classes",
    "QueryScenario",
    "ReferenceCtr",
]

ViewsDistribution = Literal["poisson", "negative_binomial", "lognormal"]
EffectType = Literal["additive", "multiplicative"]
_VIEWS_CODES = {"poisson": 0, "negative_binomial": 1, "lognormal": 2}


# --------------------------------------------------------------------------- validation
def _check_finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"`{name}` must be a real number; got {type(value).__name__}.")
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite; got {value}.")
    return float(value)


def _check_range(
    name: str, value: float, low: float, high: float, *, low_open=False, high_open=False
) -> None:
    x = _check_finite(name, value)
    bad_low = x <= low if low_open else x < low
    bad_high = x >= high if high_open else x > high
    if bad_low or bad_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"`{name}` must be in {lo}{low:g}, {high:g}{hi}; got {value}.")


def _check_positive(name: str, value: float) -> None:
    if _check_finite(name, value) <= 0.0:
        raise ValueError(f"`{name}` must be > 0; got {value}.")


def _check_nonnegative(name: str, value: float) -> None:
    if _check_finite(name, value) < 0.0:
        raise ValueError(f"`{name}` must be >= 0; got {value}.")


def _check_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"`{name}` must be an int; got {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}; got {value}.")


def _as_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"scenario": type(obj).__name__}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


# --------------------------------------------------------------------------- truth
@dataclass(frozen=True, slots=True)
class CtrTruth:
    """Population click-through rates of a scenario (the estimand of the ratio metric).

    Attributes
    ----------
    ctr_control, ctr_treatment : float
        E[clicks] / E[views] per user in each arm (docs/theory.md §1: mu_V / mu_M), computed
        exactly from the scenario's parameters.
    difference : float
        ``ctr_treatment - ctr_control``.
    relative_lift : float
        ``ctr_treatment / ctr_control - 1``.
    mean_views : float
        E[views] per user, mu_M (equal in both arms: treatment changes clicks only).
    """

    ctr_control: float
    ctr_treatment: float
    difference: float
    relative_lift: float
    mean_views: float

    @classmethod
    def from_means(cls, mean_views: float, mean_clicks_c: float, mean_clicks_t: float):
        """Build the truth from mu_M and mu_V per arm."""
        c = mean_clicks_c / mean_views
        t = mean_clicks_t / mean_views
        return cls(
            ctr_control=float(c),
            ctr_treatment=float(t),
            difference=float(t - c),
            relative_lift=float(t / c - 1.0),
            mean_views=float(mean_views),
        )

    def to_dict(self) -> dict[str, float]:
        """Return the fields as a JSON-serialisable dict."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _normal_positive_part(mu: float, sd: float, c: float) -> float:
    """E[(X - c)^+] for X ~ Normal(mu, sd)."""
    if sd == 0.0:
        return max(mu - c, 0.0)
    z = (mu - c) / sd
    return float((mu - c) * special.ndtr(z) + sd * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))


def _clipped_normal_mean(mu: float, sd: float) -> float:
    """E[clip(X, 0, 1)] for X ~ Normal(mu, sd): E[X^+] - E[(X - 1)^+]."""
    return _normal_positive_part(mu, sd, 0.0) - _normal_positive_part(mu, sd, 1.0)


# --------------------------------------------------------------------------- docs/theory.md §2
@functools.lru_cache(maxsize=16)
def _reference_pool(
    pool_size: int, pool_seed: int, ctr_mean: float, ctr_sd: float, rate_mean: float, rate_sd: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Latent (unclipped) CTR and integer session rate r of each pool user."""
    gen = np.random.default_rng(pool_seed)
    base_ctr = gen.normal(ctr_mean, ctr_sd, pool_size)
    rate = gen.normal(rate_mean, rate_sd, pool_size)
    r = np.maximum(1.0, rate).astype(np.int64)  # r = int(max(1, rate))
    base_ctr.setflags(write=False)
    r.setflags(write=False)
    return base_ctr, r


@dataclass(frozen=True, slots=True)
class ReferenceCtr:
    """docs/theory.md §2 reference CTR scenario (the source result of the power check [1]_).

    A pool of ``pool_size`` users is drawn once from ``pool_seed``: latent CTR
    c_j ~ Normal(ctr_mean, ctr_sd) and session rate ~ Normal(rate_mean, rate_sd),
    r_j = int(max(1, rate)). An experiment draws its users uniformly *with
    replacement* from the pool (independently of arm); a user has a uniform integer
    number of sessions in [max(r_j - 2, 1), r_j + 2) and one Bernoulli click per
    session with probability clip(c_j + effect * treatment, 0, 1). The pre-period
    draws a second, independent session count for the same user with clicks at the
    control CTR clip(c_j, 0, 1) (no treatment effect before the experiment).

    Parameters
    ----------
    effect : float
        Additive CTR effect of treatment (0 gives an A/A test). Default 0.01.
    ctr_mean, ctr_sd : float
        Mean and s.d. of the users' latent CTR (0.65, 0.003).
    rate_mean, rate_sd : float
        Mean and s.d. of the users' session rate (8, 2).
    pool_size : int
        Number of users in the population pool (50,000).
    pool_seed : int
        Seed of the pool draw (``numpy.random.default_rng(pool_seed)``: CTRs first,
        then rates). The pool, hence the truth, is a fixed property of the scenario.

    Notes
    -----
    The truth is exact given the pool: with s_j = E[sessions] = low_j + (width_j - 1)/2,
    ``ctr_arm = sum_j p_arm,j s_j / sum_j s_j`` (users are equally likely to be drawn).
    The original post built the pool's treatment assignment into the pool; here the
    arm is assigned to experiment users by complete randomisation instead.

    Examples
    --------
    >>> t = ReferenceCtr().truth()
    >>> round(t.difference, 4)
    0.01
    """

    effect: float = 0.01
    ctr_mean: float = 0.65
    ctr_sd: float = 0.003
    rate_mean: float = 8.0
    rate_sd: float = 2.0
    pool_size: int = 50_000
    pool_seed: int = 20_190_601

    def __post_init__(self) -> None:
        _check_range("effect", self.effect, -1.0, 1.0)
        _check_range("ctr_mean", self.ctr_mean, 0.0, 1.0)
        _check_nonnegative("ctr_sd", self.ctr_sd)
        _check_finite("rate_mean", self.rate_mean)
        _check_nonnegative("rate_sd", self.rate_sd)
        _check_int("pool_size", self.pool_size, 1)
        _check_int("pool_seed", self.pool_seed, 0)

    def pool_arrays(
        self,
    ) -> tuple[
        npt.NDArray[np.float64],
        npt.NDArray[np.float64],
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
    ]:
        """Return the pool as (ctr_control, ctr_treatment, sessions_low, sessions_width).

        ``ctr_*`` are clipped to [0, 1]; sessions are uniform on
        ``sessions_low + {0, ..., sessions_width - 1}``.
        """
        base_ctr, r = _reference_pool(
            self.pool_size,
            self.pool_seed,
            float(self.ctr_mean),
            float(self.ctr_sd),
            float(self.rate_mean),
            float(self.rate_sd),
        )
        ctr_c = np.clip(base_ctr, 0.0, 1.0)
        ctr_t = np.clip(base_ctr + self.effect, 0.0, 1.0)
        low = np.maximum(r - 2, 1)
        width = (r + 2) - low
        return ctr_c, ctr_t, low, width

    def truth(self) -> CtrTruth:
        """Return the population CTR per arm, exact given the pool (see Notes)."""
        ctr_c, ctr_t, low, width = self.pool_arrays()
        mean_sessions = low + (width - 1) / 2.0
        return CtrTruth.from_means(
            float(np.mean(mean_sessions)),
            float(np.mean(ctr_c * mean_sessions)),
            float(np.mean(ctr_t * mean_sessions)),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a JSON-serialisable dict."""
        return _as_dict(self)

    def describe(self) -> str:
        """Return a one-line description for reports."""
        return (
            f"reference CTR: pool of {self.pool_size:,} users (seed {self.pool_seed}), "
            f"CTR ~ N({self.ctr_mean:g} + {self.effect:g}·T, {self.ctr_sd:g}) clipped, "
            f"sessions ~ U[max(r-2,1), r+2) with r = int(max(1, N({self.rate_mean:g}, "
            f"{self.rate_sd:g}))), Bernoulli clicks per session"
        )


# --------------------------------------------------------------------------- Deng 2018
@dataclass(frozen=True, slots=True)
class Deng2018Classes:
    """Latent-class CTR scenario of Deng, Knoblich, Lu (2018), Table 2 [2]_.

    Each user belongs to class k with probability ``class_probs[k]``; views
    ~ Poisson(``views_means[k]``); a raw click probability
    q ~ Normal(``ctr_means[k]``, ``ctr_sds[k]``) is drawn per user and clicks are
    Binomial(views, clip(q + effect * treatment, 0, 1)) (a user with 0 views has 0
    clicks). Pre-period: new Poisson views of the same class and clicks at clip(q).

    Parameters
    ----------
    class_probs : tuple of float
        Class probabilities (1/3, 1/2, 1/6); must sum to 1.
    views_means : tuple of float
        Poisson mean of views per class (2, 5, 30).
    ctr_means, ctr_sds : tuple of float
        Mean and s.d. of the user click probability per class
        ((0.3, 0.5, 0.8), (0.05, 0.1, 0.05)).
    effect : float
        Additive effect on the click probability (default 0: A/A, as in the paper).

    Notes
    -----
    mu_M = sum_k w_k lambda_k; mu_V = sum_k w_k lambda_k E[clip(N(m_k + e, s_k), 0, 1)],
    the clipped-normal mean in closed form, so the truth is exact.

    Examples
    --------
    >>> round(Deng2018Classes().truth().mean_views, 4)
    8.1667
    """

    class_probs: tuple[float, ...] = (1 / 3, 1 / 2, 1 / 6)
    views_means: tuple[float, ...] = (2.0, 5.0, 30.0)
    ctr_means: tuple[float, ...] = (0.3, 0.5, 0.8)
    ctr_sds: tuple[float, ...] = (0.05, 0.1, 0.05)
    effect: float = 0.0

    def __post_init__(self) -> None:
        k = len(self.class_probs)
        if k < 1:
            raise ValueError("`class_probs` must have at least one class; got ().")
        for name in ("views_means", "ctr_means", "ctr_sds"):
            other = getattr(self, name)
            if len(other) != k:
                raise ValueError(f"`{name}` must have one entry per class ({k}); got {len(other)}.")
        for i in range(k):
            _check_range(f"class_probs[{i}]", self.class_probs[i], 0.0, 1.0)
            _check_nonnegative(f"views_means[{i}]", self.views_means[i])
            _check_range(f"ctr_means[{i}]", self.ctr_means[i], 0.0, 1.0)
            _check_nonnegative(f"ctr_sds[{i}]", self.ctr_sds[i])
        total = math.fsum(self.class_probs)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"`class_probs` must sum to 1; got sum {total}.")
        _check_range("effect", self.effect, -1.0, 1.0)

    def kernel_arrays(self) -> tuple[npt.NDArray[np.float64], ...]:
        """Return (class_cdf, views_means, ctr_means, ctr_sds) as float64 arrays."""
        cdf = np.cumsum(np.asarray(self.class_probs, dtype=np.float64))
        cdf[-1] = 1.0
        return (
            cdf,
            np.asarray(self.views_means, dtype=np.float64),
            np.asarray(self.ctr_means, dtype=np.float64),
            np.asarray(self.ctr_sds, dtype=np.float64),
        )

    def truth(self) -> CtrTruth:
        """Return the population CTR per arm, in closed form (see Notes)."""
        mean_views = math.fsum(
            w * lam for w, lam in zip(self.class_probs, self.views_means, strict=True)
        )
        clicks = [0.0, 0.0]
        for arm, shift in enumerate((0.0, self.effect)):
            clicks[arm] = math.fsum(
                w * lam * _clipped_normal_mean(mu + shift, sd)
                for w, lam, mu, sd in zip(
                    self.class_probs, self.views_means, self.ctr_means, self.ctr_sds, strict=True
                )
            )
        return CtrTruth.from_means(mean_views, clicks[0], clicks[1])

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a JSON-serialisable dict."""
        return _as_dict(self)

    def describe(self) -> str:
        """Return a one-line description for reports."""
        classes = "; ".join(
            f"w={w:.3g}: views~Pois({lam:g}), p~N({mu:g},{sd:g})"
            for w, lam, mu, sd in zip(
                self.class_probs, self.views_means, self.ctr_means, self.ctr_sds, strict=True
            )
        )
        return f"Deng et al. 2018 Table 2 classes [{classes}], effect {self.effect:g}"


# --------------------------------------------------------------------------- beta
def _beta_upper_partial(a: float, b: float, c: float) -> float:
    """E[(B - c)^+] for B ~ Beta(a, b), 0 <= c <= 1 (closed form via betainc)."""
    mean = a / (a + b)
    return float(
        mean * (1.0 - special.betainc(a + 1.0, b, c)) - c * (1.0 - special.betainc(a, b, c))
    )


def _beta_lower_partial(a: float, b: float, c: float) -> float:
    """E[(c - B)^+] for B ~ Beta(a, b), 0 <= c <= 1."""
    mean = a / (a + b)
    return float(c * special.betainc(a, b, c) - mean * special.betainc(a + 1.0, b, c))


@dataclass(frozen=True, slots=True)
class BetaBinomialCtr:
    """General beta-binomial CTR scenario with light- or heavy-tailed views.

    User CTR p ~ Beta(ctr_mean * concentration, (1 - ctr_mean) * concentration).
    Each user has an activity level lambda and views ~ Poisson(lambda):

    * ``"poisson"``: lambda = views_mean (no overdispersion);
    * ``"negative_binomial"``: lambda ~ Gamma(k, views_mean / k), k =
      ``views_dispersion``, so views are negative binomial with variance
      mu + mu^2 / k;
    * ``"lognormal"``: lambda = views_mean * exp(s Z - s^2/2), s = ``views_dispersion``
      (Poisson-lognormal: a discretised lognormal with heavy right tail; views can be 0).

    Clicks ~ Binomial(views, p_arm) with p_arm = clip(p + effect, 0, 1) (additive) or
    min(1, p * (1 + effect)) (multiplicative); effect 0 gives an A/A test. The
    pre-period draws new Poisson(lambda) views of the same user with clicks at p.

    Parameters
    ----------
    ctr_mean : float
        Mean user CTR, in (0, 1). Default 0.1.
    concentration : float
        Beta concentration a + b > 0 (smaller = more heterogeneous users). Default 10.
    views : {"poisson", "negative_binomial", "lognormal"}
        Views distribution. Default ``"poisson"``.
    views_mean : float
        E[views] per user, > 0. Default 10.
    views_dispersion : float
        Gamma shape k ("negative_binomial") or log-s.d. s ("lognormal"), > 0; unused
        for ``"poisson"``. Default 1.
    effect : float
        Treatment effect on the user CTR. Default 0.
    effect_type : {"additive", "multiplicative"}
        How ``effect`` applies. Default ``"additive"``.

    Notes
    -----
    p is independent of lambda, so E[V] = E[M] E[p_arm] and the CTR is E[p_arm]:
    E[p] = ctr_mean and the clipped shifts use the Beta partial expectations
    E[(B - c)^+] = mu (1 - I_c(a+1, b)) - c (1 - I_c(a, b)) (I the regularised
    incomplete beta function), so the truth is exact.

    Examples
    --------
    >>> t = BetaBinomialCtr(effect=0.2, effect_type="multiplicative").truth()
    >>> round(t.relative_lift, 6)
    0.2
    """

    ctr_mean: float = 0.1
    concentration: float = 10.0
    views: ViewsDistribution = "poisson"
    views_mean: float = 10.0
    views_dispersion: float = 1.0
    effect: float = 0.0
    effect_type: EffectType = "additive"

    def __post_init__(self) -> None:
        _check_range("ctr_mean", self.ctr_mean, 0.0, 1.0, low_open=True, high_open=True)
        _check_positive("concentration", self.concentration)
        if self.views not in _VIEWS_CODES:
            raise ValueError(f"`views` must be one of {sorted(_VIEWS_CODES)}; got {self.views!r}.")
        _check_positive("views_mean", self.views_mean)
        _check_positive("views_dispersion", self.views_dispersion)
        if self.effect_type not in ("additive", "multiplicative"):
            raise ValueError(
                f"`effect_type` must be 'additive' or 'multiplicative'; got {self.effect_type!r}."
            )
        if self.effect_type == "additive":
            _check_range("effect", self.effect, -1.0, 1.0)
        else:
            _check_finite("effect", self.effect)
            if self.effect < -1.0:
                raise ValueError(
                    f"`effect` must be >= -1 for a multiplicative effect; got {self.effect}."
                )

    @property
    def beta_params(self) -> tuple[float, float]:
        """Beta shape parameters (a, b)."""
        return (
            float(self.ctr_mean * self.concentration),
            float((1.0 - self.ctr_mean) * self.concentration),
        )

    @property
    def views_code(self) -> int:
        """Integer code of the views distribution used by the kernel."""
        return _VIEWS_CODES[self.views]

    def _treated_ctr(self) -> float:
        a, b = self.beta_params
        mean = float(self.ctr_mean)
        e = float(self.effect)
        if self.effect_type == "additive":
            if e >= 0.0:
                return mean + e - _beta_upper_partial(a, b, 1.0 - e)
            return mean + e + _beta_lower_partial(a, b, -e)
        factor = 1.0 + e
        if factor <= 1.0:
            return factor * mean
        return factor * (mean - _beta_upper_partial(a, b, 1.0 / factor))

    def truth(self) -> CtrTruth:
        """Return the population CTR per arm, in closed form (see Notes)."""
        vm = float(self.views_mean)
        return CtrTruth.from_means(vm, vm * float(self.ctr_mean), vm * self._treated_ctr())

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a JSON-serialisable dict."""
        return _as_dict(self)

    def describe(self) -> str:
        """Return a one-line description for reports."""
        disp = "" if self.views == "poisson" else f", dispersion {self.views_dispersion:g}"
        return (
            f"beta-binomial CTR: p ~ Beta(mean {self.ctr_mean:g}, concentration "
            f"{self.concentration:g}), views {self.views}(mean {self.views_mean:g}{disp}), "
            f"{self.effect_type} effect {self.effect:g}"
        )


# --------------------------------------------------------------------------- docs/theory.md §3
def _floor_positive_mean(mu: float, sd: float) -> float:
    """E[max(0, trunc(X))] = sum_{k>=1} P(X >= k) for X ~ Normal(mu, sd)."""
    k = np.arange(1, max(2, math.ceil(mu + 40.0 * sd) + 2), dtype=np.float64)
    return math.fsum(special.ndtr((mu - k) / sd).tolist())


def _floor_positive_mean_uniform_shift(mu: float, sd: float, low: float, high: float) -> float:
    """E over e ~ U(low, high) of E[max(0, trunc(X + e))], X ~ Normal(mu, sd).

    Uses the antiderivative of Phi: int Phi(x) dx = x Phi(x) + phi(x), so
    E_e[Phi((mu + e - k)/sd)] = sd / (high - low) [G((mu + high - k)/sd) - G((mu + low - k)/sd)].
    """
    if high == low:
        return _floor_positive_mean(mu + low, sd)
    k = np.arange(1, max(2, math.ceil(mu + high + 40.0 * sd) + 2), dtype=np.float64)

    def antiderivative(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return x * special.ndtr(x) + np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)

    terms = antiderivative((mu + high - k) / sd) - antiderivative((mu + low - k) / sd)
    return sd / (high - low) * math.fsum(terms.tolist())


@dataclass(frozen=True, slots=True)
class QueryScenario:
    """docs/theory.md §3 CUPED query scenario (Deng et al. 2013 [3]_; the source post's setup).

    Each user has a latent query rate ~ Normal(rate_mean, rate_sd). Pre-period
    queries = max(0, trunc(rate + N(0, 1))). The experiment lasts ``n_days`` days,
    day d has day of week d % 7 (the experiment starts on day-of-week 0); each day
    the user visits with probability ``visit_prob`` and then issues
    max(0, trunc(rate + day_effect[d % 7] + effect_per_visit * treatment + N(0, 1)))
    queries. Y = total queries over the experiment.

    Parameters
    ----------
    rate_mean, rate_sd : float
        Latent rate distribution (8, 3).
    n_days : int
        Experiment length (14).
    visit_prob : float
        Probability of a visit per day (2/14).
    effect_per_visit : float
        Treatment lift of the daily rate on a visit day (2).
    day_effects : tuple of 7 floats or None
        Fixed day-of-week effects, or None (default) to draw them per experiment,
        i.i.d. Uniform(day_effect_low, day_effect_high), from the experiment's seed.
    day_effect_low, day_effect_high : float
        Bounds of the random day effects (-3, 6).

    Notes
    -----
    With X = rate + N(0, 1) ~ Normal(mu, sqrt(rate_sd^2 + 1)) on a given day,
    E[max(0, trunc(X + e))] = sum_{k>=1} Phi((mu + e - k) / sd) exactly. For random day
    effects the expectation over e ~ U(a, b) is closed-form too (antiderivative of
    Phi), so :meth:`true_effect` is exact in both cases. When the day effects are
    random, the estimand of a single experiment is the effect *given* its drawn day
    effects (``QueryData.true_effect_given_days``); its mean over experiments is
    :meth:`true_effect`.

    Examples
    --------
    >>> round(QueryScenario().true_effect(), 3)
    3.975
    """

    rate_mean: float = 8.0
    rate_sd: float = 3.0
    n_days: int = 14
    visit_prob: float = 2.0 / 14.0
    effect_per_visit: float = 2.0
    day_effects: tuple[float, ...] | None = None
    day_effect_low: float = -3.0
    day_effect_high: float = 6.0

    def __post_init__(self) -> None:
        _check_finite("rate_mean", self.rate_mean)
        _check_nonnegative("rate_sd", self.rate_sd)
        _check_int("n_days", self.n_days, 1)
        _check_range("visit_prob", self.visit_prob, 0.0, 1.0)
        _check_finite("effect_per_visit", self.effect_per_visit)
        _check_finite("day_effect_low", self.day_effect_low)
        _check_finite("day_effect_high", self.day_effect_high)
        if self.day_effect_high < self.day_effect_low:
            raise ValueError(
                f"`day_effect_high` must be >= `day_effect_low` ({self.day_effect_low}); "
                f"got {self.day_effect_high}."
            )
        if self.day_effects is not None:
            # a tuple whatever sequence was given: the scenario stays hashable (memoised truth)
            object.__setattr__(self, "day_effects", tuple(self.day_effects))
            if len(self.day_effects) != 7:
                raise ValueError(
                    f"`day_effects` must have 7 entries (one per day of week); "
                    f"got {len(self.day_effects)}."
                )
            for i, e in enumerate(self.day_effects):
                _check_finite(f"day_effects[{i}]", e)

    def _days_per_dow(self) -> npt.NDArray[np.float64]:
        return np.bincount(np.arange(self.n_days) % 7, minlength=7).astype(np.float64)

    def expected_queries(self, treatment: int, day_effects: npt.ArrayLike | None = None) -> float:
        """E[Y] for a user of arm ``treatment`` (0 or 1), exact.

        ``day_effects``: the 7 day-of-week effects to condition on; ``None`` uses the
        scenario's fixed effects, or averages over random ones.
        """
        sd = math.sqrt(self.rate_sd**2 + 1.0)
        mu = self.rate_mean + self.effect_per_visit * treatment
        counts = self._days_per_dow()
        if day_effects is None and self.day_effects is None:
            per_day = _floor_positive_mean_uniform_shift(
                mu, sd, self.day_effect_low, self.day_effect_high
            )
            return float(self.visit_prob * self.n_days * per_day)
        effects = self.day_effects if day_effects is None else day_effects
        effects = np.asarray(effects, dtype=np.float64)
        per_dow = [_floor_positive_mean(mu + e, sd) for e in effects.tolist()]
        return float(
            self.visit_prob * math.fsum(c * h for c, h in zip(counts, per_dow, strict=True))
        )

    def true_effect(self, day_effects: npt.ArrayLike | None = None) -> float:
        """Average treatment effect on Y, E[Y | T=1] - E[Y | T=0], exact.

        Memoised per (scenario, day effects): every experiment of a scenario with fixed
        day effects has the same truth, and it costs 14 sums of ~130 normal tails.
        """
        key = None
        if day_effects is not None:
            key = tuple(np.asarray(day_effects, dtype=np.float64).ravel().tolist())
        return _query_true_effect(self, key)

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a JSON-serialisable dict."""
        return _as_dict(self)

    def describe(self) -> str:
        """Return a one-line description for reports."""
        days = (
            f"day effects ~ U({self.day_effect_low:g}, {self.day_effect_high:g}) per experiment"
            if self.day_effects is None
            else f"fixed day effects {list(self.day_effects)}"
        )
        return (
            f"CUPED queries: rate ~ N({self.rate_mean:g}, {self.rate_sd:g}), {self.n_days} days, "
            f"visit prob {self.visit_prob:.4g}/day, +{self.effect_per_visit:g} per visit-day "
            f"in treatment, {days}"
        )


@functools.lru_cache(maxsize=1024)
def _query_true_effect(scenario: QueryScenario, day_effects: tuple[float, ...] | None) -> float:
    return scenario.expected_queries(1, day_effects) - scenario.expected_queries(0, day_effects)
