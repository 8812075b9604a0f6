"""MovieLens data for next-watch candidate generation (docs/theory.md §4).

A loader for the MovieLens rating files (``ratings.csv`` of ml-latest-small / ml-25m,
``ratings.dat`` of ml-1m / ml-10m), a generator of synthetic files in the same
format, user-disjoint and temporal splits, and vectorised construction of the
next-watch training examples (a target position and the up-to-30 positives before
it).

The layout is CSR: user ``u``'s positives, sorted by time (ties by item id), are
``items[indptr[u]:indptr[u + 1]]``. Items carry a dense index ``0..n_items-1`` into
the catalog ``item_ids`` (the raw MovieLens ``movieId`` of each index); the catalog is
fixed when the ratings are read and is shared by every split made from them, so that
a model trained on one split scores the items of another.

References
----------
.. [1] P. Covington, J. Adams, E. Sargin, "Deep Neural Networks for YouTube
   Recommendations", RecSys 2016.
.. [2] F. M. Harper, J. A. Konstan, "The MovieLens Datasets: History and Context",
   ACM TiiS 5(4), 2015.
"""

from __future__ import annotations

import hashlib
import io
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from sim import RngLike, as_seed_sequence

__all__ = [
    "RATING_COLUMNS",
    "Examples",
    "Interactions",
    "generate_synthetic_ratings",
    "interactions_from_ratings",
    "kfold_user_splits",
    "leave_last_out",
    "load_movielens",
    "make_examples",
    "random_user_split",
    "ratings_fingerprint",
    "read_ratings",
    "synthetic_movielens",
    "write_ratings",
]

