"""NumPy reference twins of the shipped retrieval path (test oracles, not used by checks).

The Monte Carlo retrieval checks run :mod:`recsys` batched (``validation.retrieval_bias``,
``validation.retrieval_training``). These tests hold the batched shipped paths against
closed forms written here from the mathematics: the expected sampled-softmax gradient
over every possible positive (O(N) per negative set), and the in-batch / mixed
candidate sets of one training batch.
"""

import numpy as np
import pytest
import torch

import sim
from validation import retrieval_bias as rb
from validation import retrieval_training as rt


def reference_log_q(variant: rb.Variant, probs: np.ndarray, m: int) -> np.ndarray:
    """``(N,)`` log Q of each item for ``m`` i.i.d. draws from ``probs``."""
    if variant.correction == "expected_count":
        return np.log(m * probs)
    if variant.correction == "inclusion_probability":
        return np.log(-np.expm1(m * np.log1p(-probs)))
    if variant.correction == "share":
        return np.log(probs)
    return np.zeros_like(probs)


def reference_expected_gradient(logits, probs, counts, neg_log_q, pos_log_q, *, hits, dedupe):
    """``(R, N)``: ``sum_y pi_y grad_s loss(y, S_r)`` in closed form.

    With ``a = exp(s - c_neg)``, ``a+ = exp(s - c_pos)``, weights ``w`` (counts or
    indicators) and ``D_y = a+_y + sum_k w_k a_k - [hits removed] w_y a_y``, averaging the
    per-positive gradient ``-e_y + (a+_y e_y + sum_k w_k a_k e_k [k != y or kept]) / D_y``
    over ``y ~ pi`` gives ``-pi + pi a+ / D + w a (sum_y pi_y / D_y - [removed] pi / D)``.
    """
    a = np.exp(logits - neg_log_q)  # (N,)
    a_pos = np.exp(logits - pos_log_q)  # (N,)
    w = (counts > 0).astype(np.float64) if dedupe else counts.astype(np.float64)  # (R, N)
    wa = w * a
    denom = a_pos + wa.sum(axis=1, keepdims=True) - (wa if hits else 0.0)  # (R, N)
    inv = probs / denom
    return -probs + a_pos * inv + wa * (inv.sum(axis=1, keepdims=True) - (inv if hits else 0.0))


def reference_batch_candidates(method, positives, random_ids, eta, n_items):
    """One batch's ``(cand (C,), log_q (C,) or None, mask (B, C) or None)``."""
    b = positives.shape[0]
    if method == "inbatch-uncorrected":
        return positives, None, None
    if method == "inbatch-logq-all-hits-kept":
        return positives, np.log((b - 1) * eta[positives]), None
    mixed = method.startswith("mixed")
    cand = np.concatenate([positives, random_ids]) if mixed else positives
    b_rand, gamma = (random_ids.shape[0], 1.0 / n_items) if mixed else (0, 0.0)
    log_q = np.log(-np.expm1((b - 1) * np.log1p(-eta[cand]) + b_rand * np.log1p(-gamma)))
    c = cand.shape[0]
    hits = cand[None, :] == positives[:, None]  # (B, C)
    first = np.array([not np.any(cand[:j] == cand[j]) for j in range(c)])
    own = np.zeros((b, c), dtype=bool)
    own[np.arange(b), np.arange(b)] = True
    return cand, log_q, (hits | ~first[None, :]) & ~own


