"""The mutant catalogue: realistic wrong implementations of the shipped public functions.

Each :class:`Mutant` names one public function (or method) of ``estimators``,
``recsys`` or ``sim``, a plausible mistake (a dropped covariance term, a ``z`` for a
``t``, a flipped sign, the wrong exponent, ...) and the checks that exercise it; the
harness in :mod:`validation.mutants` installs it and runs those checks. docs/theory.md
§6 lists the catalogue.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Wrapper = Callable[[Any], Callable[..., Any]]


@dataclass(frozen=True, slots=True)
class Mutant:
    """A named wrong implementation of one public function.

    Attributes
    ----------
    name : str
        Kebab-case name (``--only NAME``).
    target : str
        ``"package.submodule:function"`` or ``"package.submodule:Class.method"``.
    description : str
        What is wrong, in one sentence (the mistake a developer could make).
    make : callable
        ``make(original) -> replacement``.
    checks : tuple of str
        Check selectors (as ``run --only``) that exercise the function.
    """

    name: str
    target: str
    description: str
    make: Wrapper
    checks: tuple[str, ...]


def _with_kwargs(**forced: Any) -> Wrapper:
    """Call the original with some keyword arguments overridden."""

    def make(orig):
        def mutant(*args, **kwargs):
            return orig(*args, **{**kwargs, **forced})

        return mutant

    return make


def _map_kwarg(name: str, mapping: dict[Any, Any]) -> Wrapper:
    """Call the original with one keyword argument's value mapped (e.g. "fieller" -> "delta")."""

    def make(orig):
        def mutant(*args, **kwargs):
            if kwargs.get(name) in mapping:
                kwargs = {**kwargs, name: mapping[kwargs[name]]}
            return orig(*args, **kwargs)

        return mutant

    return make


def _scale_arg(index: int, name: str, factor: float, as_int: bool = False) -> Wrapper:
    """Call the original with one argument (positional ``index`` or keyword ``name``) scaled."""

    def scale(value):
        out = value * factor
        return max(1, int(round(out))) if as_int else out

    def make(orig):
        def mutant(*args, **kwargs):
            if name in kwargs:
                kwargs = {**kwargs, name: scale(kwargs[name])}
            elif len(args) > index:
                args = (*args[:index], scale(args[index]), *args[index + 1 :])
            return orig(*args, **kwargs)

        return mutant

    return make


def _scale_result(factor: float) -> Wrapper:
    """Return the original's (array) result times ``factor``."""

    def make(orig):
        def mutant(*args, **kwargs):
            return orig(*args, **kwargs) * factor

        return mutant

    return make


def _scale_sample_size(factor: float) -> Wrapper:
    def make(orig):
        def mutant(*args, **kwargs):
            res = orig(*args, **kwargs)
            n_c = max(2, int(round(res.n_control * factor)))
            n_t = max(2, int(round(res.n_treatment * factor)))
            return dataclasses.replace(
                res, n_control=n_c, n_treatment=n_t, n_exact=res.n_exact * factor
            )

        return mutant

    return make


def _scale_fields(fields: dict[str, float], when: Callable[[dict[str, Any]], bool]) -> Wrapper:
    """Return the original's result with some fields scaled, when ``when(kwargs)``."""

    def make(orig):
        def mutant(*args, **kwargs):
            res = orig(*args, **kwargs)
            if not when(kwargs):
                return res
            change = {k: np.asarray(getattr(res, k)) * f for k, f in fields.items()}
            return dataclasses.replace(res, **change)

        return mutant

    return make


def _widen_ci(factor: float, when: Callable[[dict[str, Any]], bool]) -> Wrapper:
    """Return the original with its interval's half-width (and s.e.) times ``factor``."""

    def make(orig):
        def mutant(*args, **kwargs):
            res = orig(*args, **kwargs)
            if not when(kwargs):
                return res
            mid = (np.asarray(res.ci_low) + np.asarray(res.ci_high)) / 2.0
            half = (np.asarray(res.ci_high) - np.asarray(res.ci_low)) / 2.0 * factor
            return dataclasses.replace(
                res,
                ci_low=mid - half,
                ci_high=mid + half,
                std_error=np.asarray(res.std_error) * factor,
            )

        return mutant

    return make


def _delta_bc_sign_flipped(orig):
    """delta-bc with the bias correction subtracted instead of added."""

    def mutant(*args, **kwargs):
        res = orig(*args, **kwargs)
        if kwargs.get("ci_method") != "delta-bc":
            return res
        plain = orig(*args, **{**kwargs, "ci_method": "delta"})
        shift = 2.0 * (np.asarray(plain.estimate) - np.asarray(res.estimate))
        return dataclasses.replace(
            res,
            estimate=np.asarray(res.estimate) + shift,
            ci_low=np.asarray(res.ci_low) + shift,
            ci_high=np.asarray(res.ci_high) + shift,
        )

    return mutant


