"""Retrieval training in PyTorch (docs/theory.md §4).

Sampled softmax, logQ-corrected in-batch and mixed negatives, frequency estimation, a
two-tower candidate generator and Recall@K.

The names below are imported on first use (PEP 562), so that ``python -m recsys`` can
check its arguments (``--out`` first) before torch is loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "CandidateSet": "recsys.negatives",
    "CompareConfig": "recsys.compare",
    "EvaluationResult": "recsys.metrics",
    "ExactFrequency": "recsys.frequency",
    "Examples": "recsys.data",
    "Interactions": "recsys.data",
    "MixedNegativesLoss": "recsys.negatives",
    "SampledSoftmaxLoss": "recsys.losses",
    "StreamingFrequencyEstimator": "recsys.frequency",
    "TrainConfig": "recsys.train",
    "TrainResult": "recsys.train",
    "TwoTower": "recsys.model",
    "evaluate_retrieval": "recsys.metrics",
    "expected_count": "recsys.negatives",
    "expected_distinct": "recsys.negatives",
    "first_occurrence": "recsys.negatives",
    "full_softmax_candidates": "recsys.negatives",
    "generate_synthetic_ratings": "recsys.data",
    "hash_ids": "recsys.model",
    "in_batch_candidates": "recsys.negatives",
    "inclusion_probability": "recsys.negatives",
    "kfold_user_splits": "recsys.data",
    "leave_last_out": "recsys.data",
    "load_movielens": "recsys.data",
    "make_examples": "recsys.data",
    "mixed_candidates": "recsys.negatives",
    "ndcg_at_k": "recsys.metrics",
    "random_user_split": "recsys.data",
    "recall_at_k": "recsys.metrics",
    "run_comparison": "recsys.compare",
    "sample_uniform_negatives": "recsys.negatives",
    "sample_unigram_negatives": "recsys.negatives",
    "sampled_softmax_candidates": "recsys.negatives",
    "sampled_softmax_loss": "recsys.losses",
    "softmax_loss_from_logits": "recsys.losses",
    "synthetic_movielens": "recsys.data",
    "temperature_sweep": "recsys.compare",
    "train_model": "recsys.train",
}
_SUBMODULES = (
    "compare",
    "data",
    "distributed",
    "frequency",
    "losses",
    "metrics",
    "model",
    "negatives",
    "train",
)

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"recsys.{name}")
    raise AttributeError(f"module 'recsys' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, *_SUBMODULES])
