"""Similarity: recompute the top-K neighbour rows of items whose counts changed.

A row of item i depends on c_ij (its co-occurrence row), c_ii and every candidate's c_jj.
The ingest announces items whose c_ij changed and, separately, items whose own count c_jj
changed ("norm changed"). For the latter, the rows of their strongest co-occurring items
(up to ``propagation_limit``) are recomputed too, so that once the changed-items stream
has drained every row equals a from-scratch computation over the stored counts; except the
rows of partners beyond the ``propagation_limit`` strongest, and, for measures that use a
grand total N (``added_value``, ``llr``), rows not announced since N last changed: they keep
the N of their last rebuild (``test_incremental_equals_batch`` covers the measures without one).

It also keeps the popular lists: ``#popular`` and one ``#cat:<category>`` list per
category, ranked by forward-decayed popularity (see ``model.popularity_increment``), and
``#popular_categories``, the categories ranked by forward-decayed purchases (the item-stats
rows ``#buys:<category>``), refreshed for the categories of the items it is told about.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from streamrec_core import UNBOUNDED_MEASURES, personalized_scores, similarity, top_k

from streamrec.concurrency import concurrently
from streamrec.domain.catalog import ContentIndex
from streamrec.domain.model import (
    CATEGORY_BUYS_PREFIX,
    NEW_ARRIVALS_ROW,
    POPULAR_CATEGORIES_ROW,
    POPULAR_ROW,
    POPULARITY_EPOCH_SECONDS,
    TOTALS_ROW,
    CatalogItem,
    ItemStats,
    Neighbour,
    PopularList,
    SimilarityRow,
    basket_row,
    category_buys_row,
    category_row,
    new_arrivals_row,
    popularity_at_epoch,
)
from streamrec.domain.trends import TrendsService
from streamrec.repositories.base import (
    CatalogRepository,
    CooccurrenceRepository,
    ItemStatsRepository,
    SimilarityRepository,
    compare_and_swap,
)
from streamrec.settings import Settings


def neighbour_row(
    item_id: str,
    pair_counts: dict[str, float],
    item_weight: float,
    weights: dict[str, float],
    total_weight: float,
    measure: str,
    k: int,
    min_count: float = 0.0,
    categories: Mapping[str, str] | None = None,
    penalty: float = 1.0,
) -> list[Neighbour]:
    """Score every co-occurring item of ``item_id`` (with a count above 0 and at least
    ``min_count``) and keep the best ``k`` positive ones (``penalty``: see
    :func:`streamrec_core.scoring.added_value`), each labelled with its category when
    ``categories`` knows it.

    Candidates are sorted by id first, so equal scores always come out in the same order.
    """
    candidates = sorted(
        j for j, count in pair_counts.items() if count > 0 and count >= min_count and j != item_id
    )
    if not candidates:
        return []
    pairs = np.array([pair_counts[j] for j in candidates])
    norms = np.array([weights.get(j, 0.0) for j in candidates])
    scores = similarity(measure, pairs, item_weight, norms, total_weight, penalty)
    known = categories or {}
    return [
        Neighbour(candidates[index], float(scores[index]), known.get(candidates[index]))
        for index in top_k(scores, k)
    ]


@dataclass
class BatchReads:
    """What one similarity batch has read: co-occurrence rows by key, item-stats rows (and
    the ids found absent), so that no row is read twice in a batch."""

    counts: dict[str, dict[str, float]] = field(default_factory=dict)
    stats: dict[str, ItemStats] = field(default_factory=dict)
    absent_stats: set[str] = field(default_factory=set)


# One popular list's update: its name, the fresh popularity counters of items to merge in
# (item -> epoch -> counter), its size, and the items to take out of it.
ListMerge = tuple[str, dict[str, dict[int, float]], int, frozenset[str]]


@dataclass
class SimilarityService:
    settings: Settings
    cooccurrence: CooccurrenceRepository
    item_stats: ItemStatsRepository
    similarity: SimilarityRepository
    trending: TrendsService | None = None  # refreshes the trending lists (None: not kept)
    # With a catalog, rows also carry content neighbours (domain/catalog.py).
    catalog: CatalogRepository | None = None
    # Popular lists merged at a time (their reads and writes are DynamoDB round trips).
    concurrency: int = 1

    def recompute(
        self,
        changed: Iterable[str],
        norm_changed: Iterable[str],
        popular_changed: Iterable[str] = (),
        content_changed: Iterable[str] = (),
    ) -> list[SimilarityRow]:
        """Handle one batch of change announcements: rebuild every affected neighbour row,
        update content neighbours and stock of items whose catalog record changed, and
        merge fresh popularity into the popular lists."""
        reads = BatchReads()
        rows = self.rebuild(self.affected(changed, norm_changed, reads), reads)
        popular_changed = set(popular_changed)
        content_changed = set(content_changed)
        records: dict[str, CatalogItem] = {}
        if content_changed and self.catalog is not None:
            records = self.catalog.get_many(sorted(content_changed), consistent=True)
            fresh = {row.item_id: row for row in rows}
            index = ContentIndex(self.settings, self.catalog, self.similarity)
            updated = index.update(records, fresh)
            rows = list({**fresh, **{row.item_id: row for row in updated}}.values())
            self.update_new_arrivals(records)
        self.update_popular_lists(popular_changed, reads, records)
        if self.trending is not None and popular_changed:
            # The items whose counters grew; their categories and first-seen times from the
            # stats rows just read.
            stats = self._stats(popular_changed, reads)
            self.trending.refresh(
                {item: stats[item].category if item in stats else None for item in popular_changed},
                first_seen={
                    item: seen
                    for item in popular_changed
                    if item in stats and (seen := stats[item].first_seen) is not None
                },
            )
        return rows

    def affected(
        self, changed: Iterable[str], norm_changed: Iterable[str], reads: BatchReads | None = None
    ) -> set[str]:
        """Items whose rows depend on the announced changes: the changed items, and for each
        item whose own count changed, its ``propagation_limit`` strongest co-occurring items.

        The rows read on the way are kept in ``reads`` (if given), so that ``rebuild`` need
        not read them again."""
        reads = reads if reads is not None else BatchReads()
        norm_changed = set(norm_changed)
        targets = set(changed) | norm_changed
        if norm_changed and self.settings.propagation_limit:
            # Both the view-window rows and, for items in baskets, the basket rows (whose
            # partners' complements are normalised by the item's basket count).
            keys = norm_changed | {basket_row(item) for item in self._in_baskets(norm_changed, reads)}
            for pairs in self._counts(keys, reads).values():
                strongest = sorted(pairs.items(), key=lambda pair: (-pair[1], pair[0]))
                targets.update(j for j, _ in strongest[: self.settings.propagation_limit])
        return targets

    def _stats(self, items: Iterable[str], reads: BatchReads) -> dict[str, ItemStats]:
        """Item-stats rows of ``items`` (absent ones left out), each read once per batch."""
        missing = set(items) - reads.stats.keys() - reads.absent_stats
        if missing:
            found = self.item_stats.get_many(missing)
            reads.stats.update(found)
            reads.absent_stats.update(missing - found.keys())
        return {item: reads.stats[item] for item in items if item in reads.stats}

    def _counts(self, keys: Iterable[str], reads: BatchReads) -> dict[str, dict[str, float]]:
        """Co-occurrence rows of ``keys``, each read once per batch."""
        keys = list(keys)
        missing = [key for key in keys if key not in reads.counts]
        if missing:
            reads.counts.update(self.cooccurrence.get_rows(missing))
        return {key: reads.counts.get(key, {}) for key in keys}

    def _in_baskets(self, items: Iterable[str], reads: BatchReads) -> list[str]:
        """The items some basket holds: only they have basket rows (reading the blocks of
        a row that does not exist still costs a read unit each)."""
        return [item for item, stats in self._stats(items, reads).items() if stats.baskets > 0]

    def rebuild(self, items: Iterable[str], reads: BatchReads | None = None) -> list[SimilarityRow]:
        """Recompute and store the neighbour rows of ``items`` from the current counts
        (``reads``: rows already read in this invocation)."""
        reads = reads if reads is not None else BatchReads()
        targets = sorted(set(items))
        if not targets:
            return []
        settings = self.settings
        basket_items = self._in_baskets(targets, reads)
        rows = self._counts([*targets, *(basket_row(item) for item in basket_items)], reads)
        needed = set(targets) | {TOTALS_ROW}
        for key in rows:
            needed.update(rows[key])
        stats = self._stats(needed, reads)
        weights = {item: row.weight for item, row in stats.items()}
        total_weight = stats[TOTALS_ROW].weight if TOTALS_ROW in stats else 0.0
        baskets = {item: row.baskets for item, row in stats.items()}
        total_baskets = baskets.get(TOTALS_ROW, 0.0)
        categories = {item: row.category for item, row in stats.items() if row.category}
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
                    categories=categories,
                ),
                measure=self.settings.similarity_measure,
                updated_at=now,
                support=weights.get(item, 0.0),
                category=categories.get(item, ""),
                complements=neighbour_row(
                    item,
                    rows.get(basket_row(item), {}),
                    baskets.get(item, 0.0),
                    baskets,
                    total_baskets,
                    settings.cross_sell_measure,
                    settings.complements_per_item,
                    min_count=settings.cross_sell_min_support,
                    categories=categories,
                    penalty=settings.cross_sell_popularity_penalty,
                )
                if settings.complements_per_item
                else [],
            )
            for item in targets
        ]
        if self.settings.two_hop_sources and self.settings.two_hop_size:
            self._add_two_hop(result)
        if self.catalog is not None:
            # Content neighbours are kept by the catalog side; a rebuilt row carries them over.
            stored, _ = self.similarity.get_many(targets, consistent=True, row_lists=("content",))
            for row in result:
                if row.item_id in stored:
                    row.content = stored[row.item_id].content
                    row.holders = stored[row.item_id].holders
                    row.content_digest = stored[row.item_id].content_digest
                    row.category = row.category or stored[row.item_id].category
        self.similarity.put_rows(result)
        return result

    def _add_two_hop(self, rows: list[SimilarityRow]) -> None:
        """Fill ``extended`` from the neighbour rows of each row's strongest neighbours
        (rows rebuilt in this batch are used fresh, others as stored).

        A two-hop score multiplies two scores, which keeps it in the units of the row's
        direct scores only when they are at most 1: with lift or LLR (unbounded) each
        source's row is first divided by its best score, or two large scores would make a
        product that outranks every direct neighbour."""
        sources_per_row = self.settings.two_hop_sources
        scale_sources = self.settings.similarity_measure in UNBOUNDED_MEASURES
        fresh = {row.item_id: row for row in rows}
        sources = {n.item_id for row in rows for n in row.neighbours[:sources_per_row]}
        stored, _ = self.similarity.get_many(sorted(sources - fresh.keys()), row_lists=("neighbours",))
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
            category_of: dict[str, str] = {}  # as the source rows label them
            for source_index, source in enumerate(first):
                source_row = known.get(source.item_id, SimilarityRow("", [])).neighbours
                best = max((n.score for n in source_row), default=0.0) if scale_sources else 1.0
                for n in source_row:
                    if n.item_id in column:
                        matrix[source_index, column[n.item_id]] = n.score / best
                        if n.category:
                            category_of[n.item_id] = n.category
            scores, _ = personalized_scores(np.array([n.score for n in first]), matrix)
            row.extended = [
                Neighbour(
                    candidates[index],
                    float(scores[index]) * self.settings.two_hop_weight,
                    category_of.get(candidates[index]),
                )
                for index in top_k(scores, self.settings.two_hop_size)
            ]

    def update_popular_lists(
        self,
        items: Iterable[str],
        reads: BatchReads | None = None,
        announced: Mapping[str, CatalogItem] | None = None,
    ) -> None:
        """Merge the items' current popularity into ``#popular`` and their categories' lists,
        and their categories' purchases into ``#popular_categories``.

        ``announced``: the catalog records (as just read, consistently) of the items
        announced for a catalog change; the others' records are read here (one more
        BatchGetItem). With a catalog, every item whose catalog record names former
        categories is taken out of their lists, where nothing else would remove it while
        the list is shorter than its size, and merged into its catalog category's list when
        its item-stats row names no other: the row may not name the new one yet (the move's
        own announcement), or name a former one again (an event batch that read the catalog
        before the move and wrote after it, or an event naming the old category), which put
        it back for good.
        """
        records = dict(announced or {})
        moved = {item_id for item_id, record in records.items() if record.former_categories}
        items = set(items) | moved
        if not items:
            return
        reads = reads if reads is not None else BatchReads()
        stats = self._stats(items, reads)
        if self.catalog is not None and items - records.keys():
            records.update(self.catalog.get_many(sorted(items - records.keys())))
        by_list: dict[str, dict[str, dict[int, float]]] = defaultdict(dict)
        removed: dict[str, set[str]] = defaultdict(set)
        for item, record in records.items():
            for former in record.former_categories:
                removed[category_row(former)].add(item)
        for item, row in stats.items():
            if not row.popularity:
                continue
            by_list[POPULAR_ROW][item] = row.popularity
            category = row.category
            current = records.get(item)
            if current is not None and (item in moved or category in current.former_categories):
                category = current.category
            if category:
                by_list[category_row(category)][item] = row.popularity
        merges = [
            (
                name,
                by_list.get(name, {}),
                self.settings.popular_list_size if name == POPULAR_ROW else self.settings.category_list_size,
                frozenset(removed.get(name, ())),
            )
            for name in sorted(by_list.keys() | removed.keys())
        ]
        categories = self._popular_categories({row.category for row in stats.values() if row.category}, reads)
        if categories:
            merges.append(
                (POPULAR_CATEGORIES_ROW, categories, self.settings.popular_category_list_size, frozenset())
            )
        self._merge_lists(merges)

    def update_new_arrivals(self, records: Mapping[str, CatalogItem]) -> None:
        """Merge the announced items' catalog ``records`` (as just read, consistently) into
        the new-arrivals lists: an item in stock is ranked in ``#new`` and its category's
        list by the time it first came into stock (``listed_at``; newest first,
        ``popular_list_size`` and ``category_list_size`` kept); one out of stock, or stored
        before that time was kept (0), leaves them, as it leaves its former categories'
        lists. The records are
        the items' current ones whatever the order of announcements, so a re-delivery or a
        retry merges the same entries again."""
        fresh: dict[str, dict[str, float]] = defaultdict(dict)
        leaving: dict[str, set[str]] = defaultdict(set)
        for item, record in records.items():
            for former in record.former_categories:
                leaving[new_arrivals_row(former)].add(item)
            for name in (NEW_ARRIVALS_ROW, new_arrivals_row(record.category)):
                if record.in_stock and record.listed_at > 0:
                    fresh[name][item] = record.listed_at
                else:
                    leaving[name].add(item)
        names = sorted(fresh.keys() | leaving.keys())
        if not names:
            return
        _, stored = self.similarity.get_many([], names, consistent=True)

        def merge(name: str) -> None:
            size = (
                self.settings.popular_list_size
                if name == NEW_ARRIVALS_ROW
                else self.settings.category_list_size
            )
            joining, gone = fresh.get(name, {}), leaving.get(name, set()) - fresh.get(name, {}).keys()

            def merged(current: PopularList) -> PopularList | None:
                listed = {item: at for item, at in current.items if item not in gone}
                listed.update(joining)
                newest = sorted(listed.items(), key=lambda pair: (-pair[1], pair[0]))[:size]
                return None if newest == current.items else PopularList(newest, current.version)

            compare_and_swap(
                name,
                stored.get(name, PopularList()),
                lambda: self.similarity.get_list(name),
                merged,
                lambda newest: self.similarity.put_list(name, newest),
            )

        concurrently(merge, names, self.concurrency)

    def _popular_categories(
        self, categories: Iterable[str], reads: BatchReads
    ) -> dict[str, dict[int, float]]:
        """The purchase counters of ``categories`` that have any (category -> counters)."""
        keys = sorted(category_buys_row(category) for category in set(categories))
        return {
            key.removeprefix(CATEGORY_BUYS_PREFIX): row.popularity
            for key, row in self._stats(keys, reads).items()
            if row.popularity
        }

    def _merge_lists(self, merges: list[ListMerge]) -> None:
        """:meth:`_merge_list` for each (name, fresh counters, size, items to remove);
        ``concurrency`` at a time: each list is its own compare-and-swap, so they are
        independent."""
        if not merges:
            return
        # Every list read for update in one batch read (a GetItem per list cost a call each).
        # The first failure fails the batch (retried; merges are idempotent).
        _, stored = self.similarity.get_many([], [merge[0] for merge in merges], consistent=True)
        concurrently(
            lambda merge: self._merge_list(merge[0], merge[1], merge[2], stored[merge[0]], merge[3]),
            merges,
            self.concurrency,
        )

    def _merge_list(
        self,
        name: str,
        fresh: dict[str, dict[int, float]],
        size: int,
        read: PopularList,
        removed: frozenset[str] = frozenset(),
    ) -> None:
        """Compare-and-swap merge of fresh popularity counters into one list, without the
        ``removed`` items, retried (``read``: the list as just read for update; a lost race
        reads it again)."""
        half_life = self.settings.popularity_half_life_seconds
        newest = max((max(counters) for counters in fresh.values()), default=0)

        def merged(current: PopularList) -> PopularList | None:
            epoch = max(current.epoch, newest)
            rescale = 2.0 ** ((current.epoch - epoch) * POPULARITY_EPOCH_SECONDS / half_life)
            scores = {item: score * rescale for item, score in current.items if item not in removed}
            scores.update(
                {item: popularity_at_epoch(counters, epoch, half_life) for item, counters in fresh.items()}
            )
            ranked = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))[:size]
            if ranked == current.items and epoch == current.epoch:
                return None
            return PopularList(items=ranked, version=current.version, epoch=epoch)

        compare_and_swap(
            name,
            read,
            lambda: self.similarity.get_list(name),
            merged,
            lambda popular: self.similarity.put_list(name, popular),
        )
