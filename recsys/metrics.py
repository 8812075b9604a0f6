"""Full-catalog retrieval metrics: Recall@K and NDCG@K (docs/theory.md §4).

Each query has one relevant item (the next watch). A query's Recall@K is 1 when the
relevant item is among the K highest-scoring items of the whole catalog and 0
otherwise; its NDCG@K is ``1 / log2(rank + 2)`` for a 0-based rank below K and 0
otherwise (the ideal DCG of one relevant item is 1). The dataset figure is the mean
over queries. Scores are computed in batched matrix products and ranked with one
``torch.topk`` at the largest K. Exact ties with the target are broken as
``torch.topk`` breaks them (lower item index first on CPU; unspecified on CUDA): they
arise only when two items' hashed embeddings collide in every table (about
``N^2 / (2 n_rows^n_tables)`` pairs, 1e-3 at the defaults for 1,500 items). NaN scores
raise ``ValueError``.

References
----------
.. [1] K. Järvelin, J. Kekäläinen, "Cumulated Gain-Based Evaluation of IR
   Techniques", ACM TOIS 20(4), 2002 (DCG / NDCG).
.. [2] P. Covington, J. Adams, E. Sargin, "Deep Neural Networks for YouTube
   Recommendations", RecSys 2016 (candidate generation evaluated by recall).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from recsys.data import Examples

__all__ = [
    "EvaluationResult",
    "evaluate_retrieval",
    "ndcg_at_k",
    "recall_at_k",
    "topk_hits",
]


def _validate_ks(ks: Sequence[int], n_items: int) -> tuple[int, ...]:
    if isinstance(ks, numbers.Integral):
        ks = (int(ks),)
    out = []
    for k in ks:
        if not isinstance(k, numbers.Integral) or isinstance(k, bool):
            raise TypeError(f"`k` must be an integer; got {type(k).__name__}.")
        if not 1 <= k <= n_items:
            raise ValueError(f"`k` must be in [1, n_items={n_items}]; got {k}.")
        out.append(int(k))
    if not out:
        raise ValueError("`ks` must hold at least one K; got an empty sequence.")
    return tuple(out)


def _validate_scores(scores: object, target: object, exclude: object) -> None:
    if not isinstance(scores, Tensor) or scores.ndim != 2:
        raise ValueError(
            "`scores` must be a 2-D tensor (n_queries, n_items); got "
            f"{getattr(scores, 'shape', type(scores).__name__)}."
        )
    if not isinstance(target, Tensor) or target.shape != (scores.shape[0],):
        raise ValueError(
            f"`target` must be a tensor of shape ({scores.shape[0]},); got "
            f"{getattr(target, 'shape', type(target).__name__)}."
        )
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= scores.shape[1]):
        raise ValueError(
            f"`target` must hold item indices in [0, {scores.shape[1]}); got values in "
            f"[{int(target.min())}, {int(target.max())}]."
        )
    n_nan = int(torch.isnan(scores).sum())
    if n_nan:
        # torch.topk ranks NaN above every number: a diverged model would score hits
        raise ValueError(
            f"`scores` must not contain NaN; got {n_nan} NaN value(s) in "
            f"{int(torch.isnan(scores).any(dim=1).sum())} of {scores.shape[0]} rows."
        )
    if exclude is not None and (
        not isinstance(exclude, Tensor) or exclude.ndim != 2 or exclude.shape[0] != scores.shape[0]
    ):
        raise ValueError(
            f"`exclude` must be a 2-D tensor with {scores.shape[0]} rows; got "
            f"{getattr(exclude, 'shape', type(exclude).__name__)}."
        )


def topk_hits(
    scores: Tensor, target: Tensor, ks: Sequence[int], *, exclude: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Per-query Recall@K and NDCG@K for several K from one top-k.

    Parameters
    ----------
    scores : torch.Tensor, shape (n, n_items)
        Score of every catalog item for each query.
    target : torch.Tensor of int64, shape (n,)
        The relevant item of each query.
    ks : sequence of int
        Cut-offs, each in ``[1, n_items]``.
    exclude : torch.Tensor of int64, shape (n, L), optional
        Items removed from each query's ranking before the top-k (e.g. the history);
        ``-1`` entries and entries equal to the query's target are ignored (a re-watch
        stays rankable).

    Returns
    -------
    recall : torch.Tensor of float64, shape (n, len(ks))
        1.0 where the target is in the top K, else 0.0.
    ndcg : torch.Tensor of float64, shape (n, len(ks))
        ``1 / log2(rank + 2)`` where the 0-based rank is below K, else 0.0.

    Raises
    ------
    ValueError
        If shapes disagree, a target or K is outside the catalog, or ``scores`` holds
        NaN (``torch.topk`` would rank NaN first and count it as a hit).

    Examples
    --------
    >>> scores = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
    >>> recall, ndcg = topk_hits(scores, torch.tensor([2, 2]), ks=(1, 2))
    >>> recall.tolist(), [round(v, 4) for v in ndcg[:, 1].tolist()]
    ([[0.0, 1.0], [0.0, 0.0]], [0.6309, 0.0])
    """
    _validate_scores(scores, target, exclude)
    ks = _validate_ks(ks, scores.shape[1])
    if exclude is not None:
        scores = scores.clone()
        rows = torch.arange(scores.shape[0], device=scores.device)[:, None].expand_as(exclude)
        drop = (exclude >= 0) & (exclude != target[:, None])  # (n, L)
        scores[rows[drop], exclude[drop]] = -torch.inf
    top = torch.topk(scores, max(ks), dim=1).indices  # (n, K_max)
    found = top == target[:, None]  # (n, K_max), at most one True per row
    hit_any = found.any(dim=1)  # (n,)
    rank = torch.where(hit_any, found.to(torch.int64).argmax(dim=1), max(ks))  # (n,)
    cut = torch.tensor(ks, device=scores.device)  # (len(ks),)
    inside = rank[:, None] < cut[None, :]  # (n, len(ks))
    gain = 1.0 / torch.log2(rank.to(torch.float64) + 2.0)  # (n,)
    recall = inside.to(torch.float64)
    ndcg = torch.where(inside, gain[:, None], torch.zeros((), dtype=torch.float64))
    return recall, ndcg


