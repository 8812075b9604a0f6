import numpy as np
import pytest
from scipy import special

from sim import (
    InBatchSampler,
    MixedSampler,
    UniformSampler,
    UnigramSampler,
    counts_per_set,
    expected_full_softmax_gradient,
    expected_full_softmax_loss,
    full_softmax_gradient,
    full_softmax_loss,
    make_softmax_problem,
    sample_categorical_rows,
)
from sim._softmax_kernels import _uniform_excluding_kernel

Z = 4.0


def test_problem_is_deterministic_and_consistent():
    a, b = make_softmax_problem(50, 4, rng=3), make_softmax_problem(50, 4, rng=3)
    assert np.array_equal(a.logits, b.logits) and a.seed == 3
    assert np.allclose(a.conditional.sum(1), 1) and np.isclose(a.marginal.sum(), 1)
    assert np.allclose(a.logits, a.user_factors @ a.item_factors.T + a.item_bias)
    flat = make_softmax_problem(30, 2, rank=0, zipf_exponent=1.0, rng=0)
    expected = 1 / np.arange(1, 31)
    assert np.allclose(flat.marginal, expected / expected.sum())  # exact Zipf


def test_sampled_positives_follow_the_conditional():
    prob = make_softmax_problem(8, 2, rng=1)
    x, y = prob.sample(400, 50, rng=2)
    n = x.size
    for ctx in range(2):
        sel = y[x == ctx]
        freq = np.bincount(sel, minlength=8) / sel.size
        p = prob.conditional[ctx]
        assert np.all(np.abs(freq - p) <= Z * np.sqrt(p * (1 - p) / sel.size) + 1e-12)
    assert abs((x == 0).mean() - 0.5) <= Z * np.sqrt(0.25 / n)


def test_categorical_kernel_matches_searchsorted():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(13), size=4)
    rows, u = rng.integers(0, 4, size=1000), rng.random(1000)
    cdf = np.cumsum(probs, axis=1)
    ref = np.array(
        [
            np.searchsorted(cdf[r] / cdf[r, -1], v, side="right")
            for r, v in zip(rows, u, strict=True)
        ]
    )
    assert np.array_equal(sample_categorical_rows(probs, rows, u), np.minimum(ref, 12))


def test_full_softmax_loss_and_gradient():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(5, 7)), rng.integers(0, 7, size=5)
    ref = -np.log(special.softmax(logits, 1)[np.arange(5), labels])
    assert np.allclose(full_softmax_loss(logits, labels), ref)
    eps, grad = 1e-6, full_softmax_gradient(logits, labels)
    for k in range(7):  # central finite differences
        d = np.zeros(7)
        d[k] = eps
        fd = full_softmax_loss(logits + d, labels) - full_softmax_loss(logits - d, labels)
        assert np.allclose(fd / (2 * eps), grad[:, k], atol=1e-6)
    pi = rng.dirichlet(np.ones(7))
    exp_grad = sum(pi[y] * full_softmax_gradient(logits[0], y) for y in range(7))
    assert np.allclose(expected_full_softmax_gradient(logits[0], pi), exp_grad)
    exp_loss = sum(pi[y] * full_softmax_loss(logits[0], y) for y in range(7))
    assert np.isclose(expected_full_softmax_loss(logits[0], pi), exp_loss)


SAMPLERS = [
    UniformSampler(20, 6),
    UniformSampler(20, 6, replace=False),
    UnigramSampler(np.arange(1, 21) / 210, 6),
    InBatchSampler(np.arange(20, 0, -1) / 210, 8),
    MixedSampler(np.arange(20, 0, -1) / 210, 8, 5),
    MixedSampler(np.full(20, 0.05), 4, 5, exclude_batch=True),
]


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: type(s).__name__)
def test_sampler_inclusion_and_counts(sampler):
    r = 20_000
    ids = sampler.sample(r, rng=5)
    counts = counts_per_set(ids, 20)
    incl, p = (counts > 0).mean(0), sampler.inclusion_probability()
    assert np.all(np.abs(incl - p) <= Z * np.sqrt(p * (1 - p) / r) + 1e-12)
    mean, sd = counts.mean(0), counts.std(0)
    assert np.all(np.abs(mean - sampler.expected_count()) <= Z * sd / np.sqrt(r) + 1e-12)


def test_uniform_excluding_kernel_matches_reference():
    rng = np.random.default_rng(2)
    excl = rng.integers(0, 10, size=(50, 4))
    u = rng.random((50, 7))
    out = np.empty((50, 7), dtype=np.int64)
    _uniform_excluding_kernel(excl, 10, u, out)
    for s in range(50):
        free = np.setdiff1d(np.arange(10), excl[s])
        assert np.array_equal(out[s], free[(u[s] * free.size).astype(int)])


def test_counts_per_set():
    assert counts_per_set(np.array([[1, 1], [0, 2]]), 3).tolist() == [[0, 2, 0], [1, 0, 1]]


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: make_softmax_problem(1, 3), ValueError, "`n_items` must be >= 2"),
        (lambda: make_softmax_problem(10, 3, rank=1.5), TypeError, "`rank` must be an int"),
        (lambda: make_softmax_problem(10, 3, zipf_exponent=-1), ValueError, "`zipf_exponent`"),
        (lambda: UniformSampler(5, 6, replace=False), ValueError, "`n_samples` must be <="),
        (lambda: UnigramSampler(np.array([0.5, 0.6]), 2), ValueError, "`probs` must sum to 1"),
        (lambda: MixedSampler(np.full(4, 0.25), 4, 2, True), ValueError, "`batch_size`"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
