"""Pure numpy scoring core: similarity measures, top-k selection, time-decayed affinity.

No I/O, no boto3, no powertools: every function takes arrays and returns arrays, so the
same code runs in Lambda, in the evaluation harness and in the unit tests.

Notation (as in SAR): for items i and j, ``c_ij`` is their co-occurrence count, ``c_ii``
the item's own count (its "norm"), and ``total`` the sum of all items' own counts.
"""

from __future__ import annotations

import numpy as np

COSINE = "cosine"
JACCARD = "jaccard"
LIFT = "lift"
LLR = "llr"
CONFIDENCE = "confidence"
ADDED_VALUE = "added_value"
SIMILARITY_MEASURES = (COSINE, JACCARD, LIFT, LLR, CONFIDENCE, ADDED_VALUE)
# Measures whose scores are not bounded by 1 (the others lie in [0, 1], or below 1).
UNBOUNDED_MEASURES = (LIFT, LLR)


def cosine(pair_counts: np.ndarray, item_count: float, neighbour_counts: np.ndarray) -> np.ndarray:
    """Cosine similarity ``c_ij / sqrt(c_ii * c_jj)``.

    Args:
        pair_counts: shape (n,), ``c_ij`` for the n candidate neighbours j.
        item_count: ``c_ii`` of the item whose row is computed.
        neighbour_counts: shape (n,), ``c_jj`` of each candidate.

    Returns:
        shape (n,), 0 where a denominator is 0.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = pair_counts / np.sqrt(item_count * neighbour_counts)
    return np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0)


def jaccard(pair_counts: np.ndarray, item_count: float, neighbour_counts: np.ndarray) -> np.ndarray:
    """Jaccard similarity ``c_ij / (c_ii + c_jj - c_ij)``; shapes as in :func:`cosine`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = pair_counts / (item_count + neighbour_counts - pair_counts)
    return np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0)


def lift(pair_counts: np.ndarray, item_count: float, neighbour_counts: np.ndarray) -> np.ndarray:
    """Lift ``c_ij / (c_ii * c_jj)``; shapes as in :func:`cosine`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = pair_counts / (item_count * neighbour_counts)
    return np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0)


def confidence(pair_counts: np.ndarray, item_count: float) -> np.ndarray:
    """Confidence of the rule i -> j, ``c_ij / c_ii``; shapes as in :func:`cosine`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = pair_counts / item_count
    return np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0)


def added_value(
    pair_counts: np.ndarray,
    item_count: float,
    neighbour_counts: np.ndarray,
    total: float,
    penalty: float = 1.0,
) -> np.ndarray:
    """Confidence minus ``penalty`` times the partner's base rate:
    ``c_ij / c_ii - penalty * c_jj / total``, i.e. ``P(j | i) - penalty * P(j)``.

    With ``penalty = 1`` this is the "added value" of the rule i -> j: how much buying i
    raises the probability that j is in the basket. It is not fooled by popularity: an item
    that is in every basket has ``P(j | i) = P(j) = 1`` and scores 0 (never a complement),
    and any partner bought with i no more often than in a random basket scores <= 0 (not
    kept: only positive scores make a row). A score is positive only when the lift
    ``P(j | i) / P(j)`` exceeds ``penalty``; among those, partners are ranked in probability
    units, so a strong, frequent complement still beats a rare pair seen once or twice
    (plain lift's weakness).

    Args:
        pair_counts: shape (n,), ``c_ij`` (baskets holding both i and candidate j).
        item_count: ``c_ii`` of the item whose row is computed.
        neighbour_counts: shape (n,), ``c_jj`` of each candidate.
        total: the number of baskets the counts are drawn from (``N``).
        penalty: the multiple of the base rate subtracted (>= 0; 0 gives confidence).

    Returns:
        shape (n,), in [-penalty, 1]; 0 where ``item_count`` or ``total`` is 0.
    """
    if penalty < 0:
        raise ValueError("penalty must not be negative")
    pair_counts = np.asarray(pair_counts, dtype=np.float64)
    neighbour_counts = np.asarray(neighbour_counts, dtype=np.float64)
    if item_count <= 0 or total <= 0:
        return np.zeros_like(pair_counts)
    return pair_counts / item_count - penalty * neighbour_counts / total


