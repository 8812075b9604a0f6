"""Monte Carlo checks of the sampled-softmax / in-batch / mixed-negative losses (docs/theory.md §4).

All checks run on synthetic problems of :mod:`sim.softmax` where the full softmax is
computable, and all run the shipped code: expected gradients are exact over the
positive (every possible positive, weighted by the true conditional pi) and simulated
over the negative sets, by autograd through :func:`recsys.sampled_softmax_loss` on the
layout of :func:`recsys.sampled_softmax_candidates` with Q from
:func:`recsys.expected_count` / :func:`recsys.inclusion_probability`; the truth is
:func:`sim.expected_full_softmax_gradient`. The bias-curve machinery lives in
:mod:`validation.retrieval_bias`; this module registers the checks.

Registered checks (group ``"retrieval"``):

``retrieval-gradient-bias``
    At a random theta the bias of the corrected estimators falls as O(1/m) in the
    number of negatives m (the bias magnitude judged at every m); the uncorrected one
    stays flat.
``retrieval-fixed-point``
    At the true logits: logQ on every logit with accidental hits kept has zero expected
    gradient for every m; the uncorrected loss is stationary at log pi - log q
    (it demotes popular items); the positive at 0 with hits masked and expected counts
    (multiset) or inclusion probabilities (de-duplicated set) has bias O(1/m).
``retrieval-biased-variants``
    Two variants that must show bias growing with m: negatives corrected by the plain
    item share (not the expected count), and the positive corrected while accidental
    hits are removed.
``retrieval-mixed-inclusion``
    Mixed negatives: the Horvitz-Thompson count sum_{y in set} 1/Q*(y) over simulated
    candidate sets has mean N exactly when Q* = :func:`recsys.inclusion_probability`.
``retrieval-streaming-frequency``
    The streaming estimator's gap tracks 1/Q_B (per-batch inclusion), not 1/(B p);
    collisions with few buckets and the multi-hash remedy.
``retrieval-training``
    Free logits trained with each loss on a popularity-skewed problem: the corrected
    losses learn the true conditional (no popularity slope, KL close to the full
    softmax's), the uncorrected in-batch loss demotes popular items.

Tolerances are ``ctx.z`` Monte Carlo standard errors (z = 4 by default: 6.3e-5 per
cell, so the report's family-wise false-failure rate stays below 1 %).

References
----------
.. [1] Y. Bengio, J.-S. Senecal, "Adaptive Importance Sampling to Accelerate Training of
   a Neural Probabilistic Language Model", IEEE TNN 19(4), 2008.
.. [2] S. Jean, K. Cho, R. Memisevic, Y. Bengio, "On Using Very Large Target Vocabulary
   for Neural Machine Translation", ACL 2015.
.. [3] X. Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
   Recommendations", RecSys 2019.
.. [4] J. Yang et al., "Mixed Negative Sampling for Learning Two-tower Neural Networks
   in Recommendations", WWW 2020 Companion.
"""

from __future__ import annotations

import numpy as np

from sim._seed import child_sequences
from validation.core import CheckResult, RunContext, register
from validation.retrieval_bias import (
    GRADIENT_PROBLEM,
    M_GRID,
    SCALED_BIAS_MARGIN,
    TEMPERATURE,
    VARIANTS,
    Variant,
    _problem,
    _scenario,
    bias_curve,
    plot_bias_curves,
    power_law_slope,
    scaled_bias_growth,
    shipped_expected_gradients,
    slope_cell,
    zero_cell,
)

# Replicates (negative sets per m) of the bias curves, quick / full profile. Each set
# costs one row per possible positive through the shipped loss (O(N^2), N = 50).
_R_CURVES = (250, 2500)
_R_BIASED = (200, 2000)


# --------------------------------------------------------------------------- check 1


