"""Exact properties of the shipped retrieval code, and the checks' shortcuts against it.

The Monte Carlo retrieval checks run the shipped loss and builders, batched (see
:mod:`validation.retrieval_bias` and :mod:`validation.retrieval_training`). This
check, ``retrieval-shipped-gradient``, holds what needs no simulation, to 1e-9:

* ``<variant>``: the bias curves' batched expected gradient (a negative set entered
  through its multiplicities) equals the plain use of
  :func:`recsys.sampled_softmax_candidates` on the drawn ids and
  :func:`recsys.sampled_softmax_loss` (float64, temperature 0.5), on fresh sets with
  duplicates and accidental hits; control: the plain gradient of another variant.
* ``builder/<method>``: the training check's batched candidate sets (ids, Q from
  :func:`recsys.inclusion_probability` / :func:`recsys.expected_count`, masks) equal
  plain per-batch calls of :func:`recsys.in_batch_candidates` /
  :func:`recsys.mixed_candidates` (their own Q); control: another method's set.
* ``full-softmax``: the full softmax through recsys equals
  :func:`sim.expected_full_softmax_gradient`.
* ``exact/...``: exact expectations over *every* ordered negative sequence of a tiny
  problem: logQ with expected counts on every logit, hits kept, has zero expected
  gradient at the true logits, and the uncorrected loss at ``log pi - log q``, for
  any number of negatives (Bengio & Senecal 2008).
* ``hits-carry-no-weight``, ``duplicates-carry-no-weight``,
  ``in-batch-duplicates-carry-no-weight``: a row's loss does not change when copies
  of its positive join the negatives (hits removed), or when the de-duplicated set
  is the same.

A wrong loss (log Q added, divided by the temperature), a builder that leaves hits
or duplicates unmasked or pairs the wrong Q with a set, and a wrong truth fail here
even where the Monte Carlo cells' tolerance is wide.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

import sim
from sim._seed import child_sequences
from validation.core import CheckResult, NegativeControl, RunContext, register
from validation.retrieval_bias import (
    TEMPERATURE,
    VARIANTS,
    _problem,
    _scenario,
    shipped_expected_gradients,
    single_thread,
)
from validation.retrieval_training import TRAIN_BUILDERS, batch_candidates
from validation.shipped import Shipped

sampled_softmax_candidates = Shipped("recsys.negatives", "sampled_softmax_candidates")
full_softmax_candidates = Shipped("recsys.negatives", "full_softmax_candidates")
in_batch_candidates = Shipped("recsys.negatives", "in_batch_candidates")
mixed_candidates = Shipped("recsys.negatives", "mixed_candidates")
sampled_softmax_loss = Shipped("recsys.losses", "sampled_softmax_loss")
shared_negatives_loss = Shipped("recsys.losses", "shared_negatives_loss")
expected_full_gradient = Shipped("sim.softmax", "expected_full_softmax_gradient")

_TOL = 1e-9
_M = 16
_SETS = 4
#: The tiny problem of the exact cells: every one of N^m negative sequences is used.
_EXACT_N, _EXACT_M = 5, 3


def _relative_gap(got: np.ndarray, want: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(want))), 1e-300)
    return float(np.max(np.abs(got - want)) / scale)


def _cell(name, claim, figure, control_label, control, scenario, n, ctx) -> CheckResult:
    return CheckResult(
        name=f"retrieval-shipped-gradient/{name}",
        claim=claim,
        scenario=scenario,
        figure=float(figure),
        expected=0.0,
        tolerance=_TOL,
        rule="at_most",
        n_replicates=n,
        seed=ctx.seed,
        negative_control=NegativeControl(control_label, float(control)),
    )


def shipped_expected_gradient(
    logits: np.ndarray, probs: np.ndarray, sampler: np.ndarray, negatives: np.ndarray, key: str
) -> np.ndarray:
    """``sum_y pi_y grad_s loss(y, S)`` by the plain use of the recsys builder and loss.

    One row per possible positive ``y`` (one-hot item embeddings), all sharing the
    drawn negative ids ``negatives`` (M,); rows are weighted by ``probs`` before the
    backward pass. The item-share control passes ``log q`` by hand.
    """
    variant = VARIANTS[key]
    n = logits.size
    s = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    items = torch.eye(n, dtype=torch.float64)
    pos, neg = torch.arange(n), torch.as_tensor(negatives)
    cs = sampled_softmax_candidates(
        pos,
        items[pos],
        neg,
        items[neg],
        sampler_probs=torch.as_tensor(sampler),
        correction=variant.builder_correction,
        remove_accidental_hits=variant.remove_accidental_hits,
    )
    log_q, kind = cs.log_q, cs.correction
    if variant.correction == "share":  # the plain item share is a control, not a builder option
        log_q, kind = torch.log(torch.as_tensor(sampler))[cs.candidate_ids], "inclusion_probability"
    loss = sampled_softmax_loss(
        (TEMPERATURE * s).expand(n, n),
        cs.candidates,
        cs.labels,
        log_q,
        mask=cs.mask,
        temperature=TEMPERATURE,
        correction=kind,
        correct_positive=variant.correct_positive,
        reduction="none",
    )
    (loss * torch.as_tensor(probs)).sum().backward()
    return s.grad.numpy()


def _loss_cells(ctx: RunContext, problem: sim.SoftmaxProblem, ss) -> list[CheckResult]:
    rng_logits, *set_ss = child_sequences(ss, _SETS + 1)
    n = problem.n_items
    logits = np.log(problem.conditional[0]) + np.random.default_rng(rng_logits).normal(0, 1, n)
    probs, sampler = problem.conditional[0], problem.marginal
    sets = np.stack([sim.UnigramSampler(sampler, _M).sample(1, rng=s)[0] for s in set_ss])
    counts = sim.counts_per_set(sets, n)  # (SETS, N)
    out = []
    for key in sorted(VARIANTS):
        other = "uncorrected" if key != "uncorrected" else "logq-all-hits-kept"
        batched = shipped_expected_gradients(logits, probs, sampler, VARIANTS[key], counts, _M)
        gap = ctrl = 0.0
        for neg, got in zip(sets, batched, strict=True):
            gap = max(
                gap, _relative_gap(got, shipped_expected_gradient(logits, probs, sampler, neg, key))
            )
            ctrl = max(
                ctrl,
                _relative_gap(got, shipped_expected_gradient(logits, probs, sampler, neg, other)),
            )
        out.append(
            _cell(
                key,
                f"{VARIANTS[key].label}: the bias curves' batched expected gradient equals "
                f"the plain recsys builder + loss (tau = {TEMPERATURE}) to {_TOL:g} "
                f"(relative), on {_SETS} sets of m = {_M}",
                gap,
                f"plain gradient of variant {other!r}",
                ctrl,
                _scenario(m=_M, n_sets=_SETS, temperature=TEMPERATURE),
                _SETS,
                ctx,
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
    return _cell(
        "full-softmax",
        "the expected full-softmax gradient through recsys (full_softmax_candidates, "
        "sampled_softmax_loss) equals sim.expected_full_softmax_gradient to 1e-9",
        _relative_gap(s.grad.numpy(), truth),
        "softmax(s) without the -pi term",
        _relative_gap(softmax, truth),
        _scenario(temperature=TEMPERATURE),
        1,
        ctx,
    )


def _plain_set(method: str, pos: np.ndarray, rand: np.ndarray, eta: np.ndarray, n: int):
    """Return the recsys candidate set of one batch by a plain builder call (its own Q)."""
    correction, remove_hits, _ = TRAIN_BUILDERS[method]
    emb = torch.eye(n, dtype=torch.float64)
    p_pos = None if correction == "none" else torch.as_tensor(eta[pos])
    tpos = torch.as_tensor(pos)
    if method.startswith("mixed"):
        return mixed_candidates(
            tpos,
            emb[pos],
            p_pos,
            torch.as_tensor(rand),
            emb[rand],
            torch.as_tensor(eta[rand]),
            catalog_size=n,
            correction=correction,
            remove_accidental_hits=remove_hits,
        )
    return in_batch_candidates(
        tpos, emb[pos], p_pos, correction=correction, remove_accidental_hits=remove_hits
    )


def _set_gap(cs: Any, batched: tuple) -> float:
    """Largest disagreement (ids, log Q, mask) of a plain recsys set and a batched one."""
    cand, log_q, mask = batched[0][0], batched[1], batched[2]
    if cs.candidate_ids.shape[0] != cand.shape[0] or (cs.log_q is None) != (log_q is None):
        return float("inf")
    gap = float(np.sum(cs.candidate_ids.numpy() != cand))
    if log_q is not None:
        gap = max(gap, float(np.max(np.abs(cs.log_q.double().numpy() - log_q[0]))))
    rows = cs.labels.shape[0]
    got = np.zeros((rows, cand.shape[0]), bool) if cs.mask is None else cs.mask.numpy()
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
    methods = tuple(TRAIN_BUILDERS)
    out = []
    for k, method in enumerate(methods):
        other = methods[(k + 1) % len(methods)]
        batched = batch_candidates(method, pos[None], rand[None], eta, n)
        out.append(
            _cell(
                f"builder/{method}",
                f"{method}: the training check's batched candidate set (ids, log Q, mask; "
                "duplicates and hits included) equals a plain recsys builder call",
                _set_gap(_plain_set(method, pos, rand, eta, n), batched),
                f"the plain set of {other!r}",
                _set_gap(_plain_set(other, pos, rand, eta, n), batched),
                {"n_items": n, "batch_size": b, "n_random": int(rand.size)},
                1,
                ctx,
            )
        )
    return out


def _exact_cells(ctx: RunContext, ss) -> list[CheckResult]:
    """Exact expectations over all N^m ordered negative sequences of a tiny problem."""
    rng = np.random.default_rng(ss)
    n, m = _EXACT_N, _EXACT_M
    pi, q = rng.dirichlet(2.0 * np.ones(n)), rng.dirichlet(2.0 * np.ones(n))
    seqs = np.array(list(itertools.product(range(n), repeat=m)))  # (N^m, m)
    weight = np.prod(q[seqs], axis=1)  # (N^m,) probability of each sequence
    counts = sim.counts_per_set(seqs, n)

    def expected(key: str, logits: np.ndarray) -> float:
        g = shipped_expected_gradients(logits, pi, q, VARIANTS[key], counts, m)
        return float(np.max(np.abs(weight @ g)))

    scenario = {"n_items": n, "m": m, "n_sequences": int(seqs.shape[0])}
    truth = np.log(pi)
    at_truth_unc = expected("uncorrected", truth)
    return [
        _cell(
            "exact/logq-all-hits-kept-at-truth",
            f"logQ (expected counts) on every logit, hits kept: the exact expected gradient "
            f"at the true logits is 0 (max |.| <= {_TOL:g}), N = {n}, m = {m}, every sequence",
            expected("logq-all-hits-kept", truth),
            "uncorrected at the truth",
            at_truth_unc,
            scenario,
            int(seqs.shape[0]),
            ctx,
        ),
        _cell(
            "exact/uncorrected-at-log-pi-minus-log-q",
            "uncorrected: the exact expected gradient at log pi - log q is 0 "
            f"(max |.| <= {_TOL:g}), every sequence",
            expected("uncorrected", truth - np.log(q)),
            "uncorrected at the truth",
            at_truth_unc,
            scenario,
            int(seqs.shape[0]),
            ctx,
        ),
    ]


def _sampled_row_losses(pos, neg, n, logits, correction, remove_hits) -> np.ndarray:
    """Per-row shipped loss of positives ``pos`` sharing negatives ``neg`` (uniform q)."""
    items = torch.eye(n, dtype=torch.float64)
    pos_t, neg_t = torch.as_tensor(pos), torch.as_tensor(neg)
    cs = sampled_softmax_candidates(
        pos_t,
        items[pos_t],
        neg_t,
        items[neg_t],
        catalog_size=n,
        correction=correction,
        remove_accidental_hits=remove_hits,
    )
    query = TEMPERATURE * torch.as_tensor(logits).expand(len(pos), n)
    return cs.loss(query, temperature=TEMPERATURE, reduction="none").numpy()


def _in_batch_row_losses(pos, n, logits, p, correction, remove_hits) -> np.ndarray:
    items = torch.eye(n, dtype=torch.float64)
    pos_t = torch.as_tensor(pos)
    probs = None if correction == "none" else torch.as_tensor(p[pos])
    cs = in_batch_candidates(
        pos_t, items[pos_t], probs, correction=correction, remove_accidental_hits=remove_hits
    )
    query = TEMPERATURE * torch.as_tensor(logits).expand(len(pos), n)
    return cs.loss(query, temperature=TEMPERATURE, reduction="none").numpy()


def _invariance_cells(ctx: RunContext, ss) -> list[CheckResult]:
    """Check that removed hits and duplicates (de-duplicated sets) carry no weight."""
    rng = np.random.default_rng(ss)
    n = 6
    logits = rng.normal(size=n)
    p = rng.dirichlet(np.ones(n))
    ids = np.arange(n)
    base = np.array([1, 2, 4])

    def hits_gap(remove_hits: bool) -> float:
        gap = 0.0
        for y in range(n):  # two extra copies of row y's own item among the negatives
            a = _sampled_row_losses(ids[y : y + 1], base, n, logits, "none", remove_hits)
            b = _sampled_row_losses(
                ids[y : y + 1], np.concatenate([base, [y, y]]), n, logits, "none", remove_hits
            )
            gap = max(gap, float(np.max(np.abs(a - b))))
        return gap

    def dup_gap(correction: str) -> float:  # same m, same distinct items {0, 3, 5}
        a = _sampled_row_losses(ids, np.array([0, 0, 3, 5]), n, logits, correction, True)
        b = _sampled_row_losses(ids, np.array([0, 3, 5, 5]), n, logits, correction, True)
        return float(np.max(np.abs(a - b)))

    def in_batch_gap(remove_hits: bool) -> float:
        # rows holding item 0 see the same negatives with or without its second copy
        three = _in_batch_row_losses(np.array([0, 1, 0, 2]), n, logits, p, "none", remove_hits)
        two = _in_batch_row_losses(np.array([0, 1, 2]), n, logits, p, "none", remove_hits)
        gap = max(abs(three[0] - two[0]), abs(three[2] - two[0]))
        if remove_hits:  # de-duplicated: row 1 sees {0, 2} in both batches of four
            a = _in_batch_row_losses(
                np.array([0, 1, 0, 2]), n, logits, p, "inclusion_probability", True
            )
            b = _in_batch_row_losses(
                np.array([0, 1, 2, 2]), n, logits, p, "inclusion_probability", True
            )
            gap = max(gap, abs(a[1] - b[1]))
        return float(gap)

    scenario = {"n_items": n, "temperature": TEMPERATURE}
    return [
        _cell(
            "hits-carry-no-weight",
            "sampled_softmax_candidates (hits removed, no correction): a row's loss is "
            "unchanged when two copies of its positive join the negatives",
            hits_gap(True),
            "hits kept",
            hits_gap(False),
            scenario,
            n,
            ctx,
        ),
        _cell(
            "duplicates-carry-no-weight",
            "sampled_softmax_candidates with inclusion probabilities (de-duplicated): "
            "negatives [0, 0, 3, 5] and [0, 3, 5, 5] give every row the same loss",
            dup_gap("inclusion_probability"),
            "expected counts (multiset)",
            dup_gap("expected_count"),
            scenario,
            n,
            ctx,
        ),
        _cell(
            "in-batch-duplicates-carry-no-weight",
            "in_batch_candidates (hits removed): rows holding item 0 in batch [0, 1, 0, 2] "
            "have the loss of row 0 in [0, 1, 2]; with inclusion probabilities row 1 has "
            "the same loss in [0, 1, 0, 2] and [0, 1, 2, 2]",
            in_batch_gap(True),
            "hits kept",
            in_batch_gap(False),
            scenario,
            n,
            ctx,
        ),
    ]


def _fast_loss_cell(ctx: RunContext, ss) -> CheckResult:
    """Compare the training step's fused loss with the builder + loss it stands in for."""
    rng = np.random.default_rng(ss)
    b, m, d, n = 6, 12, 4, 10  # ids drawn from 10 items: duplicates and hits are certain
    pos, neg = (torch.as_tensor(rng.integers(0, n, k)) for k in (b, m))
    query, table = (torch.as_tensor(rng.normal(size=shape)) for shape in ((b, d), (n, d)))
    log_q = float(np.log(m / n))  # uniform draws: expected count Q = m / N

    def loss_and_grads(fast: bool, lq: float | None) -> np.ndarray:
        q, t = query.clone().requires_grad_(), table.clone().requires_grad_()
        if fast:
            loss = shared_negatives_loss(
                q, t[pos], t[neg], lq, positive_ids=pos, negative_ids=neg, temperature=TEMPERATURE
            )
        else:
            uniform = torch.full((n,), 1.0 / n, dtype=torch.float64)
            cs = sampled_softmax_candidates(pos, t[pos], neg, t[neg], sampler_probs=uniform)
            loss = cs.loss(q, temperature=TEMPERATURE)
        loss.backward()
        return np.concatenate([[loss.item()], q.grad.numpy().ravel(), t.grad.numpy().ravel()])

    want = loss_and_grads(False, log_q)
    return _cell(
        "fast-sampled-loss",
        "the training step's fused shared_negatives_loss equals sampled_softmax_loss on "
        f"sampled_softmax_candidates (uniform draws, hits removed): loss and gradients to "
        f"{_TOL:g} (relative), B = {b}, M = {m}, N = {n}",
        _relative_gap(loss_and_grads(True, log_q), want),
        "fused loss without the log Q of the negatives",
        _relative_gap(loss_and_grads(True, None), want),
        _scenario(m=m, batch=b, n_items=n, temperature=TEMPERATURE),
        1,
        ctx,
    )


