"""moto's DynamoDB and Kinesis backends are serialised by ``moto_fixes.apply`` (the local
pipelines call them from many threads; unserialised, racing writes to new item keys lost
rows: 4 of 32,000 under 16 threads)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from moto.dynamodb.models.table import Table
from moto.kinesis.models import Shard

from streamrec.local import moto_fixes


@pytest.fixture
def serialised(aws: Any) -> None:
    """moto in-process (the ``aws`` fixture) with the fixes applied."""
    moto_fixes.apply()


def _recording(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> list[bool]:
    """Wrap ``owner.name`` (below the backend) to record whether the lock is held in it."""
    held: list[bool] = []
    original = getattr(owner, name)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        held.append(moto_fixes._BACKEND_LOCK._is_owned())  # type: ignore[attr-defined]
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, recorded)
    return held


def test_dynamodb_item_writes_hold_the_backend_lock(
    serialised: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = boto3.client("dynamodb")
    client.create_table(
        TableName="rows",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "item_id", "AttributeType": "S"},
            {"AttributeName": "block", "AttributeType": "N"},
        ],
        KeySchema=[
            {"AttributeName": "item_id", "KeyType": "HASH"},
            {"AttributeName": "block", "KeyType": "RANGE"},
        ],
    )
    held = _recording(monkeypatch, Table, "put_item")

    def write(block: int) -> None:
        client.update_item(
            TableName="rows",
            Key={"item_id": {"S": "new-item"}, "block": {"N": str(block)}},
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(16)))
    client.put_item(TableName="rows", Item={"item_id": {"S": "other"}, "block": {"N": "0"}})

    assert len(held) == 17 and all(held)
    rows = client.query(
        TableName="rows",
        KeyConditionExpression="item_id = :i",
        ExpressionAttributeValues={":i": {"S": "new-item"}},
    )["Items"]
    assert sorted(int(r["block"]["N"]) for r in rows) == list(range(16))


def test_kinesis_puts_hold_the_backend_lock(serialised: None, monkeypatch: pytest.MonkeyPatch) -> None:
    client = boto3.client("kinesis")
    client.create_stream(StreamName="events", ShardCount=1)
    held = _recording(monkeypatch, Shard, "put_record")

    def put(n: int) -> None:
        records = [{"Data": f"{n}-{i}".encode(), "PartitionKey": "p"} for i in range(5)]
        client.put_records(StreamName="events", Records=records)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(put, range(8)))

    assert len(held) == 40 and all(held)
    (shard,) = client.list_shards(StreamName="events")["Shards"]
    iterator = client.get_shard_iterator(
        StreamName="events", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = client.get_records(ShardIterator=iterator, Limit=100)["Records"]
    assert len({r["SequenceNumber"] for r in records}) == 40


def test_apply_twice_wraps_once(serialised: None) -> None:
    from moto.dynamodb.models import DynamoDBBackend

    wrapped = DynamoDBBackend.put_item
    moto_fixes.apply()
    assert DynamoDBBackend.put_item is wrapped
    assert wrapped.__wrapped__.__name__ == "put_item"  # type: ignore[attr-defined]
