"""Retrieval training in PyTorch (SPEC §4).

Sampled softmax, logQ-corrected in-batch and mixed negatives, frequency estimation, a
two-tower candidate generator and Recall@K.
"""

from recsys.compare import CompareConfig, run_comparison, temperature_sweep
from recsys.data import (
    Examples,
    Interactions,
    generate_synthetic_ratings,
    kfold_user_splits,
    leave_last_out,
    load_movielens,
    make_examples,
    random_user_split,
    synthetic_movielens,
)
from recsys.frequency import ExactFrequency, StreamingFrequencyEstimator
from recsys.losses import (
    SampledSoftmaxLoss,
    sampled_softmax_loss,
    softmax_loss_from_logits,
)
from recsys.metrics import EvaluationResult, evaluate_retrieval, ndcg_at_k, recall_at_k
from recsys.model import TwoTower, hash_ids
from recsys.negatives import (
    CandidateSet,
    MixedNegativesLoss,
    expected_count,
    expected_distinct,
    first_occurrence,
    full_softmax_candidates,
    in_batch_candidates,
    inclusion_probability,
    mixed_candidates,
    sample_uniform_negatives,
    sample_unigram_negatives,
    sampled_softmax_candidates,
)
from recsys.train import TrainConfig, TrainResult, train_model

__all__: list[str] = []
__all__ += [
    "CandidateSet",
    "ExactFrequency",
    "StreamingFrequencyEstimator",
    "MixedNegativesLoss",
    "SampledSoftmaxLoss",
    "expected_count",
    "expected_distinct",
    "first_occurrence",
    "full_softmax_candidates",
    "in_batch_candidates",
    "inclusion_probability",
    "mixed_candidates",
    "sample_uniform_negatives",
    "sample_unigram_negatives",
    "sampled_softmax_candidates",
    "sampled_softmax_loss",
    "softmax_loss_from_logits",
]
__all__ += [
    "CompareConfig",
    "EvaluationResult",
    "Examples",
    "Interactions",
    "TrainConfig",
    "TrainResult",
    "TwoTower",
    "evaluate_retrieval",
    "generate_synthetic_ratings",
    "hash_ids",
    "kfold_user_splits",
    "leave_last_out",
    "load_movielens",
    "make_examples",
    "ndcg_at_k",
    "random_user_split",
    "recall_at_k",
    "run_comparison",
    "synthetic_movielens",
    "temperature_sweep",
    "train_model",
]
