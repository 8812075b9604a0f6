"""YouTube-DNN candidate generation as a two-tower model (docs/theory.md §4).

Item ids are hashed into ``n_tables`` embedding tables with different salts and the
looked-up rows summed (the "hashing trick" with several hash functions, which keeps
collisions of two ids in every table rare); the same tables embed the watch history
and the candidate items. The user tower averages the history embeddings (masked;
a learned default token stands in for an empty history) and passes the average
through an MLP. Scores are the dot product of the user and item vectors, or their
cosine (the temperature / scale is applied by the loss).

Hashing is a vectorised splitmix64 finaliser on int64 tensors (wrap-around
multiplication, logical shifts emulated by masking), so it runs on any device and
never leaves torch.

References
----------
.. [1] P. Covington, J. Adams, E. Sargin, "Deep Neural Networks for YouTube
   Recommendations", RecSys 2016, §3 and Fig. 3.
.. [2] X. Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
   Recommendations", RecSys 2019, §5 (hashed item ids, shared item embeddings).
.. [3] S. Vigna, "Further scramblings of Marsaglia's xorshift generators", J. Comput.
   Appl. Math. 315, 2017 (the splitmix64 finaliser constants).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from recsys._bag_kernels import _scatter_rows_kernel, _scatter_weighted_rows_kernel
from sim import as_seed_sequence

__all__ = ["TwoTower", "hash_ids", "splitmix64"]

_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    """Return the int64 two's-complement reading of a 64-bit unsigned constant."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def _shr(z: Tensor, bits: int) -> Tensor:
    """Logical right shift of int64 ``z`` (torch's ``>>`` is arithmetic)."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def splitmix64(z: Tensor) -> Tensor:
    """Apply the splitmix64 finaliser to an int64 tensor, elementwise.

    Parameters
    ----------
    z : torch.Tensor of int64, any shape
        Input words (read as unsigned 64-bit integers).

    Returns
    -------
    torch.Tensor of int64, same shape
        ``z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB;
        z ^= z >> 31`` in arithmetic modulo 2**64, as int64 bits.

    References
    ----------
    .. [1] S. Vigna, "Further scramblings of Marsaglia's xorshift generators",
       J. Comput. Appl. Math. 315, 2017.

    Examples
    --------
    >>> int(splitmix64(torch.tensor([0x9E3779B97F4A7C15 - 2**64]))[0]) % 2**64 == 0xE220A8397B1DCDAF
    True
    """
    z = z ^ _shr(z, 30)
    z = z * _MIX1
    z = z ^ _shr(z, 27)
    z = z * _MIX2
    return z ^ _shr(z, 31)


def hash_ids(ids: Tensor, salt: int, n_rows: int) -> Tensor:
    """Hash integer ids into ``[0, n_rows)`` with a salted splitmix64.

    Parameters
    ----------
    ids : torch.Tensor of integers, any shape
        Item ids (any int64 value, negative padding included).
    salt : int
        Table-specific salt; different salts give (practically) independent hashes.
    n_rows : int
        Number of rows of the table.

    Returns
    -------
    torch.Tensor of int64, same shape as ``ids``
        ``splitmix64(ids + (salt + 1) * golden) >>> 1  mod n_rows``.

    Examples
    --------
    >>> rows = hash_ids(torch.arange(5), salt=0, n_rows=1000)
    >>> bool(((rows >= 0) & (rows < 1000)).all())
    True
    """
    offset = _signed((int(salt) + 1) * (_GOLDEN & _MASK64))
    z = splitmix64(ids.to(torch.int64) + offset)
    return _shr(z, 1) % int(n_rows)


class _BagSum(torch.autograd.Function):
    """(Weighted) sums of table rows whose backward scatters without sorting (CPU)."""

    @staticmethod
    def forward(ctx, table: Tensor, rows: Tensor, weights: Tensor | None) -> Tensor:  # noqa: D102
        ctx.save_for_backward(rows, weights)
        ctx.n_rows = table.shape[0]
        return nn.functional.embedding_bag(rows, table, mode="sum", per_sample_weights=weights)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):  # noqa: D102
        rows, weights = ctx.saved_tensors
        grad_out = grad_out.contiguous()  # (K, d)
        grad = grad_out.new_zeros(ctx.n_rows, grad_out.shape[1])  # (R, d)
        if weights is None:
            _scatter_rows_kernel(grad.numpy(), rows.numpy(), grad_out.numpy())
        else:
            _scatter_weighted_rows_kernel(
                grad.numpy(), rows.numpy(), weights.contiguous().numpy(), grad_out.numpy()
            )
        return grad, None, None


def _compile_bag_kernels(dtype: torch.dtype) -> None:
    """Run the backward kernels once on tiny inputs of ``dtype``.

    numba compiles them (or loads its on-disk cache) at the first call; training calls
    this before its clock starts, so that it times steps, not compilation.
    """
    if dtype not in (torch.float32, torch.float64):
        return
    grad = torch.zeros(1, 1, dtype=dtype).numpy()
    rows = np.zeros((1, 1), dtype=np.int64)
    _scatter_rows_kernel(grad, rows, grad)
    _scatter_weighted_rows_kernel(grad, rows, grad, grad)


def _bag_sum(table: Tensor, rows: Tensor, weights: Tensor | None = None) -> Tensor:
    """Sum of (weighted) rows of ``table`` per bag: ``out[k] = sum_s w[k, s] table[rows[k, s]]``.

    Parameters
    ----------
    table : torch.Tensor, shape (R, d)
        Embedding rows (e.g. the model's tables viewed as ``(n_tables * n_rows, dim)``).
    rows : torch.Tensor of int64, shape (K, S)
        Row indices of each of the ``K`` bags, in ``[0, R)``.
    weights : torch.Tensor, shape (K, S), optional
        Per-slot weights (``None``: all 1).

    Returns
    -------
    torch.Tensor, shape (K, d)
        The same values as ``torch.nn.functional.embedding_bag(rows, table, mode="sum",
        per_sample_weights=weights)``.

    Notes
    -----
    On the CPU, when ``table`` needs a gradient, the backward pass is one numba loop
    that adds each bag's gradient to its rows of a dense ``(R, d)`` gradient, in bag
    order (deterministic); torch's own EmbeddingBag backward sorts the ``K * S``
    indices first, which made it the most expensive operation of a training step
    (``benchmarks/PROFILE_recsys_step.md``). Elsewhere (CUDA, no gradient) it is
    torch's EmbeddingBag.

    Examples
    --------
    >>> table = torch.arange(6.0).reshape(3, 2)
    >>> _bag_sum(table, torch.tensor([[0, 2], [1, 1]]))
    tensor([[4., 6.],
            [4., 6.]])
    """
    if (
        table.requires_grad
        and torch.is_grad_enabled()
        and table.device.type == "cpu"
        and table.dtype in (torch.float32, torch.float64)
        and (weights is None or weights.dtype == table.dtype)
    ):
        return _BagSum.apply(table, rows.to(torch.int64).contiguous(), weights)
    return nn.functional.embedding_bag(rows, table, mode="sum", per_sample_weights=weights)


def _validate_two_tower(
    n_tables: int, n_rows: int, dim: int, hidden: Sequence[int], similarity: str
) -> None:
    for name, value in (("n_tables", n_tables), ("n_rows", n_rows), ("dim", dim)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise TypeError(f"`{name}` must be an integer; got {type(value).__name__}.")
        if value < 1:
            raise ValueError(f"`{name}` must be >= 1; got {value}.")
    if len(hidden) < 1 or any(int(h) < 1 for h in hidden):
        raise ValueError(f"`hidden` must be a non-empty sequence of positive sizes; got {hidden}.")
    if int(hidden[-1]) != dim:
        raise ValueError(
            f"`hidden[-1]` must equal `dim` (the user vector is compared with item "
            f"embeddings); got {hidden[-1]} and {dim}."
        )
    if similarity not in ("cosine", "dot"):
        raise ValueError(f"`similarity` must be 'cosine' or 'dot'; got {similarity!r}.")


class TwoTower(nn.Module):
    """Two-tower YouTube-DNN candidate generator with hashed, shared item embeddings.

    Parameters
    ----------
    n_tables : int, default 3
        Number of hash tables (salts); an item's embedding is the sum of its rows.
    n_rows : int, default 1000
        Rows per table.
    dim : int, default 64
        Embedding dimension.
    hidden : sequence of int, default (64, 64, 64)
        Widths of the user-tower MLP (ReLU between layers, linear output); the last
        must equal ``dim``.
    similarity : {"cosine", "dot"}, default "cosine"
        ``"cosine"`` L2-normalises the user and item vectors, so that the logit is
        ``cos / temperature`` in the loss (cosine x 20 = temperature 0.05).
    init_scale : float, optional
        Standard deviation of the N(0, init_scale^2) initial table entries (and of the
        default history token). None (default): ``1 / sqrt(n_tables * dim)``, so a summed
        item embedding has unit expected squared norm; 1.0 gives the N(0, 1) tables of
        common reference implementations. With cosine similarity this scale changes how
        fast the tables move relative to their size under Adam, and so which training
        method is ahead early on (``docs/recsys.md``, init-scale sweep).
    hash_seed : int, default 0
        Seed of the table salts (kept fixed across training seeds by default, so that
        every run uses the same hash functions).
    rng : int, numpy.random.SeedSequence or None
        Seed of the parameter initialisation.

    Notes
    -----
    Shapes: ``history`` (B, L) int64 item indices with ``-1`` padding -> user vector
    (B, dim); ``items`` (...) -> item vectors (..., dim). References as in the module
    docstring (Covington et al. 2016; Yi et al. 2019).

    Examples
    --------
    >>> model = TwoTower(rng=0)
    >>> history = torch.tensor([[-1, 3, 7], [-1, -1, -1]])
    >>> model.user_vector(history).shape, model.item_vector(torch.arange(5)).shape
    (torch.Size([2, 64]), torch.Size([5, 64]))
    """

    def __init__(
        self,
        *,
        n_tables: int = 3,
        n_rows: int = 1000,
        dim: int = 64,
        hidden: Sequence[int] = (64, 64, 64),
        similarity: Literal["cosine", "dot"] = "cosine",
        init_scale: float | None = None,
        hash_seed: int = 0,
        rng: int | np.random.SeedSequence | None = None,
    ) -> None:
        super().__init__()
        _validate_two_tower(n_tables, n_rows, dim, hidden, similarity)
        if init_scale is not None and not (
            isinstance(init_scale, numbers.Real)
            and not isinstance(init_scale, bool)
            and np.isfinite(init_scale)
            and init_scale > 0
        ):
            raise ValueError(
                f"`init_scale` must be positive and finite or None; got {init_scale!r}."
            )
        self.init_scale = None if init_scale is None else float(init_scale)
        self.n_tables = int(n_tables)
        self.n_rows = int(n_rows)
        self.dim = int(dim)
        self.similarity = similarity
        salts = np.random.SeedSequence(int(hash_seed)).generate_state(self.n_tables, np.uint64)
        self.salts = tuple(int(s) & ((1 << 62) - 1) for s in salts)
        self.tables = nn.Parameter(torch.empty(self.n_tables, self.n_rows, self.dim))
        self.default_history = nn.Parameter(torch.empty(self.dim))
        layers: list[nn.Module] = []
        width = self.dim
        for i, h in enumerate(hidden):
            layers.append(nn.Linear(width, int(h)))
            if i < len(hidden) - 1:
                layers.append(nn.ReLU())
            width = int(h)
        self.mlp = nn.Sequential(*layers)
        self.reset_parameters(rng)

    def reset_parameters(self, rng: int | np.random.SeedSequence | None = None) -> None:
        """Initialise every parameter from a seeded ``torch.Generator``.

        Tables and the default token are N(0, init_scale^2), by default
        N(0, 1/(n_tables*dim)) (so a summed item vector has unit expected squared norm);
        linear layers use U(-1/sqrt(fan_in),
        1/sqrt(fan_in)) like torch's default, but from the given seed.
        """
        seed = int(as_seed_sequence(rng).generate_state(1, np.uint64)[0] >> np.uint64(1))
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            std = self.init_scale or 1.0 / np.sqrt(self.n_tables * self.dim)
            self.tables.copy_(torch.randn(self.tables.shape, generator=gen) * std)
            self.default_history.copy_(torch.randn(self.dim, generator=gen) * std)
            for layer in self.mlp:
                if isinstance(layer, nn.Linear):
                    bound = 1.0 / np.sqrt(layer.in_features)
                    layer.weight.copy_(
                        (torch.rand(layer.weight.shape, generator=gen) * 2 - 1) * bound
                    )
                    layer.bias.copy_((torch.rand(layer.bias.shape, generator=gen) * 2 - 1) * bound)

    def hashed_rows(self, items: Tensor) -> Tensor:
        """Return the row of each item in each table, shape ``items.shape + (n_tables,)``."""
        return torch.stack([hash_ids(items, s, self.n_rows) for s in self.salts], dim=-1)

    def flat_rows(self, items: Tensor) -> Tensor:
        """Rows of ``tables.view(n_tables * n_rows, dim)``, shape ``items.shape + (n_tables,)``.

        Hash once (e.g. for the whole catalog) and pass the result to
        :meth:`item_vector_from_rows` / :meth:`user_vector_from_rows`: training does so to
        keep hashing out of the step.
        """
        offsets = torch.arange(self.n_tables, device=items.device) * self.n_rows  # (T,)
        return self.hashed_rows(items) + offsets

    def _embedding_from_rows(self, rows: Tensor, weights: Tensor | None = None) -> Tensor:
        """Sum over the last axis of ``rows`` (K, S) of (weighted) table rows -> (K, dim)."""
        flat = self.tables.view(-1, self.dim)  # (T * R, d)
        return _bag_sum(flat, rows, weights)

    def item_embedding(self, items: Tensor) -> Tensor:
        """Sum of the item's hashed rows over the tables (before any normalisation).

        Parameters
        ----------
        items : torch.Tensor of int64, shape (...)

        Returns
        -------
        torch.Tensor, shape (..., dim)
        """
        rows = self.flat_rows(items)  # (..., n_tables)
        out = self._embedding_from_rows(rows.reshape(-1, self.n_tables))  # (K, d)
        return out.view(*items.shape, self.dim)

    def item_vector_from_rows(self, rows: Tensor) -> Tensor:
        """Item vectors from :meth:`flat_rows` output (K, n_tables) -> (K, dim)."""
        v = self._embedding_from_rows(rows)  # (K, d)
        return nn.functional.normalize(v, dim=-1) if self.similarity == "cosine" else v

    def item_vector(self, items: Tensor) -> Tensor:
        """Candidate-side item vectors, shape ``items.shape + (dim,)`` (unit norm if cosine)."""
        v = self.item_embedding(items)  # (..., dim)
        return nn.functional.normalize(v, dim=-1) if self.similarity == "cosine" else v

    def user_vector(self, history: Tensor) -> Tensor:
        """User-tower output from a padded history.

        Parameters
        ----------
        history : torch.Tensor of int64, shape (B, L)
            Item indices, ``-1`` for empty slots.

        Returns
        -------
        torch.Tensor, shape (B, dim)
            MLP of the masked mean of the history embeddings (the default token when a
            row is empty), unit norm if cosine.
        """
        return self.user_vector_from_rows(self.flat_rows(history.clamp_min(0)), history >= 0)

    def user_vector_from_rows(self, rows: Tensor, valid: Tensor) -> Tensor:
        """User vectors from the history's :meth:`flat_rows` (B, L, T) and its mask (B, L).

        One weighted bag per row: each valid slot's ``n_tables`` rows weigh
        ``1 / (number of valid slots)``, the masked mean of the history embeddings.
        """
        b, length, t = rows.shape
        count = valid.sum(dim=1, keepdim=True)  # (B, 1)
        weights = valid.to(self.tables.dtype) / count.clamp_min(1)  # (B, L)
        weights = weights.unsqueeze(-1).expand(b, length, t).reshape(b, length * t)  # (B, L T)
        pooled = self._embedding_from_rows(rows.reshape(b, length * t), weights)  # (B, d)
        pooled = torch.where(count > 0, pooled, self.default_history)  # (B, dim)
        u = self.mlp(pooled)  # (B, dim)
        return nn.functional.normalize(u, dim=-1) if self.similarity == "cosine" else u

    def forward(self, history: Tensor, items: Tensor) -> Tensor:
        """Similarities of each user with candidate items.

        Parameters
        ----------
        history : torch.Tensor of int64, shape (B, L)
        items : torch.Tensor of int64, shape (C,)

        Returns
        -------
        torch.Tensor, shape (B, C)
            Dot products (cosines when ``similarity="cosine"``), before temperature.
        """
        return self.user_vector(history) @ self.item_vector(items).T  # (B, C)
