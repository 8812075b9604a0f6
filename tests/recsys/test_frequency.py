import numpy as np
import pytest
import torch

from recsys import ExactFrequency, StreamingFrequencyEstimator


def test_exact_frequency_matches_numpy_counts():
    rng = np.random.default_rng(0)
    batches = [rng.integers(-(2**62), 2**62, size=5) for _ in range(3)]
    batches += [rng.zipf(1.5, size=40) for _ in range(5)]
    f = ExactFrequency()
    for b in batches:
        f.update(torch.as_tensor(b))
    allv = np.concatenate(batches)
    uniq, cnt = np.unique(allv, return_counts=True)
    assert f.counts(uniq).numpy().tolist() == cnt.tolist()
    assert np.allclose(f.estimate(uniq).numpy(), cnt / allv.size)
    in_batches = np.array([sum(u in b for b in batches) for u in uniq]) / len(batches)
    assert np.allclose(f.batch_frequency(uniq).numpy(), in_batches)
    assert f.estimate([123456789]).item() == 0.0


def test_streaming_constant_gap_is_exact():
    est = StreamingFrequencyEstimator(n_buckets=1 << 12, n_hashes=2, alpha=0.1)
    for t in range(60):
        ids = [1] + ([2] if t % 3 == 0 else []) + ([3] if t % 5 == 0 else [])
        est.update(torch.tensor(ids))
    assert np.allclose(est.estimate(torch.tensor([1, 2, 3])).numpy(), [1.0, 1 / 3, 1 / 5])


def test_streaming_matches_reference_loop():
    """The vectorised update equals a per-id loop of Algorithm 2 (single hash)."""
    rng = np.random.default_rng(1)
    est = StreamingFrequencyEstimator(n_buckets=16, n_hashes=1, alpha=0.2, seed=3)
    a = np.full(16, -1)
    b = np.zeros(16)
    for t in range(50):
        ids = rng.integers(0, 40, size=6)
        est.update(ids)
        for bucket in np.unique(est.buckets(ids)[0].numpy()):
            if a[bucket] >= 0:
                gap = t - a[bucket]
                b[bucket] = gap if b[bucket] == 0 else 0.8 * b[bucket] + 0.2 * gap
            a[bucket] = t
    assert np.allclose(est.gap[0].numpy(), b)
    assert np.array_equal(est.last_step[0].numpy(), a)


def test_streaming_handles_huge_and_negative_ids_and_unseen():
    est = StreamingFrequencyEstimator(n_buckets=1000, n_hashes=3)
    ids = torch.tensor([2**63 - 1, -(2**63), 0, 10**15])
    b = est.buckets(ids)
    assert b.shape == (3, 4) and int(b.min()) >= 0 and int(b.max()) < 1000
    assert est.estimate(ids).tolist() == [1.0] * 4  # step 0: nothing seen, 1/(0 + 1)
    est.update(ids[:2])
    est.update(torch.tensor([5]))
    p = est.estimate(torch.tensor([2**63 - 1, 77]))
    assert 0 < float(p[1]) <= float(p[0]) <= 1  # 77 unseen: 1/(2 + 1)


def test_item_probability_inverts_batch_frequency():
    est = StreamingFrequencyEstimator(n_buckets=64)
    for _ in range(10):
        est.update([4])
        est.update([5])  # item 4 every other step: Q_B = 1/2
    p = est.item_probability(torch.tensor([4]), batch_size=8)
    assert np.isclose(1 - (1 - float(p)) ** 8, 0.5)


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        (dict(n_buckets=0), ValueError, "`n_buckets` must be >= 1"),
        (dict(n_hashes=1.5), TypeError, "`n_hashes` must be an int"),
        (dict(alpha=0.0), ValueError, r"`alpha` must be in \(0, 1\]"),
        (dict(alpha=1.5), ValueError, r"`alpha` must be in \(0, 1\]"),
    ],
)
def test_streaming_bad_input(kw, exc, match):
    with pytest.raises(exc, match=match):
        StreamingFrequencyEstimator(**kw)


def test_bad_ids():
    with pytest.raises(TypeError, match="`ids` must hold integers"):
        StreamingFrequencyEstimator(8).update(torch.tensor([1.5]))
    with pytest.raises(TypeError, match="`ids` must hold integers"):
        ExactFrequency().update(np.array([0.5]))
    est = StreamingFrequencyEstimator(8)
    est.update([1], step=5)
    with pytest.raises(ValueError, match="`step` must be >="):
        est.update([1], step=2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_streaming_on_cuda_equals_cpu():
    cpu, gpu = (
        StreamingFrequencyEstimator(128, 2),
        StreamingFrequencyEstimator(128, 2, device="cuda"),
    )
    rng = np.random.default_rng(0)
    for _ in range(20):
        ids = torch.as_tensor(rng.integers(0, 500, size=16))
        cpu.update(ids)
        gpu.update(ids.cuda())
    probe = torch.arange(500)
    assert torch.allclose(cpu.estimate(probe), gpu.estimate(probe.cuda()).cpu())


def test_first_sighting_is_not_seen_every_step():
    """Contract: 100 batches of [1, 2, 3], then 999 once -> its frequency is small."""
    est = StreamingFrequencyEstimator(n_buckets=4096, alpha=0.05)
    for _ in range(100):
        est.update([1, 2, 3])
    est.update([1, 2, 3, 999])
    assert float(est.estimate([999])[0]) <= 0.1  # was 1.0: gap 1 at the first sighting
    assert float(est.estimate([999])[0]) == pytest.approx(1 / 101)
    assert float(est.estimate([1])[0]) == pytest.approx(1.0)


def test_hash_mixes_all_64_bits():
    """Ids differing by (2^31 - 1)^2 collided under every hash of the old universal family."""
    est = StreamingFrequencyEstimator(n_buckets=1 << 12)
    assert est.n_hashes == 4
    step = (2**31 - 1) ** 2
    ids = torch.tensor([5, 5 + step, 5 - step])
    b = est.buckets(ids)  # (4, 3)
    assert not all(len(set(b[h].tolist())) == 1 for h in range(4))
    # random int64 ids, N of them on 4N buckets: few collide under all four hashes
    rng = np.random.default_rng(0)
    n = 2000
    ids = torch.as_tensor(rng.integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64))
    est = StreamingFrequencyEstimator(n_buckets=4 * n)
    b = est.buckets(ids).numpy()  # (4, n)
    everywhere = np.ones(n, dtype=bool)
    for h in range(4):
        _, inv, cnt = np.unique(b[h], return_inverse=True, return_counts=True)
        everywhere &= cnt[inv] > 1
    assert everywhere.mean() < 0.01  # one hash on 4N buckets: about 22 % collide


@pytest.mark.slow
def test_item_probability_tracks_the_share_training_uses():
    """Stationary stream: item_probability (what training reads) -> p, per item."""
    rng = np.random.default_rng(3)
    p = 1.0 / np.arange(1, 31)
    p /= p.sum()  # Zipf(1) over 30 items: p from 0.25 to 0.008
    b = 8
    est = StreamingFrequencyEstimator(n_buckets=1024, alpha=0.01)
    for _ in range(4000):
        est.update(rng.choice(30, size=b, p=p))
    got = est.item_probability(torch.arange(30), b).numpy()
    ratio = got / p  # each item's moving average spans ~1/alpha gaps: ~10 % noise
    assert abs(ratio.mean() - 1) < 0.05 and np.all(np.abs(ratio - 1) < 0.3), ratio
