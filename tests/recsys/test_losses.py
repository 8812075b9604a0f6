import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from recsys import (
    SampledSoftmaxLoss,
    full_softmax_candidates,
    sampled_softmax_loss,
    softmax_loss_from_logits,
)


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _problem(seed, b=5, c=7, d=3):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(b, d, generator=g)
    cands = torch.randn(c, d, generator=g)
    labels = torch.randint(0, c, (b,), generator=g)
    return query, cands, labels, g


def test_full_catalog_equals_full_softmax_loss_and_gradient():
    query, items, _, g = _problem(0, b=6, c=11)
    ids = torch.randint(0, 11, (6,), generator=g)
    cs = full_softmax_candidates(ids, items)
    q = query.clone().requires_grad_(True)
    loss = cs.loss(q, temperature=0.5)
    ref = F.cross_entropy(query @ items.T / 0.5, ids)
    assert torch.allclose(loss, ref, atol=1e-12)
    loss.backward()
    w = torch.softmax(query @ items.T / 0.5, dim=1)  # (B, N)
    analytic = (w - F.one_hot(ids, 11)) @ items / 0.5 / 6  # (B, d) d(mean loss)/d query
    assert torch.allclose(q.grad, analytic, atol=1e-12)


def test_autograd_gradient_wrt_logits_equals_analytic():
    _, _, labels, g = _problem(1)
    logits = torch.randn(5, 7, generator=g, requires_grad=True)
    log_q = -torch.rand(5, 7, generator=g) * 3
    mask = torch.rand(5, 7, generator=g) < 0.3
    mask[torch.arange(5), labels] = False
    loss = softmax_loss_from_logits(logits, labels, log_q, mask=mask, reduction="sum")
    loss.backward()
    z = logits.detach() - log_q
    z[torch.arange(5), labels] = logits.detach()[torch.arange(5), labels]  # positive at 0
    z = z.masked_fill(mask, -math.inf)
    analytic = torch.softmax(z, 1) - F.one_hot(labels, 7)
    assert torch.allclose(logits.grad, analytic, atol=1e-12)


@given(seed=st.integers(0, 10_000), log_c=st.floats(-8.0, 0.0), tau=st.floats(0.1, 5.0))
def test_uniform_q_changes_nothing(seed, log_c, tau):
    query, cands, labels, _ = _problem(seed)
    log_q = torch.full((7,), log_c)
    plain = sampled_softmax_loss(query, cands, labels, temperature=tau)
    corrected = sampled_softmax_loss(
        query, cands, labels, log_q, temperature=tau, correct_positive=True
    )
    assert torch.allclose(plain, corrected, atol=1e-10)


def test_correction_is_log_q_not_divided_by_temperature():
    query, cands, labels, g = _problem(2)
    log_q = -torch.rand(7, generator=g) * 4
    tau = 0.25
    out = sampled_softmax_loss(
        query, cands, labels, log_q, temperature=tau, reduction="none", correct_positive=True
    )
    z = query @ cands.T / tau - log_q
    assert torch.allclose(out, F.cross_entropy(z, labels, reduction="none"))
    wrong = F.cross_entropy((query @ cands.T - log_q) / tau, labels, reduction="none")
    assert not torch.allclose(out, wrong)


def test_positive_correction_flag():
    query, cands, labels, g = _problem(3)
    log_q = -torch.rand(7, generator=g) * 4
    out = sampled_softmax_loss(query, cands, labels, log_q, reduction="none")
    z = query @ cands.T - log_q
    z[torch.arange(5), labels] += log_q[labels]  # positive's correction set to 0
    assert torch.allclose(out, F.cross_entropy(z, labels, reduction="none"))


def test_mask_equals_dropping_the_columns():
    query, cands, labels, g = _problem(4, b=4, c=9)
    log_q = torch.log(torch.rand(4, 9, generator=g) * 3 + 0.1)
    mask = torch.rand(4, 9, generator=g) < 0.4
    mask[torch.arange(4), labels] = False
    out = sampled_softmax_loss(
        query, cands, labels, log_q, mask=mask, correction="expected_count", reduction="none"
    )
    for i in range(4):  # NumPy-style reference: keep only the unmasked columns
        keep = (~mask[i]).nonzero().squeeze(1)
        z = query[i] @ cands[keep].T - log_q[i, keep]
        pos = int((keep == labels[i]).nonzero())
        z[pos] += log_q[i, labels[i]]
        assert torch.isclose(out[i], torch.logsumexp(z, 0) - z[pos])


def test_per_row_candidates_equal_shared():
    query, cands, labels, _ = _problem(5)
    shared = sampled_softmax_loss(query, cands, labels, reduction="none")
    per_row = sampled_softmax_loss(query, cands.expand(5, 7, 3), labels, reduction="none")
    assert torch.allclose(shared, per_row)