def recall_at_k(scores: Tensor, target: Tensor, k: int, *, exclude: Tensor | None = None) -> float:
    """Mean Recall@K over queries with one relevant item each.

    Parameters
    ----------
    scores, target, exclude
        As in :func:`topk_hits`.
    k : int
        Cut-off in ``[1, n_items]``.

    Returns
    -------
    float
        Share of queries whose target is among their ``k`` best-scored items.

    Examples
    --------
    >>> recall_at_k(torch.tensor([[0.1, 0.9, 0.5]]), torch.tensor([2]), 2)
    1.0
    """
    recall, _ = topk_hits(scores, target, (k,), exclude=exclude)
    return float(recall.mean()) if recall.numel() else float("nan")


def ndcg_at_k(scores: Tensor, target: Tensor, k: int, *, exclude: Tensor | None = None) -> float:
    """Mean NDCG@K over queries with one relevant item each.

    Parameters
    ----------
    scores, target, exclude
        As in :func:`topk_hits`.
    k : int
        Cut-off in ``[1, n_items]``.

    Returns
    -------
    float
        Mean of ``1/log2(rank + 2)`` over queries whose target ranks below ``k``
        (0-based), counting 0 for the others.

    Examples
    --------
    >>> ndcg_at_k(torch.tensor([[0.1, 0.9, 0.5]]), torch.tensor([1]), 2)
    1.0
    """
    _, ndcg = topk_hits(scores, target, (k,), exclude=exclude)
    return float(ndcg.mean()) if ndcg.numel() else float("nan")


