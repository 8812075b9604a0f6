"""Write ``examples/aa_sessions.parquet``: a small heavy-tailed A/A session log.

The file is the shipped example of ``docs/calibrate.md`` ("on your own data"). Each
row is one session of one user: ``user_id``, ``variant`` (``"A"`` or ``"B"``, an A/A
split: no effect), ``clicks``, ``views`` and ``pre_clicks`` (the user's pre-period
clicks, on the user's first session only, NULL elsewhere). Users come from the
heavy-tailed ratio metric of the built-in ``heavy-tails`` scenario
(``sim.BetaBinomialCtr``: Beta CTRs of concentration 2, Poisson-lognormal views of
log-s.d. 1.2); each user's views and clicks are spread over 1-4 sessions.

Usage::

    python scripts/make_example_data.py [--users 3000] [--seed 14] [--out PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import sim

HEAVY = sim.BetaBinomialCtr(
    ctr_mean=0.1,
    concentration=2.0,
    views="lognormal",
    views_mean=5.0,
    views_dispersion=1.2,
    effect=0.0,
    effect_type="multiplicative",
)


def sessions_frame(n_users: int, *, seed: int) -> pd.DataFrame:
    """Return the session rows of ``n_users`` users (half ``"A"``, half ``"B"``)."""
    ss = np.random.SeedSequence(seed)
    users_ss, split_ss = ss.spawn(2)
    data = sim.simulate_clicks(HEAVY, n_users, rng=users_ss)
    rng = np.random.default_rng(split_ss)
    rows = []
    for i in range(n_users):
        k = int(rng.integers(1, 5))  # sessions of this user
        views = rng.multinomial(int(data.views[i]), np.full(k, 1.0 / k))
        clicks = rng.multivariate_hypergeometric(views, int(data.clicks[i]))
        for j in range(k):
            rows.append(
                (
                    i + 1,
                    "B" if data.arm[i] else "A",
                    int(clicks[j]),
                    int(views[j]),
                    float(data.pre_clicks[i]) if j == 0 else np.nan,
                )
            )
    return pd.DataFrame(rows, columns=["user_id", "variant", "clicks", "views", "pre_clicks"])


def main() -> None:
    """Write the file (command line above)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parents[1] / "examples/aa_sessions.parquet")
    )
    args = parser.parse_args()
    frame = sessions_frame(args.users, seed=args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(args.out, index=False)
    print(f"wrote {args.out}: {len(frame):,} rows, {args.users:,} users")


if __name__ == "__main__":
    main()
