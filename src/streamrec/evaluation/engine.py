"""The production pipeline on in-memory adapters, driven one batch at a time.

A batch of events is ingested by the production IngestService; its change announcements
go to the production SimilarityService. By default neighbour rows are rebuilt lazily: the
rows an announcement affects are marked, and a marked row is rebuilt (from the current
counts, by the same code) just before a request reads it. A row's neighbour list is a
pure function of the counts, so a request sees what the deployed pipeline shows once its
changed-items stream has drained, with two differences: its two-hop list reads other rows
as they are at the request, so it may differ slightly from production's, fresher or staler
(P2's frozen mode: one hit in 1,059 more than with eager rebuilds), and a measure that uses a grand total N
(``added_value``, ``llr``) scores a row with N as of the request, where the deployed
function used N as of the row's announcement (a few batches earlier, or the end of a bulk
load). ``eager=True`` rebuilds at every batch instead, exactly as the
deployed pipeline does (the cross-sell, reasons and API-input unit tests use it; the
same-code-path test runs both adapters lazily, as the evaluation does). On P3 the two gave
identical HR@10 at every 200-invoice checkpoint through 1,600 of the 2,594 test invoices;
eager is about 4 times slower.

With a ``catalog`` (an in-memory catalog table), :meth:`InMemoryEngine.upsert_catalog`
stores ``item_upsert`` records through the production CatalogService and updates content
neighbours and stock at once, as the similarity function does for their announcements;
events without a category then take their item's catalog category, as in production.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamrec.domain.catalog import CatalogService, SequencedUpsert
from streamrec.domain.ingest import IngestService, SequencedEvent, plan_batch
from streamrec.domain.model import UserState, sequence_key
from streamrec.domain.recommend import (
    EXCLUDE_NONE,
    EXCLUDE_PURCHASED,
    CrossSellService,
    RecommendationList,
    RecommendationService,
)
from streamrec.domain.similarity import SimilarityService
from streamrec.events import ItemUpsert, parse_event, parse_record
from streamrec.repositories.memory import (
    InMemoryCatalogRepository,
    InMemoryChangePublisher,
    InMemoryCooccurrenceRepository,
    InMemoryItemStatsRepository,
    InMemorySimilarityRepository,
    InMemoryUserRepository,
)
from streamrec.settings import Settings

SHARD = "shardId-000000000000"
BULK_PROGRESS_EVENTS = 50_000


@dataclass
class InMemoryEngine:
    settings: Settings
    eager: bool = False
    users: InMemoryUserRepository = field(default_factory=InMemoryUserRepository)
    cooccurrence: InMemoryCooccurrenceRepository = field(default_factory=InMemoryCooccurrenceRepository)
    item_stats: InMemoryItemStatsRepository = field(default_factory=InMemoryItemStatsRepository)
    similarity: InMemorySimilarityRepository = field(default_factory=InMemorySimilarityRepository)
    changes: InMemoryChangePublisher = field(default_factory=InMemoryChangePublisher)
    catalog: InMemoryCatalogRepository | None = None
    sequence: int = 0
    stale_rows: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.ingest_service = IngestService(
            self.settings, self.users, self.cooccurrence, self.item_stats, self.changes, catalog=self.catalog
        )
        self.similarity_service = SimilarityService(
            self.settings, self.cooccurrence, self.item_stats, self.similarity, catalog=self.catalog
        )
        self.catalog_service = (
            CatalogService(self.settings, self.catalog, self.changes) if self.catalog is not None else None
        )
        self.recommendations = RecommendationService(self.settings, self.users, self.similarity)
        self.cross_sell_service = CrossSellService(self.settings, self.users, self.similarity)

    def _sequenced(self, events: list[dict[str, Any]]) -> list[SequencedEvent]:
        batch = []
        for payload in events:
            self.sequence += 1
            batch.append(SequencedEvent(sequence_key(self.sequence), parse_event(payload)))
        return batch

    def upsert_catalog(self, records: list[dict[str, Any]]) -> None:
        """Store catalog records (``item_upsert`` payloads, one stream batch), then update
        their content neighbours and the out-of-stock row."""
        if self.catalog_service is None:
            raise ValueError("this engine has no catalog (InMemoryEngine(settings, catalog=...))")
        batch = []
        for payload in records:
            upsert = parse_record(payload)
            if not isinstance(upsert, ItemUpsert):
                raise ValueError(f"not an item_upsert record: {payload!r}")
            self.sequence += 1
            batch.append(SequencedUpsert(sequence_key(self.sequence), upsert))
        self.catalog_service.upsert(batch, SHARD)
        self.similarity_service.recompute((), (), (), self.changes.drain_content())

    def ingest(self, events: list[dict[str, Any]]) -> None:
        """Apply events (one batch of one stream shard), then handle the announcements."""
        self.ingest_service.ingest(self._sequenced(events), SHARD)
        changed, norm_changed, popular_changed = self.changes.drain()
        self.stale_rows |= self.similarity_service.affected(changed, norm_changed)
        self.similarity_service.update_popular_lists(popular_changed)
        if self.eager:
            self.flush()

    def bulk_load(
        self, batches: list[list[dict[str, Any]]], progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Ingest a history (one shard, batch by batch) and mark every row stale once at the
        end, instead of working out each batch's affected rows: rows are pure functions of
        the counts, so the rows requests then see are the same. ``progress(events done,
        events in all)`` is called every :data:`BULK_PROGRESS_EVENTS` events or so."""
        total, done, reported = sum(len(events) for events in batches), 0, 0
        for events in batches:
            self.ingest_service.ingest(self._sequenced(events), SHARD)
            self.changes.drain()
            done += len(events)
            if progress is not None and done - reported >= BULK_PROGRESS_EVENTS:
                progress(done, total)
                reported = done
        # Items with counts, and items with stats only (no pair yet), whose rows carry their support.
        known = set(self.cooccurrence.items()) | set(self.item_stats.rows)
        self.stale_rows |= {item for item in known if not item.startswith("#")}
        self.similarity_service.update_popular_lists(
            item for item in self.item_stats.rows if not item.startswith("#")
        )
        if self.eager:
            self.flush()

    def cross_sell(self, items: list[str], k: int, user_id: str | None = None) -> RecommendationList:
        """What ``POST /cross-sell`` answers for ``items`` (and ``user_id``)."""
        self.refresh(set(items))
        return self.cross_sell_service.for_request(items, k, user_id)

    def flush(self) -> None:
        """Rebuild every marked row now."""
        self.refresh(set(self.stale_rows))

    def refresh(self, items: set[str]) -> None:
        """Rebuild the marked rows among ``items`` now, as a request reading them does. Their
        two-hop lists read the rows of their strongest neighbours, so marked ones among those
        are rebuilt first, as the deployed pipeline would have done when they were announced."""
        due = items & self.stale_rows
        if not due:
            return
        rows = self.similarity_service.rebuild(due)
        self.stale_rows -= due
        sources_per_row = self.settings.two_hop_sources
        sources = {n.item_id for row in rows for n in row.neighbours[:sources_per_row]} & self.stale_rows
        if sources:
            self.similarity_service.rebuild(sources)
            self.stale_rows -= sources
            self.similarity_service.rebuild(due)

    def _score(self, state: UserState | None, k: int, now: float, exclude: str) -> RecommendationList:
        if state is not None:
            self.refresh({entry.item_id for entry in state.items})
        return self.recommendations.for_state(state, k, exclude=exclude, now=now)

    def recommend(
        self, user_id: str, k: int, now: float, exclude: str = EXCLUDE_PURCHASED
    ) -> RecommendationList:
        """What ``GET /users/{user_id}/recommendations`` answers at time ``now``."""
        return self._score(self.users.get(user_id), k, now, exclude)

    def recommend_for_events(
        self, events: list[dict[str, Any]], k: int, now: float, exclude: str = EXCLUDE_NONE
    ) -> RecommendationList:
        """Score a transient user built from ``events`` (one user), storing nothing."""
        if not events:
            return self._score(None, k, now, exclude)
        batch = [SequencedEvent(sequence_key(n + 1), parse_event(e)) for n, e in enumerate(events)]
        plan = plan_batch({}, batch, SHARD, self.settings, trends=False)
        state = plan.users.get(batch[0].event.user_id)
        return self._score(state, k, now, exclude)
