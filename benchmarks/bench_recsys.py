"""Training throughput: the vectorised two-tower step against a naive per-example one.

The naive implementation repeats the defects of the reference code (SPEC §4): a Python
loop over the examples of a batch, per-example md5 hashing of every item id into the
3 tables, per-example negatives (256 uniform draws for each example), per-example
forward passes; the loss is summed over the batch and one Adam step taken per batch,
as in the vectorised version. Both use the same model sizes (3 tables x 1,000 rows x 64
dims, MLP 64-64-64, cosine / 0.05), batch 256 and 256 negatives, and torch with one
thread. Throughput = training examples per second, wall and CPU (process CPU seconds,
less disturbed by other jobs on a shared machine).

Run from the repository root:

    .venv/bin/python benchmarks/bench_recsys.py --markdown benchmarks/RESULTS_recsys.md
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recsys.data import make_examples, synthetic_movielens  # noqa: E402
from recsys.model import TwoTower  # noqa: E402
from recsys.train import TrainConfig, train_model  # noqa: E402


def _md5_row(item: int, salt: int, n_rows: int) -> int:
    return int(hashlib.md5(f"{salt}:{item}".encode()).hexdigest(), 16) % n_rows


def naive_step(model, optimizer, history_rows, targets, n_items, n_negatives, rnd, temperature):
    """One batch, one example at a time (the reference implementation's way)."""
    n_tables, n_rows = model.n_tables, model.n_rows
    losses = []
    for history, target in zip(history_rows, targets, strict=True):
        vecs = []
        for item in history:
            if item < 0:
                continue
            emb = 0
            for t in range(n_tables):
                emb = emb + model.tables[t, _md5_row(int(item), t, n_rows)]
            vecs.append(emb)
        pooled = torch.stack(vecs).mean(0) if vecs else model.default_history
        user = torch.nn.functional.normalize(model.mlp(pooled), dim=-1)
        negatives = [rnd.randrange(n_items) for _ in range(n_negatives)]
        logits = []
        for item in [int(target), *negatives]:
            emb = 0
            for t in range(n_tables):
                emb = emb + model.tables[t, _md5_row(item, t, n_rows)]
            logits.append(torch.dot(user, torch.nn.functional.normalize(emb, dim=-1)))
        logits = torch.stack(logits) / temperature
        losses.append(-torch.log_softmax(logits, 0)[0])
    loss = torch.stack(losses).sum() / len(losses)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def measure_naive(examples, n_items, n_examples, batch_size, n_negatives):
    model = TwoTower(rng=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    rnd = random.Random(0)
    done = 0
    wall, cpu = time.perf_counter(), time.process_time()
    while done < n_examples:
        rows = slice(done, done + batch_size)
        naive_step(
            model, optimizer, examples.history[rows].tolist(), examples.target[rows].tolist(),
            n_items, n_negatives, rnd, 0.05,
        )  # fmt: skip
        done += len(examples.target[rows])
    return done, time.perf_counter() - wall, time.process_time() - cpu


def measure_vectorised(examples, n_items, method, batch_size, n_negatives):
    model = TwoTower(rng=0)
    cfg = TrainConfig(method=method, batch_size=batch_size, n_negatives=n_negatives)
    wall, cpu = time.perf_counter(), time.process_time()
    res = train_model(model, examples, n_items, cfg, rng=0, progress=False)
    return res.n_examples_seen, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive-examples", type=int, default=512)
    parser.add_argument("--vectorised-examples", type=int, default=51_200)
    parser.add_argument("--runs", type=int, default=3, help="median of this many runs")
    parser.add_argument("--markdown", type=Path, default=None, help="write results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = synthetic_movielens(3000, 1500, rng=0)
    examples = make_examples(data)
    order = np.random.default_rng(0).permutation(examples.n_examples)
    examples = examples.take(order[: max(args.vectorised_examples, args.naive_examples)])
    # warm-up (imports, allocator), not timed
    measure_vectorised(examples.take(np.arange(512)), data.n_items, "sampled", 256, 256)
    rows = []
    load_start = os.getloadavg()[0]
    for label, fn in (
        ("naive: Python loop, md5, per-example negatives", lambda: measure_naive(
            examples, data.n_items, args.naive_examples, 256, 256)),
        ("vectorised `sampled` (256 shared negatives)", lambda: measure_vectorised(
            examples, data.n_items, "sampled", 256, 256)),
        ("vectorised `mixed` (256 shared negatives)", lambda: measure_vectorised(
            examples, data.n_items, "mixed", 256, 256)),
        ("vectorised `inbatch`", lambda: measure_vectorised(
            examples, data.n_items, "inbatch", 256, 256)),
    ):  # fmt: skip
        runs = [fn() for _ in range(args.runs)]
        n = runs[0][0]
        wall = float(np.median([r[1] for r in runs]))
        cpu = float(np.median([r[2] for r in runs]))
        rows.append((label, n, n / wall, n / cpu))
        print(f"{label}: {n} examples, {n / wall:,.1f}/s wall, {n / cpu:,.1f}/s CPU", flush=True)
    naive = rows[0]
    lines = [
        "# recsys training throughput (`benchmarks/bench_recsys.py`)",
        "",
        "Command (repository root):",
        "",
        "```",
        ".venv/bin/python benchmarks/bench_recsys.py --markdown benchmarks/RESULTS_recsys.md",
        "```",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"with 1 thread; load average {load_start:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end (the machine is shared; CPU-time rates are the "
        "less disturbed figure). Data: synthetic default (3,000 users, 1,500 items); "
        "model 3 tables x 1,000 x 64, MLP 64-64-64, cosine / 0.05, batch 256, Adam; "
        f"median of {args.runs} runs.",
        "",
        "| implementation | examples timed | examples/s (wall) | examples/s (CPU) "
        "| speed-up vs naive (wall) | speed-up vs naive (CPU) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, n, w, c in rows:
        speed = f"{w / naive[2]:,.0f}x | {c / naive[3]:,.0f}x"
        lines.append(f"| {label} | {n:,} | {w:,.1f} | {c:,.1f} | {speed} |")
    lines += [
        "",
        f"Target: >= 100x for the vectorised step over the naive one. Same-task pair "
        f"(`sampled`, 256 negatives): {rows[1][2] / naive[2]:,.0f}x wall, "
        f"{rows[1][3] / naive[3]:,.0f}x CPU.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown is not None:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
