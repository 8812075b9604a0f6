"""Monte Carlo checks of the inclusion probabilities and the streaming frequency estimate.

``retrieval-mixed-inclusion``: the Horvitz-Thompson count sum_{y in set} 1/Q*(y) over
simulated mixed candidate sets has mean N exactly when Q* is
:func:`recsys.inclusion_probability` (docs/theory.md §4; Yang et al. 2020).
``retrieval-streaming-frequency``: Yi et al.'s (2019) streaming estimate tracks the
per-batch inclusion probability, not B p; :meth:`item_probability` inverts it;
collisions with few buckets and the multi-hash remedy. Registered with the other
retrieval checks (group ``"retrieval"``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import torch

import sim
from validation.core import CheckResult, NegativeControl, RunContext, register
from validation.retrieval_bias import single_thread
from validation.shipped import Shipped

StreamingFrequencyEstimator = Shipped("recsys.frequency", "StreamingFrequencyEstimator")
expected_distinct = Shipped("recsys.negatives", "expected_distinct")
inclusion_probability = Shipped("recsys.negatives", "inclusion_probability")
expected_full_gradient = Shipped("sim.softmax", "expected_full_softmax_gradient")

FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------- check 4

MIXED_SCENARIO: dict[str, Any] = dict(n_items=500, batch_size=64, n_random=32, zipf_exponent=1.0)


def plot_inclusion(results: list[CheckResult]):
    """Empirical inclusion frequency vs Q* per item (log-log), one series per cell."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for res in results:
        ex = res.extra
        ax.errorbar(
            ex["q_star"],
            ex["frequency"],
            yerr=ex["frequency_se"],
            fmt="o",
            ms=2,
            capsize=1,
            label=res.name.split("/")[-1],
        )
    lim = [min(min(r.extra["q_star"]) for r in results) if results else 1e-3, 1.0]
    ax.plot(lim, lim, "k--", lw=0.8, label="y = x")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("inclusion_probability Q*(y)")
    ax.set_ylabel("empirical inclusion frequency")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


@register(
    "retrieval-mixed-inclusion",
    claim=(
        "Mixed negatives (B = 64 positives from a Zipf(1) marginal over 500 items, B' = 32 "
        "uniform draws with replacement, de-duplicated): the Horvitz-Thompson count "
        "sum_{y in set} 1/Q*(y) has mean N within z s.e. when Q* = "
        "inclusion_probability(p, B, B', N); control: Q = expected count B p + B' gamma. "
        "When the random draw excludes the batch's items, gamma = 1/(N - E[D]) with "
        "E[D] = expected_distinct(p, B) passes; the source's gamma = 1/(N - B), which "
        "assumes B distinct positives, is the control and fails (popular items repeat)."
    ),
    reference="Yang et al. 2020 §3; Yi et al. 2019; docs/theory.md §4.",
    group="retrieval",
    plot=plot_inclusion,
)
def check_mixed_inclusion(ctx: RunContext) -> list[CheckResult]:
    """Empirical inclusion of mixed candidate sets vs the formula."""
    n, b, b2 = (MIXED_SCENARIO[k] for k in ("n_items", "batch_size", "n_random"))
    p = 1.0 / np.arange(1, n + 1) ** MIXED_SCENARIO["zipf_exponent"]
    p /= p.sum()
    r = ctx.replicates(4000, 40000)
    out = []
    for exclude in (False, True):
        name = f"retrieval-mixed-inclusion/{'exclude-batch' if exclude else 'with-batch'}"
        ss = ctx.seed_sequence(name)
        sampler = sim.MixedSampler(p, b, b2, exclude_batch=exclude)
        included = sim.counts_per_set(sampler.sample(r, rng=ss), n) > 0  # (R, N)
        if exclude:  # the recsys formula, gamma = 1/(N - E[distinct positives])
            q_star = inclusion_probability(p, b, b2, n, True, n_excluded=expected_distinct(p, b))
            q_ctrl = inclusion_probability(p, b, b2, n, True)  # the source's gamma = 1/(N - B)
            ctrl_name = "source formula gamma = 1/(N - B) (assumes B distinct positives)"
        else:
            q_star = inclusion_probability(p, b, b2, n)  # the recsys formula
            q_ctrl = b * p + b2 / n
            ctrl_name = "expected count B p + B' gamma used as Q"
        ht = included @ (1.0 / q_star)  # (R,) Horvitz-Thompson estimate of N
        ht_ctrl = included @ (1.0 / q_ctrl)
        se = ht.std(ddof=1) / math.sqrt(r)
        freq = included.mean(axis=0)
        out.append(
            CheckResult(
                name=name,
                claim=(
                    f"mean of sum_(y in set) 1/Q*(y) = N = {n} ± {ctx.z:g} s.e. "
                    f"({'random draw excludes the batch' if exclude else 'plain'})"
                ),
                scenario={**MIXED_SCENARIO, "exclude_batch": exclude},
                figure=float(ht.mean()),
                expected=float(n),
                tolerance=float(ctx.z * se),
                n_replicates=r,
                seed=int(ss.entropy),
                negative_control=NegativeControl(
                    ctrl_name,
                    float(ht_ctrl.mean()),
                ),
                extra={
                    "q_star": q_star.tolist(),
                    "frequency": freq.tolist(),
                    "frequency_se": np.sqrt(freq * (1 - freq) / r).tolist(),
                    "max_abs_z": float(
                        np.max(np.abs(freq - q_star) / np.sqrt(q_star * (1 - q_star) / r))
                    ),
                    "z": ctx.z,
                },
            )
        )
    return out


