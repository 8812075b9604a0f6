"""Candidate-set builders for softmax retrieval losses, and the proposal Q of each (theory §4).

Every builder returns a :class:`CandidateSet` -- the ``candidates``, ``labels``,
``log_q`` and ``mask`` that :func:`recsys.losses.sampled_softmax_loss` needs -- for one
of four ways of choosing the candidates of a batch of ``B`` (query, positive) pairs:

====================================  ==============================================
builder                               candidates (C of them, shared by the batch)
====================================  ==============================================
:func:`full_softmax_candidates`       the whole catalog (C = N); no correction
:func:`sampled_softmax_candidates`    the B positives + M sampled negatives (C = B + M);
                                      row i sees only its own positive and the M
:func:`in_batch_candidates`           the B positives (C = B)
:func:`mixed_candidates`              the B positives + B' uniform random items (C = B + B')
====================================  ==============================================

Which Q goes with which candidate set
-------------------------------------
* ``correction="expected_count"``: the negatives are a *multiset* (duplicates kept);
  Q(y) is the expected number of copies of y among a row's negatives, e.g. ``M q(y)``
  for M draws with replacement from q, ``(B - 1) p(y)`` for the other rows' positives.
  Units: a count, positive, may exceed 1.
* ``correction="inclusion_probability"``: the negatives are *de-duplicated* (only the
  first copy of an item is kept, the others masked); Q(y) is the probability that y
  is among a row's negatives, e.g. ``1 - (1 - q(y))^M``. Units: a probability in (0, 1].
* ``correction="none"``: no correction (multiset, duplicates kept).

Accidental hits -- a column other than the row's own positive holding the same item --
are masked by default (``remove_accidental_hits=True``).

*The other rows number B - 1.* For row i, the in-batch negatives are the positives of
the *other* ``B - 1`` rows, which (for i.i.d. examples) are independent of row i's
positive. The per-row expected count is therefore ``(B - 1) p(y)`` and the inclusion
probability ``1 - (1 - p(y))^(B - 1) (1 - gamma)^B'``; with these the Horvitz-Thompson
sum over the row's negatives is unbiased for the sum over the catalog minus the positive.
:func:`inclusion_probability` itself evaluates the formula for whatever ``batch_size``
it is given (pass ``B`` for the probability that y is anywhere in the batch's candidate
set, ``B - 1`` for a row's negatives).

References
----------
.. [1] S. Jean, K. Cho, R. Memisevic, Y. Bengio, "On Using Very Large Target Vocabulary
   for Neural Machine Translation", ACL 2015 (sampled softmax, eq. 11).
.. [2] X. Yi, J. Yang, L. Hong, D. Z. Cheng, L. Heldt, A. Kumthekar, Z. Zhao, L. Wei,
   E. Chi, "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
   Recommendations", RecSys 2019 (in-batch softmax with logQ correction, eq. 3).
.. [3] J. Yang, X. Yi, D. Z. Cheng, L. Hong, Y. Li, S. Wang, T. Xu, E. Chi, "Mixed
   Negative Sampling for Learning Two-tower Neural Networks in Recommendations",
   WWW 2020 Companion (section 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from recsys.losses import (
    _CORRECTIONS,
    Correction,
    Reduction,
    SampledSoftmaxLoss,
    sampled_softmax_loss,
)


@dataclass(frozen=True, slots=True)
class CandidateSet:
    """The candidates of one batch, ready for :func:`recsys.losses.sampled_softmax_loss`.

    Attributes
    ----------
    candidates : Tensor
        ``(C, d)`` candidate embeddings, shared by the ``B`` rows of the batch.
    labels : Tensor
        ``(B,)`` int64, index in ``[0, C)`` of each row's positive among the candidates.
    log_q : Tensor or None
        ``(C,)`` log Q of each candidate (the same for every row), or None (no
        correction). Its kind is ``correction``.
    mask : Tensor or None
        ``(B, C)`` bool, True where a candidate is excluded from a row's softmax
        (accidental hits, duplicates, other rows' positives in sampled softmax).
        Never True at a row's own positive.
    candidate_ids : Tensor
        ``(C,)`` int64 item id of each candidate.
    correction : {"inclusion_probability", "expected_count", "none"}
        Kind of ``exp(log_q)``, the builder's ``correction``: an inclusion probability
        in (0, 1] (de-duplicated candidates), an expected count > 0 (multiset of
        candidates), or none (``log_q`` is None).
    """

    candidates: Tensor
    labels: Tensor
    log_q: Tensor | None
    mask: Tensor | None
    candidate_ids: Tensor
    correction: Correction = "none"

    def loss(
        self,
        query: Tensor,
        *,
        temperature: float = 1.0,
        correct_positive: bool = False,
        reduction: Reduction = "mean",
    ) -> Tensor:
        """Return :func:`recsys.losses.sampled_softmax_loss` of ``query`` (B, d) on this set."""
        return sampled_softmax_loss(
            query,
            self.candidates,
            self.labels,
            self.log_q,
            mask=self.mask,
            temperature=temperature,
            correct_positive=correct_positive,
            correction=self.correction,
            reduction=reduction,
        )


# --------------------------------------------------------------------------- formulas


def _validate_inclusion_probability(
    p, batch_size, n_random, catalog_size, exclude_batch, n_excluded=None
):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"`batch_size` must be an int; got {type(batch_size).__name__}.")
    if batch_size < 0:
        raise ValueError(f"`batch_size` must be >= 0; got {batch_size}.")
    if isinstance(n_random, bool) or not isinstance(n_random, (int, np.integer)):
        raise TypeError(f"`n_random` must be an int; got {type(n_random).__name__}.")
    if n_random < 0:
        raise ValueError(f"`n_random` must be >= 0; got {n_random}.")
    if n_random > 0:
        if catalog_size is None:
            raise ValueError("`catalog_size` must be given when `n_random` > 0; got None.")
        if n_excluded is not None and not (
            isinstance(n_excluded, (int, float, np.integer, np.floating))
            and 0 <= n_excluded <= batch_size
        ):
            raise ValueError(f"`n_excluded` must be in [0, batch_size]; got {n_excluded!r}.")
        excluded = (batch_size if n_excluded is None else n_excluded) if exclude_batch else 0
        if catalog_size - excluded < 1:
            raise ValueError(
                "`catalog_size` must exceed the excluded batch items "
                f"({excluded}); got {catalog_size}."
            )
    pmin = float(p.min()) if p.numel() else 0.0
    pmax = float(p.max()) if p.numel() else 0.0
    if not (math.isfinite(pmin) and math.isfinite(pmax)) or pmin < 0.0 or pmax > 1.0:
        raise ValueError(f"`p` must lie in [0, 1]; got values in [{pmin}, {pmax}].")


def _as_float_tensor(p) -> tuple[Tensor, bool]:
    """Return ``p`` as a float64 tensor and whether the input was a tensor."""
    if isinstance(p, Tensor):
        return (p if p.is_floating_point() else p.double()), True
    return torch.as_tensor(np.asarray(p, dtype=np.float64)), False


def _log_not_included(
    p: Tensor, n_draws: int, n_random: int, gamma: float
) -> Tensor:  # same shape as p
    """log[(1 - p)^n_draws (1 - gamma)^n_random], computed with log1p."""
    out = n_draws * torch.log1p(-p) if n_draws else torch.zeros_like(p)  # (...,)
    if n_random > 0:
        out = out + n_random * (math.log1p(-gamma) if gamma < 1.0 else -math.inf)
    return out


def _gamma(n_random, catalog_size, n_excluded, exclude_batch) -> float:
    """Per-draw probability of a given non-excluded item: 1/N or 1/(N - excluded)."""
    if n_random == 0:
        return 0.0
    return 1.0 / (catalog_size - n_excluded) if exclude_batch else 1.0 / catalog_size


def inclusion_probability(
    p,
    batch_size: int,
    n_random: int = 0,
    catalog_size: int | None = None,
    exclude_batch: bool = False,
    *,
    n_excluded: float | None = None,
):
    """Probability that an item is in a candidate set of in-batch + uniform random items.

    Parameters
    ----------
    p : array_like or Tensor
        Probability that one training example's positive is the item (any shape), in
        [0, 1].
    batch_size : int
        Number of i.i.d. positives drawn, ``B``. Pass ``B - 1`` for the negatives of
        one row (the *other* rows; see the module notes).
    n_random : int, default 0
        Number of uniform random items ``B'`` drawn with replacement (shared by the
        batch).
    catalog_size : int, optional
        Catalog size ``N``; required when ``n_random > 0``.
    exclude_batch : bool, default False
        Whether the random draw excludes the batch's items (then gamma = 1/(N - B)).
    n_excluded : float, optional
        Number of distinct items the random draw excludes (default ``batch_size``, the
        formula of docs/theory.md §4). When positives repeat, pass :func:`expected_distinct` (the
        expected number of distinct positives) or the batch's actual distinct count.

    Returns
    -------
    ndarray or Tensor
        ``Q* = 1 - (1 - p)^B (1 - gamma)^B'`` with ``gamma = 1/N`` (or ``1/(N - B)``),
        same shape and kind (NumPy / torch, device) as ``p``.

    Notes
    -----
    Mixed negative sampling [1]_ (docs/theory.md §4); with ``n_random = 0`` it is the in-batch
    inclusion probability of Yi et al. [2]_. Exact for the union of ``B`` i.i.d.
    positives and ``B'`` uniform draws with replacement. With ``exclude_batch`` the
    the textbook gamma = 1/(N - B) assumes the batch holds ``B`` distinct items; when popular
    items repeat fewer are excluded, and the Monte Carlo check
    ``retrieval-mixed-inclusion`` shows the resulting bias (Zipf(1), N = 500, B = 64:
    the Horvitz-Thompson count is 486 instead of 500); with
    ``n_excluded=expected_distinct(p_all, B)`` it agrees to Monte Carlo precision. Pair
    it with a *de-duplicated* candidate set; pair :func:`expected_count` with a
    multiset.

    References
    ----------
    .. [1] J. Yang et al., "Mixed Negative Sampling for Learning Two-tower Neural
       Networks in Recommendations", WWW 2020 Companion, section 3.
    .. [2] X. Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
       Recommendations", RecSys 2019, section 4.

    Examples
    --------
    >>> round(float(inclusion_probability(0.01, 100)), 6)  # 1 - 0.99**100
    0.633968
    >>> round(float(inclusion_probability(0.0, 10, n_random=5, catalog_size=100)), 6)
    0.04901
    """
    pt, was_tensor = _as_float_tensor(p)
    _validate_inclusion_probability(
        pt, batch_size, n_random, catalog_size, exclude_batch, n_excluded
    )
    excluded = batch_size if n_excluded is None else n_excluded
    gamma = _gamma(n_random, catalog_size, excluded, exclude_batch)
    out = -torch.expm1(_log_not_included(pt, int(batch_size), int(n_random), gamma))
    return out if was_tensor else out.numpy()


def expected_count(
    p,
    batch_size: int,
    n_random: int = 0,
    catalog_size: int | None = None,
    exclude_batch: bool = False,
    *,
    n_excluded: float | None = None,
):
    """Return the expected number of copies of an item among in-batch + random items.

    Parameters
    ----------
    p, batch_size, n_random, catalog_size, exclude_batch, n_excluded
        As in :func:`inclusion_probability`.

    Returns
    -------
    ndarray or Tensor
        ``B p + B' gamma`` (``B p + B' gamma (1 - p)^B`` with ``exclude_batch``: an item
        in the batch cannot be drawn), same shape and kind as ``p``; may exceed 1.

    Notes
    -----
    Pair it with a multiset of candidates (duplicates kept). With ``exclude_batch``,
    gamma = 1/(N - B) assumes B distinct batch items, as in
    :func:`inclusion_probability`.

    Examples
    --------
    >>> float(expected_count(0.01, 100, n_random=50, catalog_size=1000))
    1.05
    """
    pt, was_tensor = _as_float_tensor(p)
    _validate_inclusion_probability(
        pt, batch_size, n_random, catalog_size, exclude_batch, n_excluded
    )
    excluded = batch_size if n_excluded is None else n_excluded
    gamma = _gamma(n_random, catalog_size, excluded, exclude_batch)
    rand = n_random * gamma
    if exclude_batch and n_random:
        rand = rand * (1.0 - pt) ** batch_size  # (...,)
    out = batch_size * pt + rand
    return out if was_tensor else out.numpy()


def expected_distinct(p, batch_size: int) -> float:
    """Return the expected number of distinct items among ``batch_size`` i.i.d. positives.

    Parameters
    ----------
    p : array_like or Tensor
        ``(N,)`` law of a positive over the *whole* catalog (sums to 1).
    batch_size : int
        ``B``.

    Returns
    -------
    float
        ``sum_y 1 - (1 - p_y)^B``; use it as ``n_excluded`` of
        :func:`inclusion_probability` when the random draw excludes the batch.

    Examples
    --------
    >>> round(expected_distinct([0.5, 0.5], 2), 3)
    1.5
    """
    pt, _ = _as_float_tensor(p)
    _validate_inclusion_probability(pt, batch_size, 0, None, False)
    return float(-torch.expm1(batch_size * torch.log1p(-pt)).sum())


# --------------------------------------------------------------------------- samplers


def sample_uniform_negatives(
    n: int,
    catalog_size: int,
    *,
    exclude_ids: Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw ``n`` item ids uniformly with replacement from ``range(catalog_size)``.

    Parameters
    ----------
    n : int
        Number of draws (``M`` or ``B'``), >= 0.
    catalog_size : int
        Catalog size ``N``; ids are ``0 .. N-1``.
    exclude_ids : Tensor, optional
        ``(k,)`` ids that cannot be drawn (e.g. the batch's positives, for mixed
        negatives with ``exclude_batch=True``).
    generator : torch.Generator, optional
        Source of randomness (on ``device``).
    device : torch.device or str, optional
        Device of the result (default: that of ``exclude_ids``, else CPU).

    Returns
    -------
    Tensor
        ``(n,)`` int64 ids.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> sample_uniform_negatives(4, 10, exclude_ids=torch.arange(9), generator=g).tolist()
    [9, 9, 9, 9]
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"`n` must be a non-negative int; got {n!r}.")
    if isinstance(catalog_size, bool) or not isinstance(catalog_size, (int, np.integer)):
        raise TypeError(f"`catalog_size` must be an int; got {type(catalog_size).__name__}.")
    if catalog_size < 1:
        raise ValueError(f"`catalog_size` must be >= 1; got {catalog_size}.")
    if device is None:
        device = exclude_ids.device if exclude_ids is not None else torch.device("cpu")
    if exclude_ids is None:
        return torch.randint(0, catalog_size, (n,), generator=generator, device=device)
    weights = torch.ones(catalog_size, dtype=torch.float32, device=device)  # (N,)
    exclude_ids = exclude_ids.reshape(-1).to(device)
    if exclude_ids.numel() and (
        int(exclude_ids.min()) < 0 or int(exclude_ids.max()) >= catalog_size
    ):
        raise ValueError(f"`exclude_ids` must lie in [0, {catalog_size}).")
    weights[exclude_ids] = 0.0
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=device)
    if not bool(weights.any()):
        raise ValueError("`exclude_ids` excludes the whole catalog.")
    return torch.multinomial(weights, n, replacement=True, generator=generator)  # (n,)


def sample_unigram_negatives(
    n: int, probs: Tensor, *, generator: torch.Generator | None = None
) -> Tensor:
    """Draw ``n`` item ids with replacement from the distribution ``probs`` (N,).

    Returns
    -------
    Tensor
        ``(n,)`` int64 ids, on the device of ``probs``.

    Examples
    --------
    >>> sample_unigram_negatives(3, torch.tensor([0.0, 1.0, 0.0])).tolist()
    [1, 1, 1]
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"`n` must be a non-negative int; got {n!r}.")
    _check_probs(probs, "probs", allow_zero=True)
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=probs.device)
    return torch.multinomial(probs.double(), n, replacement=True, generator=generator)


