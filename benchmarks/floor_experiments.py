"""What beats the RNG floor of the docs/theory.md §2 reference scenario (issue 7, "then look for
what beats the floor itself").

The suite's kernel (``sim._ab_kernels._reference_kernel``) draws, per user, a pool
index, a session count, one uniform per session (a Bernoulli click), then the same
for the pre-period: about 3 + 2 E[M] ~ 18 uniforms per user, each one an indirect
call into NumPy's PCG64 ``next_double``. Its "RNG floor" kernel makes exactly
those draws and nothing else. Both are therefore bounded by the *number of draws*
and the *cost of one draw*. This script measures full replacements of the kernel
(same inputs, same (2, 15) moment output) that attack either:

============================  ======================================================
variant                       what it changes
============================  ======================================================
``suite``                     the suite's kernel (Bernoulli loop, PCG64), reference
``floor``                     the suite's RNG floor (draws only), reference
``numba_binomial``            clicks = ``gen.binomial(M, p)`` (numba's port of
                              NumPy's sampler: inversion for small ``n p``, BTPE
                              above), PCG64
``inversion``                 clicks by inversion of the Binomial(M, p) CDF from one
                              uniform (walk from 0 in the rarer outcome), PCG64
``joint``                     one uniform per period for (M, clicks): M from
                              ``floor(U w)``, clicks by inversion from the remainder
                              ``U w - floor(U w)`` (uniform given M); 3 draws per
                              user, PCG64
``pcg64_inline``              the suite's algorithm and draws on an inlined copy of
                              NumPy's PCG64 (128-bit LCG in 64-bit limbs, XSL-RR
                              output): the same stream, bit-identical moments, no
                              indirect call per draw
``xoshiro_bernoulli``         the suite's algorithm on an inlined xoshiro256++
                              generator (no call per draw)
``xoshiro_floor``             the floor's draws on xoshiro256++
``xoshiro_joint``             ``joint`` on xoshiro256++
``BAD_joint_reused_u``        negative control: ``joint`` that reuses U itself
                              (not the remainder) for the clicks: M and clicks become
                              dependent; the distribution checks must reject it
============================  ======================================================

Each variant is also checked for *exactness in distribution* against the scenario's
exact law (computed from the pool), on ``--check-reps`` replicates:

* moments: for each arm and each of the 14 per-user moments (E V, E M, E V^2, ...,
  E V pre_V, ...), the mean over replicates of moment / n is compared with its exact
  value; pass if every |difference| <= z * mcse with z = 4 (``validation.mc.Z_FAMILY``)
  and mcse = s.d. over replicates / sqrt(R);
* joint law of (M, clicks) per arm and period: every cell's count is compared with
  N P(m, v) (exact mixture over the pool of Uniform sessions x Binomial clicks), pass
  if every |count - N P| <= z * sqrt(N P (1 - P)) with a Bonferroni z for a 1%
  family-wise rate over the cells; the chi-square p-value is printed too.

Timings: median of ``--runs`` runs of ``--reps`` replicates x 10,578 users at one
thread (each replicate seeded from its own child ``SeedSequence``, as the suite does),
measured side by side in one process. Usage::

    .venv/bin/python benchmarks/floor_experiments.py [--runs 5] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim import ReferenceCtr, as_seed_sequence, child_sequences  # noqa: E402
from sim._ab_kernels import (  # noqa: E402
    N_MOMENTS,
    _accumulate,
    _reference_floor_kernel,
    _reference_kernel,
    _uniform_index,
)
from validation.mc import Z_FAMILY  # noqa: E402

N_USERS = 10_578
MIN_EXPECTED = 20.0  # smallest expected count of a cell tested on its own
_TWO53 = 1.0 / 9007199254740992.0  # 2**-53
_U = np.uint64


# --------------------------------------------------------------------------- samplers
@njit(inline="always")
def _rotl(x, k):
    return (x << _U(k)) | (x >> _U(64 - k))


@njit(inline="always")
def _xo_next(s0, s1, s2, s3):
    """xoshiro256++ (Blackman & Vigna 2021): (53-bit uniform in [0, 1), new state)."""
    result = _rotl(s0 + s3, 23) + s0
    t = s1 << _U(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return float(result >> _U(11)) * _TWO53, s0, s1, s2, s3


_M32 = np.uint64(0xFFFFFFFF)
_PCG_MULT_HI = np.uint64(2549297995355413924)  # NumPy's PCG64 128-bit multiplier
_PCG_MULT_LO = np.uint64(4865540595714422341)


@njit(inline="always")
def _mulhi64(a, b):
    """High 64 bits of the 128-bit product of two uint64 (32-bit limbs)."""
    a_lo, a_hi = a & _M32, a >> _U(32)
    b_lo, b_hi = b & _M32, b >> _U(32)
    p0, p1, p2, p3 = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi
    mid = (p0 >> _U(32)) + (p1 & _M32) + (p2 & _M32)
    return p3 + (p1 >> _U(32)) + (p2 >> _U(32)) + (mid >> _U(32))


@njit(inline="always")
def _pcg_next(sh, sl, ih, il):
    """NumPy's PCG64 (XSL-RR 128/64), inlined: (53-bit double, new state hi, lo).

    Same stream as ``Generator(PCG64(seed)).random()``: a 128-bit LCG step
    state = state * mult + inc, output rotr64(hi ^ lo, hi >> 58), double = out >> 11
    times 2**-53.
    """
    lo = sl * _PCG_MULT_LO
    hi = _mulhi64(sl, _PCG_MULT_LO) + sh * _PCG_MULT_LO + sl * _PCG_MULT_HI
    nl = lo + il
    nh = hi + ih + (_U(1) if nl < lo else _U(0))
    x = nh ^ nl
    rot = nh >> _U(58)
    out = (x >> rot) | (x << ((_U(64) - rot) & _U(63)))
    return float(out >> _U(11)) * _TWO53, nh, nl


@njit(inline="always")
def _binom_inv(u, n, p):
    """Binomial(n, p) by inversion of the CDF at u, walking from 0 in min(p, 1 - p).

    Exact up to floating-point rounding of the CDF (relative ~1e-16); the few ulps a
    rounded CDF may leave below 1 go to the last outcome.
    """
    flip = p > 0.5
    r = 1.0 - p if flip else p
    if r <= 0.0:
        k = 0
    else:
        q = 1.0 - r
        pk = q**n
        cdf = pk
        odds = r / q
        k = 0
        while u >= cdf and k < n:
            pk *= (n - k) / (k + 1) * odds
            k += 1
            cdf += pk
    return n - k if flip else k


@njit(inline="always")
def _hist_add(hist, with_hist, arm, period, m, v):
    if with_hist:
        hist[arm, period, m, v] += 1


# --------------------------------------------------------------------------- kernels
@njit(cache=True, nogil=True, error_model="numpy")
def _suite_kernel(gen, n_c, n_t, ctr_c, ctr_t, low, width, with_hist, hist, moments):
    """The suite's ``_reference_kernel`` (called as is) plus the optional histogram."""
    if with_hist:  # the histogram needs per-user values: run the store mode
        n = n_c + n_t
        v = np.empty(n, np.int64)
        m = np.empty(n, np.int64)
        pv = np.empty(n, np.int64)
        pm = np.empty(n, np.int64)
        _reference_kernel(gen, n_c, n_t, ctr_c, ctr_t, low, width, True, m, v, pm, pv, moments)
        for i in range(n):
            arm = 0 if i < n_c else 1
            hist[arm, 0, m[i], v[i]] += 1
            hist[arm, 1, pm[i], pv[i]] += 1
    else:
        e = np.empty(0, np.int64)
        _reference_kernel(gen, n_c, n_t, ctr_c, ctr_t, low, width, False, e, e, e, e, moments)


