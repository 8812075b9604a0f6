"""The validation suite on a Dask cluster: same figures, faults handled (issue 15).

One ``LocalCluster`` of 2 single-threaded worker processes (dashboard off) serves the
module, started the way an outside user would (``dask.distributed.LocalCluster``);
the runs reach it through ``--scheduler ADDRESS``. Every wait is bounded: the CLI's
``--connect-timeout``, subprocess timeouts and polling deadlines. Figures are compared
exactly (``results.json`` minus its ``timing`` and ``versions`` keys).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import estimators
import sim
from validation.__main__ import main
from validation.calibrate import calibrate
from validation.runner import run_checks, select_checks, strip_nondeterministic

distributed = pytest.importorskip("distributed")
# the scheduler serves HTTP even without a dashboard: on a free port, not 8787 (which
# another cluster on this machine may hold; the warning would be an error here)
NO_HTTP_PORT = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SUBSET = ["deng2018-table2", "aa-calibration"]  # checks whose replicates go to the cluster


@pytest.fixture(scope="module")
def cluster():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs=NO_HTTP_PORT,
            silence_logs=40,
        ) as lc,
        distributed.Client(lc, set_as_default=False, timeout=60) as client,
    ):
        client.wait_for_workers(2, timeout=60)
        yield client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _block_keys(client) -> list[str]:
    def keys(dask_scheduler):
        return [str(k) for k in dask_scheduler.tasks if str(k).startswith("abrec-block")]

    return client.run_on_scheduler(keys)


def _blocks_seen(client) -> int:
    def count(dask_scheduler):
        prefix = dask_scheduler.task_prefixes.get("abrec-block")
        return 0 if prefix is None else int(sum(prefix.state_counts.values()))

    return client.run_on_scheduler(count)


def _env(tmp_path, **extra):
    env = dict(os.environ)
    paths = [str(tmp_path), str(HERE), str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.update(extra)
    return env


def _run(args, capsys):
    rc = main(args)
    return rc, capsys.readouterr()


@pytest.fixture(scope="module")
def in_process_doc():
    run = run_checks(select_checks(SUBSET), show_progress=False)
    return strip_nondeterministic(run.to_dict())


@pytest.mark.slow
def test_checks_on_the_cluster_identical_to_in_process(cluster, in_process_doc):
    before = _blocks_seen(cluster)
    with sim.use_backend(cluster.scheduler.address) as session:
        assert session.backend.kind == "dask"
        run = run_checks(select_checks(SUBSET), show_progress=False)
    assert _blocks_seen(cluster) > before, "no replicate block ran on the cluster"
    assert len(in_process_doc["checks"]) >= 2
    assert strip_nondeterministic(run.to_dict()) == in_process_doc


@pytest.mark.slow
def test_cli_scheduler_results_json_identical(tmp_path, cluster, in_process_doc, capsys):
    address = cluster.scheduler.address
    out_dir = tmp_path / "there"
    rc, out = _run(
        [
            "run",
            "--only",
            SUBSET[0],
            "--no-progress",
            "--out",
            str(out_dir),
            "--scheduler",
            address,
        ],
        capsys,
    )
    assert rc == 0, out.out + out.err
    assert f"validation: replicates run on dask scheduler {address}: 2 workers" in out.out
    doc = json.loads((out_dir / "results.json").read_text())
    expected = [c for c in in_process_doc["checks"] if c["check"] == SUBSET[0]]
    assert expected and doc["checks"] == expected


@pytest.mark.slow
def test_calibrate_on_the_cluster_identical(cluster):
    kwargs = dict(n_replicates=40, rng=3, checks=["aa", "bias"])
    here = calibrate(estimators.mean_test, "queries", **kwargs)
    there = calibrate(estimators.mean_test, "queries", **kwargs, backend=cluster)
    docs = [strip_nondeterministic(c.run.to_dict()) for c in (here, there)]
    assert docs[0]["checks"] and docs[0] == docs[1]


def test_unreachable_scheduler_exits_2_naming_it(tmp_path, capsys):
    address = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    rc, out = _run(
        ["run", "--only", SUBSET[0], "--out", str(tmp_path / "r"), "--scheduler", address,
         "--connect-timeout", "2"],
        capsys,
    )  # fmt: skip
    assert rc == 2
    assert f"cannot reach the scheduler at {address} within 2 s" in out.err
    assert time.monotonic() - t0 < 8.0
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--workers", "2"], "`--workers` needs --backend"),
        (["--scheduler", "tcp://127.0.0.1:1", "--backend", "loky"], "`--scheduler` needs"),
        (["--scheduler", "no address"], "`scheduler` must be an address"),
    ],
)
def test_backend_usage_errors_exit_2(tmp_path, capsys, extra, needle):
    rc, out = _run(["run", "--only", SUBSET[0], "--out", str(tmp_path), *extra], capsys)
    assert rc == 2 and needle in out.err


SLOW_MODULE = """
import sim
from _dask_blocks import sleepy_block
from validation import CheckResult, NegativeControl, register


