"""A recent item's similarity to itself is on the scale of its row's scores whatever the
measure: with lift (scores about 1 / c_jj) a constant 2 outranked everything, with LLR
(hundreds) it was nothing and recent items never came back."""

from __future__ import annotations

import random

import pytest

from streamrec.domain.ingest import IngestService, SequencedEvent
from streamrec.domain.model import sequence_key
from streamrec.domain.recommend import RecommendationService
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

T0 = 1_700_000_000


def _sessions() -> list[list[str]]:
    """200 users each viewing a pair p<k>, q<k> and two of 30 other items; the last views p0
    then p1."""
    rng = random.Random(3)
    sessions = [
        [f"p{k}", f"q{k}", f"n{rng.randrange(30)}", f"n{rng.randrange(30)}"]
        for k in (rng.randrange(4) for _ in range(200))
    ]
    return [*sessions, ["p0", "p1"]]


@pytest.mark.parametrize("measure", ["jaccard", "cosine", "lift", "llr"])
def test_a_users_recent_items_lead_under_every_measure(measure):
    settings = Settings(similarity_measure=measure, category_blend=0.0)
    users, counts = InMemoryUserRepository(), InMemoryCooccurrenceRepository()
    stats, rows, changes = (
        InMemoryItemStatsRepository(),
        InMemorySimilarityRepository(),
        InMemoryChangePublisher(),
    )
    events = [
        {
            "event_id": f"e{u}-{n}",
            "user_id": f"u{u}",
            "item_id": item,
            "event_type": "view",
            "timestamp": T0 + 10 * u + n,
        }
        for u, items in enumerate(_sessions())
        for n, item in enumerate(items)
    ]
    sequenced = [SequencedEvent(sequence_key(n + 1), parse_event(e)) for n, e in enumerate(events)]
    IngestService(settings, users, counts, stats, changes).ingest(sequenced, "shardId-000000000000")
    SimilarityService(settings, counts, stats, rows).recompute(*changes.drain())
    listed = RecommendationService(settings, users, rows).for_user("u200", 4, now=T0 + 10_000).items
    assert {item.item_id for item in listed[:2]} == {"p0", "p1"}, [(i.item_id, i.score) for i in listed]