@njit(cache=True, nogil=True, error_model="numpy")
def _numba_binomial_kernel(gen, n_c, n_t, ctr_c, ctr_t, low, width, with_hist, hist, moments):
    """Clicks drawn by numba's ``Generator.binomial`` (one call per period)."""
    pool = ctr_c.shape[0]
    acc = np.zeros((2, N_MOMENTS))
    for i in range(n_c + n_t):
        arm = 0 if i < n_c else 1
        j = _uniform_index(gen, pool)
        lo = low[j]
        w = width[j]
        p = ctr_c[j] if arm == 0 else ctr_t[j]
        m = lo + _uniform_index(gen, w)
        v = np.int64(gen.binomial(m, p))
        pm = lo + _uniform_index(gen, w)
        pv = np.int64(gen.binomial(pm, ctr_c[j]))
        _hist_add(hist, with_hist, arm, 0, m, v)
        _hist_add(hist, with_hist, arm, 1, pm, pv)
        _accumulate(acc, arm, v, m, pv, pm)
    moments[:, :] = acc


@njit(cache=True, nogil=True, error_model="numpy")
def _inversion_kernel(gen, n_c, n_t, ctr_c, ctr_t, low, width, with_hist, hist, moments):
    """Clicks by CDF inversion from one uniform per period (PCG64 via numba)."""
    pool = ctr_c.shape[0]
    acc = np.zeros((2, N_MOMENTS))
    for i in range(n_c + n_t):
        arm = 0 if i < n_c else 1
        j = _uniform_index(gen, pool)
        lo = low[j]
        w = width[j]
        p = ctr_c[j] if arm == 0 else ctr_t[j]
        m = lo + _uniform_index(gen, w)
        v = _binom_inv(gen.random(), m, p)
        pm = lo + _uniform_index(gen, w)
        pv = _binom_inv(gen.random(), pm, ctr_c[j])
        _hist_add(hist, with_hist, arm, 0, m, v)
        _hist_add(hist, with_hist, arm, 1, pm, pv)
        _accumulate(acc, arm, v, m, pv, pm)
    moments[:, :] = acc


