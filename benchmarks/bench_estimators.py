"""Estimators at scale (issue 7, item 4): 10^7 users, three ways.

Data: one experiment of the docs/theory.md §2 reference scenario, ``sim.simulate_clicks(
ReferenceCtr(), n_users, rng=0)``, control block then treatment block.

* **Delta test** of the CTR difference (clicks / views, docs/theory.md §1):

  - from sufficient statistics: ``ratio_test_from_moments`` on the two arms'
    ``RatioMoments`` (what a simulation hands over), and the aggregation
    ``RatioMoments.from_arrays`` that produces them, timed separately;
  - from arrays: ``ratio_test(clicks_t, views_t, clicks_c, views_c)``;
  - statsmodels: ``OLS(click ~ 1 + arm)`` on session rows (one row per view),
    ``cov_type="cluster"`` by user without the small-sample correction — the same
    s.e. as the delta method with ``ddof=0`` (docs/theory.md §1).

* **CUPED with 3 covariates** on clicks per user, X = (pre-period clicks, pre-period
  views, pre-period user CTR), ``theta="within"`` (whose estimate equals the OLS
  treatment coefficient exactly):

  - from sufficient statistics (``cuped_test_from_moments``) and the aggregation;
  - from arrays (``cuped_test``);
  - statsmodels ``OLS(y ~ 1 + arm + X)`` on user rows, ``cov_type="HC0"``.

statsmodels runs in a child process per size (so its peak memory, ``VmHWM``, is
its own), timing only the fit (data building excluded). It runs on
``--ols-users`` users (default 10^5 and 10^6): 10^7 users mean ~7 x 10^7 session rows,
whose cluster-robust fit needs several GiB; it is run at 10^7 only when
``--ols-users`` says so and the extrapolated peak (linear in rows, from the largest
size measured) fits in half the available memory; otherwise the 10^7 figure is a
linear extrapolation and the table says so. Each suite timing is the median of
``--runs`` runs. Usage::

    .venv/bin/python benchmarks/bench_estimators.py [--runs 5] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from estimators import (  # noqa: E402
    RatioMoments,
    cuped_test,
    cuped_test_from_moments,
    ratio_test,
    ratio_test_from_moments,
)
from sim import ReferenceCtr, simulate_clicks  # noqa: E402

N_USERS = 10_000_000


def _data(n_users: int):
    d = simulate_clicks(ReferenceCtr(), n_users, rng=0)
    pre_ctr = d.pre_clicks / d.pre_views  # pre_views >= 1 in this scenario
    X = np.column_stack([d.pre_clicks, d.pre_views, pre_ctr]).astype(np.float64)
    return d, X


def _median(fn, runs):
    wall, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        wall.append(time.perf_counter() - t0)
    return statistics.median(wall), out


# --------------------------------------------------------------------------- statsmodels child
def _peak_rss_gib() -> float:
    """Peak resident memory of this process since its exec (VmHWM).

    ``getrusage(...).ru_maxrss`` would not do: Linux carries it across fork + exec,
    so a child of a large parent would report the parent's size.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _ols_child(kind: str, n_users: int) -> dict:
    """Fit one statsmodels model on ``n_users`` users; time the fit only."""
    import statsmodels.api as sm

    d, X = _data(n_users)
    arm = d.arm.astype(np.float64)
    if kind == "delta":
        user = np.repeat(np.arange(d.arm.size), d.views)
        rank = np.arange(user.size) - np.repeat(np.cumsum(d.views) - d.views, d.views)
        click = (rank < np.repeat(d.clicks, d.views)).astype(np.float64)  # row order is free
        exog = np.column_stack([np.ones(user.size), arm[user]])
        del rank
        t0 = time.perf_counter()
        fit = sm.OLS(click, exog).fit(
            cov_type="cluster", cov_kwds={"groups": user, "use_correction": False}
        )
        rows = user.size
    else:
        exog = np.column_stack([np.ones(arm.size), arm, X])
        t0 = time.perf_counter()
        fit = sm.OLS(d.clicks.astype(np.float64), exog).fit(cov_type="HC0")
        rows = arm.size
    seconds = time.perf_counter() - t0
    t, c = d.arm == 1, d.arm == 0
    if kind == "delta":
        ours = ratio_test(d.clicks[t], d.views[t], d.clicks[c], d.views[c], ddof=0)
    else:
        ours = cuped_test(d.clicks.astype(np.float64), d.arm, X, theta="within")
    return {
        "kind": kind,
        "n_users": n_users,
        "rows": int(rows),
        "seconds": seconds,
        "estimate": float(fit.params[1]),
        "std_error": float(fit.bse[1]),
        "max_rss_gib": _peak_rss_gib(),
        "suite_estimate": float(ours.estimate),
        "suite_std_error": float(ours.std_error),
    }


