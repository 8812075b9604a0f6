import numpy as np
import pytest
import torch

from recsys.data import make_examples, random_user_split, synthetic_movielens
from recsys.metrics import evaluate_retrieval
from recsys.model import TwoTower
from recsys.train import METHODS, TrainConfig, parse_methods, resolve_device, train_model

SMALL = {"n_rows": 64, "dim": 16, "hidden": (16, 16)}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one torch thread is faster on a shared machine; restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def problem():
    data = synthetic_movielens(150, 120, mean_ratings=30, min_positives=10, rng=0)
    train, test = random_user_split(data, test_fraction=0.2, rng=0)
    return data, make_examples(train, max_history=10), make_examples(test, max_history=10)


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_and_is_reproducible(problem, method):
    data, ex, _ = problem
    cfg = TrainConfig(method=method, batch_size=64, n_negatives=32, lr=0.01)
    runs = []
    for _ in range(2):
        model = TwoTower(**SMALL, rng=1)
        res = train_model(model, ex, data.n_items, cfg, rng=7, progress=False)
        runs.append((_params(model), res))
    for a, b in zip(runs[0][0], runs[1][0], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    res = runs[0][1]
    assert res.n_steps == ex.n_examples // 64
    assert res.n_examples_seen == res.n_steps * 64
    assert np.isfinite(res.epoch_loss[0])


def test_training_beats_untrained_model():
    data = synthetic_movielens(300, 150, mean_ratings=30, min_positives=10, rng=0)
    train, test = random_user_split(data, test_fraction=0.3, rng=0)
    ex, test = make_examples(train, max_history=10), make_examples(test, max_history=10)
    model = TwoTower(**SMALL, rng=1)
    before = evaluate_retrieval(model, test, data.n_items, ks=(10,)).mean()["recall@10"]
    cfg = TrainConfig(method="mixed", n_epochs=3, batch_size=64, n_negatives=32)
    res = train_model(
        model,
        ex,
        data.n_items,
        cfg,
        rng=3,
        progress=False,
        evaluate=lambda m: evaluate_retrieval(m, test, data.n_items, ks=(10,)).mean(),
    )
    after = res.epoch_metrics[-1]["recall@10"]
    n = test.n_examples
    # Binomial s.e. of a recall from n queries is at most 0.5/sqrt(n); a z = 4 margin
    # on the difference of two such figures (conservative: they are paired).
    assert after - before > 4 * np.sqrt(2) * 0.5 / np.sqrt(n), (before, after)
    assert len(res.epoch_metrics) == 3 and res.epoch_loss[-1] < res.epoch_loss[0]


def test_full_softmax_step_is_cross_entropy(problem):
    data, ex, _ = problem
    batch = ex.take(np.arange(64))
    cfg = TrainConfig(method="full", batch_size=64, temperature=0.1)
    model = TwoTower(**SMALL, rng=4)
    reference = TwoTower(**SMALL, rng=4)
    res = train_model(model, batch, data.n_items, cfg, rng=0, progress=False)
    with torch.no_grad():
        logits = reference(torch.as_tensor(batch.history), torch.arange(data.n_items)) / 0.1
        expected = torch.nn.functional.cross_entropy(logits, torch.as_tensor(batch.target))
    assert res.epoch_loss[0] == pytest.approx(float(expected), rel=1e-5)


def test_streaming_frequency_trains(problem):
    data, ex, _ = problem
    model = TwoTower(**SMALL, rng=1)
    cfg = TrainConfig(method="mixed", batch_size=64, n_negatives=32, frequency="streaming")
    res = train_model(model, ex, data.n_items, cfg, rng=0, progress=False)
    exact = TwoTower(**SMALL, rng=1)
    cfg_exact = TrainConfig(method="mixed", batch_size=64, n_negatives=32)
    res_exact = train_model(exact, ex, data.n_items, cfg_exact, rng=0, progress=False)
    assert np.isfinite(res.epoch_loss[0]) and res.epoch_loss[0] != res_exact.epoch_loss[0]


def test_mixed_without_random_items_equals_inbatch(problem):
    data, ex, _ = problem
    params = []
    for method in ("inbatch", "mixed"):
        model = TwoTower(**SMALL, rng=2)
        cfg = TrainConfig(method=method, batch_size=64, n_negatives=0)
        train_model(model, ex, data.n_items, cfg, rng=5, progress=False)
        params.append(_params(model))
    for a, b in zip(*params, strict=True):
        torch.testing.assert_close(a, b)


def test_correction_changes_training(problem):
    """Negative control for the plumbing: -nologq must not silently equal the corrected run."""
    data, ex, _ = problem
    params = []
    for method in ("inbatch", "inbatch-nologq"):
        model = TwoTower(**SMALL, rng=2)
        cfg = TrainConfig(method=method, batch_size=64)
        train_model(model, ex, data.n_items, cfg, rng=5, progress=False)
        params.append(_params(model))
    assert not all(torch.equal(a, b) for a, b in zip(*params, strict=True))


@pytest.mark.parametrize(
    ("methods", "match"),
    [
        ("sampled,bogus", r"unknown method\(s\) 'bogus'; valid: full, sampled"),
        ("", "at least one method"),
        ("mixed,mixed", "must not repeat"),
    ],
)
def test_bad_method_names(methods, match):
    with pytest.raises(ValueError, match=match):
        parse_methods(methods)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "softmax"}, ValueError, "unknown method"),
        ({"batch_size": 1}, ValueError, "`batch_size` must be >= 2; got 1"),
        ({"n_epochs": 0}, ValueError, "`n_epochs` must be >= 1; got 0"),
        ({"temperature": 0.0}, ValueError, "`temperature` must be positive"),
        ({"n_negatives": 1.5}, TypeError, "`n_negatives` must be an integer"),
        ({"correction": "none"}, ValueError, "`correction` must be"),
    ],
)
def test_bad_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**kwargs)


