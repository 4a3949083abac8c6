"""The DynamoDB adapters (on moto) against the in-memory ones, including crashes mid-batch
and bisected re-deliveries, which the replay guards must absorb."""

from __future__ import annotations

import json
import random

import boto3
import pytest
from botocore.exceptions import ClientError

from streamrec import wiring
from streamrec.domain.ingest import IngestService, SequencedEvent
from streamrec.domain.model import CategoryAffinity, UserState, sequence_key
from streamrec.domain.recommend import RecommendationService
from streamrec.domain.similarity import SimilarityService
from streamrec.events import parse_event
from streamrec.repositories.base import ConcurrentUpdateError, RepositoryError
from streamrec.repositories.dynamodb import (
    COUNT_PREFIX,
    DynamoTable,
    DynamoUserRepository,
    user_from_item,
    user_to_item,
)
from streamrec.repositories.memory import (
    InMemoryChangePublisher,
    InMemoryCooccurrenceRepository,
    InMemoryItemStatsRepository,
    InMemorySimilarityRepository,
    InMemoryUserRepository,
)
from streamrec.settings import load_settings
from streamrec.stream import is_transient

SHARD = "shardId-000000000000"


def _stream(count: int, seed: int) -> list[SequencedEvent]:
    rng = random.Random(seed)
    kinds = ["view"] * 6 + ["add_to_cart", "remove_from_cart", "purchase"]
    return [
        SequencedEvent(
            sequence_key(50_000 + n),
            parse_event(
                {
                    "event_id": f"e{n}",
                    "event_type": rng.choice(kinds),
                    "user_id": f"u{rng.randrange(25)}",
                    "item_id": f"i{min(rng.randrange(40), rng.randrange(40))}",
                    "timestamp": 1_764_000_000 + n * 30,
                }
            ),
        )
        for n in range(count)
    ]


def _memory_pipeline(settings):
    publisher = InMemoryChangePublisher()
    users, pairs, stats, rows = (
        InMemoryUserRepository(),
        InMemoryCooccurrenceRepository(),
        InMemoryItemStatsRepository(),
        InMemorySimilarityRepository(),
    )
    return (
        IngestService(settings, users, pairs, stats, publisher),
        SimilarityService(settings, pairs, stats, rows),
        RecommendationService(settings, users, rows),
        publisher,
    )


def _dynamo_counts(template) -> dict[str, dict[str, float]]:
    items = boto3.client("dynamodb").scan(TableName=template.tables["CooccurrenceTable"].name)["Items"]
    pairs: dict[str, dict[str, float]] = {}
    for item in items:
        for name, value in item.items():
            if name.startswith(COUNT_PREFIX):
                pairs.setdefault(item["item_id"]["S"], {})[name[len(COUNT_PREFIX) :]] = float(value["N"])
    return pairs


def test_crashes_and_bisected_redeliveries_leave_the_same_tables(aws, monkeypatch):
    settings = load_settings()
    events = _stream(400, seed=7)
    dynamo_ingest = wiring.ingest_service(settings)
    dynamo_similarity = wiring.similarity_service(settings)
    memory_ingest, memory_similarity, memory_recs, publisher = _memory_pipeline(settings)

    original_save = DynamoUserRepository.save_many
    crashes = {"left": 1}

    def crash_once(self, states):
        if crashes["left"]:
            crashes["left"] -= 1
            raise RepositoryError("injected crash after the count writes")
        return original_save(self, states)

    monkeypatch.setattr(DynamoUserRepository, "save_many", crash_once)
    for start in range(0, len(events), 100):
        batch = events[start : start + 100]
        memory_ingest.ingest(batch, SHARD)
        try:
            dynamo_ingest.ingest(batch, SHARD)
        except RepositoryError:
            # Lambda bisects the failed batch and retries both halves.
            dynamo_ingest.ingest(batch[:50], SHARD)
            dynamo_ingest.ingest(batch[50:], SHARD)
        dynamo_ingest.ingest(batch[:30], SHARD)  # and Kinesis re-delivers some records
    assert crashes["left"] == 0

    memory_pairs = {
        item: {k: float(v) for k, v in row.items()}
        for item, row in memory_ingest.cooccurrence.get_rows(memory_ingest.cooccurrence.items()).items()
    }
    assert _dynamo_counts(aws) == memory_pairs

    items = sorted({e.event.item_id for e in events})
    # first_seen (if_not_exists on DynamoDB) survives crashes and re-deliveries alike.
    first_seen = {i: s.first_seen for i, s in memory_ingest.item_stats.get_many(items).items()}
    assert {i: s.first_seen for i, s in dynamo_ingest.item_stats.get_many(items).items()} == first_seen
    assert first_seen == {
        item: min(int(e.event.timestamp) for e in events if e.event.item_id == item) for item in items
    }
    dynamo_similarity.recompute(items, items, items)
    memory_similarity.recompute(*publisher.drain())
    # the rows' support (how well behaviour knows each item) survives the table
    dynamo_rows, _ = dynamo_similarity.similarity.get_many(items)
    memory_rows, _ = memory_similarity.similarity.get_many(items)
    supports = {item: row.support for item, row in memory_rows.items()}
    assert {item: row.support for item, row in dynamo_rows.items()} == supports
    assert sum(supports.values()) > 0
    dynamo_recs = wiring.recommendation_service(settings)
    now = 1_764_000_000 + 400 * 30
    for user in sorted({e.event.user_id for e in events}):
        got = dynamo_recs.for_user(user, k=10, now=now)
        expected = memory_recs.for_user(user, k=10, now=now)
        assert got == expected, user
    for item in items:
        assert dynamo_recs.similar_items(item, k=10) == memory_recs.similar_items(item, k=10)