# --------------------------------------------------------------------------- validation


def _check_ids(ids, name: str) -> None:
    if not isinstance(ids, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor; got {type(ids).__name__}.")
    if ids.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D; got shape {tuple(ids.shape)}.")
    if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.is_complex():
        raise TypeError(f"`{name}` must have an integer dtype; got {ids.dtype}.")


def _check_embeddings(emb, n: int, name: str, ids_name: str) -> None:
    if not isinstance(emb, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor; got {type(emb).__name__}.")
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ValueError(
            f"`{name}` must have shape ({n}, d) to match `{ids_name}`; got {tuple(emb.shape)}."
        )


def _check_probs(p, name: str, n: int | None = None, allow_zero: bool = False) -> None:
    if not isinstance(p, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor; got {type(p).__name__}.")
    if p.ndim != 1 or (n is not None and p.shape[0] != n):
        want = f"({n},)" if n is not None else "1-D"
        raise ValueError(f"`{name}` must have shape {want}; got {tuple(p.shape)}.")
    if p.numel() == 0:
        return
    lo, hi = float(p.min()), float(p.max())
    bad_lo = lo < 0.0 if allow_zero else lo <= 0.0
    if bad_lo or hi > 1.0 or math.isnan(lo) or math.isnan(hi):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise ValueError(f"`{name}` must lie in {interval}; got values in [{lo}, {hi}].")


def _check_correction(correction) -> None:
    if correction not in _CORRECTIONS:
        raise ValueError(f"`correction` must be one of {_CORRECTIONS}; got {correction!r}.")


# --------------------------------------------------------------------------- masks


def first_occurrence(ids: Tensor) -> Tensor:
    """Return a ``(C,)`` bool tensor, True at the first occurrence of each id in ``ids``.

    Examples
    --------
    >>> first_occurrence(torch.tensor([3, 1, 3, 2, 1])).tolist()
    [True, True, False, True, False]
    """
    c = ids.shape[0]
    if c == 0:
        return torch.zeros(0, dtype=torch.bool, device=ids.device)
    _, inverse = torch.unique(ids, return_inverse=True)  # (C,)
    pos = torch.arange(c, device=ids.device)  # (C,)
    first = torch.full((int(inverse.max()) + 1,), c, dtype=torch.int64, device=ids.device)
    first = first.scatter_reduce(0, inverse, pos, reduce="amin")  # (U,)
    return first[inverse] == pos  # (C,)


def _row_representatives(ids: Tensor, labels: Tensor) -> Tensor:
    """``(B, C)`` column that stands for column j's item among row i's negatives.

    Row i's de-duplicated negatives keep one column per distinct item: the item's
    first column other than the row's own positive ``labels[i]`` (so with accidental
    hits kept, the row's own item still appears once as a negative when another row
    holds it). A row's set therefore never depends on where in the batch its
    positive sits: identical rows get identical sets. Index ``C`` means "no column".
    Runs without host synchronisation.
    """
    c = ids.shape[0]
    pos = torch.arange(c, device=ids.device)  # (C,)
    _, inverse = torch.unique(ids, return_inverse=True)  # (C,)
    none = torch.full((c,), c, dtype=torch.int64, device=ids.device)  # (<= C,) by group
    first = none.scatter_reduce(0, inverse, pos, reduce="amin")  # (U',) first column
    rest = torch.where(pos == first[inverse], c, pos)  # (C,) columns after the first
    second = none.scatter_reduce(0, inverse, rest, reduce="amin")  # (U',) second column
    f, s = first[inverse].unsqueeze(0), second[inverse].unsqueeze(0)  # (1, C)
    return torch.where(f == labels.unsqueeze(1), s, f)  # (B, C)


def _candidate_mask(
    candidate_ids: Tensor,  # (C,)
    positive_ids: Tensor,  # (B,)
    labels: Tensor,  # (B,)
    *,
    remove_accidental_hits: bool,
    dedupe: bool,
    exclude_other_positives: bool,
    dedupe_start: int = 0,
) -> Tensor | None:
    """(B, C) bool mask: accidental hits, duplicates, other rows' positives.

    Duplicates are removed *per row* (:func:`_row_representatives`): with accidental
    hits kept, a row's item is kept once among its negatives whether the row comes
    first or last, so two identical rows always get the same loss. Columns before
    ``dedupe_start`` are never de-duplicated.
    """
    b, c = positive_ids.shape[0], candidate_ids.shape[0]
    device = candidate_ids.device
    is_label = torch.zeros(b, c, dtype=torch.bool, device=device)  # (B, C)
    is_label[torch.arange(b, device=device), labels] = True
    mask = torch.zeros(b, c, dtype=torch.bool, device=device)  # (B, C)
    if remove_accidental_hits:
        mask |= candidate_ids.unsqueeze(0) == positive_ids.unsqueeze(1)  # (B, C)
    if dedupe:
        region = candidate_ids[dedupe_start:]  # (C - s,)
        local = labels - dedupe_start  # (B,) negative when the label is outside the region
        rep = _row_representatives(region, local)  # (B, C - s)
        pos = torch.arange(region.shape[0], device=device)  # (C - s,)
        mask[:, dedupe_start:] |= rep != pos.unsqueeze(0)  # the label is unmasked below
    if exclude_other_positives:
        mask[:, :b] = True
    mask &= ~is_label  # a row's positive is never masked
    return mask


# --------------------------------------------------------------------------- builders


def full_softmax_candidates(positive_ids: Tensor, item_embeddings: Tensor) -> CandidateSet:
    """Candidates = the whole catalog (the exact full softmax).

    Parameters
    ----------
    positive_ids : Tensor
        ``(B,)`` int64 positive item ids in ``[0, N)``.
    item_embeddings : Tensor
        ``(N, d)`` embeddings of every catalog item, row ``y`` for item id ``y``.

    Returns
    -------
    CandidateSet
        ``candidates = item_embeddings`` (N, d), ``labels = positive_ids``, no
        ``log_q`` and no mask (each item appears once).

    Examples
    --------
    >>> cs = full_softmax_candidates(torch.tensor([2, 0]), torch.eye(3))
    >>> cs.labels.tolist(), cs.candidates.shape
    ([2, 0], torch.Size([3, 3]))
    """
    _check_ids(positive_ids, "positive_ids")
    if not isinstance(item_embeddings, Tensor) or item_embeddings.ndim != 2:
        raise ValueError(
            "`item_embeddings` must be a 2-D tensor (N, d); got "
            f"{getattr(item_embeddings, 'shape', type(item_embeddings).__name__)}."
        )
    n = item_embeddings.shape[0]
    if positive_ids.numel() and (int(positive_ids.min()) < 0 or int(positive_ids.max()) >= n):
        raise ValueError(
            f"`positive_ids` must lie in [0, {n}) (the rows of `item_embeddings`); got "
            f"values in [{int(positive_ids.min())}, {int(positive_ids.max())}]."
        )
    ids = torch.arange(n, device=item_embeddings.device)  # (N,)
    return CandidateSet(
        candidates=item_embeddings,
        labels=positive_ids.to(device=item_embeddings.device, dtype=torch.int64),
        log_q=None,
        mask=None,
        candidate_ids=ids,
        correction="none",
    )


def sampled_softmax_candidates(
    positive_ids: Tensor,
    positive_embeddings: Tensor,
    negative_ids: Tensor,
    negative_embeddings: Tensor,
    *,
    sampler_probs: Tensor | None = None,
    catalog_size: int | None = None,
    correction: Correction = "expected_count",
    remove_accidental_hits: bool = True,
) -> CandidateSet:
    """Build sampled-softmax candidates: ``M`` shared negatives drawn with replacement.

    Parameters
    ----------
    positive_ids : Tensor
        ``(B,)`` int64 positive item ids.
    positive_embeddings : Tensor
        ``(B, d)`` their embeddings.
    negative_ids : Tensor
        ``(M,)`` int64 ids drawn i.i.d. from the sampler q (see
        :func:`sample_uniform_negatives`, :func:`sample_unigram_negatives`).
    negative_embeddings : Tensor
        ``(M, d)`` their embeddings.
    sampler_probs : Tensor, optional
        ``(N,)`` the sampler's distribution q over item ids; None for uniform over
        ``catalog_size``.
    catalog_size : int, optional
        ``N``, required when ``sampler_probs`` is None.
    correction : {"expected_count", "inclusion_probability", "none"}
        ``Q = M q(y)`` on the multiset, ``Q = 1 - (1 - q(y))^M`` on the de-duplicated
        set, or no correction.
    remove_accidental_hits : bool, default True
        Mask negatives equal to the row's positive.

    Returns
    -------
    CandidateSet
        ``candidates`` (B + M, d) = positives then negatives; ``labels = arange(B)``;
        ``mask`` (B, B + M) hides the other rows' positives (and hits / duplicates);
        ``log_q`` (B + M,) holds Q of every column, the positives' included (used when
        the loss corrects the positive).

    Notes
    -----
    Jean et al. 2015, eq. 11; Bengio & Senecal 2008. The positive's Q is the same
    function of its id as a negative's, so ``correct_positive=True`` in the loss gives
    the estimator whose expected gradient vanishes at the true logits (keep accidental
    hits for that one: ``remove_accidental_hits=False``).

    Examples
    --------
    >>> cs = sampled_softmax_candidates(
    ...     torch.tensor([0, 1]), torch.eye(3)[:2], torch.tensor([1, 2, 2]),
    ...     torch.eye(3)[[1, 2, 2]], catalog_size=3)
    >>> cs.mask.int().tolist()
    [[0, 1, 0, 0, 0], [1, 0, 1, 0, 0]]
    >>> [round(v, 4) for v in cs.log_q.exp().tolist()]  # M q = 3 * 1/3
    [1.0, 1.0, 1.0, 1.0, 1.0]
    """
    _check_ids(positive_ids, "positive_ids")
    _check_ids(negative_ids, "negative_ids")
    b, m = positive_ids.shape[0], negative_ids.shape[0]
    _check_embeddings(positive_embeddings, b, "positive_embeddings", "positive_ids")
    _check_embeddings(negative_embeddings, m, "negative_embeddings", "negative_ids")
    if positive_embeddings.shape[1] != negative_embeddings.shape[1]:
        raise ValueError(
            "`positive_embeddings` and `negative_embeddings` must have the same width d; "
            f"got {positive_embeddings.shape[1]} and {negative_embeddings.shape[1]}."
        )
    _check_correction(correction)
    device = positive_embeddings.device
    pos_ids = positive_ids.to(device=device, dtype=torch.int64)  # (B,)
    neg_ids = negative_ids.to(device=device, dtype=torch.int64)  # (M,)
    ids = torch.cat([pos_ids, neg_ids])  # (C,) = (B + M,)
    if sampler_probs is None:
        if catalog_size is None:
            raise ValueError("`catalog_size` must be given when `sampler_probs` is None.")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= catalog_size):
            raise ValueError(f"item ids must lie in [0, {catalog_size}) (`catalog_size`).")
        q = torch.full((b + m,), 1.0 / catalog_size, dtype=torch.float64, device=device)
    else:
        _check_probs(sampler_probs, "sampler_probs", allow_zero=True)
        n = sampler_probs.shape[0]
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
            raise ValueError(f"item ids must lie in [0, {n}) (the length of `sampler_probs`).")
        q = sampler_probs.to(device=device, dtype=torch.float64)[ids]  # (C,)
    if correction == "expected_count":
        log_q = torch.log(m * q)  # (C,)
    elif correction == "inclusion_probability":
        log_q = torch.log(-torch.expm1(m * torch.log1p(-q)))  # (C,)
    else:
        log_q = None
    labels = torch.arange(b, device=device)  # (B,)
    mask = _candidate_mask(
        ids,
        pos_ids,
        labels,
        remove_accidental_hits=remove_accidental_hits,
        dedupe=correction == "inclusion_probability",
        exclude_other_positives=True,
        dedupe_start=b,
    )
    return CandidateSet(
        candidates=torch.cat([positive_embeddings, negative_embeddings]),  # (B + M, d)
        labels=labels,
        log_q=None if log_q is None else log_q.to(positive_embeddings.dtype),
        mask=mask,
        candidate_ids=ids,
        correction=correction,
    )


def mixed_candidates(
    positive_ids: Tensor,
    positive_embeddings: Tensor,
    positive_probs: Tensor | None,
    random_ids: Tensor,
    random_embeddings: Tensor,
    random_probs: Tensor | None,
    *,
    catalog_size: int | None,
    exclude_batch: bool = False,
    correction: Correction = "inclusion_probability",
    remove_accidental_hits: bool = True,
    validate: bool = True,
) -> CandidateSet:
    """Mixed negatives: the batch's positives plus ``B'`` uniform random items.

    Parameters
    ----------
    positive_ids : Tensor
        ``(B,)`` int64 positive item ids.
    positive_embeddings : Tensor
        ``(B, d)`` their embeddings.
    positive_probs : Tensor or None
        ``(B,)`` p(y) of each positive: the probability that a random training
        example's positive is that item (e.g. from
        :class:`recsys.frequency.StreamingFrequencyEstimator`), in (0, 1]. May be
        None only with ``correction="none"``.
    random_ids : Tensor
        ``(B',)`` int64 ids drawn uniformly with replacement (from the catalog, or from
        the catalog minus the batch's items when ``exclude_batch``).
    random_embeddings : Tensor
        ``(B', d)`` their embeddings.
    random_probs : Tensor or None
        ``(B',)`` p(y) of each random item (its in-batch frequency), in [0, 1].
    catalog_size : int or None
        ``N`` (gamma = 1/N); needed when ``B' > 0`` and a correction is applied.
    exclude_batch : bool, default False
        Whether the random draw excluded the batch's (distinct) items; then
        gamma = 1/(N - D) with D the number of distinct positives in the batch.
    correction : {"inclusion_probability", "expected_count", "none"}
        Per-row Q of each column: ``1 - (1 - p)^(B-1) (1 - gamma)^B'`` on the
        de-duplicated set, or ``(B - 1) p + B' gamma`` on the multiset (the random
        term times ``(1 - p)^(B - 1)`` with ``exclude_batch``: no other row holds the item).
    remove_accidental_hits : bool, default True
        Mask columns (other than the row's own) that hold the row's positive.
    validate : bool, default True
        Check the probabilities' range and that every Q is positive (each check
        synchronises a CUDA device; training validates once per epoch instead).

    Returns
    -------
    CandidateSet
        ``candidates`` (B + B', d), ``labels = arange(B)``, ``log_q`` (B + B',),
        ``mask`` (B, B + B').

    Notes
    -----
    Yang et al. 2020, section 3 (docs/theory.md §4). Q is per *row*: its negatives are the other
    ``B - 1`` positives and the ``B'`` random items (module notes). With ``B' = 0`` it is
    exactly :func:`in_batch_candidates`. Duplicates are removed per row, so a row's
    loss does not depend on its position in the batch.

    With ``exclude_batch=True`` Q is an *approximation*: it uses the batch's distinct
    count D in gamma = 1/(N - D) as if D were fixed, while treating the other rows as
    random, and it ignores that an item in the batch cannot be drawn. Measured against
    exact enumeration of the shipped samplers (``tests/recsys/test_exact_builders.py``)
    it is off by up to a few percent on catalogs of 5-8 items with a batch of 3-4;
    the error shrinks as the batch becomes a small part of the catalog.

    Examples
    --------
    >>> e = torch.eye(4)
    >>> cs = mixed_candidates(torch.tensor([0, 0]), e[[0, 0]], torch.tensor([0.5, 0.5]),
    ...                       torch.tensor([3]), e[[3]], torch.tensor([0.0]), catalog_size=4)
    >>> cs.mask.int().tolist()  # the duplicate of item 0 is an accidental hit for both rows
    [[0, 1, 0], [1, 0, 0]]
    """
    _check_ids(positive_ids, "positive_ids")
    _check_ids(random_ids, "random_ids")
    b, b_rand = positive_ids.shape[0], random_ids.shape[0]
    _check_embeddings(positive_embeddings, b, "positive_embeddings", "positive_ids")
    _check_embeddings(random_embeddings, b_rand, "random_embeddings", "random_ids")
    if positive_embeddings.shape[1] != random_embeddings.shape[1]:
        raise ValueError(
            "`positive_embeddings` and `random_embeddings` must have the same width d; "
            f"got {positive_embeddings.shape[1]} and {random_embeddings.shape[1]}."
        )
    _check_correction(correction)
    device = positive_embeddings.device
    pos_ids = positive_ids.to(device=device, dtype=torch.int64)  # (B,)
    ids = torch.cat([pos_ids, random_ids.to(device=device, dtype=torch.int64)])  # (C,)
    log_q = None
    if correction != "none":
        if positive_probs is None or (b_rand > 0 and random_probs is None):
            raise ValueError(
                "`positive_probs` and `random_probs` must be given unless correction='none'."
            )
        if validate:
            _check_probs(positive_probs, "positive_probs", b)
        if b_rand > 0:
            if validate:
                _check_probs(random_probs, "random_probs", b_rand, allow_zero=True)
            if catalog_size is None:
                raise ValueError("`catalog_size` must be given when there are random items.")
            probs = torch.cat([positive_probs, random_probs]).to(device, torch.float64)
        else:
            probs = positive_probs.to(device, torch.float64)  # (C,)
        # the random draw excluded the batch's D distinct items (sample_uniform_negatives
        # with exclude_ids=positive_ids): gamma = 1/(N - D) given the batch. Q treats the
        # other rows as random and D as fixed, an approximation (see Notes)
        n_distinct = int(torch.unique(pos_ids).numel()) if exclude_batch else 0
        if b_rand > 0 and exclude_batch and catalog_size - n_distinct < 1:
            raise ValueError(
                f"`catalog_size` must exceed the batch's {n_distinct} distinct positives "
                f"when `exclude_batch`; got {catalog_size}."
            )
        gamma = _gamma(b_rand, catalog_size, n_distinct, exclude_batch)
        if correction == "inclusion_probability":
            log_q = torch.log(-torch.expm1(_log_not_included(probs, b - 1, b_rand, gamma)))
        else:
            rand = b_rand * gamma
            if exclude_batch and b_rand:
                # drawable only if none of the row's other B - 1 rows holds the item
                rand = rand * (1.0 - probs) ** (b - 1)  # (C,)
            log_q = torch.log((b - 1) * probs + rand)  # (C,)
        if validate and not bool(torch.isfinite(log_q).all()):
            raise ValueError(
                "Q is 0 for some candidate (p = 0 with no random draws, or a batch of one "
                "row); use correction='none' or give positive probabilities."
            )
        log_q = log_q.to(positive_embeddings.dtype)
    labels = torch.arange(b, device=device)  # (B,)
    mask = _candidate_mask(
        ids,
        pos_ids,
        labels,
        remove_accidental_hits=remove_accidental_hits,
        dedupe=correction == "inclusion_probability",
        exclude_other_positives=False,
    )
    return CandidateSet(
        candidates=torch.cat([positive_embeddings, random_embeddings]),  # (B + B', d)
        labels=labels,
        log_q=log_q,
        mask=mask,
        candidate_ids=ids,
        correction=correction,
    )


def in_batch_candidates(
    positive_ids: Tensor,
    positive_embeddings: Tensor,
    positive_probs: Tensor | None = None,
    *,
    correction: Correction = "inclusion_probability",
    remove_accidental_hits: bool = True,
    validate: bool = True,
) -> CandidateSet:
    """In-batch negatives: each row's negatives are the other rows' positives.

    Parameters
    ----------
    positive_ids : Tensor
        ``(B,)`` int64 positive item ids.
    positive_embeddings : Tensor
        ``(B, d)`` their embeddings.
    positive_probs : Tensor, optional
        ``(B,)`` p(y) of each positive in (0, 1]; required unless ``correction="none"``.
    correction : {"inclusion_probability", "expected_count", "none"}
        ``Q = 1 - (1 - p)^(B - 1)`` (de-duplicated) or ``(B - 1) p`` (multiset).
    remove_accidental_hits : bool, default True
        Mask other rows holding the row's own positive item.
    validate : bool, default True
        As in :func:`mixed_candidates`.

    Returns
    -------
    CandidateSet
        ``candidates = positive_embeddings`` (B, d), ``labels = arange(B)``,
        ``log_q`` (B,), ``mask`` (B, B).

    Notes
    -----
    Yi et al. 2019, eq. 3 (docs/theory.md §4); :func:`mixed_candidates` with ``B' = 0``.

    Examples
    --------
    >>> cs = in_batch_candidates(torch.tensor([5, 7, 5]), torch.eye(3),
    ...                          torch.tensor([0.2, 0.1, 0.2]))
    >>> cs.mask.int().tolist()
    [[0, 0, 1], [0, 0, 1], [1, 0, 0]]
    """
    _check_ids(positive_ids, "positive_ids")
    _check_embeddings(
        positive_embeddings, positive_ids.shape[0], "positive_embeddings", "positive_ids"
    )
    empty_ids = torch.empty(0, dtype=torch.int64, device=positive_embeddings.device)
    empty_emb = positive_embeddings.new_empty((0, positive_embeddings.shape[-1]))
    return mixed_candidates(
        positive_ids,
        positive_embeddings,
        positive_probs,
        empty_ids,
        empty_emb,
        None,
        catalog_size=None,
        correction=correction,
        remove_accidental_hits=remove_accidental_hits,
        validate=validate,
    )


class MixedNegativesLoss(SampledSoftmaxLoss):
    """In-batch (``B' = 0``) or mixed negatives with the logQ correction, as a module.

    Parameters
    ----------
    temperature : float, default 1.0
        ``tau`` > 0.
    correction : {"inclusion_probability", "expected_count", "none"}
        Which Q (see :func:`recsys.negatives.mixed_candidates`).
    remove_accidental_hits : bool, default True
        Mask other rows' copies of a row's positive.
    correct_positive : bool, default False
        As in :func:`sampled_softmax_loss`.
    exclude_batch : bool, default False
        Whether the random items were drawn excluding the batch's items.
    reduction : {"mean", "sum", "none"}, default "mean"
        Reduction over rows.

    Examples
    --------
    >>> loss = MixedNegativesLoss()
    >>> e = torch.eye(3)
    >>> out = loss(e, torch.tensor([0, 1, 2]), e, torch.full((3,), 0.1))  # in-batch
    >>> round(float(out), 4) == round(float(
    ...     in_batch_candidates(torch.tensor([0, 1, 2]), e, torch.full((3,), 0.1)).loss(e)), 4)
    True
    """

    def __init__(
        self,
        temperature: float = 1.0,
        correction: Correction = "inclusion_probability",
        remove_accidental_hits: bool = True,
        correct_positive: bool = False,
        exclude_batch: bool = False,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(temperature, correct_positive, reduction)
        self.correction = correction
        self.remove_accidental_hits = bool(remove_accidental_hits)
        self.exclude_batch = bool(exclude_batch)

    def forward(  # type: ignore[override]
        self,
        query: Tensor,
        positive_ids: Tensor,
        positive_embeddings: Tensor,
        positive_probs: Tensor | None = None,
        random_ids: Tensor | None = None,
        random_embeddings: Tensor | None = None,
        random_probs: Tensor | None = None,
        catalog_size: int | None = None,
    ) -> Tensor:
        """Loss of ``query`` (B, d) against the positives (B, d) and random items (B', d)."""
        if random_ids is None:
            cs = in_batch_candidates(
                positive_ids,
                positive_embeddings,
                positive_probs,
                correction=self.correction,
                remove_accidental_hits=self.remove_accidental_hits,
            )
        else:
            if random_embeddings is None:
                raise ValueError("`random_embeddings` must be given with `random_ids`.")
            cs = mixed_candidates(
                positive_ids,
                positive_embeddings,
                positive_probs,
                random_ids,
                random_embeddings,
                random_probs,
                catalog_size=catalog_size,
                exclude_batch=self.exclude_batch,
                correction=self.correction,
                remove_accidental_hits=self.remove_accidental_hits,
            )
        return super().forward(query, cs)