# --------------------------------------------------------------------------- check 5

STREAM_SCENARIO: dict[str, Any] = dict(n_items=2000, batch_size=128, zipf_exponent=1.0, alpha=0.02)


class _Run(NamedTuple):
    """One table's results: gaps ``(T, S, P)``; share, freq and alone ``(S, P)``."""

    gaps: np.ndarray
    share: np.ndarray
    freq: np.ndarray
    alone: np.ndarray


def _item_law() -> np.ndarray:
    """Return the streams' Zipf item probabilities ``p`` (N,)."""
    n = STREAM_SCENARIO["n_items"]
    p = 1.0 / np.arange(1, n + 1) ** STREAM_SCENARIO["zipf_exponent"]
    return p / p.sum()


def _streams(
    n_streams: int,
    n_steps: int,
    ss: np.random.SeedSequence,
    tables: dict[str, tuple[int, int, int]],
    probe: np.ndarray,
    checkpoints: list[int],
) -> dict[str, _Run]:
    """Run ``n_streams`` independent Zipf streams through several estimators (disjoint ids).

    ``tables`` maps a label to ``(n_buckets, n_hashes, salt)``; every estimator sees the
    same streams (drawn once). Stream ``s`` uses ids ``s * N + y``; a table has
    ``n_streams * n_buckets`` rows, so each stream sees the collision density of
    ``n_buckets`` buckets. Returns, per label, a :class:`_Run`: the
    ``(len(checkpoints), n_streams, len(probe))`` gaps, the final
    :meth:`StreamingFrequencyEstimator.item_probability` of the probes and their
    per-batch frequency ``estimate``, each ``(n_streams, len(probe))`` (each stream's
    batch holds ``B`` ids), and the ``(n_streams, len(probe))`` mask of probes alone in
    their bucket under every hash (no other of the ``n_streams * N`` ids hashes there).
    """
    n, b = STREAM_SCENARIO["n_items"], STREAM_SCENARIO["batch_size"]
    p = _item_law()
    ests = {
        label: StreamingFrequencyEstimator(
            n_streams * n_buckets, n_hashes, STREAM_SCENARIO["alpha"], seed=salt
        )
        for label, (n_buckets, n_hashes, salt) in tables.items()
    }
    gen = np.random.default_rng(ss)
    offsets = (np.arange(n_streams, dtype=np.int64) * n)[:, None]  # (S, 1)
    probe_ids = torch.as_tensor((offsets + probe[None, :]).ravel())  # (S * P,)
    cdf = np.cumsum(p)
    gaps: dict[str, list[np.ndarray]] = {label: [] for label in tables}
    for t in range(n_steps):
        y = np.minimum(
            np.searchsorted(cdf, gen.random((n_streams, b)) * cdf[-1], side="right"), n - 1
        )  # (S, B)
        ids = torch.as_tensor((y + offsets).ravel())
        for label, est in ests.items():
            est.update(ids)
            if t + 1 in checkpoints:
                gap = est.expected_gap(probe_ids).numpy().reshape(n_streams, probe.size)
                gaps[label].append(gap)
    every_id = torch.arange(n_streams * n, dtype=torch.int64)
    out = {}
    for label, est in ests.items():
        share = est.item_probability(probe_ids, b).numpy().reshape(n_streams, probe.size)
        freq = est.estimate(probe_ids).numpy().reshape(n_streams, probe.size)
        buckets = est.buckets(every_id)  # (H, S * N)
        alone = np.ones(probe_ids.numel(), dtype=bool)
        for h in range(est.n_hashes):
            load = torch.bincount(buckets[h], minlength=est.n_buckets)  # ids per bucket
            alone &= (load[buckets[h][probe_ids]] == 1).numpy()
        out[label] = _Run(np.stack(gaps[label]), share, freq, alone.reshape(n_streams, probe.size))
    return out