def test_a_row_holding_part_of_a_batch_gets_only_the_rest(aws, monkeypatch):
    """Crash after some count rows were written, crash again in the retry of the first half,
    then the whole batch comes again. Rows holding all of it skip; rows holding the first
    half get the rest (the guarded write fails, re-reads the guard, adds later records)."""
    settings = load_settings()
    events = _stream(120, seed=3)
    ingest = wiring.ingest_service(settings)
    original = DynamoTable.apply_guarded

    def crash_after(rows: int):
        budget = {"left": rows}

        def apply_guarded(self, *args, **kwargs):
            if budget["left"] == 0:
                raise RepositoryError("injected crash between row writes")
            budget["left"] -= 1
            return original(self, *args, **kwargs)

        return apply_guarded

    monkeypatch.setattr(DynamoTable, "apply_guarded", crash_after(40))
    with pytest.raises(RepositoryError):
        ingest.ingest(events, SHARD)  # rows 1-40 now hold the whole batch
    monkeypatch.setattr(DynamoTable, "apply_guarded", crash_after(80))
    with pytest.raises(RepositoryError):
        ingest.ingest(events[:60], SHARD)  # some later rows now hold the first half only
    monkeypatch.setattr(DynamoTable, "apply_guarded", original)
    ingest.ingest(events, SHARD)  # no user was saved: every row sees all 120 records again

    memory_ingest, *_ = _memory_pipeline(settings)
    memory_ingest.ingest(events, SHARD)
    expected = memory_ingest.cooccurrence.get_rows(memory_ingest.cooccurrence.items())
    assert _dynamo_counts(aws) == {i: r for i, r in expected.items() if r}
    stats = wiring.similarity_service(settings).item_stats.get_many(["#totals"])["#totals"]
    assert stats.events["events"] == 120


def test_a_user_row_read_before_a_deletion_or_another_write_is_not_written_back(aws):
    # The version condition: an ingest batch that read a user before DELETE /users/{id}
    # must not write the deleted history back (its retry plans from no history).
    users = DynamoUserRepository(DynamoTable(aws.tables["UsersTable"].name, boto3.client("dynamodb")))
    users.save_many([UserState("u", cart=["tent"])])
    read = users.get_many(["u"])["u"]
    users.delete("u")
    with pytest.raises(ConcurrentUpdateError):
        users.save_many([read])
    assert users.get("u") is None
    users.save_many([UserState("u")])  # a new row (version 0: the row must not exist)
    with pytest.raises(ConcurrentUpdateError):
        users.save_many([UserState("u", cart=["stove"])])
    stored = users.get_many(["u"])["u"]
    users.save_many([stored])  # the version read: written
    with pytest.raises(ConcurrentUpdateError):
        users.save_many([stored])  # now one behind
    assert users.get("u").cart == [] and users.get("u").version == 2


def test_a_guarded_write_refused_for_no_reason_its_guard_shows_gives_up(aws):
    # A refusal its guard does not explain (the guard reads back older than the write): it
    # used to retry without end, each refusal billed; now it fails the batch after
    # GUARD_STALLS refusals in a row, naming the guard.
    name = aws.tables["CooccurrenceTable"].name
    table = DynamoTable(name, boto3.client("dynamodb"))
    key = {"item_id": {"S": "tent"}, "block": {"N": "0"}}
    table.apply_guarded(key, [("00000000000000000001", "stove", 1.0)], "shardId-000000000000")
    calls = []
    original = table.call

    def refusing(operation, **kwargs):
        calls.append(operation)
        if operation == "update_item":
            error = {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}
            raise ClientError({"Error": error}, operation)
        return original(operation, **kwargs)

    table.call = refusing
    with pytest.raises(
        RepositoryError, match="refused 3 times though its guard s#shardId-000000000000"
    ) as refused:
        table.apply_guarded(key, [("00000000000000000002", "stove", 1.0)], "shardId-000000000000")
    assert calls == ["update_item", "get_item"] * 3
    # Not retried by Lambda (its shard held for good): isolated and dead-lettered, its
    # records named by the sequences of the deltas refused.
    assert not is_transient(refused.value)
    assert refused.value.sequences == {"00000000000000000002"}


