"""Softmax losses over a per-batch candidate set, with the logQ correction (docs/theory.md §4).

API overview
------------
One functional core, :func:`sampled_softmax_loss`, computes for each row ``i`` of a batch

    loss_i = -z[i, labels[i]] + logsumexp_{j not masked} z[i, j],
    z[i, j] = <query_i, candidate_j> / temperature - log Q[i, j],

where the positive's correction is dropped (``log Q[i, labels[i]] := 0``) unless
``correct_positive=True``. The four ways of training a retrieval model are four
builders of ``(candidates, labels, log_q, mask)`` in :mod:`recsys.negatives`, each
returning a :class:`~recsys.negatives.CandidateSet`:

>>> import torch
>>> from recsys import in_batch_candidates, sampled_softmax_loss
>>> query, items = torch.eye(3), torch.eye(3)            # (B, d), (B, d)
>>> ids, p = torch.tensor([4, 8, 4]), torch.tensor([0.2, 0.1, 0.2])
>>> cs = in_batch_candidates(ids, items, p)              # Q = 1 - (1 - p)^(B - 1)
>>> loss = sampled_softmax_loss(query, cs.candidates, cs.labels, cs.log_q,
...                             mask=cs.mask, correction=cs.correction)
>>> bool(torch.isclose(loss, cs.loss(query)))
True

=============================  ================================  ===================
builder                        candidates                        Q (``correction``)
=============================  ================================  ===================
``full_softmax_candidates``    whole catalog (N, d)              none
``sampled_softmax_candidates`` B positives + M shared negatives  ``M q(y)`` (count) or
                                                                 ``1-(1-q)^M`` (prob.)
``in_batch_candidates``        the B positives                   ``1-(1-p)^(B-1)`` or
                                                                 ``(B-1) p``
``mixed_candidates``           B positives + B' uniform items    ``1-(1-p)^(B-1)(1-γ)^B'``
                                                                 or ``(B-1)p + B'γ``
=============================  ================================  ===================

Conventions
-----------
* Shapes: ``query`` (B, d); ``candidates`` (C, d) shared by the batch, or (B, C, d)
  per row; ``labels`` (B,) int64 index of each row's positive among the candidates;
  ``log_q`` (C,) or (B, C); ``mask`` (B, C) bool, True = excluded.
* Temperature: the correction is applied to the temperature-scaled logits,
  ``q.c / tau - log Q`` (log Q, *not* log Q / tau): Q is a property of the sampler,
  not of the model's scale.
* One name, ``correction``, for the kind of Q everywhere (builders, ``CandidateSet``
  and the losses): ``"inclusion_probability"`` (an inclusion probability or an item
  share, checked to lie in (0, 1]), ``"expected_count"`` (positive, may exceed 1) or
  ``"none"`` (no ``log_q``). Only the unmasked entries are checked.
* Imports point one way: :mod:`recsys.negatives` (the builders, ``CandidateSet``,
  ``MixedNegativesLoss``) uses this module; this module imports nothing of recsys.
* Pairings that are consistent (expected gradient -> full-softmax gradient, bias
  O(1/m)): ``correct_positive=False`` with accidental hits masked (the default of both
  the loss and the builders), or ``correct_positive=True`` with accidental hits *kept*
  (``remove_accidental_hits=False``; exactly unbiased at the true logits). Correcting
  the positive while removing hits is biased, and the bias grows with the number of
  negatives (see ``docs/retrieval.md``).

References
----------
.. [1] S. Jean, K. Cho, R. Memisevic, Y. Bengio, "On Using Very Large Target Vocabulary
   for Neural Machine Translation", ACL 2015, eq. 11.
.. [2] X. Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
   Recommendations", RecSys 2019, eq. 3.
.. [3] J. Yang et al., "Mixed Negative Sampling for Learning Two-tower Neural Networks
   in Recommendations", WWW 2020 Companion.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

Correction = Literal["inclusion_probability", "expected_count", "none"]
Reduction = Literal["mean", "sum", "none"]
_CORRECTIONS = ("inclusion_probability", "expected_count", "none")
_REDUCTIONS = ("mean", "sum", "none")
#: Rounding slack when checking log Q <= 0 for probabilities (float32 log of 1.0).
_LOG_PROB_SLACK = 1e-5


def _check_tensor(x, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor; got {type(x).__name__}.")


def _check_finite(x: Tensor, name: str) -> None:
    if not x.is_floating_point():
        raise TypeError(f"`{name}` must have a floating dtype; got {x.dtype}.")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"`{name}` must be finite; got NaN or infinite entries.")


def _validate_softmax_loss_from_logits(
    logits, labels, log_q, mask, correct_positive, correction, reduction
):
    _check_tensor(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"`logits` must have shape (B, C); got {tuple(logits.shape)}.")
    _check_finite(logits, "logits")
    b, c = logits.shape
    _check_tensor(labels, "labels")
    if labels.ndim != 1 or labels.shape[0] != b:
        raise ValueError(f"`labels` must have shape ({b},); got {tuple(labels.shape)}.")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"`labels` must have an integer dtype; got {labels.dtype}.")
    if b and (int(labels.min()) < 0 or int(labels.max()) >= c):
        raise ValueError(
            f"`labels` must lie in [0, {c}) (the number of candidates); got values in "
            f"[{int(labels.min())}, {int(labels.max())}]."
        )
    if correction not in _CORRECTIONS:
        raise ValueError(f"`correction` must be one of {_CORRECTIONS}; got {correction!r}.")
    if correction == "none" and log_q is not None:
        raise ValueError("`log_q` must be None when correction='none'; got a tensor.")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {_REDUCTIONS}; got {reduction!r}.")
    if not isinstance(correct_positive, bool):
        raise TypeError(
            f"`correct_positive` must be a bool; got {type(correct_positive).__name__}."
        )
    if mask is not None:
        _check_tensor(mask, "mask")
        if mask.dtype != torch.bool:
            raise TypeError(f"`mask` must have dtype torch.bool; got {mask.dtype}.")
        if tuple(mask.shape) != (b, c):
            raise ValueError(f"`mask` must have shape ({b}, {c}); got {tuple(mask.shape)}.")
        if b and bool(mask.gather(1, labels.long().unsqueeze(1)).any()):
            raise ValueError("`mask` must not exclude a row's own positive (mask[i, labels[i]]).")
    if log_q is not None:
        _check_tensor(log_q, "log_q")
        if tuple(log_q.shape) not in ((c,), (b, c)):
            raise ValueError(
                f"`log_q` must have shape ({c},) or ({b}, {c}); got {tuple(log_q.shape)}."
            )
        if not log_q.is_floating_point():
            raise TypeError(f"`log_q` must have a floating dtype; got {log_q.dtype}.")
        used = torch.ones(b, c, dtype=torch.bool, device=log_q.device)  # (B, C)
        if mask is not None:
            used &= ~mask
        if not correct_positive and b:
            used[torch.arange(b, device=log_q.device), labels.long()] = False
        values = log_q.expand(b, c)[used]  # (k,)
        if values.numel():
            if bool(torch.isnan(values).any()):
                raise ValueError("`log_q` must not be NaN.")
            lo, hi = float(values.min()), float(values.max())
            if correction == "inclusion_probability":
                if lo == -math.inf or hi > _LOG_PROB_SLACK:
                    raise ValueError(
                        "Q must lie in (0, 1] when `correction`='inclusion_probability'; got "
                        f"Q in [{math.exp(lo)}, {math.exp(hi)}]. Pass "
                        "correction='expected_count' for expected counts."
                    )
            elif not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError(
                    "Q must be positive and finite when `correction`='expected_count'; got Q in "
                    f"[{math.exp(lo) if lo > -math.inf else 0.0}, {math.exp(hi)}]."
                )


def softmax_loss_from_logits(
    logits: Tensor,
    labels: Tensor,
    log_q: Tensor | None = None,
    *,
    mask: Tensor | None = None,
    correct_positive: bool = False,
    correction: Correction = "inclusion_probability",
    reduction: Reduction = "mean",
    validate: bool = True,
) -> Tensor:
    """Softmax cross-entropy over candidates given their (already scaled) logits.

    Parameters
    ----------
    logits : Tensor
        ``(B, C)`` model logits ``s(x_i, c_j)`` (already divided by the temperature).
    labels : Tensor
        ``(B,)`` int64 index of each row's positive among the ``C`` candidates.
    log_q : Tensor, optional
        ``(C,)`` or ``(B, C)`` log Q of each candidate; subtracted from the logits.
    mask : Tensor, optional
        ``(B, C)`` bool, True where a candidate is excluded from the row's softmax.
    correct_positive : bool, default False
        Whether the positive's logit is corrected too (otherwise its log Q is 0).
    correction : {"inclusion_probability", "expected_count", "none"}
        Kind of Q, checked on the entries used: (0, 1], (0, inf), or no ``log_q``.
    reduction : {"mean", "sum", "none"}
        Reduction over rows; "none" returns ``(B,)``.
    validate : bool, default True
        Check shapes, ranges and finiteness (each check synchronises a CUDA device).

    Returns
    -------
    Tensor
        Scalar, or ``(B,)`` with ``reduction="none"``.

    Notes
    -----
    ``loss_i = -z_{i,y_i} + log sum_{j unmasked} exp z_{ij}``,
    ``z_ij = logits_ij - log Q_ij`` (docs/theory.md §4; Jean et al. 2015, eq. 11). The gradient
    with respect to the logits is ``softmax(z_i) - e_{y_i}`` on the unmasked entries.

    Examples
    --------
    >>> logits = torch.tensor([[2.0, 0.0, 0.0]])
    >>> round(float(softmax_loss_from_logits(logits, torch.tensor([0]))), 4)
    0.2395
    """
    if validate:
        _validate_softmax_loss_from_logits(
            logits, labels, log_q, mask, correct_positive, correction, reduction
        )
    b, c = logits.shape
    labels = labels.long().unsqueeze(1)  # (B, 1)
    z = logits  # (B, C)
    if log_q is not None:
        lq = log_q.to(logits.dtype).expand(b, c)  # (B, C)
        if not correct_positive:
            lq = lq.scatter(1, labels, torch.zeros_like(labels, dtype=logits.dtype))  # (B, C)
        z = z - lq  # (B, C)
    if mask is not None:
        z = z.masked_fill(mask, -math.inf)  # (B, C)
    # logsumexp_j z_ij - z_{i, y_i}, fused (log-softmax and its backward in one kernel each)
    return nn.functional.cross_entropy(z, labels.squeeze(1), reduction=reduction)


def _validate_sampled_softmax_loss(query, candidates, temperature):
    _check_tensor(query, "query")
    _check_tensor(candidates, "candidates")
    if query.ndim != 2:
        raise ValueError(f"`query` must have shape (B, d); got {tuple(query.shape)}.")
    b, d = query.shape
    if candidates.ndim == 2:
        if candidates.shape[1] != d:
            raise ValueError(
                f"`candidates` must have shape (C, {d}) to match `query` (B, d); "
                f"got {tuple(candidates.shape)}."
            )
    elif candidates.ndim == 3:
        if candidates.shape[0] != b or candidates.shape[2] != d:
            raise ValueError(
                f"`candidates` must have shape (C, {d}) or ({b}, C, {d}); "
                f"got {tuple(candidates.shape)}."
            )
    else:
        raise ValueError(
            f"`candidates` must have shape (C, d) or (B, C, d); got {tuple(candidates.shape)}."
        )
    _check_finite(query, "query")
    _check_finite(candidates, "candidates")
    if isinstance(temperature, Tensor):
        if temperature.numel() != 1:
            raise ValueError(
                f"`temperature` must be a scalar; got shape {tuple(temperature.shape)}."
            )
        t = float(temperature.detach())
    elif isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        t = float(temperature)
    else:
        raise TypeError(
            f"`temperature` must be a float or a scalar Tensor; got {type(temperature).__name__}."
        )
    if not (math.isfinite(t) and t > 0.0):
        raise ValueError(f"`temperature` must be positive and finite; got {t}.")


def sampled_softmax_loss(
    query: Tensor,
    candidates: Tensor,
    labels: Tensor,
    log_q: Tensor | None = None,
    *,
    mask: Tensor | None = None,
    temperature: float | Tensor = 1.0,
    correct_positive: bool = False,
    correction: Correction = "inclusion_probability",
    reduction: Reduction = "mean",
    validate: bool = True,
) -> Tensor:
    """Softmax loss over a candidate set with the logQ correction (the functional core).

    Parameters
    ----------
    query : Tensor
        ``(B, d)`` query (user) embeddings.
    candidates : Tensor
        ``(C, d)`` candidate embeddings shared by the batch, or ``(B, C, d)`` per row.
    labels : Tensor
        ``(B,)`` int64 index in ``[0, C)`` of each row's positive among the candidates.
    log_q : Tensor, optional
        ``(C,)`` or ``(B, C)`` log Q of each candidate, of the kind ``correction``. None: no
        correction (plain softmax over the candidates).
    mask : Tensor, optional
        ``(B, C)`` bool, True = excluded from the row's softmax (accidental hits,
        duplicates). Must be False at each row's positive.
    temperature : float or scalar Tensor, default 1.0
        ``tau`` > 0; logits are ``<query, candidate> / tau``.
    correct_positive : bool, default False
        Subtract log Q from the positive's logit too. Consistent with accidental hits
        kept; with hits masked, leave it False (module notes).
    correction : {"inclusion_probability", "expected_count", "none"}, optional
        Default "inclusion_probability".
        Kind of ``exp(log_q)``, checked on the entries used: a probability in (0, 1]
        (inclusion probability with a de-duplicated set, or an item share), an
        expected count in (0, inf) (with a multiset), or ``"none"`` (``log_q`` None).
        The same word and values as the candidate builders' ``correction``.
    reduction : {"mean", "sum", "none"}, default "mean"
        Reduction over the ``B`` rows.
    validate : bool, default True
        Check shapes, label range, Q's unit and finiteness (synchronises a CUDA device).

    Returns
    -------
    Tensor
        Scalar loss, or ``(B,)`` with ``reduction="none"``.

    Raises
    ------
    ValueError
        Wrong shapes, labels out of range, NaN or infinite embeddings, Q outside its
        unit's range, a mask hiding a positive, a non-positive temperature.
    TypeError
        Non-tensor inputs or wrong dtypes.

    Notes
    -----
    ``z_ij = <q_i, c_j> / tau - log Q_ij`` and
    ``loss_i = -z_{i,y_i} + log sum_{j unmasked} exp z_ij`` (docs/theory.md §4), with
    ``log Q_{i,y_i} = 0`` unless ``correct_positive``. With all catalog items as
    candidates and no ``log_q`` it is the full softmax; with a constant Q and
    ``correct_positive=True`` the correction cancels. The logQ correction follows
    Jean et al. [1]_ for sampled softmax and Yi et al. [2]_ (eq. 3) for in-batch
    negatives.

    References
    ----------
    .. [1] S. Jean, K. Cho, R. Memisevic, Y. Bengio, "On Using Very Large Target
       Vocabulary for Neural Machine Translation", ACL 2015.
    .. [2] X. Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
       Recommendations", RecSys 2019.

    Examples
    --------
    >>> q, c = torch.eye(2), torch.eye(2)
    >>> round(float(sampled_softmax_loss(q, c, torch.tensor([0, 1]))), 4)
    0.3133
    >>> log_q = torch.log(torch.tensor([0.5, 0.5]))  # uniform Q cancels
    >>> round(float(sampled_softmax_loss(q, c, torch.tensor([0, 1]), log_q,
    ...                                  correct_positive=True)), 4)
    0.3133
    """
    if validate:
        _validate_sampled_softmax_loss(query, candidates, temperature)
    if candidates.ndim == 2:
        logits = query @ candidates.T  # (B, C)
    else:
        logits = torch.einsum("bd,bcd->bc", query, candidates)  # (B, C)
    logits = logits / temperature  # (B, C)
    return softmax_loss_from_logits(
        logits,
        labels,
        log_q,
        mask=mask,
        correct_positive=correct_positive,
        correction=correction,
        reduction=reduction,
        validate=validate,
    )


class SampledSoftmaxLoss(nn.Module):
    """``nn.Module`` wrapper of :func:`sampled_softmax_loss`.

    Parameters
    ----------
    temperature : float, default 1.0
        ``tau`` > 0.
    correct_positive : bool, default False
        As in :func:`sampled_softmax_loss`.
    reduction : {"mean", "sum", "none"}, default "mean"
        Reduction over rows.

    Examples
    --------
    >>> from recsys.negatives import full_softmax_candidates
    >>> cs = full_softmax_candidates(torch.tensor([0, 1]), torch.eye(2))
    >>> round(float(SampledSoftmaxLoss()(torch.eye(2), cs)), 4)
    0.3133
    """

    def __init__(
        self,
        temperature: float = 1.0,
        correct_positive: bool = False,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        if not (
            isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0
        ):
            raise ValueError(f"`temperature` must be positive and finite; got {temperature!r}.")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"`reduction` must be one of {_REDUCTIONS}; got {reduction!r}.")
        self.temperature = float(temperature)
        self.correct_positive = bool(correct_positive)
        self.reduction = reduction

    def forward(
        self,
        query: Tensor,
        candidates,
        labels: Tensor | None = None,
        log_q: Tensor | None = None,
        mask: Tensor | None = None,
        correction: Correction = "inclusion_probability",
    ) -> Tensor:
        """Loss of ``query`` (B, d) on a :class:`~recsys.negatives.CandidateSet` or tensors."""
        if not isinstance(candidates, Tensor):  # a CandidateSet (recsys.negatives)
            if labels is not None or log_q is not None or mask is not None:
                raise ValueError(
                    "pass either a CandidateSet or (candidates, labels, log_q, mask), not both."
                )
            return candidates.loss(
                query,
                temperature=self.temperature,
                correct_positive=self.correct_positive,
                reduction=self.reduction,
            )
        if labels is None:
            raise ValueError("`labels` must be given with a candidates tensor.")
        return sampled_softmax_loss(
            query,
            candidates,
            labels,
            log_q,
            mask=mask,
            temperature=self.temperature,
            correct_positive=self.correct_positive,
            correction=correction,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:  # noqa: D102
        return (
            f"temperature={self.temperature}, correct_positive={self.correct_positive}, "
            f"reduction={self.reduction!r}"
        )


def _hit_coordinates(positive_ids: Tensor, negative_ids: Tensor) -> tuple[Tensor, Tensor]:
    """``(j, i)`` of every pair with ``negative_ids[j] == positive_ids[i]``, without a (M, B) pass.

    Sorts the M negatives and looks each positive's run up by binary search; the
    pairs are those of ``(negative_ids[:, None] == positive_ids[None, :]).nonzero()``, in
    another order (tests/recsys/test_speed_step.py). Output sizes depend on the data, so
    this synchronises a CUDA device; it is used on the CPU only.
    """
    ordered, perm = torch.sort(negative_ids)  # (M,)
    lo = torch.searchsorted(ordered, positive_ids)  # (B,)
    count = torch.searchsorted(ordered, positive_ids, right=True) - lo  # (B,) hits per row
    rows = torch.repeat_interleave(torch.arange(positive_ids.shape[0]), count)  # (H,)
    first = torch.repeat_interleave(lo - (torch.cumsum(count, 0) - count), count)  # (H,)
    cols = perm[first + torch.arange(rows.shape[0])]  # (H,) negative index of each hit
    return cols, rows


def _mask_hits_(zt: Tensor, positive_ids: Tensor, negative_ids: Tensor, *, sparse: bool) -> None:
    """Set ``zt[j, i] = -inf`` (in place) where ``negative_ids[j] == positive_ids[i]``.

    ``sparse``: at the few hit coordinates (:func:`_hit_coordinates`, the CPU way);
    otherwise one ``(M, B)`` comparison (no data-dependent sizes, the accelerator way).
    """
    if sparse:
        hit = _hit_coordinates(positive_ids, negative_ids)  # (H,), (H,)
        zt.index_put_(hit, zt.new_tensor(-math.inf))
    else:
        zt.masked_fill_(negative_ids.unsqueeze(1) == positive_ids.unsqueeze(0), -math.inf)


_LOG2_E = 1.0 / math.log(2.0)


class _SharedNegativesSoftmax(torch.autograd.Function):
    """Loss of :func:`shared_negatives_loss` with a hand-written backward (one saved (M, B)).

    The logits are computed in base 2 (``z * log2(e)``, the factor folded into the
    query side) because ``exp2`` costs about half of ``exp`` on the CPU, and the
    exponentials of the ``(M, B)`` logits are the most expensive elementwise pass.
    """

    @staticmethod
    def forward(ctx, query, positives, negatives, log_q, positive_ids, negative_ids, temperature):  # noqa: D102
        qs = query * (_LOG2_E / temperature)  # (B, d): log2(e)/tau folded into the query
        pos = (qs * positives).sum(dim=1)  # (B,) positive logits (base 2), never corrected
        # the logits of the negatives, stored transposed (M, B): the faster layout for
        # the three matrix products here; the only (M, B) buffer, reused in place
        zt = torch.mm(negatives, qs.T)  # (M, B)
        if log_q is not None:
            log_q = log_q.unsqueeze(1) if isinstance(log_q, Tensor) and log_q.ndim else log_q
            zt.sub_(log_q * _LOG2_E)  # scalar or (M, 1)
        if positive_ids is not None:  # accidental hits leave the softmax
            _mask_hits_(zt, positive_ids, negative_ids, sparse=zt.device.type == "cpu")
        m = torch.maximum(zt.amax(dim=0), pos) if zt.shape[0] else pos  # (B,) column maxima
        zt.sub_(m).exp2_()  # (M, B) exp(z - max z)
        e_pos = torch.exp2(pos - m)  # (B,)
        total = zt.sum(dim=0) + e_pos  # (B,)
        zt.div_(total)  # (M, B) softmax over the negatives
        p_pos = e_pos / total  # (B,) softmax of the positive
        ctx.save_for_backward(qs, positives, negatives, zt, p_pos)
        ctx.temperature = temperature
        return ((m - pos) / _LOG2_E + torch.log(total)).mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss):  # noqa: D102
        qs, positives, negatives, softmax_t, p_pos = ctx.saved_tensors
        scale = grad_loss / qs.shape[0]  # d mean / d loss_i
        coef = ((p_pos - 1) * scale).unsqueeze(1)  # (B, 1): d loss / d positive logit
        # d loss / d (q_i / tau) = sum_j P_ij n_j + (P_i+ - 1) p_i; qs = q log2(e) / tau
        grad_qs = torch.mm(softmax_t.T, negatives).mul_(scale).add_(coef * positives)  # (B, d)
        grad_negatives = torch.mm(softmax_t, qs).mul_(scale / _LOG2_E)  # (M, d)
        grad_positives = coef * qs / _LOG2_E  # (B, d)
        grads = (grad_qs / ctx.temperature, grad_positives, grad_negatives)
        return (*grads, None, None, None, None)


def shared_negatives_loss(
    query: Tensor,
    positives: Tensor,
    negatives: Tensor,
    log_q: float | Tensor | None = None,
    *,
    positive_ids: Tensor | None = None,
    negative_ids: Tensor | None = None,
    temperature: float = 1.0,
) -> Tensor:
    """Mean sampled-softmax loss of rows with their own positive and M shared negatives.

    The loss that :func:`sampled_softmax_loss` gives on the candidate set of
    :func:`recsys.negatives.sampled_softmax_candidates` (the other rows' positives
    masked, the positive uncorrected, accidental hits removed when the ids are given),
    computed without the ``B`` masked columns and with a hand-written backward: one
    ``(M, B)`` buffer, reused in place for the logits, their exponentials and the
    softmax that the backward needs.

    Parameters
    ----------
    query : Tensor
        ``(B, d)`` query (user) embeddings.
    positives : Tensor
        ``(B, d)`` embedding of each row's positive.
    negatives : Tensor
        ``(M, d)`` negatives shared by the batch.
    log_q : float or Tensor, optional
        log Q of the negatives: a scalar (e.g. ``log(M / N)`` for uniform draws) or
        ``(M,)``; subtracted from their logits. No gradient flows to it.
    positive_ids, negative_ids : Tensor, optional
        ``(B,)`` and ``(M,)`` int64 item ids; when given, a negative equal to the row's
        positive (an accidental hit) is left out of that row's softmax.
    temperature : float, default 1.0
        ``tau`` > 0; logits are ``<query, item> / tau``.

    Returns
    -------
    Tensor
        Scalar: the mean over rows of ``-z_i+ + log(exp z_i+ + sum_{j not hit} exp z_ij)``.

    Notes
    -----
    ``z_i+ = <q_i, p_i> / tau``, ``z_ij = <q_i, n_j> / tau - log Q_j`` (docs/theory.md §4;
    Jean et al. 2015, eq. 11). The gradient with respect to the logits is the softmax
    minus the one-hot of the positive, so the backward is two matrix products with the
    saved softmax. Inputs are not validated (the caller's job, as in training steps).

    Examples
    --------
    >>> q, pos, neg = torch.eye(2), torch.eye(2), torch.eye(2).flip(0)
    >>> round(float(shared_negatives_loss(q, pos, neg, temperature=0.5)), 4)
    0.7586
    """
    if (positive_ids is None) != (negative_ids is None):
        raise ValueError("`positive_ids` and `negative_ids` must be given together or not at all.")
    return _SharedNegativesSoftmax.apply(
        query, positives, negatives, log_q, positive_ids, negative_ids, temperature
    )
