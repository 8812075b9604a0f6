"""Bias of the shipped sampled-softmax gradient as the number of negatives grows.

The bias curves of the retrieval checks (``retrieval-gradient-bias``,
``retrieval-fixed-point``, ``retrieval-biased-variants``) measure, for each number of
negatives m, the Monte Carlo mean over simulated negative sets S of the expected
gradient ``sum_y pi_y grad_s loss(y, S)`` of the *shipped* loss, minus sim's exact
full-softmax gradient (docs/theory.md §4). Every gradient is computed by autograd
through :func:`recsys.sampled_softmax_loss` (float64, CPU) on the candidate layout
of :func:`recsys.sampled_softmax_candidates`, with Q from
:func:`recsys.expected_count` or :func:`recsys.inclusion_probability`; all names are
looked up at call time (:mod:`validation.shipped`), so a wrong version swapped into
``recsys`` or ``sim`` is the one measured.

Batching. One builder call per curve gives the layout of one negative set whose
rows are every possible positive y: the ``N`` positives, then each catalog item once
as a negative, with the builder's mask (other rows' positives, and accidental hits
when they are removed). A simulated set S enters through its multiplicities: k
copies of a candidate in a softmax weigh as one copy whose logit is raised by
``log k`` (an identity of the softmax, not of the loss), and a de-duplicated set
(inclusion probabilities) keeps one copy of each item it holds. Items absent from S
are masked. Each row keeps its own positive and the ``N`` negative columns (the other
rows' positives, which the builder masks, are dropped), and replicates are stacked as
rows (``R_chunk x N`` rows, ``1 + N`` columns), so the cost is ``O(R N^2)`` per m
whatever m is. ``retrieval-shipped-gradient`` checks
this shortcut against the plain per-set use of the builder and loss on every run,
and ``tests/validation/test_retrieval_reference.py`` against a NumPy closed form.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from scipy import optimize

import sim
from sim._seed import child_sequences
from validation.core import CheckResult, NegativeControl, RunContext
from validation.shipped import Shipped

sampled_softmax_candidates = Shipped("recsys.negatives", "sampled_softmax_candidates")
sampled_softmax_loss = Shipped("recsys.losses", "sampled_softmax_loss")
expected_count = Shipped("recsys.negatives", "expected_count")
inclusion_probability = Shipped("recsys.negatives", "inclusion_probability")
expected_full_gradient = Shipped("sim.softmax", "expected_full_softmax_gradient")

FloatArray = npt.NDArray[np.float64]
VariantCorrection = Literal["expected_count", "inclusion_probability", "share", "none"]

#: The synthetic problem of the gradient checks: 50 items, 5 contexts, Zipf(1)
#: popularity, affinities strong enough (factor_scale 3) that pi(.|x) differs from eta.
GRADIENT_PROBLEM: dict[str, Any] = dict(
    n_items=50, n_contexts=5, rank=8, zipf_exponent=1.0, factor_scale=3.0, rng=2019
)
#: Numbers of negatives m of the bias-vs-m curves.
M_GRID: tuple[int, ...] = (16, 32, 64, 128, 256)
#: Temperature of the shipped loss in the bias curves: candidates are scaled so that
#: ``<query, candidate> / tau`` is the logit, and a wrong use of tau (e.g. log Q / tau)
#: moves the curves.
TEMPERATURE = 0.5
#: Replicates per autograd pass (bounds memory: 1000 x 50 rows x 51 columns).
CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Variant:
    """A sampled-softmax variant: which Q, whether the positive is corrected, hits.

    Attributes
    ----------
    label : str
        Human-readable name.
    correction : {"expected_count", "inclusion_probability", "share", "none"}
        The negatives' Q, in the words of :mod:`recsys.negatives`: the expected count
        ``m q`` (multiset of negatives), the inclusion probability ``1 - (1 - q)^m``
        (de-duplicated set), no correction, or -- a control, not a builder option --
        the plain item share ``q`` on the multiset.
    correct_positive : bool
        Whether the positive's logit is corrected with the same Q.
    remove_accidental_hits : bool
        Whether negatives equal to the positive are masked.
    """

    label: str
    correction: VariantCorrection
    correct_positive: bool
    remove_accidental_hits: bool

    @property
    def dedupe(self) -> bool:
        """Whether the negatives are de-duplicated (inclusion probabilities go with a set)."""
        return self.correction == "inclusion_probability"

    @property
    def builder_correction(self) -> str:
        """The ``correction`` of the shipped builder (the share control builds a multiset)."""
        return "none" if self.correction == "share" else self.correction

    def log_q(self, sampler_probs: FloatArray, m: int) -> tuple[torch.Tensor | None, str]:
        """Return ``(log Q (N,) or None, kind)`` for ``m`` draws from ``sampler_probs``.

        Q comes from :func:`recsys.expected_count` / :func:`recsys.inclusion_probability`
        (``batch_size=m`` i.i.d. draws); ``kind`` is the loss's ``correction``. The share
        control passes ``log q`` by hand, as a probability.
        """
        q = torch.as_tensor(np.asarray(sampler_probs, dtype=np.float64))
        if self.correction == "expected_count":
            return torch.log(expected_count(q, m)), "expected_count"
        if self.correction == "inclusion_probability":
            return torch.log(inclusion_probability(q, m)), "inclusion_probability"
        if self.correction == "share":
            return torch.log(q), "inclusion_probability"
        return None, "none"


VARIANTS: dict[str, Variant] = {
    "logq-all-hits-kept": Variant("logQ on every logit, hits kept", "expected_count", True, False),
    "pos0-masked-count": Variant(
        "positive at 0, hits masked, expected counts", "expected_count", False, True
    ),
    "pos0-masked-inclusion": Variant(
        "positive at 0, hits masked, inclusion prob., de-duplicated",
        "inclusion_probability",
        False,
        True,
    ),
    "uncorrected": Variant("uncorrected (hits kept)", "none", False, False),
    "share": Variant("positive at 0, negatives corrected by item share", "share", False, True),
    "logq-all-hits-masked": Variant(
        "logQ on every logit, hits masked", "expected_count", True, True
    ),
}


# --------------------------------------------------------------------------- shipped path


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, then restore the setting.

    The tensors of these checks are small (thousands to a million entries); on a busy
    machine torch's thread pool then spends more time waiting than computing (measured
    here: a training step 16x slower with 2 threads than with 1). One thread also
    fixes the order of every float64 reduction.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@single_thread()
def shipped_expected_gradients(
    logits: FloatArray,
    probs: FloatArray,
    sampler_probs: FloatArray,
    variant: Variant,
    counts: npt.NDArray[np.int64],
    m: int,
) -> FloatArray:
    """Return ``sum_y pi_y grad_s loss(y, S_r)`` of the shipped loss for each set ``S_r``.

    Parameters
    ----------
    logits : ndarray
        ``(N,)`` logits ``s_y`` of one context.
    probs : ndarray
        ``(N,)`` law of the positive, ``pi(y | x)``.
    sampler_probs : ndarray
        ``(N,)`` law q of each negative draw.
    variant : Variant
        Which Q, positive correction and hit removal.
    counts : ndarray
        ``(R, N)`` multiplicity of each item in each of ``R`` negative sets of ``m`` draws.
    m : int
        Number of draws per set (Q's ``batch_size``).

    Returns
    -------
    ndarray
        ``(R, N)`` gradients w.r.t. the logits, by autograd through
        :func:`recsys.sampled_softmax_loss` (see the module notes for the layout).
    """
    n = probs.shape[0]
    ones = torch.ones(n, 1, dtype=torch.float64)
    ids = torch.arange(n)
    layout = sampled_softmax_candidates(
        ids,
        ones,
        ids,
        ones,
        sampler_probs=torch.as_tensor(np.asarray(sampler_probs, dtype=np.float64)),
        correction="none",
        remove_accidental_hits=variant.remove_accidental_hits,
    )  # rows: every positive y; columns: the N positives, then each item once
    compact, cols, base_mask = _row_columns(layout, n)  # (N, C') each row's columns
    lq, kind = variant.log_q(sampler_probs, m)
    log_q = None if lq is None else lq[layout.candidate_ids][cols]  # (N, C')
    weights = np.asarray(counts, dtype=np.float64)
    if variant.dedupe:
        weights = (weights > 0).astype(np.float64)  # a de-duplicated set: one copy each
    pi = torch.as_tensor(np.asarray(probs, dtype=np.float64))
    s0 = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    ids_of = layout.candidate_ids  # (2N,) item of each column
    labels = torch.zeros(n, dtype=torch.int64) if compact else layout.labels  # (N,)
    c = cols.shape[1]
    out = np.empty(weights.shape, dtype=np.float64)
    # the first few sets go through the loss's input checks, the rest skip them
    bounds = [0, *range(min(16, weights.shape[0]), weights.shape[0], CHUNK), weights.shape[0]]
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        w = torch.as_tensor(weights[start:stop])  # (r, N)
        r = w.shape[0]
        s = s0.expand(r, n).clone().requires_grad_(True)  # (r, N) one leaf per set
        w_cols = w[:, ids_of[n:]]  # (r, N) multiplicity of each negative column
        neg = s[:, ids_of[n:]] + torch.log(w_cols.clamp(min=1.0))  # (r, N), k copies: + log k
        if compact:  # row y: [own positive, the N negatives]
            z = torch.cat(
                [s[:, ids_of[layout.labels]].unsqueeze(2), neg.unsqueeze(1).expand(r, n, n)], 2
            )
            absent = torch.cat([torch.zeros(r, 1, dtype=torch.bool), w_cols == 0], 1)  # (r, C')
            mask = base_mask.unsqueeze(0) | absent.unsqueeze(1)  # (r, N, C')
        else:  # every column of the builder's layout
            z = torch.cat([s[:, ids_of[:n]], neg], 1).unsqueeze(1).expand(r, n, c)
            absent = torch.cat([torch.zeros(r, n, dtype=torch.bool), w_cols == 0], 1)
            mask = base_mask.unsqueeze(0) | absent.unsqueeze(1)  # (r, N, 2N)
        loss = sampled_softmax_loss(
            torch.ones(r * n, 1, dtype=torch.float64),
            (TEMPERATURE * z).reshape(r * n, c, 1),  # per-row candidates: <1, tau z> / tau = z
            labels.repeat(r),  # (rN,)
            None if log_q is None else log_q.expand(r, n, c).reshape(r * n, c),
            mask=mask.reshape(r * n, c),  # absent items masked
            temperature=TEMPERATURE,
            correct_positive=variant.correct_positive,
            correction=kind,
            reduction="none",
            validate=start == 0,
        )  # (rN,)
        (loss.view(r, n) * pi).sum().backward()
        out[start:stop] = s.grad.numpy()
    return out


def _row_columns(layout: Any, n: int) -> tuple[bool, torch.Tensor, torch.Tensor]:
    """Columns of the builder's layout each row needs, and the builder's mask on them.

    Row y uses its own positive and the ``N`` negative columns; the builder masks the
    other rows' positives, which are then dropped (``compact``, ``(N, 1 + N)``). If it
    does not mask them all, every column is kept (``(N, 2N)``), so nothing the
    builder does is hidden.
    """
    c = layout.candidate_ids.shape[0]
    mask = torch.zeros(n, c, dtype=torch.bool) if layout.mask is None else layout.mask
    own = layout.labels.unsqueeze(1)  # (N, 1)
    others = torch.ones(n, n, dtype=torch.bool).scatter(1, own, False)  # (N, N)
    compact = bool(mask[:, :n][others].all())
    if compact:
        cols = torch.cat([own, torch.arange(n, c).expand(n, c - n)], dim=1)  # (N, 1 + N)
    else:
        cols = torch.arange(c).expand(n, c)  # (N, 2N)
    return compact, cols, mask.gather(1, cols)


# --------------------------------------------------------------------------- statistics


def power_law_slope(m: FloatArray, value: FloatArray, se: FloatArray) -> tuple[float, float]:
    """Fit ``value = A (m / m_0)^k`` by weighted least squares; return ``(k, se(k))``.

    The fit uses the Monte Carlo s.e. of each point (``absolute_sigma``), so ``se(k)``
    is the Monte Carlo error of the log-log slope. Returns NaNs if the fit fails.
    """
    m = np.asarray(m, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    se = np.maximum(np.asarray(se, dtype=np.float64), 1e-300)

    def model(x, amplitude, k):
        return amplitude * (x / m[0]) ** k

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            popt, pcov = optimize.curve_fit(
                model,
                m,
                value,
                p0=[value[0], -1.0],
                sigma=se,
                absolute_sigma=True,
                maxfev=10_000,
            )
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return math.nan, math.nan
    k_se = float(np.sqrt(pcov[1, 1])) if np.isfinite(pcov[1, 1]) else math.nan
    return float(popt[1]), k_se


def _problem() -> sim.SoftmaxProblem:
    return sim.make_softmax_problem(**GRADIENT_PROBLEM)


def _scenario(**kw) -> dict[str, Any]:
    problem = {k: v for k, v in GRADIENT_PROBLEM.items() if k != "rng"}
    return {"problem": problem, "problem_seed": GRADIENT_PROBLEM["rng"], **kw}


def bias_curve(
    logits: FloatArray,
    probs: FloatArray,
    sampler_probs: FloatArray,
    variant: Variant,
    ms: tuple[int, ...],
    n_replicates: int,
    ss: np.random.SeedSequence,
    direction: FloatArray | None = None,
    reference: str = "full",
) -> dict[str, Any]:
    """Bias of a variant's expected gradient along one direction, for each m.

    Negatives are ``m`` draws with replacement from ``sampler_probs``. The bias vector
    is ``mean_r g(S_r) - (softmax(s) - pi)``, ``g`` from
    :func:`shipped_expected_gradients`; it is projected on ``direction`` (unit), by
    default the bias direction of an independent pilot run at ``ms[0]``. With
    ``reference="zero"`` the expected gradient itself is measured (fixed-point test).

    Returns
    -------
    dict
        ``m``, ``bias`` (projection per m), ``se`` (its Monte Carlo s.e.), ``norm``
        (norm of the bias vector per m), ``direction``.
    """
    # the truth is sim's exact full-softmax gradient (looked up at call time)
    g_full = expected_full_gradient(logits, probs) if reference == "full" else 0.0  # (N,)
    n = probs.shape[0]
    pilot_ss, *m_ss = child_sequences(ss, len(ms) + 1)

    def grads(m: int, seed: np.random.SeedSequence) -> FloatArray:
        ids = sim.UnigramSampler(sampler_probs, m).sample(n_replicates, rng=seed)  # (R, m)
        counts = sim.counts_per_set(ids, n)  # (R, N)
        return shipped_expected_gradients(logits, probs, sampler_probs, variant, counts, m)

    if direction is None:
        pilot = grads(ms[0], pilot_ss).mean(axis=0) - g_full
        direction = pilot / np.linalg.norm(pilot)
    bias, se, norm = [], [], []
    for m, child in zip(ms, m_ss, strict=True):
        g = grads(m, child) - g_full  # (R, N)
        proj = g @ direction  # (R,)
        bias.append(float(proj.mean()))
        se.append(float(proj.std(ddof=1) / math.sqrt(n_replicates)))
        norm.append(float(np.linalg.norm(g.mean(axis=0))))
    return {"m": list(ms), "bias": bias, "se": se, "norm": norm, "direction": direction.tolist()}


#: Margin of the O(1/m) claims: m |bias(m)| may reach this multiple of its value at
#: the smallest m (the 1/m law holds asymptotically; higher-order terms and the
#: projection's noise move the scaled bias by less than this at m <= 256).
SCALED_BIAS_MARGIN = 2.0


def scaled_bias_growth(curve: dict[str, Any]) -> float:
    """Largest growth of the scaled bias ``m |bias(m)|`` over the smallest m, in s.e.

    ``T = max_{m > m0} [(m/m0) |b(m)| - c |b(m0)|] / sqrt(((m/m0) se_m)^2 + (c se_0)^2)``
    with ``c`` = :data:`SCALED_BIAS_MARGIN`. A bias that falls as 1/m (or faster)
    keeps ``T`` below z; a bias that falls slower than 1/m, stays flat or grows (no
    or a wrong correction) drives it far above, and at every m it is the bias
    *magnitude* that is judged, not a fitted slope.
    """
    m = np.asarray(curve["m"], dtype=np.float64)
    b = np.abs(np.asarray(curve["bias"], dtype=np.float64))
    se = np.asarray(curve["se"], dtype=np.float64)
    c, scale = SCALED_BIAS_MARGIN, m[1:] / m[0]
    growth = (scale * b[1:] - c * b[0]) / np.hypot(scale * se[1:], c * se[0])
    return float(np.max(growth))


def slope_cell(
    ctx: RunContext,
    name: str,
    claim: str,
    curve: dict[str, Any],
    control_label: str,
    control: dict[str, Any],
    scenario: dict[str, Any],
    n_replicates: int,
    seed: int,
    rule: str = "equal",
) -> CheckResult:
    """Build a cell on the bias magnitude at each m (:func:`scaled_bias_growth`).

    ``rule`` "equal" / "at_most" (the bias falls as 1/m or faster): growth <= z;
    "grows" / "persists" (an inconsistent variant): growth > z. The control is judged
    by the same claim. The log-log slope is kept in ``extra`` for the plots.
    """
    k, k_se = power_law_slope(np.array(curve["m"]), np.array(curve["bias"]), np.array(curve["se"]))
    ck, ck_se = power_law_slope(
        np.array(control["m"]), np.array(control["bias"]), np.array(control["se"])
    )
    return CheckResult(
        name=name,
        claim=claim,
        scenario=scenario,
        figure=scaled_bias_growth(curve),
        expected=0.0,
        tolerance=float(ctx.z),
        rule="at_most" if rule in ("equal", "at_most") else "above",
        n_replicates=n_replicates,
        seed=seed,
        negative_control=NegativeControl(control_label, scaled_bias_growth(control)),
        extra={
            "curve": curve,
            "control": control,
            "slope": k,
            "slope_se": k_se,
            "control_slope": ck,
            "units": "Monte Carlo s.e. of the scaled-bias growth",
            "control_slope_se": ck_se,
            "rule": rule,
            "z": ctx.z,
        },
    )


def zero_cell(ctx, name, claim, curve, control_label, control, scenario, r, seed):
    """Cell: the projection is 0 at every m (figure: max |bias|/se over m)."""
    stat = max(abs(b) / s for b, s in zip(curve["bias"], curve["se"], strict=True))
    ctrl = max(abs(b) / s for b, s in zip(control["bias"], control["se"], strict=True))
    return CheckResult(
        name=name,
        claim=claim,
        scenario=scenario,
        figure=float(stat),
        expected=0.0,
        tolerance=float(ctx.z),
        rule="at_most",
        n_replicates=r,
        seed=seed,
        negative_control=NegativeControl(control_label, float(ctrl)),
        extra={"curve": curve, "control": control, "units": "Monte Carlo s.e.", "z": ctx.z},
    )


def plot_bias_curves(results: list[CheckResult]):
    """Log-log |bias| vs m of each cell's variant and its control, with ±1 s.e. bars."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for res in results:
        for key, style in (("curve", "-o"), ("control", ":x")):
            c = res.extra.get(key)
            if not c:
                continue
            label = res.name.split("/")[-1] + ("" if key == "curve" else " (control)")
            ax.errorbar(
                c["m"], np.abs(c["bias"]), yerr=c["se"], fmt=style, ms=3, capsize=2, label=label
            )
    if results and results[0].extra.get("curve"):
        m = np.array(results[0].extra["curve"]["m"], dtype=float)
        ref = abs(results[0].extra["curve"]["bias"][0]) or 1e-3
        ax.plot(m, ref * m[0] / m, "k--", lw=0.8, label="slope -1")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of negatives m")
    ax.set_ylabel("|bias of the expected gradient| (projection)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig
