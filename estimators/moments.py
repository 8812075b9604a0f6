"""Per-arm sufficient statistics (SQL-style aggregates) for every test (SPEC §1, §3).

A ratio metric V/M with covariates X is summarised per arm by the count, the sums
and the sums of cross-products of the unit vector ``z = (V, M, X_1, ..., X_k)``.
Every estimate of this package is a function of these moments only, so
``ratio_test``, ``mean_test`` and ``cuped_test`` computed from
:class:`RatioMoments` equal the per-unit computation to rounding, whatever the
number of units. Fields may be arrays over replicates; the tests then broadcast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from ._validate import as_float_array, clean_units

_SCALAR_FIELDS = ("n", "sum_v", "sum_m", "sum_vv", "sum_mm", "sum_vm")
_COVARIATE_FIELDS = ("sum_x", "sum_xx", "sum_vx", "sum_mx")


@dataclass(frozen=True, slots=True)
class _ArmStats:
    """Centred moments of ``z = (V, M, X...)`` in one arm (leading replicate axes).

    ``n`` has the replicate shape ``S``; ``mean`` is ``S + (p,)``; ``ss`` (sum of
    squares and cross-products about the arm mean) is ``S + (p, p)``; ``raw`` is the
    diagonal of the raw second moments divided by ``n`` (``S + (p,)``), used as the
    scale of rounding-error tolerances.
    """

    n: np.ndarray
    mean: np.ndarray
    ss: np.ndarray
    raw: np.ndarray

    @classmethod
    def from_units(cls, z: np.ndarray) -> _ArmStats:
        """Two-pass centred moments from a ``(n, p)`` unit matrix."""
        n = z.shape[0]
        mean = z.mean(axis=0)
        dev = z - mean
        ss = dev.T @ dev
        ss = 0.5 * (ss + ss.T)
        raw = mean**2 + np.diag(ss) / n
        return cls(np.asarray(float(n)), mean, ss, raw)


@dataclass(frozen=True, slots=True)
class RatioMoments:
    """Sufficient statistics of one arm for a ratio metric V/M and covariates X.

    A mean metric is the ratio metric with ``M = 1`` for every unit (see
    :meth:`from_mean_sums`). All fields are stored as ``float64`` arrays; the
    scalar fields share a broadcastable replicate shape ``S`` (``()`` for a single
    experiment, ``(R,)`` for R simulated replicates), the covariate fields add
    trailing axes of length ``k``.

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

    Notes
    -----
    With ``z = (V, M, X)`` the arm mean is ``sum z / n`` and the centred
    cross-product matrix is ``sum z z' - (sum z)(sum z)' / n``; every estimator
    here (delta method [1]_, CUPED [2]_) is a function of these. Raw sums lose
    precision when a mean is huge relative to the standard deviation (about
    ``eps * mean^2 / var`` relative error); counts and rates are far from that.

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

    def __post_init__(self) -> None:
        for name in _SCALAR_FIELDS:
            value = as_float_array(f"RatioMoments.{name}", getattr(self, name), ndim=(0, 1, 2, 3))
            if not np.isfinite(value).all():
                raise ValueError(f"`RatioMoments.{name}` must be finite; got {value!r}.")
            object.__setattr__(self, name, value)
        try:
            shape = np.broadcast_shapes(*(getattr(self, f).shape for f in _SCALAR_FIELDS))
        except ValueError as exc:
            shapes = {f: getattr(self, f).shape for f in _SCALAR_FIELDS}
            raise ValueError(
                f"`RatioMoments` scalar fields must have broadcastable shapes; got {shapes}."
            ) from exc
        for name in ("n", "sum_vv", "sum_mm"):
            value = getattr(self, name)
            if (value < 0).any():
                raise ValueError(
                    f"`RatioMoments.{name}` must be >= 0; got {float(value[value < 0].ravel()[0])}."
                )
        present = [getattr(self, f) is not None for f in _COVARIATE_FIELDS]
        if any(present) and not all(present):
            missing = [f for f, p in zip(_COVARIATE_FIELDS, present, strict=True) if not p]
            raise ValueError(
                f"`RatioMoments` covariate fields {list(_COVARIATE_FIELDS)} must be given "
                f"together; missing {missing}."
            )
        if not any(present):
            return
        sum_x = as_float_array("RatioMoments.sum_x", self.sum_x, ndim=(1, 2, 3, 4))
        k = sum_x.shape[-1]
        expected = {"sum_x": (k,), "sum_xx": (k, k), "sum_vx": (k,), "sum_mx": (k,)}
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

    # ------------------------------------------------------------------ properties
    @property
    def k(self) -> int:
        """Number of covariates (0 when there are none)."""
        return 0 if self.sum_x is None else int(self.sum_x.shape[-1])

    @property
    def shape(self) -> tuple[int, ...]:
        """Broadcast replicate shape of the fields (``()`` for one experiment)."""
        shapes = [getattr(self, f).shape for f in _SCALAR_FIELDS]
        if self.sum_x is not None:
            shapes += [self.sum_x.shape[:-1], self.sum_xx.shape[:-2]]
            shapes += [self.sum_vx.shape[:-1], self.sum_mx.shape[:-1]]
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
        """Aggregate per-unit arrays into moments.

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
            Moments with scalar (0-d) fields.
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
        kw: dict[str, Any] = {}
        if X is not None:
            x = cols["X"]
            kw = dict(sum_x=x.sum(0), sum_xx=x.T @ x, sum_vx=v @ x, sum_mx=m @ x)
        return cls(
            n=float(v.shape[0]),
            sum_v=v.sum(),
            sum_m=m.sum(),
            sum_vv=v @ v,
            sum_mm=m @ m,
            sum_vm=v @ m,
            **kw,
        )

    @classmethod
    def from_mean_sums(
        cls,
        n: npt.ArrayLike,
        sum_y: npt.ArrayLike,
        sum_yy: npt.ArrayLike,
        *,
        sum_x: npt.ArrayLike | None = None,
        sum_xx: npt.ArrayLike | None = None,
        sum_yx: npt.ArrayLike | None = None,
    ) -> RatioMoments:
        """Moments of a mean metric Y (the ratio metric with M = 1 per unit).

        Parameters
        ----------
        n, sum_y, sum_yy : array_like
            Unit count, sum of Y and sum of Y^2 (broadcastable replicate shapes).
        sum_x, sum_xx, sum_yx : array_like, optional
            Covariate sums, cross-products and sums of Y X_j.

        Returns
        -------
        RatioMoments
            With ``sum_m = sum_mm = n``, ``sum_vm = sum_y`` and ``sum_mx = sum_x``.

        Examples
        --------
        >>> m = RatioMoments.from_mean_sums(4, 10.0, 30.0)
        >>> float(m.sum_m), float(m.sum_vm)
        (4.0, 10.0)
        """
        cov = {}
        if sum_x is not None or sum_xx is not None or sum_yx is not None:
            cov = dict(sum_x=sum_x, sum_xx=sum_xx, sum_vx=sum_yx, sum_mx=sum_x)
        return cls(n=n, sum_v=sum_y, sum_m=n, sum_vv=sum_yy, sum_mm=n, sum_vm=sum_y, **cov)

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
            column 1 treatment) as returned by ``sim.simulate_moments``.
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

    def __add__(self, other: RatioMoments) -> RatioMoments:
        """Pool two sets of moments (e.g. both arms, or two data partitions)."""
        if not isinstance(other, RatioMoments):
            return NotImplemented
        if self.k != other.k:
            raise ValueError(f"cannot pool moments with {self.k} and {other.k} covariates.")
        kw = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            kw[f.name] = None if a is None else a + b
        return RatioMoments(**kw)

    # ------------------------------------------------------------------ internals
    def _stats(self) -> _ArmStats:
        """Centred moments of ``z = (V, M, X)`` (broadcast to the replicate shape)."""
        shape = self.shape
        k = self.k
        p = 2 + k
        n = np.broadcast_to(self.n, shape)
        s = np.empty(shape + (p,))
        S = np.empty(shape + (p, p))
        s[..., 0] = self.sum_v
        s[..., 1] = self.sum_m
        S[..., 0, 0] = self.sum_vv
        S[..., 1, 1] = self.sum_mm
        S[..., 0, 1] = S[..., 1, 0] = self.sum_vm
        if k:
            s[..., 2:] = self.sum_x
            S[..., 2:, 2:] = self.sum_xx
            S[..., 0, 2:] = S[..., 2:, 0] = self.sum_vx
            S[..., 1, 2:] = S[..., 2:, 1] = self.sum_mx
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = s / n[..., None]
            ss = S - s[..., :, None] * s[..., None, :] / n[..., None, None]
            raw = np.diagonal(S, axis1=-2, axis2=-1) / n[..., None]
        ss = 0.5 * (ss + np.swapaxes(ss, -1, -2))
        return _ArmStats(np.asarray(n, dtype=float), mean, ss, raw)
