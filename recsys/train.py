"""One training loop for every way of choosing softmax candidates (docs/theory.md §4).

The same examples, batches, steps, initial weights and optimiser are used for each
method; only the candidate set of a batch (built by :mod:`recsys.negatives`) and its
logQ correction differ:

==================  ===========================================================
method              candidates of a batch of B next-watch examples
==================  ===========================================================
``full``            the whole catalog (exact softmax)
``sampled``         the B positives + B' uniform items shared by the batch; row i
                    sees its own positive and the B' (Q = B'/N, Jean et al. 2015)
``inbatch``         the B positives; Q = 1 - (1 - p)^(B-1) (Yi et al. 2019)
``mixed``           the B positives + B' uniform items; Q* (Yang et al. 2020)
``<m>-nologq``      method ``m`` without the correction (negative control)
==================  ===========================================================

``p(y)`` is the share of training examples whose target is ``y`` (the catalog is
known here; ``frequency="streaming"`` uses the streaming estimate of Yi et al. 2019
instead, when :mod:`recsys.frequency` provides it).

References
----------
.. [1] S. Jean, K. Cho, R. Memisevic, Y. Bengio, "On Using Very Large Target Vocabulary
   for Neural Machine Translation", ACL 2015.
.. [2] X. Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
   Recommendations", RecSys 2019.
.. [3] J. Yang et al., "Mixed Negative Sampling for Learning Two-tower Neural Networks
   in Recommendations", WWW 2020 Companion.
.. [4] P. Covington, J. Adams, E. Sargin, "Deep Neural Networks for YouTube
   Recommendations", RecSys 2016.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from recsys import distributed
from recsys.data import Examples
from recsys.losses import sampled_softmax_loss, shared_negatives_loss, softmax_loss_from_logits
from recsys.model import TwoTower, _compile_bag_kernels
from recsys.negatives import sample_uniform_negatives
from sim import RngLike, as_seed_sequence, child_sequences

__all__ = [
    "BASE_METHODS",
    "METHODS",
    "TrainConfig",
    "TrainResult",
    "parse_methods",
    "resolve_device",
    "train_model",
]

BASE_METHODS = ("full", "sampled", "inbatch", "mixed")
"""Ways of choosing the candidates of a batch."""

METHODS = (*BASE_METHODS, "sampled-nologq", "inbatch-nologq", "mixed-nologq")
"""Valid method names: the base methods and the uncorrected variants."""


def parse_methods(methods: str | Sequence[str]) -> tuple[str, ...]:
    """Parse ``"sampled,inbatch,mixed"`` (or a sequence) into validated method names.

    Raises
    ------
    ValueError
        If a name is unknown or repeated, or the list is empty.

    Examples
    --------
    >>> parse_methods("sampled, inbatch,mixed")
    ('sampled', 'inbatch', 'mixed')
    """
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    names = [m for m in names if m]
    if not names:
        raise ValueError("`methods` must name at least one method; got none.")
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(
            f"`methods` has unknown method(s) {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(METHODS)}."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"`methods` must not repeat a method; got {names}.")
    return tuple(names)


def resolve_device(device: str | torch.device) -> torch.device:
    """Return a torch device; ``"auto"`` picks CUDA when available, else CPU.

    Raises
    ------
    ValueError
        If CUDA is asked for and not available.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` {str(dev)!r} asked for, but CUDA is not available.")
    return dev


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Training settings shared by every method (docs/theory.md §4 reference values).

    Attributes
    ----------
    method : str
        One of :data:`METHODS`.
    n_epochs : int
        Passes over the training examples.
    batch_size : int
        Rows per batch ``B`` (the last incomplete batch of an epoch is dropped, so
        every step has the same ``B`` and the in-batch ``Q`` is exact).
    n_negatives : int
        ``B'``: uniform items shared by the batch (``sampled`` and ``mixed``).
    lr : float
        Adam learning rate.
    temperature : float
        ``tau``; logits are ``cos / tau`` (0.05 = cosine x 20).
    correction : str
        Q of the de-duplicated (``"inclusion_probability"``) or multiset
        (``"expected_count"``) candidate set for ``inbatch`` / ``mixed``; ``sampled``
        always uses the expected count ``B'/N`` of its multiset of draws.
    frequency : str
        ``"exact"`` (training target shares) or ``"streaming"`` (Yi et al. 2019).
    """

    method: str = "mixed"
    n_epochs: int = 1
    batch_size: int = 256
    n_negatives: int = 256
    lr: float = 0.01
    temperature: float = 0.05
    correction: str = "inclusion_probability"
    frequency: str = "exact"

    def __post_init__(self) -> None:
        parse_methods([self.method])
        for name in ("n_epochs", "batch_size", "n_negatives"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise TypeError(f"`{name}` must be an integer; got {type(value).__name__}.")
        if self.n_epochs < 1:
            raise ValueError(f"`n_epochs` must be >= 1; got {self.n_epochs}.")
        if self.batch_size < 2:
            raise ValueError(f"`batch_size` must be >= 2; got {self.batch_size}.")
        if self.n_negatives < 0:
            raise ValueError(f"`n_negatives` must be >= 0; got {self.n_negatives}.")
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise ValueError(f"`lr` must be positive and finite; got {self.lr}.")
        if not (self.temperature > 0 and np.isfinite(self.temperature)):
            raise ValueError(f"`temperature` must be positive and finite; got {self.temperature}.")
        if self.correction not in ("inclusion_probability", "expected_count"):
            raise ValueError(
                "`correction` must be 'inclusion_probability' or 'expected_count'; "
                f"got {self.correction!r}."
            )
        if self.frequency not in ("exact", "streaming"):
            raise ValueError(f"`frequency` must be 'exact' or 'streaming'; got {self.frequency!r}.")

    @property
    def base_method(self) -> str:
        """The method without its ``-nologq`` suffix."""
        return self.method.removesuffix("-nologq")

    @property
    def logq(self) -> bool:
        """Whether the logQ correction is applied."""
        return not self.method.endswith("-nologq")


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What one training run did.

    Attributes
    ----------
    config : TrainConfig
    n_steps : int
        Optimiser steps taken.
    n_examples_seen : int
        Training examples processed (``n_steps * batch_size``).
    train_seconds : float
        Wall time of the training steps (evaluation excluded).
    epoch_loss : list of float
        Mean training loss of each epoch.
    epoch_metrics : list of dict
        What ``evaluate`` returned after each epoch (empty if not given).
    """

    config: TrainConfig
    n_steps: int
    n_examples_seen: int
    train_seconds: float
    epoch_loss: list[float] = field(default_factory=list)
    epoch_metrics: list[dict[str, float]] = field(default_factory=list)

    @property
    def examples_per_second(self) -> float:
        """Training throughput."""
        return self.n_examples_seen / self.train_seconds if self.train_seconds > 0 else 0.0


def _torch_generator(ss: np.random.SeedSequence, device: torch.device) -> torch.Generator:
    seed = int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))
    return torch.Generator(device=device).manual_seed(seed)


def _target_shares(target: np.ndarray, n_items: int) -> np.ndarray:
    return np.bincount(target, minlength=n_items) / max(target.size, 1)


class _StreamingShares:
    """Adapter: :class:`recsys.frequency.StreamingFrequencyEstimator` -> p(ids).

    The estimator tracks the per-batch frequency ``1 - (1 - p)^B`` (Yi et al. 2019,
    Algorithm 2); ``item_probability`` inverts it to the item share ``p`` that the
    candidate builders expect.
    """

    def __init__(self, n_items: int, batch_size: int, device: torch.device) -> None:
        from recsys.frequency import StreamingFrequencyEstimator

        self.estimator = StreamingFrequencyEstimator(
            n_buckets=max(4 * n_items, 1024), device=device
        )
        self.batch_size = batch_size

    def update(self, ids: torch.Tensor) -> None:
        self.estimator.update(ids)

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        return self.estimator.item_probability(ids, self.batch_size)


def _step_loss(
    config: TrainConfig,
    model: TwoTower,
    history: torch.Tensor,
    target: torch.Tensor,
    item_rows: torch.Tensor,
    shares: Callable[[torch.Tensor], torch.Tensor] | None,
    gen: torch.Generator,
) -> torch.Tensor:
    """Loss of one batch: history (B, L), target (B,), ``item_rows`` (N, T) hashed rows.

    Inputs were validated once before the epoch, so nothing here synchronises with
    the host: the builders and the loss run with ``validate=False``. ``sampled``
    scores each row against its own positive and the shared negatives only (logits
    ``(B, 1 + B')``): the same loss as :func:`recsys.negatives.sampled_softmax_candidates`
    (which also holds the other rows' positives, masked), without the masked columns
    (``tests/recsys/test_train.py`` checks the two agree).
    """
    n_items = item_rows.shape[0]
    b = target.shape[0]
    hist_rows = item_rows.index_select(0, history.clamp_min(0).reshape(-1))  # (B L, T)
    user = model.user_vector_from_rows(hist_rows.view(b, -1, item_rows.shape[1]), history >= 0)
    method = config.base_method
    tau = config.temperature
    if method == "full":
        items = model.item_vector_from_rows(item_rows)  # (N, d)
        return softmax_loss_from_logits(user @ items.T / tau, target, validate=False)
    n_random = config.n_negatives if method != "inbatch" else 0
    negatives = sample_uniform_negatives(n_random, n_items, generator=gen, device=target.device)
    cand_rows = item_rows.index_select(0, torch.cat([target, negatives]))  # (B + B', T)
    both = model.item_vector_from_rows(cand_rows)  # (B + B', d)
    if method == "sampled":
        # log Q = log(B'/N), the expected count of each uniform negative
        log_q = math.log(max(negatives.shape[0], 1) / n_items) if config.logq else None
        return shared_negatives_loss(
            user, both[:b], both[b:], log_q, positive_ids=target, negative_ids=negatives,
            temperature=tau,
        )  # fmt: skip  # (B, 1 + B') logits, accidental hits removed, one (B', B) buffer
    correction = config.correction if config.logq else "none"
    # in-batch and mixed: the candidates are the *global* batch's positives (every
    # process's, gathered; the batch itself in one process), see recsys.distributed;
    # the B' negatives are the same on every process (the same generator seed)
    p_target = shares(target) if (shares is not None and config.logq) else None  # (B,)
    if method == "inbatch":
        cs = distributed.global_in_batch_candidates(
            target, both, p_target, correction=correction, validate=False
        )
    else:
        p_random = shares(negatives) if (shares is not None and config.logq) else None  # (B',)
        cs = distributed.global_mixed_candidates(
            target, both[:b], p_target, negatives, both[b:], p_random,
            catalog_size=n_items, correction=correction, validate=False,
        )  # fmt: skip
    return sampled_softmax_loss(
        user, cs.candidates, cs.labels, cs.log_q, mask=cs.mask, temperature=tau,
        correction=cs.correction, validate=False,
    )  # fmt: skip


def _check_finite_parameters(model: TwoTower, epoch: int) -> None:
    """Once per epoch (one host synchronisation): training must not have diverged."""
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise ValueError(
            f"training diverged in epoch {epoch + 1}: a parameter is NaN or infinite "
            "(lower `lr` or raise `temperature`)."
        )


def _validate_train_model(model: object, examples: object, n_items: int, config: object) -> None:
    if not isinstance(model, TwoTower):
        raise TypeError(f"`model` must be a TwoTower; got {type(model).__name__}.")
    if not isinstance(examples, Examples):
        raise TypeError(f"`examples` must be an Examples; got {type(examples).__name__}.")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"`config` must be a TrainConfig; got {type(config).__name__}.")
    if examples.n_examples < config.batch_size:
        raise ValueError(
            f"`examples` must hold at least one batch (`batch_size`={config.batch_size}); "
            f"got {examples.n_examples} examples."
        )
    if examples.target.max() >= n_items or examples.target.min() < 0:
        raise ValueError(f"`examples.target` must lie in [0, n_items={n_items}).")
    if config.base_method == "full" and n_items > 200_000:
        raise ValueError(
            f"method 'full' scores the whole catalog every step; `n_items`={n_items} is "
            "over the 200,000 allowed."
        )


def train_model(
    model: TwoTower,
    examples: Examples,
    n_items: int,
    config: TrainConfig,
    *,
    rng: RngLike = None,
    device: str | torch.device = "cpu",
    evaluate: Callable[[TwoTower], dict[str, float]] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` in place with Adam on next-watch examples.

    Parameters
    ----------
    model : TwoTower
        Moved to ``device`` and trained in place.
    examples : Examples
        Training examples (history ``(n, L)``, target ``(n,)``).
    n_items : int
        Catalog size ``N`` (uniform negatives are drawn from ``0..N-1``).
    config : TrainConfig
        Method and hyper-parameters.
    rng : int, numpy.random.SeedSequence or None
        Seed. Child 0 orders the examples of each epoch, child 1 draws the negatives;
        so two methods trained with the same ``rng`` see the same batches in the same
        order.
    device : str or torch.device, default "cpu"
        ``"auto"`` for CUDA when available.
    evaluate : callable, optional
        Called with the model after each epoch; its dict is kept in
        ``epoch_metrics``.
    progress : bool, default True
        Show a tqdm progress bar on stderr.

    Returns
    -------
    TrainResult

    Notes
    -----
    Each step: user vectors ``u = model.user_vector(history)`` (B, d); a candidate set
    (module table); loss of :func:`recsys.losses.sampled_softmax_loss` with
    ``temperature=config.temperature`` and the builders' default accidental-hit
    masking (``correct_positive=False``); one (fused) Adam step. ``sampled`` computes
    that loss with :func:`recsys.losses.shared_negatives_loss` (the same value and
    gradient, one (B', B) buffer), and on the CPU the hashed-table lookups have a
    sort-free backward (``recsys.model``), whose numba kernels are compiled before the
    clock starts. The catalog is hashed
    once per call; inputs are validated before training and the parameters checked for
    NaN after each epoch, so a step never synchronises with the host. With
    ``frequency="streaming"`` a batch's p is read before the batch is recorded.

    Called inside a group of ``N`` processes (:func:`recsys.distributed.launch`), every
    process takes the same global batches (the same ``rng``) and trains on its
    ``B / N`` rows of each (``batch_size`` must be a multiple of ``N``); the in-batch
    and mixed candidates are the whole global batch's
    (:func:`recsys.distributed.global_in_batch_candidates`), the streaming frequency
    is updated with the gathered ids, and the gradients are averaged over the
    processes, so that each step equals the single-process step on the global batch.
    """
    _validate_train_model(model, examples, n_items, config)
    n_ranks, my_rank = distributed.world_size(), distributed.rank()
    if config.batch_size % n_ranks:
        raise ValueError(
            f"`batch_size` must be a multiple of the number of processes {n_ranks}; got "
            f"{config.batch_size}."
        )
    local_batch = config.batch_size // n_ranks  # rows of each global batch on this rank
    dev = resolve_device(device)
    order_ss, negatives_ss = child_sequences(as_seed_sequence(rng), 2)
    order_gen = _torch_generator(order_ss, torch.device("cpu"))
    neg_gen = _torch_generator(negatives_ss, dev)
    model.to(dev)
    distributed.broadcast_parameters(model)  # every process starts from process 0's weights
    model.train()
    # fused Adam: one kernel for all parameters, same update as the default (foreach) one
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
    item_rows = model.flat_rows(torch.arange(n_items, device=dev))  # (N, T), hashed once
    if dev.type == "cpu":  # JIT-compile (or load) the embedding backward before timing
        _compile_bag_kernels(model.tables.dtype)
    history_all = torch.as_tensor(examples.history, device=dev)  # (n, L)
    target_all = torch.as_tensor(examples.target, device=dev)  # (n,)
    shares: Callable[[torch.Tensor], torch.Tensor] | None = None
    streaming: _StreamingShares | None = None
    if config.base_method in ("inbatch", "mixed") and config.logq:
        if config.frequency == "exact":
            table = torch.as_tensor(_target_shares(examples.target, n_items), device=dev)
            shares = table.__getitem__
        else:
            streaming = _StreamingShares(n_items, config.batch_size, dev)
            shares = streaming
    n = examples.n_examples
    steps_per_epoch = n // config.batch_size
    n_steps = 0
    train_seconds = 0.0
    epoch_loss: list[float] = []
    epoch_metrics: list[dict[str, float]] = []
    bar = tqdm(
        total=steps_per_epoch * config.n_epochs,
        file=sys.stderr,
        disable=not progress or my_rank != 0,
        desc=config.method,
        leave=False,
    )
    try:
        for epoch in range(config.n_epochs):
            start = time.perf_counter()
            order = torch.randperm(n, generator=order_gen).to(dev)  # (n,)
            loss_sum = torch.zeros((), device=dev)
            for step in range(steps_per_epoch):
                rows = order[step * config.batch_size : (step + 1) * config.batch_size]  # (B,)
                rows = rows[my_rank * local_batch : (my_rank + 1) * local_batch]  # (B/N,)
                history = history_all.index_select(0, rows)  # (B/N, L)
                target = target_all.index_select(0, rows)  # (B/N,)
                loss = _step_loss(config, model, history, target, item_rows, shares, neg_gen)
                if streaming is not None:  # read, then update: Q never counts its own batch
                    # with the global batch's ids: the same state on every process
                    streaming.update(distributed.all_gather_tensor(target))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                distributed.average_gradients(model)  # what DDP does: the mean over processes
                optimizer.step()
                loss_sum += loss.detach()
                n_steps += 1
                bar.update(1)
            loss_sum = distributed.all_gather_tensor(loss_sum.reshape(1)).mean()  # global
            epoch_loss.append(float(loss_sum) / max(steps_per_epoch, 1))
            _check_finite_parameters(model, epoch)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            train_seconds += time.perf_counter() - start
            if evaluate is not None:
                epoch_metrics.append(evaluate(model))
                model.train()
    finally:
        bar.close()
    return TrainResult(
        config=config,
        n_steps=n_steps,
        n_examples_seen=n_steps * config.batch_size,
        train_seconds=train_seconds,
        epoch_loss=epoch_loss,
        epoch_metrics=epoch_metrics,
    )
