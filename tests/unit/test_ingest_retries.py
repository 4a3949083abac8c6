"""A retried or bisected ingest batch plans what its first attempt planned: the reads it plans
from are consistent, and the catalog records of a batch are written before its user events."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from streamrec.domain.ingest import IngestService, SequencedEvent
from streamrec.domain.model import UserState, sequence_key
from streamrec.events import parse_event
from streamrec.repositories.dynamodb import DynamoCatalogRepository, DynamoTable, DynamoUserRepository
from streamrec.repositories.memory import (
    InMemoryChangePublisher,
    InMemoryCooccurrenceRepository,
    InMemoryItemStatsRepository,
    InMemoryUserRepository,
)
from streamrec.settings import Settings
from tests.unit.conftest import BatchGetRecorder, FakeLambdaContext, import_handler, kinesis_event


def _tent_record(category: str, timestamp: int) -> dict:
    """A catalog record of item X."""
    return {
        "event_type": "item_upsert",
        "item_id": "X",
        "title": "Tent X",
        "category": category,
        "price": 10.0,
        "in_stock": True,
        "timestamp": timestamp,
    }


def _scan(table: str) -> dict[str, dict]:
    rows = boto3.client("dynamodb").scan(TableName=table)["Items"]
    return {row["item_id"]["S"]: row for row in rows}


def test_a_bisected_retry_counts_events_without_a_category_under_one_category(aws):
    """Catalog: X in category A. A batch [view X, purchase X (no category), item_upsert X ->
    B] fails after its count rows, before the users (throttled), and Lambda bisects it. The
    retried half without the upsert used to plan under A what the first attempt had counted
    under B: #buys:A and trends #cat:A held the same view and purchase as #buys:B and #cat:B."""
    ingest = import_handler("ingest")
    now = int(time.time()) - 3600

    def user_event(n: int, event_type: str) -> dict:
        return {
            "event_id": f"e{n}",
            "event_type": event_type,
            "user_id": "u1",
            "item_id": "X",
            "timestamp": now + n,
        }

    assert ingest.lambda_handler(kinesis_event([_tent_record("A", now)], 1), FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    records = kinesis_event(
        [user_event(10, "view"), user_event(11, "purchase"), _tent_record("B", now + 20)], 10
    )["Records"]
    users = ingest.apply_events.service.users
    save_many = users.save_many

    def throttled(states):
        users.save_many = save_many
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}}, "PutItem"
        )

    users.save_many = throttled
    try:
        ingest.lambda_handler({"Records": records}, FakeLambdaContext())
    except Exception:  # the whole batch fails: Lambda retries it, bisected
        pass
    else:
        raise AssertionError("the throttled batch should have failed")
    for half in (records[:2], records[2:]):
        assert ingest.lambda_handler({"Records": half}, FakeLambdaContext()) == {"batchItemFailures": []}

    stats = _scan(aws.tables["ItemStatsTable"].name)
    assert "#buys:B" in stats and "#buys:A" not in stats
    trend_rows = _scan(aws.tables["TrendsTable"].name)
    assert any(key.startswith("#cat:B") for key in trend_rows)
    assert not any(key.startswith("#cat:A") for key in trend_rows)
    user = boto3.client("dynamodb").get_item(
        TableName=aws.tables["UsersTable"].name, Key={"user_id": {"S": "u1"}}
    )
    assert json.loads(user["Item"]["categories"]["S"]).keys() == {"B"}


def test_the_ingest_plans_from_consistent_reads_of_users_and_catalog_categories(aws):
    """An eventually consistent read may return a user row as it was one batch earlier; the
    plan made from it writes guarded count increments, the user write then fails its version
    check, and the retry's different plan cannot undo them."""
    client = BatchGetRecorder(boto3.client("dynamodb"))
    users = DynamoUserRepository(DynamoTable(aws.tables["UsersTable"].name, client))
    users.save_many([UserState(user_id="u1")])
    catalog = DynamoCatalogRepository(DynamoTable(aws.tables["CatalogTable"].name, client))
    assert users.get_many(["u1"]).keys() == {"u1"}
    assert catalog.categories(["X"]) == {}
    requests = [request for items in client.requests for request in items.values()]
    assert len(requests) == 2 and all(request.get("ConsistentRead") is True for request in requests)


