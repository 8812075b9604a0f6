"""Which columns feed the moments, checked once for every entry point."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

NAN_POLICIES = ("raise", "omit")


@dataclass(frozen=True, slots=True)
class MomentSpec:
    """Column roles of one ``RatioMoments`` aggregation.

    Attributes
    ----------
    unit, arm : str
        Randomisation-unit id and arm-label columns.
    numerator : str
        Column summed per unit into V.
    denominator : str or None
        Column summed per unit into M; ``None`` for a mean metric (M = 1 per unit).
    covariates : tuple of str
        Columns summed per unit into the covariates X (missing values count as 0).
    presence : bool
        Append a covariate equal to 1 for units with at least one non-NULL covariate
        value and 0 otherwise.
    nan_policy : {"raise", "omit"}
        What a NULL in a metric column does: raise, or drop the unit.
    """

    unit: str
    arm: str
    numerator: str
    denominator: str | None
    covariates: tuple[str, ...]
    presence: bool
    nan_policy: str

    @property
    def k(self) -> int:
        """Number of covariate columns of the result (the indicator included)."""
        return len(self.covariates) + int(self.presence)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every input column the aggregation reads, in a stable order."""
        cols = [self.unit, self.arm, self.numerator]
        if self.denominator is not None:
            cols.append(self.denominator)
        cols.extend(self.covariates)
        return tuple(dict.fromkeys(cols))


def _name(role: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"`{role}` must be a non-empty column name (str); got {value!r}.")
    return value


def make_spec(
    unit: object,
    arm: object,
    numerator: object,
    denominator: object = None,
    covariates: object = (),
    presence: object = False,
    nan_policy: object = "raise",
) -> MomentSpec:
    """Validate the column keywords and return their :class:`MomentSpec`.

    Shared by ``moments_from_frame``, ``moments_from_sql`` and ``moments_sql``.
    """
    unit, arm, numerator = _name("unit", unit), _name("arm", arm), _name("numerator", numerator)
    if denominator is not None:
        denominator = _name("denominator", denominator)
    if isinstance(covariates, str) or not isinstance(covariates, Sequence):
        raise TypeError(
            f"`covariates` must be a sequence of column names (list or tuple); got {covariates!r}."
        )
    covs = tuple(_name("covariates", c) for c in covariates)
    if len(set(covs)) != len(covs):
        raise ValueError(f"`covariates` must not repeat a column; got {list(covs)}.")
    if not isinstance(presence, bool):
        raise TypeError(f"`presence` must be a bool; got {presence!r}.")
    if presence and not covs:
        raise ValueError("`presence=True` needs at least one column in `covariates`.")
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"`nan_policy` must be one of {list(NAN_POLICIES)}; got {nan_policy!r}.")
    if unit == arm:
        raise ValueError(f"`unit` and `arm` must be different columns; got {unit!r} for both.")
    return MomentSpec(unit, arm, numerator, denominator, covs, presence, str(nan_policy))
