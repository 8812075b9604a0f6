"""Exact checks of the candidate builders against per-row reference loops.

Tiny catalogs (5-20 items) and batches (2-6 rows) with duplicates and accidental hits
forced; every builder x correction x accidental-hits option is compared, row by row,
with a plain Python loop that builds each row's negatives from the definition (other
rows' positives and/or the shared random items; hits dropped if asked; one copy per
item for the inclusion probability). Inclusion probabilities and expected counts are
compared with brute-force simulation of the shipped samplers, and the mixed-negatives
Q with exact enumeration of every batch.
"""

import itertools
import math

import numpy as np
import pytest
import torch

from recsys import (
    expected_count,
    in_batch_candidates,
    inclusion_probability,
    mixed_candidates,
    sample_uniform_negatives,
    sample_unigram_negatives,
    sampled_softmax_candidates,
    sampled_softmax_loss,
)

CORRECTIONS = ("inclusion_probability", "expected_count", "none")
TAU = 0.5


def _reference_row_loss(score_pos, negatives, score, q_of, *, hits, dedupe, own):
    """-s_pos + log(exp s_pos + sum_neg exp(s_neg - log Q_neg)) over row's negatives."""
    negs = [y for y in negatives if hits or y != own]
    if dedupe:
        negs = list(dict.fromkeys(negs))  # one copy per item
    terms = [score_pos] + [score[y] - math.log(q_of(y)) for y in negs]
    return -score_pos + float(torch.logsumexp(torch.tensor(terms, dtype=torch.float64), 0))