def test_module_wrapper_matches_functional():
    query, cands, labels, _ = _problem(6)
    mod = SampledSoftmaxLoss(temperature=0.7, reduction="sum")
    assert torch.allclose(
        mod(query, cands, labels),
        sampled_softmax_loss(query, cands, labels, temperature=0.7, reduction="sum"),
    )
    assert "temperature=0.7" in repr(mod)


def _bad(**kw):
    query, cands, labels, _ = _problem(7, b=3, c=4, d=2)
    args = dict(query=query, candidates=cands, labels=labels, log_q=None)
    args.update(kw)
    opts = {
        k: args.pop(k) for k in list(args) if k not in ("query", "candidates", "labels", "log_q")
    }
    return lambda: sampled_softmax_loss(
        args["query"], args["candidates"], args["labels"], args["log_q"], **opts
    )


NAN_Q = torch.ones(3, 2, dtype=torch.float64)
NAN_Q[0, 0] = math.nan


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        (dict(query=torch.ones(3)), ValueError, r"`query` must have shape \(B, d\)"),
        (dict(candidates=torch.ones(4, 5)), ValueError, r"`candidates` must have shape \(C, 2\)"),
        (dict(candidates=torch.ones(2, 4, 2)), ValueError, r"`candidates` must have shape"),
        (dict(query=NAN_Q), ValueError, r"`query` must be finite"),
        (dict(candidates=torch.full((4, 2), math.inf)), ValueError, "`candidates` must be finite"),
        (dict(labels=torch.tensor([0, 1, 4])), ValueError, r"`labels` must lie in \[0, 4\)"),
        (dict(labels=torch.tensor([0, -1, 2])), ValueError, r"`labels` must lie in"),
        (dict(labels=torch.tensor([0, 1])), ValueError, r"`labels` must have shape \(3,\)"),
        (dict(labels=torch.tensor([0.0, 1.0, 2.0])), TypeError, "integer dtype"),
        (dict(log_q=torch.zeros(5)), ValueError, r"`log_q` must have shape \(4,\) or \(3, 4\)"),
        (dict(log_q=torch.tensor([0.0, 0.5, -1.0, -1.0])), ValueError, r"Q must lie in \(0, 1\]"),
        (dict(log_q=torch.tensor([0.0, -math.inf, -1.0, -1.0])), ValueError, r"\(0, 1\]"),
        (dict(log_q=torch.tensor([0.0, math.nan, -1.0, -1.0])), ValueError, "must not be NaN"),
        (
            dict(log_q=torch.tensor([0.0, math.inf, 1.0, 1.0]), correction="expected_count"),
            ValueError,
            "positive and finite",
        ),
        (dict(log_q=torch.zeros(4), correction="count"), ValueError, "`correction` must be one of"),
        (dict(log_q=torch.zeros(4), correction="none"), ValueError, "None when correction='none'"),
        (dict(mask=torch.ones(3, 4, dtype=torch.bool)), ValueError, "own positive"),
        (dict(mask=torch.zeros(3, 3, dtype=torch.bool)), ValueError, r"`mask` must have shape"),
        (dict(mask=torch.zeros(3, 4)), TypeError, "torch.bool"),
        (dict(temperature=0.0), ValueError, "`temperature` must be positive"),
        (dict(temperature="1"), TypeError, "`temperature` must be a float"),
        (dict(reduction="max"), ValueError, "`reduction` must be one of"),
        (dict(query=[[1.0, 2.0]]), TypeError, "`query` must be a torch.Tensor"),
    ],
)
def test_bad_input(kw, exc, match):
    with pytest.raises(exc, match=match):
        _bad(**kw)()


def test_q_above_one_allowed_as_expected_count_and_masked_entries_not_checked():
    query, cands, labels, _ = _problem(8, b=2, c=3, d=2)
    labels = torch.tensor([0, 1])
    log_q = torch.tensor([2.0, 1.0, -math.inf])
    mask = torch.tensor([[False, False, True], [False, False, True]])
    out = sampled_softmax_loss(query, cands, labels, log_q, mask=mask, correction="expected_count")
    assert torch.isfinite(out)
    with pytest.raises(ValueError, match="expected_count"):
        sampled_softmax_loss(query, cands, labels, log_q, mask=mask)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    query, cands, labels, g = _problem(9)
    log_q = -torch.rand(7, generator=g)
    cpu = sampled_softmax_loss(query, cands, labels, log_q)
    gpu = sampled_softmax_loss(query.cuda(), cands.cuda(), labels.cuda(), log_q.cuda())
    assert torch.allclose(cpu, gpu.cpu())


def test_losses_imports_nothing_of_recsys():
    """No recsys.losses <-> recsys.negatives cycle: the loss module is the leaf."""
    import ast
    from pathlib import Path

    import recsys.losses

    tree = ast.parse(Path(recsys.losses.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and m.split(".")[0] == "recsys"], imported
