"""User rows kept ``UserRetentionDays`` after their last write ("Privacy" in
docs/reliability-and-security.md): stamped with DynamoDB's TTL attribute, and read as no
row once past it, before DynamoDB's TTL gets round to deleting them."""

from __future__ import annotations

import json

import boto3
import pytest

from streamrec.domain.ingest import IngestService, SequencedEvent
from streamrec.domain.model import sequence_key
from streamrec.events import parse_event
from streamrec.repositories.dynamodb import (
    USER_EXPIRY,
    DynamoCooccurrenceRepository,
    DynamoItemStatsRepository,
    DynamoTable,
    DynamoUserRepository,
)
from streamrec.repositories.memory import InMemoryChangePublisher
from streamrec.settings import ConfigurationError, Settings, load_settings
from tests.unit.conftest import FakeLambdaContext, import_handler, load_event

NOW = 1_800_000_000.0
DAY = 86_400


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def _ingest(aws, users: DynamoUserRepository, user: str, n: int, at: float) -> None:
    client = users.table.client
    service = IngestService(
        Settings(),
        users,
        DynamoCooccurrenceRepository(DynamoTable(aws.tables["CooccurrenceTable"].name, client), 16),
        DynamoItemStatsRepository(DynamoTable(aws.tables["ItemStatsTable"].name, client)),
        InMemoryChangePublisher(),
    )
    event = {"event_id": f"e{n}", "event_type": "view", "user_id": user, "item_id": f"i{n}", "timestamp": at}
    service.ingest([SequencedEvent(sequence_key(n), parse_event(event))], "shardId-000000000000")


def test_a_user_row_expires_its_retention_after_its_last_write(aws):
    clock = Clock()
    client = boto3.client("dynamodb")
    users = DynamoUserRepository(DynamoTable(aws.tables["UsersTable"].name, client), 30, clock=clock)
    _ingest(aws, users, "u1", 1, 1_764_000_000)
    row = client.get_item(TableName=aws.tables["UsersTable"].name, Key={"user_id": {"S": "u1"}})["Item"]
    assert row[USER_EXPIRY] == {"N": str(int(NOW + 30 * DAY))}
    assert users.get("u1") is not None

    clock.now = NOW + 30 * DAY  # past its time, not yet deleted by DynamoDB
    assert users.get("u1") is None  # the API: an unknown user
    (fresh,) = users.get_many(["u1"]).values()  # the ingest: a fresh state, the row's version
    assert not fresh.items and fresh.version == 1
    _ingest(aws, users, "u1", 2, 1_764_000_100)  # the user comes back: written over, not a conflict
    back = users.get("u1")
    assert back is not None and [e.item_id for e in back.items] == ["i2"]
    row = client.get_item(TableName=aws.tables["UsersTable"].name, Key={"user_id": {"S": "u1"}})["Item"]
    assert row[USER_EXPIRY] == {"N": str(int(clock.now + 30 * DAY))}


def test_without_a_retention_rows_carry_no_expiry(aws):
    client = boto3.client("dynamodb")
    users = DynamoUserRepository(DynamoTable(aws.tables["UsersTable"].name, client))
    _ingest(aws, users, "u2", 1, 1_764_000_000)
    row = client.get_item(TableName=aws.tables["UsersTable"].name, Key={"user_id": {"S": "u2"}})["Item"]
    assert USER_EXPIRY not in row


def test_the_functions_take_the_retention_from_the_template(aws, monkeypatch):
    # The template passes UserRetentionDays to every function as USER_RETENTION_DAYS.
    assert aws.merged_environment()["USER_RETENTION_DAYS"] == "0"
    monkeypatch.setenv("USER_RETENTION_DAYS", "7")
    ingest = import_handler("ingest")
    ingest.lambda_handler(load_event("ingest_kinesis.json"), FakeLambdaContext())
    rows = boto3.client("dynamodb").scan(TableName=aws.tables["UsersTable"].name)["Items"]
    assert rows and all(USER_EXPIRY in row for row in rows)
    api = import_handler("api")
    user = rows[0]["user_id"]["S"]
    event = load_event("api_profile.json")
    event["pathParameters"] = {"user_id": user}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/users/{user}/profile"
    body = json.loads(api.lambda_handler(event, FakeLambdaContext())["body"])
    assert body["known"] is True


def test_user_retention_days_is_checked_at_cold_start():
    assert load_settings({"USER_RETENTION_DAYS": "365"}).user_retention_days == 365
    for bad in ("-1", "3651", "1.5"):
        with pytest.raises(ConfigurationError, match="USER_RETENTION_DAYS"):
            load_settings({"USER_RETENTION_DAYS": bad})
