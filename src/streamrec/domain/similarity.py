"""Similarity: recompute the top-K neighbour rows of items whose counts changed.

A row of item i depends on c_ij (its co-occurrence row), c_ii and every candidate's c_jj.
The ingest announces items whose c_ij changed and, separately, items whose own count c_jj
changed ("norm changed"). For the latter, the rows of their strongest co-occurring items
(up to ``propagation_limit``) are recomputed too, so that once the changed-items stream
has drained every row equals a from-scratch computation over the stored counts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from streamrec_core import similarity, top_k

from streamrec.domain.model import TOTALS_ROW, Neighbour, PopularList, SimilarityRow
from streamrec.repositories.base import (
    ConcurrentUpdateError,
    CooccurrenceRepository,
    ItemStatsRepository,
    SimilarityRepository,
)
from streamrec.settings import Settings

POPULAR_UPDATE_ATTEMPTS = 5


def neighbour_row(
    item_id: str,
    pair_counts: dict[str, float],
    item_weight: float,
    weights: dict[str, float],
    total_weight: float,
    measure: str,
    k: int,
) -> list[Neighbour]:
    """Score every co-occurring item of ``item_id`` and keep the best ``k``.

    Candidates are sorted by id first, so equal scores always come out in the same order.
    """
    candidates = sorted(j for j, count in pair_counts.items() if count > 0 and j != item_id)
    if not candidates:
        return []
    pairs = np.array([pair_counts[j] for j in candidates])
    norms = np.array([weights.get(j, 0.0) for j in candidates])
    scores = similarity(measure, pairs, item_weight, norms, total_weight)
    return [Neighbour(candidates[index], float(scores[index])) for index in top_k(scores, k)]


@dataclass
class SimilarityService:
    settings: Settings
    cooccurrence: CooccurrenceRepository
    item_stats: ItemStatsRepository
    similarity: SimilarityRepository

    def recompute(self, changed: Iterable[str], norm_changed: Iterable[str]) -> list[SimilarityRow]:
        """Recompute and store the rows affected by a batch of change announcements."""
        norm_changed = set(norm_changed)
        targets = set(changed) | norm_changed
        rows = self.cooccurrence.get_rows(targets)
        for item in norm_changed:
            strongest = sorted(rows.get(item, {}).items(), key=lambda pair: (-pair[1], pair[0]))
            targets.update(j for j, _ in strongest[: self.settings.propagation_limit])
        missing = targets - rows.keys()
        if missing:
            rows.update(self.cooccurrence.get_rows(missing))
        needed = set(targets) | {TOTALS_ROW}
        for item in targets:
            needed.update(rows.get(item, {}))
        stats = self.item_stats.get_many(needed)
        weights = {item: row.weight for item, row in stats.items()}
        total_weight = stats[TOTALS_ROW].weight if TOTALS_ROW in stats else 0.0
        now = time.time()
        result = [
            SimilarityRow(
                item_id=item,
                neighbours=neighbour_row(
                    item,
                    rows.get(item, {}),
                    weights.get(item, 0.0),
                    weights,
                    total_weight,
                    self.settings.similarity_measure,
                    self.settings.neighbours_per_item,
                ),
                measure=self.settings.similarity_measure,
                updated_at=now,
            )
            for item in sorted(targets)
        ]
        self.similarity.put_rows(result)
        self._update_popular({item: weights.get(item, 0.0) for item in norm_changed})
        return result

    def _update_popular(self, fresh_weights: dict[str, float]) -> None:
        """Merge fresh item weights into the popular list (compare-and-swap, retried)."""
        if not fresh_weights:
            return
        size = self.settings.popular_list_size
        for _ in range(POPULAR_UPDATE_ATTEMPTS):
            current = self.similarity.get_popular()
            merged = dict(current.items)
            merged.update(fresh_weights)
            ranked = sorted(merged.items(), key=lambda pair: (-pair[1], pair[0]))[:size]
            if ranked == current.items:
                return
            try:
                self.similarity.put_popular(PopularList(items=ranked, version=current.version))
                return
            except ConcurrentUpdateError:
                continue
        raise ConcurrentUpdateError("popular list kept changing under concurrent updates")
