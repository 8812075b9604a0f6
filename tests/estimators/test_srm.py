"""srm_test against scipy.stats.chisquare and binomtest, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from estimators import srm_test


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([5050, 4950], None),
        ([1000, 1100, 950], None),
        ([4000, 6100], [0.4, 0.6]),
        ([300, 620, 80], [3, 6, 1]),
    ],
)
def test_equals_scipy_chisquare(counts, expected):
    res = srm_test(counts, expected)
    shares = np.full(len(counts), 1 / len(counts)) if expected is None else np.asarray(expected)
    shares = shares / shares.sum()
    ref = stats.chisquare(counts, shares * np.sum(counts))
    assert res.method == "chisquare"
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-14)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12)
    assert res.df == len(counts) - 1


def test_small_counts_use_exact_binomial():
    res = srm_test([1, 7])
    assert res.method == "binomial"
    assert res.pvalue == pytest.approx(stats.binomtest(1, 8, 0.5).pvalue, rel=1e-14)
    # the chi-square approximation differs noticeably here
    assert abs(srm_test([1, 7], method="chisquare").pvalue - res.pvalue) > 0.01
    unequal = srm_test([1, 20], [0.2, 0.8])
    assert unequal.method == "binomial"
    assert unequal.pvalue == pytest.approx(stats.binomtest(1, 21, 0.2).pvalue, rel=1e-14)


@pytest.mark.slow
def test_null_pvalues_are_uniform():
    # Under correct allocation the chi-square p-value is ~ uniform: P(p < 0.05) = 0.05.
    rng = np.random.default_rng(7)
    R = 4000
    counts = rng.multinomial(3000, [0.5, 0.3, 0.2], size=R)
    p = np.array([srm_test(c, [5, 3, 2]).pvalue for c in counts])
    tol = 3 * np.sqrt(0.05 * 0.95 / R)  # z = 3: false failure about 0.3 %
    assert abs((p < 0.05).mean() - 0.05) <= tol
    # negative control: the wrong design shares reject nearly always
    wrong = np.array([srm_test(c).pvalue for c in counts[:200]])
    assert (wrong < 0.001).mean() > 0.99


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(counts=[10]), r"`counts` must be a 1-d sequence of >= 2"),
        (dict(counts=[10, -1]), r"`counts` must be non-negative integers"),
        (dict(counts=[10, 2.5]), r"`counts` must be non-negative integers"),
        (dict(counts=[0, 0]), r"`counts` must not all be 0"),
        (dict(counts=[10, 20], expected=[1, 1, 1]), r"`expected` must have one entry per arm"),
        (dict(counts=[10, 20], expected=[1, 0]), r"`expected` must be positive"),
        (dict(counts=[10, 20], method="g"), r"`method` must be one of"),
        (dict(counts=[10, 20, 3], method="binomial"), r"needs exactly 2 arms; got 3"),
    ],
)
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        srm_test(**kwargs)
