"""Synthetic softmax problems with known truth, and negative samplers with exact Q (theory §4).

A :class:`SoftmaxProblem` is a catalog of ``N`` items and ``K`` contexts with true logits
``s*(x, y) = <u_x, v_y> + b_y`` (low rank plus a Zipf-like item bias), the true
conditional law ``pi(y | x) = softmax_y s*(x, y)`` and the item marginal
``eta(y) = sum_x w(x) pi(y | x)``. It draws (context, positive) batches from the joint.
The exact full-softmax loss and its gradient with respect to the logits are computed for
any logits, so sampled estimators can be compared with the truth.

Samplers (:class:`UniformSampler`, :class:`UnigramSampler`, :class:`InBatchSampler`,
:class:`MixedSampler`) draw negative sets and know their exact inclusion probabilities
(probability that an item is in the de-duplicated set) and expected counts (expected
copies in the multiset). One exception: :class:`MixedSampler` with ``exclude_batch=True``
uses gamma = 1/(N - B), which assumes B distinct positives; when popular positives repeat
in a batch it is an approximation (see its Notes, and ``docs/retrieval.md`` for the
batch-distinct-count form that ``recsys.mixed_candidates`` uses). NumPy only (no torch):
:mod:`recsys` holds the losses.

References
----------
.. [1] Y. Bengio, J.-S. Senecal, "Adaptive Importance Sampling to Accelerate Training of
   a Neural Probabilistic Language Model", IEEE TNN 19(4), 2008.
.. [2] X. Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
   Recommendations", RecSys 2019.
.. [3] J. Yang et al., "Mixed Negative Sampling for Learning Two-tower Neural Networks in
   Recommendations", WWW 2020 Companion.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from sim._seed import RngLike, as_seed_sequence
from sim._softmax_kernels import _categorical_rows_kernel, _uniform_excluding_kernel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int; got {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}; got {value}.")
    return int(value)


def _check_distribution(p, name: str) -> FloatArray:
    arr = np.ascontiguousarray(p, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D array; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)) or arr.min() < 0:
        raise ValueError(f"`{name}` must be finite and non-negative.")
    if abs(arr.sum() - 1.0) > 1e-8:
        raise ValueError(f"`{name}` must sum to 1; got {arr.sum()}.")
    return arr


# --------------------------------------------------------------------------- problem


@dataclass(frozen=True, slots=True)
class SoftmaxProblem:
    """A synthetic retrieval problem whose conditional law is known.

    Attributes
    ----------
    logits : ndarray
        ``(K, N)`` true logits ``s*(x, y)``.
    context_probs : ndarray
        ``(K,)`` law ``w(x)`` of the contexts.
    item_bias : ndarray
        ``(N,)`` item bias ``b_y = -a log(y + 1)`` (item 0 the most popular), centred.
    user_factors : ndarray
        ``(K, r)`` context factors ``u_x``.
    item_factors : ndarray
        ``(N, r)`` item factors ``v_y``.
    seed : int
        Entropy of the seed sequence that drew the problem.
    """

    logits: FloatArray
    context_probs: FloatArray
    item_bias: FloatArray
    user_factors: FloatArray
    item_factors: FloatArray
    seed: int

    @property
    def n_items(self) -> int:
        """Catalog size ``N``."""
        return int(self.logits.shape[1])

    @property
    def n_contexts(self) -> int:
        """Number of contexts ``K``."""
        return int(self.logits.shape[0])

    @property
    def conditional(self) -> FloatArray:
        """``(K, N)`` true conditional ``pi(y | x) = softmax_y s*(x, y)``."""
        return special.softmax(self.logits, axis=1)

    @property
    def marginal(self) -> FloatArray:
        """``(N,)`` item marginal ``eta(y) = sum_x w(x) pi(y | x)``."""
        return self.context_probs @ self.conditional

    def sample(
        self, n_batches: int, batch_size: int, *, rng: RngLike = None
    ) -> tuple[IntArray, IntArray]:
        """Draw ``n_batches`` batches of (context, positive) pairs from the joint law.

        Parameters
        ----------
        n_batches, batch_size : int
            Output shape ``(n_batches, batch_size)``.
        rng : int, SeedSequence or None
            Seed.

        Returns
        -------
        contexts, positives : ndarray
            ``(n_batches, batch_size)`` int64 each; ``x ~ w``, ``y | x ~ pi(. | x)``.

        Examples
        --------
        >>> prob = make_softmax_problem(20, 3, rng=0)
        >>> x, y = prob.sample(2, 5, rng=1)
        >>> x.shape, int(y.max()) < 20
        ((2, 5), True)
        """
        n_batches = _check_int(n_batches, "n_batches", 0)
        batch_size = _check_int(batch_size, "batch_size", 0)
        gen = np.random.default_rng(as_seed_sequence(rng))
        n = n_batches * batch_size
        contexts = gen.choice(self.n_contexts, size=n, p=self.context_probs).astype(np.int64)
        positives = sample_categorical_rows(self.conditional, contexts, gen.random(n))
        return contexts.reshape(n_batches, batch_size), positives.reshape(n_batches, batch_size)


def sample_categorical_rows(probs: FloatArray, rows: IntArray, uniforms: FloatArray) -> IntArray:
    """Draw from row ``rows[i]`` of ``probs`` (K, N) by inverse CDF with ``uniforms[i]``.

    Examples
    --------
    >>> sample_categorical_rows(np.array([[0.5, 0.5], [0.0, 1.0]]), np.array([0, 1, 0]),
    ...                         np.array([0.7, 0.1, 0.2])).tolist()
    [1, 1, 0]
    """
    cdf = np.ascontiguousarray(np.cumsum(probs, axis=1), dtype=np.float64)  # (K, N)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    uniforms = np.ascontiguousarray(uniforms, dtype=np.float64)
    out = np.empty(rows.shape[0], dtype=np.int64)
    _categorical_rows_kernel(cdf, rows, uniforms, out)
    return out


def _validate_make_softmax_problem(n_items, n_contexts, rank, zipf_exponent, factor_scale):
    _check_int(n_items, "n_items", 2)
    _check_int(n_contexts, "n_contexts", 1)
    _check_int(rank, "rank", 0)
    for name, v in (("zipf_exponent", zipf_exponent), ("factor_scale", factor_scale)):
        if not (isinstance(v, numbers.Real) and np.isfinite(v) and v >= 0):
            raise ValueError(f"`{name}` must be a finite number >= 0; got {v}.")


def make_softmax_problem(
    n_items: int = 1000,
    n_contexts: int = 50,
    *,
    rank: int = 8,
    zipf_exponent: float = 1.0,
    factor_scale: float = 1.0,
    rng: RngLike = None,
) -> SoftmaxProblem:
    """Build a catalog with Zipf-like popularity and low-rank context-item affinities.

    Parameters
    ----------
    n_items : int, default 1000
        Catalog size ``N`` >= 2.
    n_contexts : int, default 50
        Number of contexts ``K`` (drawn uniformly).
    rank : int, default 8
        Rank ``r`` of the affinity term (0: every context has the same law).
    zipf_exponent : float, default 1.0
        ``a`` in the item bias ``b_y = -a log(y + 1)``: with small affinities the
        marginal popularity falls like ``(y + 1)^-a`` (Zipf).
    factor_scale : float, default 1.0
        Standard deviation of ``<u_x, v_y>`` (factors are N(0, scale / sqrt(r))).
    rng : int, SeedSequence or None
        Seed.

    Returns
    -------
    SoftmaxProblem

    Notes
    -----
    ``s*(x, y) = <u_x, v_y> + b_y``; ``pi(. | x) = softmax(s*(x, .))`` (docs/theory.md §4).

    Examples
    --------
    >>> prob = make_softmax_problem(100, 5, rng=0)
    >>> prob.logits.shape, bool(np.isclose(prob.marginal.sum(), 1.0))
    ((5, 100), True)
    >>> bool(prob.marginal[0] > prob.marginal[-1])  # item 0 is the most popular
    True
    """
    _validate_make_softmax_problem(n_items, n_contexts, rank, zipf_exponent, factor_scale)
    ss = as_seed_sequence(rng)
    gen = np.random.default_rng(ss)
    sd = np.sqrt(factor_scale / np.sqrt(rank)) if rank else 0.0
    user = gen.normal(0.0, sd, size=(n_contexts, rank)) if rank else np.zeros((n_contexts, 0))
    item = gen.normal(0.0, sd, size=(n_items, rank)) if rank else np.zeros((n_items, 0))
    bias = -zipf_exponent * np.log(np.arange(1, n_items + 1, dtype=np.float64))  # (N,)
    bias -= bias.mean()
    logits = user @ item.T + bias  # (K, N)
    return SoftmaxProblem(
        logits=np.ascontiguousarray(logits),
        context_probs=np.full(n_contexts, 1.0 / n_contexts),
        item_bias=bias,
        user_factors=user,
        item_factors=item,
        seed=int(ss.entropy),
    )


# --------------------------------------------------------------------------- full softmax


def full_softmax_loss(logits, labels) -> FloatArray:
    """Full-softmax loss ``-s_y + log sum_y' exp s_y'`` of each row.

    Parameters
    ----------
    logits : array_like
        ``(..., N)`` logits.
    labels : array_like
        ``(...)`` int positive of each row.

    Returns
    -------
    ndarray
        ``(...)`` losses.

    Examples
    --------
    >>> round(float(full_softmax_loss([2.0, 0.0, 0.0], 0)), 4)
    0.2395
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    pos = np.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return special.logsumexp(logits, axis=-1) - pos


