"""Normalisation of the public ``rng`` argument to a :class:`numpy.random.SeedSequence`."""

from __future__ import annotations

import numbers

import numpy as np

RngLike = int | np.random.SeedSequence | None


def as_seed_sequence(rng: RngLike) -> np.random.SeedSequence:
    """Return ``rng`` as a :class:`numpy.random.SeedSequence`.

    Parameters
    ----------
    rng : int, numpy.random.SeedSequence or None
        A non-negative integer seed, an existing seed sequence (returned as is), or
        ``None`` for fresh OS entropy (the entropy is kept in ``.entropy`` so that the
        draw can be reproduced).

    Returns
    -------
    numpy.random.SeedSequence

    Raises
    ------
    TypeError
        If ``rng`` is of another type (a ``numpy.random.Generator`` is refused: its
        state cannot be split into per-replicate streams reproducibly).
    ValueError
        If ``rng`` is a negative integer.

    Examples
    --------
    >>> as_seed_sequence(0).entropy
    0
    """
    if rng is None:
        return np.random.SeedSequence()
    if isinstance(rng, np.random.SeedSequence):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if int(rng) < 0:
            raise ValueError(f"`rng` must be a non-negative integer seed; got {int(rng)}.")
        return np.random.SeedSequence(int(rng))
    raise TypeError(
        f"`rng` must be an int, a numpy.random.SeedSequence or None; got {type(rng).__name__}."
    )


def child_sequences(
    ss: np.random.SeedSequence, n: int, *, start: int = 0
) -> list[np.random.SeedSequence]:
    """Return ``n`` children of ``ss``, from child ``start`` on, without advancing it.

    ``SeedSequence.spawn`` mutates its parent, so two calls with the same object would
    draw different replicates. Child ``r`` here is always the one ``ss.spawn`` would
    have produced as its ``r``-th child from a fresh parent, so replicate ``r`` depends
    only on ``(ss.entropy, ss.spawn_key, r)``; ``start`` lets a block of replicates
    ``[start, start + n)`` derive its own children (``child_sequences(ss, 5)[3:]`` equals
    ``child_sequences(ss, 2, start=3)``).

    Examples
    --------
    >>> ss = np.random.SeedSequence(1)
    >>> a = child_sequences(ss, 3)[2].generate_state(1)
    >>> b = np.random.SeedSequence(1).spawn(3)[2].generate_state(1)
    >>> bool((a == b).all())
    True
    """
    if n < 0:
        raise ValueError(f"`n` must be >= 0; got {n}.")
    if start < 0:
        raise ValueError(f"`start` must be >= 0; got {start}.")
    return [
        np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, r), pool_size=ss.pool_size)
        for r in range(start, start + n)
    ]
