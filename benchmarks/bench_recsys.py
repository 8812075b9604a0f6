"""Training throughput: the vectorised two-tower step against a naive per-example one.

The naive implementation repeats the defects of the reference code (docs/theory.md §4): a Python
loop over the examples of a batch, per-example md5 hashing of every item id into the
3 tables, per-example negatives (256 uniform draws for each example), per-example
forward passes; the loss is summed over the batch and one Adam step taken per batch,
as in the vectorised version. Both use the same model sizes (3 tables x 1,000 rows x 64
dims, MLP 64-64-64, cosine / 0.05), batch 256 and 256 negatives, and torch with one
thread. Throughput = training examples per second, wall and CPU (process CPU seconds,
less disturbed by other jobs on a shared machine).

Second table (issue 16, item 6): the project's training step (``train_model``,
method ``sampled``) beside a plain vectorised PyTorch loop -- an EmbeddingBag over
precomputed hash rows, one matmul against the shared negatives, accidental hits
masked, default Adam -- in one run with the same configuration (10,000-item synthetic
catalog, batch 256, 999 shared uniform negatives, one thread), alternating the two
``--step-runs`` times. ``--profile`` writes the per-phase and per-operation profile of
the project's step (and of an older checkout with ``--before-root``) to
``benchmarks/PROFILE_recsys_step.md``; ``--profile-only`` writes only that.

Run from the repository root:

    .venv/bin/python benchmarks/bench_recsys.py --markdown benchmarks/RESULTS_recsys.md
    .venv/bin/python benchmarks/bench_recsys.py --step-only --profile \
        --before-root /tmp/old_checkout --markdown benchmarks/RESULTS_recsys.md
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


def plain_loop(model, examples, n_items, n_negatives, batch_size=256, temperature=0.05, seed=0):
    """A plain vectorised training loop of the same model; returns (examples, wall, cpu)."""
    rows = model.flat_rows(torch.arange(n_items))  # (N, T) precomputed hash rows
    bag = torch.nn.EmbeddingBag(model.n_tables * model.n_rows, model.dim, mode="sum")
    with torch.no_grad():
        bag.weight.copy_(model.tables.detach().reshape(-1, model.dim))
    params = [bag.weight, model.default_history, *model.mlp.parameters()]
    opt = torch.optim.Adam(params, lr=0.01)
    history_all = torch.as_tensor(examples.history)
    target_all = torch.as_tensor(examples.target)
    gen = torch.Generator().manual_seed(seed)
    b, length = batch_size, history_all.shape[1]
    shift = float(np.log(n_negatives / n_items))  # log Q of a uniform negative, B'/N
    order = torch.randperm(len(target_all), generator=gen)
    wall, cpu = time.perf_counter(), time.process_time()
    done = 0
    for step in range(len(target_all) // b):
        idx = order[step * b : (step + 1) * b]
        history, target = history_all[idx], target_all[idx]
        valid = history >= 0
        hist_rows = rows[history.clamp_min(0)].reshape(b, -1)  # (B, L T)
        w = (valid.float() / valid.sum(1, keepdim=True).clamp_min(1)).repeat_interleave(
            model.n_tables, dim=1
        )  # (B, L T)
        pooled = bag(hist_rows, per_sample_weights=w)
        pooled = torch.where(valid.any(1, keepdim=True), pooled, model.default_history)
        user = torch.nn.functional.normalize(model.mlp(pooled), dim=-1)
        neg = torch.randint(0, n_items, (n_negatives,), generator=gen)
        pos_v = torch.nn.functional.normalize(bag(rows[target]), dim=-1)
        neg_v = torch.nn.functional.normalize(bag(rows[neg]), dim=-1)
        pos_logit = (user * pos_v).sum(1, keepdim=True) / temperature
        neg_logit = user @ neg_v.T / temperature - shift
        neg_logit = neg_logit.masked_fill(neg.unsqueeze(0) == target.unsqueeze(1), -np.inf)
        logits = torch.cat([pos_logit, neg_logit], 1)
        loss = torch.nn.functional.cross_entropy(logits, torch.zeros(b, dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()
        done += b
    del length
    return done, time.perf_counter() - wall, time.process_time() - cpu


def step_comparison(n_examples, n_runs):
    """Project step vs plain loop, alternating; returns the rows of the table."""
    data = synthetic_movielens(3000, 10_000, rng=0)
    examples = make_examples(data)
    order = np.random.default_rng(0).permutation(examples.n_examples)
    examples = examples.take(order[:n_examples])
    cfg = TrainConfig(method="sampled", batch_size=256, n_negatives=999)
    measured = {"project": [], "plain": []}
    # warm-up, not timed: numba's kernels (compiled or loaded from cache), allocator
    train_model(TwoTower(rng=0), examples.take(np.arange(512)), data.n_items, cfg, progress=False)
    plain_loop(TwoTower(rng=0), examples.take(np.arange(512)), data.n_items, 999)
    measured["load"] = [os.getloadavg()[0]]
    for _ in range(n_runs):
        model = TwoTower(rng=0)
        wall, cpu = time.perf_counter(), time.process_time()
        res = train_model(model, examples, data.n_items, cfg, rng=0, progress=False)
        measured["project"].append(
            (res.n_examples_seen, time.perf_counter() - wall, time.process_time() - cpu)
        )
        measured["plain"].append(plain_loop(TwoTower(rng=0), examples, data.n_items, 999))
        for name in ("project", "plain"):
            n, w, c = measured[name][-1]
            print(f"step {name}: {n / w:,.0f}/s wall, {n / c:,.0f}/s CPU", flush=True)
    measured["load"].append(os.getloadavg()[0])
    return data.n_items, measured


def profile_step(root: Path | None, n_examples: int) -> str:
    """Top operations (self CPU) of ``train_model`` method ``sampled``, code at ``root``."""
    import subprocess

    code = (
        "import sys, numpy as np, torch\n"
        "torch.set_num_threads(1)\n"
        "from recsys.data import make_examples, synthetic_movielens\n"
        "from recsys.model import TwoTower\n"
        "from recsys.train import TrainConfig, train_model\n"
        "from torch.profiler import profile\n"
        "data = synthetic_movielens(3000, 10_000, rng=0)\n"
        "ex = make_examples(data)\n"
        f"ex = ex.take(np.random.default_rng(0).permutation(ex.n_examples)[:{n_examples}])\n"
        "cfg = TrainConfig(method='sampled', batch_size=256, n_negatives=999)\n"
        "train_model(TwoTower(rng=0), ex.take(np.arange(512)), data.n_items, cfg, progress=False)\n"
        "import time\n"
        "from recsys.train import _step_loss\n"
        "model = TwoTower(rng=0)\n"
        "opt = torch.optim.Adam(model.parameters(), lr=0.01, fused=True)\n"
        "rows = model.flat_rows(torch.arange(data.n_items))\n"
        "H, T = torch.as_tensor(ex.history), torch.as_tensor(ex.target)\n"
        "gen, ph = torch.Generator().manual_seed(0), [0.0, 0.0, 0.0]\n"
        "for s in range(len(T) // 256):\n"
        "    c0 = time.process_time()\n"
        "    loss = _step_loss(cfg, model, H[s * 256:(s + 1) * 256], T[s * 256:(s + 1) * 256],\n"
        "                      rows, None, gen)\n"
        "    c1 = time.process_time()\n"
        "    opt.zero_grad(set_to_none=True)\n"
        "    loss.backward()\n"
        "    c2 = time.process_time()\n"
        "    opt.step()\n"
        "    c3 = time.process_time()\n"
        "    ph[0] += c1 - c0; ph[1] += c2 - c1; ph[2] += c3 - c2\n"
        "ms = [1000 * x / (len(T) // 256) for x in ph]\n"
        "print('Per phase, without the profiler (CPU ms per step, `_step_loss` + Adam):')\n"
        "print()\n"
        "print('| forward (loss) | backward | optimizer step | total |')\n"
        "print('| ---: | ---: | ---: | ---: |')\n"
        "print(f'| {ms[0]:.2f} | {ms[1]:.2f} | {ms[2]:.2f} | {sum(ms):.2f} |')\n"
        "print()\n"
        "with profile() as p:\n"
        "    r = train_model(TwoTower(rng=0), ex, data.n_items, cfg, rng=0, progress=False)\n"
        "ev = p.key_averages()\n"
        "tot = sum(e.self_cpu_time_total for e in ev)\n"
        "syncs = sum(e.count for e in ev if e.key == 'aten::_local_scalar_dense')\n"
        "print(f'steps {r.n_steps}; host syncs (aten::_local_scalar_dense) per step: '\n"
        "      f'{syncs / r.n_steps:.1f}; ops per step: '\n"
        "      f'{sum(e.count for e in ev) / r.n_steps:.0f}')\n"
        "print('| operation | share of self CPU | calls per step |')\n"
        "print('| --- | ---: | ---: |')\n"
        "for e in sorted(ev, key=lambda e: -e.self_cpu_time_total)[:14]:\n"
        "    print(f'| `{e.key}` | {100 * e.self_cpu_time_total / tot:.1f} % '\n"
        "          f'| {e.count / r.n_steps:.1f} |')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(root or ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root or ROOT
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return "\n".join(line for line in out.stdout.splitlines() if not line.startswith("USDT"))


def step_markdown(n_items, measured, n_examples) -> list[str]:
    """Markdown lines of the side-by-side step table."""
    med = {
        k: (float(np.median([n / w for n, w, _ in v])), float(np.median([n / c for n, _, c in v])))
        for k, v in measured.items()
        if k != "load"
    }
    load_start, load_end = measured["load"]
    lines = [
        "",
        "## Training step beside a plain vectorised loop (issue 16, item 6)",
        "",
        f"Same run, alternating, {len(measured['plain'])} runs each of {n_examples:,} examples: "
        f"synthetic catalog of {n_items:,} items (10,000 asked; items without a positive "
        "dropped), 3,000 users, batch 256, 999 shared uniform negatives, model 3 x 1,000 x 64, "
        "MLP 64-64-64, cosine / 0.05, Adam, torch 1 thread. Medians; CPU = process CPU time "
        f"(the machine is shared, wall rates move with its load: load average {load_start:.1f} "
        f"at start, {load_end:.1f} at end, {os.cpu_count()} CPUs).",
        "",
        "| implementation | examples/s (wall) | examples/s (CPU) | per run (CPU) |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, label in (
        ("plain", "plain vectorised loop (EmbeddingBag, one matmul, Adam)"),
        ("project", "`train_model`, method `sampled`"),
    ):
        runs = ", ".join(f"{n / c:,.0f}" for n, _, c in measured[name])
        lines.append(f"| {label} | {med[name][0]:,.0f} | {med[name][1]:,.0f} | {runs} |")
    ratio_w = med["project"][0] / med["plain"][0]
    ratio_c = med["project"][1] / med["plain"][1]
    lines += [
        "",
        f"Project / plain: {ratio_w:.2f}x wall, {ratio_c:.2f}x CPU. Target >= 1.5x: "
        + ("met." if min(ratio_w, ratio_c) >= 1.5 else "**not met** (see PROFILE_recsys_step.md)."),
    ]
    return lines


def threads_comparison(n_runs: int = 3) -> dict[int, list[float]]:
    """Wall seconds of one ``mixed`` run of 30 batches, 1 thread vs torch's default."""
    data = synthetic_movielens(1000, 1500, rng=0)
    examples = make_examples(data).take(np.arange(256 * 30))
    cfg = TrainConfig(method="mixed", batch_size=256, n_negatives=256)
    default = torch.get_num_threads()
    out: dict[int, list[float]] = {1: [], default: []}
    for _ in range(n_runs):
        for threads in out:
            torch.set_num_threads(threads)
            start = time.perf_counter()
            train_model(TwoTower(rng=0), examples, data.n_items, cfg, rng=0, progress=False)
            out[threads].append(time.perf_counter() - start)
            print(f"threads {threads}: {out[threads][-1]:.1f} s", flush=True)
    torch.set_num_threads(1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive-examples", type=int, default=512)
    parser.add_argument("--vectorised-examples", type=int, default=51_200)
    parser.add_argument("--runs", type=int, default=3, help="median of this many runs")
    parser.add_argument("--markdown", type=Path, default=None, help="write results here")
    parser.add_argument("--step-examples", type=int, default=256 * 80)
    parser.add_argument("--step-runs", type=int, default=5)
    parser.add_argument("--step-only", action="store_true", help="only the step table")
    parser.add_argument("--profile", action="store_true", help="write PROFILE_recsys_step.md")
    parser.add_argument("--profile-only", action="store_true", help="the profile, no table")
    parser.add_argument("--before-root", type=Path, default=None, help="older checkout")
    parser.add_argument("--threads-check", action="store_true", help="1 thread vs default")
    args = parser.parse_args()
    if args.threads_check:
        res = threads_comparison()
        print({t: round(float(np.median(v)), 1) for t, v in res.items()}, os.getloadavg())
        return
    torch.set_num_threads(1)
    if args.step_only or args.profile_only:
        args.profile = args.profile or args.profile_only
    if args.step_only and not args.profile_only:
        n_items, measured = step_comparison(args.step_examples, args.step_runs)
        lines = step_markdown(n_items, measured, args.step_examples)
        print("\n".join(lines))
    if args.step_only or args.profile_only:
        if args.markdown is not None and not args.profile_only:
            old = args.markdown.read_text() if args.markdown.exists() else ""
            head = old.split("\n## Training step beside")[0].rstrip("\n")
            args.markdown.write_text(head + "\n" + "\n".join(lines) + "\n")
        if args.profile:
            parts = [
                "# Per-operation profile of the training step (`bench_recsys.py --profile`)",
                "",
            ]
            parts += [
                "Method `sampled`, 10,000-item synthetic catalog, batch 256, 999 shared uniform",
                f"negatives, one thread, {args.step_examples:,} examples under `torch.profiler`",
                "(which slows every op alike). Top operations by self CPU time.",
                "",
            ]
            if args.before_root is not None:
                parts += ["## Before (the step as it was)", "", profile_step(args.before_root,
                          args.step_examples), ""]  # fmt: skip
            parts += ["## After (this checkout)", "", profile_step(None, args.step_examples), ""]
            out = ROOT / "benchmarks" / "PROFILE_recsys_step.md"
            reading = out.read_text().partition("\n## Reading it")[2] if out.exists() else ""
            if reading:  # the hand-written reading of the figures is kept
                parts += ["## Reading it" + reading.rstrip("\n"), ""]
            out.write_text("\n".join(parts))
        return
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