def plot_streaming(results: list[CheckResult]):
    """Estimate / Q_B over time, and estimate vs Q_B and vs B p per item."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    results = [r for r in results if "ratio_over_time" in r.extra]
    for res in results:
        ex = res.extra
        label = res.name.split("/")[-1]
        ax1.errorbar(
            ex["checkpoints"],
            ex["ratio_over_time"],
            yerr=ex["ratio_sd_over_time"],
            fmt="-o",
            ms=3,
            capsize=2,
            label=label,
        )
        ax2.plot(ex["q_batch"], ex["estimate"], "o", ms=3, label=f"{label}: estimate")
    if results:
        ex = results[0].extra
        ax2.plot(ex["q_batch"], ex["expected_count"], "k.", ms=3, label="B p (expected count)")
        ax2.plot([min(ex["q_batch"]), 1], [min(ex["q_batch"]), 1], "k--", lw=0.8)
    ax1.axhline(1.0, color="k", lw=0.8)
    ax1.set_xlabel("step")
    ax1.set_ylabel("estimate / Q_B (mean ± sd over streams)")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("Q_B = 1 - (1 - p)^B")
    ax2.set_ylabel("1 / gap")
    # legends beside the axes, never over the data
    ax1.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0.0, -0.2), ncol=2)
    ax2.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0.0, -0.2), ncol=2)
    fig.tight_layout()
    return fig


@register(
    "retrieval-streaming-frequency",
    claim=(
        "Yi et al.'s streaming estimator on Zipf(1) streams over 2,000 items (B = 128, "
        "alpha = 0.02, probe items of rank 1 to 500): for probes alone in their bucket "
        "(8,192 buckets per 2,000 items) the "
        "moving-average gap times the per-batch inclusion probability Q_B = 1 - (1 - p)^B "
        "has mean 1 within z s.e., so 1/gap estimates Q_B (at most 1 per batch), not the "
        "expected count B p (control, which departs for items seen several times per "
        "batch); with N/4 buckets and one hash, collisions shorten gaps (frequencies "
        "overestimated); the largest gap over 4 hashes reduces that bias (paired streams)."
    ),
    reference="Yi et al. 2019 §5, Algorithm 2 and the multi-hash variant; docs/theory.md §4.",
    group="retrieval",
    plot=plot_streaming,
)
@single_thread()
def check_streaming_frequency(ctx: RunContext) -> list[CheckResult]:
    """Streaming frequency estimates vs the truth (see the registered claim)."""
    n, b = STREAM_SCENARIO["n_items"], STREAM_SCENARIO["batch_size"]
    n_streams = ctx.replicates(16, 64)
    n_steps = ctx.replicates(1000, 4000)
    checkpoints = sorted({n_steps // 8, n_steps // 4, n_steps // 2, n_steps})
    probe = np.unique(np.geomspace(1, 500, 12).astype(np.int64)) - 1  # ranks 1..500
    b_per_stream = {"large": 1 << 13, "few": n // 4}
    ss = ctx.seed_sequence("retrieval-streaming-frequency")  # same streams in every cell
    tables = {
        "large": (b_per_stream["large"], 1, 11),
        "few-1": (b_per_stream["few"], 1, 11),
        "few-1-other-salt": (b_per_stream["few"], 1, 12),
        "large-other-salt": (b_per_stream["large"], 1, 12),
        "few-4": (b_per_stream["few"], 4, 11),
    }
    runs = _streams(n_streams, n_steps, ss, tables, probe, checkpoints)
    p = _item_law()
    q_b = -np.expm1(b * np.log1p(-p[probe]))  # (P,) per-batch inclusion probability
    ratio = {k: v.gaps * q_b for k, v in runs.items()}  # (T, S, P): gap / E[gap]
    per_stream = {k: v[-1].mean(axis=1) for k, v in ratio.items()}  # (S,)
    # Even 8,192 buckets per 2,000 items put ~20 % of the probes in a shared bucket, whose
    # gaps the other item shortens: the unbiasedness claim is made on the probes alone.
    alone = runs["large"].alone  # (S, P)
    n_alone = alone.sum(axis=1)  # (S,)
    defined = n_alone > 0
    alone_mean = (ratio["large"][-1] * alone).sum(axis=1)[defined] / n_alone[defined]
    shared = ratio["large"][-1][~alone]

    def mean_se(x: np.ndarray) -> tuple[float, float]:
        return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))

    def extra(label: str) -> dict[str, Any]:
        inv = 1.0 / ratio[label]  # (T, S, P) estimate / Q_B
        return {
            "checkpoints": checkpoints,
            "ratio_over_time": inv.mean(axis=(1, 2)).tolist(),
            "ratio_sd_over_time": inv.mean(axis=2).std(axis=1).tolist(),
            "q_batch": q_b.tolist(),
            "estimate": (1.0 / runs[label].gaps[-1].mean(axis=0)).tolist(),
            "expected_count": (b * p[probe]).tolist(),
            "z": ctx.z,
        }

    scenario = {
        **STREAM_SCENARIO,
        "n_steps": n_steps,
        "n_streams": n_streams,
        "probe_ranks": (probe + 1).tolist(),
    }
    seed = int(ss.entropy)
    out = []
    # (i) large table, probes alone in their bucket: gap x Q_B = 1 (per-stream means of
    # those probes); control: the expected count B p as the target, same probes
    fig, se = mean_se(alone_mean)
    count_ratio = runs["large"].gaps[-1] * b * p[probe]  # (S, P) gap x B p
    ctrl, _ = mean_se((count_ratio * alone).sum(axis=1)[defined] / n_alone[defined])
    out.append(
        CheckResult(
            name="retrieval-streaming-frequency/large-table",
            claim=f"probes alone in their bucket: mean of gap x Q_B = 1 ± {ctx.z:g} s.e., so "
            "1/gap estimates the per-batch inclusion probability (at most 1), not the "
            "expected count B p",
            scenario={**scenario, "n_buckets": b_per_stream["large"], "n_hashes": 1},
            figure=fig,
            expected=1.0,
            tolerance=ctx.z * se,
            n_replicates=int(defined.sum()),
            n_undefined=int((~defined).sum()),
            seed=seed,
            negative_control=NegativeControl(
                "expected count B p as the target (mean gap x B p)",
                ctrl,
            ),
            extra={
                **extra("large"),
                "share_of_probes_in_a_shared_bucket": float(1.0 - alone.mean()),
                "mean_gap_x_q_b_in_a_shared_bucket": (
                    float(shared.mean()) if shared.size else math.nan
                ),
                "mean_gap_x_q_b_all_probes": float(per_stream["large"].mean()),
            },
        )
    )
    # (i') the item share inverts the per-batch inclusion: Q_B(item_probability) = 1/gap
    share, freq = runs["large"].share, runs["large"].freq  # (S, P) each
    back = np.asarray(inclusion_probability(share, b))
    linear = np.asarray(inclusion_probability(np.minimum(freq / b, 1.0), b))
    out.append(
        CheckResult(
            name="retrieval-streaming-frequency/item-probability",
            claim="StreamingFrequencyEstimator.item_probability(ids, B) is the share p whose "
            "per-batch inclusion 1 - (1 - p)^B (recsys.inclusion_probability) is the "
            "estimated frequency 1/gap: max deviation <= 1e-9 over the probes",
            scenario={**scenario, "n_buckets": b_per_stream["large"], "n_hashes": 1},
            figure=float(np.max(np.abs(back - freq))),
            expected=0.0,
            tolerance=1e-9,
            rule="at_most",
            n_replicates=n_streams,
            seed=seed,
            negative_control=NegativeControl(
                "the linear share Q_B / B", float(np.max(np.abs(linear - freq)))
            ),
            extra={"mean_share_over_p": (share / p[probe]).mean(axis=0).tolist()},
        )
    )
    # (ii) few buckets, one hash: collisions shorten gaps (paired with the large table)
    fig, se = mean_se(per_stream["few-1"] - per_stream["large"])
    ctrl, _ = mean_se(per_stream["large-other-salt"] - per_stream["large"])
    out.append(
        CheckResult(
            name="retrieval-streaming-frequency/collisions-1-hash",
            claim=f"N/4 buckets, one hash: collisions shorten gaps, mean gap x Q_B falls "
            f"below the collision-free table's by more than {ctx.z:g} s.e. (paired "
            "streams; frequencies overestimated)",
            scenario={**scenario, "n_buckets": b_per_stream["few"], "n_hashes": 1},
            figure=fig,
            expected=0.0,
            tolerance=ctx.z * se,
            rule="below",
            n_replicates=n_streams,
            seed=seed,
            negative_control=NegativeControl(
                "collision-free table with another salt (no collisions to shorten gaps)", ctrl
            ),
            extra=extra("few-1"),
        )
    )
    # (iii) four hashes, largest gap: less collision bias than one hash (paired streams)
    diff = per_stream["few-4"] - per_stream["few-1"]
    fig, se = mean_se(diff)
    ctrl_diff = per_stream["few-1-other-salt"] - per_stream["few-1"]
    ctrl, _ = mean_se(ctrl_diff)
    out.append(
        CheckResult(
            name="retrieval-streaming-frequency/multi-hash",
            claim=f"N/4 buckets: the largest gap over 4 hashes reduces the collision bias, "
            f"mean gap x Q_B rises by more than {ctx.z:g} s.e. over one hash (paired "
            f"streams); it reaches {per_stream['few-4'].mean():.3f} (1 = unbiased)",
            scenario={**scenario, "n_buckets": b_per_stream["few"], "n_hashes": 4},
            figure=fig,
            expected=0.0,
            tolerance=ctx.z * se,
            rule="above",
            n_replicates=n_streams,
            seed=seed,
            negative_control=NegativeControl("one hash with another salt (no remedy)", ctrl),
            extra=extra("few-4"),
        )
    )
    return out
