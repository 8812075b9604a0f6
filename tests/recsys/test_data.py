import hashlib

import numpy as np
import pandas as pd
import pytest

from recsys.data import (
    Examples,
    Interactions,
    generate_synthetic_ratings,
    interactions_from_ratings,
    kfold_user_splits,
    leave_last_out,
    load_movielens,
    make_examples,
    random_user_split,
    ratings_fingerprint,
    read_ratings,
    synthetic_movielens,
    write_ratings,
)


@pytest.fixture(scope="module")
def ratings():
    return generate_synthetic_ratings(120, 200, mean_ratings=30, rng=3)


@pytest.fixture(scope="module")
def data(ratings):
    return interactions_from_ratings(ratings, min_positives=8)


def _naive_positives(frame, threshold, min_positives):
    """Per-user time-ordered positives by plain Python (reference)."""
    out = {}
    for user, group in frame[frame.rating >= threshold].groupby("userId"):
        rows = sorted(zip(group.timestamp, group.movieId, strict=True))
        if len(rows) >= min_positives:
            out[int(user)] = [int(m) for _, m in rows]
    return out


def test_positives_sorted_filtered_and_remapped(ratings, data):
    ref = _naive_positives(ratings, 3.0, 8)
    assert list(data.user_ids) == sorted(ref)
    for u, uid in enumerate(data.user_ids):
        raw = data.item_ids[data.items[data.indptr[u] : data.indptr[u + 1]]]
        assert list(raw) == ref[int(uid)]
        ts = data.timestamps[data.indptr[u] : data.indptr[u + 1]]
        assert np.all(np.diff(ts) >= 0)
    assert np.all(np.diff(data.item_ids) > 0)
    assert data.items.min() == 0 and data.items.max() == data.n_items - 1


def test_ties_broken_by_item_id():
    frame = pd.DataFrame(
        {
            "userId": [1, 1, 1, 1],
            "movieId": [30, 10, 20, 5],
            "rating": [4, 4, 4, 4.5],
            "timestamp": [7, 7, 7, 9],
        }
    )
    d = interactions_from_ratings(frame, min_positives=1)
    assert list(d.item_ids[d.items]) == [10, 20, 30, 5]


def test_threshold_and_min_positives():
    frame = pd.DataFrame(
        {
            "userId": [1, 1, 1, 2, 2],
            "movieId": [1, 2, 3, 1, 2],
            "rating": [3.0, 2.5, 5, 4, 1],
            "timestamp": [1, 2, 3, 1, 2],
        }
    )
    d = interactions_from_ratings(frame, min_positives=2)
    assert list(d.user_ids) == [1] and list(d.item_ids[d.items]) == [1, 3]
    assert d.n_items == 2  # item 2 is never a positive of a kept user


@pytest.mark.parametrize("suffix", [".csv", ".dat"])
def test_file_round_trip_and_fingerprint(tmp_path, ratings, suffix):
    path = write_ratings(ratings, tmp_path / f"ratings{suffix}")
    frame, fp = read_ratings(path)
    pd.testing.assert_frame_equal(frame, ratings.reset_index(drop=True), check_dtype=False)
    assert fp == hashlib.sha256(path.read_bytes()).hexdigest()
    if suffix == ".csv":
        assert fp == ratings_fingerprint(ratings)
    loaded = load_movielens(path, min_positives=8)
    direct = interactions_from_ratings(ratings, min_positives=8)
    np.testing.assert_array_equal(loaded.items, direct.items)
    np.testing.assert_array_equal(loaded.item_ids, direct.item_ids)
    # a directory holding the file works too
    assert load_movielens(tmp_path, min_positives=8).n_users == direct.n_users


def test_synthetic_is_seeded_and_fingerprinted():
    a = synthetic_movielens(80, 100, mean_ratings=20, min_positives=5, rng=1)
    b = synthetic_movielens(80, 100, mean_ratings=20, min_positives=5, rng=1)
    c = synthetic_movielens(80, 100, mean_ratings=20, min_positives=5, rng=2)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    np.testing.assert_array_equal(a.items, b.items)


def test_synthetic_has_popularity_and_taste():
    frame = generate_synthetic_ratings(300, 200, mean_ratings=30, rng=0)
    counts = frame.movieId.value_counts().to_numpy()
    assert counts[:10].sum() > 3 * counts[-10:].sum()  # Zipf popularity
    flat = generate_synthetic_ratings(300, 200, mean_ratings=30, popularity=0.0, rng=0)
    assert flat.movieId.value_counts().max() < counts.max()


# ------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("userId,itemId,rating,timestamp\n1,2,3.0,4\n", "missing movieId"),
        ("userId,movieId,rating\n1,2,3.0\n", "missing timestamp"),
        ("userId,movieId,rating,timestamp\n1,2,abc,4\n", "column `rating`.*numeric"),
        ("userId,movieId,rating,timestamp\n1,2.5,3,4\n", "column `movieId`.*integers"),
        ("userId,movieId,rating,timestamp\n1,2,inf,4\n", "column `rating`.*finite"),
        ("userId,movieId,rating,timestamp\n1,2,3.0,-inf\n", "column `timestamp`.*finite"),
        ("", "not a MovieLens file"),
    ],
)
def test_malformed_csv(tmp_path, content, match):
    path = tmp_path / "ratings.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        read_ratings(path)