def _cuped_theta_halved(orig):
    """CUPED with theta halved: the estimate moves half-way back to the unadjusted one."""

    def mutant(moments_t, moments_c, *args, **kwargs):
        from estimators.ratio import ratio_test_from_moments

        res = orig(moments_t, moments_c, *args, **kwargs)
        plain = ratio_test_from_moments(
            moments_t, moments_c, ddof=kwargs.get("ddof", 1), degenerate="nan"
        )
        estimate = 0.5 * (np.asarray(res.estimate) + np.asarray(plain.estimate))
        shift = estimate - np.asarray(res.estimate)
        return dataclasses.replace(
            res,
            estimate=estimate,
            ci_low=np.asarray(res.ci_low) + shift,
            ci_high=np.asarray(res.ci_high) + shift,
        )

    return mutant


def _covariance_dropped(orig):
    """Delta method without the numerator-denominator covariance term (sum_vm -> indep.)."""

    def mutant(moments_t, moments_c, *args, **kwargs):
        def drop(m):
            n = np.asarray(m.n, dtype=np.float64)
            return dataclasses.replace(m, sum_vm=np.asarray(m.sum_v) * np.asarray(m.sum_m) / n)

        return orig(drop(moments_t), drop(moments_c), *args, **kwargs)

    return mutant


def _pvalue_halved(orig):
    """Two-sided p-value not doubled (one tail reported)."""
    return _scale_fields(
        {"pvalue": 0.5}, lambda kw: kw.get("alternative", "two-sided") == "two-sided"
    )(orig)


def _inclusion_as_count(orig):
    """Return an expected count where an inclusion probability belongs."""

    def mutant(*args, **kwargs):
        from recsys.negatives import expected_count

        return expected_count(*args, **kwargs)

    return mutant


def _logq_added(orig):
    """Add log Q to the logits instead of subtracting it (a sign slip inside the loss)."""
    # the slip is in the arithmetic, not in the input: skip the unit check of Q (where
    # the function has one; the fused training loss has none)
    no_check = {"validate": False} if "validate" in inspect.signature(orig).parameters else {}

    def mutant(*args, **kwargs):
        args = list(args)
        if len(args) > 3 and args[3] is not None:
            args[3] = -args[3]
        elif kwargs.get("log_q") is not None:
            kwargs = {**kwargs, "log_q": -kwargs["log_q"]}
        return orig(*args, **{**kwargs, **no_check})

    return mutant


def _logq_over_temperature(orig):
    """LogQ divided by the temperature along with the logits."""

    def mutant(*args, **kwargs):
        tau = kwargs.get("temperature", 1.0)
        args = list(args)
        if len(args) > 3 and args[3] is not None:
            args[3] = args[3] / tau
        elif kwargs.get("log_q") is not None:
            kwargs = {**kwargs, "log_q": kwargs["log_q"] / tau}
        return orig(*args, **kwargs)

    return mutant


def _mask_dropped(orig):
    """Candidate builder that returns no mask (duplicates / accidental hits unmasked)."""

    def mutant(*args, **kwargs):
        cs = orig(*args, **kwargs)
        if cs.mask is None:
            return cs
        n_rows = cs.labels.shape[0]
        import torch

        keep = torch.zeros_like(cs.mask)
        # other rows' positives stay hidden (they are not negatives of this row)
        cols = torch.arange(cs.mask.shape[1])
        keep[:, :n_rows] = cs.mask[:, :n_rows] & (cols[None, :n_rows] != cs.labels[:, None])
        return dataclasses.replace(cs, mask=keep)

    return mutant


def _inbatch_mask_dropped(orig):
    """Return in-batch candidates with no mask: duplicates of the positive stay negatives."""

    def mutant(*args, **kwargs):
        return dataclasses.replace(orig(*args, **kwargs), mask=None)

    return mutant


def _set_arg(index: int, name: str, value: Any) -> Wrapper:
    """Call the original with one argument (positional or keyword) set to ``value``."""

    def make(orig):
        def mutant(*args, **kwargs):
            if len(args) > index:
                args = (*args[:index], value, *args[index + 1 :])
            else:
                kwargs = {**kwargs, name: value}
            return orig(*args, **kwargs)

        return mutant

    return make


def _gradient_sign(orig):
    def mutant(*args, **kwargs):
        return -orig(*args, **kwargs)

    return mutant


