import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from recsys import (
    expected_count,
    expected_distinct,
    first_occurrence,
    full_softmax_candidates,
    in_batch_candidates,
    inclusion_probability,
    mixed_candidates,
    sample_uniform_negatives,
    sample_unigram_negatives,
    sampled_softmax_candidates,
)

ids_strategy = st.lists(st.integers(0, 6), min_size=2, max_size=12)


def _reference_mask(cand_ids, pos_ids, remove_hits, dedupe, exclude_others, dedupe_start=0):
    """Slow per-element reference of the builders' masks (row i's positive is column i)."""
    b, c = len(pos_ids), len(cand_ids)
    mask = np.zeros((b, c), dtype=bool)
    for i in range(b):
        for j in range(c):
            if j == i:
                continue
            if remove_hits and cand_ids[j] == pos_ids[i]:
                mask[i, j] = True
            earlier = [cand_ids[k] for k in range(dedupe_start, j) if k != i]
            if dedupe and j >= dedupe_start and cand_ids[j] in earlier:
                mask[i, j] = True  # per row: the row's own column is not a negative's copy
            if exclude_others and j < b:
                mask[i, j] = True
    return mask


@given(ids=ids_strategy)
def test_first_occurrence_matches_numpy(ids):
    arr = np.array(ids)
    _, first_idx = np.unique(arr, return_index=True)
    expected = np.zeros(len(ids), dtype=bool)
    expected[first_idx] = True
    assert first_occurrence(torch.tensor(ids)).numpy().tolist() == expected.tolist()


@given(
    ids=ids_strategy,
    correction=st.sampled_from(["inclusion_probability", "expected_count", "none"]),
    hits=st.booleans(),
)
def test_in_batch_mask_matches_reference(ids, correction, hits):
    b = len(ids)
    cs = in_batch_candidates(
        torch.tensor(ids),
        torch.randn(b, 2),
        torch.full((b,), 0.1),
        correction=correction,
        remove_accidental_hits=hits,
    )
    ref = _reference_mask(ids, ids, hits, correction == "inclusion_probability", False)
    got = np.zeros((b, b), bool) if cs.mask is None else cs.mask.numpy()
    assert got.tolist() == ref.tolist()


@given(ids=ids_strategy)
def test_dedup_set_holds_each_other_item_once(ids):
    b = len(ids)
    cs = in_batch_candidates(torch.tensor(ids), torch.randn(b, 2), torch.full((b,), 0.1))
    mask = np.zeros((b, b), bool) if cs.mask is None else cs.mask.numpy()
    for i in range(b):
        kept = [ids[j] for j in range(b) if not mask[i, j]]
        negatives = [ids[j] for j in range(b) if not mask[i, j] and j != i]
        assert sorted(negatives) == sorted(set(ids) - {ids[i]})  # duplicates + hits removed
        assert kept.count(ids[i]) == 1


@given(
    pos=ids_strategy,
    neg=st.lists(st.integers(0, 6), min_size=0, max_size=8),
    correction=st.sampled_from(["inclusion_probability", "expected_count", "none"]),
    hits=st.booleans(),
)
def test_sampled_mask_matches_reference(pos, neg, correction, hits):
    b, m = len(pos), len(neg)
    cs = sampled_softmax_candidates(
        torch.tensor(pos),
        torch.randn(b, 2),
        torch.tensor(neg, dtype=torch.int64),
        torch.randn(m, 2),
        catalog_size=7,
        correction=correction,
        remove_accidental_hits=hits,
    )
    ref = _reference_mask(
        pos + neg, pos, hits, correction == "inclusion_probability", True, dedupe_start=b
    )
    got = np.zeros((b, b + m), bool) if cs.mask is None else cs.mask.numpy()
    assert got.tolist() == ref.tolist()


