"""recsys.distributed: 2 gloo processes against the single-process global batch.

The gradients of a float64 two-tower model trained on a global batch of B = 8 rows
split over two processes must equal the gradients of one process holding all 8 rows
(relative error < 1e-6), for in-batch, mixed and sampled-softmax candidates; each of
the common shortcuts must fail that comparison (negative controls). One launch of two
processes computes every case (module fixture), with a timeout so that a hang fails.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings

import numpy as np
import pytest
import torch

from recsys import distributed as rd
from recsys.data import Examples
from recsys.frequency import StreamingFrequencyEstimator
from recsys.metrics import evaluate_retrieval
from recsys.model import TwoTower
from recsys.negatives import (
    in_batch_candidates,
    inclusion_probability,
    mixed_candidates,
    sampled_softmax_candidates,
)
from recsys.train import TrainConfig, train_model

N_ITEMS = 12
N_RANKS = 2
TEMPERATURE = 0.5
#: Global batch: item 0 is a positive on both ranks, item 3 too (duplicates across ranks).
TARGET = np.array([0, 3, 1, 0, 3, 5, 0, 7], dtype=np.int64)
RANDOM_IDS = np.array([2, 9, 0, 11, 5], dtype=np.int64)  # mixed: B' = 5, two hit the batch
SAMPLED_IDS = np.array([4, 9, 9, 1, 10, 6], dtype=np.int64)  # sampled softmax: M = 6
METHODS = ("inbatch", "mixed", "sampled")
VARIANTS = (
    "correct",
    "gather without gradient",
    "logQ from the local batch",
    "no cross-rank negatives",
    "no world-size factor",
)
TIMEOUT_S = 240.0


def _inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20260101)
    history = rng.integers(-1, N_ITEMS, size=(TARGET.size, 4))  # (B, L), -1 = padding
    weights = 1.0 / np.arange(1, N_ITEMS + 1)  # Zipf(1) shares
    return {"history": history, "target": TARGET, "p": weights / weights.sum()}


def _model() -> TwoTower:
    return TwoTower(n_tables=2, n_rows=31, dim=8, hidden=(16, 8), rng=0).double()


def _flat_grad(model: torch.nn.Module) -> np.ndarray:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy().copy()


def _loss(method: str, variant: str, model: TwoTower, rows: slice, inputs: dict) -> torch.Tensor:
    """This rank's loss for ``method`` computed the ``variant`` way (rows = its shard)."""
    p = torch.as_tensor(inputs["p"])  # (N,) item shares
    history = torch.as_tensor(inputs["history"][rows])  # (b, L)
    target = torch.as_tensor(inputs["target"][rows])  # (b,)
    b_global = inputs["target"].size
    user = model.user_vector(history)  # (b, d)
    if method == "sampled":
        neg = torch.as_tensor(SAMPLED_IDS)  # (M,) shared by all ranks
        both = model.item_vector(torch.cat([target, neg]))  # (b + M, d)
        b = target.shape[0]
        cs = sampled_softmax_candidates(
            target, both[:b], neg, both[b:], catalog_size=N_ITEMS, correction="expected_count"
        )
    else:
        rand = torch.as_tensor(RANDOM_IDS) if method == "mixed" else target[:0]  # (B',)
        both = model.item_vector(torch.cat([target, rand]))  # (b + B', d)
        b = target.shape[0]
        pos, rnd = both[:b], both[b:]
        if variant == "no cross-rank negatives":
            cs = mixed_candidates(target, pos, p[target], rand, rnd, p[rand], catalog_size=N_ITEMS)
        elif variant == "gather without gradient":
            # the usual torch.distributed.all_gather, with the own rows put back so
            # that at least the local embeddings keep their gradient
            ids = rd.all_gather_tensor(target)  # (B,)
            emb = rd.all_gather_tensor(pos)  # (B, d), no gradient
            start = rd.rank() * b
            emb = torch.cat([emb[:start], pos, emb[start + b :]])  # (B, d)
            full = mixed_candidates(ids, emb, p[ids], rand, rnd, p[rand], catalog_size=N_ITEMS)
            cs = rd.local_rows(full, start, start + b)
        elif method == "inbatch":
            cs = rd.global_in_batch_candidates(target, pos, p[target])
        else:
            cs = rd.global_mixed_candidates(
                target, pos, p[target], rand, rnd, p[rand], catalog_size=N_ITEMS
            )
        if variant == "logQ from the local batch":
            q = inclusion_probability(
                p[cs.candidate_ids], b - 1, n_random=rand.numel(), catalog_size=N_ITEMS
            )  # (C,) with the local b instead of the global B
            cs = dataclasses.replace(cs, log_q=torch.log(q))
    if variant == "no world-size factor":
        return cs.loss(user, temperature=TEMPERATURE, reduction="sum") / b_global
    return cs.loss(user, temperature=TEMPERATURE)