@register("tdask-slow", claim="its replicate blocks take a while on the cluster")
def _slow(ctx):
    blocks = sim.map_blocks(sleepy_block, 40, args=(1.0,), block_size=1)
    return CheckResult("tdask-slow", "c", {}, 0.95, 0.95, 0.01, True, 40, ctx.seed,
                       NegativeControl("naive", 0.5, True))
"""


@pytest.mark.slow
def test_ctrl_c_cancels_cluster_work_and_keeps_results(tmp_path, cluster):
    (tmp_path / "tdask_checks.py").write_text(SLOW_MODULE)
    out = tmp_path / "rep"
    out.mkdir()
    previous = b'{"previous": "run"}\n'
    (out / "results.json").write_bytes(previous)
    address = cluster.scheduler.address
    proc = subprocess.Popen(
        [sys.executable, "-m", "validation", "run", "--import", "tdask_checks", "--only",
         "tdask-*", "--out", str(out), "--no-progress", "--scheduler", address],
        cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not _block_keys(cluster):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the blocks never reached the scheduler"
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stdout + stderr
    assert "running when interrupted: tdask-slow" in stderr
    assert (out / "results.json").read_bytes() == previous
    deadline = time.monotonic() + 10
    while _block_keys(cluster) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _block_keys(cluster) == [], "the interrupted run left its blocks on the cluster"


@pytest.mark.slow  # the whole quick profile on the cluster, its fan-out checks here (~1 min)
def test_quick_profile_identical_in_process_and_on_a_scheduler(tmp_path, cluster):
    """Every check of the quick profile gives the same figures on the cluster as here.

    The whole quick profile runs on the cluster, and its report is written. The only
    code that behaves differently under a backend is :func:`sim.map_blocks` (through
    ``sim.simulate_moments`` and ``validation.mc.run_blocks``): a check that sent no
    replicate block to the cluster (counted per check on the scheduler) computed its
    figures in this process exactly as without a backend. So every check that *did*
    send blocks is run again here, and its cells must be identical; the set is found
    by running, not listed, so a check that starts fanning out is compared at once.
    """
    from validation.report import write_report

    sent: dict[str, int] = {}
    seen = [_blocks_seen(cluster)]

    def count_blocks(outcome):
        seen.append(_blocks_seen(cluster))
        sent[outcome.check.name] = seen[-1] - seen[-2]

    checks = select_checks(None)
    with sim.use_backend(cluster.scheduler.address) as session:
        assert session.backend.kind == "dask"
        there = run_checks(checks, profile="quick", on_outcome=count_blocks, show_progress=False)
    assert there.ok, [o.check.name for o in there.outcomes if not o.ok]
    paths = write_report(there, tmp_path / "there")
    assert Path(paths.results_json).is_file()
    fanned = [c for c in checks if sent[c.name] > 0]
    assert set(SUBSET) <= {c.name for c in fanned}, sent
    here = run_checks(fanned, profile="quick", show_progress=False)
    names = {c.name for c in fanned}
    there_doc = strip_nondeterministic(there.to_dict())
    expected = [c for c in there_doc["checks"] if c["check"] in names]
    assert expected and strip_nondeterministic(here.to_dict())["checks"] == expected


@pytest.mark.slow  # starts its own LocalCluster
def test_cli_local_cluster_identical_to_in_process(tmp_path, in_process_doc, capsys):
    """``--backend dask --workers 2`` starts a LocalCluster and gives the in-process figures."""
    argv = ["run", "--only", *SUBSET, "--no-progress", "--out", str(tmp_path)]
    rc, out = _run([*argv, "--backend", "dask", "--workers", "2"], capsys)
    assert rc == 0, out.out + out.err
    assert "dask LocalCluster tcp://127.0.0.1:" in out.out
    doc = strip_nondeterministic(json.loads((tmp_path / "results.json").read_text()))
    assert doc["checks"] == in_process_doc["checks"]


def test_missing_library_exits_2_with_the_install_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    rc, out = _run(
        ["run", "--only", SUBSET[0], "--out", str(tmp_path), "--backend", "dask"], capsys
    )
    assert rc == 2
    assert "the 'dask' backend needs distributed: pip install 'abrec-validate[dask]'" in out.err
