"""Lists too large for one DynamoDB row (the out-of-stock set of a large shop) are split
across part rows by the DynamoDB adapter, and read back whole (on moto, which enforces the
400 KB item limit)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from streamrec.domain.catalog import CatalogService, SequencedUpsert
from streamrec.domain.filters import out_of_stock
from streamrec.domain.model import OUT_OF_STOCK_ROW, PopularList, sequence_key
from streamrec.domain.similarity import SimilarityService
from streamrec.events import parse_record
from streamrec.repositories import dynamodb
from streamrec.repositories.base import ConcurrentUpdateError, RepositoryError
from streamrec.repositories.dynamodb import (
    DynamoCatalogRepository,
    DynamoSimilarityRepository,
    DynamoTable,
    ListTooLargeError,
    list_part_key,
)
from streamrec.repositories.memory import (
    InMemoryChangePublisher,
    InMemoryCooccurrenceRepository,
    InMemoryItemStatsRepository,
)
from streamrec.settings import load_settings
from tests.unit.conftest import FakeLambdaContext, import_handler, load_event

SHARD = "shardId-000000000000"
T0 = 1_764_000_000.0


def _entries(count: int) -> list[tuple[str, float]]:
    """``count`` out-of-stock entries in item id order (as the catalog keeps them)."""
    return sorted((f"sku-{n:07d}", T0 + n) for n in range(count))


@pytest.fixture
def stored(aws):
    """The similarity table's name, its client and the adapter on it."""
    client = boto3.client("dynamodb")
    name = aws.tables["SimilarityTable"].name
    return name, client, DynamoSimilarityRepository(DynamoTable(name, client))


@pytest.fixture
def transactions(stored):
    """The TransactItems of every TransactWriteItems call of the adapter's client."""
    seen: list[list[dict]] = []

    def record(params, model, **_kwargs):
        if model.name == "TransactWriteItems":
            seen.append(params["TransactItems"])

    stored[1].meta.events.register("provide-client-params.dynamodb", record)
    return seen


def _raw(client, table: str, key: str) -> dict | None:
    return client.get_item(TableName=table, Key={"item_id": {"S": key}}, ConsistentRead=True).get("Item")


def test_one_row_cannot_hold_a_large_shops_out_of_stock_set(stored):
    # What the adapter used to do: 20,000 ids in one item is over DynamoDB's 400 KB limit.
    table, client, _ = stored
    entries = dynamodb._encode_entries(_entries(20_000))
    assert len(entries) > 400_000
    with pytest.raises(client.exceptions.ClientError, match="size"):
        client.put_item(TableName=table, Item={"item_id": {"S": "#too_big"}, "items": {"S": entries}})


def test_a_large_list_is_split_across_rows_and_read_back_whole(stored):
    table, client, similarity = stored
    entries = _entries(20_000)
    similarity.put_list(OUT_OF_STOCK_ROW, PopularList(entries, 0, 0))

    head = _raw(client, table, OUT_OF_STOCK_ROW)
    assert head is not None and head["items"]["S"] == "[]"  # a reader from before splits sees none
    parts = len(json.loads(head["digests"]["S"]))
    assert parts >= 16 and parts & (parts - 1) == 0  # a power of two
    sizes = [
        len(_raw(client, table, list_part_key(OUT_OF_STOCK_ROW, n, parts))["items"]["S"])
        for n in range(parts)
    ]
    assert max(sizes) <= dynamodb.LIST_PART_BYTES and sum(sizes) > 400_000

    assert similarity.get_list(OUT_OF_STOCK_ROW) == PopularList(entries, 1, 0)
    for consistent in (False, True):
        rows, lists = similarity.get_many(["sku-0000001"], [OUT_OF_STOCK_ROW, "#popular"], consistent)
        assert lists[OUT_OF_STOCK_ROW] == PopularList(entries, 1, 0)
        assert lists["#popular"] == PopularList()
        assert out_of_stock(lists) == {item for item, _ in entries}


def test_a_change_rewrites_only_the_part_it_falls_in(stored, transactions):
    _, _, similarity = stored
    entries = _entries(20_000)
    similarity.put_list(OUT_OF_STOCK_ROW, PopularList(entries, 0, 0))
    parts = len(transactions[-1]) - 1  # the first split writes the head and every part

    changed = sorted([*entries[1:], ("sku-9999999", T0)])  # one id back in stock, one out
    similarity.put_list(OUT_OF_STOCK_ROW, PopularList(changed, 1, 0))
    written = [action["Put"]["Item"]["item_id"]["S"] for action in transactions[-1]]
    assert written[0] == OUT_OF_STOCK_ROW and 2 <= len(written) <= 3 < parts
    assert similarity.get_list(OUT_OF_STOCK_ROW) == PopularList(changed, 2, 0)