@given(
    ids=ids_strategy,
    correction=st.sampled_from(["inclusion_probability", "expected_count", "none"]),
)
def test_mixed_with_no_random_items_equals_in_batch(ids, correction):
    b = len(ids)
    g = torch.Generator().manual_seed(len(ids))
    emb, p = torch.randn(b, 3, generator=g), torch.rand(b, generator=g) * 0.5 + 0.01
    query = torch.randn(b, 3, generator=g)
    a = in_batch_candidates(torch.tensor(ids), emb, p, correction=correction)
    m = mixed_candidates(
        torch.tensor(ids),
        emb,
        p,
        torch.empty(0, dtype=torch.int64),
        torch.empty(0, 3),
        torch.empty(0),
        catalog_size=50,
        correction=correction,
    )
    assert torch.equal(a.candidates, m.candidates) and torch.equal(a.labels, m.labels)
    assert (a.mask is None and m.mask is None) or torch.equal(a.mask, m.mask)
    assert (a.log_q is None and m.log_q is None) or torch.allclose(a.log_q, m.log_q)
    assert torch.allclose(a.loss(query), m.loss(query))


def test_in_batch_q_uses_the_other_b_minus_one_rows():
    p = torch.tensor([0.1, 0.2, 0.3, 0.05])
    cs = in_batch_candidates(torch.arange(4), torch.eye(4), p)
    assert torch.allclose(cs.log_q.exp(), 1 - (1 - p) ** 3)
    cs = in_batch_candidates(torch.arange(4), torch.eye(4), p, correction="expected_count")
    assert torch.allclose(cs.log_q.exp(), 3 * p)
    assert cs.correction == "expected_count"


def test_mixed_q_values():
    p_pos, p_rand = torch.tensor([0.1, 0.2]), torch.tensor([0.0, 0.01, 0.3])
    e = torch.eye(5)
    for exclude, gamma in ((False, 1 / 20), (True, 1 / 18)):
        cs = mixed_candidates(
            torch.tensor([0, 1]),
            e[:2],
            p_pos,
            torch.tensor([2, 3, 4]),
            e[2:],
            p_rand,
            catalog_size=20,
            exclude_batch=exclude,
        )
        p = torch.cat([p_pos, p_rand])
        assert torch.allclose(cs.log_q.exp(), 1 - (1 - p) ** 1 * (1 - gamma) ** 3)
        # per row: B - 1 = 1 other positive; gamma from the whole batch (B = 2) excluded
        n_eff = 19 if exclude else 20
        assert torch.allclose(cs.log_q.exp(), inclusion_probability(p, 1, 3, n_eff, exclude))


def test_mixed_exclude_batch_uses_distinct_count():
    e = torch.eye(6)
    pos, p = torch.tensor([0, 0, 1]), torch.tensor([0.3, 0.3, 0.1])
    cs = mixed_candidates(
        pos,
        e[[0, 0, 1]],
        p,
        torch.tensor([4]),
        e[[4]],
        torch.tensor([0.01]),
        catalog_size=20,
        exclude_batch=True,
    )
    probs = torch.tensor([0.3, 0.3, 0.1, 0.01])
    assert torch.allclose(cs.log_q.exp(), 1 - (1 - probs) ** 2 * (1 - 1 / 18))  # D = 2
    ref = inclusion_probability(probs, 2, 1, 20, True, n_excluded=2)
    assert torch.allclose(cs.log_q.exp(), ref.float())


def test_mixed_q_uses_the_other_b_minus_one_rows_for_both_units():
    # per row the negatives are the other B - 1 positives and the B' random items, for
    # both units of Q (module notes); with exclude_batch an item is drawable only if
    # none of the *other* B - 1 rows holds it, so the random term is
    # B' gamma (1 - p)^(B - 1), as expected_count(p, B - 1, ...) gives.
    e = torch.eye(8)
    pos, p_pos = torch.tensor([0, 1, 2, 3]), torch.tensor([0.3, 0.2, 0.1, 0.05])
    rand, p_rand = torch.tensor([5, 6]), torch.tensor([0.01, 0.02])
    p = torch.cat([p_pos, p_rand]).double()
    for exclude, gamma in ((False, 1 / 20), (True, 1 / (20 - 4))):  # D = 4 distinct positives
        not_in_others = (1 - p) ** 3  # none of the other B - 1 = 3 rows holds the item
        refs = {
            "inclusion_probability": 1 - not_in_others * (1 - gamma) ** 2,
            "expected_count": 3 * p + 2 * gamma * (not_in_others if exclude else 1.0),
        }
        for correction, ref in refs.items():
            cs = mixed_candidates(
                pos,
                e[:4],
                p_pos,
                rand,
                e[5:7],
                p_rand,
                catalog_size=20,
                exclude_batch=exclude,
                correction=correction,
            )
            assert torch.allclose(cs.log_q.exp().double(), ref, rtol=1e-6), (exclude, correction)