def _x_log_x(x: np.ndarray) -> np.ndarray:
    """``x * ln(x)`` elementwise with 0 at 0 (the entropy convention)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def log_likelihood_ratio(
    pair_counts: np.ndarray, item_count: float, neighbour_counts: np.ndarray, total: float
) -> np.ndarray:
    """Dunning's log-likelihood ratio of the 2x2 contingency table of items i and j.

    k11 = c_ij (both), k12 = c_jj - c_ij (j without i), k21 = c_ii - c_ij (i without j),
    k22 = total - c_ii - c_jj + c_ij (neither), all clamped at 0. It rewards pairs that
    co-occur more often than chance rather than popular pairs (Mahout ``LogLikelihood``).
    G² itself is two-sided: a pair that co-occurs *less* often than chance (a best-seller
    rarely bought with i) is as surprising as one that co-occurs more, so such pairs score 0
    here (k11 · total <= c_ii · c_jj: no more than chance; with no total, none is known).

    Args:
        pair_counts, item_count, neighbour_counts: as in :func:`cosine`.
        total: the grand total that the counts are drawn from.

    Returns:
        shape (n,), LLR >= 0, and 0 where the pair co-occurs no more often than chance.
    """
    k11 = np.asarray(pair_counts, dtype=np.float64)
    k12 = np.maximum(neighbour_counts - k11, 0.0)
    k21 = np.maximum(item_count - k11, 0.0)
    k22 = np.maximum(total - item_count - neighbour_counts + k11, 0.0)
    row_entropy = _x_log_x(k11 + k12 + k21 + k22) - _x_log_x(k11 + k12) - _x_log_x(k21 + k22)
    col_entropy = _x_log_x(k11 + k12 + k21 + k22) - _x_log_x(k11 + k21) - _x_log_x(k12 + k22)
    mat_entropy = (
        _x_log_x(k11 + k12 + k21 + k22) - _x_log_x(k11) - _x_log_x(k12) - _x_log_x(k21) - _x_log_x(k22)
    )
    llr = 2.0 * (row_entropy + col_entropy - mat_entropy)
    above_chance = k11 * total > item_count * np.asarray(neighbour_counts, dtype=np.float64)
    return np.where(above_chance, np.maximum(llr, 0.0), 0.0)


def similarity(
    measure: str,
    pair_counts: np.ndarray,
    item_count: float,
    neighbour_counts: np.ndarray,
    total: float = 0.0,
    penalty: float = 1.0,
) -> np.ndarray:
    """Dispatch to one similarity measure by name (one of :data:`SIMILARITY_MEASURES`).

    ``total`` is used by ``llr`` and ``added_value``, ``penalty`` by ``added_value`` only.
    Pair counts are first capped at ``min(c_ii, c_jj)``: a user's history counts an item
    again when it comes back after leaving the window, with its pairs to the items still
    there, so a pair can count more than one of its items; no pair co-occurs more often than
    either of its items occurs, and the measures (Jaccard and cosine <= 1, LLR's table)
    rest on that.

    Returns:
        shape (n,) scores for the n candidates.

    Raises:
        ValueError: unknown measure.
    """
    neighbour_counts = np.asarray(neighbour_counts, dtype=np.float64)
    pair_counts = np.minimum(
        np.asarray(pair_counts, dtype=np.float64), np.minimum(neighbour_counts, item_count)
    )
    if measure == COSINE:
        return cosine(pair_counts, item_count, neighbour_counts)
    if measure == JACCARD:
        return jaccard(pair_counts, item_count, neighbour_counts)
    if measure == LIFT:
        return lift(pair_counts, item_count, neighbour_counts)
    if measure == LLR:
        return log_likelihood_ratio(pair_counts, item_count, neighbour_counts, total)
    if measure == CONFIDENCE:
        return confidence(pair_counts, item_count)
    if measure == ADDED_VALUE:
        return added_value(pair_counts, item_count, neighbour_counts, total, penalty)
    raise ValueError(f"unknown similarity measure {measure!r}; expected one of {SIMILARITY_MEASURES}")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest positive scores, best first; ties keep the lower index first.

    Args:
        scores: shape (n,).
        k: how many to return (fewer when fewer scores are positive).

    Returns:
        shape (m,), m <= min(k, n), int indices into ``scores``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if k <= 0 or scores.size == 0:
        return np.empty(0, dtype=np.int64)
    positive = np.flatnonzero(scores > 0)
    if positive.size > k:
        # partition finds the k-th best score in O(n); the ties at it are settled below.
        threshold = np.partition(scores[positive], positive.size - k)[positive.size - k]
        positive = positive[scores[positive] >= threshold]
    # lexsort: last key is primary -> score descending, then index ascending.
    order = np.lexsort((positive, -scores[positive]))
    return positive[order][:k]


def decay(ages_seconds: np.ndarray, half_life_seconds: float) -> np.ndarray:
    """Exponential time decay ``0.5 ** (age / half_life)``; negative ages count as 0.

    Args:
        ages_seconds: shape (h,).

    Returns:
        shape (h,) factors in (0, 1].
    """
    ages = np.maximum(np.asarray(ages_seconds, dtype=np.float64), 0.0)
    if half_life_seconds <= 0:
        raise ValueError("half_life_seconds must be positive")
    return np.power(0.5, ages / half_life_seconds)


def personalized_scores(affinity: np.ndarray, similarity_matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SAR scoring ``r = a · S`` with the history item that contributed most to each score.

    Args:
        affinity: shape (h,), the user's decayed affinity to each of h history items.
        similarity_matrix: shape (h, m), similarity of history item h to candidate m.

    Returns:
        (scores, best_source): shape (m,) float scores and shape (m,) int index of the
        history item with the largest contribution ``a_h * S[h, m]`` (the reason).
    """
    affinity = np.asarray(affinity, dtype=np.float64)
    similarity_matrix = np.asarray(similarity_matrix, dtype=np.float64)
    if similarity_matrix.ndim != 2 or similarity_matrix.shape[0] != affinity.shape[0]:
        raise ValueError(
            f"shape mismatch: affinity {affinity.shape} vs similarity matrix {similarity_matrix.shape}"
        )
    if similarity_matrix.shape[0] == 0 or similarity_matrix.shape[1] == 0:
        columns = similarity_matrix.shape[1]
        return np.zeros(columns), np.zeros(columns, dtype=np.int64)
    contributions = affinity[:, None] * similarity_matrix
    return contributions.sum(axis=0), contributions.argmax(axis=0)


def max_normalized_blend(components: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Blend score vectors after scaling each to a maximum of 1: ``Σ_c w_c · x_c / max(x_c)``.

    Args:
        components: shape (c, m), c score vectors over the same m candidates (>= 0).
        weights: shape (c,), the blend weight of each component.

    Returns:
        shape (m,); a component whose maximum is 0 contributes nothing.
    """
    components = np.asarray(components, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if components.ndim != 2 or components.shape[0] != weights.shape[0]:
        raise ValueError(f"shape mismatch: components {components.shape} vs weights {weights.shape}")
    peaks = components.max(axis=1, initial=0.0)[:, None]
    # Dividing each row by its own peak keeps values in [0, 1] even for tiny peaks.
    normalized = np.divide(components, peaks, out=np.zeros_like(components), where=peaks > 0)
    return weights @ normalized


def coupon_propensity(features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A logistic model's probability that the user buys in each coupon's scope soon:
    ``1 / (1 + exp(-(w_0 + X · w_1..f)))``.

    Args:
        features: shape (n, f), one row of the user's engagement features per coupon.
        weights: shape (f + 1,), the intercept first.

    Returns:
        shape (n,) probabilities in (0, 1).
    """
    features = np.asarray(features, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if features.ndim != 2 or weights.shape != (features.shape[1] + 1,):
        raise ValueError(f"shape mismatch: features {features.shape} vs weights {weights.shape}")
    logits = weights[0] + features @ weights[1:]
    # exp(-log(1 + exp(-z))) is the sigmoid without overflow for large |z|.
    return np.exp(-np.logaddexp(0.0, -logits))


def coupon_scores(affinity: np.ndarray, value: np.ndarray, value_weight: float) -> np.ndarray:
    """Coupon ranking: ``(a_c / max a) · (1 + value_weight · v_c)``, 0 where ``a_c <= 0``.

    Args:
        affinity: shape (n,), the user's relevance to each coupon's scope (>= 0): a
            propensity (:func:`coupon_propensity`) or a decayed affinity; 0 = not ranked.
        value: shape (n,), each coupon's relative value in [0, 1] (share of the price saved).
        value_weight: how much a coupon's value may lift it (0 ranks by affinity alone).

    Returns:
        shape (n,) scores; a coupon whose scope has no affinity scores 0 (not ranked).
    """
    affinity = np.asarray(affinity, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    if affinity.shape != value.shape or affinity.ndim != 1:
        raise ValueError(f"shape mismatch: affinity {affinity.shape} vs value {value.shape}")
    if value_weight < 0:
        raise ValueError("value_weight must not be negative")
    peak = affinity.max(initial=0.0)
    if peak <= 0:
        return np.zeros_like(affinity)
    relevance = np.where(affinity > 0, affinity / peak, 0.0)
    return relevance * (1.0 + value_weight * np.clip(value, 0.0, 1.0))