@dataclass(frozen=True, slots=True)
class EvaluationResult:
    """Per-query full-catalog metrics of one model on one set of examples.

    Attributes
    ----------
    ks : tuple of int
        The cut-offs, in column order.
    recall : numpy.ndarray of float64, shape (n, len(ks))
        Per-query Recall@K (0 or 1).
    ndcg : numpy.ndarray of float64, shape (n, len(ks))
        Per-query NDCG@K.
    user_id : numpy.ndarray of int64, shape (n,)
        User of each query (for user-clustered uncertainty).
    exclude_history : bool
        Whether history items were removed from the rankings.
    """

    ks: tuple[int, ...]
    recall: npt.NDArray[np.float64]
    ndcg: npt.NDArray[np.float64]
    user_id: npt.NDArray[np.int64]
    exclude_history: bool

    def mean(self) -> dict[str, float]:
        """Return ``{"recall@K": ..., "ndcg@K": ...}`` averaged over queries."""
        out: dict[str, float] = {}
        for j, k in enumerate(self.ks):
            out[f"recall@{k}"] = float(self.recall[:, j].mean())
        for j, k in enumerate(self.ks):
            out[f"ndcg@{k}"] = float(self.ndcg[:, j].mean())
        return out


def evaluate_retrieval(
    model: torch.nn.Module,
    examples: Examples,
    n_items: int,
    *,
    ks: Sequence[int] = (10, 50, 100),
    exclude_history: bool = True,
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
) -> EvaluationResult:
    """Score every catalog item for every example and rank the target.

    Parameters
    ----------
    model : torch.nn.Module
        Has ``user_vector(history)`` (B, L) -> (B, d) and ``item_vector(items)`` (N,) ->
        (N, d), e.g. :class:`recsys.model.TwoTower`; scores are ``user @ item.T``.
    examples : Examples
        Queries (history) and targets.
    n_items : int
        Catalog size; items ``0..n_items-1`` are ranked.
    ks : sequence of int, default (10, 50, 100)
        Cut-offs, each in ``[1, n_items]``.
    exclude_history : bool, default True
        Remove each query's history items (other than its target) from its ranking.
    batch_size : int, default 1024
        Queries per matrix product (memory ``batch_size * n_items`` floats).
    device : str or torch.device, default "cpu"

    Returns
    -------
    EvaluationResult

    Raises
    ------
    ValueError
        If a K exceeds the catalog, or a target is outside it.
    """
    ks = _validate_ks(ks, n_items)
    if not isinstance(examples, Examples):
        raise TypeError(f"`examples` must be an Examples; got {type(examples).__name__}.")
    if examples.n_examples and (examples.target.min() < 0 or examples.target.max() >= n_items):
        raise ValueError(
            f"`examples.target` must lie in [0, n_items={n_items}); got values in "
            f"[{examples.target.min()}, {examples.target.max()}]."
        )
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size}.")
    was_training = model.training
    model.eval()
    recalls, ndcgs = [], []
    try:
        with torch.no_grad():
            items = model.item_vector(torch.arange(n_items, device=device))  # (N, d)
            for start in range(0, examples.n_examples, batch_size):
                stop = start + batch_size
                history = torch.as_tensor(examples.history[start:stop], device=device)  # (b, L)
                target = torch.as_tensor(examples.target[start:stop], device=device)  # (b,)
                scores = model.user_vector(history) @ items.T  # (b, N)
                recall, ndcg = topk_hits(
                    scores, target, ks, exclude=history if exclude_history else None
                )
                recalls.append(recall.cpu().numpy())
                ndcgs.append(ndcg.cpu().numpy())
    finally:
        model.train(was_training)
    empty = np.zeros((0, len(ks)))
    return EvaluationResult(
        ks=ks,
        recall=np.concatenate(recalls) if recalls else empty,
        ndcg=np.concatenate(ndcgs) if ndcgs else empty,
        user_id=np.asarray(examples.user_id, dtype=np.int64),
        exclude_history=bool(exclude_history),
    )