@register(
    "retrieval-shipped-gradient",
    claim=(
        "Exact properties of the shipped retrieval code, to 1e-9: the batched "
        "evaluations of the Monte Carlo checks equal plain calls of recsys's builders "
        "and loss; the full softmax through recsys equals sim's exact gradient; exact "
        "expectations over every negative sequence vanish where theory says (logQ on "
        "every logit at the truth, the uncorrected loss at log pi - log q); removed hits "
        "and duplicates carry no weight; the training step's fused sampled loss equals "
        "the builder + loss."
    ),
    reference="Bengio & Senecal (2008); Jean et al. (2015), eq. 11; Yi et al. (2019).",
    group="retrieval",
)
@single_thread()
def check_shipped_gradient(ctx: RunContext) -> list[CheckResult]:
    """Exact properties of the shipped loss, builders and truth (see the claim)."""
    problem = _problem()
    ss = ctx.seed_sequence("retrieval-shipped-gradient")
    loss_ss, builder_ss, exact_ss, inv_ss, fast_ss = child_sequences(ss, 5)
    return [
        *_loss_cells(ctx, problem, loss_ss),
        _full_cell(ctx, problem),
        *_builder_cells(ctx, builder_ss),
        *_exact_cells(ctx, exact_ss),
        *_invariance_cells(ctx, inv_ss),
        _fast_loss_cell(ctx, fast_ss),
    ]


__all__: list[Any] = ["check_shipped_gradient", "shipped_expected_gradient"]
