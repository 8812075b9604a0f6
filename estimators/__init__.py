"""Delta method, power and sample size, CUPED and OLS equivalences (SPEC §1-3).

Pure functions of arrays (or of per-arm sufficient statistics) returning frozen
result objects. This package imports nothing else of the suite.
"""

__all__: list[str] = []