def test_n_excluded_and_expected_distinct():
    p = np.array([0.5, 0.25, 0.25])
    assert expected_distinct(p, 2) == pytest.approx(1 - 0.25 + 2 * (1 - 0.75**2))
    got = inclusion_probability(p, 2, 3, 10, True, n_excluded=1.5)
    assert np.allclose(got, 1 - (1 - p) ** 2 * (1 - 1 / 8.5) ** 3)
    assert np.allclose(
        inclusion_probability(p, 2, 3, 10, True),
        inclusion_probability(p, 2, 3, 10, True, n_excluded=2),
    )
    with pytest.raises(ValueError, match="`n_excluded` must be in"):
        inclusion_probability(p, 2, 3, 10, True, n_excluded=3)


def test_sampled_q_values_and_units():
    probs = torch.tensor([0.5, 0.3, 0.2])
    pos, neg = torch.tensor([0, 2]), torch.tensor([1, 1, 0, 2])
    cs = sampled_softmax_candidates(
        pos, torch.randn(2, 2), neg, torch.randn(4, 2), sampler_probs=probs
    )
    assert torch.allclose(cs.log_q.exp(), 4 * probs[torch.cat([pos, neg])])
    assert cs.correction == "expected_count"
    cs = sampled_softmax_candidates(
        pos,
        torch.randn(2, 2),
        neg,
        torch.randn(4, 2),
        sampler_probs=probs,
        correction="inclusion_probability",
    )
    assert torch.allclose(cs.log_q.exp(), 1 - (1 - probs[torch.cat([pos, neg])]) ** 4)
    assert cs.correction == "inclusion_probability"


def test_full_candidates_loss_is_cross_entropy():
    g = torch.Generator().manual_seed(0)
    items, query = torch.randn(9, 3, generator=g), torch.randn(4, 3, generator=g)
    ids = torch.tensor([8, 0, 3, 3])
    out = full_softmax_candidates(ids, items).loss(query)
    assert torch.allclose(out, torch.nn.functional.cross_entropy(query @ items.T, ids))


@given(
    p=st.floats(0.0, 1.0),
    b=st.integers(0, 300),
    b2=st.integers(0, 50),
    n=st.integers(301, 10_000),
    exclude=st.booleans(),
)
def test_inclusion_probability_formula(p, b, b2, n, exclude):
    gamma = 1 / (n - b) if exclude else 1 / n
    expected = 1 - (1 - p) ** b * (1 - gamma) ** b2
    got = float(inclusion_probability(p, b, b2, n, exclude))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
    count = b * p + b2 * gamma * ((1 - p) ** b if exclude else 1.0)
    assert float(expected_count(p, b, b2, n, exclude)) == pytest.approx(count)
    assert got <= float(expected_count(p, b, b2, n, exclude)) + 1e-12  # union bound


