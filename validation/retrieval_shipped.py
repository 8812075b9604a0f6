"""The shipped retrieval code against the references of the Monte Carlo checks.

The bias curves of :mod:`validation.retrieval_checks` average a closed form of the
expected sampled-softmax gradient over many simulated negative sets, and the training
check builds in-batch candidate sets in NumPy: a per-replicate autograd pass through
``recsys`` would cost minutes. This check ties those references to the code users
import, on every run: on fresh negative sets (duplicates and accidental hits included)
the expected gradient through :func:`recsys.sampled_softmax_candidates` and
:func:`recsys.sampled_softmax_loss` (float64, temperature 0.5), the full-softmax
gradient through :func:`recsys.full_softmax_candidates` against
:func:`sim.expected_full_softmax_gradient`, and the candidate sets of
:func:`recsys.in_batch_candidates` / :func:`recsys.mixed_candidates` must equal the
references to 1e-9. A wrong loss, builder or truth then fails here even when the
Monte Carlo cells cannot see it. Each cell's negative control is the reference of
another variant (the uncorrected loss, the softmax without the positive's term).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import sim
from sim._seed import child_sequences
from validation import retrieval_checks as rc
from validation.core import CheckResult, NegativeControl, RunContext, register
from validation.shipped import Shipped

sampled_softmax_candidates = Shipped("recsys.negatives", "sampled_softmax_candidates")
full_softmax_candidates = Shipped("recsys.negatives", "full_softmax_candidates")
in_batch_candidates = Shipped("recsys.negatives", "in_batch_candidates")
mixed_candidates = Shipped("recsys.negatives", "mixed_candidates")
sampled_softmax_loss = Shipped("recsys.losses", "sampled_softmax_loss")
expected_full_gradient = Shipped("sim.softmax", "expected_full_softmax_gradient")
StreamingFrequencyEstimator = Shipped("recsys.frequency", "StreamingFrequencyEstimator")

#: Temperature of the shipped loss in this check (logits are scaled so that
#: ``<query, item> / tau`` equals the problem's logits): a wrong use of tau shows.
TEMPERATURE = 0.5
_TOL = 1e-9
_M = 16
_SETS = 4


def _relative_gap(got: np.ndarray, want: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(want))), 1e-300)
    return float(np.max(np.abs(got - want)) / scale)


def shipped_expected_gradient(
    logits: np.ndarray, probs: np.ndarray, sampler: np.ndarray, negatives: np.ndarray, key: str
) -> np.ndarray:
    """``sum_y pi_y grad_s loss(y, S)`` through the recsys builder and loss (autograd).

    One row per possible positive ``y`` (one-hot item embeddings), all sharing the
    negative set ``negatives``; rows are weighted by ``probs`` before the backward pass.
    """
    variant = rc.VARIANTS[key]
    n = logits.size
    s = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    items = torch.eye(n, dtype=torch.float64)
    pos, neg = torch.arange(n), torch.as_tensor(negatives)
    kw = variant.builder_kwargs()
    cs = sampled_softmax_candidates(
        pos,
        items[pos],
        neg,
        items[neg],
        sampler_probs=torch.as_tensor(sampler),
        correction=kw["correction"],
        remove_accidental_hits=kw["remove_accidental_hits"],
    )
    log_q, kind = cs.log_q, cs.correction
    if variant.q == "share":  # the plain item share is a control, not a builder option
        log_q, kind = torch.log(torch.as_tensor(sampler))[cs.candidate_ids], "inclusion_probability"
    loss = sampled_softmax_loss(
        (TEMPERATURE * s).expand(n, n),
        cs.candidates,
        cs.labels,
        log_q,
        mask=cs.mask,
        temperature=TEMPERATURE,
        correction=kind,
        correct_positive=kw["correct_positive"],
        reduction="none",
    )
    (loss * torch.as_tensor(probs)).sum().backward()
    return s.grad.numpy()


def reference_expected_gradient(
    logits: np.ndarray, probs: np.ndarray, sampler: np.ndarray, negatives: np.ndarray, key: str
) -> np.ndarray:
    """Return the closed form the bias curves average (`rc.expected_sampled_gradient`)."""
    variant = rc.VARIANTS[key]
    m, n = negatives.size, logits.size
    lq = variant.log_q(sampler, m)
    return rc.expected_sampled_gradient(
        logits,
        probs,
        sim.counts_per_set(negatives[None, :], n),
        lq,
        lq if variant.correct_positive else np.zeros(n),
        remove_accidental_hits=variant.remove_accidental_hits,
        dedupe=variant.dedupe,
    )[0]


def _loss_cells(ctx: RunContext, problem: sim.SoftmaxProblem, ss) -> list[CheckResult]:
    rng_logits, *set_ss = child_sequences(ss, _SETS + 1)
    n = problem.n_items
    logits = np.log(problem.conditional[0]) + np.random.default_rng(rng_logits).normal(0, 1, n)
    probs, sampler = problem.conditional[0], problem.marginal
    sets = [sim.UnigramSampler(sampler, _M).sample(1, rng=s)[0] for s in set_ss]
    out = []
    for key in sorted(rc.VARIANTS):
        other = "uncorrected" if key != "uncorrected" else "logq-all-hits-kept"
        gap = ctrl = 0.0
        for neg in sets:
            got = shipped_expected_gradient(logits, probs, sampler, neg, key)
            gap = max(
                gap,
                _relative_gap(got, reference_expected_gradient(logits, probs, sampler, neg, key)),
            )
            ctrl = max(
                ctrl,
                _relative_gap(got, reference_expected_gradient(logits, probs, sampler, neg, other)),
            )
        out.append(
            CheckResult(
                name=f"retrieval-shipped-gradient/{key}",
                claim=(
                    f"{rc.VARIANTS[key].label}: the expected gradient through the recsys "
                    f"builder and loss (tau = {TEMPERATURE}) equals the bias curves' "
                    f"closed form to {_TOL:g} (relative), on {_SETS} sets of m = {_M}"
                ),
                scenario=rc._scenario(m=_M, n_sets=_SETS, temperature=TEMPERATURE),
                figure=gap,
                expected=0.0,
                tolerance=_TOL,
                rule="at_most",
                n_replicates=_SETS,
                seed=ctx.seed,
                negative_control=NegativeControl(f"closed form of variant {other!r}", ctrl),
            )
        )
    return out


def _full_cell(ctx: RunContext, problem: sim.SoftmaxProblem) -> CheckResult:
    n = problem.n_items
    logits = np.linspace(-1.0, 1.0, n)
    probs = problem.conditional[0]
    s = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    items = torch.eye(n, dtype=torch.float64)
    cs = full_softmax_candidates(torch.arange(n), items)
    loss = sampled_softmax_loss(
        (TEMPERATURE * s).expand(n, n),
        cs.candidates,
        cs.labels,
        cs.log_q,
        mask=cs.mask,
        temperature=TEMPERATURE,
        reduction="none",
    )
    (loss * torch.as_tensor(probs)).sum().backward()
    truth = np.asarray(expected_full_gradient(logits, probs))
    softmax = np.exp(logits - logits.max())
    softmax /= softmax.sum()
    return CheckResult(
        name="retrieval-shipped-gradient/full-softmax",
        claim=(
            "the expected full-softmax gradient through recsys (full_softmax_candidates, "
            "sampled_softmax_loss) equals sim.expected_full_softmax_gradient to 1e-9"
        ),
        scenario=rc._scenario(temperature=TEMPERATURE),
        figure=_relative_gap(s.grad.numpy(), truth),
        expected=0.0,
        tolerance=_TOL,
        rule="at_most",
        n_replicates=1,
        seed=ctx.seed,
        negative_control=NegativeControl(
            "softmax(s) without the -pi term", _relative_gap(softmax, truth)
        ),
    )


def _recsys_set(method: str, pos: np.ndarray, rand: np.ndarray, eta: np.ndarray, n: int):
    """Return the recsys candidate set of one training method (one-hot item embeddings)."""
    emb = torch.eye(n, dtype=torch.float64)
    p_pos = torch.as_tensor(eta[pos])
    tpos = torch.as_tensor(pos)
    if method == "inbatch-uncorrected":
        return in_batch_candidates(
            tpos, emb[pos], None, correction="none", remove_accidental_hits=False
        )
    if method == "inbatch-logq-all-hits-kept":
        return in_batch_candidates(
            tpos, emb[pos], p_pos, correction="expected_count", remove_accidental_hits=False
        )
    if method == "inbatch-logq-pos0-masked":
        return in_batch_candidates(tpos, emb[pos], p_pos)
    return mixed_candidates(
        tpos,
        emb[pos],
        p_pos,
        torch.as_tensor(rand),
        emb[rand],
        torch.as_tensor(eta[rand]),
        catalog_size=n,
    )


def _set_gap(cs: Any, twin: tuple) -> float:
    """Largest disagreement (ids, log Q, mask) of a recsys set and a NumPy twin."""
    cand, log_q, mask, _ = twin
    if cs.candidate_ids.shape[0] != cand.shape[1] or (cs.log_q is None) != (log_q is None):
        return float("inf")
    gap = float(np.sum(cs.candidate_ids.numpy() != cand[0]))
    if log_q is not None:
        gap = max(gap, float(np.max(np.abs(cs.log_q.double().numpy() - log_q[0]))))
    rows = cs.labels.shape[0]
    got = np.zeros((rows, cand.shape[1]), bool) if cs.mask is None else cs.mask.numpy()
    want = np.zeros_like(got) if mask is None else mask[0]
    if got.shape != want.shape:
        return float("inf")
    return max(gap, float(np.sum(got != want)))


def _builder_cells(ctx: RunContext, ss) -> list[CheckResult]:
    rng = np.random.default_rng(ss)
    n, b = 12, 8
    eta = rng.dirichlet(np.ones(n))
    pos = rng.choice(n, size=b, p=eta)
    pos[3] = pos[0]  # a duplicate positive
    rand = rng.integers(0, n, size=5)
    methods = rc.TRAIN_METHODS[1:]
    out = []
    for k, method in enumerate(methods):
        other = methods[(k + 1) % len(methods)]
        cs = _recsys_set(method, pos, rand, eta, n)
        twin = rc.batch_candidates_np(method, pos[None], rand[None], eta, n)
        other_twin = rc.batch_candidates_np(other, pos[None], rand[None], eta, n)
        out.append(
            CheckResult(
                name=f"retrieval-shipped-gradient/builder/{method}",
                claim=(
                    f"{method}: the recsys candidate set (ids, log Q, mask; duplicates "
                    "and hits included) equals the training check's NumPy twin"
                ),
                scenario={"n_items": n, "batch_size": b, "n_random": int(rand.size)},
                figure=_set_gap(cs, twin),
                expected=0.0,
                tolerance=_TOL,
                rule="at_most",
                n_replicates=1,
                seed=ctx.seed,
                negative_control=NegativeControl(
                    f"the twin of {other!r}", _set_gap(cs, other_twin)
                ),
            )
        )
    return out


@register(
    "retrieval-shipped-gradient",
    claim=(
        "The references of the retrieval Monte Carlo checks are the shipped code: the "
        "expected gradient through recsys's sampled-softmax builder and loss, the full "
        "softmax through recsys against sim's exact gradient, and recsys's in-batch and "
        "mixed candidate sets equal the closed forms / NumPy twins the checks average, "
        "to 1e-9."
    ),
    reference="Bengio & Senecal (2008); Jean et al. (2015), eq. 11; Yi et al. (2019).",
    group="retrieval",
)
def check_shipped_gradient(ctx: RunContext) -> list[CheckResult]:
    """Shipped loss, builders and truth against the checks' references (see the claim)."""
    problem = rc._problem()
    ss = ctx.seed_sequence("retrieval-shipped-gradient")
    loss_ss, builder_ss = child_sequences(ss, 2)
    return [
        *_loss_cells(ctx, problem, loss_ss),
        _full_cell(ctx, problem),
        *_builder_cells(ctx, builder_ss),
    ]


__all__: list[Any] = ["check_shipped_gradient", "shipped_expected_gradient"]
