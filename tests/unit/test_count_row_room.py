"""A count row at DynamoDB's 400 KB item limit drops its weakest counts to take a new
partner, instead of refusing the event (on moto; filling a real 400 KB row there takes
minutes, so the limit is lowered to a few hundred bytes: a client refuses, with DynamoDB's
error, a write that would take a row past it)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from streamrec.domain.model import sequence_key
from streamrec.repositories import dynamodb
from streamrec.repositories.base import RepositoryError, guard_attribute
from streamrec.repositories.dynamodb import DynamoCooccurrenceRepository, DynamoTable
from streamrec.repositories.item_size import item_size, number_size

SHARD_A = "shardId-000000000000"
SHARD_B = "shardId-000000000001"
ROW = ("hot-item", 0)
WIDE = "x" * 60  # a partner id that takes more than the room left by _fill
KEY = {"item_id": {"S": ROW[0]}, "block": {"N": str(ROW[1])}}
LIMIT = 1_000  # bytes, in place of DynamoDB's 400 KB
TOO_LARGE = "Item size to update has exceeded the maximum allowed size"


class SizeLimitedClient:
    """moto's DynamoDB client, but an UpdateItem that leaves a row over ``LIMIT`` bytes is
    undone and refused with the error DynamoDB gives past 400 KB (a failing condition is
    reported first, as moto evaluates it before writing)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.updates: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def update_item(self, **kwargs: Any) -> Any:
        self.updates.append(kwargs["UpdateExpression"].split()[0])
        key = {"TableName": kwargs["TableName"], "Key": kwargs["Key"], "ConsistentRead": True}
        before = self.client.get_item(**key).get("Item")
        response = self.client.update_item(**kwargs)
        if item_size(self.client.get_item(**key).get("Item")) > LIMIT:
            if before is None:
                self.client.delete_item(TableName=kwargs["TableName"], Key=kwargs["Key"])
            else:
                self.client.put_item(TableName=kwargs["TableName"], Item=before)
            raise ClientError({"Error": {"Code": "ValidationException", "Message": TOO_LARGE}}, "UpdateItem")
        return response


@pytest.fixture
def limited(aws, monkeypatch):
    """A count repository on a size-limited client, and a way to read the row."""
    monkeypatch.setattr(dynamodb, "ITEM_LIMIT_BYTES", LIMIT)
    name, client = aws.tables["CooccurrenceTable"].name, boto3.client("dynamodb")
    limited_client = SizeLimitedClient(client)
    counts = DynamoCooccurrenceRepository(DynamoTable(name, limited_client), blocks=16)

    def row() -> dict[str, Any]:
        return client.get_item(TableName=name, Key=KEY, ConsistentRead=True)["Item"]

    return counts, limited_client, row


def _counts(row: dict[str, Any]) -> dict[str, float]:
    return {k[2:]: float(v["N"]) for k, v in row.items() if k.startswith(dynamodb.COUNT_PREFIX)}


def _fill(counts: DynamoCooccurrenceRepository, row) -> list:
    """Record 1 of shard A: partners p00-…, p01-…, ... with weights 1, 2, ... until the row
    is within 50 bytes of the limit (some 30 partners of 30 bytes: moto's expression parser
    recurses once per ADD)."""
    deltas, n = [], 0
    while item_size(_row_of(deltas)) < LIMIT - 50:
        deltas.append((sequence_key(1), f"p{n:02d}-{'x' * 20}", n + 1.0))
        n += 1
    counts.apply({ROW: deltas}, SHARD_A)
    assert item_size(row()) > LIMIT * dynamodb.ROOM_CHECK_SHARE
    return deltas


def _row_of(deltas: list) -> dict[str, Any]:
    """The row those deltas would make (key, shard A's guard and the counts)."""
    item = {**KEY, guard_attribute(SHARD_A): {"S": sequence_key(1)}}
    return item | {f"c:{name}": {"N": repr(value)} for _seq, name, value in deltas}


