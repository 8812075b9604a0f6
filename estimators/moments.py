"""Per-arm sufficient statistics (SQL-style aggregates) for every test (docs/theory.md §1, §3).

A ratio metric V/M with covariates X is summarised per arm by the count, the sums
and the sums of cross-products of the unit vector ``z = (V, M, X_1, ..., X_k)``.
Every estimate of this package is a function of these moments only, so
``ratio_test``, ``mean_test`` and ``cuped_test`` computed from
:class:`RatioMoments` equal the per-unit computation to rounding, whatever the
number of units. Fields may be arrays over replicates; the tests then broadcast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from ._validate import as_float_array, clean_units

_SCALAR_FIELDS = ("n", "sum_v", "sum_m", "sum_vv", "sum_mm", "sum_vm")
_COVARIATE_FIELDS = ("sum_x", "sum_xx", "sum_vx", "sum_mx")
_THIRD_FIELDS = ("sum_vvv", "sum_vvm", "sum_vmm", "sum_mmm")
#: (V, M) index triples of the third-order sums, in the order of ``_THIRD_FIELDS``.
_THIRD_INDEX = ((0, 0, 0), (0, 0, 1), (0, 1, 1), (1, 1, 1))

# A column is stored about a shift when mean^2 > _SHIFT_RATIO * variance: raw sums
# then lose about eps * _SHIFT_RATIO ~ 2e-8 of the variance at worst, below that never.
_SHIFT_RATIO = 1e8


def _third_central(n: np.ndarray, s: np.ndarray, S: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Central third-order sums of (V, M) from sums about any shift.

    ``sum (a - abar)(b - bbar)(c - cbar) = T_abc - abar S_bc - bbar S_ac - cbar S_ab
    + 2 n abar bbar cbar`` with ``abar = s_a / n`` the mean of the shifted column (the
    shift cancels). ``T`` is ``S + (4,)`` in the order of ``_THIRD_FIELDS``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        c = s[..., :2] / n[..., None]
    out = np.empty(T.shape)
    for j, (a, b, d) in enumerate(_THIRD_INDEX):
        out[..., j] = (
            T[..., j]
            - c[..., a] * S[..., b, d]
            - c[..., b] * S[..., a, d]
            - c[..., d] * S[..., a, b]
            + 2.0 * n * c[..., a] * c[..., b] * c[..., d]
        )
    return out


@dataclass(frozen=True, slots=True)
class _ArmStats:
    """Centred moments of ``z = (V, M, X...)`` in one arm (leading replicate axes).

    ``n`` has the replicate shape ``S``; ``mean`` is ``S + (p,)``; ``ss`` (sum of
    squares and cross-products about the arm mean) is ``S + (p, p)``; ``raw`` is the
    diagonal of the second moments about the stored shift divided by ``n``
    (``S + (p,)``), the scale of the rounding error of ``ss`` and hence of the
    tolerances that decide a variance is 0; ``m3`` (``S + (4,)`` or ``None``) holds
    the central third-order sums of (V, M) in the order vvv, vvm, vmm, mmm.

    The formulas of the delta method live here, once: :meth:`linear_coefficients`
    (the linearisation), :meth:`delta` (the variance of the ratio and the moments of
    its linearisation) and :func:`ratio_covariate_matrix` (ratio covariates).
    """

    n: np.ndarray
    mean: np.ndarray
    ss: np.ndarray
    raw: np.ndarray
    m3: np.ndarray | None = None

    @classmethod
    def from_units(cls, z: np.ndarray) -> _ArmStats:
        """Two-pass centred moments from a ``(n, p)`` unit matrix (columns V, M, X...)."""
        n = z.shape[0]
        with np.errstate(over="ignore", invalid="ignore"):  # overflow: callers refuse inf
            mean = z.mean(axis=0)
            dev = z - mean
            ss = dev.T @ dev
            ss = 0.5 * (ss + ss.T)
            # Two-pass rounding error of ss is ~ eps * |mean| * sd per unit, so the
            # scale is the variance plus a term of the mean far below the variance.
            raw = np.diag(ss) / n + (1e-4 * mean) ** 2
            dv, dm = dev[:, 0], dev[:, 1]
            m3 = np.array([dv**3, dv * dv * dm, dv * dm * dm, dm**3]).sum(axis=1)
        return cls(np.asarray(float(n)), mean, ss, raw, m3)

    def linear_coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """Coefficients of the linearisation ``L = a V + b M`` of ``Vbar/Mbar``.

        ``a = 1/Mbar`` and ``b = -Vbar/Mbar^2`` (docs/theory.md §1 with the sample means for
        mu_V, mu_M): ``L_i - Lbar`` is the first-order change of the ratio per unit.
        """
        mv, mm = self.mean[..., 0], self.mean[..., 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1.0 / mm, -mv / (mm * mm)

    def delta(self, ddof: float, zero_rtol: float = 1e-13) -> dict[str, np.ndarray]:
        """Ratio of means and its delta-method moments (Deng et al. 2018, docs/theory.md §1).

        ``var_r = var(L) / n`` with ``var(L) = (s_V^2 - 2 R s_VM + R^2 s_M^2) /
        Mbar^2``; a ``var(L)`` below ``zero_rtol`` times its rounding scale counts as
        0. ``mu3_l`` is the third central moment of L (divisor n), NaN without
        third-order sums. ``var_v, var_m, cov_vm`` are the variances and covariance
        of ``Vbar`` and ``Mbar`` (all with divisor ``n - ddof``).
        """
        n = self.n
        svv, smm, svm = self.ss[..., 0, 0], self.ss[..., 1, 1], self.ss[..., 0, 1]
        a, b = self.linear_coefficients()
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            r = self.mean[..., 0] / self.mean[..., 1]
            dof = n - ddof
            # A column whose centred sum of squares is within rounding of 0 is
            # constant: it adds neither variance nor rounding error to var(L).
            const_v = np.isfinite(svv) & ~(svv > zero_rtol * n * self.raw[..., 0])
            const_m = np.isfinite(smm) & ~(smm > zero_rtol * n * self.raw[..., 1])
            svv_c = np.where(const_v, 0.0, svv)
            smm_c = np.where(const_m, 0.0, smm)
            svm_c = np.where(const_v | const_m, 0.0, svm)
            var_l = (a * a * svv_c + 2.0 * a * b * svm_c + b * b * smm_c) / dof
            scale = np.where(const_v, 0.0, a * a * self.raw[..., 0]) + np.where(
                const_m, 0.0, b * b * self.raw[..., 1]
            )
            # an overflow (inf or NaN) is kept for the caller to refuse
            var_l = np.where(~np.isfinite(var_l) | (var_l > zero_rtol * scale), var_l, 0.0)
            if self.m3 is None:
                mu3 = np.full(np.shape(var_l), np.nan)
            else:
                m = self.m3
                mu3 = (
                    a**3 * m[..., 0]
                    + 3.0 * a * a * b * m[..., 1]
                    + 3.0 * a * b * b * m[..., 2]
                    + b**3 * m[..., 3]
                ) / n
            return {
                "n": n,
                "mean_v": self.mean[..., 0],
                "mean_m": self.mean[..., 1],
                "r": r,
                "var_l": var_l,
                "var_r": var_l / n,
                "mu3_l": mu3,
                "var_v": svv / dof / n,
                "var_m": smm / dof / n,
                "cov_vm": svm / dof / n,
            }


def ratio_covariate_matrix(mean_x: np.ndarray, pairs: list[tuple[int, int]], k: int) -> np.ndarray:
    """Matrix ``B`` of the ratio-covariate transform ``W = B X`` (Deng et al. 2013, App. B).

    Row r of ``B`` linearises the ratio of covariate columns ``pairs[r] = (i, j)``
    at the means ``mean_x`` (``S + (k,)``): ``W_r = X_i/xbar_j - (xbar_i/xbar_j^2)
    X_j``; the columns used in no pair follow unchanged, one row each. Shape
    ``S + (len(pairs) + n_unpaired, k)``; non-finite entries (a zero mean) are set to
    0, for the caller to mask those replicates.
    """
    shape = mean_x.shape[:-1]
    paired = {c for pair in pairs for c in pair}
    single = [j for j in range(k) if j not in paired]
    B = np.zeros(shape + (len(pairs) + len(single), k))
    with np.errstate(divide="ignore", invalid="ignore"):
        for r, (i, j) in enumerate(pairs):
            B[..., r, i] = 1.0 / mean_x[..., j]
            B[..., r, j] = -mean_x[..., i] / mean_x[..., j] ** 2
    for r, j in enumerate(single, start=len(pairs)):
        B[..., r, j] = 1.0
    return np.nan_to_num(B, nan=0.0, posinf=0.0, neginf=0.0)


def _pick_shift(col: np.ndarray) -> float:
    """Shift for a column: 0 unless its mean dwarfs its s.d., then the rounded mean.

    Rounded to the power of ten just above the s.d., so ``1e9 + N(0, 1)`` is stored
    about 1e9.
    """
    if col.size == 0:
        return 0.0
    mean = float(col.mean())
    var = float(col.var())
    if not (var > 0.0 and mean * mean > _SHIFT_RATIO * var):
        return 0.0
    unit = 10.0 ** math.ceil(math.log10(math.sqrt(var)))
    return float(np.round(mean / unit) * unit)


@dataclass(frozen=True, slots=True)
class RatioMoments:
    """Sufficient statistics of one arm for a ratio metric V/M and covariates X.

    A mean metric is the ratio metric with ``M = 1`` for every unit (see
    :meth:`from_mean_sums`). All fields are stored as ``float64`` arrays; the
    scalar fields share a broadcastable replicate shape ``S`` (``()`` for a single
    experiment, ``(R,)`` for R simulated replicates), the covariate fields add
    trailing axes of length ``k``.

    Every sum is taken about a per-column constant, the shift (default 0): ``sum_v``
    is ``sum (V - shift_v)``, ``sum_vm`` is ``sum (V - shift_v)(M - shift_m)``, and so
    on. A shift near the mean keeps the centred moments exact to rounding when the
    mean dwarfs the standard deviation (raw sums of a column with mean 1e9 and s.d. 1
    lose every digit of its variance); the estimates do not depend on it.

    Attributes
    ----------
    n : ndarray
        Number of randomisation units (users) in the arm.
    sum_v, sum_m : ndarray
        Sums of the numerator V (e.g. clicks) and the denominator M (e.g. views).
    sum_vv, sum_mm, sum_vm : ndarray
        Sums of V^2, M^2 and V*M over units.
    sum_x : ndarray or None
        Sums of the k covariates, shape ``S + (k,)``.
    sum_xx : ndarray or None
        Sums of the products X_j X_l, shape ``S + (k, k)`` (symmetric).
    sum_vx, sum_mx : ndarray or None
        Sums of V X_j and M X_j, shape ``S + (k,)``.
    sum_vvv, sum_vvm, sum_vmm, sum_mmm : ndarray or None
        Third-order sums of V^3, V^2 M, V M^2 and M^3 (given together or not at all);
        they give the skewness of the linearised metric (``ci_method="edgeworth"``).
    shift_v, shift_m : ndarray
        Constants subtracted from V and M before every sum (default 0).
    shift_x : ndarray or None
        Constants subtracted from the covariates, shape ``(k,)`` or ``S + (k,)``
        (default zeros when covariates are given).

    Notes
    -----
    With ``z = (V, M, X)`` the arm mean is ``shift + sum z / n`` and the centred
    cross-product matrix is ``sum z z' - (sum z)(sum z)' / n`` whatever the shift;
    every estimator here (delta method [1]_, CUPED [2]_) is a function of these,
    computed by the methods :meth:`ratio`, :meth:`ratio_variance`,
    :meth:`linearization` and :meth:`ratio_covariate_transform`. Adding two
    :class:`RatioMoments` pools them; parts with different shifts are first
    re-expressed about a common shift (exact algebra, see :meth:`reshift`).
    Rounding in raw sums costs about ``eps * (mean - shift)^2 / var`` of the
    variance, so :meth:`from_arrays` shifts a column only when its mean exceeds
    1e4 standard deviations.

    References
    ----------
    .. [1] A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric
       Analytics: A Practical Guide with Novel Ideas", KDD 2018.
    .. [2] A. Deng, Y. Xu, R. Kohavi, T. Walker, "Improving the Sensitivity of
       Online Controlled Experiments by Utilizing Pre-Experiment Data", WSDM 2013.

    Examples
    --------
    >>> m = RatioMoments.from_arrays([1.0, 0.0, 2.0], [3.0, 1.0, 4.0])
    >>> float(m.n), float(m.sum_v), float(m.sum_vm)
    (3.0, 3.0, 11.0)
    >>> big = RatioMoments.from_arrays([1e9 + 1.0, 1e9 - 1.0, 1e9])
    >>> float(big.shift_v), float(big.sum_vv)
    (1000000000.0, 2.0)
    """

    n: np.ndarray
    sum_v: np.ndarray
    sum_m: np.ndarray
    sum_vv: np.ndarray
    sum_mm: np.ndarray
    sum_vm: np.ndarray
    sum_x: np.ndarray | None = None
    sum_xx: np.ndarray | None = None
    sum_vx: np.ndarray | None = None
    sum_mx: np.ndarray | None = None
    sum_vvv: np.ndarray | None = None
    sum_vvm: np.ndarray | None = None
    sum_vmm: np.ndarray | None = None
    sum_mmm: np.ndarray | None = None
    shift_v: np.ndarray = 0.0  # type: ignore[assignment]
    shift_m: np.ndarray = 0.0  # type: ignore[assignment]
    shift_x: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in _SCALAR_FIELDS + ("shift_v", "shift_m"):
            value = as_float_array(f"RatioMoments.{name}", getattr(self, name), ndim=(0, 1, 2, 3))
            if not np.isfinite(value).all():
                raise ValueError(f"`RatioMoments.{name}` must be finite; got {value!r}.")
            object.__setattr__(self, name, value)
        names = _SCALAR_FIELDS + ("shift_v", "shift_m")
        try:
            shape = np.broadcast_shapes(*(getattr(self, f).shape for f in names))
        except ValueError as exc:
            shapes = {f: getattr(self, f).shape for f in names}
            raise ValueError(
                f"`RatioMoments` scalar fields must have broadcastable shapes; got {shapes}."
            ) from exc
        for name in ("n", "sum_vv", "sum_mm"):
            value = getattr(self, name)
            if (value < 0).any():
                raise ValueError(
                    f"`RatioMoments.{name}` must be >= 0; got {float(value[value < 0].ravel()[0])}."
                )
        self._check_third(shape)
        self._check_covariates(shape)
        self._check_cauchy_schwarz()

    def _group_present(self, group: tuple[str, ...], what: str) -> bool:
        """Whether the fields of ``group`` are given; raise if only some are."""
        present = [getattr(self, f) is not None for f in group]
        if any(present) and not all(present):
            missing = [f for f, p in zip(group, present, strict=True) if not p]
            raise ValueError(
                f"`RatioMoments` {what} fields {list(group)} must be given together; "
                f"missing {missing}."
            )
        return all(present)

    def _check_third(self, shape: tuple[int, ...]) -> None:
        if not self._group_present(_THIRD_FIELDS, "third-order"):
            return
        for name in _THIRD_FIELDS:
            value = as_float_array(f"RatioMoments.{name}", getattr(self, name), ndim=(0, 1, 2, 3))
            if not np.isfinite(value).all():
                raise ValueError(f"`RatioMoments.{name}` must be finite; got {value!r}.")
            try:
                np.broadcast_shapes(value.shape, shape)
            except ValueError as exc:
                raise ValueError(
                    f"`RatioMoments.{name}` shape {value.shape} does not broadcast with {shape}."
                ) from exc
            object.__setattr__(self, name, value)

    def _check_covariates(self, shape: tuple[int, ...]) -> None:
        if not self._group_present(_COVARIATE_FIELDS, "covariate"):
            if self.shift_x is not None:
                raise ValueError("`RatioMoments.shift_x` needs the covariate sums (`sum_x`, ...).")
            return
        sum_x = as_float_array("RatioMoments.sum_x", self.sum_x, ndim=(1, 2, 3, 4))
        k = sum_x.shape[-1]
        if self.shift_x is None:
            object.__setattr__(self, "shift_x", np.zeros(k))
        expected = {
            "sum_x": (k,),
            "sum_xx": (k, k),
            "sum_vx": (k,),
            "sum_mx": (k,),
            "shift_x": (k,),
        }
        for name, trailing in expected.items():
            value = as_float_array(f"RatioMoments.{name}", getattr(self, name), ndim=(1, 2, 3, 4))
            if value.shape[value.ndim - len(trailing) :] != trailing:
                raise ValueError(
                    f"`RatioMoments.{name}` must end with shape {trailing} (k = {k} "
                    f"covariates from `sum_x`); got shape {value.shape}."
                )
            lead = value.shape[: value.ndim - len(trailing)]
            try:
                np.broadcast_shapes(lead, shape)
            except ValueError as exc:
                raise ValueError(
                    f"`RatioMoments.{name}` replicate shape {lead} does not broadcast with {shape}."
                ) from exc
            if not np.isfinite(value).all():
                raise ValueError(f"`RatioMoments.{name}` must be finite; got {value!r}.")
            object.__setattr__(self, name, value)
        if (np.diagonal(self.sum_xx, axis1=-2, axis2=-1) < 0).any():
            raise ValueError("`RatioMoments.sum_xx` must have a non-negative diagonal.")

    def _check_cauchy_schwarz(self) -> None:
        """Refuse ``sum_vv < sum_v^2 / n`` (a negative variance: no data has it)."""
        for sq, lin in (("sum_vv", "sum_v"), ("sum_mm", "sum_m")):
            q, s = getattr(self, sq), getattr(self, lin)
            with np.errstate(divide="ignore", invalid="ignore"):
                centred = q - s * s / self.n
            bad = (self.n > 0) & (centred < -1e-9 * np.maximum(q, 1e-300))
            if bad.any():
                idx = np.argwhere(np.broadcast_to(bad, np.broadcast(q, s, self.n).shape))
                where = f" (replicate {tuple(int(i) for i in idx[0])})" if idx.size else ""
                qq = float(np.broadcast_to(q, bad.shape)[bad].ravel()[0])
                ss = float(np.broadcast_to(s, bad.shape)[bad].ravel()[0])
                nn = float(np.broadcast_to(self.n, bad.shape)[bad].ravel()[0])
                raise ValueError(
                    f"`RatioMoments.{sq}` must be >= `{lin}`^2 / n (a variance cannot be "
                    f"negative); got {sq}={qq:.17g}, {lin}={ss:.17g}, n={nn:g}{where}."
                )

    # ------------------------------------------------------------------ properties
    @property
    def k(self) -> int:
        """Number of covariates (0 when there are none)."""
        return 0 if self.sum_x is None else int(self.sum_x.shape[-1])

    @property
    def has_third(self) -> bool:
        """Whether the third-order sums (``sum_vvv`` ...) are present."""
        return self.sum_vvv is not None

    @property
    def shape(self) -> tuple[int, ...]:
        """Broadcast replicate shape of the fields (``()`` for one experiment)."""
        shapes = [getattr(self, f).shape for f in _SCALAR_FIELDS + ("shift_v", "shift_m")]
        if self.sum_x is not None:
            shapes += [self.sum_x.shape[:-1], self.sum_xx.shape[:-2]]
            shapes += [self.sum_vx.shape[:-1], self.sum_mx.shape[:-1], self.shift_x.shape[:-1]]
        if self.has_third:
            shapes += [getattr(self, f).shape for f in _THIRD_FIELDS]
        return np.broadcast_shapes(*shapes)

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_arrays(
        cls,
        num: npt.ArrayLike,
        den: npt.ArrayLike | None = None,
        X: npt.ArrayLike | None = None,
        *,
        nan_policy: str = "raise",
    ) -> RatioMoments:
        """Aggregate per-unit arrays into moments (with third-order sums).

        Parameters
        ----------
        num : array_like, shape (n,)
            Numerator per unit (V), or the metric itself for a mean metric.
        den : array_like, shape (n,), optional
            Denominator per unit (M). ``None`` means a mean metric (M = 1).
        X : array_like, shape (n,) or (n, k), optional
            Covariates per unit.
        nan_policy : {"raise", "omit"}
            ``"omit"`` drops units with a NaN in any column.

        Returns
        -------
        RatioMoments
            Moments with scalar (0-d) fields. A column whose mean exceeds 1e4 times
            its standard deviation is summed about its mean rounded to the power
            of ten just above the s.d. (``shift_v`` ...), others about 0.
        """
        cols = {"num": as_float_array("num", num)}
        if den is not None:
            cols["den"] = as_float_array("den", den)
        if X is not None:
            x = as_float_array("X", X, ndim=(1, 2))
            cols["X"] = x[:, None] if x.ndim == 1 else x
        if nan_policy not in ("raise", "omit"):
            raise ValueError(f"`nan_policy` must be one of ['raise', 'omit']; got {nan_policy!r}.")
        cols = clean_units(cols, nan_policy)
        v = cols["num"]
        m = cols["den"] if den is not None else np.ones_like(v)
        shift_v, shift_m = _pick_shift(v), _pick_shift(m)
        v = v - shift_v
        m = m - shift_m
        kw: dict[str, Any] = {}
        if X is not None:
            x = cols["X"]
            shift_x = np.array([_pick_shift(col) for col in x.T])
            x = x - shift_x
            kw = dict(sum_x=x.sum(0), sum_xx=x.T @ x, sum_vx=v @ x, sum_mx=m @ x, shift_x=shift_x)
        vv, mm = v * v, m * m
        return cls(
            n=float(v.shape[0]),
            sum_v=v.sum(),
            sum_m=m.sum(),
            sum_vv=v @ v,
            sum_mm=m @ m,
            sum_vm=v @ m,
            sum_vvv=vv @ v,
            sum_vvm=vv @ m,
            sum_vmm=v @ mm,
            sum_mmm=mm @ m,
            shift_v=shift_v,
            shift_m=shift_m,
            **kw,
        )

    @classmethod
    def from_mean_sums(
        cls,
        n: npt.ArrayLike,
        sum_y: npt.ArrayLike,
        sum_yy: npt.ArrayLike,
        *,
        sum_yyy: npt.ArrayLike | None = None,
        shift: npt.ArrayLike = 0.0,
        sum_x: npt.ArrayLike | None = None,
        sum_xx: npt.ArrayLike | None = None,
        sum_yx: npt.ArrayLike | None = None,
        shift_x: npt.ArrayLike | None = None,
    ) -> RatioMoments:
        """Moments of a mean metric Y (the ratio metric with M = 1 per unit).

        Parameters
        ----------
        n, sum_y, sum_yy : array_like
            Unit count, sum of Y and sum of Y^2 (broadcastable replicate shapes).
        sum_yyy : array_like, optional
            Sum of Y^3, for the skewness (``ci_method="edgeworth"``).
        shift : array_like, default 0
            The constant the sums are taken about: ``sum_y = sum (Y - shift)``, ...
        sum_x, sum_xx, sum_yx : array_like, optional
            Covariate sums, cross-products and sums of Y X_j.
        shift_x : array_like, optional
            Constants the covariate sums are taken about (default 0).

        Returns
        -------
        RatioMoments
            With ``sum_m = sum_mm = n``, ``sum_vm = sum_y`` and ``sum_mx = sum_x``
            (and ``sum_vvm = sum_yy``, ``sum_vmm = sum_y``, ``sum_mmm = n``).

        Examples
        --------
        >>> m = RatioMoments.from_mean_sums(4, 10.0, 30.0)
        >>> float(m.sum_m), float(m.sum_vm)
        (4.0, 10.0)
        """
        cov: dict[str, Any] = {}
        if sum_x is not None or sum_xx is not None or sum_yx is not None:
            cov = dict(sum_x=sum_x, sum_xx=sum_xx, sum_vx=sum_yx, sum_mx=sum_x, shift_x=shift_x)
        elif shift_x is not None:
            raise ValueError("`shift_x` needs the covariate sums `sum_x`, `sum_xx`, `sum_yx`.")
        if sum_yyy is not None:
            cov.update(sum_vvv=sum_yyy, sum_vvm=sum_yy, sum_vmm=sum_y, sum_mmm=n)
        return cls(
            n=n, sum_v=sum_y, sum_m=n, sum_vv=sum_yy, sum_mm=n, sum_vm=sum_y, shift_v=shift, **cov
        )

    @classmethod
    def from_simulator(cls, moments: Any, arm: int, *, covariates: bool = True) -> RatioMoments:
        """Moments of one arm from the simulator's per-replicate ``Moments`` arrays.

        Parameters
        ----------
        moments : object or mapping
            Anything with the fields (attributes or keys) ``n, sum_v, sum_m, sum_vv,
            sum_mm, sum_vm`` and, for covariates, ``pre_sum_v, pre_sum_m,
            pre_sum_vv, pre_sum_mm, pre_sum_vm, sum_v_pre_v, sum_v_pre_m,
            sum_m_pre_v, sum_m_pre_m``, each of shape ``(R, 2)`` (column 0 control,
            column 1 treatment) as returned by ``sim.simulate_moments``. The
            third-order sums ``sum_vvv, sum_vvm, sum_vmm, sum_mmm`` are taken when
            present.
        arm : {0, 1}
            Column to take: 0 control, 1 treatment.
        covariates : bool
            Include the pre-period numerator and denominator as the two covariates
            ``X = (pre_V, pre_M)`` (use ``covariate_ratios=[(0, 1)]`` in
            :func:`~estimators.cuped_test_from_moments` for the pre-period ratio).

        Returns
        -------
        RatioMoments
            Fields of shape ``(R,)`` (covariate fields ``(R, 2)`` and ``(R, 2, 2)``).
        """
        if arm not in (0, 1) or isinstance(arm, bool):
            raise ValueError(f"`arm` must be 0 (control) or 1 (treatment); got {arm!r}.")

        def has(name: str) -> bool:
            if isinstance(moments, Mapping):
                return name in moments
            return getattr(moments, name, None) is not None

        def get(name: str) -> np.ndarray:
            value = moments[name] if isinstance(moments, Mapping) else getattr(moments, name)
            value = np.asarray(value, dtype=np.float64)
            if value.ndim < 1 or value.shape[-1] != 2:
                raise ValueError(
                    f"`moments.{name}` must have shape (..., 2) (control, treatment); "
                    f"got {value.shape}."
                )
            return value[..., arm]

        kw: dict[str, Any] = {f: get(f) for f in _SCALAR_FIELDS}
        if all(has(f) for f in _THIRD_FIELDS):
            kw.update({f: get(f) for f in _THIRD_FIELDS})
        if covariates:
            pv, pm = get("pre_sum_v"), get("pre_sum_m")
            pvv, pmm, pvm = get("pre_sum_vv"), get("pre_sum_mm"), get("pre_sum_vm")
            kw["sum_x"] = np.stack([pv, pm], axis=-1)
            kw["sum_xx"] = np.stack(
                [np.stack([pvv, pvm], axis=-1), np.stack([pvm, pmm], axis=-1)], axis=-2
            )
            kw["sum_vx"] = np.stack([get("sum_v_pre_v"), get("sum_v_pre_m")], axis=-1)
            kw["sum_mx"] = np.stack([get("sum_m_pre_v"), get("sum_m_pre_m")], axis=-1)
        return cls(**kw)

    # --------------------------------------------------------------- shifts, pooling
    def _assemble(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(n, shift, s, S, T)`` broadcast to the replicate shape, z = (V, M, X).

        ``s = sum (z - shift)`` (``S + (p,)``), ``S`` its cross-products
        (``S + (p, p)``), ``T`` the third-order sums of (V, M) (``S + (4,)``, NaN
        when absent).
        """
        shape = self.shape
        k = self.k
        p = 2 + k
        n = np.array(np.broadcast_to(self.n, shape), dtype=float)
        shift = np.empty(shape + (p,))
        s = np.empty(shape + (p,))
        S = np.empty(shape + (p, p))
        shift[..., 0] = self.shift_v
        shift[..., 1] = self.shift_m
        s[..., 0] = self.sum_v
        s[..., 1] = self.sum_m
        S[..., 0, 0] = self.sum_vv
        S[..., 1, 1] = self.sum_mm
        S[..., 0, 1] = S[..., 1, 0] = self.sum_vm
        if k:
            shift[..., 2:] = self.shift_x
            s[..., 2:] = self.sum_x
            S[..., 2:, 2:] = self.sum_xx
            S[..., 0, 2:] = S[..., 2:, 0] = self.sum_vx
            S[..., 1, 2:] = S[..., 2:, 1] = self.sum_mx
        T = np.full(shape + (4,), np.nan)
        if self.has_third:
            for j, f in enumerate(_THIRD_FIELDS):
                T[..., j] = getattr(self, f)
        return n, shift, s, S, T

    def reshift(
        self,
        shift_v: npt.ArrayLike,
        shift_m: npt.ArrayLike,
        shift_x: npt.ArrayLike | None = None,
    ) -> RatioMoments:
        """Return the same moments expressed about other shifts (exact algebra).

        Parameters
        ----------
        shift_v, shift_m : array_like
            New constants for V and M (broadcast with the replicate shape).
        shift_x : array_like, optional
            New covariate constants (default: unchanged).

        Returns
        -------
        RatioMoments
            With ``d = old - new``: ``s' = s + n d``, ``S' = S + d s' + s d' + n d d'``
            and ``T'_abc = T_abc + sum_{3 terms} d_a S_bc + sum_{3 terms} d_a d_b s_c
            + n d_a d_b d_c``; every estimate is unchanged (to rounding).

        Examples
        --------
        >>> m = RatioMoments.from_arrays([1.0, 2.0, 4.0], [1.0, 1.0, 2.0])
        >>> float(m.reshift(2.0, 1.0).sum_v), float(m.reshift(2.0, 1.0).sum_vv)
        (1.0, 5.0)
        """
        n, old, s, S, T = self._assemble()
        new = old.copy()
        new[..., 0] = shift_v
        new[..., 1] = shift_m
        if self.k and shift_x is not None:
            new[..., 2:] = shift_x
        d = old - new
        s2 = s + n[..., None] * d
        S2 = (
            S
            + d[..., :, None] * s[..., None, :]
            + s[..., :, None] * d[..., None, :]
            + n[..., None, None] * d[..., :, None] * d[..., None, :]
        )
        kw = self._disassemble(n, new, s2, S2, None)
        if self.has_third:
            T2 = np.empty(T.shape)
            for j, (a, b, c) in enumerate(_THIRD_INDEX):
                da, db, dc = d[..., a], d[..., b], d[..., c]
                T2[..., j] = (
                    T[..., j]
                    + da * S[..., b, c]
                    + db * S[..., a, c]
                    + dc * S[..., a, b]
                    + da * db * s[..., c]
                    + da * dc * s[..., b]
                    + db * dc * s[..., a]
                    + n * da * db * dc
                )
            kw.update({f: T2[..., j] for j, f in enumerate(_THIRD_FIELDS)})
        return RatioMoments(**kw)

    def _disassemble(self, n, shift, s, S, T) -> dict[str, Any]:
        kw: dict[str, Any] = dict(
            n=n,
            sum_v=s[..., 0],
            sum_m=s[..., 1],
            sum_vv=S[..., 0, 0],
            sum_mm=S[..., 1, 1],
            sum_vm=S[..., 0, 1],
            shift_v=shift[..., 0],
            shift_m=shift[..., 1],
        )
        if self.k:
            kw.update(
                sum_x=s[..., 2:],
                sum_xx=S[..., 2:, 2:],
                sum_vx=S[..., 0, 2:],
                sum_mx=S[..., 1, 2:],
                shift_x=shift[..., 2:],
            )
        if T is not None:
            kw.update({f: T[..., j] for j, f in enumerate(_THIRD_FIELDS)})
        return kw

    def __add__(self, other: RatioMoments) -> RatioMoments:
        """Pool two sets of moments (e.g. both arms, or two data partitions).

        Sums add once both parts are about the same shifts; where they differ, the
        right part is re-expressed (:meth:`reshift`) about the left part's shift,
        or about the right's own shift where the left's is 0. Third-order sums are
        kept only when both parts have them.
        """
        if not isinstance(other, RatioMoments):
            return NotImplemented
        if self.k != other.k:
            raise ValueError(f"cannot pool moments with {self.k} and {other.k} covariates.")

        def common(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.where(a != 0, a, b)

        sv, sm = common(self.shift_v, other.shift_v), common(self.shift_m, other.shift_m)
        sx = None if not self.k else common(self.shift_x, other.shift_x)
        left, right = self, other
        same = lambda a, b: a.shape == b.shape and bool(np.all(a == b))  # noqa: E731
        if not (same(self.shift_v, sv) and same(self.shift_m, sm)) or (
            self.k and not same(self.shift_x, sx)
        ):
            left = self.reshift(sv, sm, sx)
        if not (same(other.shift_v, sv) and same(other.shift_m, sm)) or (
            self.k and not same(other.shift_x, sx)
        ):
            right = other.reshift(sv, sm, sx)
        kw: dict[str, Any] = {}
        for f in fields(self):
            a, b = getattr(left, f.name), getattr(right, f.name)
            if f.name.startswith("shift_"):
                kw[f.name] = a
            elif f.name in _THIRD_FIELDS:
                kw[f.name] = None if (a is None or b is None) else a + b
            else:
                kw[f.name] = None if a is None else a + b
        return RatioMoments(**kw)

    # ----------------------------------------------------------- derived quantities
    def _stats(self) -> _ArmStats:
        """Centred moments of ``z = (V, M, X)`` (broadcast to the replicate shape)."""
        n, shift, s, S, T = self._assemble()
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = shift + s / n[..., None]
            ss = S - s[..., :, None] * s[..., None, :] / n[..., None, None]
            raw = np.diagonal(S, axis1=-2, axis2=-1) / n[..., None]
        ss = 0.5 * (ss + np.swapaxes(ss, -1, -2))
        m3 = _third_central(n, s, S, T) if self.has_third else None
        return _ArmStats(n, mean, ss, raw, m3)

    def ratio(self) -> np.ndarray:
        """Ratio of means ``Vbar / Mbar`` (the metric), replicate shape.

        Examples
        --------
        >>> float(RatioMoments.from_arrays([1.0, 3.0], [2.0, 2.0]).ratio())
        1.0
        """
        return self._stats().delta(0.0)["r"]

    def ratio_variance(self, ddof: float = 1) -> np.ndarray:
        """Delta-method variance of ``Vbar / Mbar`` (Deng et al. 2018; docs/theory.md §1).

        Parameters
        ----------
        ddof : float, default 1
            Delta degrees of freedom of ``var(L)`` (divisor ``n - ddof``).

        Returns
        -------
        ndarray
            ``var(L) / n = (s_V^2 - 2 R s_VM + R^2 s_M^2) / (n Mbar^2)``.

        Examples
        --------
        >>> m = RatioMoments.from_arrays([1.0, 3.0], [2.0, 2.0])
        >>> float(m.ratio_variance(ddof=0))
        0.125
        """
        return self._stats().delta(float(ddof))["var_r"]

    def linearization(self) -> tuple[np.ndarray, np.ndarray]:
        """Coefficients ``(a, b)`` of the linearisation ``L = a V + b M`` of the ratio.

        ``a = 1/Mbar``, ``b = -Vbar/Mbar^2`` (docs/theory.md §1 with sample means): the
        covariance of the ratio with anything is that of L ([2]_, App. B).

        Examples
        --------
        >>> a, b = RatioMoments.from_arrays([1.0, 3.0], [2.0, 2.0]).linearization()
        >>> float(a), float(b)
        (0.5, -0.5)
        """
        return self._stats().linear_coefficients()

    def ratio_covariate_transform(self, pairs: list[tuple[int, int]]) -> np.ndarray:
        """Matrix ``B`` turning covariate column pairs into linearised ratios.

        Parameters
        ----------
        pairs : list of (int, int)
            ``(numerator, denominator)`` column indices of ``X``.

        Returns
        -------
        ndarray, shape ``S + (len(pairs) + n_unpaired, k)``
            ``W = B X``: the ratio ``(i, j)`` is linearised at this arm's means,
            ``X_i/xbar_j - (xbar_i/xbar_j^2) X_j``; unpaired columns pass through.
            (:func:`~estimators.cuped_test` uses the pooled means of both arms.)
        """
        st = self._stats()
        return ratio_covariate_matrix(st.mean[..., 2:], list(pairs), self.k)
