"""streamrec_core: the pure numpy scoring core shipped in the numpy Lambda layer."""

from streamrec_core.content import (
    content_cosine,
    idf,
    overlap_scores,
    term_counts,
    tfidf_norm,
    tokenize,
)
from streamrec_core.scoring import (
    ADDED_VALUE,
    CONFIDENCE,
    COSINE,
    JACCARD,
    LIFT,
    LLR,
    SIMILARITY_MEASURES,
    coupon_propensity,
    coupon_scores,
    decay,
    max_normalized_blend,
    personalized_scores,
    similarity,
    top_k,
)
from streamrec_core.trends import holt_forecast, velocity_scores, window_counts

__all__ = [
    "ADDED_VALUE",
    "CONFIDENCE",
    "COSINE",
    "JACCARD",
    "LIFT",
    "LLR",
    "SIMILARITY_MEASURES",
    "content_cosine",
    "coupon_propensity",
    "coupon_scores",
    "decay",
    "idf",
    "max_normalized_blend",
    "overlap_scores",
    "personalized_scores",
    "similarity",
    "term_counts",
    "tfidf_norm",
    "tokenize",
    "top_k",
    "holt_forecast",
    "velocity_scores",
    "window_counts",
]
