import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from recsys.data import make_examples, synthetic_movielens
from recsys.metrics import evaluate_retrieval, ndcg_at_k, recall_at_k, topk_hits
from recsys.model import TwoTower


def _reference(scores, target, k, exclude=None):
    """The 10-line NumPy definition: rank of the target among all (non-excluded) items."""
    scores = np.array(scores, dtype=np.float64)
    if exclude is not None:
        for i, row in enumerate(exclude):
            for item in row:
                if item >= 0 and item != target[i]:
                    scores[i, item] = -np.inf
    rank = np.array([(scores[i] > scores[i, t]).sum() for i, t in enumerate(target)])
    recall = (rank < k).astype(float)
    ndcg = np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)
    return recall.mean(), ndcg.mean()


@given(
    n=st.integers(1, 12),
    n_items=st.integers(2, 40),
    k=st.integers(1, 40),
    seed=st.integers(0, 2**16),
    use_exclude=st.booleans(),
)
def test_matches_numpy_reference(n, n_items, k, seed, use_exclude):
    k = min(k, n_items)
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n, n_items))  # continuous: no ties
    target = rng.integers(0, n_items, n)
    exclude = rng.integers(-1, n_items, (n, 3)) if use_exclude else None
    ex_t = torch.as_tensor(exclude) if use_exclude else None
    r = recall_at_k(torch.as_tensor(scores), torch.as_tensor(target), k, exclude=ex_t)
    g = ndcg_at_k(torch.as_tensor(scores), torch.as_tensor(target), k, exclude=ex_t)
    ref_r, ref_g = _reference(scores, target, k, exclude)
    assert r == pytest.approx(ref_r, abs=1e-12)
    assert g == pytest.approx(ref_g, abs=1e-12)


@given(seed=st.integers(0, 2**16), n_items=st.integers(3, 30))
def test_bounded_and_monotone_in_k(seed, n_items):
    rng = np.random.default_rng(seed)
    scores = torch.as_tensor(rng.standard_normal((6, n_items)))
    target = torch.as_tensor(rng.integers(0, n_items, 6))
    ks = tuple(range(1, n_items + 1))
    recall, ndcg = topk_hits(scores, target, ks)
    assert torch.all((recall >= 0) & (recall <= 1)) and torch.all((ndcg >= 0) & (ndcg <= 1))
    assert torch.all(recall.diff(dim=1) >= 0) and torch.all(ndcg.diff(dim=1) >= 0)
    assert torch.all(recall[:, -1] == 1)  # K = catalog: always found
    assert torch.all(ndcg <= recall)


def test_exclusion_keeps_target():
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0]])
    target = torch.tensor([3])
    assert recall_at_k(scores, target, 1) == 0.0
    assert recall_at_k(scores, target, 1, exclude=torch.tensor([[0, 1, 2]])) == 1.0
    assert recall_at_k(scores, target, 1, exclude=torch.tensor([[0, 1, 3]])) == 0.0


@pytest.mark.parametrize("k", [0, 5])
def test_k_outside_catalog(k):
    with pytest.raises(ValueError, match=rf"`k` must be in \[1, n_items=4\]; got {k}"):
        recall_at_k(torch.zeros(2, 4), torch.tensor([0, 1]), k)


def test_bad_targets_and_shapes():
    with pytest.raises(ValueError, match=r"`target` must hold item indices in \[0, 4\)"):
        recall_at_k(torch.zeros(2, 4), torch.tensor([0, 4]), 1)
    with pytest.raises(ValueError, match="`scores` must be a 2-D tensor"):
        recall_at_k(torch.zeros(4), torch.tensor([0]), 1)
    with pytest.raises(ValueError, match=r"`target` must be a tensor of shape \(2,\)"):
        recall_at_k(torch.zeros(2, 4), torch.tensor([0]), 1)


def test_evaluate_retrieval_matches_reference_and_batching():
    data = synthetic_movielens(60, 150, mean_ratings=25, min_positives=5, rng=0)
    ex = make_examples(data, max_history=6)
    model = TwoTower(n_rows=64, dim=16, hidden=(16, 16), rng=0)
    res = evaluate_retrieval(model, ex, data.n_items, ks=(10, 50), batch_size=97)
    res_one = evaluate_retrieval(model, ex, data.n_items, ks=(10, 50), batch_size=10_000)
    np.testing.assert_array_equal(res.recall, res_one.recall)
    with torch.no_grad():
        scores = model(torch.as_tensor(ex.history), torch.arange(data.n_items)).double().numpy()
    for j, k in enumerate((10, 50)):
        ref_r, ref_g = _reference(scores, ex.target, k, ex.history)
        assert res.recall[:, j].mean() == pytest.approx(ref_r)
        assert res.ndcg[:, j].mean() == pytest.approx(ref_g, rel=1e-6)
    assert set(res.mean()) == {"recall@10", "recall@50", "ndcg@10", "ndcg@50"}
    with pytest.raises(ValueError, match=r"`k` must be in \[1, n_items="):
        evaluate_retrieval(model, ex, data.n_items, ks=(data.n_items + 1,))


@pytest.mark.parametrize(
    "scores",
    [
        torch.tensor([[float("nan"), 0.5, 0.1, 0.2], [0.1, 0.2, 0.3, 0.4]]),
        torch.full((2, 4), float("nan")),
    ],
)
def test_nan_scores_raise_instead_of_counting_as_hits(scores):
    """A diverged model's NaN scores used to rank first (topk), giving Recall@1 = 1."""
    with pytest.raises(ValueError, match=r"`scores` must not contain NaN; got \d+ NaN"):
        recall_at_k(scores, torch.tensor([0, 3]), 1)