RATING_COLUMNS = ("userId", "movieId", "rating", "timestamp")
"""Column names of a MovieLens ratings table, in file order."""

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Interactions:
    """Each user's positive items in time order (CSR layout).

    Attributes
    ----------
    indptr : numpy.ndarray of int64, shape (n_users + 1,)
        User ``u``'s positives are ``items[indptr[u]:indptr[u + 1]]``.
    items : numpy.ndarray of int64, shape (n_positives,)
        Dense item index (into ``item_ids``) of each positive, sorted per user by
        timestamp, ties broken by raw item id.
    timestamps : numpy.ndarray of int64, shape (n_positives,)
        Unix time of each positive.
    user_ids : numpy.ndarray of int64, shape (n_users,)
        Raw MovieLens ``userId`` of each user row (increasing).
    item_ids : numpy.ndarray of int64, shape (n_items,)
        Raw MovieLens ``movieId`` of each dense item index: the catalog, shared by all
        splits made from the same ratings.
    fingerprint : str
        sha256 (hex) of the ratings the data came from (:func:`ratings_fingerprint`).
    """

    indptr: IntArray
    items: IntArray
    timestamps: IntArray
    user_ids: IntArray
    item_ids: IntArray
    fingerprint: str

    @property
    def n_users(self) -> int:
        """Number of users."""
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        """Size of the catalog."""
        return int(self.item_ids.shape[0])

    @property
    def n_positives(self) -> int:
        """Number of positives over all users."""
        return int(self.items.shape[0])

    @property
    def lengths(self) -> IntArray:
        """Number of positives of each user, shape (n_users,)."""
        return np.diff(self.indptr)

    def subset(self, users: npt.ArrayLike) -> Interactions:
        """Return the users at row indices ``users`` (in that order), same catalog.

        Parameters
        ----------
        users : array_like of int, shape (m,)
            Row indices in ``0..n_users-1``, without repeats.

        Returns
        -------
        Interactions
            ``m`` users; ``item_ids`` and ``fingerprint`` unchanged.
        """
        given = np.asarray(users)
        if given.size and not np.issubdtype(given.dtype, np.integer):
            raise TypeError(
                f"`users` must be integer row indices; got {given.dtype} (use "
                "np.flatnonzero(mask) for a boolean mask)."
            )
        rows = given.astype(np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_users):
            raise ValueError(
                f"`users` must be row indices in [0, {self.n_users}); "
                f"got values in [{rows.min()}, {rows.max()}]."
            )
        if np.unique(rows).size != rows.size:
            raise ValueError("`users` must not repeat a user.")
        lengths = self.lengths[rows]
        indptr = np.zeros(rows.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        # gather positions of every kept positive: start of its user + offset
        offsets = np.arange(indptr[-1], dtype=np.int64) - np.repeat(indptr[:-1], lengths)
        source = np.repeat(self.indptr[:-1][rows], lengths) + offsets  # (n_kept,)
        return Interactions(
            indptr=indptr,
            items=self.items[source],
            timestamps=self.timestamps[source],
            user_ids=self.user_ids[rows],
            item_ids=self.item_ids,
            fingerprint=self.fingerprint,
        )


@dataclass(frozen=True, slots=True)
class Examples:
    """Next-watch examples: a target positive and the positives just before it.

    Attributes
    ----------
    history : numpy.ndarray of int64, shape (n, max_history)
        Dense item indices of the up-to-``max_history`` positives preceding the
        target, oldest first and right-aligned (the last column is the positive just
        before the target); empty slots are ``-1`` on the left.
    target : numpy.ndarray of int64, shape (n,)
        Dense item index of the target positive.
    user_id : numpy.ndarray of int64, shape (n,)
        Raw ``userId`` of the example's user.
    position : numpy.ndarray of int64, shape (n,)
        Position of the target in its user's time-ordered positives (0 = first).
    """

    history: IntArray
    target: IntArray
    user_id: IntArray
    position: IntArray

    @property
    def n_examples(self) -> int:
        """Number of examples."""
        return int(self.target.shape[0])

    @property
    def history_length(self) -> IntArray:
        """Number of non-empty history slots of each example, shape (n,)."""
        return (self.history >= 0).sum(axis=1).astype(np.int64)

    def take(self, index: npt.ArrayLike) -> Examples:
        """Return the examples at ``index`` (any integer index or boolean mask)."""
        idx = np.asarray(index)
        return Examples(
            history=self.history[idx],
            target=self.target[idx],
            user_id=self.user_id[idx],
            position=self.position[idx],
        )


# --------------------------------------------------------------------------- reading


def ratings_fingerprint(ratings: pd.DataFrame) -> str:
    """Return the sha256 (hex) of ``ratings`` serialised as a MovieLens ``ratings.csv``.

    A file written by :func:`write_ratings` has exactly this digest as the sha256 of
    its bytes, so generated and re-read data carry the same fingerprint.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Columns ``userId, movieId, rating, timestamp``.

    Returns
    -------
    str
        64 hexadecimal characters.
    """
    return hashlib.sha256(_ratings_csv_bytes(ratings)).hexdigest()


def _ratings_csv_bytes(ratings: pd.DataFrame) -> bytes:
    table = ratings.loc[:, list(RATING_COLUMNS)]
    return table.to_csv(index=False, float_format="%.1f", lineterminator="\n").encode()


def write_ratings(ratings: pd.DataFrame, path: str | Path) -> Path:
    """Write ``ratings`` as a MovieLens file.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Columns ``userId, movieId, rating, timestamp``.
    path : str or pathlib.Path
        A ``.dat`` suffix writes the ml-1m format (``::``-separated, no header);
        anything else writes the ``ratings.csv`` format with a header.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    _validate_ratings_frame(ratings, "ratings")
    out = Path(path)
    if out.suffix == ".dat":
        table = ratings.loc[:, list(RATING_COLUMNS)]
        lines = [
            f"{int(u)}::{int(m)}::{r:g}::{int(t)}"
            for u, m, r, t in table.itertuples(index=False, name=None)
        ]
        out.write_text("\n".join(lines) + "\n")
    else:
        out.write_bytes(_ratings_csv_bytes(ratings))
    return out


def read_ratings(path: str | Path) -> tuple[pd.DataFrame, str]:
    """Read a MovieLens ratings file and its sha256.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``ratings.csv`` (header ``userId,movieId,rating,timestamp``; ml-latest-small,
        ml-25m) or a ``ratings.dat`` (``userId::movieId::rating::timestamp``, no header;
        ml-1m, ml-10m), or a directory holding one of them.

    Returns
    -------
    ratings : pandas.DataFrame
        Columns ``userId`` (int64), ``movieId`` (int64), ``rating`` (float64),
        ``timestamp`` (int64).
    fingerprint : str
        sha256 (hex) of the file's bytes.

    Raises
    ------
    FileNotFoundError
        If the path (or a ratings file in the directory) does not exist.
    ValueError
        If the file does not have exactly the four MovieLens columns, or has missing or
        non-numeric values.
    """
    file = _resolve_ratings_path(path)
    raw = file.read_bytes()
    fingerprint = hashlib.sha256(raw).hexdigest()
    if file.suffix == ".dat" or b"::" in raw[:4096]:
        text = raw.replace(b"::", b"\t")
        try:
            frame = pd.read_csv(io.BytesIO(text), sep="\t", header=None)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise ValueError(f"`path` {str(file)!r} is not a MovieLens file: {exc}") from exc
        if frame.shape[1] != len(RATING_COLUMNS):
            raise ValueError(
                f"`path` {str(file)!r} must have 4 '::'-separated columns "
                f"(userId::movieId::rating::timestamp); got {frame.shape[1]}."
            )
        frame.columns = list(RATING_COLUMNS)
    else:
        try:
            frame = pd.read_csv(io.BytesIO(raw))
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise ValueError(f"`path` {str(file)!r} is not a MovieLens file: {exc}") from exc
        missing = [c for c in RATING_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(
                f"`path` {str(file)!r} must have the columns {', '.join(RATING_COLUMNS)}; "
                f"missing {', '.join(missing)} (got columns {list(frame.columns)})."
            )
        frame = frame.loc[:, list(RATING_COLUMNS)]
    return _coerce_ratings_frame(frame, str(file)), fingerprint


def _resolve_ratings_path(path: str | Path) -> Path:
    if not isinstance(path, str | Path):
        raise TypeError(f"`path` must be a str or pathlib.Path; got {type(path).__name__}.")
    file = Path(path)
    if file.is_dir():
        for name in ("ratings.csv", "ratings.dat"):
            if (file / name).is_file():
                return file / name
        raise FileNotFoundError(
            f"`path` {str(file)!r} is a directory without ratings.csv or ratings.dat."
        )
    if not file.is_file():
        raise FileNotFoundError(f"`path` {str(file)!r} does not exist.")
    return file


def _coerce_ratings_frame(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    out = {}
    for column, dtype in zip(RATING_COLUMNS, ("int64", "int64", "float64", "int64"), strict=True):
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise ValueError(
                f"column `{column}` of {source!r} must be numeric without missing values; "
                f"row {row} is {frame[column].iloc[row]!r}."
            )
        finite = np.isfinite(values.to_numpy(dtype=np.float64))
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            raise ValueError(
                f"column `{column}` of {source!r} must be finite; row {row} is "
                f"{frame[column].iloc[row]!r}."
            )
        if dtype == "int64" and not np.all(np.mod(values.to_numpy(dtype=np.float64), 1) == 0):
            raise ValueError(f"column `{column}` of {source!r} must hold integers.")
        out[column] = values.to_numpy().astype(dtype)
    return pd.DataFrame(out)


def _validate_ratings_frame(ratings: object, name: str) -> None:
    if not isinstance(ratings, pd.DataFrame):
        raise TypeError(f"`{name}` must be a pandas.DataFrame; got {type(ratings).__name__}.")
    missing = [c for c in RATING_COLUMNS if c not in ratings.columns]
    if missing:
        raise ValueError(
            f"`{name}` must have the columns {', '.join(RATING_COLUMNS)}; "
            f"missing {', '.join(missing)}."
        )


def _validate_interactions_from_ratings(threshold: float, min_positives: int) -> None:
    if not isinstance(threshold, numbers.Real) or isinstance(threshold, bool):
        raise TypeError(f"`threshold` must be a real number; got {type(threshold).__name__}.")
    if not np.isfinite(threshold):
        raise ValueError(f"`threshold` must be finite; got {threshold}.")
    if not isinstance(min_positives, numbers.Integral) or isinstance(min_positives, bool):
        raise TypeError(f"`min_positives` must be an integer; got {type(min_positives).__name__}.")
    if min_positives < 1:
        raise ValueError(f"`min_positives` must be >= 1; got {min_positives}.")


def interactions_from_ratings(
    ratings: pd.DataFrame,
    *,
    threshold: float = 3.0,
    min_positives: int = 33,
    fingerprint: str | None = None,
) -> Interactions:
    """Turn a ratings table into time-ordered positives per user.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Columns ``userId, movieId, rating, timestamp``.
    threshold : float, default 3.0
        Ratings ``>= threshold`` are positives (docs/theory.md §4).
    min_positives : int, default 33
        Users with fewer positives are dropped. The default keeps users with more than
        32 positives, as the reference implementation did (docs/theory.md §4); on ml-latest-small
        that leaves about 450 users.
    fingerprint : str, optional
        Stored in the result; defaults to :func:`ratings_fingerprint` of ``ratings``.

    Returns
    -------
    Interactions
        Users in increasing ``userId``; the catalog is every item that is a positive of
        a kept user, in increasing ``movieId``. A user's repeated rating of one item
        (not in MovieLens, possible in other logs) is kept as a repeat.

    Raises
    ------
    ValueError
        If no user is left after the filter.
    """
    _validate_ratings_frame(ratings, "ratings")
    _validate_interactions_from_ratings(threshold, min_positives)
    if fingerprint is None:
        fingerprint = ratings_fingerprint(ratings)
    user = ratings["userId"].to_numpy(dtype=np.int64)
    item = ratings["movieId"].to_numpy(dtype=np.int64)
    rating = ratings["rating"].to_numpy(dtype=np.float64)
    time = ratings["timestamp"].to_numpy(dtype=np.int64)
    keep = rating >= threshold
    user, item, time = user[keep], item[keep], time[keep]
    order = np.lexsort((item, time, user))  # by user, then time, then item id
    user, item, time = user[order], item[order], time[order]
    user_ids, counts = np.unique(user, return_counts=True)
    kept_users = counts >= min_positives
    if not kept_users.any():
        n_positive_users = int(user_ids.size)
        most = int(counts.max()) if counts.size else 0
        raise ValueError(
            f"no user is left after filtering: `min_positives`={min_positives} but the "
            f"{n_positive_users} users with a rating >= `threshold`={threshold} have at "
            f"most {most} positives."
        )
    row_keep = np.repeat(kept_users, counts)
    user, item, time = user[row_keep], item[row_keep], time[row_keep]
    item_ids, dense = np.unique(item, return_inverse=True)
    lengths = counts[kept_users]
    indptr = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return Interactions(
        indptr=indptr,
        items=dense.astype(np.int64),
        timestamps=time,
        user_ids=user_ids[kept_users].astype(np.int64),
        item_ids=item_ids.astype(np.int64),
        fingerprint=fingerprint,
    )


def load_movielens(
    path: str | Path, *, threshold: float = 3.0, min_positives: int = 33
) -> Interactions:
    """Read a MovieLens ratings file into time-ordered positives per user.

    Parameters
    ----------
    path : str or pathlib.Path
        ``ratings.csv`` / ``ratings.dat`` or a directory holding one
        (:func:`read_ratings`); e.g. ``/work/shared/data/ml-latest-small``.
    threshold : float, default 3.0
        Ratings ``>= threshold`` are positives.
    min_positives : int, default 33
        Users with fewer positives are dropped (see :func:`interactions_from_ratings`).

    Returns
    -------
    Interactions
        With ``fingerprint`` the sha256 of the file's bytes.

    References
    ----------
    .. [1] F. M. Harper, J. A. Konstan, "The MovieLens Datasets: History and Context",
       ACM TiiS 5(4), 2015.
    """
    ratings, fingerprint = read_ratings(path)
    return interactions_from_ratings(
        ratings, threshold=threshold, min_positives=min_positives, fingerprint=fingerprint
    )


# ------------------------------------------------------------------------- synthetic


def _validate_generate_synthetic_ratings(
    n_users: int, n_items: int, mean_ratings: float, n_factors: int, popularity: float
) -> None:
    for name, value in (("n_users", n_users), ("n_items", n_items), ("n_factors", n_factors)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise TypeError(f"`{name}` must be an integer; got {type(value).__name__}.")
        if value < 1:
            raise ValueError(f"`{name}` must be >= 1; got {value}.")
    if n_items < 2:
        raise ValueError(f"`n_items` must be >= 2; got {n_items}.")
    if not (isinstance(mean_ratings, numbers.Real) and 1 <= mean_ratings <= n_items):
        raise ValueError(f"`mean_ratings` must be in [1, n_items={n_items}]; got {mean_ratings}.")
    if not (isinstance(popularity, numbers.Real) and popularity >= 0):
        raise ValueError(f"`popularity` must be >= 0; got {popularity}.")


def generate_synthetic_ratings(
    n_users: int = 3000,
    n_items: int = 1500,
    *,
    mean_ratings: float = 80.0,
    n_factors: int = 16,
    popularity: float = 1.0,
    rng: RngLike = None,
) -> pd.DataFrame:
    """Generate a MovieLens-format ratings table with known taste structure.

    Each user ``i`` has two taste vectors ``a_i, b_i ~ N(0, I_d / d)`` and each item
    ``y`` a factor ``v_y ~ N(0, I_d)`` and a popularity ``log w_y = -popularity *
    log(rank_y)`` (Zipf). A user rates ``m_i`` distinct items (``m_i - 10`` negative
    binomial with mean ``mean_ratings - 10``, capped at ``n_items // 2``), chosen
    without replacement (Gumbel top-k) with weights ``exp(3 <(a_i + b_i)/2, v_y> +
    log w_y)``. Time order: the items are watched in increasing ``<b_i - a_i, v_y> +
    noise``, so the taste drifts from ``a_i`` to ``b_i`` and recent history predicts
    the next watch better than old history. Ratings are ``3.5 + <a_i + b_i, v_y>/2 +
    N(0, 1)`` rounded to halves in [0.5, 5]; timestamps are increasing per user with
    exponential gaps and occasional ties (tie-breaking by item id is exercised).

    Parameters
    ----------
    n_users, n_items : int
        Numbers of users and items (item ids are ``1..n_items``, user ids
        ``1..n_users``; items never drawn are absent from the table).
    mean_ratings : float, default 80
        Mean number of ratings per user (at least 10 each).
    n_factors : int, default 16
        Dimension ``d`` of the taste and item factors.
    popularity : float, default 1.0
        Zipf exponent of the item popularity (0 = no popularity effect).
    rng : int, numpy.random.SeedSequence or None
        Seed.

    Returns
    -------
    pandas.DataFrame
        Columns ``userId, movieId, rating, timestamp``, sorted by ``userId`` then
        ``timestamp``.

    Examples
    --------
    >>> frame = generate_synthetic_ratings(20, 50, mean_ratings=12, rng=0)
    >>> list(frame.columns)
    ['userId', 'movieId', 'rating', 'timestamp']
    """
    _validate_generate_synthetic_ratings(n_users, n_items, mean_ratings, n_factors, popularity)
    gen = np.random.default_rng(as_seed_sequence(rng))
    d = int(n_factors)
    taste_a = gen.standard_normal((n_users, d)) / np.sqrt(d)  # (n_users, d)
    taste_b = gen.standard_normal((n_users, d)) / np.sqrt(d)  # (n_users, d)
    factors = gen.standard_normal((n_items, d))  # (n_items, d)
    rank = gen.permutation(n_items) + 1
    log_weight = -float(popularity) * np.log(rank)  # (n_items,)
    cap = max(1, n_items // 2)
    extra = max(float(mean_ratings) - 10.0, 1e-9)
    n_rated = 10 + gen.negative_binomial(2, 2 / (2 + extra), size=n_users)
    n_rated = np.minimum(n_rated, cap).astype(np.int64)  # (n_users,)
    mean_taste = 0.5 * (taste_a + taste_b)
    affinity = mean_taste @ factors.T  # (n_users, n_items)
    keys = 3.0 * affinity + log_weight + gen.gumbel(size=affinity.shape)
    chosen_sorted = np.argsort(-keys, axis=1)  # (n_users, n_items), best first
    take = np.arange(n_items)[None, :] < n_rated[:, None]  # (n_users, n_items)
    user_row = np.broadcast_to(np.arange(n_users)[:, None], take.shape)[take]  # (n,)
    item = chosen_sorted[take]  # (n,)
    drift = ((taste_b - taste_a)[user_row] * factors[item]).sum(axis=1)
    order_key = drift + 0.5 * gen.standard_normal(item.size)
    order = np.lexsort((order_key, user_row))
    user_row, item = user_row[order], item[order]
    score = affinity[user_row, item] * 2.0 + gen.standard_normal(item.size)
    rating = np.clip(np.round((3.5 + score) * 2) / 2, 0.5, 5.0)
    gaps = gen.exponential(3600.0, size=item.size).astype(np.int64)
    gaps[gen.random(item.size) < 0.05] = 0  # ties
    start = 1_000_000_000 + gen.integers(0, 10**8, size=n_users)
    first = np.ones(item.size, dtype=bool)
    first[1:] = user_row[1:] != user_row[:-1]
    gaps[first] = 0
    csum = np.cumsum(gaps)
    base = np.maximum.accumulate(np.where(first, csum, 0))
    timestamp = start[user_row] + csum - base
    frame = pd.DataFrame(
        {
            "userId": user_row.astype(np.int64) + 1,
            "movieId": item.astype(np.int64) + 1,
            "rating": rating.astype(np.float64),
            "timestamp": timestamp.astype(np.int64),
        }
    )
    return frame.sort_values(["userId", "timestamp", "movieId"], kind="stable").reset_index(
        drop=True
    )


def synthetic_movielens(
    n_users: int = 3000,
    n_items: int = 1500,
    *,
    mean_ratings: float = 80.0,
    n_factors: int = 16,
    popularity: float = 1.0,
    threshold: float = 3.0,
    min_positives: int = 33,
    rng: RngLike = 0,
) -> Interactions:
    """Generate synthetic ratings and load them as :func:`load_movielens` would.

    Parameters are those of :func:`generate_synthetic_ratings` and
    :func:`interactions_from_ratings`; ``fingerprint`` is the sha256 of the ratings
    as :func:`write_ratings` would write them.

    Returns
    -------
    Interactions

    Examples
    --------
    >>> data = synthetic_movielens(200, 300, mean_ratings=40, min_positives=5, rng=0)
    >>> data.n_users, bool(data.n_items <= 300)
    (200, True)
    """
    frame = generate_synthetic_ratings(
        n_users,
        n_items,
        mean_ratings=mean_ratings,
        n_factors=n_factors,
        popularity=popularity,
        rng=rng,
    )
    return interactions_from_ratings(frame, threshold=threshold, min_positives=min_positives)


# ---------------------------------------------------------------------------- splits


def _validate_interactions(data: object) -> None:
    if not isinstance(data, Interactions):
        raise TypeError(f"`data` must be an Interactions; got {type(data).__name__}.")


def random_user_split(
    data: Interactions, *, test_fraction: float = 0.1, rng: RngLike = None
) -> tuple[Interactions, Interactions]:
    """Split users at random into a training and a test set (no user in both).

    Parameters
    ----------
    data : Interactions
    test_fraction : float, default 0.1
        Share of users held out (rounded, at least one user in each part).
    rng : int, numpy.random.SeedSequence or None
        Seed of the permutation.

    Returns
    -------
    train, test : Interactions
        Disjoint sets of users, same catalog.
    """
    _validate_interactions(data)
    if not (isinstance(test_fraction, numbers.Real) and 0 < test_fraction < 1):
        raise ValueError(f"`test_fraction` must be in (0, 1); got {test_fraction}.")
    if data.n_users < 2:
        raise ValueError(f"`data` must have at least 2 users to split; got {data.n_users}.")
    perm = np.random.default_rng(as_seed_sequence(rng)).permutation(data.n_users)
    n_test = int(np.clip(round(test_fraction * data.n_users), 1, data.n_users - 1))
    return data.subset(np.sort(perm[n_test:])), data.subset(np.sort(perm[:n_test]))


def kfold_user_splits(
    data: Interactions, n_folds: int, *, rng: RngLike = None
) -> list[tuple[Interactions, Interactions]]:
    """Partition users into ``n_folds`` folds; fold ``k`` is the test set of split ``k``.

    Every user is in exactly one test set, and never in the training set of the split
    that tests it.

    Parameters
    ----------
    data : Interactions
    n_folds : int
        Number of folds, in ``[2, n_users]``.
    rng : int, numpy.random.SeedSequence or None
        Seed of the permutation.

    Returns
    -------
    list of (train, test) pairs of Interactions, length ``n_folds``.
    """
    _validate_interactions(data)
    if not isinstance(n_folds, numbers.Integral) or isinstance(n_folds, bool):
        raise TypeError(f"`n_folds` must be an integer; got {type(n_folds).__name__}.")
    if not 2 <= n_folds <= data.n_users:
        raise ValueError(f"`n_folds` must be in [2, n_users={data.n_users}]; got {n_folds}.")
    perm = np.random.default_rng(as_seed_sequence(rng)).permutation(data.n_users)
    fold_of = np.empty(data.n_users, dtype=np.int64)
    fold_of[perm] = np.arange(data.n_users) % n_folds
    users = np.arange(data.n_users)
    return [
        (data.subset(users[fold_of != k]), data.subset(users[fold_of == k]))
        for k in range(int(n_folds))
    ]


def leave_last_out(data: Interactions, *, max_history: int = 30) -> tuple[Interactions, Examples]:
    """Temporal split: each user's last positive is the test target.

    Parameters
    ----------
    data : Interactions
        Users with at least 2 positives each.
    max_history : int, default 30
        History length of the test examples.

    Returns
    -------
    train : Interactions
        Every user's positives except the last (train on :func:`make_examples` of it).
    test : Examples
        One example per user: the last positive and the ``max_history`` before it. No
        test target is a training target or in a training history.
    """
    _validate_interactions(data)
    if data.n_users and data.lengths.min() < 2:
        raise ValueError(
            "`data` must give every user at least 2 positives for leave-last-out; got a "
            f"user with {int(data.lengths.min())}."
        )
    test = make_examples(data, max_history=max_history, positions="last")
    keep = np.ones(data.n_positives, dtype=bool)
    keep[data.indptr[1:] - 1] = False
    indptr = data.indptr - np.arange(data.n_users + 1)
    train = Interactions(
        indptr=indptr,
        items=data.items[keep],
        timestamps=data.timestamps[keep],
        user_ids=data.user_ids,
        item_ids=data.item_ids,
        fingerprint=data.fingerprint,
    )
    return train, test


# -------------------------------------------------------------------------- examples


def _validate_make_examples(max_history: int, positions: str, min_history: int) -> None:
    if not isinstance(max_history, numbers.Integral) or isinstance(max_history, bool):
        raise TypeError(f"`max_history` must be an integer; got {type(max_history).__name__}.")
    if max_history < 1:
        raise ValueError(f"`max_history` must be >= 1; got {max_history}.")
    if positions not in ("all", "last", "random"):
        raise ValueError(f"`positions` must be one of 'all', 'last', 'random'; got {positions!r}.")
    if not isinstance(min_history, numbers.Integral) or min_history < 0:
        raise ValueError(f"`min_history` must be a non-negative integer; got {min_history}.")


def make_examples(
    data: Interactions,
    *,
    max_history: int = 30,
    positions: Literal["all", "last", "random"] = "all",
    min_history: int = 1,
    rng: RngLike = None,
) -> Examples:
    """Build next-watch examples, vectorised (no per-example Python).

    Example ``(u, t)`` has target ``items_u[t]`` and history ``items_u[max(0, t -
    max_history):t]``, the positives watched just before it (Covington et al. 2016,
    §3.1 and Fig. 3: the label is the next watch, the input the preceding watches).

    Parameters
    ----------
    data : Interactions
    max_history : int, default 30
        Maximum history length (docs/theory.md §4).
    positions : {"all", "last", "random"}, default "all"
        Which targets: every position ``t >= min_history`` of every user; each user's
        last position; or one position per user drawn uniformly from ``[min_history,
        n_u - 1]`` (the reference implementation's epoch).
    min_history : int, default 1
        Smallest target position (0 allows an empty history, for which the model uses
        its default token). Users with no eligible position contribute nothing.
    rng : int, numpy.random.SeedSequence or None
        Seed for ``positions="random"``.

    Returns
    -------
    examples : recsys.data.Examples
        Ordered by user, then position.

    Examples
    --------
    >>> data = synthetic_movielens(30, 60, mean_ratings=15, min_positives=3, rng=0)
    >>> ex = make_examples(data, max_history=4)
    >>> ex.history.shape[1], ex.n_examples == data.n_positives - data.n_users
    (4, True)
    """
    _validate_interactions(data)
    _validate_make_examples(max_history, positions, min_history)
    lengths = data.lengths  # (n_users,)
    starts = data.indptr[:-1]  # (n_users,)
    if positions == "all":
        counts = np.maximum(lengths - min_history, 0)
        user_row = np.repeat(np.arange(data.n_users), counts)  # (n,)
        offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        position = offset + min_history  # (n,)
    else:
        eligible = lengths > min_history
        user_row = np.flatnonzero(eligible)
        if positions == "last":
            position = lengths[user_row] - 1
        else:
            gen = np.random.default_rng(as_seed_sequence(rng))
            position = gen.integers(min_history, lengths[user_row])
    user_row = user_row.astype(np.int64)
    position = position.astype(np.int64)
    flat = starts[user_row] + position  # (n,) index of the target in data.items
    window = np.arange(-max_history, 0, dtype=np.int64)  # (max_history,)
    source = flat[:, None] + window[None, :]  # (n, max_history)
    valid = source >= starts[user_row][:, None]  # (n, max_history)
    history = np.where(valid, data.items[np.where(valid, source, 0)], -1)  # (n, max_history)
    return Examples(
        history=history.astype(np.int64),
        target=data.items[flat],
        user_id=data.user_ids[user_row],
        position=position,
    )
