import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import sim
from recsys import (
    in_batch_candidates,
    mixed_candidates,
    sampled_softmax_candidates,
    sampled_softmax_loss,
    softmax_loss_from_logits,
)
from validation import RunContext
from validation import retrieval_checks as rc
from validation.core import BUILTIN_CHECK_MODULES, get_check, iter_checks

CHECKS = (
    "retrieval-gradient-bias",
    "retrieval-fixed-point",
    "retrieval-biased-variants",
    "retrieval-mixed-inclusion",
    "retrieval-streaming-frequency",
    "retrieval-training",
)


@pytest.mark.parametrize("key", sorted(rc.VARIANTS))
def test_numpy_expected_gradient_equals_recsys_autograd(key):
    """The NumPy estimator of the checks is the recsys loss: same gradient w.r.t. logits."""
    variant = rc.VARIANTS[key]
    rng = np.random.default_rng(0)
    n, m = 9, 7
    logits = rng.normal(size=n)
    pi = rng.dirichlet(np.ones(n))
    q = rng.dirichlet(np.ones(n))
    negatives = np.array([0, 0, 3, 5, 5, 5, 8])  # duplicates and accidental hits
    counts = sim.counts_per_set(negatives[None, :], n)
    lq = variant.log_q(q, m)
    g_np = rc.expected_sampled_gradient(
        logits,
        pi,
        counts,
        lq,
        lq if variant.correct_positive else np.zeros(n),
        remove_accidental_hits=variant.remove_accidental_hits,
        dedupe=variant.dedupe,
    )[0]
    # recsys: one row per possible positive y, items as one-hot embeddings
    s = torch.tensor(logits, requires_grad=True)
    items = torch.eye(n, dtype=torch.float64)
    pos = torch.arange(n)
    kw = variant.builder_kwargs()
    cs = sampled_softmax_candidates(
        pos,
        items[pos],
        torch.as_tensor(negatives),
        items[negatives],
        sampler_probs=torch.as_tensor(q),
        correction=kw["correction"],
        remove_accidental_hits=kw["remove_accidental_hits"],
    )
    log_q, kind = cs.log_q, cs.correction
    if variant.q == "share":  # plain item share: not a builder option, passed by hand
        log_q, kind = torch.log(torch.as_tensor(q))[cs.candidate_ids], "inclusion_probability"
    loss = sampled_softmax_loss(
        s.expand(n, n),
        cs.candidates,
        cs.labels,
        log_q,
        mask=cs.mask,
        correction=kind,
        correct_positive=kw["correct_positive"],
        reduction="none",
    )
    (loss * torch.as_tensor(pi)).sum().backward()
    assert np.allclose(s.grad.numpy(), g_np, atol=1e-12)


def test_candidate_logit_gradient_equals_autograd():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 4, 6))
    labels = np.array([[0, 1, 2, 3], [3, 2, 1, 0]])
    log_q = -rng.random((2, 4, 6))
    mask = rng.random((2, 4, 6)) < 0.3
    np.put_along_axis(mask, labels[..., None], False, -1)
    for cp in (False, True):
        g_np = rc.candidate_logit_gradient(logits, labels, log_q, mask, correct_positive=cp)
        for r in range(2):
            z = torch.tensor(logits[r], requires_grad=True)
            softmax_loss_from_logits(
                z,
                torch.as_tensor(labels[r]),
                torch.as_tensor(log_q[r]),
                mask=torch.as_tensor(mask[r]),
                correct_positive=cp,
                reduction="sum",
            ).backward()
            assert np.allclose(z.grad.numpy(), g_np[r], atol=1e-12)


@pytest.mark.parametrize("method", rc.TRAIN_METHODS[1:])
def test_training_candidates_equal_recsys_builders(method):
    rng = np.random.default_rng(2)
    n, b = 12, 6
    eta = rng.dirichlet(np.ones(n))
    pos = rng.choice(n, size=(1, b), p=eta)
    pos[0, 3] = pos[0, 0]  # force a duplicate
    rand = rng.integers(0, n, size=(1, 4))
    cand, log_q, mask, cp = rc.batch_candidates_np(method, pos, rand, eta, n)
    emb = torch.eye(n)
    p_pos = torch.as_tensor(eta[pos[0]])
    if method == "inbatch-uncorrected":
        cs = in_batch_candidates(
            torch.as_tensor(pos[0]),
            emb[pos[0]],
            None,
            correction="none",
            remove_accidental_hits=False,
        )
    elif method == "inbatch-logq-all-hits-kept":
        cs = in_batch_candidates(
            torch.as_tensor(pos[0]),
            emb[pos[0]],
            p_pos,
            correction="expected_count",
            remove_accidental_hits=False,
        )
    elif method == "inbatch-logq-pos0-masked":
        cs = in_batch_candidates(torch.as_tensor(pos[0]), emb[pos[0]], p_pos)
    else:
        cs = mixed_candidates(
            torch.as_tensor(pos[0]),
            emb[pos[0]],
            p_pos,
            torch.as_tensor(rand[0]),
            emb[rand[0]],
            torch.as_tensor(eta[rand[0]]),
            catalog_size=n,
        )
    assert cs.candidate_ids.tolist() == cand[0].tolist()
    if log_q is None:
        assert cs.log_q is None
    else:
        assert np.allclose(cs.log_q.double().numpy(), log_q[0], atol=1e-6)
    got_mask = np.zeros((b, cand.shape[1]), bool) if cs.mask is None else cs.mask.numpy()
    want_mask = np.zeros_like(got_mask) if mask is None else mask[0]
    assert np.array_equal(got_mask, want_mask)
    assert cp == (method == "inbatch-logq-all-hits-kept")


def test_power_law_slope_recovers_exponent():
    m = np.array([16.0, 32, 64, 128])
    k, se = rc.power_law_slope(m, 3.0 / m, 0.01 / m)
    assert k == pytest.approx(-1.0, abs=1e-6) and se > 0


def test_registered_and_in_builtin_modules():
    assert "validation.retrieval_checks" in BUILTIN_CHECK_MODULES
    names = {c.name for c in iter_checks() if c.group == "retrieval"}
    assert set(CHECKS) <= names


@pytest.fixture(scope="module")
def quick_results():
    ctx = RunContext("quick", 0)
    return {name: get_check(name).run(ctx) for name in CHECKS}


@pytest.mark.parametrize("name", CHECKS)
def test_quick_verdicts(quick_results, name):
    results = quick_results[name]
    assert results
    for res in results:
        assert res.passed, (
            f"{res.name}: figure {res.figure} expected {res.expected} ± {res.tolerance}"
        )
        assert res.tolerance > 0 and res.n_replicates > 0
        res.to_dict()  # JSON-serialisable


@pytest.mark.parametrize("name", CHECKS)
def test_negative_controls_fail(quick_results, name):
    for res in quick_results[name]:
        assert res.negative_control is not None, res.name
        assert res.negative_control.failed_as_expected, (
            f"{res.name}: control {res.negative_control.name} = {res.negative_control.figure}"
        )


@pytest.mark.parametrize("name", CHECKS)
def test_plots(quick_results, name):
    fig = get_check(name).plot(quick_results[name])
    assert isinstance(fig, Figure) and fig.axes


def test_uncorrected_demotes_popular_items(quick_results):
    cell = next(
        r
        for r in quick_results["retrieval-fixed-point"]
        if r.name.endswith("uncorrected-at-log-pi-minus-log-q")
    )
    assert cell.extra["demotes_popular"]