def _applies(method: str, variant: str) -> bool:
    """Sampled softmax gathers nothing, so only the scaling shortcut applies to it."""
    return method != "sampled" or variant in ("correct", "no world-size factor")


def _reference_grad(method: str, inputs: dict) -> np.ndarray:
    """One process holding the whole global batch, with recsys's single-process builders."""
    model = _model()
    p = torch.as_tensor(inputs["p"])
    target = torch.as_tensor(inputs["target"])  # (B,)
    user = model.user_vector(torch.as_tensor(inputs["history"]))  # (B, d)
    b = target.shape[0]
    if method == "inbatch":
        cs = in_batch_candidates(target, model.item_vector(target), p[target])
    elif method == "mixed":
        rand = torch.as_tensor(RANDOM_IDS)
        both = model.item_vector(torch.cat([target, rand]))  # (B + B', d)
        cs = mixed_candidates(
            target, both[:b], p[target], rand, both[b:], p[rand], catalog_size=N_ITEMS
        )
    else:
        neg = torch.as_tensor(SAMPLED_IDS)
        both = model.item_vector(torch.cat([target, neg]))  # (B + M, d)
        cs = sampled_softmax_candidates(
            target, both[:b], neg, both[b:], catalog_size=N_ITEMS, correction="expected_count"
        )
    cs.loss(user, temperature=TEMPERATURE).backward()
    return _flat_grad(model)


def _eval_examples() -> Examples:
    rng = np.random.default_rng(5)
    n = 7  # odd: shards of 4 and 3 queries
    return Examples(
        history=rng.integers(-1, N_ITEMS, size=(n, 4)),
        target=rng.integers(0, N_ITEMS, size=n),
        user_id=np.arange(100, 100 + n, dtype=np.int64),
        position=np.arange(n, dtype=np.int64),
    )


def _stream_batches() -> list[np.ndarray]:
    rng = np.random.default_rng(9)
    return [rng.integers(0, 40, size=6) for _ in range(5)]


TRAIN_CASES = (("inbatch", "streaming"), ("mixed", "exact"), ("sampled", "exact"))


def _trained_params(method: str, frequency: str) -> np.ndarray:
    """Parameters after 4 Adam steps of train_model (float64) on 32 examples, B = 8."""
    rng = np.random.default_rng(17)
    n = 32
    examples = Examples(
        history=rng.integers(-1, N_ITEMS, size=(n, 4)),
        target=rng.choice(N_ITEMS, size=n, p=_inputs()["p"]),
        user_id=np.arange(n, dtype=np.int64),
        position=np.zeros(n, dtype=np.int64),
    )
    config = TrainConfig(
        method=method, batch_size=8, n_negatives=5, lr=0.01, temperature=TEMPERATURE,
        frequency=frequency,
    )  # fmt: skip
    model = _model()
    train_model(model, examples, N_ITEMS, config, rng=3, progress=False)
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()


