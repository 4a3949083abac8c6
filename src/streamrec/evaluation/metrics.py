"""Ranking metrics for next-item protocols with one held-out item per request.

A request's outcome is the 1-based rank of the held-out item in the recommended list, or
0 for a miss (not in the list). All metrics are means over requests:

* HR@K   = share of requests with 0 < rank <= K;
* MRR@K  = mean of 1/rank over hits within K (0 otherwise);
* NDCG@K = mean of 1/log2(rank + 1) over hits within K (one relevant item: IDCG = 1);
* coverage@K = distinct items recommended in any top-K list / items in the catalogue.

95% intervals come from a percentile bootstrap over *groups* (users in P1, sessions in P2):
groups are resampled with replacement and the metric is recomputed as the pooled mean over
the resampled groups' requests (a ratio estimator), which respects the correlation between
a user's requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

CURVE_MAX_K = 20
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 20240601
# Upper bound on the floats one bootstrap chunk materialises (resamples x groups x metrics).
_CHUNK_FLOATS = 4_000_000


def rank_of(target: str, recommended: Sequence[str]) -> int:
    """1-based rank of ``target`` in ``recommended``, 0 when absent."""
    for position, item in enumerate(recommended, start=1):
        if item == target:
            return position
    return 0


def _ranks(ranks: Sequence[int] | np.ndarray) -> np.ndarray:
    array = np.asarray(ranks, dtype=np.int64)
    if array.ndim != 1:
        raise ValueError("ranks must be one-dimensional")
    return array


def hits(ranks: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """Per-request 1.0/0.0: held-out item within the top ``k``. Shape (n,)."""
    r = _ranks(ranks)
    return ((r > 0) & (r <= k)).astype(np.float64)


def reciprocal_ranks(ranks: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """Per-request 1/rank within the top ``k``, else 0. Shape (n,)."""
    r = _ranks(ranks)
    out = np.zeros(r.shape, dtype=np.float64)
    inside = (r > 0) & (r <= k)
    out[inside] = 1.0 / r[inside]
    return out


def dcg_gains(ranks: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """Per-request 1/log2(rank + 1) within the top ``k``, else 0. Shape (n,)."""
    r = _ranks(ranks)
    out = np.zeros(r.shape, dtype=np.float64)
    inside = (r > 0) & (r <= k)
    out[inside] = 1.0 / np.log2(r[inside] + 1.0)
    return out


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else 0.0


def hit_rate(ranks: Sequence[int] | np.ndarray, k: int) -> float:
    return _mean(hits(ranks, k))


def mrr(ranks: Sequence[int] | np.ndarray, k: int) -> float:
    return _mean(reciprocal_ranks(ranks, k))


def ndcg(ranks: Sequence[int] | np.ndarray, k: int) -> float:
    return _mean(dcg_gains(ranks, k))


def coverage(recommended: Iterable[str], catalogue_size: int) -> float:
    """Distinct recommended items over the catalogue size."""
    if catalogue_size <= 0:
        raise ValueError("catalogue_size must be positive")
    return len(set(recommended)) / catalogue_size


def hr_curve(ranks: Sequence[int] | np.ndarray, max_k: int = CURVE_MAX_K) -> list[float]:
    """[HR@1, ..., HR@max_k]."""
    r = _ranks(ranks)
    if not r.size:
        return [0.0] * max_k
    counts = np.bincount(r[(r > 0) & (r <= max_k)], minlength=max_k + 1)[1:]
    return [float(v) for v in np.cumsum(counts) / r.size]


PER_REQUEST: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "hr": hits,
    "mrr": reciprocal_ranks,
    "ndcg": dcg_gains,
}


def per_request(name: str, ranks: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per-request values of a metric named like ``hr@20``, ``mrr@20`` or ``ndcg@10``."""
    base, sep, k = name.partition("@")
    if not sep or base not in PER_REQUEST:
        raise ValueError(f"unknown metric {name!r}; expected one of {sorted(PER_REQUEST)} with @K")
    return PER_REQUEST[base](_ranks(ranks), int(k))


def bootstrap_intervals(
    values: dict[str, np.ndarray],
    groups: Sequence[int] | Sequence[str] | np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of pooled means, resampling whole groups.

    Args:
        values: metric name -> per-request values, each of shape (n,).
        groups: the group (user, session) of each request, shape (n,).
        resamples: number of bootstrap resamples (fixed seed: reproducible).
        level: the interval's coverage (0.95 -> 2.5th and 97.5th percentiles).

    Returns:
        metric name -> (low, high); (0, 0) when there is no request.
    """
    names = list(values)
    group_array = np.asarray(groups)
    n = group_array.shape[0]
    if n == 0:
        return {name: (0.0, 0.0) for name in names}
    _, group_index = np.unique(group_array, return_inverse=True)
    n_groups = int(group_index.max()) + 1
    stacked = np.stack([np.asarray(values[name], dtype=np.float64) for name in names], axis=1)  # (n, m)
    if stacked.shape[0] != n:
        raise ValueError("every metric needs one value per request")
    sums = np.zeros((n_groups, len(names)))
    np.add.at(sums, group_index, stacked)  # (g, m)
    counts = np.bincount(group_index, minlength=n_groups).astype(np.float64)  # (g,)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_FLOATS // max(1, n_groups * len(names)))
    estimates = np.empty((resamples, len(names)))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        picks = rng.integers(0, n_groups, size=(size, n_groups))  # (c, g)
        totals = sums[picks].sum(axis=1)  # (c, m)
        denominators = counts[picks].sum(axis=1)  # (c,)
        estimates[start : start + size] = totals / denominators[:, None]
    tail = (1.0 - level) / 2.0 * 100.0
    low = np.percentile(estimates, tail, axis=0)
    high = np.percentile(estimates, 100.0 - tail, axis=0)
    return {name: (float(low[i]), float(high[i])) for i, name in enumerate(names)}


def compared_intervals(
    values: dict[str, dict[str, np.ndarray]],
    groups: Sequence[int] | Sequence[str] | np.ndarray,
    reference: str = "engine",
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """95% intervals of each method's metrics and of the reference's lead over each other
    method, from one paired bootstrap (every method sees the same resampled groups).

    Args:
        values: method -> metric -> per-request values, each of shape (n,).
        groups: the group (user, customer) of each request, shape (n,).
        reference: the method whose differences are reported (``reference - other``).

    Returns:
        ``{"intervals": {method: {metric: [low, high]}},
        "differences": {other: {metric: [low, high]}}}``.
    """
    # One bootstrap column per (kind, method, metric), all resampled together (paired).
    labels: list[tuple[str, str, str]] = []
    columns: dict[str, np.ndarray] = {}
    for method, metrics in values.items():
        for metric, per_request_values in metrics.items():
            labels.append(("intervals", method, metric))
            columns[str(len(columns))] = np.asarray(per_request_values, dtype=np.float64)
    for method, metrics in values.items():
        if method == reference:
            continue
        for metric in sorted(metrics.keys() & values[reference].keys()):
            lead = np.asarray(values[reference][metric], dtype=np.float64) - np.asarray(metrics[metric])
            labels.append(("differences", method, metric))
            columns[str(len(columns))] = lead
    bounds = bootstrap_intervals(columns, groups, resamples=resamples)
    out: dict[str, dict[str, dict[str, list[float]]]] = {"intervals": {}, "differences": {}}
    for (kind, method, metric), (low, high) in zip(labels, bounds.values(), strict=True):
        out[kind].setdefault(method, {})[metric] = [low, high]
    return out