def test_malformed_dat(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::2::3\n4::5::6\n")
    with pytest.raises(ValueError, match="4 '::'-separated columns"):
        read_ratings(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_movielens(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="without ratings.csv"):
        load_movielens(tmp_path)
    with pytest.raises(TypeError, match="`path` must be a str"):
        read_ratings(3)


def test_empty_after_filter(ratings):
    with pytest.raises(ValueError, match="no user is left after filtering.*`min_positives`=10000"):
        interactions_from_ratings(ratings, min_positives=10_000)
    with pytest.raises(ValueError, match="no user is left"):
        interactions_from_ratings(ratings, threshold=6.0, min_positives=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_positives": 0}, ValueError, "`min_positives` must be >= 1; got 0"),
        ({"min_positives": 2.5}, TypeError, "`min_positives` must be an integer"),
        ({"threshold": float("nan")}, ValueError, "`threshold` must be finite"),
    ],
)
def test_bad_filter_arguments(ratings, kwargs, error, match):
    with pytest.raises(error, match=match):
        interactions_from_ratings(ratings, **kwargs)


# -------------------------------------------------------------------------- examples


def _naive_examples(data, max_history, min_history):
    rows = []
    for u in range(data.n_users):
        seq = list(data.items[data.indptr[u] : data.indptr[u + 1]])
        for t in range(min_history, len(seq)):
            hist = seq[max(0, t - max_history) : t]
            rows.append(([-1] * (max_history - len(hist)) + hist, seq[t], data.user_ids[u], t))
    return rows


@pytest.mark.parametrize(("max_history", "min_history"), [(30, 1), (4, 0), (1, 2)])
def test_examples_match_naive(data, max_history, min_history):
    ex = make_examples(data, max_history=max_history, min_history=min_history)
    ref = _naive_examples(data, max_history, min_history)
    assert ex.n_examples == len(ref)
    np.testing.assert_array_equal(ex.history, np.array([r[0] for r in ref]))
    np.testing.assert_array_equal(ex.target, [r[1] for r in ref])
    np.testing.assert_array_equal(ex.user_id, [r[2] for r in ref])
    np.testing.assert_array_equal(ex.position, [r[3] for r in ref])


def test_last_and_random_positions(data):
    last = make_examples(data, positions="last")
    assert last.n_examples == data.n_users
    np.testing.assert_array_equal(last.target, data.items[data.indptr[1:] - 1])
    rand = make_examples(data, positions="random", rng=0)
    assert np.all(rand.position >= 1) and np.all(rand.position < data.lengths)
    again = make_examples(data, positions="random", rng=0)
    np.testing.assert_array_equal(rand.position, again.position)
    allx = make_examples(data)
    key = set(zip(allx.user_id, allx.position, strict=True))
    assert set(zip(rand.user_id, rand.position, strict=True)) <= key
    with pytest.raises(ValueError, match="`positions` must be one of"):
        make_examples(data, positions="first")
    with pytest.raises(ValueError, match="`max_history` must be >= 1; got 0"):
        make_examples(data, max_history=0)


# ---------------------------------------------------------------------- no leakage


def _example_keys(ex: Examples):
    return set(zip(ex.user_id.tolist(), ex.position.tolist(), strict=True))


def test_random_user_split_no_leak(data):
    train, test = random_user_split(data, test_fraction=0.2, rng=5)
    assert set(train.user_ids).isdisjoint(test.user_ids)
    assert train.n_users + test.n_users == data.n_users
    assert test.n_users == round(0.2 * data.n_users)
    ex_train, ex_test = make_examples(train), make_examples(test)
    assert set(ex_train.user_id).isdisjoint(ex_test.user_id)
    assert _example_keys(ex_train).isdisjoint(_example_keys(ex_test))
    assert ex_train.n_examples + ex_test.n_examples == make_examples(data).n_examples
    # the split's own data, not a global table: every example comes from its users
    assert set(ex_train.user_id) <= set(train.user_ids)
    np.testing.assert_array_equal(train.item_ids, data.item_ids)


def test_kfold_every_user_tested_once_and_no_leak(data):
    splits = kfold_user_splits(data, 5, rng=0)
    tested = np.concatenate([test.user_ids for _, test in splits])
    assert sorted(tested) == sorted(data.user_ids)
    for train, test in splits:
        assert set(train.user_ids).isdisjoint(test.user_ids)
        assert train.n_users + test.n_users == data.n_users
    with pytest.raises(ValueError, match="`n_folds` must be in"):
        kfold_user_splits(data, 1)


def test_leave_last_out_no_leak(data):
    train, test = leave_last_out(data)
    ex_train = make_examples(train)
    assert test.n_examples == data.n_users
    np.testing.assert_array_equal(train.lengths, data.lengths - 1)
    # the held-out (user, position) never appears as a training target or in a history
    assert np.all(
        ex_train.position < test.position[np.searchsorted(test.user_id, ex_train.user_id)]
    )
    last_pos = dict(zip(test.user_id.tolist(), test.position.tolist(), strict=True))
    for u in range(train.n_users):
        assert train.lengths[u] == last_pos[int(train.user_ids[u])]


def test_leak_check_fails_on_leaky_split(data):
    """Negative control: a split that reuses users (the reference defect) is caught."""
    users = np.arange(data.n_users)
    leaky_train, leaky_test = data.subset(users), data.subset(users[:10])
    assert not set(leaky_train.user_ids).isdisjoint(leaky_test.user_ids)
    assert not _example_keys(make_examples(leaky_train)).isdisjoint(
        _example_keys(make_examples(leaky_test))
    )


def test_subset_validation(data):
    with pytest.raises(ValueError, match="must not repeat"):
        data.subset([0, 0])
    with pytest.raises(ValueError, match="row indices in"):
        data.subset([data.n_users])
    assert isinstance(data.subset([]), Interactions)
    # a boolean mask is not row indices: [True, False] used to become rows [1, 0]
    mask = np.zeros(data.n_users, dtype=bool)
    mask[0] = True
    with pytest.raises(TypeError, match="`users` must be integer row indices; got bool"):
        data.subset(mask)