def _cases_worker(inputs: dict) -> dict:
    """Runs on each rank: every gradient case, the frequency state, sharded evaluation."""
    warnings.simplefilter("error")  # a deprecated collective must fail, as under pytest
    r, n = rd.rank(), rd.world_size()
    b = inputs["target"].size // n
    rows = slice(r * b, (r + 1) * b)
    out: dict = {"grads": {}}
    for method in METHODS:
        for variant in VARIANTS:
            if not _applies(method, variant):
                continue
            model = _model()
            _loss(method, variant, model, rows, inputs).backward()
            rd.average_gradients(model)
            out["grads"][method, variant] = _flat_grad(model)
    out["trained"] = {case: _trained_params(*case) for case in TRAIN_CASES}
    est = StreamingFrequencyEstimator(n_buckets=64, alpha=0.3)
    for batch in _stream_batches():
        half = batch.size // n
        est.update(rd.all_gather_tensor(torch.as_tensor(batch[r * half : (r + 1) * half])))
    out["stream"] = (est.gap.numpy().copy(), est.last_step.numpy().copy(), est.step)
    res = rd.evaluate_retrieval_sharded(_model(), _eval_examples(), N_ITEMS, ks=(1, 3, 5))
    out["eval"] = (res.recall, res.ndcg, res.user_id)
    try:  # random items that differ between ranks are refused on every rank
        model = _model()
        ids = torch.as_tensor(inputs["target"][rows])
        rand = torch.tensor([r, 2])
        emb = model.item_vector(torch.cat([ids, rand]))
        p = torch.as_tensor(inputs["p"])
        rd.global_mixed_candidates(
            ids, emb[:b], p[ids], rand, emb[b:], p[rand], catalog_size=N_ITEMS
        )
        out["replicated_error"] = None
    except ValueError as exc:
        out["replicated_error"] = str(exc)
    return out


@pytest.fixture(scope="module")
def cases() -> list[dict]:
    return rd.launch(_cases_worker, N_RANKS, _inputs(), timeout_s=TIMEOUT_S, threads=1)


def _relative_error(grad: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(grad - ref) / np.linalg.norm(ref))


def gradient_error_table(cases: list[dict]) -> dict[tuple[str, str], float]:
    """Relative gradient error of each (method, variant) against one process."""
    inputs = _inputs()
    refs = {m: _reference_grad(m, inputs) for m in METHODS}
    return {key: _relative_error(g, refs[key[0]]) for key, g in cases[0]["grads"].items()}


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_two_process_gradients_equal_global_batch(cases, method):
    ref = _reference_grad(method, _inputs())
    for r in range(N_RANKS):  # every replica holds the same averaged gradient
        err = _relative_error(cases[r]["grads"][method, "correct"], ref)
        assert err < 1e-6, f"{method}, rank {r}: relative gradient error {err:.3g}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "variant"),
    [(m, v) for m in METHODS for v in VARIANTS[1:] if _applies(m, v)],
)
def test_shortcut_fails_the_gradient_check(cases, method, variant):
    err = gradient_error_table(cases)[method, variant]
    assert err > 1e-2, f"negative control {variant!r} ({method}) passed: error {err:.3g}"
    if variant == "no world-size factor":  # a pure scale: the gradient is halved
        assert abs(err - (1 - 1 / N_RANKS)) < 1e-9


@pytest.mark.slow
def test_gradient_table_printed(cases):
    table = gradient_error_table(cases)
    lines = ["| shortcut | " + " | ".join(METHODS) + " |", "|---" * (len(METHODS) + 1) + "|"]
    for v in VARIANTS:
        cells = [f"{table[m, v]:.3g}" if (m, v) in table else "n/a" for m in METHODS]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    # shown with `pytest -s` (docs/distributed.md)
    print("\nrelative gradient error vs one process (2 gloo ranks, float64):")
    print("\n".join(lines))
    assert table["inbatch", "correct"] < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("case", TRAIN_CASES)
