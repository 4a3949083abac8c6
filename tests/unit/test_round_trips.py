"""DynamoDB calls counted with botocore event hooks.

Every call our adapters make is synchronous, so the number of calls on the request path
is the number of sequential round trips.
"""

from __future__ import annotations

from collections import Counter

import boto3
import pytest

from streamrec import wiring
from streamrec.domain.ingest import SequencedEvent, plan_batch
from streamrec.domain.model import sequence_key
from streamrec.domain.recommend import CrossSellService
from streamrec.events import parse_event
from streamrec.repositories.fast_reads import PROBE_TABLE
from streamrec.settings import load_settings

SHARD = "shardId-000000000000"


class CallLog:
    """Records (operation, params) of every DynamoDB call made by clients created after it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("provide-client-params.dynamodb", self._record)

    def _record(self, params, model, **_kwargs):
        # A client's fast-read check reads a canned item answered in process: no round trip.
        if params.get("TableName") != PROBE_TABLE:
            self.calls.append((model.name, params))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def clear(self) -> None:
        self.calls.clear()


def _events(count: int, users: int, items: int) -> list[SequencedEvent]:
    kinds = ["view", "view", "view", "add_to_cart", "purchase"]
    result = []
    for n in range(count):
        event = parse_event(
            {
                "event_id": f"e{n}",
                "event_type": kinds[n % len(kinds)],
                "user_id": f"u{n % users}",
                "item_id": f"i{(n * 7 + n // users) % items}",
                "timestamp": 1_764_000_000 + n,
            }
        )
        result.append(SequencedEvent(sequence_key(10_000 + n), event))
    return result


@pytest.fixture
def calls(aws):
    return CallLog()


def _fill(settings, events):
    ingest = wiring.ingest_service(settings)
    ingest.ingest(events, SHARD)
    items = sorted({e.event.item_id for e in events})
    wiring.similarity_service(settings).recompute(items, items, items)


def test_personalized_request_takes_two_round_trips(aws, calls, monkeypatch):
    monkeypatch.setenv("API_CACHE_TTL_SECONDS", "0")  # the uncached path (cached: test_cache.py)
    settings = load_settings()
    _fill(settings, _events(300, users=20, items=40))
    service = wiring.recommendation_service(settings)
    calls.clear()
    result = service.for_user("u3", k=10)
    assert len(result.items) == 10 and not result.fallback
    assert calls.names() == ["GetItem", "BatchGetItem"]
    history_keys = calls.calls[1][1]["RequestItems"][aws.tables["SimilarityTable"].name]["Keys"]
    assert {"S": "#popular"} in [k["item_id"] for k in history_keys]
    assert {"S": "#out_of_stock"} in [k["item_id"] for k in history_keys]  # stock: same read

    calls.clear()
    unknown = service.for_user("nobody", k=5)
    assert unknown.fallback and len(unknown.items) == 5
    assert calls.names() == ["GetItem", "BatchGetItem"]

    calls.clear()
    service.similar_items("i1", k=5)
    assert calls.names() == ["BatchGetItem"]


def test_ingest_writes_each_distinct_row_once_per_batch(aws, calls):
    settings = load_settings()
    events = _events(1000, users=50, items=60)
    ingest = wiring.ingest_service(settings)
    calls.clear()
    ingest.ingest(events, SHARD)

    reads = [
        (n, table)
        for n, params in calls.calls
        if n in ("BatchGetItem", "GetItem", "Query", "Scan")
        for table in params.get("RequestItems", [params.get("TableName")])
    ]
    # 50 users fit one BatchGetItem; these events name no category, so the catalog
    # categories of their 60 items are looked up once too (domain/ingest.py).
    assert reads == [
        ("BatchGetItem", aws.tables["CatalogTable"].name),
        ("BatchGetItem", aws.tables["UsersTable"].name),
    ]
    writes = Counter()
    for name, params in calls.calls:
        if name in ("UpdateItem", "PutItem"):
            key = params.get("Key") or {"user_id": params["Item"]["user_id"]}
            writes[
                (params["TableName"], tuple(sorted((k, v.get("S") or v.get("N")) for k, v in key.items())))
            ] += 1
    assert writes and max(writes.values()) == 1, "a row was written twice in one batch"

    plan = plan_batch({}, events, SHARD, settings)
    # Trend counter rows: one per (item or category, day) of the batch.
    expected_rows = len(plan.cooccurrence) + len(plan.item_stats) + len(plan.trends) + len(plan.users)
    assert sum(writes.values()) == expected_rows
    pairs_applied = sum(len(d) for d in plan.cooccurrence.values())
    assert pairs_applied > 3 * len(plan.cooccurrence)  # batching really merged pair updates


def test_similarity_batch_reads_each_cooccurrence_row_once(aws, calls):
    settings = load_settings()
    viewed_only = [
        SequencedEvent(
            sequence_key(20_000 + n),
            parse_event(
                {
                    "event_id": f"v{n}",
                    "event_type": "view",
                    "user_id": f"u{n % 20}",
                    "item_id": f"viewed-only-{n % 5}",
                    "timestamp": 1_764_000_400 + n,
                }
            ),
        )
        for n in range(30)
    ]
    events = _events(300, users=20, items=40) + viewed_only
    ingest = wiring.ingest_service(settings)
    ingest.ingest(events, SHARD)
    items = sorted({e.event.item_id for e in events})
    calls.clear()

    # Every item's own count changed too, so affected() reads their rows to propagate.
    wiring.similarity_service(settings).recompute(items, items, items)

    table = aws.tables["CooccurrenceTable"].name
    read = Counter(
        (key["item_id"]["S"], key["block"]["N"])
        for name, params in calls.calls
        if name == "BatchGetItem" and table in params["RequestItems"]
        for key in params["RequestItems"][table]["Keys"]
    )
    assert read, "the rebuild reads co-occurrence rows"
    assert max(read.values()) == 1
    # View-window rows of every announced item; basket rows ("#b:<item>") only of the items
    # some basket holds (a basket row's 16 blocks cost read units even when absent).
    in_baskets = {e.event.item_id for e in events if e.event.event_type in ("add_to_cart", "purchase")}
    assert in_baskets and set(items) - in_baskets, "the sample has items in and out of baskets"
    assert {item for item, _ in read} == set(items) | {f"#b:{item}" for item in in_baskets}
    stats_table = aws.tables["ItemStatsTable"].name
    stats_read = Counter(
        key["item_id"]["S"]
        for name, params in calls.calls
        if name == "BatchGetItem" and stats_table in params["RequestItems"]
        for key in params["RequestItems"][stats_table]["Keys"]
    )
    assert max(stats_read.values()) == 1


def test_cross_sell_takes_one_round_trip_or_two_with_a_user(aws, calls, monkeypatch):
    monkeypatch.setenv("API_CACHE_TTL_SECONDS", "0")  # each request reads, as on a cold container
    settings = load_settings()
    events = _events(300, users=20, items=40)
    _fill(settings, events)
    # As the API builds it (http_api.build_app): on the recommendations' repositories.
    recommendations = wiring.recommendation_service(settings)
    service = CrossSellService(settings, recommendations.users, recommendations.similarity)
    bought = sorted({e.event.item_id for e in events if e.event.event_type == "purchase"})[:3]

    calls.clear()
    result = service.for_request(bought, k=10)
    assert not result.fallback and len(result.items) == 10
    assert calls.names() == ["BatchGetItem"]  # the cart's rows and #popular together

    calls.clear()
    service.for_request(bought, k=10, user_id="u3")
    assert calls.names() == ["GetItem", "BatchGetItem"]

    calls.clear()
    service.for_user("u4", k=10)
    assert calls.names() == ["GetItem", "BatchGetItem"]


def test_a_cold_items_similar_items_read_its_category_list_apart(aws, calls, monkeypatch):
    from streamrec.domain.model import Neighbour, PopularList, SimilarityRow, category_row

    monkeypatch.setenv("API_CACHE_TTL_SECONDS", "0")
    settings = load_settings()
    table = wiring.recommendation_service(settings).similarity
    look_alikes = [Neighbour(f"tent-{n}", 0.9 - n / 100, "camping") for n in range(8)]
    table.put_rows(
        [
            SimilarityRow("tent-new", [], content=look_alikes, support=0.0, category="camping"),
            SimilarityRow("tent-old", [], content=look_alikes, support=1000.0, category="camping"),
        ]
    )
    table.put_list(category_row("camping"), PopularList([("stove", 9.0), ("lantern", 5.0)]))
    service = wiring.recommendation_service(settings)
    calls.clear()
    new = service.similar_items("tent-new", k=6)
    assert calls.names() == ["BatchGetItem", "BatchGetItem"]  # the row, then its category's list
    assert [r.item_id for r in new.items][-2:] == ["stove", "lantern"]
    calls.clear()
    service.similar_items("tent-old", k=6)  # warm: no popular share, one read
    assert calls.names() == ["BatchGetItem"]
