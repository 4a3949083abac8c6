"""Incremental equals batch: random event streams, random batch boundaries, re-deliveries.

Whatever the batching (and when a batch is delivered twice, or a producer re-sends an
event), the stored counts and similarity rows must equal the from-scratch reference.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamrec.domain.ingest import IngestService, SequencedEvent
from streamrec.domain.model import ItemStats, sequence_key
from streamrec.domain.similarity import SimilarityService
from streamrec.events import parse_event
from streamrec.repositories.memory import (
    InMemoryChangePublisher,
    InMemoryCooccurrenceRepository,
    InMemoryItemStatsRepository,
    InMemorySimilarityRepository,
    InMemoryUserRepository,
)
from streamrec.settings import Settings
from tests.unit.reference import reference_baskets, reference_counts, reference_rows

WEIGHTS = {"view": 1.0, "add_to_cart": 2.0, "remove_from_cart": 0.0, "purchase": 4.0}
EVENT_TYPES = list(WEIGHTS)
SHARD = "shardId-000000000000"


@st.composite
def streams(draw):
    """A stream of records: events, some re-sent later by a producer (same event_id); cart
    and purchase events sometimes name a basket, and time gaps sometimes close a basket."""
    size = draw(st.integers(1, 60))
    events = []
    for index in range(size):
        if events and draw(st.integers(0, 9)) == 0:
            events.append(dict(draw(st.sampled_from(events))))  # producer retry
            continue
        events.append(
            {
                "event_id": f"e{index}",
                "user_id": f"u{draw(st.integers(0, 4))}",
                "item_id": f"i{draw(st.integers(0, 7))}",
                "event_type": draw(st.sampled_from(EVENT_TYPES)),
                "timestamp": 1_700_000_000 + index * 60 + draw(st.sampled_from([0, 0, 0, 7200])) * index,
                **draw(st.sampled_from([{}, {}, {"basket_id": "b1"}, {"basket_id": "b2"}])),
            }
        )
    cuts = sorted(draw(st.sets(st.integers(1, max(1, size - 1)), max_size=8)))
    redeliver = draw(st.lists(st.booleans(), min_size=len(cuts) + 1, max_size=len(cuts) + 1))
    defer = draw(st.lists(st.booleans(), min_size=len(cuts) + 1, max_size=len(cuts) + 1))
    return events, cuts, redeliver, defer


def stored_pairs(
    repository: InMemoryCooccurrenceRepository, baskets: bool = False
) -> dict[str, dict[str, float]]:
    """The view-window rows (or, with ``baskets``, the basket rows without their prefix)."""
    pairs: dict[str, dict[str, float]] = {}
    for key, blocks in repository.rows.items():
        if key.startswith("#b:") != baskets:
            continue
        item = key.removeprefix("#b:")
        for row in blocks.values():
            for name, value in row.items():
                if not name.startswith("s#") and value:  # (a basket taken back leaves 0)
                    pairs.setdefault(item, {})[name] = value
    return pairs


@pytest.mark.parametrize("measure", ["jaccard", "cosine", "lift"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=streams())
def test_incremental_equals_from_scratch(measure, data):
    events, cuts, redeliver, defer = data
    config = Settings(
        history_length=3,
        neighbours_per_item=3,
        similarity_measure=measure,
        event_weights=WEIGHTS,
        cross_sell_measure=measure,
        cross_sell_min_support=1,
        complements_per_item=3,
        basket_items_kept=3,
        basket_gap_hours=1.0,
        basket_open_cart_days=3 / 24,  # events come up to days apart: some carts are abandoned
    )
    users, pairs_repo = InMemoryUserRepository(), InMemoryCooccurrenceRepository()
    stats, rows_repo = InMemoryItemStatsRepository(), InMemorySimilarityRepository()
    publisher = InMemoryChangePublisher()
    ingest = IngestService(config, users, pairs_repo, stats, publisher)
    recompute = SimilarityService(config, pairs_repo, stats, rows_repo)

    records = [SequencedEvent(sequence_key(1000 + n), parse_event(e)) for n, e in enumerate(events)]
    bounds = [0, *cuts, len(records)]
    for batch_index, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False)):
        batch = records[start:end]
        ingest.ingest(batch, SHARD)
        if redeliver[batch_index]:  # Kinesis at-least-once: the same records again
            ingest.ingest(batch, SHARD)
        if not defer[batch_index]:
            recompute.recompute(*publisher.drain())
    recompute.recompute(*publisher.drain())

    pairs, norms, counts, late, leaves, checkouts, stale = reference_counts(
        events, WEIGHTS, history=3, late_seconds=config.late_event_seconds
    )
    expected_pairs = {i: {j: c for j, c in row.items() if c} for i, row in pairs.items() if any(row.values())}
    assert stored_pairs(pairs_repo) == expected_pairs
    stored = stats.get_many(set(norms) | set(counts))
    assert {i: s.weight for i, s in stored.items() if s.weight} == {i: w for i, w in norms.items() if w}
    for item, by_type in counts.items():
        assert {t: stored[item].events.get(f"n:{t}", 0.0) for t in by_type} == dict(by_type)

    basket_pairs, basket_counts, baskets = reference_baskets(
        events,
        gap_seconds=3600.0,
        kept=3,
        late=late | stale,
        leaves=leaves,
        checkouts=checkouts,
        open_cart_seconds=3 * 3600.0,
    )
    expected_baskets = {
        i: {j: c for j, c in row.items() if c} for i, row in basket_pairs.items() if any(row.values())
    }
    assert stored_pairs(pairs_repo, baskets=True) == expected_baskets
    assert {i: s.baskets for i, s in stored.items() if s.baskets and i != "#totals"} == {
        i: c for i, c in basket_counts.items() if c
    }
    assert stats.get_many(["#totals"]).get("#totals", ItemStats("")).baskets == baskets
    expected_complements = reference_rows(basket_pairs, basket_counts, measure, k=3)
    for item, expected in expected_complements.items():
        row = rows_repo.rows.get(item)
        got = [(n.item_id, n.score) for n in row.complements] if row else []
        assert [j for j, _ in got] == [j for j, _ in expected], item
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], rel=1e-12)

    expected_rows = reference_rows(pairs, norms, measure, k=3)
    for item, expected in expected_rows.items():
        row = rows_repo.rows.get(item)
        got = [(n.item_id, n.score) for n in row.neighbours] if row else []
        assert [j for j, _ in got] == [j for j, _ in expected], item
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], rel=1e-12)
    for item, row in rows_repo.rows.items():
        if item not in expected_rows:
            assert row.neighbours == []
