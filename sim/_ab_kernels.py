"""numba kernels of the A/B click simulators (private; see :mod:`sim.ab`).

Every kernel draws one experiment (one replicate) from one ``numpy.random.Generator``
and trusts its inputs: the public wrappers in :mod:`sim.ab` validate, derive the
seeds and allocate the outputs. Users are drawn in a fixed order (control block
then treatment block) and, per user, the draws come in a fixed order, so a kernel
that stores per-user arrays and one that only accumulates moments consume exactly
the same random numbers: that is the same kernel, with ``store`` on or off.

Moment layout (second axis of ``moments``, first axis is the arm), V = clicks,
M = views, a ``p`` prefix marks the pre-period::

    0 n    1 V    2 M    3 VV   4 MM   5 VM
    6 pV   7 pM   8 pVpV 9 pMpM 10 pVpM
    11 VpV 12 VpM 13 MpV 14 MpM
    15 VVV 16 VVM 17 VMM 18 MMM

All moments are sums of integers, so float64 accumulation is exact (below 2**53)
whatever the summation order.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

N_MOMENTS = 19

# Bernoulli trials are drawn one uniform each up to this many trials, and with the
# generator's binomial sampler above it (the loop is ~3x faster for ~8 sessions).
_BERNOULLI_LOOP_MAX = 24


@njit(cache=True, nogil=True, error_model="numpy")
def _uniform_index(gen, width):
    """Uniform integer in [0, width): floor(width * U), U a 53-bit uniform.

    The probability of each value differs from 1/width by less than 2**-53, far
    below any Monte Carlo resolution; it costs one double, unlike the generator's
    bounded-integer sampler (measured ~2x slower in numba 0.68).
    """
    k = np.int64(gen.random() * width)
    if k >= width:  # unreachable for U < 1; kept as a guard against rounding
        k = width - 1
    return k


@njit(cache=True, nogil=True, error_model="numpy")
def _binomial(gen, n_trials, p):
    """Binomial(n_trials, p): a Bernoulli loop for small n, the sampler otherwise."""
    if n_trials <= 0:
        return np.int64(0)
    if n_trials <= _BERNOULLI_LOOP_MAX:
        k = np.int64(0)
        for _ in range(n_trials):
            k += np.int64(gen.random() < p)  # branch-free: clicks are unpredictable
        return k
    return np.int64(gen.binomial(n_trials, p))


@njit(cache=True, nogil=True, error_model="numpy")
def _clip01(x):
    if x < 0.0:
        return 0.0
    if x > 1.0:
        return 1.0
    return x


@njit(cache=True, nogil=True, error_model="numpy")
def _accumulate(acc, arm, v, m, pv, pm):
    """Add one user's (V, M, pre V, pre M) to the moment accumulators of ``arm``."""
    fv = float(v)
    fm = float(m)
    fpv = float(pv)
    fpm = float(pm)
    a = acc[arm]
    a[0] += 1.0
    a[1] += fv
    a[2] += fm
    a[3] += fv * fv
    a[4] += fm * fm
    a[5] += fv * fm
    a[6] += fpv
    a[7] += fpm
    a[8] += fpv * fpv
    a[9] += fpm * fpm
    a[10] += fpv * fpm
    a[11] += fv * fpv
    a[12] += fv * fpm
    a[13] += fm * fpv
    a[14] += fm * fpm
    a[15] += fv * fv * fv
    a[16] += fv * fv * fm
    a[17] += fv * fm * fm
    a[18] += fm * fm * fm


@njit(cache=True, nogil=True, error_model="numpy")
def _reference_kernel(
    gen, n_control, n_treatment, ctr_control, ctr_treatment, sessions_low, sessions_width,
    store, views, clicks, pre_views, pre_clicks, moments,
):  # fmt: skip
    """docs/theory.md §2 reference scenario: users drawn with replacement from a fixed pool.

    Per user: pool index (1 uniform), sessions (1 uniform), one Bernoulli per session
    at the arm's CTR, pre-period sessions (1 uniform) and one Bernoulli per pre-period
    session at the control CTR.
    """
    pool_size = ctr_control.shape[0]
    acc = np.zeros((2, N_MOMENTS))
    n_total = n_control + n_treatment
    for i in range(n_total):
        arm = 0 if i < n_control else 1
        j = _uniform_index(gen, pool_size)
        low = sessions_low[j]
        width = sessions_width[j]
        p_control = ctr_control[j]
        p = p_control if arm == 0 else ctr_treatment[j]
        m = low + _uniform_index(gen, width)
        v = _binomial(gen, m, p)
        pm = low + _uniform_index(gen, width)
        pv = _binomial(gen, pm, p_control)
        if store:
            views[i] = m
            clicks[i] = v
            pre_views[i] = pm
            pre_clicks[i] = pv
        _accumulate(acc, arm, v, m, pv, pm)
    moments[:, :] = acc