def _truth_off(orig):
    """Return the scenario's closed-form truth with the treatment CTR off by 2 %."""

    def mutant(self):
        t = orig(self)
        return type(t).from_means(
            t.mean_views, t.mean_views * t.ctr_control, t.mean_views * t.ctr_treatment * 1.02
        )

    return mutant


def _fieller_z(orig):
    """Fieller's critical value taken from the normal (z) instead of Student t."""

    def mutant(*args, **kwargs):
        if kwargs.get("ci_method") == "fieller" and kwargs.get("distribution") == "t":
            kwargs = {**kwargs, "distribution": "z"}
        return orig(*args, **kwargs)

    return mutant


_TABLE1 = ("deng2018-table1",)
_RATIO = ("delta-coverage", "aa-calibration", "deng2018-table2")
_POWER = ("power-calibration", "power-mde-roundtrip")
_CUPED = ("cuped-calibration", "cuped-query")
_SHIPPED = ("retrieval-shipped-gradient",)


def _relative(kw: dict[str, Any]) -> bool:
    return bool(kw.get("relative"))


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "ratio-fieller-as-delta",
        "estimators.ratio:ratio_test_from_moments",
        "ci_method='fieller' silently computes the plain delta interval",
        _map_kwarg("ci_method", {"fieller": "delta"}),
        ("delta-coverage",),
    ),
    Mutant(
        "ratio-delta-bc-sign-flipped",
        "estimators.ratio:ratio_test_from_moments",
        "delta-bc subtracts its second-order bias correction instead of adding it",
        _delta_bc_sign_flipped,
        ("delta-coverage",),
    ),
    Mutant(
        "ratio-log-as-delta",
        "estimators.ratio:ratio_test_from_moments",
        "ci_method='log' (log-ratio interval) silently computes the delta interval",
        _map_kwarg("ci_method", {"log": "delta"}),
        ("delta-coverage",),
    ),
    Mutant(
        "ratio-fieller-z-for-t",
        "estimators.ratio:ratio_test_from_moments",
        "Fieller's critical value from the normal (z) where Student t (Welch df) was asked",
        _fieller_z,
        _TABLE1,
    ),
    Mutant(
        "ratio-edgeworth-skewness-x3",
        "estimators.ratio:_lift_skewness",
        "skewness of the linearised lift three times too large",
        _scale_result(3.0),
        _TABLE1,
    ),
    Mutant(
        "ratio-lift-bias-sign",
        "estimators.ratio:_lift_bias",
        "second-order bias of the lift with its sign flipped (reaches delta-bc and edgeworth-bc)",
        _scale_result(-1.0),
        _TABLE1,
    ),
    Mutant(
        "ratio-covariance-dropped",
        "estimators.ratio:ratio_test_from_moments",
        "delta-method variance without the -2 R cov(V, M) term",
        _covariance_dropped,
        _RATIO,
    ),
    Mutant(
        "ratio-pvalue-not-doubled",
        "estimators.ratio:ratio_test_from_moments",
        "two-sided p-value reported as one tail",
        _pvalue_halved,
        _RATIO,
    ),
    Mutant(
        "ratio-se-binomial-scale",
        "estimators.ratio:ratio_test_from_moments",
        "interval 20% too narrow (a variance divided by views, not users)",
        _widen_ci(0.8, lambda kw: True),
        _RATIO,
    ),
    Mutant(
        "ratio-relative-ci-narrow",
        "estimators.ratio:ratio_test_from_moments",
        "relative-lift interval ignores the control arm's variance (15% too narrow)",
        _widen_ci(0.85, _relative),
        ("delta-coverage",),
    ),
    Mutant(
        "ratio-relative-ignored",
        "estimators.ratio:ratio_test_from_moments",
        "relative=True ignored: the absolute difference returned as the lift",
        _with_kwargs(relative=False),
        ("delta-coverage", "power-calibration"),
    ),
    Mutant(
        "sample-size-21pct-small",
        "estimators.power:sample_size",
        "sample_size returns 21% too few units",
        _scale_sample_size(0.79),
        _POWER,
    ),
    Mutant(
        "sample-size-lehr-8",
        "estimators.power:sample_size",
        "Lehr's rule with 8 sigma^2/delta^2 (one arm's variance only)",
        _scale_sample_size(0.5),
        _POWER,
    ),
    Mutant(
        "sample-size-ignores-ratio",
        "estimators.power:sample_size",
        "unequal allocation ignored (ratio forced to 1)",
        _with_kwargs(ratio=1.0),
        _POWER,
    ),
    Mutant(
        "power-one-sided-alpha",
        "estimators.power:power",
        "two-sided power computed with z_{1-alpha} (alpha not halved)",
        _with_kwargs(alternative="greater"),
        ("power-mde-roundtrip",),
    ),
    Mutant(
        "mde-too-small",
        "estimators.power:mde",
        "mde 10% too small (z_{1-beta} dropped to z for 0.74)",
        _scale_result(0.9),
        ("power-mde-roundtrip",),
    ),
    Mutant(
        "power-r2-ignored",
        "estimators.power:power",
        "CUPED r^2 ignored by power",
        _with_kwargs(r2=0.0),
        ("power-mde-roundtrip",),
    ),
    Mutant(
        "cuped-theta-halved",
        "estimators.cuped:cuped_test_from_moments",
        "CUPED theta halved (half the covariate adjustment)",
        _cuped_theta_halved,
        _CUPED,
    ),
    Mutant(
        "cuped-se-unadjusted",
        "estimators.cuped:cuped_test_from_moments",
        "CUPED estimate reported with the unadjusted (larger) s.e.",
        _widen_ci(1.6, lambda kw: True),
        _CUPED,
    ),
    Mutant(
        "cuped-se-too-small",
        "estimators.cuped:cuped_test_from_moments",
        "CUPED s.e. without the (1 - k/(n-1)) / estimated-theta inflation (10% small)",
        _widen_ci(0.9, lambda kw: True),
        _CUPED,
    ),
    Mutant(
        "inclusion-exponent-4b",
        "recsys.negatives:inclusion_probability",
        "inclusion exponent 4B instead of B",
        _scale_arg(1, "batch_size", 4, True),
        ("retrieval-mixed-inclusion",),
    ),
    Mutant(
        "inclusion-as-expected-count",
        "recsys.negatives:inclusion_probability",
        "expected count B p + B' gamma returned as the inclusion probability",
        _inclusion_as_count,
        ("retrieval-mixed-inclusion",),
    ),
    Mutant(
        "inclusion-random-ignored",
        "recsys.negatives:inclusion_probability",
        "the uniform random draws B' left out of Q*",
        _set_arg(2, "n_random", 0),
        ("retrieval-mixed-inclusion",),
    ),
    Mutant(
        "expected-distinct-is-b",
        "recsys.negatives:expected_distinct",
        "expected distinct positives taken as B (no repeats)",
        lambda orig: lambda p, batch_size: float(batch_size),
        ("retrieval-mixed-inclusion",),
    ),
    Mutant(
        "loss-logq-added",
        "recsys.losses:sampled_softmax_loss",
        "logQ added to the logits instead of subtracted",
        _logq_added,
        _SHIPPED,
    ),
    Mutant(
        "fast-loss-logq-added",
        "recsys.losses:shared_negatives_loss",
        "the training step's fused loss adds log Q to the negatives' logits",
        _logq_added,
        _SHIPPED,
    ),
    Mutant(
        "loss-logq-over-temperature",
        "recsys.losses:sampled_softmax_loss",
        "logQ divided by the temperature with the logits",
        _logq_over_temperature,
        _SHIPPED,
    ),
    Mutant(
        "builder-hits-unmasked",
        "recsys.negatives:sampled_softmax_candidates",
        "accidental hits and duplicates left unmasked",
        _mask_dropped,
        _SHIPPED,
    ),
    Mutant(
        "inbatch-duplicates-unmasked",
        "recsys.negatives:in_batch_candidates",
        "in-batch duplicates of the positive left unmasked",
        _inbatch_mask_dropped,
        _SHIPPED,
    ),
    Mutant(
        "builder-count-for-inclusion",
        "recsys.negatives:sampled_softmax_candidates",
        "expected count used with the de-duplicated set",
        _map_kwarg("correction", {"inclusion_probability": "expected_count"}),
        _SHIPPED,
    ),
    Mutant(
        "sim-full-gradient-sign",
        "sim.softmax:expected_full_softmax_gradient",
        "exact full-softmax gradient with its sign flipped",
        _gradient_sign,
        _SHIPPED,
    ),
    Mutant(
        "sim-truth-off-2pct",
        "sim.scenarios:ReferenceCtr.truth",
        "closed-form treatment CTR of the reference scenario off by 2 % (0.673, not 0.66)",
        _truth_off,
        _POWER,
    ),
    Mutant(
        "frequency-item-probability-linear",
        "recsys.frequency:StreamingFrequencyEstimator.item_probability",
        "item share taken as Q_B / B (linear) instead of 1 - (1 - Q_B)^(1/B)",
        lambda orig: lambda self, ids, batch_size: self.estimate(ids) / batch_size,
        ("retrieval-streaming-frequency",),
    ),
)
