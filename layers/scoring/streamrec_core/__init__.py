"""streamrec_core: the pure numpy scoring core shipped in the numpy Lambda layer."""

from streamrec_core.scoring import (
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
from streamrec_core.trends import holt_forecast, velocity_scores, window_counts

__all__ = [
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
    "holt_forecast",
    "velocity_scores",
    "window_counts",
]