def test_a_stale_version_is_refused_split_or_not(stored):
    _, _, similarity = stored
    similarity.put_list(OUT_OF_STOCK_ROW, PopularList(_entries(20_000), 0, 0))
    with pytest.raises(ConcurrentUpdateError):
        similarity.put_list(OUT_OF_STOCK_ROW, PopularList(_entries(20_001), 0, 0))
    with pytest.raises(ConcurrentUpdateError):  # the head is read: refused before writing
        similarity.put_list(OUT_OF_STOCK_ROW, PopularList(_entries(19_000), 5, 0))
    with pytest.raises(ConcurrentUpdateError):  # small: refused by the write's condition
        similarity.put_list(OUT_OF_STOCK_ROW, PopularList(_entries(3), 5, 0))
    assert similarity.get_list(OUT_OF_STOCK_ROW) == PopularList(_entries(20_000), 1, 0)


def test_a_split_list_returns_to_one_row_when_it_shrinks(stored):
    table, client, similarity = stored
    similarity.put_list(OUT_OF_STOCK_ROW, PopularList(_entries(20_000), 0, 0))
    similarity.put_list(OUT_OF_STOCK_ROW, PopularList(_entries(5), 1, 0))
    head = _raw(client, table, OUT_OF_STOCK_ROW)
    assert head is not None and "digests" not in head
    assert similarity.get_list(OUT_OF_STOCK_ROW) == PopularList(_entries(5), 2, 0)
    _, lists = similarity.get_many([], [OUT_OF_STOCK_ROW])
    assert lists[OUT_OF_STOCK_ROW] == PopularList(_entries(5), 2, 0)
    # And splits again when it grows back.
    similarity.put_list(OUT_OF_STOCK_ROW, PopularList(_entries(20_000), 2, 0))
    assert similarity.get_list(OUT_OF_STOCK_ROW) == PopularList(_entries(20_000), 3, 0)


def test_a_list_over_every_part_is_refused_with_its_size(stored, monkeypatch):
    _, _, similarity = stored
    monkeypatch.setattr(dynamodb, "MAX_LIST_PARTS", 4)
    with pytest.raises(ListTooLargeError, match=r"#out_of_stock holds 20,000 entries .* more than 4 rows"):
        similarity.put_list(OUT_OF_STOCK_ROW, PopularList(_entries(20_000), 0, 0))
    assert similarity.get_list(OUT_OF_STOCK_ROW) == PopularList()  # nothing written


def test_only_a_list_in_item_id_order_is_split(stored):
    _, _, similarity = stored
    with pytest.raises(ValueError, match="item id order"):
        similarity.put_list("#popular", PopularList(list(reversed(_entries(20_000))), 0, 0))


def _upsert(item: str, in_stock: bool, at: float) -> dict:
    return {
        "event_type": "item_upsert",
        "item_id": item,
        "title": "Ultralight tent",
        "category": "camping",
        "price": 99,
        "in_stock": in_stock,
        "tags": [],
        "timestamp": at,
    }


def test_the_catalog_keeps_a_large_out_of_stock_set_on_dynamodb(aws, stored):
    # 20,000 items already out of stock; the catalog path takes one more out and back in.
    _, client, similarity = stored
    similarity.put_list(OUT_OF_STOCK_ROW, PopularList(_entries(20_000), 0, 0))
    settings = load_settings()
    catalog = DynamoCatalogRepository(DynamoTable(aws.tables["CatalogTable"].name, client))
    publisher = InMemoryChangePublisher()
    service = CatalogService(settings, catalog, publisher)
    rebuild = SimilarityService(
        settings, InMemoryCooccurrenceRepository(), InMemoryItemStatsRepository(), similarity, catalog=catalog
    )
    for sequence, in_stock in ((1, False), (2, True)):
        record = parse_record(_upsert("tent-new", in_stock, T0 + sequence))
        service.upsert([SequencedUpsert(sequence_key(sequence), record)], SHARD)
        rebuild.recompute((), (), (), publisher.drain_content())
        _, lists = similarity.get_many(["tent-new"], [OUT_OF_STOCK_ROW])
        held = out_of_stock(lists)
        assert len(held) == 20_000 + (not in_stock) and ("tent-new" in held) is (not in_stock)


def _write_between_head_and_parts(similarity, write) -> None:
    """Make ``write()`` land after the adapter's next read of a head, before its parts."""
    batch_get = similarity.table.batch_get
    pending = [write]

    def interleaved(keys, consistent=False):
        if pending and keys[0]["item_id"]["S"].startswith("#part:"):
            pending.pop()()
        return batch_get(keys, consistent)

    similarity.table.batch_get = interleaved


@pytest.mark.parametrize("consistent", [False, True])
def test_a_write_between_the_head_and_its_parts_is_never_read_half(stored, consistent):
    table, client, similarity = stored
    entries = _entries(20_000)
    similarity.put_list(OUT_OF_STOCK_ROW, PopularList(entries, 0, 0))
    changed = [*entries[:5], *entries[6:]]  # one item back in stock: one part changes
    writer = DynamoSimilarityRepository(DynamoTable(table, client))
    _write_between_head_and_parts(
        similarity, lambda: writer.put_list(OUT_OF_STOCK_ROW, PopularList(changed, 1, 0))
    )
    _, lists = similarity.get_many([], [OUT_OF_STOCK_ROW], consistent)
    assert lists[OUT_OF_STOCK_ROW] == PopularList(changed, 2, 0)  # the new list, whole