@pytest.mark.parametrize("key", sorted(rb.VARIANTS))
def test_shipped_expected_gradients_equal_closed_form(key):
    """The bias curves' shipped path equals the closed form to 1e-10 (dups, hits)."""
    variant = rb.VARIANTS[key]
    rng = np.random.default_rng(0)
    n, m = 9, 7
    logits, pi, q = rng.normal(size=n), rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))
    ids = np.vstack([[0, 0, 3, 5, 5, 5, 8], sim.UnigramSampler(q, m).sample(40, rng=1)])
    counts = sim.counts_per_set(ids, n)
    lq = reference_log_q(variant, q, m)
    want = reference_expected_gradient(
        logits,
        pi,
        counts,
        lq,
        lq if variant.correct_positive else np.zeros(n),
        hits=variant.remove_accidental_hits,
        dedupe=variant.dedupe,
    )
    got = rb.shipped_expected_gradients(logits, pi, q, variant, counts, m)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_shipped_expected_gradients_see_a_swapped_loss(monkeypatch):
    """A wrong loss swapped into recsys is the one the bias curves run."""
    import recsys.losses

    rng = np.random.default_rng(1)
    n, m = 6, 5
    logits, pi, q = rng.normal(size=n), rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))
    counts = sim.counts_per_set(sim.UnigramSampler(q, m).sample(3, rng=2), n)
    variant = rb.VARIANTS["pos0-masked-count"]
    good = rb.shipped_expected_gradients(logits, pi, q, variant, counts, m)
    orig = recsys.losses.sampled_softmax_loss

    def log_q_added(*args, **kwargs):
        args = list(args)
        args[3] = -args[3]
        return orig(*args, **{**kwargs, "validate": False})

    monkeypatch.setattr(recsys.losses, "sampled_softmax_loss", log_q_added)
    bad = rb.shipped_expected_gradients(logits, pi, q, variant, counts, m)
    assert np.max(np.abs(bad - good)) > 1e-3


def test_single_thread_restores_the_setting():
    before = torch.get_num_threads()
    with rb.single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("method", sorted(rt.TRAIN_BUILDERS))
def test_training_batches_equal_reference(method):
    """The training check's batched sets equal the per-batch reference, batch by batch."""
    rng = np.random.default_rng(2)
    n, b, k = 12, 6, 11  # 11 batches: two builder calls of up to 8 batches
    eta = rng.dirichlet(np.ones(n))
    pos = rng.choice(n, size=(k, b), p=eta)
    pos[:, 3] = pos[:, 0]  # force a duplicate in every batch
    rand = rng.integers(0, n, size=(k, 4))
    cand, log_q, mask, _, cp = rt.batch_candidates(method, pos, rand, eta, n)
    assert cp == (method == "inbatch-logq-all-hits-kept")
    for j in range(k):
        want_cand, want_lq, want_mask = reference_batch_candidates(method, pos[j], rand[j], eta, n)
        assert cand[j].tolist() == want_cand.tolist()
        if want_lq is None:
            assert log_q is None
        else:
            np.testing.assert_allclose(log_q[j], want_lq, rtol=0, atol=1e-12)
        got_mask = np.zeros((b, cand.shape[1]), bool) if mask is None else mask[j]
        want = np.zeros_like(got_mask) if want_mask is None else want_mask
        assert np.array_equal(got_mask, want)


def test_training_batches_span_builder_calls(monkeypatch):
    """Results do not depend on how many batches share a builder call."""
    rng = np.random.default_rng(3)
    n, b = 10, 5
    eta = rng.dirichlet(np.ones(n))
    pos, rand = rng.choice(n, size=(7, b), p=eta), rng.integers(0, n, size=(7, 3))
    whole = rt.batch_candidates("mixed-logq-pos0-masked", pos, rand, eta, n)
    monkeypatch.setattr(rt, "_BATCHES_PER_CALL", 2)
    split = rt.batch_candidates("mixed-logq-pos0-masked", pos, rand, eta, n)
    for a, c in zip(whole[:3], split[:3], strict=True):
        assert np.array_equal(a, c)


def test_batch_candidates_rejects_unknown_method():
    with pytest.raises(ValueError, match="`method` must be one of"):
        rt.batch_candidates(
            "softmax", np.zeros((1, 2), int), np.zeros((1, 1), int), np.ones(3) / 3, 3
        )