def test_a_catalog_record_older_than_the_stored_one_is_ignored_with_a_warning(aws, caplog):
    """A record stamped ahead (a producer's clock) keeps later records of its item out until
    its time has passed: the ignored ones are logged as a warning, with both timestamps."""
    ingest = import_handler("ingest")
    now = int(time.time()) - 60
    ahead = _tent_record("camping", now + 72_000)
    real = {**ahead, "in_stock": False, "timestamp": now}
    for n, record in enumerate((ahead, real)):
        assert ingest.lambda_handler(kinesis_event([record], n + 1), FakeLambdaContext()) == {
            "batchItemFailures": []
        }
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert [w.getMessage() for w in warnings] == ["catalog records older than the stored ones were ignored"]
    assert warnings[0].items == [{"item_id": "X", "timestamp": now, "stored_timestamp": now + 72_000}]
    stored = boto3.client("dynamodb").get_item(
        TableName=aws.tables["CatalogTable"].name, Key={"item_id": {"S": "X"}}
    )
    assert stored["Item"]["in_stock"]["BOOL"] is True


def test_an_event_with_a_blank_category_takes_its_items_catalog_category():
    from streamrec.domain.ingest import SequencedEvent, with_catalog_categories
    from streamrec.events import parse_event

    class Catalog:
        def categories(self, item_ids):
            return {item: "camping" for item in item_ids}

    event = {
        "event_id": "e",
        "event_type": "view",
        "user_id": "u",
        "item_id": "X",
        "timestamp": time.time() - 5,
    }
    batch = [SequencedEvent("1", parse_event({**event, "category": "  "}))]
    assert [s.event.category for s in with_catalog_categories(batch, Catalog())] == ["camping"]


def test_a_catalog_category_stored_decomposed_reaches_events_composed():
    # Records stored before categories were composed (NFC) may hold "Cafe" + a combining
    # accent; events that name "Café" are composed: both must count under one category.
    from streamrec.domain.ingest import SequencedEvent, with_catalog_categories
    from streamrec.events import parse_event

    class Catalog:
        def categories(self, item_ids):
            return {item: "Cafe\u0301" for item in item_ids}

    event = {"event_id": "e", "event_type": "view", "user_id": "u", "item_id": "X", "timestamp": time.time()}
    (filled,) = with_catalog_categories([SequencedEvent("1", parse_event(event))], Catalog())
    assert filled.event.category == "Café" == parse_event({**event, "category": "Cafe\u0301"}).category


def test_a_redelivered_catalog_record_does_not_replace_a_later_one_of_the_same_time(aws):
    """Two records of X with the same timestamp and other fields: the second (later on the
    shard) wins, and a re-delivery of the first (a Lambda retry, or a bisected half of its
    batch) no longer rolls the catalog back, nor moves later uncategorised events."""
    ingest = import_handler("ingest")
    now = int(time.time()) - 60
    first, second = kinesis_event([_tent_record("B", now)], 1), kinesis_event([_tent_record("C", now)], 2)
    purchase = {
        "event_id": "p",
        "event_type": "purchase",
        "user_id": "u1",
        "item_id": "X",
        "timestamp": now + 1,
    }
    for batch in (first, second, first, kinesis_event([purchase], 3)):
        assert ingest.lambda_handler(batch, FakeLambdaContext()) == {"batchItemFailures": []}
    stored = boto3.client("dynamodb").get_item(
        TableName=aws.tables["CatalogTable"].name, Key={"item_id": {"S": "X"}}
    )
    assert stored["Item"]["category"]["S"] == "C"
    buys = [key for key in _scan(aws.tables["ItemStatsTable"].name) if key.startswith("#buys:")]
    assert buys == ["#buys:C"]


def test_a_batch_whose_announcement_fails_is_announced_by_its_retry():
    # The changed items are announced before the users are saved: saved first, the retry
    # would find the events applied (the user rows' guards) and announce nothing, and the
    # items' similarity rows would wait for their next event.
    class FailsOnce(InMemoryChangePublisher):
        failed = False

        def publish(self, *args, **kwargs):
            if not self.failed:
                self.failed = True
                raise RuntimeError("PutRecords failed")
            super().publish(*args, **kwargs)

    publisher = FailsOnce()
    users = InMemoryUserRepository()
    service = IngestService(
        Settings(), users, InMemoryCooccurrenceRepository(), InMemoryItemStatsRepository(), publisher
    )
    views = [
        {"event_id": f"e{n}", "event_type": "view", "user_id": "u", "item_id": item, "timestamp": 1.7e9 + n}
        for n, item in enumerate(("tent", "stove"))
    ]
    batch = [SequencedEvent(sequence_key(n + 1), parse_event(v)) for n, v in enumerate(views)]
    with pytest.raises(RuntimeError, match="PutRecords failed"):
        service.ingest(batch, "shardId-000000000000")
    assert users.get("u") is None  # not saved: the retry plans the batch again
    service.ingest(batch, "shardId-000000000000")
    assert publisher.changed == {"tent", "stove"}
    assert [entry.item_id for entry in users.get("u").items] == ["tent", "stove"]
