"""streamrec_core: the pure numpy scoring core shipped in the numpy Lambda layer."""

from streamrec_core.scoring import (
    ADDED_VALUE,
    CONFIDENCE,
    COSINE,
    JACCARD,
    LIFT,
    LLR,
    SIMILARITY_MEASURES,
    coupon_scores,
    decay,
    max_normalized_blend,
    personalized_scores,
    similarity,
    top_k,
)

__all__ = [
    "ADDED_VALUE",
    "CONFIDENCE",
    "COSINE",
    "JACCARD",
    "LIFT",
    "LLR",
    "SIMILARITY_MEASURES",
    "coupon_scores",
    "decay",
    "max_normalized_blend",
    "personalized_scores",
    "similarity",
    "top_k",
]
