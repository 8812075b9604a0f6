"""The fast training step (issue 16, item 6) computes exactly what the reference code does.

The fused shared-negatives loss against :func:`recsys.losses.sampled_softmax_loss` on the
builder's candidate set (value and gradients, float64), the sort-free bag backward
against torch's EmbeddingBag, the sparse hit coordinates against a dense comparison,
and the operations a ``sampled`` step runs (no EmbeddingBag backward, no log-softmax).
"""

import math

import numpy as np
import pytest
import torch

from recsys.data import make_examples, synthetic_movielens
from recsys.losses import _hit_coordinates, _mask_hits_, shared_negatives_loss
from recsys.model import TwoTower, _bag_sum
from recsys.negatives import sampled_softmax_candidates
from recsys.train import TrainConfig, train_model

F64 = torch.float64


def _problem(seed, b=6, m=9, d=4, n=7):
    gen = torch.Generator().manual_seed(seed)
    query = torch.randn(b, d, dtype=F64, generator=gen, requires_grad=True)
    positives = torch.randn(b, d, dtype=F64, generator=gen, requires_grad=True)
    negatives = torch.randn(m, d, dtype=F64, generator=gen, requires_grad=True)
    # ids from a catalog smaller than B' + B: hits and repeated ids are forced
    pos_ids = torch.randint(0, n, (b,), generator=gen)
    neg_ids = torch.randint(0, n, (m,), generator=gen)
    return query, positives, negatives, pos_ids, neg_ids


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("q_kind", ["uniform", "unigram", "none"])
@pytest.mark.parametrize("remove_hits", [True, False])
def test_fused_loss_equals_the_builder_loss(seed, q_kind, remove_hits):
    query, positives, negatives, pos_ids, neg_ids = _problem(seed)
    n, m, tau = 7, negatives.shape[0], 0.3
    probs = None
    if q_kind == "unigram":
        probs = torch.arange(1.0, n + 1, dtype=F64)
        probs /= probs.sum()
    cs = sampled_softmax_candidates(
        pos_ids, positives, neg_ids, negatives, sampler_probs=probs,
        catalog_size=None if probs is not None else n,
        correction="none" if q_kind == "none" else "expected_count",
        remove_accidental_hits=remove_hits,
    )  # fmt: skip
    assert (cs.mask[:, pos_ids.shape[0] :].any()) == remove_hits  # hits are really there
    want = cs.loss(query, temperature=tau)
    log_q = {"uniform": math.log(m / n), "none": None}.get(q_kind)
    if q_kind == "unigram":
        log_q = torch.log(m * probs[neg_ids])  # (M,)
    ids = {"positive_ids": pos_ids, "negative_ids": neg_ids} if remove_hits else {}
    got = shared_negatives_loss(query, positives, negatives, log_q, temperature=tau, **ids)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    inputs = (query, positives, negatives)
    for g_got, g_want in zip(
        torch.autograd.grad(got, inputs), torch.autograd.grad(want, inputs), strict=True
    ):
        torch.testing.assert_close(g_got, g_want, rtol=1e-10, atol=1e-12)


def test_fused_loss_without_negatives_is_zero():
    query, positives, _, pos_ids, _ = _problem(0)
    empty = torch.zeros(0, query.shape[1], dtype=F64, requires_grad=True)
    loss = shared_negatives_loss(
        query, positives, empty, 0.0, positive_ids=pos_ids,
        negative_ids=torch.zeros(0, dtype=torch.int64),
    )  # fmt: skip
    assert float(loss.detach()) == 0.0
    (grad,) = torch.autograd.grad(loss, query)
    assert torch.equal(grad, torch.zeros_like(grad))


def test_fused_loss_needs_both_id_tensors():
    query, positives, negatives, pos_ids, _ = _problem(0)
    with pytest.raises(ValueError, match="`positive_ids` and `negative_ids` must be given"):
        shared_negatives_loss(query, positives, negatives, positive_ids=pos_ids)


@pytest.mark.parametrize("seed", range(5))
def test_sparse_hits_equal_the_dense_comparison(seed):
    gen = torch.Generator().manual_seed(seed)
    pos_ids = torch.randint(0, 12, (20,), generator=gen)
    neg_ids = torch.randint(0, 12, (30,), generator=gen)
    cols, rows = _hit_coordinates(pos_ids, neg_ids)
    dense = (neg_ids.unsqueeze(1) == pos_ids.unsqueeze(0)).nonzero()  # (H, 2): (j, i)
    pairs = sorted(zip(cols.tolist(), rows.tolist(), strict=True))
    assert pairs == [tuple(x) for x in dense.tolist()]
    z_sparse, z_dense = torch.zeros(30, 20), torch.zeros(30, 20)
    _mask_hits_(z_sparse, pos_ids, neg_ids, sparse=True)
    _mask_hits_(z_dense, pos_ids, neg_ids, sparse=False)
    assert torch.equal(z_sparse, z_dense)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weighted", [True, False])
def test_bag_sum_equals_embedding_bag(dtype, weighted):
    gen = torch.Generator().manual_seed(3)
    table = torch.randn(11, 5, dtype=dtype, generator=gen)
    rows = torch.randint(0, 11, (8, 6), generator=gen)
    rows[0] = 4  # one row repeated within a bag
    weights = None
    if weighted:
        weights = torch.rand(8, 6, dtype=dtype, generator=gen)
        weights[1, :3] = 0.0  # padding slots
    grad_out = torch.randn(8, 5, dtype=dtype, generator=gen)
    got_table = table.clone().requires_grad_()
    got = _bag_sum(got_table, rows, weights)
    got.backward(grad_out)
    want_table = table.clone().requires_grad_()
    want = torch.nn.functional.embedding_bag(
        rows, want_table, mode="sum", per_sample_weights=weights
    )
    want.backward(grad_out)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    torch.testing.assert_close(got_table.grad, want_table.grad, rtol=tol, atol=tol)
    assert got.grad_fn.name() == "_BagSumBackward"


def test_sampled_step_runs_no_sorting_backward_and_no_log_softmax():
    """The ops that cost the most in the old step (PROFILE_recsys_step.md) are gone."""
    from torch.profiler import profile

    data = synthetic_movielens(60, 300, mean_ratings=20, min_positives=10, rng=0)
    ex = make_examples(data, max_history=10).take(np.arange(128))  # two steps
    cfg = TrainConfig(method="sampled", batch_size=64, n_negatives=50)
    with profile() as prof:
        train_model(TwoTower(n_rows=64, dim=16, hidden=(16, 16)), ex, data.n_items, cfg,
                    rng=0, progress=False)  # fmt: skip
    names = {e.key for e in prof.key_averages()}
    assert "_BagSumBackward" in names
    for slow in (
        "aten::_embedding_bag_dense_backward",
        "aten::_log_softmax",
        "aten::_log_softmax_backward_data",
    ):
        assert slow not in names, slow