def test_a_full_row_drops_its_weakest_counts_to_take_new_partners(limited):
    counts, client, row = limited
    first = _fill(counts, row)
    before = _counts(row())
    # Record 2 adds to the strongest partner and brings 5 new ones: the row is refused, the
    # weakest counts go until it is at 75 % of the limit, and the write goes through.
    fresh = [(sequence_key(2), first[-1][1], 1.0), *((sequence_key(2), f"new{n}", 1.0) for n in range(5))]
    counts.apply({ROW: fresh}, SHARD_A)
    after = _counts(row())
    removed = sorted(set(before) - set(after))
    assert removed == [name for _seq, name, _value in first[: len(removed)]]  # the weakest
    assert 0 < len(removed) < len(before) // 2
    assert {f"new{n}" for n in range(5)} <= set(after)
    assert after[first[-1][1]] == first[-1][2] + 1.0
    assert client.updates.count("REMOVE") == 1
    assert row()[guard_attribute(SHARD_A)]["S"] == sequence_key(2)
    # A re-delivery of both records changes nothing: the guard stayed.
    counts.apply({ROW: first + fresh}, SHARD_A)
    assert _counts(row()) == after


def test_writers_of_two_shards_refused_together_prune_once(limited):
    counts, client, row = limited
    _fill(counts, row)
    from_b = [(sequence_key(7), f"newB-{WIDE}", 1.0)]
    real_make_room = counts.make_room

    def b_gets_there_first(key: dict[str, Any], keep: frozenset[str], at_item_limit: bool = False) -> None:
        # Shard B, refused at the same moment, makes room and writes before A looks.
        counts.make_room = real_make_room  # type: ignore[method-assign]
        counts.apply({ROW: from_b}, SHARD_B)
        real_make_room(key, keep, at_item_limit)

    counts.make_room = b_gets_there_first  # type: ignore[method-assign]
    counts.apply({ROW: [(sequence_key(2), f"newA-{WIDE}", 1.0)]}, SHARD_A)
    after = _counts(row())
    assert after[f"newA-{WIDE}"] == 1.0 and after[f"newB-{WIDE}"] == 1.0  # A did not prune B's
    assert client.updates.count("REMOVE") == 1  # A found the room B made
    assert row()[guard_attribute(SHARD_B)]["S"] == sequence_key(7)