@njit(inline="always")
def _joint(u, lo, w, p, reuse):
    """(sessions, clicks) from one uniform: M = lo + floor(u w), clicks by inversion
    at the remainder u w - floor(u w) (uniform on [0, 1) given M, resolution
    2**-53 w); ``reuse`` is the negative control that inverts at u itself."""
    x = u * w
    k = np.int64(x)
    if k >= w:
        k = w - 1
    m = lo + k
    v = _binom_inv(u if reuse else x - k, m, p)
    return m, v


@njit(cache=True, nogil=True, error_model="numpy")
def _joint_kernel(gen, n_c, n_t, ctr_c, ctr_t, low, width, with_hist, hist, moments, reuse):
    """Three uniforms per user: pool index, (M, V) and (pre M, pre V) (PCG64)."""
    pool = ctr_c.shape[0]
    acc = np.zeros((2, N_MOMENTS))
    for i in range(n_c + n_t):
        arm = 0 if i < n_c else 1
        j = _uniform_index(gen, pool)
        lo = low[j]
        w = width[j]
        p = ctr_c[j] if arm == 0 else ctr_t[j]
        m, v = _joint(gen.random(), lo, w, p, reuse)
        pm, pv = _joint(gen.random(), lo, w, ctr_c[j], reuse)
        _hist_add(hist, with_hist, arm, 0, m, v)
        _hist_add(hist, with_hist, arm, 1, pm, pv)
        _accumulate(acc, arm, v, m, pv, pm)
    moments[:, :] = acc