def full_softmax_gradient(logits, labels) -> FloatArray:
    """Gradient of :func:`full_softmax_loss` w.r.t. the logits: ``softmax(s) - e_y``.

    Examples
    --------
    >>> full_softmax_gradient([0.0, 0.0], 1).tolist()
    [0.5, -0.5]
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    grad = special.softmax(logits, axis=-1)
    np.put_along_axis(
        grad, labels[..., None], np.take_along_axis(grad, labels[..., None], -1) - 1.0, -1
    )
    return grad


def expected_full_softmax_loss(logits, probs) -> FloatArray:
    """Return the expected loss ``E_{y ~ probs} [-s_y + logsumexp(s)]`` of each row.

    Examples
    --------
    >>> bool(np.isclose(expected_full_softmax_loss(np.log([0.25, 0.75]), [0.25, 0.75]),
    ...                 -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))))
    True
    """
    logits = np.asarray(logits, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    return special.logsumexp(logits, axis=-1) - np.sum(probs * logits, axis=-1)


def expected_full_softmax_gradient(logits, probs) -> FloatArray:
    """Return the expected gradient ``softmax(s) - probs`` (zero at ``s = log probs + c``).

    Examples
    --------
    >>> np.allclose(expected_full_softmax_gradient(np.log([0.2, 0.8]), [0.2, 0.8]), 0)
    True
    """
    return special.softmax(np.asarray(logits, dtype=np.float64), axis=-1) - np.asarray(
        probs, dtype=np.float64
    )


# --------------------------------------------------------------------------- samplers


@dataclass(frozen=True, slots=True)
class UniformSampler:
    """``n_samples`` uniform draws from ``n_items``, with or without replacement.

    Examples
    --------
    >>> s = UniformSampler(10, 4, replace=False)
    >>> s.sample(2, rng=0).shape, float(s.inclusion_probability()[0])
    ((2, 4), 0.4)
    """

    n_items: int
    n_samples: int
    replace: bool = True

    def __post_init__(self) -> None:
        _check_int(self.n_items, "n_items", 1)
        _check_int(self.n_samples, "n_samples", 0)
        if not self.replace and self.n_samples > self.n_items:
            raise ValueError(
                f"`n_samples` must be <= `n_items` ({self.n_items}) without replacement; "
                f"got {self.n_samples}."
            )

    def sample(self, n_sets: int, *, rng: RngLike = None) -> IntArray:
        """Return ``(n_sets, n_samples)`` int64 ids."""
        gen = np.random.default_rng(as_seed_sequence(rng))
        if self.replace:
            return gen.integers(0, self.n_items, size=(n_sets, self.n_samples))
        keys = gen.random((n_sets, self.n_items))  # (S, N)
        return np.argsort(keys, axis=1)[:, : self.n_samples].astype(np.int64)

    def inclusion_probability(self) -> FloatArray:
        """``(N,)``: ``1 - (1 - 1/N)^M`` (with replacement) or ``M/N`` (without)."""
        if self.replace:
            q = (
                -np.expm1(self.n_samples * np.log1p(-1.0 / self.n_items))
                if self.n_items > 1
                else 1.0
            )
        else:
            q = self.n_samples / self.n_items
        return np.full(self.n_items, float(q) if self.n_samples else 0.0)

    def expected_count(self) -> FloatArray:
        """``(N,)``: ``M / N``."""
        return np.full(self.n_items, self.n_samples / self.n_items)


@dataclass(frozen=True, slots=True)
class UnigramSampler:
    """``n_samples`` draws with replacement from ``probs`` (e.g. the item marginal).

    Examples
    --------
    >>> s = UnigramSampler(np.array([0.5, 0.5]), 2)
    >>> s.inclusion_probability().tolist(), s.expected_count().tolist()
    ([0.75, 0.75], [1.0, 1.0])
    """

    probs: FloatArray
    n_samples: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "probs", _check_distribution(self.probs, "probs"))
        _check_int(self.n_samples, "n_samples", 0)

    def sample(self, n_sets: int, *, rng: RngLike = None) -> IntArray:
        """Return ``(n_sets, n_samples)`` int64 ids."""
        gen = np.random.default_rng(as_seed_sequence(rng))
        n = n_sets * self.n_samples
        rows = np.zeros(n, dtype=np.int64)
        out = sample_categorical_rows(self.probs[None, :], rows, gen.random(n))
        return out.reshape(n_sets, self.n_samples)

    def inclusion_probability(self) -> FloatArray:
        """``(N,)``: ``1 - (1 - q)^M``."""
        return -np.expm1(self.n_samples * np.log1p(-np.minimum(self.probs, 1.0 - 1e-300)))

    def expected_count(self) -> FloatArray:
        """``(N,)``: ``M q``."""
        return self.n_samples * self.probs


@dataclass(frozen=True, slots=True)
class InBatchSampler:
    """The ``batch_size`` positives of a batch, i.i.d. from the item marginal ``eta``.

    Examples
    --------
    >>> s = InBatchSampler(np.array([0.9, 0.1]), 3)
    >>> np.round(s.inclusion_probability(), 3).tolist()
    [0.999, 0.271]
    """

    item_probs: FloatArray
    batch_size: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "item_probs", _check_distribution(self.item_probs, "item_probs"))
        _check_int(self.batch_size, "batch_size", 0)

    def sample(self, n_sets: int, *, rng: RngLike = None) -> IntArray:
        """Return ``(n_sets, batch_size)`` int64 positives."""
        return UnigramSampler(self.item_probs, self.batch_size).sample(n_sets, rng=rng)

    def inclusion_probability(self) -> FloatArray:
        """``(N,)``: ``1 - (1 - eta)^B``."""
        return UnigramSampler(self.item_probs, self.batch_size).inclusion_probability()

    def expected_count(self) -> FloatArray:
        """``(N,)``: ``B eta``."""
        return self.batch_size * self.item_probs


@dataclass(frozen=True, slots=True)
class MixedSampler:
    """In-batch positives plus ``n_random`` uniform draws (with replacement) per batch.

    Attributes
    ----------
    item_probs : ndarray
        ``(N,)`` law ``eta`` of a positive.
    batch_size : int
        ``B`` positives per batch.
    n_random : int
        ``B'`` uniform draws shared by the batch.
    exclude_batch : bool
        Whether the uniform draws exclude the batch's (distinct) items.

    Notes
    -----
    Yang et al. 2020 (docs/theory.md §4): ``Q* = 1 - (1 - eta)^B (1 - gamma)^B'`` with
    ``gamma = 1/N``, or ``1/(N - B)`` when the draw excludes the batch; the latter
    assumes B distinct positives, so it is an approximation when positives repeat.

    Examples
    --------
    >>> s = MixedSampler(np.full(10, 0.1), 2, 3)
    >>> s.sample(4, rng=0).shape
    (4, 5)
    """

    item_probs: FloatArray
    batch_size: int
    n_random: int
    exclude_batch: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "item_probs", _check_distribution(self.item_probs, "item_probs"))
        _check_int(self.batch_size, "batch_size", 0)
        _check_int(self.n_random, "n_random", 0)
        n = self.item_probs.shape[0]
        if self.exclude_batch and self.n_random and n - self.batch_size < 1:
            raise ValueError(
                f"`batch_size` ({self.batch_size}) must be below the catalog size ({n}) "
                "when `exclude_batch`."
            )

    @property
    def n_items(self) -> int:
        """Catalog size ``N``."""
        return int(self.item_probs.shape[0])

    def sample(self, n_sets: int, *, rng: RngLike = None) -> IntArray:
        """Return ``(n_sets, B + B')`` int64 ids: the positives, then the random items."""
        gen = np.random.default_rng(as_seed_sequence(rng))
        n = n_sets * self.batch_size
        pos = sample_categorical_rows(
            self.item_probs[None, :], np.zeros(n, dtype=np.int64), gen.random(n)
        ).reshape(n_sets, self.batch_size)
        u = gen.random((n_sets, self.n_random))
        if self.exclude_batch:
            rand = np.empty((n_sets, self.n_random), dtype=np.int64)
            _uniform_excluding_kernel(np.ascontiguousarray(pos), self.n_items, u, rand)
        else:
            rand = np.minimum((u * self.n_items).astype(np.int64), self.n_items - 1)
        return np.concatenate([pos, rand], axis=1)

    def _gamma(self) -> float:
        if self.n_random == 0:
            return 0.0
        return 1.0 / (self.n_items - (self.batch_size if self.exclude_batch else 0))

    def inclusion_probability(self) -> FloatArray:
        """``(N,)``: ``1 - (1 - eta)^B (1 - gamma)^B'``."""
        log_out = self.batch_size * np.log1p(-np.minimum(self.item_probs, 1.0 - 1e-300))
        if self.n_random:
            log_out = log_out + self.n_random * np.log1p(-self._gamma())
        return -np.expm1(log_out)

    def expected_count(self) -> FloatArray:
        """Return ``(N,)`` expected counts ``B eta + B' gamma``.

        The random part is multiplied by ``(1 - eta)^B`` when the draw excludes the
        batch (an item in the batch cannot be drawn).
        """
        rand = self.n_random * self._gamma()
        if self.exclude_batch:
            rand = rand * (1.0 - self.item_probs) ** self.batch_size
        return self.batch_size * self.item_probs + rand


def counts_per_set(ids: IntArray, n_items: int) -> IntArray:
    """Return ``(S, N)`` int64 multiplicities of each item in each row of ``ids`` (S, M).

    Examples
    --------
    >>> counts_per_set(np.array([[0, 0, 2], [1, 2, 2]]), 3).tolist()
    [[2, 0, 1], [0, 1, 2]]
    """
    ids = np.asarray(ids, dtype=np.int64)
    s = ids.shape[0]
    flat = (ids + n_items * np.arange(s, dtype=np.int64)[:, None]).ravel()
    return np.bincount(flat, minlength=s * n_items).reshape(s, n_items)
