"""Item frequencies for the logQ correction: exact counts and the streaming estimator.

Two units appear (docs/theory.md §4):

* the *item share* ``p(y)``: the probability that one training example's positive is
  ``y`` (:meth:`ExactFrequency.estimate`);
* the *per-batch frequency* ``Q_B(y) = 1 - (1 - p(y))^B``: the probability that ``y``
  appears in a batch of ``B`` examples. The streaming estimator of Yi et al. [1]_
  measures gaps in *steps* (batches), so ``1 / gap`` estimates this per-batch
  frequency: it is at most 1 per batch, while the expected count ``B p(y)`` is not.
  :meth:`StreamingFrequencyEstimator.item_probability` inverts it to ``p(y)``.

References
----------
.. [1] X. Yi, J. Yang, L. Hong, D. Z. Cheng, L. Heldt, A. Kumthekar, Z. Zhao, L. Wei,
   E. Chi, "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
   Recommendations", RecSys 2019, section 5 (Algorithm 2 and its multi-hash variant).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from recsys.model import hash_ids


def _as_ids(ids, device: torch.device, name: str = "ids") -> Tensor:
    """Return ``ids`` as a 1-D int64 tensor on ``device`` (validating the dtype)."""
    if isinstance(ids, Tensor):
        t = ids
    else:
        arr = np.asarray(ids)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"`{name}` must hold integers; got dtype {arr.dtype}.")
        t = torch.as_tensor(arr.astype(np.int64, copy=False))
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"`{name}` must hold integers; got dtype {t.dtype}.")
    return t.reshape(-1).to(device=device, dtype=torch.int64)


class ExactFrequency:
    """Exact item counts over a stream of batches, for catalogs not known in advance.

    Attributes
    ----------
    n_examples : int
        Number of ids seen (with multiplicity).
    n_batches : int
        Number of :meth:`update` calls.

    Examples
    --------
    >>> f = ExactFrequency()
    >>> f.update([3, 3, 10**12]); f.update([3])
    >>> f.estimate([3, 10**12, 7]).tolist()
    [0.75, 0.25, 0.0]
    >>> f.batch_frequency([3, 10**12]).tolist()
    [1.0, 0.5]
    """

    def __init__(self, *, device: torch.device | str | None = None) -> None:
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self._ids = torch.empty(0, dtype=torch.int64, device=self.device)  # (U,) sorted
        self._counts = torch.empty(0, dtype=torch.int64, device=self.device)  # (U,)
        self._batches = torch.empty(0, dtype=torch.int64, device=self.device)  # (U,)
        self.n_examples = 0
        self.n_batches = 0

    def update(self, ids) -> None:
        """Count the ids of one batch, ``ids`` (n,) int64 (any values)."""
        ids = _as_ids(ids, self.device)  # (n,)
        uniq, cnt = torch.unique(ids, return_counts=True)  # (u,), (u,)
        all_ids = torch.cat([self._ids, uniq])  # (U + u,)
        merged, inverse = torch.unique(all_ids, return_inverse=True)  # (U',), (U + u,)
        counts = torch.zeros(merged.shape[0], dtype=torch.int64, device=self.device)
        counts.scatter_add_(0, inverse, torch.cat([self._counts, cnt]))
        batches = torch.zeros_like(counts)
        batches.scatter_add_(0, inverse, torch.cat([self._batches, torch.ones_like(cnt)]))
        self._ids, self._counts, self._batches = merged, counts, batches
        self.n_examples += int(ids.shape[0])
        self.n_batches += 1

    def _lookup(self, ids: Tensor, values: Tensor) -> Tensor:
        if self._ids.numel() == 0:
            return torch.zeros(ids.shape, dtype=torch.int64, device=ids.device)
        pos = torch.searchsorted(self._ids, ids).clamp_(max=self._ids.numel() - 1)  # (n,)
        return torch.where(self._ids[pos] == ids, values[pos], torch.zeros_like(pos))

    def counts(self, ids) -> Tensor:
        """Return the ``(n,)`` int64 counts of ``ids``."""
        return self._lookup(_as_ids(ids, self.device), self._counts)

    def estimate(self, ids) -> Tensor:
        """Item share ``p(y) = count(y) / n_examples``, ``(n,)`` float64 (0 if unseen)."""
        ids = _as_ids(ids, self.device)
        return self._lookup(ids, self._counts).double() / max(self.n_examples, 1)

    def batch_frequency(self, ids) -> Tensor:
        """Return the share of batches in which each id appeared, ``(n,)`` float64.

        This is the quantity :class:`StreamingFrequencyEstimator` estimates.
        """
        ids = _as_ids(ids, self.device)
        return self._lookup(ids, self._batches).double() / max(self.n_batches, 1)


class StreamingFrequencyEstimator:
    """Streaming per-batch item frequency from gaps between sightings (Yi et al. 2019).

    Parameters
    ----------
    n_buckets : int, default 2**20
        Rows of the arrays A (last step seen) and B (moving-average gap) per hash.
    n_hashes : int, default 4
        Number of independent hash functions; the estimate takes the *largest* gap
        across them (collisions only shorten gaps), as in the paper's multi-hash variant.
        An id is wrong only when it collides under every hash.
    alpha : float, default 0.01
        Learning rate of the moving average, in (0, 1].
    device : torch.device or str, optional
        Device of the state (CPU by default); ids are moved to it.
    seed : int, default 0
        Seed of the hash functions.

    Notes
    -----
    Algorithm 2 of [1]_: at step ``t`` each id ``y`` of the batch updates
    ``B[h(y)] <- (1 - alpha) B[h(y)] + alpha (t - A[h(y)])`` then ``A[h(y)] <- t``, and
    ``estimate(y) = 1 / B[h(y)]``. Several copies of an id in one batch make a single
    update (the update is vectorised over the batch's distinct buckets), so the
    estimate is the per-batch frequency ``1 - (1 - p)^B`` (at most 1), not the
    expected count ``B p``. Initialisation (not specified in the paper): B is set to
    the first observed gap at a bucket's second sighting. Before that a bucket seen
    once has the provisional gap ``t`` = the number of steps recorded so far (one
    sighting in ``t`` steps, counted from the estimator's start), and a bucket never
    seen ``t + 1``, so log Q stays finite and an item's first sighting is *not* read
    as "seen every step". Hashes: :func:`recsys.model.hash_ids`, a salted splitmix64
    finaliser that mixes all 64 bits of the id, one salt per hash.

    References
    ----------
    .. [1] X. Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
       Recommendations", RecSys 2019, section 5.

    Examples
    --------
    >>> est = StreamingFrequencyEstimator(n_buckets=64, alpha=0.5)
    >>> for _ in range(4):
    ...     est.update([7, 7, 9])  # item 7 twice per batch
    >>> est.estimate([7, 9]).tolist()  # seen every step: gap 1, frequency 1 (not 2)
    [1.0, 1.0]
    >>> est.update([7, 11])
    >>> round(float(est.estimate([11])[0]), 3)  # first sighting: 1 in 5 steps, not 1
    0.2
    """

    def __init__(
        self,
        n_buckets: int = 2**20,
        n_hashes: int = 4,
        alpha: float = 0.01,
        *,
        device: torch.device | str | None = None,
        seed: int = 0,
    ) -> None:
        for name, value in (("n_buckets", n_buckets), ("n_hashes", n_hashes)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"`{name}` must be an int; got {type(value).__name__}.")
            if value < 1:
                raise ValueError(f"`{name}` must be >= 1; got {value}.")
        if not (isinstance(alpha, (int, float)) and 0.0 < alpha <= 1.0):
            raise ValueError(f"`alpha` must be in (0, 1]; got {alpha}.")
        self.n_buckets = int(n_buckets)
        self.n_hashes = int(n_hashes)
        self.alpha = float(alpha)
        self.device = torch.device("cpu") if device is None else torch.device(device)
        salts = np.random.SeedSequence(seed).generate_state(self.n_hashes, np.uint64)
        self._salts = tuple(int(v) & ((1 << 62) - 1) for v in salts)
        shape = (self.n_hashes, self.n_buckets)
        self.last_step = torch.full(shape, -1, dtype=torch.int64, device=self.device)  # A
        self.gap = torch.zeros(shape, dtype=torch.float64, device=self.device)  # B (0 = unset)
        self.step = 0

    def buckets(self, ids) -> Tensor:
        """Return the ``(n_hashes, n)`` bucket of each id under each hash."""
        ids = _as_ids(ids, self.device)  # (n,)
        return torch.stack([hash_ids(ids, salt, self.n_buckets) for salt in self._salts])

    def update(self, ids, step: int | None = None) -> None:
        """Record one batch of ids at ``step`` (default: the number of previous updates).

        Parameters
        ----------
        ids : Tensor or array_like
            ``(n,)`` int64 item ids of the batch (any values; duplicates allowed).
        step : int, optional
            Global step of the batch; must not decrease.
        """
        t = self.step if step is None else int(step)
        if t < self.step - 1 or t < 0:
            raise ValueError(f"`step` must be >= the previous step {self.step - 1}; got {t}.")
        buckets = self.buckets(ids)  # (H, n)
        for h in range(self.n_hashes):
            # One update per bucket and batch without deduplicating: every copy of a
            # bucket reads the same old state, so all copies write the same new value.
            idx = buckets[h]  # (n,) with repeats
            gap_h, last_h = self.gap[h], self.last_step[h]  # views, (n_buckets,)
            last = last_h.index_select(0, idx)  # (n,)
            seen = last >= 0  # (n,)
            observed = (t - last).double()  # (n,) gap since the last sighting
            old = gap_h.index_select(0, idx)  # (n,)
            new = torch.where(old > 0, (1 - self.alpha) * old + self.alpha * observed, observed)
            new = torch.where(seen & (observed > 0), new, old)  # first sighting: no gap yet
            gap_h.index_copy_(0, idx, new)
            last_h.index_fill_(0, idx, t)
        self.step = t + 1

    def expected_gap(self, ids) -> Tensor:
        """Return the ``(n,)`` float64 gap in steps (largest over the hashes), >= 1."""
        buckets = self.buckets(ids)  # (H, n)
        rows = torch.arange(self.n_hashes, device=self.device).unsqueeze(1)  # (H, 1)
        gap = self.gap[rows, buckets]  # (H, n)
        last = self.last_step[rows, buckets]  # (H, n)
        # seen once: one sighting in `step` steps; never seen: `step + 1`
        provisional = torch.where(
            last >= 0, torch.full_like(gap, float(self.step)), torch.full_like(gap, self.step + 1.0)
        )  # (H, n)
        gap = torch.where(gap > 0, gap, provisional)
        return gap.max(dim=0).values.clamp(min=1.0)  # (n,)

    def estimate(self, ids) -> Tensor:
        """Per-batch frequency ``1 / gap`` of each id, ``(n,)`` float64 in (0, 1].

        Returned on the device of ``ids`` when it is a tensor.
        """
        out = 1.0 / self.expected_gap(ids)  # (n,)
        return out.to(ids.device) if isinstance(ids, Tensor) else out

    def item_probability(self, ids, batch_size: int) -> Tensor:
        """Item share ``p = 1 - (1 - Q_B)^(1/B)`` implied by the per-batch frequency.

        Use it as ``positive_probs`` of the builders in :mod:`recsys.negatives`.
        A frequency of 1 (seen every step) maps to ``p = 1``: the estimator cannot
        tell items seen once per batch from items seen several times.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"`batch_size` must be an int; got {type(batch_size).__name__}.")
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1; got {batch_size}.")
        q = self.estimate(ids)
        p = -torch.expm1(torch.log1p(-q.clamp(max=1.0)) / batch_size)  # (n,)
        return p.clamp(min=math.ulp(0.0))