@njit(cache=True, nogil=True, error_model="numpy")
def _xo_bernoulli_kernel(state, n_c, n_t, ctr_c, ctr_t, low, width, with_hist, hist, moments):
    """The suite's algorithm (Bernoulli loop, 1 + 1 + M + 1 + pre M draws) on xoshiro."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    pool = ctr_c.shape[0]
    acc = np.zeros((2, N_MOMENTS))
    for i in range(n_c + n_t):
        arm = 0 if i < n_c else 1
        u, s0, s1, s2, s3 = _xo_next(s0, s1, s2, s3)
        j = min(np.int64(u * pool), pool - 1)
        lo = low[j]
        w = width[j]
        p = ctr_c[j] if arm == 0 else ctr_t[j]
        u, s0, s1, s2, s3 = _xo_next(s0, s1, s2, s3)
        m = lo + min(np.int64(u * w), w - 1)
        v = np.int64(0)
        for _ in range(m):
            u, s0, s1, s2, s3 = _xo_next(s0, s1, s2, s3)
            v += np.int64(u < p)
        u, s0, s1, s2, s3 = _xo_next(s0, s1, s2, s3)
        pm = lo + min(np.int64(u * w), w - 1)
        pc = ctr_c[j]
        pv = np.int64(0)
        for _ in range(pm):
            u, s0, s1, s2, s3 = _xo_next(s0, s1, s2, s3)
            pv += np.int64(u < pc)
        _hist_add(hist, with_hist, arm, 0, m, v)
        _hist_add(hist, with_hist, arm, 1, pm, pv)
        _accumulate(acc, arm, v, m, pv, pm)
    moments[:, :] = acc


@njit(cache=True, nogil=True, error_model="numpy")
def _pcg_inline_kernel(state, n_c, n_t, ctr_c, ctr_t, low, width, with_hist, hist, moments):
    """The suite's algorithm and draws on an inlined copy of NumPy's PCG64: the same
    random stream as the suite, so the same moments bit for bit."""
    sh, sl, ih, il = state[0], state[1], state[2], state[3]
    pool = ctr_c.shape[0]
    acc = np.zeros((2, N_MOMENTS))
    for i in range(n_c + n_t):
        arm = 0 if i < n_c else 1
        u, sh, sl = _pcg_next(sh, sl, ih, il)
        j = min(np.int64(u * pool), pool - 1)
        lo = low[j]
        w = width[j]
        p = ctr_c[j] if arm == 0 else ctr_t[j]
        u, sh, sl = _pcg_next(sh, sl, ih, il)
        m = lo + min(np.int64(u * w), w - 1)
        v = np.int64(0)
        for _ in range(m):
            u, sh, sl = _pcg_next(sh, sl, ih, il)
            v += np.int64(u < p)
        u, sh, sl = _pcg_next(sh, sl, ih, il)
        pm = lo + min(np.int64(u * w), w - 1)
        pc = ctr_c[j]
        pv = np.int64(0)
        for _ in range(pm):
            u, sh, sl = _pcg_next(sh, sl, ih, il)
            pv += np.int64(u < pc)
        _hist_add(hist, with_hist, arm, 0, m, v)
        _hist_add(hist, with_hist, arm, 1, pm, pv)
        _accumulate(acc, arm, v, m, pv, pm)
    moments[:, :] = acc


@njit(cache=True, nogil=True, error_model="numpy")
def _xo_floor_kernel(state, n_users, pool, low, width):
    """The RNG floor's draws (same count as the suite) on xoshiro256++; a checksum."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    acc = 0.0
    for _ in range(n_users):
        u, s0, s1, s2, s3 = _xo_next(s0, s1, s2, s3)
        j = min(np.int64(u * pool), pool - 1)
        lo = low[j]
        w = width[j]
        u, s0, s1, s2, s3 = _xo_next(s0, s1, s2, s3)
        m = lo + min(np.int64(u * w), w - 1)
        for _ in range(m):
            u, s0, s1, s2, s3 = _xo_next(s0, s1, s2, s3)
            acc += u
        u, s0, s1, s2, s3 = _xo_next(s0, s1, s2, s3)
        pm = lo + min(np.int64(u * w), w - 1)
        for _ in range(pm):
            u, s0, s1, s2, s3 = _xo_next(s0, s1, s2, s3)
            acc += u
    return acc


