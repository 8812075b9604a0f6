"""Monte Carlo checks that the estimators are calibrated and the corrected gradients
unbiased (SPEC §5), with a registry that the report runner reads.
"""

from validation.core import (
    Check,
    CheckResult,
    NegativeControl,
    RunContext,
    get_check,
    iter_checks,
    register,
)
from validation.mc import Z_FAMILY, family_wise_rate, mcse_mean, mcse_proportion

__all__ = [
    "Check",
    "CheckResult",
    "NegativeControl",
    "RunContext",
    "Z_FAMILY",
    "family_wise_rate",
    "get_check",
    "iter_checks",
    "mcse_mean",
    "mcse_proportion",
    "register",
]
