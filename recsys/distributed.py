"""Data-parallel retrieval training over the *global* batch (torch.distributed, docs/theory.md §4).

With ``N`` processes (ranks) each holding ``b = B / N`` rows of one global batch of
``B`` (query, positive) pairs, in-batch and mixed negatives must still be the whole
global batch: a row's negatives are the positives of the other ``B - 1`` rows on
*every* rank, Q uses the global ``B``, and an item that is a positive on two ranks is
a duplicate to mask. This module supplies the pieces, and the candidate sets
themselves are built by the single-process builders of :mod:`recsys.negatives` on the
gathered tensors, so no formula is re-derived here:

==================================  =================================================
piece                               what it does
==================================  =================================================
:func:`all_gather_with_grad`        ``(b, ...)`` per rank -> ``(N b, ...)`` on every
                                    rank, differentiable: the backward sums the
                                    gradient of every rank's loss into the owner's rows
:func:`all_gather_tensor`           the same without gradient (ids, probabilities)
:func:`global_in_batch_candidates`  :func:`~recsys.negatives.in_batch_candidates` of
                                    the global batch, restricted to the local rows
                                    (labels offset by ``rank * b``)
:func:`global_mixed_candidates`     :func:`~recsys.negatives.mixed_candidates` likewise;
                                    the ``B'`` random items are drawn once per global
                                    batch from a seed shared by all ranks
:func:`average_gradients`           the all-reduce mean of the gradients that
                                    ``DistributedDataParallel`` performs
:func:`evaluate_retrieval_sharded`  Recall@K / NDCG@K with the queries sharded and the
                                    per-query results gathered (exactly the 1-process
                                    figures)
:func:`launch`                      runs a function in ``N`` local processes (gloo on
                                    CPU, NCCL on GPUs) with a timeout
==================================  =================================================

Sampled softmax needs no gather: its mask hides every other row's positive, and its
shared negatives and Q (``M q(y)``) do not depend on the batch, so the local rows with
the shared negatives give exactly the global loss of those rows.

Why the gradients are exact
---------------------------
Let ``L = (1/B) sum_i l_i`` be the global loss and ``L_r`` the mean of ``l_i`` over the
rows of rank ``r``, so that ``L = (1/N) sum_r L_r``. Rank ``r`` back-propagates
``L_r``; the backward of :func:`all_gather_with_grad` all-reduces (sums) the gradient
with respect to the gathered candidates, so rank ``r``'s item tower receives
``sum_s dL_s / dc_r`` for its own candidates ``c_r``. Summed over ranks this is
``sum_r dL_r / dtheta``, and the mean of :func:`average_gradients` divides by ``N``:
``dL / dtheta`` exactly. Each shortcut breaks one of these steps (see
``docs/distributed.md`` for the measured gradient errors).

References
----------
.. [1] X. Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
   Recommendations", RecSys 2019 (in-batch softmax with logQ correction, eq. 3).
.. [2] J. Yang et al., "Mixed Negative Sampling for Learning Two-tower Neural Networks
   in Recommendations", WWW 2020 Companion (section 3).
.. [3] S. Li et al., "PyTorch Distributed: Experiences on Accelerating Data Parallel
   Training", VLDB 2020 (gradient averaging in DistributedDataParallel).
"""

from __future__ import annotations

import dataclasses
import datetime
import queue
import socket
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor

from recsys.data import Examples
from recsys.metrics import EvaluationResult, evaluate_retrieval
from recsys.negatives import (
    CandidateSet,
    Correction,
    in_batch_candidates,
    mixed_candidates,
)

__all__ = [
    "all_gather_tensor",
    "all_gather_with_grad",
    "average_gradients",
    "broadcast_parameters",
    "evaluate_retrieval_sharded",
    "global_in_batch_candidates",
    "global_mixed_candidates",
    "launch",
    "launch_comparison",
    "local_rows",
    "rank",
    "shard_bounds",
    "world_size",
]


