"""Shared test configuration: a derandomised hypothesis profile (JIT compilation breaks
deadlines, and CI must be deterministic)."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "suite",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=50,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("suite")