@njit(cache=True, nogil=True, error_model="numpy")
def _classes_kernel(
    gen, n_control, n_treatment, class_cdf, views_means, ctr_means, ctr_sds, effect,
    store, views, clicks, pre_views, pre_clicks, moments,
):  # fmt: skip
    """Latent-class scenario (Deng, Knoblich, Lu 2018, Table 2).

    Per user: class (1 uniform), raw click probability Normal(mean_k, sd_k), views
    Poisson(lambda_k) and Binomial clicks at clip(raw + effect * arm), then pre-period
    views Poisson(lambda_k) and clicks at clip(raw).
    """
    n_classes = class_cdf.shape[0]
    acc = np.zeros((2, N_MOMENTS))
    n_total = n_control + n_treatment
    for i in range(n_total):
        arm = 0 if i < n_control else 1
        u = gen.random()
        k = 0
        while k < n_classes - 1 and u >= class_cdf[k]:
            k += 1
        raw = gen.normal(ctr_means[k], ctr_sds[k])
        p_control = _clip01(raw)
        p = p_control if arm == 0 else _clip01(raw + effect)
        lam = views_means[k]
        m = np.int64(gen.poisson(lam))
        v = _binomial(gen, m, p)
        pm = np.int64(gen.poisson(lam))
        pv = _binomial(gen, pm, p_control)
        if store:
            views[i] = m
            clicks[i] = v
            pre_views[i] = pm
            pre_clicks[i] = pv
        _accumulate(acc, arm, v, m, pv, pm)
    moments[:, :] = acc


@njit(cache=True, nogil=True, error_model="numpy")
def _beta_kernel(
    gen, n_control, n_treatment, alpha, beta, views_code, views_mean, views_dispersion,
    effect, multiplicative, store, views, clicks, pre_views, pre_clicks, moments,
):  # fmt: skip
    """Beta user CTR with a Poisson / gamma-Poisson / lognormal-Poisson views model.

    Per user: CTR ~ Beta(alpha, beta); activity lambda = views_mean (code 0),
    Gamma(k, views_mean / k) (code 1, k = views_dispersion) or
    views_mean * exp(s Z - s**2 / 2) (code 2, s = views_dispersion); views and
    pre-period views Poisson(lambda) independently; clicks Binomial at the arm's CTR
    (additive: clip(p + effect); multiplicative: min(1, p * (1 + effect))), pre-period
    clicks at p.
    """
    acc = np.zeros((2, N_MOMENTS))
    n_total = n_control + n_treatment
    half_var = 0.5 * views_dispersion * views_dispersion
    for i in range(n_total):
        arm = 0 if i < n_control else 1
        p_control = gen.beta(alpha, beta)
        if arm == 0:
            p = p_control
        elif multiplicative:
            p = min(1.0, p_control * (1.0 + effect))
        else:
            p = _clip01(p_control + effect)
        if views_code == 0:
            lam = views_mean
        elif views_code == 1:
            lam = gen.gamma(views_dispersion, views_mean / views_dispersion)
        else:
            lam = views_mean * math.exp(views_dispersion * gen.standard_normal() - half_var)
        m = np.int64(gen.poisson(lam))
        v = _binomial(gen, m, p)
        pm = np.int64(gen.poisson(lam))
        pv = _binomial(gen, pm, p_control)
        if store:
            views[i] = m
            clicks[i] = v
            pre_views[i] = pm
            pre_clicks[i] = pv
        _accumulate(acc, arm, v, m, pv, pm)
    moments[:, :] = acc


@njit(cache=True, nogil=True, error_model="numpy")
def _queries_kernel(
    gen, n_control, n_treatment, rate_mean, rate_sd, n_days, visit_prob, day_effects,
    effect_per_visit, queries, pre_queries, first_visit_dow, visit_days,
):  # fmt: skip
    """docs/theory.md §3 CUPED query scenario, one experiment.

    Per user: latent rate ~ Normal(rate_mean, rate_sd); pre-period queries
    max(0, trunc(rate + N(0, 1))); then for each day d (day of week d % 7) a visit
    with probability ``visit_prob`` and, on a visit, max(0, trunc(rate +
    day_effects[d % 7] + effect_per_visit * arm + N(0, 1))) queries. Users who never
    visit get ``first_visit_dow = -1``.
    """
    n_total = n_control + n_treatment
    for i in range(n_total):
        arm = 0 if i < n_control else 1
        lift = effect_per_visit if arm == 1 else 0.0
        rate = gen.normal(rate_mean, rate_sd)
        x = rate + gen.standard_normal()
        pre_queries[i] = np.int64(x) if x > 0.0 else 0
        total = np.int64(0)
        n_visits = np.int64(0)
        first = np.int64(-1)
        for d in range(n_days):
            if gen.random() < visit_prob:
                dow = d % 7
                if n_visits == 0:
                    first = dow
                n_visits += 1
                y = rate + day_effects[dow] + lift + gen.standard_normal()
                if y > 0.0:
                    total += np.int64(y)
        queries[i] = total
        first_visit_dow[i] = first
        visit_days[i] = n_visits


@njit(cache=True, nogil=True, error_model="numpy")
def _reference_floor_kernel(gen, n_users, pool_size, sessions_low, sessions_width):
    """RNG floor of the reference scenario: only the draws, no arithmetic on them.

    Draws exactly what :func:`_reference_kernel` draws (pool index, sessions, one
    uniform per session, pre-period likewise) and returns a checksum so nothing is
    optimised away. Used by the benchmark only.
    """
    s = 0.0
    for _ in range(n_users):
        j = _uniform_index(gen, pool_size)
        low = sessions_low[j]
        width = sessions_width[j]
        m = low + _uniform_index(gen, width)
        for _ in range(m):
            s += gen.random()
        pm = low + _uniform_index(gen, width)
        for _ in range(pm):
            s += gen.random()
    return s
