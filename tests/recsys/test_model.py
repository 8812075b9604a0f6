import numpy as np
import pytest
import torch

from recsys.model import TwoTower, hash_ids, splitmix64

M64 = np.uint64(2**64 - 1)


def _splitmix_numpy(z):
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z ^ (z >> np.uint64(30))
        z = z * np.uint64(0xBF58476D1CE4E5B9)
        z = z ^ (z >> np.uint64(27))
        z = z * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def test_splitmix_matches_uint64_reference():
    rng = np.random.default_rng(0)
    words = rng.integers(0, 2**63, size=1000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    ours = splitmix64(torch.from_numpy(words.view(np.int64))).numpy().view(np.uint64)
    np.testing.assert_array_equal(ours, _splitmix_numpy(words))


def test_hash_reference_and_range():
    ids = torch.arange(-5, 5000)
    for salt in (0, 17):
        rows = hash_ids(ids, salt, 1000).numpy()
        assert rows.min() >= 0 and rows.max() < 1000
        with np.errstate(over="ignore"):
            z = ids.numpy().astype(np.int64).view(np.uint64) + np.uint64(salt + 1) * np.uint64(
                0x9E3779B97F4A7C15
            )
        ref = (_splitmix_numpy(z) >> np.uint64(1)) % np.uint64(1000)
        np.testing.assert_array_equal(rows, ref.astype(np.int64))


def test_hash_spreads_rows_and_salts_differ():
    ids = torch.arange(100_000)
    a, b = hash_ids(ids, 1, 1000), hash_ids(ids, 2, 1000)
    counts = torch.bincount(a, minlength=1000).double()
    # chi-square of uniform occupancy: mean 999, sd sqrt(2*999) ~ 44.7; z = 4 band
    chi2 = float(((counts - 100) ** 2 / 100).sum())
    assert abs(chi2 - 999) <= 4 * np.sqrt(2 * 999), chi2
    # two salts agree on a row about 1/1000 of the time: binomial band, z = 4
    agree = float((a == b).double().mean())
    assert abs(agree - 1e-3) <= 4 * np.sqrt(1e-3 * (1 - 1e-3) / 1e5), agree


def test_shapes_masking_and_default_token():
    model = TwoTower(n_rows=50, dim=8, hidden=(16, 8), rng=0)
    history = torch.tensor([[-1, -1, 3], [-1, -1, -1], [1, 2, 3]])
    u = model.user_vector(history)
    assert u.shape == (3, 8)
    torch.testing.assert_close(u.norm(dim=1), torch.ones(3))
    # masked mean: padding does not change a row, whatever the padded id would hash to
    padded = model.user_vector(torch.tensor([[-1, 3]]))
    torch.testing.assert_close(padded, model.user_vector(torch.tensor([[3]])))
    # empty history -> default token
    pooled_default = model.mlp(model.default_history[None])
    torch.testing.assert_close(u[1], torch.nn.functional.normalize(pooled_default, dim=-1)[0])
    # item embedding is the sum of one row per table, shared by both towers
    rows = model.hashed_rows(torch.tensor([7]))[0]
    expected = sum(model.tables[t, rows[t]] for t in range(model.n_tables))
    torch.testing.assert_close(model.item_embedding(torch.tensor([7]))[0], expected)
    assert model(history, torch.arange(5)).shape == (3, 5)


def test_dot_similarity_is_not_normalised():
    model = TwoTower(n_rows=50, dim=8, hidden=(8,), similarity="dot", rng=0)
    v = model.item_vector(torch.arange(4))
    torch.testing.assert_close(v, model.item_embedding(torch.arange(4)))


def test_seeded_initialisation():
    a, b, c = TwoTower(rng=1), TwoTower(rng=1), TwoTower(rng=2)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)
        assert not torch.equal(pa, pc)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_tables": 0}, ValueError, "`n_tables` must be >= 1; got 0"),
        ({"dim": 2.0}, TypeError, "`dim` must be an integer"),
        ({"hidden": (64, 32)}, ValueError, r"`hidden\[-1\]` must equal `dim`"),
        ({"similarity": "l2"}, ValueError, "`similarity` must be 'cosine' or 'dot'"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        TwoTower(**kwargs)
