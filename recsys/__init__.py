"""Retrieval training in PyTorch: sampled softmax, logQ-corrected in-batch and mixed
negatives, frequency estimation, a two-tower candidate generator and Recall@K (SPEC §4).
"""

__all__: list[str] = []