@register(
    "retrieval-gradient-bias",
    claim=(
        "At a random theta (true logits + N(0, 0.25) noise) on a 50-item Zipf problem, "
        "the bias of the expected gradient of the shipped sampled-softmax loss (exact over "
        "the positive, simulated over m negatives drawn from the item marginal) falls as "
        "O(1/m) for the "
        "logQ-corrected variants: "
        "judged at every m, the scaled bias m |bias(m)| stays within 2x its value at "
        "m = 16 (+ z Monte Carlo s.e.) for the multisets (logQ on every logit with hits "
        "kept; positive at 0, hits masked, expected counts) and for the de-duplicated set "
        "with inclusion probabilities (which falls faster: it saturates once every item "
        "is included); the uncorrected gradient's bias stays flat (control)."
    ),
    reference="Bengio & Senecal 2008; Jean et al. 2015 eq. 11; docs/theory.md §4.",
    group="retrieval",
    plot=plot_bias_curves,
)
def check_gradient_bias(ctx: RunContext) -> list[CheckResult]:
    """Bias vs m at a random theta (see the registered claim)."""
    problem = _problem()
    pi, eta = problem.conditional[0], problem.marginal
    theta_rng = np.random.default_rng(np.random.SeedSequence(7))
    logits = np.log(pi) + 0.5 * theta_rng.normal(size=problem.n_items)  # a random theta
    r = ctx.replicates(*_R_CURVES)
    root = ctx.seed_sequence("retrieval-gradient-bias")
    ss = dict(zip(VARIANTS, child_sequences(root, len(VARIANTS)), strict=True))
    control = bias_curve(logits, pi, eta, VARIANTS["uncorrected"], M_GRID, r, ss["uncorrected"])
    out = []
    for key, rule in (
        ("logq-all-hits-kept", "equal"),
        ("pos0-masked-count", "equal"),
        ("pos0-masked-inclusion", "at_most"),
    ):
        curve = bias_curve(logits, pi, eta, VARIANTS[key], M_GRID, r, ss[key])
        out.append(
            slope_cell(
                ctx,
                f"retrieval-gradient-bias/{key}",
                f"{VARIANTS[key].label}: bias falls as 1/m "
                + ("" if rule == "equal" else "or faster ")
                + f"at every m: m |bias(m)| <= {SCALED_BIAS_MARGIN:g} x its value at "
                f"m = {M_GRID[0]} + {ctx.z:g} s.e.",
                curve,
                VARIANTS["uncorrected"].label,
                control,
                _scenario(
                    theta="log pi + 0.5 N(0, 1), seed 7",
                    context=0,
                    sampler="unigram eta",
                    m=list(M_GRID),
                    variant=VARIANTS[key].label,
                ),
                r,
                int(root.entropy),
                rule,
            )
        )
    return out


# --------------------------------------------------------------------------- check 2


@register(
    "retrieval-fixed-point",
    claim=(
        "At the true logits (50 items, negatives from the item marginal eta != pi(.|x)): "
        "(a) logQ on every logit, accidental hits kept, has zero expected gradient for "
        "every m (|projection on the popularity direction| <= z s.e. at each m; control: "
        "uncorrected); (b) the uncorrected loss has zero expected gradient at "
        "log pi - log eta for every m, i.e. converges there and demotes popular items "
        "(control: uncorrected at the truth); (c) positive at 0 with hits masked and "
        "expected counts has a bias falling as 1/m at every m, (d) so does (or faster) the "
        "de-duplicated set with inclusion probabilities (controls: item-share Q, and logQ "
        "on the positive with hits masked)."
    ),
    reference="Bengio & Senecal 2008; Yi et al. 2019 eq. 3; docs/theory.md §4.",
    group="retrieval",
    plot=plot_bias_curves,
)
def check_fixed_point(ctx: RunContext) -> list[CheckResult]:
    """Check the expected gradients at the true logits (see the registered claim)."""
    problem = _problem()
    pi, eta = problem.conditional[0], problem.marginal
    truth = np.log(pi)
    pop = np.log(eta) - np.log(eta).mean()
    pop /= np.linalg.norm(pop)  # unit popularity direction
    r = ctx.replicates(*_R_CURVES)
    root = ctx.seed_sequence("retrieval-fixed-point")
    ss = child_sequences(root, 7)
    seed = int(root.entropy)
    unc_truth = bias_curve(truth, pi, eta, VARIANTS["uncorrected"], M_GRID, r, ss[0], pop)
    out = [
        zero_cell(
            ctx,
            "retrieval-fixed-point/logq-all-hits-kept",
            f"logQ on every logit, hits kept: E[gradient] = 0 at the truth for every m "
            f"(max |bias|/s.e. <= {ctx.z:g})",
            bias_curve(truth, pi, eta, VARIANTS["logq-all-hits-kept"], M_GRID, r, ss[1], pop),
            "uncorrected at the truth",
            unc_truth,
            _scenario(logits="truth", m=list(M_GRID), direction="log eta (centred)"),
            r,
            seed,
        ),
        zero_cell(
            ctx,
            "retrieval-fixed-point/uncorrected-at-log-pi-minus-log-q",
            "uncorrected: E[gradient] = 0 at logits log pi - log eta for every m, so its "
            "fixed point under-scores popular items by log eta",
            bias_curve(
                truth - np.log(eta),
                pi,
                eta,
                VARIANTS["uncorrected"],
                M_GRID,
                r,
                ss[2],
                pop,
                reference="zero",
            ),
            "uncorrected at the truth (biased toward demoting popular items)",
            unc_truth,
            _scenario(logits="log pi - log eta", m=list(M_GRID)),
            r,
            seed,
        ),
    ]
    # the sign: at the truth the uncorrected gradient points up along log-popularity,
    # so gradient descent lowers popular items' logits
    out[1].extra["demotes_popular"] = bool(min(unc_truth["bias"]) > 0)
    share = bias_curve(truth, pi, eta, VARIANTS["share"], M_GRID, r, ss[3])
    for key, rule, control_key, s in (
        ("pos0-masked-count", "equal", "share", ss[4]),
        ("pos0-masked-inclusion", "at_most", "logq-all-hits-masked", ss[5]),
    ):
        control = (
            share
            if control_key == "share"
            else bias_curve(truth, pi, eta, VARIANTS[control_key], M_GRID, r, ss[6])
        )
        out.append(
            slope_cell(
                ctx,
                f"retrieval-fixed-point/{key}",
                f"{VARIANTS[key].label}: bias at the truth falls as 1/m "
                + ("" if rule == "equal" else "or faster ")
                + f"at every m (m |bias| <= {SCALED_BIAS_MARGIN:g} x its value at "
                f"m = {M_GRID[0]} + {ctx.z:g} s.e.)",
                bias_curve(truth, pi, eta, VARIANTS[key], M_GRID, r, s),
                VARIANTS[control_key].label,
                control,
                _scenario(logits="truth", m=list(M_GRID), variant=VARIANTS[key].label),
                r,
                seed,
                rule,
            )
        )
    return out


