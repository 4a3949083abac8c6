"""Similarity: recompute the top-K neighbour rows of items whose counts changed.

A row of item i depends on c_ij (its co-occurrence row), c_ii and every candidate's c_jj.
The ingest announces items whose c_ij changed and, separately, items whose own count c_jj
changed ("norm changed"). For the latter, the rows of their strongest co-occurring items
(up to ``propagation_limit``) are recomputed too, so that once the changed-items stream
has drained every row equals a from-scratch computation over the stored counts.

It also keeps the popular lists: ``#popular`` and one ``#cat:<category>`` list per
category, ranked by forward-decayed popularity (see ``model.popularity_increment``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from streamrec_core import personalized_scores, similarity, top_k

from streamrec.domain.model import (
    POPULAR_ROW,
    POPULARITY_EPOCH_SECONDS,
    TOTALS_ROW,
    Neighbour,
    PopularList,
    SimilarityRow,
    basket_row,
    category_row,
    popularity_at_epoch,
)
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
    min_count: float = 0.0,
) -> list[Neighbour]:
    """Score every co-occurring item of ``item_id`` (with a count above 0 and at least
    ``min_count``) and keep the best ``k``.

    Candidates are sorted by id first, so equal scores always come out in the same order.
    """
    candidates = sorted(
        j for j, count in pair_counts.items() if count > 0 and count >= min_count and j != item_id
    )
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

    def recompute(
        self, changed: Iterable[str], norm_changed: Iterable[str], popular_changed: Iterable[str] = ()
    ) -> list[SimilarityRow]:
        """Handle one batch of change announcements: rebuild every affected neighbour row
        and merge fresh popularity into the popular lists."""
        counts_read: dict[str, dict[str, float]] = {}
        rows = self.rebuild(self.affected(changed, norm_changed, counts_read), counts_read)
        self.update_popular_lists(popular_changed)
        return rows

    def affected(
        self,
        changed: Iterable[str],
        norm_changed: Iterable[str],
        counts_read: dict[str, dict[str, float]] | None = None,
    ) -> set[str]:
        """Items whose rows depend on the announced changes: the changed items, and for each
        item whose own count changed, its ``propagation_limit`` strongest co-occurring items.

        The co-occurrence rows read on the way are added to ``counts_read`` (if given), so
        that ``rebuild`` need not read them again."""
        norm_changed = set(norm_changed)
        targets = set(changed) | norm_changed
        if norm_changed and self.settings.propagation_limit:
            # Both the view-window rows and the basket rows (whose partners' complements
            # are normalised by the item's basket count).
            keys = norm_changed | {basket_row(item) for item in norm_changed}
            read = self.cooccurrence.get_rows(keys)
            if counts_read is not None:
                counts_read.update(read)
            for pairs in read.values():
                strongest = sorted(pairs.items(), key=lambda pair: (-pair[1], pair[0]))
                targets.update(j for j, _ in strongest[: self.settings.propagation_limit])
        return targets

    def rebuild(
        self, items: Iterable[str], counts_read: dict[str, dict[str, float]] | None = None
    ) -> list[SimilarityRow]:
        """Recompute and store the neighbour rows of ``items`` from the current counts
        (``counts_read``: co-occurrence rows already read in this invocation)."""
        targets = sorted(set(items))
        if not targets:
            return []
        settings = self.settings
        wanted = [*targets, *(basket_row(item) for item in targets)]
        known = {key: (counts_read or {})[key] for key in wanted if key in (counts_read or {})}
        rows = {**known, **self.cooccurrence.get_rows([key for key in wanted if key not in known])}
        needed = set(targets) | {TOTALS_ROW}
        for key in rows:
            needed.update(rows[key])
        stats = self.item_stats.get_many(needed)
        weights = {item: row.weight for item, row in stats.items()}
        total_weight = stats[TOTALS_ROW].weight if TOTALS_ROW in stats else 0.0
        baskets = {item: row.baskets for item, row in stats.items()}
        total_baskets = baskets.get(TOTALS_ROW, 0.0)
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
                complements=neighbour_row(
                    item,
                    rows.get(basket_row(item), {}),
                    baskets.get(item, 0.0),
                    baskets,
                    total_baskets,
                    settings.cross_sell_measure,
                    settings.complements_per_item,
                    min_count=settings.cross_sell_min_support,
                )
                if settings.complements_per_item
                else [],
            )
            for item in targets
        ]
        if self.settings.two_hop_sources and self.settings.two_hop_size:
            self._add_two_hop(result)
        self.similarity.put_rows(result)
        return result

    def _add_two_hop(self, rows: list[SimilarityRow]) -> None:
        """Fill ``extended`` from the neighbour rows of each row's strongest neighbours
        (rows rebuilt in this batch are used fresh, others as stored)."""
        sources_per_row = self.settings.two_hop_sources
        fresh = {row.item_id: row for row in rows}
        sources = {n.item_id for row in rows for n in row.neighbours[:sources_per_row]}
        stored, _ = self.similarity.get_many(sorted(sources - fresh.keys()))
        known = {**stored, **fresh}
        for row in rows:
            first = row.neighbours[:sources_per_row]
            excluded = {row.item_id} | {n.item_id for n in row.neighbours}
            candidates = sorted(
                {
                    n.item_id
                    for source in first
                    for n in known.get(source.item_id, SimilarityRow("", [])).neighbours
                }
                - excluded
            )
            if not candidates:
                row.extended = []
                continue
            column = {item: index for index, item in enumerate(candidates)}
            matrix = np.zeros((len(first), len(candidates)))
            for source_index, source in enumerate(first):
                for n in known.get(source.item_id, SimilarityRow("", [])).neighbours:
                    if n.item_id in column:
                        matrix[source_index, column[n.item_id]] = n.score
            scores, _ = personalized_scores(np.array([n.score for n in first]), matrix)
            row.extended = [
                Neighbour(candidates[index], float(scores[index]) * self.settings.two_hop_weight)
                for index in top_k(scores, self.settings.two_hop_size)
            ]

    def update_popular_lists(self, items: Iterable[str]) -> None:
        """Merge the items' current popularity into ``#popular`` and their categories' lists."""
        items = set(items)
        if not items:
            return
        stats = self.item_stats.get_many(items)
        by_list: dict[str, dict[str, dict[int, float]]] = defaultdict(dict)
        for item, row in stats.items():
            if not row.popularity:
                continue
            by_list[POPULAR_ROW][item] = row.popularity
            if row.category:
                by_list[category_row(row.category)][item] = row.popularity
        for name in sorted(by_list):
            size = (
                self.settings.popular_list_size if name == POPULAR_ROW else self.settings.category_list_size
            )
            self._merge_list(name, by_list[name], size)

    def _merge_list(self, name: str, fresh: dict[str, dict[int, float]], size: int) -> None:
        """Compare-and-swap merge of fresh popularity counters into one list, retried."""
        half_life = self.settings.popularity_half_life_seconds
        newest = max(max(counters) for counters in fresh.values())
        for _ in range(POPULAR_UPDATE_ATTEMPTS):
            current = self.similarity.get_list(name)
            epoch = max(current.epoch, newest)
            rescale = 2.0 ** ((current.epoch - epoch) * POPULARITY_EPOCH_SECONDS / half_life)
            merged = {item: score * rescale for item, score in current.items}
            merged.update(
                {item: popularity_at_epoch(counters, epoch, half_life) for item, counters in fresh.items()}
            )
            ranked = sorted(merged.items(), key=lambda pair: (-pair[1], pair[0]))[:size]
            if ranked == current.items and epoch == current.epoch:
                return
            try:
                self.similarity.put_list(
                    name, PopularList(items=ranked, version=current.version, epoch=epoch)
                )
                return
            except ConcurrentUpdateError:
                continue
        raise ConcurrentUpdateError(f"{name} kept changing under concurrent updates")
