"""Monte Carlo standard errors and the tolerance bands every check uses (docs/theory.md §5).

A check passes when ``|figure - expected| <= tolerance`` with
``tolerance = z * mcse``. The report uses one ``z`` for every cell, :data:`Z_FAMILY`,
chosen so that the chance that *any* cell of a report fails by Monte Carlo noise
alone is below 1 %: a two-sided normal tail beyond 4 is 6.3e-5, so a report of up
to 150 cells has a family-wise false-failure rate of at most 150 * 6.3e-5 < 1 %
(Bonferroni). :func:`family_wise_rate` states the bound for the actual cell count.
"""

from __future__ import annotations

import math

from scipy import special

#: The z multiplier of every Monte Carlo tolerance in the report.
Z_FAMILY: float = 4.0


def two_sided_tail(z: float) -> float:
    """Return P(|N(0, 1)| > z)."""
    return float(special.erfc(z / math.sqrt(2.0)))


def family_wise_rate(n_cells: int, z: float = Z_FAMILY) -> float:
    """Bonferroni bound on the chance that any of ``n_cells`` cells fails by noise alone.

    Examples
    --------
    >>> round(family_wise_rate(100), 4)
    0.0063
    """
    if n_cells < 0:
        raise ValueError(f"`n_cells` must be >= 0; got {n_cells}.")
    return min(1.0, n_cells * two_sided_tail(z))


def mcse_proportion(p: float, n_replicates: int) -> float:
    """Monte Carlo standard error of a proportion estimated from ``n_replicates`` draws.

    Use the *claimed* proportion (e.g. 0.95 for coverage, alpha for a false-positive
    rate) so the band does not depend on the noisy estimate.

    Examples
    --------
    >>> round(mcse_proportion(0.95, 10_000), 5)
    0.00218
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"`p` must be in [0, 1]; got {p}.")
    if n_replicates < 1:
        raise ValueError(f"`n_replicates` must be >= 1; got {n_replicates}.")
    return math.sqrt(p * (1.0 - p) / n_replicates)


def mcse_mean(sd: float, n_replicates: int) -> float:
    """Monte Carlo standard error of a mean of ``n_replicates`` draws with s.d. ``sd``."""
    if n_replicates < 1:
        raise ValueError(f"`n_replicates` must be >= 1; got {n_replicates}.")
    return float(sd) / math.sqrt(n_replicates)


def proportion_tolerance(p: float, n_replicates: int, z: float = Z_FAMILY) -> float:
    """``z`` Monte Carlo standard errors of a proportion ``p`` over ``n_replicates``."""
    return z * mcse_proportion(p, n_replicates)


def band(expected: float, mcse: float, z: float = Z_FAMILY) -> tuple[float, float]:
    """Return the acceptance interval ``expected ± z * mcse``."""
    return expected - z * mcse, expected + z * mcse


#: Batches of every pilot whose Monte Carlo s.e. comes from batch means.
PILOT_BATCHES: int = 16


def pilot_sigma(batch_sigmas) -> tuple[float, float]:
    """Pool per-batch standard deviations of a pilot: ``(sigma, its Monte Carlo s.e.)``.

    ``sigma = sqrt(mean of the batch variances)`` and its s.e. is the standard
    deviation of the batch sigmas over ``sqrt(n_batches)`` (batch means). Every pilot
    of the suite (power checks, calibrate's power cells) goes through this helper.

    Examples
    --------
    >>> s, se = pilot_sigma([1.0, 1.0, 1.0])
    >>> (s, se)
    (1.0, 0.0)
    """
    import numpy as np

    sig = np.asarray(batch_sigmas, dtype=np.float64)
    if sig.ndim != 1 or sig.size < 2:
        raise ValueError(f"`batch_sigmas` must be 1-D with >= 2 batches; got shape {sig.shape}.")
    if not np.all(np.isfinite(sig)) or (sig < 0).any():
        raise ValueError("`batch_sigmas` must be finite and >= 0.")
    return float(np.sqrt(np.mean(sig**2))), float(np.std(sig, ddof=1) / math.sqrt(sig.size))


def run_blocks(block, n_replicates: int, ss, block_size: int, *, progress=None) -> list:
    """Run ``block(start, stop, seed_sequence)`` over fixed-size replicate blocks, in order.

    The one replicate-block loop of the suite, and so the single place to fan the blocks
    out to workers. Block ``k`` covers replicates ``[k * block_size, min(n, (k + 1) *
    block_size))`` and gets the ``k``-th child of ``ss``; the figures therefore depend
    only on the seed and ``block_size``, never on how (or where) the blocks run.

    Parameters
    ----------
    block : callable
        ``block(start, stop, seed_sequence) -> result`` for one block.
    n_replicates : int
        Total replicates (>= 1).
    ss : numpy.random.SeedSequence
        Seed key of the cell or scenario (:meth:`validation.core.RunContext.seed_sequence`).
    block_size : int
        Replicates per block (>= 1), fixed for determinism.
    progress : callable or None
        ``progress(k)`` after each task of the backend, ``k`` the blocks it ran.

    Returns
    -------
    list
        The blocks' results in block order.

    Examples
    --------
    >>> import numpy as np
    >>> out = run_blocks(lambda a, b, s: b - a, 10, np.random.SeedSequence(0), 4)
    >>> out
    [4, 4, 2]
    """
    from sim import map_blocks
    from sim._fanout import serial_unless_distributed

    if n_replicates < 1:
        raise ValueError(f"`n_replicates` must be >= 1; got {n_replicates}.")
    if block_size < 1:
        raise ValueError(f"`block_size` must be >= 1; got {block_size}.")
    n_blocks = -(-n_replicates // block_size)
    # blocks k0..k1-1 per task of the backend (docs/scaling.md): in this thread, one
    # after another, unless a sim.use_backend session sends them to processes/a cluster
    parts = map_blocks(
        _block_range,
        n_blocks,
        args=(block, n_replicates, ss, block_size),
        backend=serial_unless_distributed(),
        progress=progress,
    )
    return [result for part in parts for result in part]


def _block_range(k0: int, k1: int, block, n_replicates: int, ss, block_size: int) -> list:
    """Blocks ``k0 .. k1 - 1`` of :func:`run_blocks`, block k seeded by child k of ``ss``."""
    from sim._seed import child_sequences

    return [
        block(k * block_size, min(n_replicates, (k + 1) * block_size), child)
        for k, child in enumerate(child_sequences(ss, k1 - k0, start=k0), start=k0)
    ]