def test_two_process_training_equals_one_process(cases, case):
    ref = _trained_params(*case)
    start = _model()
    moved = np.linalg.norm(
        ref - torch.cat([p.reshape(-1) for p in start.parameters()]).detach().numpy()
    )
    assert moved > 1e-3  # the steps changed the weights
    for r in range(N_RANKS):
        err = float(np.linalg.norm(cases[r]["trained"][case] - ref)) / moved
        assert err < 1e-9, f"{case}, rank {r}: parameters differ by {err:.3g} of the update"


@pytest.mark.slow
def test_streaming_frequency_identical_on_every_rank(cases):
    est = StreamingFrequencyEstimator(n_buckets=64, alpha=0.3)
    for batch in _stream_batches():  # one process sees each global batch whole
        est.update(batch)
    for r in range(N_RANKS):
        gap, last, step = cases[r]["stream"]
        np.testing.assert_array_equal(gap, est.gap.numpy())
        np.testing.assert_array_equal(last, est.last_step.numpy())
        assert step == est.step


@pytest.mark.slow
def test_sharded_evaluation_is_exact(cases):
    ref = evaluate_retrieval(_model(), _eval_examples(), N_ITEMS, ks=(1, 3, 5))
    for r in range(N_RANKS):
        recall, ndcg, user_id = cases[r]["eval"]
        np.testing.assert_array_equal(recall, ref.recall)
        np.testing.assert_array_equal(ndcg, ref.ndcg)
        np.testing.assert_array_equal(user_id, ref.user_id)


@pytest.mark.slow
def test_random_items_must_be_replicated(cases):
    for r in range(N_RANKS):
        assert "identical on every rank" in (cases[r]["replicated_error"] or "")


# ------------------------------------------------------------------ one process, no spawn


@pytest.mark.parametrize("method", ("inbatch", "mixed"))
def test_one_process_equals_single_process_builders(method):
    inputs = _inputs()
    model = _model()
    _loss(method, "correct", model, slice(None), inputs).backward()
    np.testing.assert_allclose(_flat_grad(model), _reference_grad(method, inputs), rtol=1e-12)


def test_local_rows_slices_per_row_log_q():
    cs = in_batch_candidates(torch.tensor([1, 2, 3]), torch.eye(3), torch.full((3,), 0.2))
    per_row = dataclasses.replace(cs, log_q=cs.log_q.expand(3, 3).clone())
    out = rd.local_rows(per_row, 1, 3)
    assert out.log_q.shape == (2, 3) and out.labels.tolist() == [1, 2]
    assert rd.local_rows(cs, 0, 3).log_q is cs.log_q


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: rd.shard_bounds(-1, 2, 0), ValueError, r"`n` must be >= 0; got -1"),
        (lambda: rd.shard_bounds(4, 0, 0), ValueError, r"`n_shards` must be >= 1; got 0"),
        (lambda: rd.shard_bounds(4, 2, 2), ValueError, r"`index` must be in \[0, 2\); got 2"),
        (lambda: rd.shard_bounds(4.0, 2, 0), TypeError, r"`n` must be an int; got float"),
        (lambda: rd.launch(print, 0), ValueError, r"`n_processes` must be >= 1; got 0"),
        (lambda: rd.launch(print, 2, backend="mpi"), ValueError, r"`backend` must be"),
        (
            lambda: rd.launch(print, 2, timeout_s=0),
            ValueError,
            r"`timeout_s` must be a positive number; got 0",
        ),
        (lambda: rd.launch(print, 2, threads=0), ValueError, r"`threads` must be a positive"),
        (lambda: rd.launch(3, 2), TypeError, r"`fn` must be callable; got int"),
        (
            lambda: rd.local_rows(
                in_batch_candidates(torch.tensor([1, 2]), torch.eye(2), torch.full((2,), 0.1)),
                1,
                3,
            ),
            ValueError,
            r"rows \[`start`, `stop`\) must lie in \[0, 2\]; got \[1, 3\)",
        ),
        (
            lambda: rd.global_in_batch_candidates(torch.tensor([1, 2]), torch.eye(3)),
            ValueError,
            r"`positive_embeddings` must have shape \(2, d\)",
        ),
        (lambda: rd.all_gather_with_grad([1.0]), TypeError, r"`x` must be a torch.Tensor"),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_shard_bounds_cover_without_padding():
    for n in range(0, 12):
        for k in range(1, 5):
            bounds = [rd.shard_bounds(n, k, i) for i in range(k)]
            covered = np.concatenate([np.arange(a, b) for a, b in bounds])
            np.testing.assert_array_equal(covered, np.arange(n))  # each index exactly once