def test_many_removals_are_sent_in_chunks(limited, monkeypatch):
    counts, client, row = limited
    monkeypatch.setattr(dynamodb, "MAX_REMOVES_PER_UPDATE", 3)
    _fill(counts, row)
    removable = len(_counts(row()))
    counts.apply({ROW: [(sequence_key(2), f"new-{WIDE}", 1.0)]}, SHARD_A)
    removed = removable + 1 - len(_counts(row()))
    assert removed > 3 and client.updates.count("REMOVE") == -(-removed // 3)


def test_a_write_that_pruning_cannot_fit_still_fails_with_dynamodbs_error(limited):
    counts, client, _row = limited
    too_many = [(sequence_key(1), f"partner-{n:02d}-{'x' * 20}", 1.0) for n in range(40)]  # > LIMIT alone
    with pytest.raises(RepositoryError, match="ValidationException") as raised:
        counts.apply({ROW: too_many}, SHARD_A)
    assert dynamodb._over_item_limit(raised.value)
    assert client.updates == ["SET"] * (dynamodb.MAKE_ROOM_ATTEMPTS + 1)  # no row: nothing to remove


def test_a_write_refused_at_the_item_limit_makes_room_though_the_counts_are_within_a_budget(
    limited, aws, monkeypatch
):
    # The item limit (1,000 bytes here) leaves more room than the 280-byte budget beside
    # ~600 bytes of guards; the counts are within the budget, but the row cannot take 4 new
    # partners: at the item limit the counts give way, whatever the budget says.
    _counts_repository, client, row = limited
    counts = DynamoCooccurrenceRepository(
        DynamoTable(aws.tables["CooccurrenceTable"].name, client), blocks=16, budget_bytes=280
    )
    long_sequence = 49600000000000000000000000000000000000000000000000000000
    for shard in range(7):
        partner = [(sequence_key(long_sequence), f"p{shard}-{'x' * 30}", 10.0 + shard)]
        counts.apply({ROW: partner}, f"shardId-{shard:012d}")
    assert (
        0.9 * 280 <= sum(len(k) + number_size(v["N"]) for k, v in row().items() if k.startswith("c:")) <= 280
    )
    fresh = [(sequence_key(long_sequence + 1), f"new{n}-{'y' * 30}", 1.0) for n in range(4)]
    counts.apply({ROW: fresh}, SHARD_A)
    assert {f"new{n}-{'y' * 30}" for n in range(4)} <= set(_counts(row()))
    assert client.updates.count("REMOVE") == 1


@pytest.mark.parametrize(
    "message", ["Invalid UpdateExpression: Expression size has exceeded the maximum allowed size", "bad key"]
)
def test_other_validation_errors_are_not_taken_for_a_full_row(aws, message):
    name, client = aws.tables["CooccurrenceTable"].name, boto3.client("dynamodb")

    class Refusing(SizeLimitedClient):
        def update_item(self, **kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": message}}, "UpdateItem")

    rooms: list[dict] = []
    repository = DynamoCooccurrenceRepository(DynamoTable(name, Refusing(client)), blocks=16)
    repository.make_room = lambda key, keep: rooms.append(key)  # type: ignore[method-assign]
    with pytest.raises(RepositoryError, match="ValidationException"):
        repository.apply({ROW: [(sequence_key(1), "p", 1.0)]}, SHARD_A)
    assert rooms == []


class MeteredClient:
    """moto's DynamoDB client, but an UpdateItem asked for its consumed capacity reports
    what DynamoDB bills (1 unit per started KB of the row's larger image; moto says 0.5)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.updates: list[str] = []
        self.units: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def update_item(self, **kwargs: Any) -> Any:
        self.updates.append(kwargs["UpdateExpression"].split()[0])
        key = {"TableName": kwargs["TableName"], "Key": kwargs["Key"], "ConsistentRead": True}
        before = item_size(self.client.get_item(**key).get("Item"))
        response = dict(self.client.update_item(**kwargs))
        if kwargs.get("ReturnConsumedCapacity") == "TOTAL":
            after = item_size(self.client.get_item(**key).get("Item"))
            units = max(1, -(-max(before, after) // 1024))
            self.units.append(units)
            response["ConsumedCapacity"] = {"TableName": kwargs["TableName"], "CapacityUnits": float(units)}
        return response


def test_a_row_over_its_budget_is_trimmed_after_the_write_that_found_it(aws):
    name, client = aws.tables["CooccurrenceTable"].name, boto3.client("dynamodb")
    metered = MeteredClient(client)
    budget = 2 * 1024
    counts = DynamoCooccurrenceRepository(DynamoTable(name, metered), blocks=16, budget_bytes=budget)

    def row() -> dict[str, Any]:
        return client.get_item(TableName=name, Key=KEY, ConsistentRead=True)["Item"]

    # Record n brings 10 partners of weight n: the row grows by ~400 bytes a record.
    for n in range(1, 11):
        deltas = [(sequence_key(n), f"r{n:02d}-p{m}-{'x' * 20}", float(n)) for m in range(10)]
        counts.apply({ROW: deltas}, SHARD_A)
        assert item_size(row()) <= budget, n  # trimmed whenever a write found it over
    # No write billed more than the budget's units and the one record that crossed it.
    assert max(metered.units) == 3 and metered.updates.count("REMOVE") >= 2
    kept = _counts(row())
    assert item_size(row()) <= budget
    # The weakest (earliest, lightest) partners went; the latest record's are all there.
    assert {f"r10-p{m}-{'x' * 20}" for m in range(10)} <= set(kept)
    assert not any(name.startswith("r01-") for name in kept)
    assert row()[guard_attribute(SHARD_A)]["S"] == sequence_key(10)
    # A re-delivery changes nothing (the guard), and writes nothing to trim.
    removes = metered.updates.count("REMOVE")
    counts.apply({ROW: [(sequence_key(10), f"r10-p0-{'x' * 20}", 10.0)]}, SHARD_A)
    assert _counts(row()) == kept and metered.updates.count("REMOVE") == removes


def test_without_a_budget_no_capacity_is_asked_for_and_nothing_is_trimmed(aws):
    name, client = aws.tables["CooccurrenceTable"].name, boto3.client("dynamodb")
    metered = MeteredClient(client)
    counts = DynamoCooccurrenceRepository(DynamoTable(name, metered), blocks=16)
    for n in range(1, 11):
        counts.apply({ROW: [(sequence_key(n), f"r{n:02d}-p{m}-{'x' * 20}", 1.0) for m in range(10)]}, SHARD_A)
    assert metered.units == [] and "REMOVE" not in metered.updates
    assert len(_counts(client.get_item(TableName=name, Key=KEY, ConsistentRead=True)["Item"])) == 100


def test_the_ingest_gets_the_budget_of_its_settings(monkeypatch):
    from streamrec import wiring
    from streamrec.settings import Settings

    tables = {
        "users_table": "u",
        "cooccurrence_table": "c",
        "item_stats_table": "s",
        "changed_items_stream": "x",
    }
    monkeypatch.setattr(wiring, "KinesisChangePublisher", lambda stream, client: None)
    monkeypatch.setattr(wiring, "stream_client", lambda service: None)
    assert Settings().count_row_budget_kb == 16
    ingest = wiring.ingest_service(Settings(**tables), client=object())
    assert ingest.cooccurrence.budget_bytes == 16 * 1024  # type: ignore[attr-defined]
    unbounded = wiring.ingest_service(Settings(**tables, count_row_budget_kb=0), client=object())
    assert unbounded.cooccurrence.budget_bytes is None  # type: ignore[attr-defined]


def _metered_counts(aws, budget: int) -> tuple[DynamoCooccurrenceRepository, MeteredClient, Any]:
    name, client = aws.tables["CooccurrenceTable"].name, boto3.client("dynamodb")
    metered = MeteredClient(client)
    counts = DynamoCooccurrenceRepository(DynamoTable(name, metered), blocks=16, budget_bytes=budget)

    def row() -> dict[str, Any]:
        return client.get_item(TableName=name, Key=KEY, ConsistentRead=True)["Item"]

    return counts, metered, row


def test_a_partner_seen_in_every_batch_outgrows_the_rows_long_held_counts(aws):
    # 63 old partners of count 30 take some 80 % of the row, so a trim must remove more than
    # the newcomers. Each record brings "steady" and 3 one-off partners: without sparing the
    # counts the triggering write added to, "steady" (below 30) would go at every trim.
    counts, metered, row = _metered_counts(aws, 2048)
    counts.apply({ROW: [(sequence_key(1), f"old{n:02d}-{'x' * 15}", 30.0) for n in range(63)]}, SHARD_A)
    for n in range(2, 40):
        fresh = [
            (sequence_key(n), "steady", 1.0),
            *((sequence_key(n), f"once{n}-{m}", 1.0) for m in range(3)),
        ]
        counts.apply({ROW: fresh}, SHARD_A)
    kept = _counts(row())
    assert metered.updates.count("REMOVE") >= 2 and sum(name.startswith("old") for name in kept) < 63
    assert kept["steady"] == 38.0


def test_equal_counts_are_not_trimmed_by_id(aws):
    counts, metered, row = _metered_counts(aws, 4096)
    # 150 partners of count 1 in 5 records (moto's parser recurses once per ADD): the last
    # takes the row over 4 KB, and the trim takes some of the first 120, which tie.
    for record in range(5):
        partners = [
            (sequence_key(record + 1), f"p{n:03d}-{'x' * 20}", 1.0)
            for n in range(30 * record, 30 * record + 30)
        ]
        counts.apply({ROW: partners}, SHARD_A)
    removed = {f"p{n:03d}-{'x' * 20}" for n in range(150)} - set(_counts(row()))
    assert metered.updates.count("REMOVE") == 1 and 10 < len(removed) < 100
    lowest = {f"p{n:03d}-{'x' * 20}" for n in range(len(removed))}
    assert len(removed & lowest) < len(removed) * 0.6  # not the lowest ids


def test_a_trim_that_fails_leaves_the_write_done_and_the_next_write_trims(aws):
    counts, metered, row = _metered_counts(aws, 4096)
    real_get = metered.client.get_item
    refused = []

    def throttled_get_item(**kwargs: Any) -> Any:
        if kwargs.get("ConsistentRead") and not refused and kwargs.get("ProjectionExpression") is None:
            refused.append(kwargs)
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetItem")
        return real_get(**kwargs)

    for record in range(4):
        partners = [
            (sequence_key(record + 1), f"p{n:03d}-{'x' * 20}", 1.0)
            for n in range(30 * record, 30 * record + 30)
        ]
        counts.apply({ROW: partners}, SHARD_A)
    metered.get_item = throttled_get_item  # type: ignore[method-assign]
    last = [(sequence_key(5), f"p{n:03d}-{'x' * 20}", 1.0) for n in range(120, 150)]
    counts.apply({ROW: last}, SHARD_A)  # the write is done; its trim is refused
    assert refused and len(_counts(row())) == 150 and "REMOVE" not in metered.updates
    counts.apply({ROW: [(sequence_key(6), "next", 1.0)]}, SHARD_A)
    assert metered.updates.count("REMOVE") == 1 and item_size(row()) <= 4096


def _count_bytes(row: dict[str, Any]) -> int:
    return sum(
        len(name.encode()) + number_size(value["N"]) for name, value in row.items() if name.startswith("c:")
    )


def test_the_budget_is_for_counts_and_a_row_of_many_shards_keeps_them(aws):
    # A row written from 60 shards over its life (re-shardings bring new shard ids) holds
    # some 4.8 KB of replay guards, more than a 4 KB budget: guards are never removed, so
    # measured with them every trim took every count, even the ones just written.
    counts, metered, row = _metered_counts(aws, 4096)
    reads: list[dict[str, Any]] = []
    real_get = metered.client.get_item

    def counted_get_item(**kwargs: Any) -> Any:
        if kwargs.get("ProjectionExpression") is None:  # make_room's whole-row read
            reads.append(kwargs)
        return real_get(**kwargs)

    metered.get_item = counted_get_item  # type: ignore[method-assign]
    long_sequence = 49600000000000000000000000000000000000000000000000000000
    for shard in range(60):
        counts.apply(
            {ROW: [(sequence_key(long_sequence + 1), f"strong-{shard:02d}", 50.0)]}, f"shardId-{shard:012d}"
        )
    assert item_size(row()) > 4096 + 600
    assert len(_counts(row())) == 60 and "REMOVE" not in metered.updates
    # Found over the budget with its counts within it, the row's overhead is remembered:
    # the next writes are not followed by a read each.
    reads.clear()
    for n in range(2, 22):
        counts.apply({ROW: [(sequence_key(long_sequence + n), "fresh", 1.0)]}, SHARD_A)
    assert len(reads) <= 1 and _counts(row())["fresh"] == 20.0
    # Counts that do outgrow the budget lose the weakest down to 3/4 of it; the guards stay.
    for n in range(22, 40):
        partners = [(sequence_key(long_sequence + n), f"late{n}-{m}-{'x' * 20}", 1.0) for m in range(10)]
        counts.apply({ROW: partners}, SHARD_A)
        assert _count_bytes(row()) <= 4096 + 1024, n  # within a KB: writes bill started KB
    kept = _counts(row())
    assert "REMOVE" in metered.updates and all(f"strong-{shard:02d}" in kept for shard in range(60))
    assert sum(name.startswith("s#") for name in row()) == 60


def test_counts_within_the_budget_are_not_trimmed_for_guard_bytes(aws):
    # 95 partners take ~3.8 KB of a 4 KB budget; 20 new shards then add only guards (~81
    # bytes each), taking the row over the budget: its counts, within it, all stay.
    counts, metered, row = _metered_counts(aws, 4096)
    long_sequence = 49600000000000000000000000000000000000000000000000000000
    first = [(sequence_key(long_sequence), f"p{n:02d}-{'x' * 32}", 1.0) for n in range(95)]
    counts.apply({ROW: first}, SHARD_A)
    before = _counts(row())
    assert 4096 * 0.9 < _count_bytes(row()) <= 4096
    for shard in range(1, 21):
        again = [(sequence_key(long_sequence + 1), "p00-" + "x" * 32, 1.0)]
        counts.apply({ROW: again}, f"shardId-{shard:012d}")
    assert item_size(row()) > 4096 + 1024 and "REMOVE" not in metered.updates
    assert set(_counts(row())) == set(before) and _counts(row())["p00-" + "x" * 32] == 21.0


def test_counts_a_taken_back_basket_left_at_or_below_zero_are_trimmed_first(aws):
    # A removal's -1 on a pair trimmed before recreates it at -1, and an add and its removal
    # in one batch leave 0: worth nothing, they go before any real count, kept or not.
    name, client = aws.tables["CooccurrenceTable"].name, boto3.client("dynamodb")
    metered = MeteredClient(client)
    budget = 2 * 1024
    counts = DynamoCooccurrenceRepository(DynamoTable(name, metered), blocks=16, budget_bytes=budget)
    for n in range(1, 10):
        deltas = [(sequence_key(n), f"r{n:02d}-p{m}-{'x' * 20}", float(5 + n)) for m in range(10)]
        counts.apply({ROW: deltas}, SHARD_A)
    # One more record takes the row over its budget: two strong partners, a -1 and a 0.
    counts.apply(
        {
            ROW: [
                *((sequence_key(20), f"strong-{m}-{'x' * 20}", 50.0) for m in range(20)),
                (sequence_key(20), f"gone-{'x' * 20}", -1.0),
                (sequence_key(20), f"swap-{'x' * 20}", 1.0),
                (sequence_key(21), f"swap-{'x' * 20}", -1.0),
            ]
        },
        SHARD_A,
    )
    kept = _counts(client.get_item(TableName=name, Key=KEY, ConsistentRead=True)["Item"])
    assert f"gone-{'x' * 20}" not in kept and f"swap-{'x' * 20}" not in kept
    assert {f"strong-{m}-{'x' * 20}" for m in range(20)} <= set(kept)
    assert all(value > 0 for value in kept.values())
