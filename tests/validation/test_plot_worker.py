"""Check plots drawn in a background process: the same PNG bytes, and no plot lost."""

import pickle

import pytest
from _tmpchecks import register_tmp_checks

from validation.core import get_check, unregister
from validation.plot_worker import BackgroundPlots
from validation.report import render_check_plot, write_report
from validation.runner import run_checks, select_checks


@pytest.mark.slow
def test_worker_draws_the_bytes_this_process_would(tmp_path):
    run = run_checks(select_checks(["power-mde-roundtrip"]), show_progress=False)
    (outcome,) = run.outcomes
    with BackgroundPlots() as background:
        background.submit(outcome)
        drawn = background.plots()
    assert set(drawn) == {"power-mde-roundtrip"}  # drawn by the worker, not here
    assert drawn["power-mde-roundtrip"].png == render_check_plot(outcome).png
    paths = write_report(run, tmp_path, plots=drawn)
    png = tmp_path / "plots" / "power-mde-roundtrip.png"
    assert png in paths.plots and png.read_bytes() == drawn["power-mde-roundtrip"].png


@pytest.mark.slow
def test_an_outcome_the_worker_cannot_take_is_drawn_here(tmp_path):
    names = register_tmp_checks("tpw", plot=lambda results: _figure())  # a lambda: no pickle
    try:
        run = run_checks([get_check(n) for n in names], seed=1, show_progress=False)
        with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
            pickle.dumps(run.outcomes[0])
        with BackgroundPlots() as background:
            for outcome in run.outcomes:
                background.submit(outcome)
            paths = write_report(run, tmp_path, plots=background.plots)
        assert {p.name for p in paths.plots} >= {f"{n}.png" for n in names}
        assert paths.plot_errors == ()
    finally:
        for name in names:
            unregister(name)


def test_disabled_draws_nothing_in_the_background():
    run = run_checks(select_checks(["power-mde-roundtrip"]), show_progress=False)
    with BackgroundPlots(enabled=False) as background:
        background.submit(run.outcomes[0])
        assert background.plots() == {}


def _figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [0, 1])
    return fig