# --------------------------------------------------------------------------- check 3


@register(
    "retrieval-biased-variants",
    claim=(
        "Two plausible variants are inconsistent at the true logits: negatives corrected "
        "by the plain item share q (not the expected count m q) with the positive at 0 "
        "keep a bias that does not fall as 1/m, and logQ on the positive while accidental "
        "hits are removed has a bias that grows with m (both: m |bias(m)| exceeds 2x its "
        "value at m = 16 by more than z s.e.). Control: the consistent "
        "positive-at-0 / expected-count variant, whose bias falls as 1/m (must not pass)."
    ),
    reference="docs/theory.md §4 (units of Q, accidental hits).",
    group="retrieval",
    plot=plot_bias_curves,
)
def check_biased_variants(ctx: RunContext) -> list[CheckResult]:
    """Variants whose bias grows with m (see the registered claim)."""
    problem = _problem()
    pi, eta = problem.conditional[0], problem.marginal
    truth = np.log(pi)
    r = ctx.replicates(*_R_BIASED)
    root = ctx.seed_sequence("retrieval-biased-variants")
    s_ctrl, s_share, s_hits = child_sequences(root, 3)
    control = bias_curve(truth, pi, eta, VARIANTS["pos0-masked-count"], M_GRID, r, s_ctrl)
    out = []
    for key, s, rule, text in (
        (
            "share",
            s_share,
            "persists",
            f"bias does not vanish as O(1/m): m |bias(m)| exceeds {SCALED_BIAS_MARGIN:g} x "
            f"its value at m = {M_GRID[0]} by more than {ctx.z:g} s.e.",
        ),
        (
            "logq-all-hits-masked",
            s_hits,
            "grows",
            f"bias does not fall with m: m |bias(m)| exceeds {SCALED_BIAS_MARGIN:g} x its "
            f"value at m = {M_GRID[0]} by more than {ctx.z:g} s.e.",
        ),
    ):
        out.append(
            slope_cell(
                ctx,
                f"retrieval-biased-variants/{key}",
                f"{VARIANTS[key].label}: {text}",
                bias_curve(truth, pi, eta, VARIANTS[key], M_GRID, r, s),
                VARIANTS["pos0-masked-count"].label,
                control,
                _scenario(logits="truth", m=list(M_GRID), variant=VARIANTS[key].label),
                r,
                int(root.entropy),
                rule,
            )
        )
    return out


# The inclusion, streaming and training checks live in their own modules; their names
# stay importable from here.
from validation.retrieval_frequency import (  # noqa: E402
    MIXED_SCENARIO,
    STREAM_SCENARIO,
    check_mixed_inclusion,
    check_streaming_frequency,
    plot_inclusion,
    plot_streaming,
)
from validation.retrieval_training import (  # noqa: E402
    TRAIN_BUILDERS,
    TRAIN_METHODS,
    TRAIN_SCENARIO,
    TRAIN_SMALL_BIAS,
    batch_candidates,
    check_training,
    plot_training,
    train_free_logits,
    train_methods,
)

__all__ = [
    "GRADIENT_PROBLEM",
    "M_GRID",
    "MIXED_SCENARIO",
    "SCALED_BIAS_MARGIN",
    "STREAM_SCENARIO",
    "TEMPERATURE",
    "TRAIN_BUILDERS",
    "TRAIN_METHODS",
    "TRAIN_SCENARIO",
    "TRAIN_SMALL_BIAS",
    "VARIANTS",
    "Variant",
    "batch_candidates",
    "bias_curve",
    "check_biased_variants",
    "check_fixed_point",
    "check_gradient_bias",
    "check_mixed_inclusion",
    "check_streaming_frequency",
    "check_training",
    "plot_bias_curves",
    "plot_inclusion",
    "plot_streaming",
    "plot_training",
    "power_law_slope",
    "scaled_bias_growth",
    "shipped_expected_gradients",
    "train_free_logits",
    "train_methods",
]
