"""Shared test configuration: a derandomised hypothesis profile (JIT compilation breaks
deadlines, and CI must be deterministic)."""

import signal
import threading

from hypothesis import HealthCheck, settings

# pytest-xdist workers start with SIGINT ignored, and an ignored signal stays ignored in
# every process they start: the Ctrl-C tests' subprocesses (and the in-process ones)
# would never see the interrupt. Restore Python's default handler in the worker.
if (
    threading.current_thread() is threading.main_thread()
    and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
):
    signal.signal(signal.SIGINT, signal.default_int_handler)

settings.register_profile(
    "suite",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=50,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("suite")
