"""Retrieval training in PyTorch: sampled softmax, logQ-corrected in-batch and mixed
negatives, frequency estimation, a two-tower candidate generator and Recall@K (SPEC §4).
"""

from recsys.frequency import ExactFrequency, StreamingFrequencyEstimator
from recsys.losses import (
    MixedNegativesLoss,
    SampledSoftmaxLoss,
    sampled_softmax_loss,
    softmax_loss_from_logits,
)
from recsys.negatives import (
    CandidateSet,
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