def test_a_read_across_a_change_of_layout_gets_the_old_list_whole(stored):
    table, client, similarity = stored
    entries = _entries(20_000)
    similarity.put_list(OUT_OF_STOCK_ROW, PopularList(entries, 0, 0))
    grown = _entries(40_000)  # twice the parts: other rows
    writer = DynamoSimilarityRepository(DynamoTable(table, client))
    _write_between_head_and_parts(
        similarity, lambda: writer.put_list(OUT_OF_STOCK_ROW, PopularList(grown, 1, 0))
    )
    _, lists = similarity.get_many([], [OUT_OF_STOCK_ROW])
    assert lists[OUT_OF_STOCK_ROW] == PopularList(entries, 1, 0)  # a consistent snapshot, if stale
    assert similarity.get_list(OUT_OF_STOCK_ROW) == PopularList(grown, 2, 0)
    head = json.loads(_raw(client, table, OUT_OF_STOCK_ROW)["digests"]["S"])
    assert len(head) == 32


def test_parts_that_never_match_their_head_fail_the_read(stored):
    table, client, similarity = stored
    similarity.put_list(OUT_OF_STOCK_ROW, PopularList(_entries(20_000), 0, 0))
    key = list_part_key(OUT_OF_STOCK_ROW, 3, 16)
    part = _raw(client, table, key)
    assert part is not None
    client.put_item(TableName=table, Item={**part, "digest": {"S": "tampered"}})
    with pytest.raises(ConcurrentUpdateError, match="kept changing"):
        similarity.get_many([], [OUT_OF_STOCK_ROW])


class _Refusing:
    """A client whose TransactWriteItems and PutItem fail with ``error``."""

    def __init__(self, client, error: ClientError) -> None:
        self.client, self.error = client, error

    def __getattr__(self, name):
        return getattr(self.client, name)

    def transact_write_items(self, **_kwargs):
        raise self.error

    def put_item(self, **_kwargs):
        raise self.error


def _cancelled(reason: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
            "CancellationReasons": [{"Code": reason}],
        },
        "TransactWriteItems",
    )


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (_cancelled("ConditionalCheckFailed"), ConcurrentUpdateError),  # lost the race: retry the read
        (_cancelled("TransactionConflict"), ConcurrentUpdateError),
        (_cancelled("ValidationError"), ValueError),  # deterministic: dead-lettered
        (_cancelled("ThrottlingError"), RepositoryError),  # transient: the batch is retried
    ],
)
def test_a_refused_transaction_is_told_apart_by_its_reason(stored, error, raised):
    table, client, _ = stored
    refusing = DynamoSimilarityRepository(DynamoTable(table, _Refusing(client, error)))
    with pytest.raises(raised) as caught:
        refusing.put_list(OUT_OF_STOCK_ROW, PopularList(_entries(20_000), 0, 0))
    assert raised is not RepositoryError or not isinstance(caught.value, ConcurrentUpdateError)


def test_a_one_row_write_meeting_a_transaction_is_a_lost_race(stored):
    table, client, _ = stored
    conflict = ClientError({"Error": {"Code": "TransactionConflictException", "Message": "x"}}, "PutItem")
    refusing = DynamoSimilarityRepository(DynamoTable(table, _Refusing(client, conflict)))
    with pytest.raises(ConcurrentUpdateError):
        refusing.put_list(OUT_OF_STOCK_ROW, PopularList(_entries(3), 0, 0))


def test_a_stock_change_past_every_part_is_dead_lettered_with_its_reason(aws, stored, monkeypatch):
    _, _, similarity = stored
    similarity.put_list(OUT_OF_STOCK_ROW, PopularList(_entries(20_000), 0, 0))
    # Stored in 16 parts of under 60,000 bytes; parts of 30,000 bytes would need 32.
    monkeypatch.setattr(dynamodb, "MAX_LIST_PARTS", 16)
    monkeypatch.setattr(dynamodb, "LIST_PART_BYTES", 30_000)
    ingest = import_handler("ingest")
    assert ingest.lambda_handler(load_event("ingest_catalog_kinesis.json"), FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    sqs = boto3.client("sqs")
    queue = sqs.get_queue_url(QueueName=aws.queues["DeadLetterQueue"].name)["QueueUrl"]
    sqs.purge_queue(QueueUrl=queue)  # the sample's two bad catalog records
    handler = import_handler("similarity")
    assert handler.lambda_handler(load_event("similarity_catalog_kinesis.json"), FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    letters = [
        json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    ]
    # Only the announcement that takes the stove out of stock: the others wrote their rows.
    assert [letter["partition_key"] for letter in letters] == ["camping-stove"]
    assert letters[0]["reason"] == (
        "processing failed: ListTooLargeError: #out_of_stock holds 20,001 entries (580,032 bytes as JSON):"
        " more than 16 rows of 30,000 bytes can take"
    )
    assert len(similarity.get_list(OUT_OF_STOCK_ROW).items) == 20_000