# ------------------------------------------------------------------------ process group


def world_size(group: dist.ProcessGroup | None = None) -> int:
    """Return the number of processes of ``group`` (1 without torch.distributed).

    Examples
    --------
    >>> world_size()
    1
    """
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


def rank(group: dist.ProcessGroup | None = None) -> int:
    """Return the rank of this process in ``group`` (0 without torch.distributed).

    Examples
    --------
    >>> rank()
    0
    """
    if not (dist.is_available() and dist.is_initialized()):
        return 0
    return dist.get_rank(group)


def shard_bounds(n: int, n_shards: int, index: int) -> tuple[int, int]:
    """Return ``[start, stop)`` of shard ``index`` of ``n`` items cut into ``n_shards``.

    Shards are contiguous and their sizes differ by at most one (the first
    ``n % n_shards`` are one longer); nothing is padded or repeated, unlike
    ``torch.utils.data.DistributedSampler``, which repeats items to equalise shards.

    Raises
    ------
    ValueError
        If ``n < 0``, ``n_shards < 1`` or ``index`` is not in ``[0, n_shards)``.

    Examples
    --------
    >>> [shard_bounds(7, 3, i) for i in range(3)]
    [(0, 3), (3, 5), (5, 7)]
    """
    for name, value in (("n", n), ("n_shards", n_shards), ("index", index)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"`{name}` must be an int; got {type(value).__name__}.")
    if n < 0:
        raise ValueError(f"`n` must be >= 0; got {n}.")
    if n_shards < 1:
        raise ValueError(f"`n_shards` must be >= 1; got {n_shards}.")
    if not 0 <= index < n_shards:
        raise ValueError(f"`index` must be in [0, {n_shards}); got {index}.")
    base, extra = divmod(int(n), int(n_shards))
    start = index * base + min(index, extra)
    return start, start + base + (1 if index < extra else 0)


# ----------------------------------------------------------------------------- gathers


