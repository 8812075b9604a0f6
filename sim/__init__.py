"""Seeded, numba-accelerated simulators whose ground truth is known.

A/B click data (docs/theory.md §1-3) and synthetic softmax / retrieval problems (docs/theory.md §4).
"""

from sim._fanout import (
    Backend,
    SchedulerUnreachableError,
    active_session,
    map_blocks,
    use_backend,
)
from sim._seed import RngLike, as_seed_sequence, child_sequences
from sim.ab import (
    MOMENT_NAMES,
    ClickData,
    Moments,
    QueryData,
    simulate_clicks,
    simulate_moments,
    simulate_queries,
    simulate_sessions,
    split_users,
)
from sim.scenarios import BetaBinomialCtr, CtrTruth, Deng2018Classes, QueryScenario, ReferenceCtr
from sim.softmax import (
    InBatchSampler,
    MixedSampler,
    SoftmaxProblem,
    UniformSampler,
    UnigramSampler,
    counts_per_set,
    expected_full_softmax_gradient,
    expected_full_softmax_loss,
    full_softmax_gradient,
    full_softmax_loss,
    make_softmax_problem,
    sample_categorical_rows,
)

__all__ = ["RngLike", "as_seed_sequence", "child_sequences"]
__all__ += [  # replicate blocks on threads, processes or a cluster (sim._fanout)
    "Backend",
    "SchedulerUnreachableError",
    "active_session",
    "map_blocks",
    "use_backend",
]
__all__ += [  # A/B click and query simulators (sim.ab, sim.scenarios)
    "MOMENT_NAMES",
    "BetaBinomialCtr",
    "ClickData",
    "CtrTruth",
    "Deng2018Classes",
    "Moments",
    "QueryData",
    "QueryScenario",
    "ReferenceCtr",
    "simulate_clicks",
    "simulate_moments",
    "simulate_queries",
    "simulate_sessions",
    "split_users",
]
__all__ += [  # synthetic softmax problems and samplers (sim.softmax)
    "InBatchSampler",
    "MixedSampler",
    "SoftmaxProblem",
    "UniformSampler",
    "UnigramSampler",
    "counts_per_set",
    "expected_full_softmax_gradient",
    "expected_full_softmax_loss",
    "full_softmax_gradient",
    "full_softmax_loss",
    "make_softmax_problem",
    "sample_categorical_rows",
]