@njit(cache=True, nogil=True, error_model="numpy")
def _xo_joint_kernel(state, n_c, n_t, ctr_c, ctr_t, low, width, with_hist, hist, moments):
    """``joint`` (three uniforms per user) on xoshiro256++."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    pool = ctr_c.shape[0]
    acc = np.zeros((2, N_MOMENTS))
    for i in range(n_c + n_t):
        arm = 0 if i < n_c else 1
        u, s0, s1, s2, s3 = _xo_next(s0, s1, s2, s3)
        j = min(np.int64(u * pool), pool - 1)
        lo = low[j]
        w = width[j]
        p = ctr_c[j] if arm == 0 else ctr_t[j]
        u, s0, s1, s2, s3 = _xo_next(s0, s1, s2, s3)
        m, v = _joint(u, lo, w, p, False)
        u, s0, s1, s2, s3 = _xo_next(s0, s1, s2, s3)
        pm, pv = _joint(u, lo, w, ctr_c[j], False)
        _hist_add(hist, with_hist, arm, 0, m, v)
        _hist_add(hist, with_hist, arm, 1, pm, pv)
        _accumulate(acc, arm, v, m, pv, pm)
    moments[:, :] = acc


# --------------------------------------------------------------------------- cost components
@njit(cache=True, nogil=True, error_model="numpy")
def _pcg_draws(gen, n):
    s = 0.0
    for _ in range(n):
        s += gen.random()
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def _xo_draws(state, n):
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    s = 0.0
    for _ in range(n):
        u, s0, s1, s2, s3 = _xo_next(s0, s1, s2, s3)
        s += u
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def _pcg_inline_draws(state, n):
    sh, sl, ih, il = state[0], state[1], state[2], state[3]
    s = 0.0
    for _ in range(n):
        u, sh, sl = _pcg_next(sh, sl, ih, il)
        s += u
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def _inversions(us, ns, p):
    s = 0
    for i in range(us.size):
        s += _binom_inv(us[i], ns[i], p)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def _bernoulli_sums(us, ns, p):
    s = 0
    k = 0
    for i in range(ns.size):
        for _ in range(ns[i]):
            s += np.int64(us[k] < p)
            k += 1
    return s


def cost_components(n=2_000_000, runs=5):
    """CPU ns per PCG64 draw (numba), per xoshiro256++ draw, per Binomial(M, 0.65)
    inversion and per Bernoulli-loop binomial from pre-drawn uniforms (M ~ 4..11)."""
    rng = np.random.default_rng(0)
    ns = rng.integers(4, 12, n)
    us_inv = rng.random(n)
    us_bern = rng.random(int(ns.sum()))
    gen = np.random.Generator(np.random.PCG64(1))
    state = _xo_state(np.random.SeedSequence(1))
    jobs = {
        "PCG64 draw via numba Generator": (lambda: _pcg_draws(gen, n), n),
        "PCG64 draw, inlined copy (same stream)": (
            lambda: _pcg_inline_draws(_pcg_state(np.random.SeedSequence(1)), n),
            n,
        ),
        "xoshiro256++ draw, inlined": (lambda: _xo_draws(state, n), n),
        "Binomial(M, 0.65) by inversion (uniform given)": (
            lambda: _inversions(us_inv, ns, 0.65),
            n,
        ),
        "Binomial(M, 0.65) as a Bernoulli loop (uniforms given)": (
            lambda: _bernoulli_sums(us_bern, ns, 0.65),
            n,
        ),
    }
    out = {}
    for name, (fn, count) in jobs.items():
        fn()
        ts = []
        for _ in range(runs):
            c0 = time.process_time()
            fn()
            ts.append(time.process_time() - c0)
        out[name] = statistics.median(ts) / count * 1e9
    return out


# --------------------------------------------------------------------------- harness
def _pcg(ss):
    return np.random.Generator(np.random.PCG64(ss))


def _xo_state(ss):
    """Four uint64 words from the child SeedSequence (xoshiro needs a nonzero state)."""
    st = ss.generate_state(4, np.uint64)
    if not st.any():  # probability 2**-256
        st[0] = 1
    return st


def _pcg_state(ss):
    """(state hi, state lo, inc hi, inc lo) of ``PCG64(ss)`` as uint64[4]."""
    st = np.random.PCG64(ss).state["state"]
    mask = (1 << 64) - 1
    words = [st["state"] >> 64, st["state"] & mask, st["inc"] >> 64, st["inc"] & mask]
    return np.array(words, dtype=np.uint64)


def make_variants(pool_arrays):
    """Return {name: run(child_ss, n_c, n_t, with_hist, hist, moments)} for every variant."""
    ctr_c, ctr_t, low, width = pool_arrays
    pool = ctr_c.size

    def floor_run(ss, n_c, n_t, with_hist, hist, out):
        out[0, 0] = _reference_floor_kernel(_pcg(ss), n_c + n_t, pool, low, width)

    def xo_floor_run(ss, n_c, n_t, with_hist, hist, out):
        out[0, 0] = _xo_floor_kernel(_xo_state(ss), n_c + n_t, pool, low, width)

    def pcg(kernel, *extra):
        def run(ss, n_c, n_t, with_hist, hist, out):
            kernel(_pcg(ss), n_c, n_t, ctr_c, ctr_t, low, width, with_hist, hist, out, *extra)

        return run

    def xo(kernel, seeder=_xo_state):
        def run(ss, n_c, n_t, with_hist, hist, out):
            kernel(seeder(ss), n_c, n_t, ctr_c, ctr_t, low, width, with_hist, hist, out)

        return run

    return {
        "suite": pcg(_suite_kernel),
        "floor": floor_run,
        "numba_binomial": pcg(_numba_binomial_kernel),
        "inversion": pcg(_inversion_kernel),
        "joint": pcg(_joint_kernel, False),
        "pcg64_inline": xo(_pcg_inline_kernel, _pcg_state),
        "xoshiro_bernoulli": xo(_xo_bernoulli_kernel),
        "xoshiro_floor": xo_floor_run,
        "xoshiro_joint": xo(_xo_joint_kernel),
        "BAD_joint_reused_u": pcg(_joint_kernel, True),
    }


DRAWS = {  # uniforms per user (E M = mean sessions per period)
    "suite": "3 + 2 E[M]",
    "floor": "3 + 2 E[M]",
    "numba_binomial": "3 + 2 x (sampler's draws)",
    "inversion": "5",
    "joint": "3",
    "pcg64_inline": "3 + 2 E[M]",
    "xoshiro_bernoulli": "3 + 2 E[M]",
    "xoshiro_floor": "3 + 2 E[M]",
    "xoshiro_joint": "3",
    "BAD_joint_reused_u": "3",
}


def _run_many(run, children, n_c, n_t, hist=None):
    out = np.zeros((len(children), 2, N_MOMENTS))
    with_hist = hist is not None
    h = hist if with_hist else np.zeros((1, 1, 1, 1), np.int64)
    for r, ss in enumerate(children):
        run(ss, n_c, n_t, with_hist, h, out[r])
    return out


# --------------------------------------------------------------------------- exact law
def exact_user_moments(pool_arrays):
    """Exact per-user expectations of the 14 non-trivial moments, shape (2, 14).

    Given pool user j (drawn uniformly): M uniform on low_j + {0..w_j - 1}, V | M ~
    Binomial(M, p_arm,j), and the pre-period pair independent with p = p_control,j.
    """
    ctr_c, ctr_t, low, width = pool_arrays
    wmax = int(width.max())
    k = np.arange(wmax)
    mask = k[None, :] < width[:, None]
    vals = (low[:, None] + k[None, :]).astype(float)
    s1 = (vals * mask).sum(1) / width  # E[M | j]
    s2 = (vals**2 * mask).sum(1) / width  # E[M^2 | j]
    out = np.empty((2, N_MOMENTS - 1))
    pc = ctr_c
    for arm, p in enumerate((ctr_c, ctr_t)):
        ev, evv, evm = p * s1, p * (1 - p) * s1 + p * p * s2, p * s2
        epv, epvv, epvm = pc * s1, pc * (1 - pc) * s1 + pc * pc * s2, pc * s2
        cols = [ev, s1, evv, s2, evm, epv, s1, epvv, s2, epvm,
                ev * epv, ev * s1, s1 * epv, s1 * s1]  # fmt: skip
        out[arm] = [c.mean() for c in cols]
    return out


def exact_joint_pmf(pool_arrays, mmax):
    """Exact P(M = m, V = v) per arm and period, shape (2, 2, mmax + 1, mmax + 1)."""
    ctr_c, ctr_t, low, width = pool_arrays
    pmf = np.zeros((2, 2, mmax + 1, mmax + 1))
    v = np.arange(mmax + 1)
    n_pool = ctr_c.size
    for arm, p_arm in enumerate((ctr_c, ctr_t)):
        for period, p in enumerate((p_arm, ctr_c)):
            for off in range(int(width.max())):
                sel = off < width
                m = low[sel] + off
                probs = stats.binom.pmf(v[None, :], m[:, None], p[sel][:, None])
                wts = 1.0 / width[sel] / n_pool
                for mv in np.unique(m):
                    rows = m == mv
                    pmf[arm, period, mv] += (wts[rows, None] * probs[rows]).sum(0)
    return pmf


def distribution_check(run, pool_arrays, children, n_c, n_t, z=Z_FAMILY, fw_rate=0.01):
    """Moment and joint-law checks of one variant (see the module docstring)."""
    mmax = int((pool_arrays[2] + pool_arrays[3] - 1).max())
    hist = np.zeros((2, 2, mmax + 1, mmax + 1), np.int64)
    out = _run_many(run, children, n_c, n_t, hist)
    per_user = out[:, :, 1:] / out[:, :, :1]  # (R, 2, 14)
    exact = exact_user_moments(pool_arrays)
    mcse = per_user.std(0, ddof=1) / math.sqrt(len(children))
    z_mom = np.abs(per_user.mean(0) - exact) / mcse
    pmf = exact_joint_pmf(pool_arrays, mmax)
    n_arm = np.array([n_c, n_t]) * len(children)
    expected = pmf * n_arm[:, None, None, None]
    # cells with >= MIN_EXPECTED expected counts are tested one by one; the rest of
    # each (arm, period) table is pooled into one cell (the normal approximation of a
    # cell count needs a large expected count)
    obs_cells, exp_cells, n_tot = [], [], []
    impossible = int(hist[expected == 0].sum())
    for a in range(2):
        for per in range(2):
            e, o, big = expected[a, per], hist[a, per], expected[a, per] >= MIN_EXPECTED
            obs_cells += [*o[big].tolist(), int(o[~big].sum())]
            exp_cells += [*e[big].tolist(), float(e[~big].sum())]
            n_tot += [n_arm[a]] * (int(big.sum()) + 1)
    obs = np.array(obs_cells, float)
    ex = np.array(exp_cells)
    n_tot = np.array(n_tot, float)
    z_cells = np.abs(obs - ex) / np.sqrt(ex * (1 - ex / n_tot))
    n_cells = obs.size
    z_cell_limit = stats.norm.isf(fw_rate / (2 * n_cells))
    chi2 = float((((obs - ex) ** 2) / ex).sum())
    df = n_cells - 4  # each (arm, period) table sums to its N
    return {
        "moment_max_z": float(z_mom.max()),
        "moment_pass": bool((z_mom <= z).all()),
        "cell_max_z": float(z_cells.max()),
        "cell_limit": float(z_cell_limit),
        "cells": n_cells,
        "cell_pass": bool((z_cells <= z_cell_limit).all() and impossible == 0),
        "impossible": impossible,
        "chi2_pvalue": float(stats.chi2.sf(chi2, df)),
        "z": z,
    }


def main(argv=None):
    """Command-line entry point; returns (timings, checks)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--reps", type=int, default=1_000, help="replicates per timing")
    ap.add_argument("--check-reps", type=int, default=200, help="replicates per check")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args(argv)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))

    scenario = ReferenceCtr()
    pool_arrays = scenario.pool_arrays()
    n_c, n_t = N_USERS - N_USERS // 2, N_USERS // 2
    variants = make_variants(pool_arrays)
    children = child_sequences(as_seed_sequence(0), args.reps)
    check_children = child_sequences(as_seed_sequence(1), args.check_reps)
    load0 = os.getloadavg()[0]

    for run in variants.values():  # compile / load from cache
        _run_many(run, children[:2], n_c, n_t)
        _run_many(run, children[:1], n_c, n_t, np.zeros((2, 2, 40, 40), np.int64))

    times = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    for _ in range(args.runs):  # interleaved, so load swings hit every variant alike
        for name, run in variants.items():
            c0, t0 = time.process_time(), time.perf_counter()
            _run_many(run, children, n_c, n_t)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    wall = {k: statistics.median(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in cpu.items()}

    checks = {
        name: distribution_check(run, pool_arrays, check_children, n_c, n_t)
        for name, run in variants.items()
        if "floor" not in name
    }
    costs = cost_components()
    same = _run_many(variants["suite"], check_children[:20], n_c, n_t)
    identical = np.array_equal(
        same, _run_many(variants["pcg64_inline"], check_children[:20], n_c, n_t)
    )
    mean_m = float(exact_user_moments(pool_arrays)[0, 1])
    lines = [
        f"Floor experiments: docs/theory.md §2 reference scenario, {args.reps:,} replicates x "
        f"{N_USERS:,} users, median of {args.runs} interleaved runs, 1 thread; "
        f"load average {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end (shared "
        f"2-core machine). E[M] = {mean_m:.3f} sessions per period, so the suite draws "
        f"{3 + 2 * mean_m:.1f} uniforms per user.",
        "",
        f"Distribution checks on {args.check_reps} replicates ({args.check_reps * N_USERS:,} "
        f"users): moments |z| <= {Z_FAMILY:g} (z * mcse, 28 moments), joint (M, clicks) "
        "cells |z| <= Bonferroni limit (1% family-wise), chi-square p for information.",
        "",
        "Ratios use CPU time (one thread, so CPU time is the kernel's own time; wall time "
        "on a shared machine adds other jobs' time slices).",
        "",
        "| variant | uniforms / user | wall s / 1,000 reps | CPU s / 1,000 reps "
        "| speed-up vs suite (CPU) | time / floor (CPU) | moments max z "
        "| cells max z (limit) | chi2 p | exact in distribution |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    scale = 1_000 / args.reps
    for name in variants:
        t = med[name] * scale
        c = checks.get(name)
        if c is None:
            check_cols = "n/a (draws only) | | | n/a"
        else:
            ok = c["moment_pass"] and c["cell_pass"]
            check_cols = (
                f"{c['moment_max_z']:.2f} | {c['cell_max_z']:.2f} ({c['cell_limit']:.2f}) "
                f"| {c['chi2_pvalue']:.3g} | {'yes' if ok else '**NO (rejected)**'}"
            )
        lines.append(
            f"| `{name}` | {DRAWS[name]} | {wall[name] * scale:.3f} | {t:.3f} "
            f"| {med['suite'] / med[name]:.2f}x | {med[name] / med['floor']:.2f} | {check_cols} |"
        )
    lines += [
        "",
        f"`pcg64_inline` moments bit-identical to the suite's on 20 replicates: "
        f"{'yes' if identical else '**NO**'} (same generator stream, same algorithm).",
        "",
        "Cost components (CPU ns per call, median of 5 runs of 2 x 10^6 calls, M uniform "
        "on 4..11):",
        "",
        "| operation | ns |",
        "| --- | ---: |",
        *(f"| {k} | {v:.1f} |" for k, v in costs.items()),
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return {"cpu": med, "wall": wall, "costs": costs}, checks


if __name__ == "__main__":
    main()