def _case(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 21))
    b = int(rng.integers(2, 7))
    pool = rng.choice(n, size=max(1, b // 2), replace=False)  # few distinct: duplicates
    ids = rng.choice(pool, size=b)
    ids[1] = ids[0]  # at least one duplicate pair of rows
    b_rand = int(rng.integers(1, 5))
    rand = rng.integers(0, n, size=b_rand)
    rand[0] = ids[-1]  # an accidental hit among the random items
    p = rng.dirichlet(np.ones(n))
    p = np.maximum(p, 1e-3)
    p /= p.sum()
    table = torch.tensor(rng.standard_normal((n, 3)))
    user = torch.tensor(rng.standard_normal((b, 3)))
    user[1] = user[0]  # the duplicate rows are identical examples
    return n, ids, rand, p, table, user


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("correction", CORRECTIONS)
@pytest.mark.parametrize("hits", [True, False])
def test_in_batch_matches_per_row_loop(seed, correction, hits):
    n, ids, _, p, table, user = _case(seed)
    b = len(ids)
    t_ids = torch.tensor(ids)
    probs = None if correction == "none" else torch.tensor(p[ids])
    cs = in_batch_candidates(
        t_ids, table[t_ids], probs, correction=correction, remove_accidental_hits=not hits
    )
    got = sampled_softmax_loss(
        user, cs.candidates, cs.labels, cs.log_q, mask=cs.mask, temperature=TAU,
        correction=cs.correction, reduction="none",
    )  # fmt: skip

    def q_of(y):
        if correction == "inclusion_probability":
            return 1 - (1 - p[y]) ** (b - 1)
        return (b - 1) * p[y] if correction == "expected_count" else 1.0

    for i in range(b):
        score = (table @ user[i] / TAU).tolist()
        others = [int(ids[j]) for j in range(b) if j != i]
        want = _reference_row_loss(
            score[ids[i]], others, score, q_of, hits=hits,
            dedupe=correction == "inclusion_probability", own=int(ids[i]),
        )  # fmt: skip
        assert float(got[i]) == pytest.approx(want, rel=1e-9, abs=1e-9), (i, ids.tolist())


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("correction", CORRECTIONS)
@pytest.mark.parametrize("hits", [True, False])
def test_mixed_matches_per_row_loop(seed, correction, hits):
    n, ids, rand, p, table, user = _case(seed)
    b, b_rand = len(ids), len(rand)
    t_ids, t_rand = torch.tensor(ids), torch.tensor(rand)
    none = correction == "none"
    cs = mixed_candidates(
        t_ids, table[t_ids], None if none else torch.tensor(p[ids]),
        t_rand, table[t_rand], None if none else torch.tensor(p[rand]),
        catalog_size=n, correction=correction, remove_accidental_hits=not hits,
    )  # fmt: skip
    got = sampled_softmax_loss(
        user, cs.candidates, cs.labels, cs.log_q, mask=cs.mask, temperature=TAU,
        correction=cs.correction, reduction="none",
    )  # fmt: skip
    gamma = 1.0 / n

    def q_of(y):
        if correction == "inclusion_probability":
            return 1 - (1 - p[y]) ** (b - 1) * (1 - gamma) ** b_rand
        return (b - 1) * p[y] + b_rand * gamma if correction == "expected_count" else 1.0

    for i in range(b):
        score = (table @ user[i] / TAU).tolist()
        negatives = [int(ids[j]) for j in range(b) if j != i] + [int(y) for y in rand]
        want = _reference_row_loss(
            score[ids[i]], negatives, score, q_of, hits=hits,
            dedupe=correction == "inclusion_probability", own=int(ids[i]),
        )  # fmt: skip
        assert float(got[i]) == pytest.approx(want, rel=1e-9, abs=1e-9), (i, ids.tolist())


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("correction", CORRECTIONS)
@pytest.mark.parametrize("hits", [True, False])
@pytest.mark.parametrize("uniform", [True, False])
def test_sampled_matches_per_row_loop(seed, correction, hits, uniform):
    n, ids, rand, p, table, user = _case(seed)
    b, m = len(ids), len(rand)
    t_ids, t_neg = torch.tensor(ids), torch.tensor(rand)
    q = np.full(n, 1.0 / n) if uniform else p
    cs = sampled_softmax_candidates(
        t_ids, table[t_ids], t_neg, table[t_neg],
        sampler_probs=None if uniform else torch.tensor(p), catalog_size=n,
        correction=correction, remove_accidental_hits=not hits,
    )  # fmt: skip
    got = sampled_softmax_loss(
        user, cs.candidates, cs.labels, cs.log_q, mask=cs.mask, temperature=TAU,
        correction=cs.correction, reduction="none",
    )  # fmt: skip

    def q_of(y):
        if correction == "inclusion_probability":
            return 1 - (1 - q[y]) ** m
        return m * q[y] if correction == "expected_count" else 1.0

    for i in range(b):
        score = (table @ user[i] / TAU).tolist()
        want = _reference_row_loss(
            score[ids[i]], [int(y) for y in rand], score, q_of, hits=hits,
            dedupe=correction == "inclusion_probability", own=int(ids[i]),
        )  # fmt: skip
        assert float(got[i]) == pytest.approx(want, rel=1e-9, abs=1e-9), (i, ids.tolist())


@pytest.mark.parametrize("correction", CORRECTIONS)
@pytest.mark.parametrize("hits", [True, False])
@pytest.mark.parametrize("n_random", [0, 2])
def test_identical_rows_get_the_same_loss(correction, hits, n_random):
    """The issue's example, ids [4, 4, 7]: rows 0 and 1 are the same example."""
    ids = torch.tensor([4, 4, 7])
    table = torch.randn(10, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    user = table[[1, 1, 2]]
    probs = None if correction == "none" else torch.tensor([0.2, 0.2, 0.1], dtype=torch.float64)
    if n_random:
        rand = torch.tensor([4, 9])
        cs = mixed_candidates(
            ids, table[ids], probs, rand, table[rand],
            None if probs is None else torch.tensor([0.2, 0.05], dtype=torch.float64),
            catalog_size=10, correction=correction, remove_accidental_hits=not hits,
        )  # fmt: skip
    else:
        cs = in_batch_candidates(
            ids, table[ids], probs, correction=correction, remove_accidental_hits=not hits
        )
    loss = cs.loss(user, reduction="none")
    assert float(loss[0]) == pytest.approx(float(loss[1]), rel=1e-12)


# ----------------------------------------------------------- Q against the samplers


def _simulate_row_negatives(p, b, n_random, n, exclude_batch, n_rep, seed):
    """Brute force: per-item inclusion share and mean count among row 0's negatives."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    p_t = torch.tensor(p)
    inc = np.zeros(n)
    cnt = np.zeros(n)
    for _ in range(n_rep):
        batch = sample_unigram_negatives(b, p_t, generator=gen)  # (B,) i.i.d. positives
        rand = sample_uniform_negatives(
            n_random, n, exclude_ids=batch if exclude_batch else None, generator=gen
        )
        negs = np.concatenate([batch[1:].numpy(), rand.numpy()])
        cnt += np.bincount(negs, minlength=n)
        inc[np.unique(negs)] += 1
    del rng
    return inc / n_rep, cnt / n_rep


@pytest.mark.parametrize(("n", "b", "n_random"), [(5, 3, 2), (8, 4, 3), (12, 2, 5)])
def test_inclusion_and_count_match_simulated_samplers(n, b, n_random):
    p = np.random.default_rng(n).dirichlet(np.ones(n))
    n_rep = 6000
    inc, cnt = _simulate_row_negatives(p, b, n_random, n, False, n_rep, seed=b)
    q_inc = inclusion_probability(p, b - 1, n_random, n)
    q_cnt = expected_count(p, b - 1, n_random, n)
    se = np.sqrt(q_inc * (1 - q_inc) / n_rep) + 1e-12
    assert np.all(np.abs(inc - q_inc) < 5 * se), (inc, q_inc)
    assert np.all(np.abs(cnt - q_cnt) < 5 * np.sqrt(q_cnt * 2 / n_rep) + 1e-12), (cnt, q_cnt)


@pytest.mark.parametrize("m", [1, 4, 9])
def test_sampler_q_matches_simulated_samplers(m):
    n, n_rep = 7, 6000
    q = np.random.default_rng(m).dirichlet(np.ones(n))
    gen = torch.Generator().manual_seed(m)
    inc_u, inc_q, cnt_q = np.zeros(n), np.zeros(n), np.zeros(n)
    for _ in range(n_rep):
        u = sample_uniform_negatives(m, n, generator=gen).numpy()
        d = sample_unigram_negatives(m, torch.tensor(q), generator=gen).numpy()
        inc_u[np.unique(u)] += 1
        inc_q[np.unique(d)] += 1
        cnt_q += np.bincount(d, minlength=n)
    want_u, want_q = 1 - (1 - 1 / n) ** m, 1 - (1 - q) ** m
    tol = 5 * np.sqrt(0.25 / n_rep)
    assert np.all(np.abs(inc_u / n_rep - want_u) < tol)
    assert np.all(np.abs(inc_q / n_rep - want_q) < tol)
    assert np.all(np.abs(cnt_q / n_rep - m * q) < 5 * np.sqrt(m * q / n_rep) + 1e-12)


def _exact_ht_count(n, b, n_random, p, exclude_batch):
    """E[sum over row 0's de-duplicated negatives (hits removed) of 1/Q], exactly.

    Enumerates every batch (n^b of them) and, given the batch, uses the exact
    probability that a non-batch item is among the ``n_random`` uniform draws
    (from the catalog, or from the catalog minus the batch's distinct items). The
    Horvitz-Thompson identity says the result is ``n - 1`` when Q is the true
    inclusion probability. Q is the shipped builder's.
    """
    total = 0.0
    emb = torch.zeros(n, 1, dtype=torch.float64)
    for batch in itertools.product(range(n), repeat=b):
        prob = float(np.prod(p[list(batch)]))
        ids = torch.tensor(batch)
        distinct = set(batch)
        drawable = n - len(distinct) if exclude_batch else n
        cs = mixed_candidates(
            ids, emb[ids], torch.tensor(p[list(batch)]),
            torch.zeros(n_random, dtype=torch.int64), emb[:n_random],
            torch.full((n_random,), 0.5, dtype=torch.float64),
            catalog_size=n, exclude_batch=exclude_batch,
        )  # fmt: skip
        # Q of row 0 for every item: recompute from a column holding it (same formula)
        from recsys.negatives import _gamma, _log_not_included

        gamma = _gamma(n_random, n, len(distinct) if exclude_batch else 0, exclude_batch)
        q_all = -torch.expm1(_log_not_included(torch.tensor(p), b - 1, n_random, gamma))
        assert torch.allclose(cs.log_q[:b].double(), q_all[ids].log())
        others = set(batch[1:])
        for y in range(n):
            if y == batch[0]:
                continue  # hits removed: the row's own item is never a negative
            if y in others:
                pi = 1.0
            elif exclude_batch and y in distinct:
                pi = 0.0
            else:
                pi = 1 - (1 - 1 / drawable) ** n_random
            total += prob * pi / float(q_all[y])
    return total


@pytest.mark.parametrize(("n", "b", "n_random"), [(5, 3, 2), (6, 3, 4), (5, 4, 3)])
def test_mixed_q_exact_without_exclusion_and_named_approximation_with(n, b, n_random):
    p = np.random.default_rng(n + b).dirichlet(np.ones(n) * 2)
    exact = _exact_ht_count(n, b, n_random, p, exclude_batch=False)
    assert exact == pytest.approx(n - 1, rel=1e-10)
    approx = _exact_ht_count(n, b, n_random, p, exclude_batch=True)
    err = approx / (n - 1) - 1
    # the documented size of the approximation: a few percent on such tiny catalogs
    assert 1e-4 < abs(err) < 0.06, err


def test_exclude_batch_guard_uses_distinct_count():
    """Six copies of item 0 exclude one item of five: a valid batch (it was refused)."""
    ids = torch.zeros(6, dtype=torch.int64)
    emb = torch.eye(5, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    rand = sample_uniform_negatives(3, 5, exclude_ids=ids, generator=gen)
    assert not bool((rand == 0).any())
    cs = mixed_candidates(
        ids, emb[ids], torch.full((6,), 0.5, dtype=torch.float64), rand, emb[rand],
        torch.full((3,), 0.1, dtype=torch.float64), catalog_size=5, exclude_batch=True,
    )  # fmt: skip
    assert torch.isfinite(cs.log_q).all()
    with pytest.raises(ValueError, match="exceed the batch's 5 distinct positives"):
        mixed_candidates(
            torch.arange(5), emb, torch.full((5,), 0.2, dtype=torch.float64), rand, emb[rand],
            torch.full((3,), 0.1, dtype=torch.float64), catalog_size=5, exclude_batch=True,
        )  # fmt: skip