def test_bad_training_input(problem):
    data, ex, _ = problem
    with pytest.raises(ValueError, match="at least one batch"):
        train_model(TwoTower(**SMALL), ex.take(np.arange(10)), data.n_items, TrainConfig())
    with pytest.raises(ValueError, match=r"`examples.target` must lie in \[0, n_items=5\)"):
        train_model(TwoTower(**SMALL), ex, 5, TrainConfig(batch_size=8))
    with pytest.raises(TypeError, match="`config` must be a TrainConfig"):
        train_model(TwoTower(**SMALL), ex, data.n_items, {"method": "full"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_requested_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_runs(problem):
    data, ex, _ = problem
    model = TwoTower(**SMALL, rng=1)
    res = train_model(
        model, ex, data.n_items, TrainConfig(batch_size=64), rng=0, device="cuda", progress=False
    )
    assert np.isfinite(res.epoch_loss[0])


def test_sampled_step_equals_the_builder_loss(problem):
    """The training step's (B, 1 + B') sampled logits give the builder's loss."""
    from recsys.negatives import sample_uniform_negatives, sampled_softmax_candidates
    from recsys.train import _step_loss

    data, ex, _ = problem
    model = TwoTower(**SMALL, rng=2)
    n = data.n_items
    rows = model.flat_rows(torch.arange(n))
    history = torch.as_tensor(ex.history[:32])
    target = torch.as_tensor(ex.target[:32])
    for logq in (True, False):
        cfg = TrainConfig(method="sampled" if logq else "sampled-nologq", n_negatives=40)
        got = _step_loss(cfg, model, history, target, rows, None, torch.Generator().manual_seed(5))
        neg = sample_uniform_negatives(40, n, generator=torch.Generator().manual_seed(5))
        cs = sampled_softmax_candidates(
            target, model.item_vector(target), neg, model.item_vector(neg), catalog_size=n,
            correction="expected_count" if logq else "none",
        )  # fmt: skip
        want = cs.loss(model.user_vector(history), temperature=cfg.temperature)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_streaming_reads_before_it_updates(problem, monkeypatch):
    """Training reads the streaming p of a batch before recording that batch."""
    import recsys.train as train_mod

    data, ex, _ = problem
    calls = []
    original = train_mod._StreamingShares

    class Spy(original):
        def update(self, ids):
            calls.append(("update", self.estimator.step))
            super().update(ids)

        def __call__(self, ids):
            calls.append(("read", self.estimator.step))
            return super().__call__(ids)

    monkeypatch.setattr(train_mod, "_StreamingShares", Spy)
    cfg = TrainConfig(method="inbatch", batch_size=64, frequency="streaming")
    train_model(TwoTower(**SMALL, rng=1), ex, data.n_items, cfg, rng=0, progress=False)
    assert calls[:2] == [("read", 0), ("update", 0)]


def test_init_scale_sets_the_table_std():
    big = TwoTower(n_rows=2000, dim=32, hidden=(32,), init_scale=1.0, rng=0)
    small = TwoTower(n_rows=2000, dim=32, hidden=(32,), rng=0)
    assert float(big.tables.detach().std()) == pytest.approx(1.0, rel=0.02)
    assert float(small.tables.detach().std()) == pytest.approx(1 / np.sqrt(3 * 32), rel=0.02)
    with pytest.raises(ValueError, match="`init_scale` must be positive"):
        TwoTower(init_scale=0.0)