def run_ols(kind: str, n_users: int) -> dict:
    """Run :func:`_ols_child` in a fresh interpreter and return its record."""
    cmd = [sys.executable, __file__, "--ols-child", kind, str(n_users)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mem_available_gib() -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable"):
                return int(line.split()[1]) / 2**20
    return float("nan")


# --------------------------------------------------------------------------- main
def main(argv=None):
    """Command-line entry point; returns the measured figures as a dict."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--users", type=int, default=N_USERS)
    ap.add_argument("--ols-users", type=str, default="100000,1000000")
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--ols-child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.ols_child:
        print(json.dumps(_ols_child(args.ols_child[0], int(args.ols_child[1]))))
        return None

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    d, X = _data(args.users)
    t_sim = time.perf_counter() - t0
    t_mask, c_mask = d.arm == 1, d.arm == 0
    v, m = d.clicks.astype(np.float64), d.views.astype(np.float64)
    vt, mt, vc, mc = v[t_mask], m[t_mask], v[c_mask], m[c_mask]
    arm = d.arm
    y = v
    res = {}

    # delta test
    res["delta_agg"], (mom_t, mom_c) = _median(
        lambda: (RatioMoments.from_arrays(vt, mt), RatioMoments.from_arrays(vc, mc)), args.runs
    )
    res["delta_mom"], r_mom = _median(
        lambda: ratio_test_from_moments(mom_t, mom_c, ddof=0), max(args.runs, 20)
    )
    res["delta_arr"], r_arr = _median(lambda: ratio_test(vt, mt, vc, mc, ddof=0), args.runs)

    # CUPED, 3 covariates
    Xt, Xc = X[t_mask], X[c_mask]
    res["cuped_agg"], (cm_t, cm_c) = _median(
        lambda: (RatioMoments.from_arrays(y[t_mask], None, Xt),
                 RatioMoments.from_arrays(y[c_mask], None, Xc)),
        args.runs,
    )  # fmt: skip
    res["cuped_mom"], c_mom = _median(
        lambda: cuped_test_from_moments(cm_t, cm_c, theta="within"), max(args.runs, 20)
    )
    res["cuped_arr"], c_arr = _median(lambda: cuped_test(y, arm, X, theta="within"), args.runs)

    # statsmodels, in child processes
    sizes = sorted(int(s) for s in args.ols_users.split(",") if s)
    ols = {"delta": [], "cuped": []}
    mem_avail = _mem_available_gib()
    for kind in ("delta", "cuped"):
        for n in sizes:
            if ols[kind] and n > ols[kind][-1]["n_users"]:
                last = ols[kind][-1]
                need = last["max_rss_gib"] * n / last["n_users"]
                if need > 0.5 * _mem_available_gib():
                    ols[kind].append({"n_users": n, "skipped": f"needs ~{need:.1f} GiB"})
                    continue
            ols[kind].append(run_ols(kind, n))

    lines = [
        f"Estimators on {args.users:,} users (one experiment of the docs/theory.md §2 reference "
        f"scenario, simulated in {t_sim:.1f} s); suite timings are medians of {args.runs} "
        f"runs (moments -> test: of max(runs, 20)); load average {load0:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end; memory available at the statsmodels step "
        f"{mem_avail:.1f} GiB (2 shared cores).",
        "",
        "| metric | path | users fitted | seconds | s at 10^7 users | / from arrays "
        "| estimate | s.e. |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    scale = N_USERS / args.users  # array paths are linear in users; the test on moments is not
    for kind, label, agg, mom, arr, r_m, r_a in (
        ("delta", "delta test (CTR diff.)", "delta_agg", "delta_mom", "delta_arr", r_mom, r_arr),
        ("cuped", "CUPED, 3 covariates", "cuped_agg", "cuped_mom", "cuped_arr", c_mom, c_arr),
    ):
        t_arr = res[arr] * scale
        rows = [
            ("from sufficient statistics (test only)", res[mom], res[mom], r_m),
            ("aggregation arrays -> moments (both arms)", res[agg], res[agg] * scale, None),
            ("from arrays", res[arr], t_arr, r_a),
        ]
        for label_path, t, t7, r in rows:
            est = " | " if r is None else f"{r.estimate:.6g} | {r.std_error:.6g}"
            lines.append(
                f"| {label} | {label_path} | {args.users:,} | {t:.4g} | {t7:.4g} "
                f"| {t7 / t_arr:.3g}x | {est} |"
            )
        what = (
            "statsmodels OLS click ~ arm, session rows, cluster by user"
            if kind == "delta"
            else "statsmodels OLS y ~ arm + X, user rows, HC0"
        )
        for rec in ols[kind]:
            n = rec["n_users"]
            if "skipped" in rec:
                last = [r for r in ols[kind] if "seconds" in r][-1]
                t7 = last["seconds"] * N_USERS / last["n_users"]
                lines.append(
                    f"| {label} | {what}: **not run** ({rec['skipped']}) | {n:,} | | "
                    f"~{t7:.4g} (extrap.) | ~{t7 / t_arr:.3g}x | | |"
                )
                continue
            t = rec["seconds"]
            t7 = t * N_USERS / n
            extrap = "" if n == N_USERS else " (linear extrap.)"
            lines.append(
                f"| {label} | {what} ({rec['rows']:,} rows, peak RSS "
                f"{rec['max_rss_gib']:.2f} GiB) | {n:,} | {t:.4g} | {t7:.4g}{extrap} "
                f"| {t7 / t_arr:.3g}x | {rec['estimate']:.6g} | {rec['std_error']:.6g} |"
            )
    lines += [
        "",
        "The statsmodels rows fit a smaller experiment (simulated at that size with the "
        "same seed), so their estimate and s.e. differ from the 10^7 rows'. On that same "
        "smaller experiment the suite gives (relative differences to statsmodels):",
        "",
    ]
    for kind in ("delta", "cuped"):
        for rec in ols[kind]:
            if "seconds" in rec:
                de = abs(rec["suite_estimate"] / rec["estimate"] - 1)
                ds = abs(rec["suite_std_error"] / rec["std_error"] - 1)
                lines.append(
                    f"- {kind}, {rec['n_users']:,} users: estimate rel. diff. {de:.1e}, "
                    f"s.e. rel. diff. {ds:.1e}"
                    + (" (CUPED s.e. treats theta as known: O(1/n))" if kind == "cuped" else "")
                )
    lines += [
        "",
        "'per 10^7 users' for the statsmodels rows is a linear extrapolation from the size fitted.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return {"suite": res, "ols": ols}


if __name__ == "__main__":
    main()
