"""A count row at DynamoDB's 400 KB item limit drops its weakest counts to take a new
partner, instead of refusing the event (on moto; filling a real 400 KB row there takes
minutes, so a client refuses, with DynamoDB's error, writes past a small number of counts)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from streamrec.domain.model import sequence_key
from streamrec.repositories import dynamodb
from streamrec.repositories.base import RepositoryError, guard_attribute
from streamrec.repositories.dynamodb import DynamoCooccurrenceRepository, DynamoTable

SHARD = "shardId-000000000000"
ROW = ("hot-item", 0)


class CountLimitedClient:
    """moto's DynamoDB client, but an UpdateItem that would leave a row with more than
    ``limit`` count attributes is refused the way DynamoDB refuses one past 400 KB."""

    def __init__(self, client: Any, limit: int) -> None:
        self.client = client
        self.limit = limit

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def update_item(self, **kwargs: Any) -> Any:
        stored = self.client.get_item(TableName=kwargs["TableName"], Key=kwargs["Key"], ConsistentRead=True)
        row = stored.get("Item", {})
        counts = {name for name in row if name.startswith(dynamodb.COUNT_PREFIX)}
        if kwargs["UpdateExpression"].startswith("SET"):  # an increment (REMOVE only shrinks)
            guard = row.get(kwargs["ExpressionAttributeNames"]["#g"], {}).get("S")
            if guard is not None and guard >= kwargs["ExpressionAttributeValues"][":first"]["S"]:
                return self.client.update_item(**kwargs)  # its condition fails first, as on DynamoDB
            counts |= {n for n in kwargs["ExpressionAttributeNames"].values() if n.startswith("c:")}
        if len(counts) > self.limit:
            message = "Item size to update has exceeded the maximum allowed size"
            raise ClientError({"Error": {"Code": "ValidationException", "Message": message}}, "UpdateItem")
        return self.client.update_item(**kwargs)


@pytest.fixture
def table(aws):
    return aws.tables["CooccurrenceTable"].name, boto3.client("dynamodb")


def _row(table: tuple[str, Any]) -> dict[str, Any]:
    name, client = table
    key = {"item_id": {"S": ROW[0]}, "block": {"N": str(ROW[1])}}
    return client.get_item(TableName=name, Key=key, ConsistentRead=True)["Item"]


def _counts(table: tuple[str, Any]) -> dict[str, float]:
    return {k[2:]: float(v["N"]) for k, v in _row(table).items() if k.startswith(dynamodb.COUNT_PREFIX)}


def test_a_full_row_drops_its_weakest_quarter_to_take_new_partners(table):
    name, client = table
    counts = DynamoCooccurrenceRepository(DynamoTable(name, CountLimitedClient(client, limit=40)), blocks=16)
    # Record 1 brings partners p00..p39, p<n> with weight n + 1: the row is full.
    counts.apply({ROW: [(sequence_key(1), f"p{n:02d}", n + 1.0) for n in range(40)]}, SHARD)
    # Record 2 adds to a strong partner and brings 5 new ones: 10 (a quarter) of the weakest go.
    fresh = [(sequence_key(2), "p39", 1.0), *((sequence_key(2), f"new{n}", 1.0) for n in range(5))]
    counts.apply({ROW: fresh}, SHARD)
    expected = {f"p{n:02d}": n + 1.0 for n in range(10, 40)} | {f"new{n}": 1.0 for n in range(5)}
    expected["p39"] = 41.0
    assert _counts(table) == expected
    assert _row(table)[guard_attribute(SHARD)]["S"] == sequence_key(2)
    # A re-delivery of both records changes nothing: the guard stayed.
    counts.apply({ROW: [(sequence_key(1), f"p{n:02d}", n + 1.0) for n in range(40)] + fresh}, SHARD)
    assert _counts(table) == expected


def test_a_write_that_pruning_cannot_fit_still_fails_with_dynamodbs_error(table):
    name, client = table
    counts = DynamoCooccurrenceRepository(DynamoTable(name, CountLimitedClient(client, limit=3)), blocks=16)
    with pytest.raises(RepositoryError, match="ValidationException") as raised:
        counts.apply({ROW: [(sequence_key(1), f"p{n}", 1.0) for n in range(5)]}, SHARD)
    assert dynamodb._over_item_limit(raised.value)


def test_other_validation_errors_are_not_taken_for_a_full_row(table):
    name, client = table

    class Refusing(CountLimitedClient):
        def update_item(self, **kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "bad key"}}, "UpdateItem")

    pruned: list[dict] = []
    repository = DynamoCooccurrenceRepository(DynamoTable(name, Refusing(client, limit=3)), blocks=16)
    repository.make_room = pruned.append  # type: ignore[method-assign]
    with pytest.raises(RepositoryError, match="ValidationException"):
        repository.apply({ROW: [(sequence_key(1), "p", 1.0)]}, SHARD)
    assert pruned == []
