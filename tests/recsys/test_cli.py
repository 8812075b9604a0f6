import hashlib
import json
import re

import numpy as np
import pytest
import torch

from recsys.__main__ import main
from recsys.compare import CompareConfig, clustered_mean_difference, run_comparison
from recsys.data import generate_synthetic_ratings, synthetic_movielens, write_ratings

TINY = [
    "--synthetic-users", "120", "--synthetic-items", "80", "--synthetic-ratings", "25",
    "--min-positives", "10", "--batch-size", "32", "--negatives", "16", "--folds", "4",
    "--ks", "5,10", "--max-history", "8", "--no-progress", "--threads", "1",
]  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_compare_writes_results(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["compare", "--data", "synthetic", "--methods", "sampled,inbatch,mixed,full"]
    assert main([*argv, "--seeds", "2", "--epochs", "2", "--out", str(out), *TINY]) == 0
    table = capsys.readouterr().out
    assert "| mixed |" in table and "published order" in table
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["methods"]) == {"sampled", "inbatch", "mixed", "full"}
    stats = doc["methods"]["mixed"]["metrics"]["recall@10"]
    assert len(stats["per_seed"]) == 2
    assert stats["mean"] == pytest.approx(np.mean(stats["per_seed"]))
    assert stats["ci_low"] <= stats["mean"] <= stats["ci_high"]
    assert len(doc["methods"]["full"]["per_epoch"]["recall@5"][0]) == 2  # 2 epochs
    assert "full - mixed" not in doc["paired"] and "mixed - full" in doc["paired"]
    pooled = doc["paired"]["sampled - mixed"]["recall@10"]["pooled_clustered"]
    assert pooled["ci_low"] <= pooled["estimate"] <= pooled["ci_high"]
    assert len(doc["data"]["fingerprint"]) == 64
    assert doc["ordering"]["metric"] == "recall@10"
    # every seed holds out its own users, none of them trained on in that run
    for run in doc["runs"]:
        assert run["n_train_users"] + run["n_test_users"] == doc["data"]["n_users"]
    assert (out / "recall_per_epoch.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "results.md").read_text().startswith("data: synthetic")


@pytest.mark.slow
def test_compare_reads_a_file_and_fingerprints_it(tmp_path, capsys):
    path = write_ratings(
        generate_synthetic_ratings(120, 80, mean_ratings=25, rng=1), tmp_path / "ratings.dat"
    )
    out = tmp_path / "out"
    argv = ["compare", "--data", str(path), "--methods", "inbatch", "--seeds", "1"]
    assert main([*argv, "--out", str(out), *TINY]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["data"]["fingerprint"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert doc["methods"]["inbatch"]["metrics"]["recall@5"]["ci_low"] is None  # one seed


@pytest.mark.slow
def test_sweep_writes_table(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", "--data", "synthetic", "--temperatures", "0.05,0.5", "--seeds", "2"]
    assert main([*argv, "--out", str(out), *TINY]) == 0
    table = capsys.readouterr().out
    assert "inbatch - inbatch-nologq" in table and "| 0.5 (2) |" in table
    doc = json.loads((out / "results.json").read_text())
    assert doc["temperatures"] == [0.05, 0.5]
    assert doc["results"][1]["config"]["temperature"] == 0.5


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--methods", "sampled,softmax"], r"unknown method\(s\) 'softmax'"),
        (["--ks", "10,500"], r"`k` must be in \[1, n_items=\d+\]; got 500"),
        (["--min-positives", "100000"], "no user is left after filtering"),
        (["--seeds", "5"], "`n_seeds` must be <= `n_folds`"),
        (["--ks", "0"], r"`k` must be in \[1, n_items=\d+\]; got 0"),
        (["--epochs", "0"], "`n_epochs` must be >= 1; got 0"),
    ],
)
def test_cli_bad_input(tmp_path, capsys, extra, match):
    with pytest.raises(SystemExit) as info:
        main(["compare", "--out", str(tmp_path), *TINY, *extra])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert re.search(match, err), err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cli_cuda_without_cuda(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["compare", "--device", "cuda", "--out", str(tmp_path), *TINY])
    assert info.value.code == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_cli_wrong_columns_and_missing_file(tmp_path, capsys):
    bad = tmp_path / "ratings.csv"
    bad.write_text("user,item,score,time\n1,2,3.0,4\n")
    for data, match in ((bad, "must have the columns"), (tmp_path / "none.csv", "does not exist")):
        with pytest.raises(SystemExit) as info:
            main(["compare", "--data", str(data), "--out", str(tmp_path), *TINY])
        assert info.value.code == 2
        assert match in capsys.readouterr().err


def test_clustered_difference_matches_ols_cluster_se():
    """Reference: statsmodels OLS of d on a constant, cluster-robust, no small-sample
    correction except G/(G-1), equals the delta-method ratio s.e."""
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(40), rng.integers(1, 30, 40))
    d = rng.standard_normal(users.size) + rng.standard_normal(40)[users]
    ours = clustered_mean_difference(d, users)
    fit = sm.OLS(d, np.ones_like(d)).fit(
        cov_type="cluster", cov_kwds={"groups": users, "use_correction": False}
    )
    g = 40
    assert ours["estimate"] == pytest.approx(fit.params[0])
    assert ours["std_error"] == pytest.approx(fit.bse[0] * np.sqrt(g / (g - 1)), rel=1e-10)


def test_run_comparison_shares_initialisation_across_methods():
    """Paired design: with B' = 0 mixed negatives are in-batch negatives, so the two
    methods give identical per-query results (same folds, weights and batches)."""
    data = synthetic_movielens(120, 80, mean_ratings=25, min_positives=10, rng=0)
    cfg = CompareConfig(
        methods=("inbatch", "mixed"), n_seeds=2, n_folds=4, batch_size=32, n_negatives=0,
        ks=(5,), max_history=8,
    )  # fmt: skip
    res = run_comparison(data, cfg, rng=1, progress=False)
    pooled = res["paired"]["inbatch - mixed"]["recall@5"]["pooled_clustered"]
    assert pooled["estimate"] == 0.0
    a = res["methods"]["inbatch"]["metrics"]["recall@5"]["per_seed"]
    assert a == res["methods"]["mixed"]["metrics"]["recall@5"]["per_seed"]


def test_out_that_is_a_file_exits_2_before_training(tmp_path, capsys, monkeypatch):
    import recsys.compare

    target = tmp_path / "results.txt"
    target.write_text("keep me")
    monkeypatch.setattr(recsys.compare, "run_comparison", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(SystemExit) as info:
        main(["compare", "--out", str(target), *TINY])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "`--out` must be a directory" in err and "Traceback" not in err
    assert target.read_text() == "keep me"


@pytest.mark.slow
def test_interrupt_keeps_completed_seeds_and_exits_130(tmp_path, capsys, monkeypatch):
    import recsys.compare as compare

    calls = []
    real = compare.train_model

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:  # seed 0 trains 2 methods, then Ctrl-C during seed 1
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(compare, "train_model", interrupted)
    out = tmp_path / "out"
    argv = ["compare", "--methods", "inbatch,mixed", "--seeds", "3", "--out", str(out), *TINY]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "1 of 3 seed(s) completed" in err and "Traceback" not in err
    assert not (out / "results.json").exists()
    doc = json.loads((out / "partial_results.json").read_text())
    assert doc["completed_seeds"] == 1 and doc["config"]["n_seeds"] == 3
    assert len(doc["methods"]["mixed"]["metrics"]["recall@5"]["per_seed"]) == 1


@pytest.mark.slow
def test_cli_subprocess_out_file_and_sigint(tmp_path):
    """The outside checks: exit 2 within 20 s for a file --out; SIGINT -> 130, no traceback."""
    import signal
    import subprocess
    import sys
    import time

    target = tmp_path / "file"
    target.write_text("")
    cmd = [sys.executable, "-m", "recsys", "compare", *TINY]
    start = time.monotonic()
    done = subprocess.run([*cmd, "--out", str(target)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and time.monotonic() - start < 20
    assert "Traceback" not in done.stderr
    big = ["--synthetic-users", "400", "--synthetic-items", "300", "--seeds", "3", "--epochs", "3"]
    proc = subprocess.Popen(
        [*cmd, *big, "--out", str(tmp_path / "run")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(8)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert not (tmp_path / "run" / "results.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.6, 1.0, 1.4, 1.8])
def test_sigint_during_start_up_exits_130(tmp_path, delay):
    """Ctrl-C while torch and the data load: 130 with the "interrupted" line, never -2.

    The output directory is created first thing in ``main``; the signal follows it by
    ``delay``. Before the command's own SIGINT handler, about one such run in ten died
    by SIGINT (status -2) after printing the "interrupted" line: a KeyboardInterrupt
    raised inside C-run import code marks the interpreter for a signal exit even when
    caught.
    """
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    big = ["--synthetic-users", "400", "--synthetic-items", "300", "--seeds", "3", "--epochs", "3"]
    cmd = [sys.executable, "-m", "recsys", "compare", *TINY, *big, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err


def test_interrupt_inside_main_returns_130_and_restores_the_handler(monkeypatch, tmp_path):
    import signal

    import recsys.__main__ as cli

    before = signal.getsignal(signal.SIGINT)
    seen = {}

    def interrupted(args):
        seen["handler"] = signal.getsignal(signal.SIGINT)
        raise cli._Interrupted

    monkeypatch.setattr(cli, "_load", interrupted)
    assert cli.main(["compare", *TINY, "--out", str(tmp_path / "run")]) == 130
    assert seen["handler"] is cli._raise_interrupted
    assert signal.getsignal(signal.SIGINT) is before