def _fail_on_rank_one() -> int:
    if rd.rank() == 1:
        raise ValueError("rank one refuses")
    return rd.rank()


@pytest.mark.slow
def test_launch_reports_a_failing_rank():
    with pytest.raises(RuntimeError, match=r"(?s)rank 1 failed.*rank one refuses"):
        rd.launch(_fail_on_rank_one, 2, timeout_s=TIMEOUT_S, threads=1)


def _hang_on_rank_one() -> None:
    if rd.rank() == 1:
        time.sleep(3600)
    torch.distributed.barrier()


@pytest.mark.slow
def test_launch_times_out_instead_of_hanging():
    """Rank 1 never reaches the barrier: the launch fails within its timeout (plus the
    processes' start and teardown), rather than after rank 1's hour of sleep."""
    t0 = time.monotonic()
    with pytest.raises((TimeoutError, RuntimeError)):
        rd.launch(_hang_on_rank_one, 2, timeout_s=8.0, threads=1)
    assert time.monotonic() - t0 < 8.0 + 60.0


# ------------------------------------------------------------- compare, 2 vs 1 process

TINY_COMPARE = [
    "compare", "--data", "synthetic", "--methods", "inbatch,mixed,sampled",
    "--synthetic-users", "120", "--synthetic-items", "80", "--synthetic-ratings", "25",
    "--min-positives", "10", "--batch-size", "32", "--negatives", "16", "--folds", "4",
    "--seeds", "1", "--ks", "5,10", "--max-history", "8", "--no-progress", "--threads", "1",
    "--frequency", "streaming",
]  # fmt: skip


@pytest.mark.slow
def test_two_process_compare_matches_one_process(tmp_path, capsys):
    from recsys.__main__ import main

    docs = {}
    for n in (1, 2):
        out = tmp_path / f"world{n}"
        assert main([*TINY_COMPARE, "--world-size", str(n), "--out", str(out)]) == 0
        docs[n] = json.loads((out / "results.json").read_text())
    capsys.readouterr()
    assert docs[1]["config"]["world_size"] == 1
    assert docs[2]["config"]["world_size"] == 2
    assert docs[2]["runs"] == docs[1]["runs"]  # same folds, same examples
    for method in ("inbatch", "mixed", "sampled"):
        for metric in ("recall@5", "recall@10", "ndcg@10"):
            one = docs[1]["methods"][method]["metrics"][metric]["mean"]
            two = docs[2]["methods"][method]["metrics"][metric]["mean"]
            # the same steps up to float rounding of the gradient mean
            assert abs(two - one) <= 0.01, f"{method} {metric}: {two} vs {one}"


def test_world_size_must_divide_the_batch(tmp_path, capsys):
    from recsys.__main__ import main

    with pytest.raises(SystemExit) as info:
        main([*TINY_COMPARE, "--world-size", "3", "--out", str(tmp_path / "out")])
    assert info.value.code == 2
    assert "`batch_size` must be a multiple of the number of processes 3" in capsys.readouterr().err


def test_world_size_must_be_positive():
    from recsys.compare import CompareConfig, run_comparison
    from recsys.data import synthetic_movielens

    data = synthetic_movielens(40, 30, mean_ratings=15, min_positives=5, rng=0)
    with pytest.raises(ValueError, match=r"`world_size` must be >= 1; got 0"):
        run_comparison(data, CompareConfig(n_seeds=1, n_folds=4, ks=(5,)), world_size=0)
