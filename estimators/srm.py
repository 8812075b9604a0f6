"""Sample-ratio-mismatch test: are the arm sizes those the design allocated."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

#: Below this expected count in some arm the chi-square approximation is not used
#: for two arms (Cochran's rule); the exact binomial test is.
MIN_EXPECTED = 5.0


@dataclass(frozen=True, slots=True)
class SRMResult:
    """Outcome of :func:`srm_test`.

    Attributes
    ----------
    statistic : float
        Pearson's chi-square ``sum (O - E)^2 / E``; for the exact binomial test the
        count of the first arm.
    pvalue : float
        P-value of "the units were allocated with the expected shares".
    df : int
        Degrees of freedom of the chi-square (arms - 1).
    method : {"chisquare", "binomial"}
        Which test gave ``pvalue``.
    counts : ndarray
        Observed units per arm.
    expected : ndarray
        Expected units per arm (the shares times the total).
    """

    statistic: float
    pvalue: float
    df: int
    method: str
    counts: npt.NDArray[np.float64]
    expected: npt.NDArray[np.float64]

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain ``dict``.

        Returns
        -------
        dict
            Field name to value (arrays as lists).
        """
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["counts"] = self.counts.tolist()
        out["expected"] = self.expected.tolist()
        return out


def _validate_srm_test(counts: Any, expected: Any, method: str) -> tuple[np.ndarray, np.ndarray]:
    obs = np.asarray(counts, dtype=np.float64)
    if obs.ndim != 1 or obs.size < 2:
        raise ValueError(
            f"`counts` must be a 1-d sequence of >= 2 arm sizes; got shape {obs.shape}."
        )
    if not np.isfinite(obs).all() or (obs < 0).any() or (obs != np.round(obs)).any():
        raise ValueError(f"`counts` must be non-negative integers; got {obs.tolist()}.")
    if obs.sum() <= 0:
        raise ValueError("`counts` must not all be 0.")
    if expected is None:
        shares = np.full(obs.size, 1.0 / obs.size)
    else:
        shares = np.asarray(expected, dtype=np.float64)
        if shares.shape != obs.shape:
            raise ValueError(
                f"`expected` must have one entry per arm, shape {obs.shape}; got {shares.shape}."
            )
        if not np.isfinite(shares).all() or (shares <= 0).any():
            raise ValueError(
                f"`expected` must be positive shares or counts; got {shares.tolist()}."
            )
        shares = shares / shares.sum()
    if method not in ("auto", "chisquare", "binomial"):
        raise ValueError(
            f"`method` must be one of ['auto', 'chisquare', 'binomial']; got {method!r}."
        )
    if method == "binomial" and obs.size != 2:
        raise ValueError(f"`method='binomial'` needs exactly 2 arms; got {obs.size}.")
    return obs, shares


def srm_test(
    counts: npt.ArrayLike, expected: npt.ArrayLike | None = None, *, method: str = "auto"
) -> SRMResult:
    """Chi-square test of sample-ratio mismatch (SRM) between the arms.

    Parameters
    ----------
    counts : array_like of int, shape (k,)
        Randomisation units observed in each arm (k >= 2).
    expected : array_like, shape (k,), optional
        Designed allocation, as shares or counts in any scale (normalised to sum
        1); ``None`` means equal shares.
    method : {"auto", "chisquare", "binomial"}, default "auto"
        ``"chisquare"`` is Pearson's test, equal to ``scipy.stats.chisquare(counts,
        f_exp)``; ``"binomial"`` the exact binomial test of the first arm's share
        (two arms only); ``"auto"`` takes the binomial test for two arms when an
        expected count is below 5, the chi-square otherwise.

    Returns
    -------
    SRMResult
        Statistic, p-value, method, counts and expected counts.

    Notes
    -----
    Pearson's statistic ``X^2 = sum_j (O_j - E_j)^2 / E_j`` with ``E_j = p_j N`` is
    chi-square with k - 1 degrees of freedom under correct allocation. A tiny
    p-value (the usual alarm is p < 0.001) means the assignment or the logging is
    broken and the experiment's effects cannot be trusted [1]_. With few units the
    approximation fails; the exact binomial test (two-sided, as
    ``scipy.stats.binomtest``) replaces it for two arms.

    References
    ----------
    .. [1] A. Fabijan, J. Gupchup, S. Gupta, J. Omhover, W. Qin, L. Vermeer,
       P. Dmitriev, "Diagnosing Sample Ratio Mismatch in Online Controlled
       Experiments: A Taxonomy and Rules of Thumb for Practitioners", KDD 2019.

    Examples
    --------
    >>> res = srm_test([5050, 4950])
    >>> round(res.statistic, 3), round(res.pvalue, 4)
    (1.0, 0.3173)
    """
    obs, shares = _validate_srm_test(counts, expected, method)
    exp = shares * obs.sum()
    if method == "auto":
        method = "binomial" if obs.size == 2 and exp.min() < MIN_EXPECTED else "chisquare"
    if method == "binomial":
        res = stats.binomtest(int(obs[0]), int(obs.sum()), float(shares[0]))
        return SRMResult(float(obs[0]), float(res.pvalue), 1, "binomial", obs, exp)
    res = stats.chisquare(obs, exp)
    return SRMResult(float(res.statistic), float(res.pvalue), obs.size - 1, "chisquare", obs, exp)