def test_user_rows_keep_the_category_engagement():
    state = UserState("u", cart=["tent"])
    state.categories = {"camping": CategoryAffinity(4.5, 100.0, {"view": 2}, (1.5, 0.25, 0.5), 1)}
    assert user_from_item(user_to_item(state, 1)).categories == state.categories


def test_user_rows_written_before_the_coupon_model_still_read():
    item = user_to_item(UserState("u"), 1)
    item["categories"] = {"S": json.dumps({"camping": [4.5, 100.0, {"view": 2}]})}
    assert user_from_item(item).categories == {"camping": CategoryAffinity(4.5, 100.0, {"view": 2})}


def test_user_rows_keep_the_items_bought_in_the_basket_and_older_rows_still_read():
    state = UserState("u", basket_id="o1", basket=["a", "x"], basket_time=5.0, basket_bought=["x"])
    assert user_from_item(user_to_item(state, 1)).basket_bought == ["x"]
    item = user_to_item(UserState("u"), 1)
    item["basket"] = {"S": json.dumps(["o1", 5.0, ["a", "x"]])}  # before purchases were marked
    read = user_from_item(item)
    assert (read.basket_id, read.basket, read.basket_bought) == ("o1", ["a", "x"], [])
    # The basket's earliest event is kept; a row from before it reads its latest instead.
    state.basket_start = 2.0
    read = user_from_item(user_to_item(state, 1))
    assert (read.basket_time, read.basket_start, read.basket_bought) == (5.0, 2.0, ["x"])
    item["basket"] = {"S": json.dumps(["o1", 5.0, ["a", "x"], ["x"]])}
    assert user_from_item(item).basket_start == 5.0


def test_similarity_rows_written_before_support_keep_the_neighbour_count_rule():
    from streamrec.domain.model import Neighbour, SimilarityRow
    from streamrec.domain.recommend import coldness
    from streamrec.repositories.dynamodb import _row_from_item
    from streamrec.settings import Settings

    settings = Settings()
    old = {
        "item_id": {"S": "tent"},
        "neighbours": {"S": json.dumps([["stove", 0.5]])},
        "measure": {"S": "jaccard"},
        "updated_at": {"N": "1.0"},
    }
    row = _row_from_item(old)
    assert row.support is None and coldness(row, settings) == pytest.approx(0.9)  # 1 of 10 neighbours
    many = json.dumps([[f"n{n}", 0.5] for n in range(12)])
    assert coldness(_row_from_item({**old, "neighbours": {"S": many}}), settings) == 0.0
    catalog_only = _row_from_item({**old, "neighbours": {"S": "[]"}})
    assert coldness(catalog_only, settings) == 1.0  # only its text is known
    recorded = SimilarityRow("tent", [Neighbour("stove", 0.5)], support=10.0)
    assert coldness(recorded, settings) == pytest.approx(1 - 10.0 / settings.cold_item_weight)


def test_a_similarity_rows_own_category_survives_the_table(aws):
    from streamrec.domain.model import Neighbour, SimilarityRow

    table = wiring.similarity_service(load_settings()).similarity
    table.put_rows(
        [
            SimilarityRow("tent", [Neighbour("stove", 0.5, "camping")], category="camping", support=3.0),
            SimilarityRow("mystery", [Neighbour("stove", 0.5)]),
        ]
    )
    rows, _ = table.get_many(["tent", "mystery"])
    assert (rows["tent"].category, rows["mystery"].category) == ("camping", "")
    assert rows["tent"].neighbours[0].category == "camping"


def test_rows_read_for_some_lists_decode_only_those(aws):
    from streamrec.domain.model import Neighbour, SimilarityRow

    table = wiring.similarity_service(load_settings()).similarity
    whole = SimilarityRow(
        "tent",
        [Neighbour("stove", 0.5, "camping")],
        extended=[Neighbour("lamp", 0.2)],
        complements=[Neighbour("pegs", 0.4, "camping")],
        content=[Neighbour("tarp", 0.3, "shelter")],
        holders=["tarp", "poles"],
        content_digest=123456,
        measure="jaccard",
        category="camping",
        support=3.0,
    )
    table.put_rows([whole])
    rows, _ = table.get_many(["tent"], row_lists=("neighbours",))
    assert rows["tent"].neighbours == whole.neighbours
    assert (rows["tent"].extended, rows["tent"].complements, rows["tent"].content) == ([], [], [])
    assert (rows["tent"].holders, rows["tent"].content_digest) == ([], 0)
    rows, _ = table.get_many(["tent"], consistent=True, row_lists=("content",))
    assert rows["tent"].content == whole.content and rows["tent"].category == "camping"
    assert (rows["tent"].holders, rows["tent"].content_digest) == (["tarp", "poles"], 123456)
    assert (rows["tent"].neighbours, rows["tent"].extended, rows["tent"].complements) == ([], [], [])
    rows, _ = table.get_many(["tent"])  # all lists, as the API reads them
    assert rows["tent"] == whole