def _gather(x: Tensor, group: dist.ProcessGroup | None) -> Tensor:
    """Concatenate ``x`` (b, ...) of every rank in rank order into (N b, ...)."""
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]  # N x (b, ...)
    dist.all_gather(parts, x.contiguous(), group=group)
    return torch.cat(parts)  # (N b, ...)


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums every rank's gradient into the owner's rows."""

    @staticmethod
    def forward(ctx, x: Tensor, group: dist.ProcessGroup | None) -> Tensor:  # type: ignore[override]
        ctx.group = group
        ctx.n_rows = x.shape[0]
        ctx.rank = dist.get_rank(group)
        return _gather(x, group)  # (N b, ...)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        total = grad.contiguous().clone()  # (N b, ...) d L_r / d gathered, this rank
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=ctx.group)  # sum_s d L_s / d .
        start = ctx.rank * ctx.n_rows
        return total[start : start + ctx.n_rows], None  # (b, ...) this rank's rows


def _check_gather_input(x: object, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor; got {type(x).__name__}.")
    if x.ndim < 1:
        raise ValueError(f"`{name}` must have a leading row dimension; got a 0-d tensor.")


def all_gather_with_grad(x: Tensor, group: dist.ProcessGroup | None = None) -> Tensor:
    """Gather ``x`` from every rank, keeping the gradient to every rank's rows.

    Parameters
    ----------
    x : Tensor
        ``(b, ...)`` this rank's rows; ``b`` and the trailing shape must be the same on
        every rank (the global batch is split into equal shards).
    group : ProcessGroup, optional
        Default: the world.

    Returns
    -------
    Tensor
        ``(N b, ...)``: rank 0's rows, then rank 1's, ... (rank ``r``'s rows start at
        ``r * b``). Without an initialised process group (or with ``N = 1``), ``x``.

    Notes
    -----
    A small :class:`torch.autograd.Function` over :func:`torch.distributed.all_gather`
    into preallocated tensors (the functional collectives that do this are deprecated
    in torch 2.13). Forward: ``y = [x_0; ...; x_{N-1}]``. Backward: rank ``r`` holds
    ``g_r = dL_r / dy``; the gradient of ``x_r`` in the total ``sum_s L_s`` is
    ``sum_s g_s[rows of r]``, one all-reduce (sum) and a slice. Together with
    :func:`average_gradients` this yields the gradient of the mean global loss (module
    notes). A plain all-gather (no gradient to other ranks' rows) drops the terms
    ``s != r`` -- the first shortcut in ``docs/distributed.md``.

    Examples
    --------
    >>> x = torch.ones(2, 3, requires_grad=True)
    >>> all_gather_with_grad(x) is x  # one process: nothing to gather
    True
    """
    _check_gather_input(x, "x")
    if world_size(group) == 1:
        return x
    return _AllGatherWithGrad.apply(x, group)


def all_gather_tensor(x: Tensor, group: dist.ProcessGroup | None = None) -> Tensor:
    """Gather ``x`` (b, ...) from every rank into ``(N b, ...)`` without gradient.

    For ids and probabilities; see :func:`all_gather_with_grad` for embeddings.

    Examples
    --------
    >>> all_gather_tensor(torch.tensor([3, 1])).tolist()
    [3, 1]
    """
    _check_gather_input(x, "x")
    if world_size(group) == 1:
        return x.detach()
    with torch.no_grad():
        return _gather(x.detach(), group)


def _check_replicated(x: Tensor, name: str, group: dist.ProcessGroup | None) -> None:
    """Raise unless ``x`` is identical on every rank (one all-reduce of max(x), max(-x))."""
    shape = torch.tensor([x.numel()], dtype=torch.int64, device=x.device)
    both = torch.cat([shape, -shape])  # (2,)
    dist.all_reduce(both, op=dist.ReduceOp.MAX, group=group)
    if int(both[0]) != -int(both[1]):
        raise ValueError(f"`{name}` must have the same length on every rank.")
    flat = x.detach().reshape(-1).to(torch.float64)  # (n,) exact for ids < 2^53
    ext = torch.cat([flat, -flat])  # (2n,)
    dist.all_reduce(ext, op=dist.ReduceOp.MAX, group=group)
    if not bool(torch.equal(ext[: flat.numel()], -ext[flat.numel() :])):
        raise ValueError(
            f"`{name}` must be identical on every rank (draw it from a seed shared by all "
            "ranks, once per global batch)."
        )


# ------------------------------------------------------------------------ candidate sets


def local_rows(cs: CandidateSet, start: int, stop: int) -> CandidateSet:
    """Restrict a candidate set to rows ``[start, stop)``; the candidates stay whole.

    Parameters
    ----------
    cs : CandidateSet
        Candidates (C, d) of a batch of ``B`` rows.
    start, stop : int
        Rows kept, ``0 <= start <= stop <= B``.

    Returns
    -------
    CandidateSet
        ``labels`` (stop - start,), ``mask`` (stop - start, C), per-row ``log_q``
        sliced the same way; ``candidates``, ``candidate_ids`` and a shared ``log_q``
        (C,) unchanged.

    Examples
    --------
    >>> cs = in_batch_candidates(torch.tensor([5, 7, 5, 2]), torch.eye(4),
    ...                          torch.tensor([0.2, 0.1, 0.2, 0.1]))
    >>> half = local_rows(cs, 2, 4)
    >>> half.labels.tolist(), half.mask.int().tolist()  # labels offset by rank * b
    ([2, 3], [[1, 0, 0, 0], [0, 0, 1, 0]])
    """
    n = cs.labels.shape[0]
    if not (0 <= start <= stop <= n):
        raise ValueError(f"rows [`start`, `stop`) must lie in [0, {n}]; got [{start}, {stop}).")
    log_q = cs.log_q
    if log_q is not None and log_q.ndim == 2:
        log_q = log_q[start:stop]  # (b, C)
    return dataclasses.replace(
        cs,
        labels=cs.labels[start:stop],  # (b,) indices into the global candidates
        mask=None if cs.mask is None else cs.mask[start:stop],  # (b, C)
        log_q=log_q,
    )


def _global_batch(
    positive_ids: Tensor,
    positive_embeddings: Tensor,
    positive_probs: Tensor | None,
    group: dist.ProcessGroup | None,
) -> tuple[Tensor, Tensor, Tensor | None, int, int]:
    """Gather ids (B,), embeddings (B, d) with gradient, probs (B,); local row range."""
    b = positive_ids.shape[0] if isinstance(positive_ids, Tensor) else -1
    if not isinstance(positive_embeddings, Tensor) or positive_embeddings.shape[:1] != (b,):
        raise ValueError(
            f"`positive_embeddings` must have shape ({b}, d) to match `positive_ids`; got "
            f"{getattr(positive_embeddings, 'shape', type(positive_embeddings).__name__)}."
        )
    ids = all_gather_tensor(positive_ids, group)  # (B,)
    emb = all_gather_with_grad(positive_embeddings, group)  # (B, d)
    probs = None if positive_probs is None else all_gather_tensor(positive_probs, group)  # (B,)
    start = rank(group) * b
    return ids, emb, probs, start, start + b


def global_in_batch_candidates(
    positive_ids: Tensor,
    positive_embeddings: Tensor,
    positive_probs: Tensor | None = None,
    *,
    correction: Correction = "inclusion_probability",
    remove_accidental_hits: bool = True,
    validate: bool = True,
    group: dist.ProcessGroup | None = None,
) -> CandidateSet:
    """In-batch negatives of the global batch, for this rank's rows.

    Parameters
    ----------
    positive_ids : Tensor
        ``(b,)`` int64 positives of this rank's rows (``b`` equal on every rank).
    positive_embeddings : Tensor
        ``(b, d)`` their embeddings (gradient kept across ranks).
    positive_probs : Tensor, optional
        ``(b,)`` p(y) of each positive, from the same frequency state on every rank
        (required unless ``correction="none"``).
    correction, remove_accidental_hits, validate
        As in :func:`recsys.negatives.in_batch_candidates`.
    group : ProcessGroup, optional
        Default: the world.

    Returns
    -------
    CandidateSet
        ``candidates`` (B, d) = every rank's positives in rank order, ``labels`` (b,)
        = ``rank * b + arange(b)``, ``mask`` (b, B) hides copies of a row's positive on
        any rank, ``log_q`` (B,) uses the global ``B``: ``1 - (1 - p)^(B - 1)``.

    Notes
    -----
    :func:`recsys.negatives.in_batch_candidates` of the gathered batch (Yi et al. 2019,
    eq. 3; docs/theory.md §4), then :func:`local_rows`. With one process it equals the
    single-process builder.

    Examples
    --------
    >>> cs = global_in_batch_candidates(torch.tensor([5, 7]), torch.eye(2),
    ...                                 torch.tensor([0.2, 0.1]))
    >>> cs.labels.tolist(), cs.candidates.shape
    ([0, 1], torch.Size([2, 2]))
    """
    ids, emb, probs, start, stop = _global_batch(
        positive_ids, positive_embeddings, positive_probs, group
    )
    cs = in_batch_candidates(
        ids,
        emb,
        probs,
        correction=correction,
        remove_accidental_hits=remove_accidental_hits,
        validate=validate,
    )
    return local_rows(cs, start, stop)


def global_mixed_candidates(
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
    check_replicated: bool | None = None,
    group: dist.ProcessGroup | None = None,
) -> CandidateSet:
    """Mixed negatives of the global batch (its positives + ``B'`` shared random items).

    Parameters
    ----------
    positive_ids, positive_embeddings, positive_probs
        As in :func:`global_in_batch_candidates` (this rank's ``b`` rows).
    random_ids : Tensor
        ``(B',)`` int64 random items, drawn once per *global* batch: the same ids on
        every rank (e.g. :func:`recsys.negatives.sample_uniform_negatives` with a
        generator seeded identically on every rank).
    random_embeddings : Tensor
        ``(B', d)`` their embeddings, computed on every rank (the gradient mean of
        :func:`average_gradients` then counts them once).
    random_probs : Tensor or None
        ``(B',)`` p(y) of the random items.
    catalog_size, exclude_batch, correction, remove_accidental_hits, validate
        As in :func:`recsys.negatives.mixed_candidates`; with ``exclude_batch`` the
        draw must have excluded the *global* batch's items.
    check_replicated : bool, optional
        Check (two all-reduces and a host synchronisation) that ``random_ids`` is the
        same on every rank; default: ``validate``.
    group : ProcessGroup, optional
        Default: the world.

    Returns
    -------
    CandidateSet
        ``candidates`` (B + B', d), ``labels`` (b,) offset by ``rank * b``, ``mask``
        (b, B + B'), ``log_q`` (B + B',) with
        ``Q* = 1 - (1 - p)^(B - 1) (1 - gamma)^B'`` for the global ``B``.

    Notes
    -----
    :func:`recsys.negatives.mixed_candidates` of the gathered batch (Yang et al. 2020,
    section 3; docs/theory.md §4), then :func:`local_rows`.

    Examples
    --------
    >>> e = torch.eye(4)
    >>> cs = global_mixed_candidates(torch.tensor([0, 1]), e[:2], torch.tensor([0.5, 0.5]),
    ...                              torch.tensor([3]), e[[3]], torch.tensor([0.0]),
    ...                              catalog_size=4)
    >>> cs.labels.tolist(), cs.candidates.shape
    ([0, 1], torch.Size([3, 4]))
    """
    if not isinstance(random_ids, Tensor):
        raise TypeError(f"`random_ids` must be a torch.Tensor; got {type(random_ids).__name__}.")
    if check_replicated is None:
        check_replicated = validate
    if check_replicated and world_size(group) > 1:
        _check_replicated(random_ids, "random_ids", group)
    ids, emb, probs, start, stop = _global_batch(
        positive_ids, positive_embeddings, positive_probs, group
    )
    cs = mixed_candidates(
        ids,
        emb,
        probs,
        random_ids,
        random_embeddings,
        random_probs,
        catalog_size=catalog_size,
        exclude_batch=exclude_batch,
        correction=correction,
        remove_accidental_hits=remove_accidental_hits,
        validate=validate,
    )
    return local_rows(cs, start, stop)


# ---------------------------------------------------------------------------- gradients


def average_gradients(module: torch.nn.Module, group: dist.ProcessGroup | None = None) -> None:
    """Replace each parameter's gradient by its mean over the ranks, in place.

    The gradient synchronisation of ``torch.nn.parallel.DistributedDataParallel``
    (Li et al. 2020): one all-reduce (sum) of the flattened gradients, divided by
    ``N``. Parameters without a gradient are skipped (the same ones on every rank:
    every rank runs the same graph). Without an initialised process group it does
    nothing.

    Examples
    --------
    >>> lin = torch.nn.Linear(2, 1)
    >>> lin(torch.ones(1, 2)).sum().backward()
    >>> average_gradients(lin)  # one process: unchanged
    >>> lin.weight.grad.tolist()
    [[1.0, 1.0]]
    """
    n = world_size(group)
    if n == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])  # (P,)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    flat /= n
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_parameters(
    module: torch.nn.Module, src: int = 0, group: dist.ProcessGroup | None = None
) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank, in place.

    ``DistributedDataParallel`` does this at construction, so that all replicas start
    from the same weights. Without an initialised process group it does nothing.

    Examples
    --------
    >>> broadcast_parameters(torch.nn.Linear(2, 1))  # one process: a no-op
    """
    if world_size(group) == 1:
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=src, group=group)


# --------------------------------------------------------------------------- evaluation


def evaluate_retrieval_sharded(
    model: torch.nn.Module,
    examples: Examples,
    n_items: int,
    *,
    ks: Sequence[int] = (10, 50, 100),
    exclude_history: bool = True,
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
    group: dist.ProcessGroup | None = None,
) -> EvaluationResult:
    """:func:`recsys.metrics.evaluate_retrieval` with the queries sharded over the ranks.

    Rank ``r`` scores the contiguous shard :func:`shard_bounds` ``(n, N, r)`` of the
    queries against the whole catalog; the per-query Recall@K and NDCG@K are gathered
    (padded to the longest shard, the padding dropped), so every rank returns the
    per-query results of all ``n`` queries in their original order -- the same
    figures as one process evaluating everything (each query's ranking depends only
    on its own scores). Parameters and return value as in
    :func:`recsys.metrics.evaluate_retrieval`; every rank must hold the same model.

    Examples
    --------
    >>> from recsys.model import TwoTower
    >>> ex = Examples(history=np.array([[-1, 1], [0, 1]]), target=np.array([2, 3]),
    ...               user_id=np.array([7, 8]), position=np.array([1, 2]))
    >>> res = evaluate_retrieval_sharded(TwoTower(rng=0), ex, 5, ks=(5,))
    >>> res.recall.tolist()  # K = the whole catalog: every target is found
    [[1.0], [1.0]]
    """
    n_ranks = world_size(group)
    kwargs = {
        "ks": ks,
        "exclude_history": exclude_history,
        "batch_size": batch_size,
        "device": device,
    }
    if n_ranks == 1:
        return evaluate_retrieval(model, examples, n_items, **kwargs)
    if not isinstance(examples, Examples):
        raise TypeError(f"`examples` must be an Examples; got {type(examples).__name__}.")
    n = examples.n_examples
    start, stop = shard_bounds(n, n_ranks, rank(group))
    part = evaluate_retrieval(model, examples.take(np.arange(start, stop)), n_items, **kwargs)
    longest = shard_bounds(n, n_ranks, 0)[1]  # the first shard is the longest
    width = len(part.ks)
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    if dist.get_backend(group) == "nccl" and dev.type != "cuda":
        dev = torch.device("cuda", torch.cuda.current_device())
    local = torch.zeros(longest, 2 * width, dtype=torch.float64, device=dev)  # padded
    local[: stop - start] = torch.as_tensor(
        np.concatenate([part.recall, part.ndcg], axis=1), device=dev
    )
    gathered = _gather(local, group).cpu().numpy()  # (N * longest, 2 * width)
    rows = []  # the unpadded rows of each rank, in rank order = query order
    for r in range(n_ranks):
        r_start, r_stop = shard_bounds(n, n_ranks, r)
        rows.append(np.arange(r * longest, r * longest + r_stop - r_start))
    values = gathered[np.concatenate(rows)]  # (n, 2 * width)
    return EvaluationResult(
        ks=part.ks,
        recall=values[:, :width],
        ndcg=values[:, width:],
        user_id=np.asarray(examples.user_id, dtype=np.int64),
        exclude_history=bool(exclude_history),
    )


# ------------------------------------------------------------------------------ launch


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(
    process_rank: int,
    n_ranks: int,
    port: int,
    backend: str,
    threads: int | None,
    collective_timeout_s: float,
    fn: Callable[..., Any],
    args: tuple,
    results: Any,
) -> None:
    """Entry point of one spawned process: join the group, run ``fn``, report."""
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        if backend == "nccl":
            torch.cuda.set_device(process_rank)
        dist.init_process_group(
            backend,
            init_method=f"tcp://127.0.0.1:{port}",
            rank=process_rank,
            world_size=n_ranks,
            timeout=datetime.timedelta(seconds=collective_timeout_s),
        )
        try:
            out = fn(*args)
            dist.barrier()
        finally:
            dist.destroy_process_group()
        results.put((process_rank, True, out))
    except BaseException:  # report every failure to the parent, then exit non-zero
        results.put((process_rank, False, traceback.format_exc()))
        raise SystemExit(1) from None


def _validate_launch(fn, n_ranks, backend, timeout_s, collective_timeout_s, threads) -> None:
    if not callable(fn):
        raise TypeError(f"`fn` must be callable; got {type(fn).__name__}.")
    if isinstance(n_ranks, bool) or not isinstance(n_ranks, (int, np.integer)):
        raise TypeError(f"`n_processes` must be an int; got {type(n_ranks).__name__}.")
    if n_ranks < 1:
        raise ValueError(f"`n_processes` must be >= 1; got {n_ranks}.")
    if backend not in (None, "gloo", "nccl"):
        raise ValueError(f"`backend` must be 'gloo', 'nccl' or None; got {backend!r}.")
    if backend == "nccl" and torch.cuda.device_count() < n_ranks:
        raise ValueError(
            f"`backend`='nccl' needs one CUDA device per rank (`n_processes`={n_ranks}); "
            f"got {torch.cuda.device_count()} device(s)."
        )
    for name, value in (("timeout_s", timeout_s), ("collective_timeout_s", collective_timeout_s)):
        if value is not None and not (
            isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        ):
            raise ValueError(f"`{name}` must be a positive number; got {value!r}.")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"`threads` must be a positive int or None; got {threads!r}.")


def launch(
    fn: Callable[..., Any],
    n_processes: int,
    *args: Any,
    backend: str | None = None,
    timeout_s: float = 600.0,
    collective_timeout_s: float | None = None,
    threads: int | None = None,
) -> list[Any]:
    """Run ``fn(*args)`` in ``n_processes`` new local processes joined in one group.

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled into spawned processes). Inside it,
        :func:`rank` and :func:`world_size` tell the process its place, and every
        function of this module works across the processes.
    n_processes : int
        Number of processes (the world size ``N``), >= 1.
    *args
        Arguments of ``fn`` (picklable).
    backend : {"gloo", "nccl"}, optional
        Default "gloo" (CPU). "nccl" needs ``N`` CUDA devices; rank ``r`` uses device
        ``r`` (``torch.cuda.set_device``).
    timeout_s : float, default 600
        Wall-clock limit for the whole run.
    collective_timeout_s : float, optional
        Timeout of each collective (default ``min(timeout_s, 600)``): a hang (a rank
        that never joins a collective) fails instead of blocking.
    threads : int, optional
        ``torch.set_num_threads`` in each process.

    Returns
    -------
    list
        ``fn``'s return value on each rank, in rank order.

    Raises
    ------
    RuntimeError
        If a process fails (the message holds its traceback) or exits without a result.
    TimeoutError
        If the run exceeds ``timeout_s`` (every process is then terminated).

    Notes
    -----
    Processes are started with the ``spawn`` method and rendezvous over TCP on
    127.0.0.1 at a port the OS reports free.
    """
    _validate_launch(fn, n_processes, backend, timeout_s, collective_timeout_s, threads)
    backend = backend or "gloo"
    if collective_timeout_s is None:
        collective_timeout_s = min(float(timeout_s), 600.0)
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = _free_port()
    procs = [
        ctx.Process(
            target=_worker,
            args=(r, n_processes, port, backend, threads, collective_timeout_s, fn, args, results),
            daemon=True,
        )
        for r in range(n_processes)
    ]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout_s
    out: dict[int, Any] = {}
    failed = True
    try:
        while len(out) < n_processes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"distributed run of {getattr(fn, '__name__', fn)!r} exceeded "
                    f"`timeout_s`={timeout_s} s with {n_processes - len(out)} rank(s) unfinished."
                )
            try:
                r, ok, value = results.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                dead = [
                    i for i, p in enumerate(procs) if i not in out and p.exitcode not in (None, 0)
                ]
                if dead and results.empty():
                    time.sleep(0.5)  # let a failing rank's report arrive
                    if results.empty():
                        raise RuntimeError(
                            f"rank {dead[0]} exited with code {procs[dead[0]].exitcode} "
                            "without reporting a result."
                        ) from None
                continue
            if not ok:
                raise RuntimeError(_failure_report(r, value, results, n_processes - len(out)))
            out[r] = value
        failed = False
    finally:
        for p in procs:  # after a failure the other ranks may wait in a collective: stop them
            p.join(timeout=0.0 if failed else max(0.0, min(10.0, deadline - time.monotonic())))
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=5.0)
        results.close()
    return [out[r] for r in range(n_processes)]


def _failure_report(rank_: int, error: str, results: Any, pending: int) -> str:
    """Message naming every rank that failed within a short grace period, by rank.

    When one rank raises, its peers usually fail too, in a collective ("connection
    reset by peer"), and their reports can arrive first; waiting briefly and listing all
    failures keeps the rank that caused it in the message whatever the arrival order.
    """
    failures = {rank_: error}
    grace = time.monotonic() + 2.0
    while len(failures) < pending and time.monotonic() < grace:
        try:
            r, ok, value = results.get(timeout=max(0.0, grace - time.monotonic()))
        except queue.Empty:
            break
        if not ok:
            failures[r] = value
    return "\n".join(f"rank {r} failed:\n{failures[r]}" for r in sorted(failures))


# ---------------------------------------------------------------------------- compare


def _comparison_rank(data: Any, config: Any, kwargs: dict[str, Any]) -> Any:
    """One rank of :func:`launch_comparison`: the whole comparison, rank 0 reports it."""
    from recsys.compare import run_comparison

    progress = kwargs.pop("progress") and rank() == 0
    result = run_comparison(data, config, progress=progress, **kwargs)
    return result if rank() == 0 else None


def launch_comparison(
    data: Any,
    config: Any,
    world_size: int,
    *,
    rng: Any = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    data_label: str = "data",
    timeout_s: float = 7 * 24 * 3600.0,
) -> dict[str, Any]:
    """Run :func:`recsys.compare.run_comparison` in ``world_size`` processes.

    Every process runs the same comparison (same folds, seeds, initial weights and
    global batches); :func:`recsys.train.train_model` gives each its ``B / N`` rows of
    every global batch, and the evaluation is sharded
    (:func:`evaluate_retrieval_sharded`). Gloo on CPU; NCCL with one GPU per process
    when ``device`` is CUDA. The torch CPU threads of this process are shared out
    (``max(1, threads // N)`` each).

    Parameters
    ----------
    data : recsys.data.Interactions
    config : recsys.compare.CompareConfig
        ``batch_size`` must be a multiple of ``world_size``.
    world_size : int
        Number of processes ``N`` >= 1.
    rng, device, progress, data_label
        As in :func:`recsys.compare.run_comparison`.
    timeout_s : float, default one week
        Wall-clock limit; each collective times out after 10 minutes.

    Returns
    -------
    dict
        Rank 0's result; ``config.world_size`` is ``world_size``.
    """
    from recsys.train import resolve_device

    if isinstance(world_size, bool) or not isinstance(world_size, (int, np.integer)):
        raise TypeError(f"`world_size` must be an int; got {type(world_size).__name__}.")
    if world_size < 1:
        raise ValueError(f"`world_size` must be >= 1; got {world_size}.")
    if config.batch_size % world_size:
        raise ValueError(
            f"`batch_size` must be a multiple of the number of processes {world_size}; "
            f"got {config.batch_size}."
        )
    dev = resolve_device(device)
    kwargs = {"rng": rng, "device": str(dev), "progress": progress, "data_label": data_label}
    results = launch(
        _comparison_rank,
        int(world_size),
        data,
        config,
        kwargs,
        backend="nccl" if dev.type == "cuda" else "gloo",
        timeout_s=timeout_s,
        threads=max(1, torch.get_num_threads() // int(world_size)),
    )
    return results[0]
