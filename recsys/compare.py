"""Multi-seed comparison of softmax training methods, with uncertainty (docs/theory.md §4).

For seed ``s`` the users are split by fold ``s`` of one K-fold partition (so the test
users of different seeds are disjoint and no user is both trained and tested on in
one run); every method starts from the same initial weights, sees the same batches
in the same order and takes the same number of Adam steps; the held-out users are
scored at every position of their history (``eval_positions="all"``), against the
whole catalog. Per method and metric the result holds the per-seed values, their
mean, standard deviation and a 95% t-interval over seeds; per pair of methods the
per-seed paired differences with a t-interval, and a pooled paired difference over
all evaluated queries with a user-clustered (delta-method) standard error.

Which interval decides a verdict: the ordering verdicts (``result["ordering"]``,
"mixed > sampled: significant") use the *paired over-seeds* t-interval, which
includes training noise (each seed retrains every model from new weights and
batches). The pooled user-clustered interval conditions on the trained models: it
measures only which users happened to be held out, and is reported beside it for
reference, never as the verdict.

References
----------
.. [1] X. Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
   Recommendations", RecSys 2019 (Table 1: temperature and correction).
.. [2] J. Yang et al., "Mixed Negative Sampling for Learning Two-tower Neural Networks
   in Recommendations", WWW 2020 Companion.
.. [3] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics: A
   Practical Guide with Novel Ideas", KDD 2018 (clustered ratio standard error).
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from recsys import distributed
from recsys.data import Examples, Interactions, kfold_user_splits, make_examples
from recsys.metrics import EvaluationResult
from recsys.model import TwoTower
from recsys.train import TrainConfig, parse_methods, resolve_device, train_model
from sim import RngLike, as_seed_sequence, child_sequences

__all__ = [
    "CompareConfig",
    "clustered_mean_difference",
    "format_sweep_table",
    "format_table",
    "plot_recall_curves",
    "run_comparison",
    "temperature_sweep",
    "write_results",
]


@dataclass(frozen=True, slots=True)
class CompareConfig:
    """Settings of a comparison (all methods share them).

    Attributes
    ----------
    methods : tuple of str
        Method names (:data:`recsys.train.METHODS`).
    n_seeds : int
        Independent runs; seed ``s`` tests fold ``s`` of ``n_folds`` user folds.
    n_epochs : int
        Training epochs (every position of every training user, per epoch).
    n_folds : int
        User folds (``1/n_folds`` of the users held out per seed).
    batch_size, n_negatives, lr, temperature, correction, frequency
        See :class:`recsys.train.TrainConfig`.
    max_history : int
        History length of the examples.
    ks : tuple of int
        Recall@K / NDCG@K cut-offs.
    exclude_history : bool
        Remove each query's history from its ranking.
    eval_positions : {"all", "last"}
        Score every position of the held-out users, or only their last positive.
    n_tables, n_rows, dim, hidden, similarity, init_scale
        See :class:`recsys.model.TwoTower`.
    confidence_level : float
        Level of the intervals.
    """

    methods: tuple[str, ...] = ("sampled", "inbatch", "mixed")
    n_seeds: int = 3
    n_epochs: int = 1
    n_folds: int = 10
    batch_size: int = 256
    n_negatives: int = 256
    lr: float = 0.01
    temperature: float = 0.05
    correction: str = "inclusion_probability"
    frequency: str = "exact"
    max_history: int = 30
    ks: tuple[int, ...] = (10, 50, 100)
    exclude_history: bool = True
    eval_positions: Literal["all", "last"] = "all"
    n_tables: int = 3
    n_rows: int = 1000
    dim: int = 64
    hidden: tuple[int, ...] = (64, 64, 64)
    similarity: str = "cosine"
    init_scale: float | None = None
    confidence_level: float = 0.95

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", parse_methods(self.methods))
        if not isinstance(self.n_seeds, numbers.Integral) or self.n_seeds < 1:
            raise ValueError(f"`n_seeds` must be a positive integer; got {self.n_seeds}.")
        if not isinstance(self.n_folds, numbers.Integral) or self.n_folds < 2:
            raise ValueError(f"`n_folds` must be an integer >= 2; got {self.n_folds}.")
        if self.n_seeds > self.n_folds:
            raise ValueError(
                f"`n_seeds` must be <= `n_folds` (each seed tests its own fold); got "
                f"{self.n_seeds} and {self.n_folds}."
            )
        if self.eval_positions not in ("all", "last"):
            raise ValueError(
                f"`eval_positions` must be 'all' or 'last'; got {self.eval_positions!r}."
            )
        if not 0 < self.confidence_level < 1:
            raise ValueError(f"`confidence_level` must be in (0, 1); got {self.confidence_level}.")
        self.train_config(self.methods[0])  # validates the shared training settings

    def train_config(self, method: str) -> TrainConfig:
        """Return the :class:`~recsys.train.TrainConfig` of ``method`` under these settings."""
        return TrainConfig(
            method=method,
            n_epochs=self.n_epochs,
            batch_size=self.batch_size,
            n_negatives=self.n_negatives,
            lr=self.lr,
            temperature=self.temperature,
            correction=self.correction,
            frequency=self.frequency,
        )


# ----------------------------------------------------------------------- statistics


def _summary(values: Sequence[float], confidence_level: float) -> dict[str, Any]:
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else float("nan")
    if n > 1:
        half = float(stats.t.ppf(0.5 + confidence_level / 2, n - 1)) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
    else:
        low = high = float("nan")
    return {"mean": mean, "sd": sd, "ci_low": low, "ci_high": high, "per_seed": x.tolist()}


def clustered_mean_difference(
    difference: npt.ArrayLike, cluster: npt.ArrayLike, *, confidence_level: float = 0.95
) -> dict[str, float]:
    """Mean of per-query differences with a cluster-robust (by user) standard error.

    Parameters
    ----------
    difference : array_like, shape (n,)
        Per-query paired difference of a metric between two methods.
    cluster : array_like, shape (n,)
        Cluster (user) of each query.
    confidence_level : float, default 0.95

    Returns
    -------
    dict
        ``estimate`` (the mean), ``std_error``, ``ci_low``, ``ci_high`` (normal
        interval), ``n_queries``, ``n_clusters``.

    Notes
    -----
    The mean is a ratio of per-user sums, ``Dbar = sum_u D_u / sum_u n_u``; its
    delta-method variance is ``G/(G-1) sum_u (D_u - Dbar n_u)^2 / (sum_u n_u)^2`` over
    ``G`` users (Deng, Knoblich, Lu 2018; docs/theory.md §1), which allows for the correlation of
    one user's queries.

    Examples
    --------
    >>> out = clustered_mean_difference([1.0, 0.0, 1.0, 1.0], [1, 1, 2, 3])
    >>> round(out["estimate"], 3), out["n_clusters"]
    (0.75, 3)
    """
    d = np.asarray(difference, dtype=np.float64).reshape(-1)
    g = np.asarray(cluster).reshape(-1)
    if d.shape != g.shape:
        raise ValueError(
            f"`difference` and `cluster` must have the same shape; got {d.shape} and {g.shape}."
        )
    if not 0 < confidence_level < 1:
        raise ValueError(f"`confidence_level` must be in (0, 1); got {confidence_level}.")
    _, index = np.unique(g, return_inverse=True)
    sums = np.bincount(index, weights=d)  # (G,)
    counts = np.bincount(index).astype(np.float64)  # (G,)
    n_clusters = sums.size
    estimate = float(d.mean()) if d.size else float("nan")
    if n_clusters > 1:
        resid = sums - estimate * counts
        var = n_clusters / (n_clusters - 1) * float((resid**2).sum()) / float(counts.sum()) ** 2
        se = math.sqrt(var)
    else:
        se = float("nan")
    z = float(stats.norm.ppf(0.5 + confidence_level / 2))
    return {
        "estimate": estimate,
        "std_error": se,
        "ci_low": estimate - z * se,
        "ci_high": estimate + z * se,
        "n_queries": int(d.size),
        "n_clusters": int(n_clusters),
    }


def _metric_columns(ks: Sequence[int]) -> list[tuple[str, str, int]]:
    return [(f"recall@{k}", "recall", j) for j, k in enumerate(ks)] + [
        (f"ndcg@{k}", "ndcg", j) for j, k in enumerate(ks)
    ]


# ------------------------------------------------------------------------ comparison


def run_comparison(
    data: Interactions,
    config: CompareConfig | None = None,
    *,
    rng: RngLike = 0,
    device: str = "cpu",
    progress: bool = True,
    data_label: str = "data",
    on_seed_done: Callable[[dict[str, Any]], None] | None = None,
    world_size: int = 1,
) -> dict[str, Any]:
    """Train and evaluate every method over several seeds; return a JSON-able result.

    Parameters
    ----------
    data : Interactions
        Users' time-ordered positives (:func:`recsys.data.load_movielens`,
        :func:`recsys.data.synthetic_movielens`).
    config : CompareConfig, optional
        Defaults to ``CompareConfig()``.
    rng : int, numpy.random.SeedSequence or None, default 0
        Root seed: child 0 draws the user folds; child ``1 + s`` seeds run ``s``
        (its initial weights and batch order, shared by all methods).
    device : str, default "cpu"
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    progress : bool, default True
        tqdm bars on stderr.
    data_label : str
        Description of the data source, stored in the result.
    on_seed_done : callable, optional
        Called after each completed seed with the result of the seeds completed so
        far (same layout; ``completed_seeds`` < ``n_seeds`` until the last), e.g. to
        keep them when the run is interrupted. With ``world_size`` > 1, called once,
        with the final result.
    world_size : int, default 1
        Processes to train and evaluate with (:func:`recsys.distributed.launch_comparison`):
        each takes ``batch_size / world_size`` rows of every global batch; the figures
        equal the single-process ones up to floating-point rounding.

    Returns
    -------
    dict
        ``config`` (with ``world_size``), ``completed_seeds``, ``data`` (label,
        fingerprint, sizes), ``seed_entropy``,
        ``methods`` (per method: ``metrics`` -> summary over seeds, ``per_epoch``,
        ``examples_per_second``, ``train_seconds``), ``paired`` (per pair ``"a - b"``
        and metric: per-seed summary and the pooled user-clustered difference),
        ``runs`` (per seed: fold, numbers of users and examples).
    """
    config = CompareConfig() if config is None else config
    if not isinstance(data, Interactions):
        raise TypeError(f"`data` must be an Interactions; got {type(data).__name__}.")
    for k in config.ks:
        if k > data.n_items:
            raise ValueError(f"`k` must be in [1, n_items={data.n_items}]; got {k}.")
    if data.n_users < config.n_folds:
        raise ValueError(
            f"`data` must have at least `n_folds`={config.n_folds} users; got {data.n_users}."
        )
    if world_size != 1:
        result = distributed.launch_comparison(
            data, config, world_size, rng=rng, device=device, progress=progress,
            data_label=data_label,
        )  # fmt: skip
        if on_seed_done is not None:
            on_seed_done(result)
        return result
    dev = resolve_device(device)
    root = as_seed_sequence(rng)
    split_ss, *run_ss = child_sequences(root, 1 + config.n_seeds)
    splits = kfold_user_splits(data, config.n_folds, rng=split_ss)
    final: dict[str, list[EvaluationResult]] = {m: [] for m in config.methods}
    per_epoch: dict[str, list[list[dict[str, float]]]] = {m: [] for m in config.methods}
    speed: dict[str, list[float]] = {m: [] for m in config.methods}
    seconds: dict[str, list[float]] = {m: [] for m in config.methods}
    runs = []
    for s in range(config.n_seeds):
        train, test = splits[s]
        train_ex = make_examples(train, max_history=config.max_history)
        test_ex = make_examples(
            test, max_history=config.max_history, positions=config.eval_positions
        )
        if test_ex.n_examples == 0:
            raise ValueError(f"fold {s} has no evaluation example (users too short).")
        init_ss, train_ss = child_sequences(run_ss[s], 2)
        runs.append(
            {
                "seed": s,
                "fold": s,
                "n_train_users": train.n_users,
                "n_test_users": test.n_users,
                "n_train_examples": train_ex.n_examples,
                "n_test_queries": test_ex.n_examples,
            }
        )
        for method in config.methods:
            model = TwoTower(
                n_tables=config.n_tables,
                n_rows=config.n_rows,
                dim=config.dim,
                hidden=config.hidden,
                similarity=config.similarity,  # type: ignore[arg-type]
                init_scale=config.init_scale,
                rng=init_ss,
            )
            last: list[EvaluationResult] = []

            def evaluate(
                m: TwoTower, _last: list[EvaluationResult] = last, _ex: Examples = test_ex
            ) -> dict[str, float]:
                res = distributed.evaluate_retrieval_sharded(  # one process: evaluate_retrieval
                    m,
                    _ex,
                    data.n_items,
                    ks=config.ks,
                    exclude_history=config.exclude_history,
                    device=dev,
                )
                _last[:] = [res]
                return res.mean()

            result = train_model(
                model,
                train_ex,
                data.n_items,
                config.train_config(method),
                rng=train_ss,
                device=dev,
                evaluate=evaluate,
                progress=progress,
            )
            final[method].append(last[0])
            per_epoch[method].append(result.epoch_metrics)
            speed[method].append(result.examples_per_second)
            seconds[method].append(result.train_seconds)
        partial = _assemble(config, dev, data, data_label, root, runs, final, per_epoch, speed,
                            seconds)  # fmt: skip
        if on_seed_done is not None:
            on_seed_done(partial)
    return partial


def _assemble(config, dev, data, data_label, root, runs, final, per_epoch, speed, seconds):
    """Return the result dict of the seeds completed so far (``len(runs)`` of them)."""
    columns = _metric_columns(config.ks)
    methods_out: dict[str, Any] = {}
    for method in config.methods:
        metrics = {}
        for name, kind, j in columns:
            values = [getattr(r, kind)[:, j].mean() for r in final[method]]
            metrics[name] = _summary(values, config.confidence_level)
        curves = {
            name: [[epoch[name] for epoch in seed_run] for seed_run in per_epoch[method]]
            for name, _, _ in columns
        }
        methods_out[method] = {
            "metrics": metrics,
            "per_epoch": curves,
            "examples_per_second": speed[method],
            "train_seconds": seconds[method],
        }
    paired: dict[str, Any] = {}
    for a, b in itertools.combinations(config.methods, 2):
        key = f"{a} - {b}"
        paired[key] = {}
        for name, kind, j in columns:
            diffs = [
                getattr(ra, kind)[:, j] - getattr(rb, kind)[:, j]
                for ra, rb in zip(final[a], final[b], strict=True)
            ]
            users = [np.char.add(f"{s}:", r.user_id.astype(str)) for s, r in enumerate(final[a])]
            paired[key][name] = {
                "over_seeds": _summary([d.mean() for d in diffs], config.confidence_level),
                "pooled_clustered": clustered_mean_difference(
                    np.concatenate(diffs),
                    np.concatenate(users),
                    confidence_level=config.confidence_level,
                ),
            }
    cfg = asdict(config)
    cfg["device"] = str(dev)
    cfg["world_size"] = distributed.world_size()
    return {
        "config": cfg,
        "completed_seeds": len(runs),
        "data": {
            "label": data_label,
            "fingerprint": data.fingerprint,
            "n_users": data.n_users,
            "n_items": data.n_items,
            "n_positives": data.n_positives,
        },
        "seed_entropy": root.entropy,
        "runs": runs,
        "methods": methods_out,
        "paired": paired,
        "ordering": _ordering(methods_out, paired, config.ks),
    }


def _ordering(methods: dict[str, Any], paired: dict[str, Any], ks: Sequence[int]) -> dict:
    """Whether mixed > sampled > inbatch (the published order) holds at the largest K.

    Each pairwise verdict comes from the paired over-seeds t-interval (it includes
    training noise); with one seed there is no such interval and the verdict is None
    ("undetermined"). The pooled user-clustered interval is kept as ``pooled_*`` for
    reference only: it conditions on the trained models.
    """
    wanted = ("mixed", "sampled", "inbatch")
    if not all(m in methods for m in wanted):
        return {}
    metric = f"recall@{max(ks)}"
    means = {m: methods[m]["metrics"][metric]["mean"] for m in wanted}
    out: dict[str, Any] = {
        "metric": metric,
        "means": means,
        "interval": "paired over seeds (t), includes training noise",
    }
    out["holds_in_means"] = bool(means["mixed"] > means["sampled"] > means["inbatch"])
    for a, b in (("mixed", "sampled"), ("sampled", "inbatch"), ("mixed", "inbatch")):
        key = f"{a} - {b}" if f"{a} - {b}" in paired else f"{b} - {a}"
        sign = 1.0 if key == f"{a} - {b}" else -1.0
        seeds = paired[key][metric]["over_seeds"]
        pooled = paired[key][metric]["pooled_clustered"]
        low, high = sorted((sign * seeds["ci_low"], sign * seeds["ci_high"]))
        p_low, p_high = sorted((sign * pooled["ci_low"], sign * pooled["ci_high"]))
        known = not (math.isnan(low) or math.isnan(high))
        out[f"{a} > {b}"] = {
            "difference": sign * seeds["mean"],
            "ci_low": low,
            "ci_high": high,
            "significant": bool(low > 0) if known else None,
            "reversed_significant": bool(high < 0) if known else None,
            "pooled_ci_low": p_low,
            "pooled_ci_high": p_high,
        }
    return out


def _verdict(entry: dict[str, Any]) -> str:
    if entry["significant"] is None:
        return "undetermined (one seed: no over-seeds interval)"
    if entry["significant"]:
        return "significant"
    return "reversed, significant" if entry["reversed_significant"] else "not significant"


# --------------------------------------------------------------------------- sweeps


def temperature_sweep(
    data: Interactions,
    temperatures: Sequence[float],
    config: CompareConfig | None = None,
    *,
    methods: Sequence[str] = ("inbatch", "inbatch-nologq"),
    rng: RngLike = 0,
    device: str = "cpu",
    progress: bool = True,
    data_label: str = "data",
) -> dict[str, Any]:
    """Run :func:`run_comparison` at several temperatures (Yi et al. 2019, Table 1).

    Parameters
    ----------
    data : Interactions
    temperatures : sequence of float
        Values of ``tau`` (logit = cos / tau), each > 0.
    config : CompareConfig, optional
        Shared settings; its ``temperature`` and ``methods`` are replaced.
    methods : sequence of str, default ("inbatch", "inbatch-nologq")
        With and without the logQ correction.
    rng, device, progress, data_label
        As in :func:`run_comparison` (the same seed, folds and batches at every
        temperature).

    Returns
    -------
    dict
        ``temperatures`` and ``results`` (one :func:`run_comparison` dict each).
    """
    if len(temperatures) == 0:
        raise ValueError("`temperatures` must hold at least one value; got none.")
    for t in temperatures:
        if not (isinstance(t, numbers.Real) and t > 0 and math.isfinite(t)):
            raise ValueError(f"`temperatures` must be positive and finite; got {t}.")
    base = CompareConfig() if config is None else config
    results = []
    for t in temperatures:
        cfg = CompareConfig(**{**asdict(base), "temperature": float(t), "methods": tuple(methods)})
        results.append(
            run_comparison(
                data, cfg, rng=rng, device=device, progress=progress, data_label=data_label
            )
        )
    return {"temperatures": [float(t) for t in temperatures], "results": results}


# --------------------------------------------------------------------------- output


def _fmt(summary: dict[str, Any]) -> str:
    if math.isnan(summary["ci_low"]):
        return f"{summary['mean']:.4f}"
    return f"{summary['mean']:.4f} [{summary['ci_low']:.4f}, {summary['ci_high']:.4f}]"


def format_table(result: dict[str, Any]) -> str:
    """Markdown tables: per-method metrics (mean [95% CI] over seeds), paired differences.

    Parameters
    ----------
    result : dict
        Output of :func:`run_comparison`.

    Returns
    -------
    str
    """
    ks = result["config"]["ks"]
    names = [f"recall@{k}" for k in ks] + [f"ndcg@{max(ks)}"]
    lines = [
        f"data: {result['data']['label']} (sha256 {result['data']['fingerprint'][:12]}..., "
        f"{result['data']['n_users']} users, {result['data']['n_items']} items); "
        f"{result['config']['n_seeds']} seeds x {result['config']['n_epochs']} epoch(s); "
        f"{sum(r['n_test_queries'] for r in result['runs'])} test queries over "
        f"{sum(r['n_test_users'] for r in result['runs'])} held-out users",
        "",
        "| method | " + " | ".join(names) + " | examples/s |",
        "|---" * (len(names) + 2) + "|",
    ]
    for method, entry in result["methods"].items():
        cells = [_fmt(entry["metrics"][n]) for n in names]
        eps = float(np.mean(entry["examples_per_second"]))
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {eps:,.0f} |")
    if result["paired"]:
        metric = f"recall@{max(ks)}"
        lines += [
            "",
            f"Paired differences in {metric}: mean over seeds [t-CI; includes training "
            "noise, decides the verdicts], and pooled over all test queries "
            "[user-clustered CI; conditions on the trained models, reference only]",
            "",
            "| pair | over seeds | pooled (clustered) |",
            "|---|---|---|",
        ]
        for key, entry in result["paired"].items():
            pooled = entry[metric]["pooled_clustered"]
            lines.append(
                f"| {key} | {_fmt(entry[metric]['over_seeds'])} | {pooled['estimate']:+.4f} "
                f"[{pooled['ci_low']:+.4f}, {pooled['ci_high']:+.4f}] |"
            )
    order = result.get("ordering")
    if order:
        lines += [
            "",
            f"published order mixed > sampled > inbatch in mean {order['metric']}: "
            f"{'holds' if order['holds_in_means'] else 'does not hold'}; verdicts from the "
            "paired over-seeds interval (includes training noise): "
            + "; ".join(
                f"{pair}: {_verdict(order[pair])} "
                f"[{order[pair]['ci_low']:+.4f}, {order[pair]['ci_high']:+.4f}]"
                for pair in ("mixed > sampled", "sampled > inbatch", "mixed > inbatch")
            ),
        ]
    return "\n".join(lines)


def format_sweep_table(sweep: dict[str, Any]) -> str:
    """Markdown table of a :func:`temperature_sweep`: metric per method and the gain."""
    first = sweep["results"][0]
    methods = list(first["methods"])
    metric = f"recall@{max(first['config']['ks'])}"
    header = "| temperature (scale) | " + " | ".join(methods)
    lines = []
    if len(methods) == 2:
        header += f" | {methods[0]} - {methods[1]} (pooled, clustered CI)"
    lines += [f"{metric}, mean [95% CI over seeds]", "", header + " |"]
    lines.append("|---" * (len(methods) + 1 + (len(methods) == 2)) + "|")
    for t, res in zip(sweep["temperatures"], sweep["results"], strict=True):
        cells = [_fmt(res["methods"][m]["metrics"][metric]) for m in methods]
        row = f"| {t:g} ({1 / t:g}) | " + " | ".join(cells)
        if len(methods) == 2:
            pooled = res["paired"][f"{methods[0]} - {methods[1]}"][metric]["pooled_clustered"]
            row += (
                f" | {pooled['estimate']:+.4f} [{pooled['ci_low']:+.4f}, {pooled['ci_high']:+.4f}]"
            )
        lines.append(row + " |")
    return "\n".join(lines)


def plot_recall_curves(result: dict[str, Any], path: str | Path) -> Path:
    """Save a PNG of Recall@K per epoch (mean over seeds, min-max band) per method."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ks = result["config"]["ks"]
    fig = Figure(figsize=(4.2 * len(ks), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(ks), squeeze=False)[0]
    for ax, k in zip(axes, ks, strict=True):
        for method, entry in result["methods"].items():
            curves = np.asarray(entry["per_epoch"][f"recall@{k}"], dtype=np.float64)
            epochs = np.arange(1, curves.shape[1] + 1)
            ax.plot(epochs, curves.mean(axis=0), marker="o", label=method)
            ax.fill_between(epochs, curves.min(axis=0), curves.max(axis=0), alpha=0.2)
        ax.set_xticks(epochs)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"Recall@{k}")
        ax.set_title(f"Recall@{k} (held-out users)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    out = Path(path)
    fig.savefig(out, dpi=110)
    return out


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return _json_safe(obj.item())
    return obj


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_results(
    result: dict[str, Any], out_dir: str | Path, *, name: str = "results"
) -> dict[str, Path]:
    """Write the JSON, the markdown table and (for a comparison) the PNG of a result.

    Files under ``out_dir``: ``<name>.json`` (NaN as null; written to a temporary file
    and renamed, so it is never half-written), ``<name>.md`` and
    ``recall_per_epoch.png`` (``<name>_recall_per_epoch.png`` for another name).

    Returns
    -------
    dict
        Paths written, by kind.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamped = {**result, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    paths = {"json": out / f"{name}.json", "table": out / f"{name}.md"}
    _write_atomic(paths["json"], json.dumps(_json_safe(stamped), indent=1, allow_nan=False) + "\n")
    if "temperatures" in result:
        paths["table"].write_text(format_sweep_table(result) + "\n")
    else:
        paths["table"].write_text(format_table(result) + "\n")
        png = "recall_per_epoch.png" if name == "results" else f"{name}_recall_per_epoch.png"
        paths["png"] = plot_recall_curves(result, out / png)
    return paths