def test_inclusion_probability_keeps_kind_and_device():
    t = inclusion_probability(torch.tensor([0.1, 0.2], dtype=torch.float32), 3)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    a = inclusion_probability(np.array([0.1, 0.2]), 3)
    assert isinstance(a, np.ndarray) and a.shape == (2,)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((1.5, 3), ValueError, r"`p` must lie in \[0, 1\]"),
        ((-0.1, 3), ValueError, r"`p` must lie in \[0, 1\]"),
        ((0.1, -1), ValueError, "`batch_size` must be >= 0"),
        ((0.1, 2.5), TypeError, "`batch_size` must be an int"),
        ((0.1, 3, -2), ValueError, "`n_random` must be >= 0"),
        ((0.1, 3, 2), ValueError, "`catalog_size` must be given"),
        ((0.1, 3, 2, 3, True), ValueError, "`catalog_size` must exceed"),
    ],
)
def test_inclusion_probability_bad_input(args, exc, match):
    with pytest.raises(exc, match=match):
        inclusion_probability(*args)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: in_batch_candidates(torch.tensor([0, 1]), torch.eye(3)),
            ValueError,
            r"`positive_embeddings` must have shape \(2, d\)",
        ),
        (
            lambda: in_batch_candidates(torch.tensor([0, 1]), torch.eye(2)),
            ValueError,
            "`positive_probs` and `random_probs` must be given",
        ),
        (
            lambda: in_batch_candidates(
                torch.tensor([0, 1]), torch.eye(2), torch.tensor([0.0, 0.5])
            ),
            ValueError,
            r"`positive_probs` must lie in \(0, 1\]",
        ),
        (
            lambda: in_batch_candidates(
                torch.tensor([0, 1]), torch.eye(2), torch.tensor([1.2, 0.5])
            ),
            ValueError,
            r"\(0, 1\]",
        ),
        (
            lambda: in_batch_candidates(torch.tensor([0.0, 1.0]), torch.eye(2)),
            TypeError,
            "integer dtype",
        ),
        (
            lambda: in_batch_candidates(
                torch.tensor([0, 1]), torch.eye(2), torch.tensor([0.5, 0.5]), correction="share"
            ),
            ValueError,
            "`correction` must be one of",
        ),
        (
            lambda: sampled_softmax_candidates(
                torch.tensor([0]),
                torch.eye(2)[:1],
                torch.tensor([5]),
                torch.eye(2)[:1],
                catalog_size=3,
            ),
            ValueError,
            r"\[0, 3\)",
        ),
        (
            lambda: sampled_softmax_candidates(
                torch.tensor([0]), torch.eye(2)[:1], torch.tensor([1]), torch.eye(2)[:1]
            ),
            ValueError,
            "`catalog_size` must be given",
        ),
        (
            lambda: full_softmax_candidates(torch.tensor([3]), torch.eye(3)),
            ValueError,
            r"`positive_ids` must lie in \[0, 3\)",
        ),
        (
            lambda: sample_uniform_negatives(2, 3, exclude_ids=torch.arange(3)),
            ValueError,
            "whole catalog",
        ),
        (lambda: sample_uniform_negatives(-1, 3), ValueError, "`n` must be"),
        (
            lambda: sample_unigram_negatives(2, torch.tensor([0.5, -0.1])),
            ValueError,
            r"`probs` must lie in \[0, 1\]",
        ),
    ],
)
def test_builders_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_uniform_sampler_excludes():
    g = torch.Generator().manual_seed(0)
    draws = sample_uniform_negatives(2000, 10, exclude_ids=torch.tensor([1, 3, 3]), generator=g)
    assert set(draws.tolist()) == {0, 2, 4, 5, 6, 7, 8, 9}
    draws = sample_uniform_negatives(50, 10, generator=g)
    assert draws.dtype == torch.int64 and draws.min() >= 0 and draws.max() < 10


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_builders_on_cuda():
    ids = torch.tensor([0, 1, 0], device="cuda")
    emb = torch.randn(3, 4, device="cuda")
    rand = sample_uniform_negatives(5, 10, exclude_ids=ids)
    cs = mixed_candidates(
        ids,
        emb,
        torch.full((3,), 0.1, device="cuda"),
        rand,
        torch.randn(5, 4, device="cuda"),
        torch.full((5,), 0.01, device="cuda"),
        catalog_size=10,
        exclude_batch=True,
    )
    assert cs.mask.device.type == "cuda" and cs.log_q.device.type == "cuda"
    assert torch.isfinite(cs.loss(emb))
