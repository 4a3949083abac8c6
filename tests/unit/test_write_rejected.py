"""A user event whose write DynamoDB keeps rejecting (e.g. a count row over the 400 KB item
limit even after removing its weakest counts) is dead-lettered as "write rejected": some of
its count rows may already hold its increments, so `dlq redrive` keeps it unless told to
re-drive it anyway."""

from __future__ import annotations

import base64
import json
import threading

import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

from streamrec.concurrency import concurrently
from streamrec.domain.ingest import IngestService
from streamrec.events import parse_record
from streamrec.observability import logger
from streamrec.reliability.dlq import Letter
from streamrec.repositories.base import RefusedForGoodError, RepositoryError
from streamrec.repositories.memory import (
    InMemoryChangePublisher,
    InMemoryCooccurrenceRepository,
    InMemoryDeadLetterSink,
    InMemoryItemStatsRepository,
    InMemoryUserRepository,
)
from streamrec.settings import Settings
from streamrec.stream import PROCESSING_FAILED, WRITE_REJECTED, ingest_records, is_transient, process_batch

T0 = 1_764_000_000


class RowTooLarge(InMemoryCooccurrenceRepository):
    """Writes every row but those of ``full`` items, then fails as DynamoDB does for an
    update that would take an item past 400 KB (the other rows stay written)."""

    def __init__(self, full: set[str]) -> None:
        super().__init__()
        self.full = full

    def apply(self, deltas, shard):
        super().apply({key: d for key, d in deltas.items() if key[0] not in self.full}, shard)
        if any(item in self.full for item, _ in deltas):
            cause = ClientError(
                {"Error": {"Code": "ValidationException", "Message": "Item size has exceeded the maximum"}},
                "UpdateItem",
            )
            raise RepositoryError("update_item failed") from cause


def _record(sequence: int, event: dict) -> dict:
    return {
        "eventSource": "aws:kinesis",
        "eventID": f"shardId-000000000000:{sequence}",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/events",
        "kinesis": {
            "sequenceNumber": str(sequence),
            "partitionKey": event.get("user_id", "x"),
            "data": base64.b64encode(json.dumps(event).encode()).decode(),
            "kinesisSchemaVersion": "1.0",
            "approximateArrivalTimestamp": T0 + 3600.0,  # put on the stream after its events
        },
    }


def _view(n: int, user: str, item: str) -> dict:
    return {"event_id": f"e{n}", "event_type": "view", "user_id": user, "item_id": item, "timestamp": T0 + n}


def _ingest(cooccurrence=None, catalog=None) -> IngestService:
    return IngestService(
        Settings(),
        InMemoryUserRepository(),
        cooccurrence or InMemoryCooccurrenceRepository(),
        InMemoryItemStatsRepository(),
        InMemoryChangePublisher(),
        catalog=catalog,
    )


def _letter(letter) -> Letter:
    body = {
        "reason": letter.reason,
        "source": letter.source,
        "shard": letter.shard,
        "sequence_number": letter.sequence_number,
        "partition_key": letter.partition_key,
        "data": letter.data,
    }
    return Letter("m1", "r1", json.dumps(body), body)


def test_a_rejected_write_is_dead_lettered_as_partly_written_and_not_redriven_by_default():
    counts = RowTooLarge(full={"Y"})
    service = _ingest(counts)
    sink = InMemoryDeadLetterSink()
    # u1 views X then Y: the pair's row of X is written, Y's is rejected. u2's views of A
    # and B share the batch and must be applied whole.
    events = [_view(1, "u1", "X"), _view(2, "u2", "A"), _view(3, "u1", "Y"), _view(4, "u2", "B")]
    batch = {"Records": [_record(100 + n, e) for n, e in enumerate(events)]}
    processor = BatchProcessor(event_type=EventType.KinesisDataStreams)

    response = process_batch(batch, None, processor, parse_record, ingest_records(service), sink)

    assert response == {"batchItemFailures": []}
    [letter] = sink.letters
    assert letter.sequence_number == "102"
    assert letter.reason.startswith(WRITE_REJECTED) and "could count them twice" in letter.reason
    # What makes a re-drive unsafe: X's row holds the Y pair, u1's row does not hold e3.
    assert counts.get_rows(["X"])["X"] == {"Y": 1.0}
    assert [entry.item_id for entry in service.users.get("u1").items] == ["X"]
    assert counts.get_rows(["A", "B"]) == {"A": {"B": 1.0}, "B": {"A": 1.0}}

    assert Letter.redrivable(_letter(letter)) == (
        False,
        "some of its counts may be written: a re-drive could count them twice",
    )
    assert _letter(letter).redrivable(include_partly_written=True) == (True, "")


@pytest.mark.parametrize("alone", [False, True], ids=["in-a-batch", "alone"])
def test_a_planning_failure_is_still_processing_failed_and_redriven(monkeypatch, alone):
    # Also alone: Lambda's own bisection can hand the function a batch of that one record.
    # Found by replaying the pure planning (nothing of it written): safe to re-drive.
    from streamrec.domain import ingest

    original = ingest.plan_batch

    def plan_batch(stored, events, *args, **kwargs):
        events = list(events)
        if any(sequenced.event.item_id == "Z" for sequenced in events):
            raise ValueError("a bug hit by item Z")
        return original(stored, events, *args, **kwargs)

    monkeypatch.setattr(ingest, "plan_batch", plan_batch)
    service = _ingest()
    sink = InMemoryDeadLetterSink()
    records = [_record(200, _view(1, "u1", "X")), _record(201, _view(2, "u1", "Z"))]
    batch = {"Records": records[1:] if alone else records}
    processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
    process_batch(batch, None, processor, parse_record, ingest_records(service), sink)
    [letter] = sink.letters
    assert letter.sequence_number == "201" and letter.reason.startswith(PROCESSING_FAILED)
    assert _letter(letter).redrivable() == (True, "")
    if not alone:
        assert [entry.item_id for entry in service.users.get("u1").items] == ["X"]


def test_a_record_that_keeps_failing_logs_where_it_failed_once_per_isolation(monkeypatch, caplog):
    # After a faulty deploy every record is dead-lettered with the message alone: the log
    # must hold the traceback, once (not once per record).
    from streamrec.domain import ingest

    def plan_batch(stored, events, *args, **kwargs):
        raise AttributeError("'NoneType' object has no attribute 'items'")

    monkeypatch.setattr(ingest, "plan_batch", plan_batch)
    sink = InMemoryDeadLetterSink()
    batch = {"Records": [_record(300 + n, _view(n, f"u{n}", "X")) for n in range(3)]}
    processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
    process_batch(batch, None, processor, parse_record, ingest_records(_ingest()), sink)
    assert len(sink.letters) == 3
    failures = [r for r in caplog.records if r.getMessage().startswith("record processing keeps failing")]
    assert len(failures) == 3
    traces = [r.exc_info for r in failures if r.exc_info]
    assert len(traces) == 1
    assert traces[0][0] is AttributeError and traces[0][2].tb_next is not None  # a traceback


def test_records_whose_writes_keep_failing_log_one_traceback_per_invocation(caplog):
    # Isolated by bisection, one record at a time: still one traceback, not one per record.
    counts = RowTooLarge(full=set())
    service = _ingest(counts)
    sink = InMemoryDeadLetterSink()
    processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
    seen_before = {"Records": [_record(400 + n, _view(n, f"u{n}", "A")) for n in range(4)]}
    process_batch(seen_before, None, processor, parse_record, ingest_records(service), sink)
    counts.full = {f"I{n}" for n in range(4)}  # each user's next view pairs I<n> with A
    batch = {"Records": [_record(410 + n, _view(10 + n, f"u{n}", f"I{n}")) for n in range(4)]}
    process_batch(batch, None, processor, parse_record, ingest_records(service), sink)
    assert len(sink.letters) == 4
    failures = [r for r in caplog.records if r.getMessage().startswith("record processing keeps failing")]
    assert len(failures) == 4 and sum(bool(r.exc_info) for r in failures) == 1


def test_a_batch_that_fails_for_a_retry_logs_its_shard_and_sequences(log_lines):
    # Throttled after the client's retries: Lambda retries the batch; the log must say which.
    class Throttled(InMemoryCooccurrenceRepository):
        def apply(self, deltas, shard):
            cause = ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem"
            )
            raise RepositoryError("update_item on counts failed: ThrottlingException") from cause

    batch = {"Records": [_record(500 + n, _view(n, "u1", f"I{n}")) for n in range(3)]}
    processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
    with pytest.raises(RepositoryError):
        process_batch(
            batch,
            None,
            processor,
            parse_record,
            ingest_records(_ingest(Throttled())),
            InMemoryDeadLetterSink(),
        )
    [failed] = [line for line in log_lines() if line["message"] == "batch failed; Lambda retries it"]
    assert "ThrottlingException" in failed["error"] and "exception" not in failed
    assert (failed["shard"], failed["first_sequence"], failed["last_sequence"], failed["batch_size"]) == (
        "shardId-000000000000",
        "500",
        "502",
        3,
    )
    # Only while the batch is processed, and only in its thread (and the threads it starts):
    # the local stack runs the API and both stream functions in one process, and their lines
    # must not carry another's batch.
    logger.info("a line after the batch")
    elsewhere = threading.Thread(target=lambda: logger.info("another function's line"))
    batch_running = threading.Event()

    class Pausing(InMemoryCooccurrenceRepository):
        def apply(self, deltas, shard):
            elsewhere.start()
            elsewhere.join()
            batch_running.set()
            super().apply(deltas, shard)

    process_batch(
        {"Records": [_record(510, _view(0, "u1", "A"))]},
        None,
        processor,
        parse_record,
        ingest_records(_ingest(Pausing())),
        InMemoryDeadLetterSink(),
    )
    assert batch_running.is_set()
    lines = {line["message"]: line for line in log_lines()}
    assert "shard" not in lines["a line after the batch"]
    assert "shard" not in lines["another function's line"]
    assert lines["ingested batch"]["first_sequence"] == "510"


def test_storage_lines_logged_by_worker_threads_during_a_batch_name_the_batch(log_lines):
    # A count row at its size limit or over its budget is logged from one of the storage's
    # worker threads (concurrently()): it names the batch like the batch's own lines.
    class Warning(InMemoryCooccurrenceRepository):
        def apply(self, deltas, shard):
            concurrently(
                lambda item: logger.warning("a row over its budget", extra={"row": item}), ["A", "B"], 2
            )
            super().apply(deltas, shard)

    batch = {"Records": [_record(520 + n, _view(n, "u1", f"I{n}")) for n in range(2)]}
    processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
    process_batch(
        batch, None, processor, parse_record, ingest_records(_ingest(Warning())), InMemoryDeadLetterSink()
    )
    warnings = [line for line in log_lines() if line["message"] == "a row over its budget"]
    assert sorted(line["row"] for line in warnings) == ["A", "B"]
    assert all(
        (line["shard"], line["first_sequence"], line["last_sequence"])
        == ("shardId-000000000000", "520", "521")
        for line in warnings
    )


def test_a_request_botocore_refuses_to_send_is_deterministic():
    # Retried, it would be refused again for good, holding its shard (retries are unbounded).
    refused = ParamValidationError(report="Invalid length for parameter Key.item_id.S, value: 0")
    wrapped = RepositoryError("update_item on counts failed")
    wrapped.__cause__ = refused
    assert not is_transient(wrapped) and not is_transient(refused)
    unreachable = RepositoryError("update_item on counts failed")
    unreachable.__cause__ = EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
    assert is_transient(unreachable)


def test_a_bad_request_of_the_functions_client_is_refused_by_dynamodb_as_deterministic(monkeypatch):
    # The functions' client does not check requests before sending them (botocore's check was
    # 30-45 % of a write's CPU): DynamoDB's refusal must count as deterministic, as botocore's did.
    from botocore.awsrequest import AWSResponse
    from botocore.compat import HTTPHeaders

    from streamrec import wiring
    from streamrec.repositories.dynamodb import DynamoTable
    from streamrec.repositories.fast_reads import _Body

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    refusal = json.dumps(
        {
            "__type": "com.amazon.coral.validate#ValidationException",
            "message": "1 validation error detected: Value null at 'key' failed to satisfy constraint",
        }
    ).encode()
    sent: list[bytes] = []

    def dynamodb(request, **_):
        sent.append(request.body)
        headers = HTTPHeaders.from_dict({"content-type": "application/x-amz-json-1.0"})
        return AWSResponse(request.url, 400, headers, _Body(refusal))

    for client in (wiring.dynamodb_client(), wiring.api_dynamodb_client()):
        client.meta.events.register_first("before-send.dynamodb.UpdateItem", dynamodb)
        with pytest.raises(RepositoryError) as raised:  # no Key: botocore's check would refuse it
            DynamoTable("counts", client).call(
                "update_item", TableName="counts", UpdateExpression="ADD n :one"
            )
        assert "ValidationException" in str(raised.value) and not is_transient(raised.value)
    assert len(sent) == 2 and b'"Key"' not in sent[0]
    # A parameter left None would go as JSON null, which DynamoDB may read as absent: a
    # write made unconditional. It is refused before sending, as deterministic.
    with pytest.raises(RepositoryError) as raised:
        DynamoTable("counts", client).call(
            "update_item",
            TableName="counts",
            Key={"item_id": {"S": "tent"}},
            UpdateExpression="ADD n :one",
            ConditionExpression=None,
        )
    assert "ConditionExpression" in str(raised.value) and not is_transient(raised.value)
    assert len(sent) == 2


def test_a_catalog_record_whose_write_is_rejected_is_kept_as_partly_written():
    from streamrec.domain.catalog import CatalogService
    from streamrec.repositories.memory import InMemoryCatalogRepository

    class RecordRejected(InMemoryCatalogRepository):
        def put_many(self, items):
            cause = ClientError(
                {"Error": {"Code": "ValidationException", "Message": "Item too large"}}, "PutItem"
            )
            raise RepositoryError("put_item failed") from cause

    catalog = RecordRejected()
    service = _ingest(catalog=catalog)
    upsert = {
        "event_type": "item_upsert",
        "item_id": "tent",
        "title": "Blue tent",
        "category": "camping",
        "price": 10.0,
        "in_stock": True,
        "timestamp": T0,
    }
    sink = InMemoryDeadLetterSink()
    processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
    apply = ingest_records(service, CatalogService(Settings(), catalog, InMemoryChangePublisher()))
    process_batch({"Records": [_record(100, upsert)]}, None, processor, parse_record, apply, sink)
    [letter] = sink.letters
    # The document count and the tokens' counts hold it; the record does not: a re-drive
    # would find the item new again and count it twice.
    assert letter.reason.startswith(WRITE_REJECTED), letter.reason
    assert catalog.documents() == 1 and catalog.postings(["tent"])["tent"].count == 1
    assert _letter(letter).redrivable()[0] is False


class FailsOnce(InMemoryDeadLetterSink):
    """A dead-letter queue whose first send fails (SQS briefly unavailable)."""

    def __init__(self) -> None:
        super().__init__()
        self.sends = 0

    def send(self, letters):
        self.sends += 1
        if self.sends == 1:
            raise RepositoryError("SendMessageBatch failed: ServiceUnavailable")
        super().send(letters)


@pytest.mark.parametrize("found_by", ["planning", "bisection"])
def test_a_culprit_is_dead_lettered_even_when_its_first_send_fails(found_by):
    # A later event of the same user moves the user row's shard guard past the culprit: had
    # it been applied before the letter went out, the retried batch would skip the culprit
    # as already applied and never dead-letter it (found by planning or by bisection alike).
    from streamrec.repositories.memory import InMemoryCouponRepository

    if found_by == "planning":  # the redemption of a coupon that is not defined
        service = _ingest()
        service.coupons = InMemoryCouponRepository()
        culprit = {"event_id": "e2", "event_type": "coupon_redeemed", "user_id": "u1", "coupon_id": "nope"}
        culprit["timestamp"] = T0 + 2
    else:  # a write DynamoDB rejects
        service, culprit = _ingest(RowTooLarge(full={"Z"})), _view(2, "u1", "Z")
    events = [_view(1, "u1", "X"), culprit, _view(3, "u1", "Y")]
    batch = {"Records": [_record(300 + n, e) for n, e in enumerate(events)]}
    sink = FailsOnce()
    processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
    with pytest.raises(RepositoryError, match="SendMessageBatch"):
        process_batch(batch, None, processor, parse_record, ingest_records(service), sink)
    assert sink.letters == []
    # Lambda retries the failed invocation with the same batch.
    response = process_batch(batch, None, processor, parse_record, ingest_records(service), sink)
    assert response == {"batchItemFailures": []}
    [letter] = sink.letters
    assert letter.sequence_number == "301"
    assert [entry.item_id for entry in service.users.get("u1").items] == ["X", "Y"]


def test_a_category_move_reaches_the_item_stats_when_its_batch_is_applied_again():
    # A failing record isolated in the batch makes the catalog record applied twice: the
    # second time it is stored already (a duplicate), and its category must still reach
    # the item-stats row, or the row kept the old category for good.
    from streamrec.domain.catalog import CatalogService
    from streamrec.repositories.memory import InMemoryCatalogRepository, InMemoryCouponRepository

    def upsert(category: str, at: int) -> dict:
        return {
            "event_type": "item_upsert",
            "item_id": "grinder",
            "title": "Burr grinder",
            "category": category,
            "price": 10.0,
            "in_stock": True,
            "timestamp": T0 + at,
        }

    service = _ingest(catalog=InMemoryCatalogRepository())
    service.coupons = InMemoryCouponRepository()
    assert service.catalog is not None
    apply = ingest_records(service, CatalogService(Settings(), service.catalog, InMemoryChangePublisher()))
    sink = InMemoryDeadLetterSink()
    processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
    first = [_record(100, upsert("coffee", 0)), _record(101, _view(5, "u1", "grinder"))]
    process_batch({"Records": first}, None, processor, parse_record, apply, sink)
    undefined = {"event_id": "c1", "event_type": "coupon_redeemed", "user_id": "u2", "coupon_id": "nope"}
    moved = [_record(200, upsert("kitchen", 10)), _record(201, {**undefined, "timestamp": T0 + 11})]
    process_batch({"Records": moved}, None, processor, parse_record, apply, sink)
    assert len(sink.letters) == 1
    assert service.item_stats.get_many(["grinder"])["grinder"].category == "kitchen"


def test_the_ingested_batch_line_says_how_old_its_oldest_event_was_on_arrival(caplog):
    # Events stamped an hour or more before they reached the stream miss the 1h trending
    # window: the log says so (records arrive at T0 + 3600 in these tests).
    batch = {"Records": [_record(600 + n, _view(n, "u1", f"I{n}")) for n in (5, 60)]}
    processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
    process_batch(batch, None, processor, parse_record, ingest_records(_ingest()), InMemoryDeadLetterSink())
    [line] = [r for r in caplog.records if r.getMessage() == "ingested batch"]
    assert line.event_age_max_s == 3595.0


def test_records_refused_for_good_are_dead_lettered_without_bisecting_the_batch():
    # The DynamoDB adapter names the refused deltas' sequences: those records are the
    # culprits. Bisecting a batch of which half touch the refused row took one write call
    # per part holding one of them (here 249), plausibly past the function's timeout.
    class Refusing(InMemoryCooccurrenceRepository):
        calls = 0

        def apply(self, deltas, shard):
            Refusing.calls += 1
            refused = [d for key, row in deltas.items() if key[0] == "Y" for d in row]
            if refused:
                sequences = frozenset(sequence for sequence, _attribute, _value in refused)
                raise RefusedForGoodError("update_item on counts refused 3 times ...", sequences)
            super().apply(deltas, shard)

    sink = InMemoryDeadLetterSink()
    # 50 users, each viewing A then Y: every second record puts counts on row Y.
    events = [_view(2 * n + step, f"u{n}", item) for n in range(50) for step, item in enumerate("AY")]
    batch = {"Records": [_record(1000 + n, e) for n, e in enumerate(events)]}
    service = _ingest(Refusing())
    processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
    response = process_batch(batch, None, processor, parse_record, ingest_records(service), sink)
    assert response == {"batchItemFailures": []}
    assert Refusing.calls == 2  # the batch, then the rest
    assert [letter.sequence_number for letter in sink.letters] == [str(1001 + 2 * n) for n in range(50)]
    assert all(letter.reason.startswith(WRITE_REJECTED) for letter in sink.letters)
    # The others applied, once each: every user's view of A, none of Y.
    assert all([h.item_id for h in service.users.get(f"u{n}").items] == ["A"] for n in range(50))
    assert service.item_stats.get_many(["A"])["A"].events["n:view"] == 50


def test_records_refused_for_good_found_while_halving_are_dead_lettered_together():
    # Another failure (a row over the item limit) makes the batch be halved; a half that
    # then fails on the refused row names its culprits, which need no further halving.
    def run(named: bool) -> tuple[int, list[str]]:
        class Failing(InMemoryCooccurrenceRepository):
            calls = 0

            def apply(self, deltas, shard):
                Failing.calls += 1
                if any(item == "Z" for item, _ in deltas):
                    cause = ClientError(
                        {"Error": {"Code": "ValidationException", "Message": "Item size has exceeded"}},
                        "UpdateItem",
                    )
                    raise RepositoryError("update_item failed") from cause
                refused = [d for key, row in deltas.items() if key[0] == "Y" for d in row]
                if refused:
                    sequences = frozenset(sequence for sequence, _, _ in refused) if named else frozenset()
                    raise RefusedForGoodError("update_item on counts refused 3 times ...", sequences)
                super().apply(deltas, shard)

        sink = InMemoryDeadLetterSink()
        # 32 users view A then another item: Z for the first, Y for every second.
        second = ["Z" if n == 0 else "Y" if n % 2 else "B" for n in range(32)]
        events = [
            _view(2 * n + step, f"u{n}", item)
            for n in range(32)
            for step, item in enumerate(["A", second[n]])
        ]
        batch = {"Records": [_record(2000 + n, e) for n, e in enumerate(events)]}
        processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
        process_batch(batch, None, processor, parse_record, ingest_records(_ingest(Failing())), sink)
        return Failing.calls, sorted(letter.sequence_number for letter in sink.letters)

    named_calls, named_letters = run(named=True)
    halved_calls, halved_letters = run(named=False)
    culprits = sorted(str(2001 + 2 * n) for n in range(32) if n == 0 or n % 2)
    assert named_letters == halved_letters == culprits
    assert named_calls < halved_calls / 2, (named_calls, halved_calls)


def test_a_write_refused_for_good_is_dead_lettered_not_retried_for_ever():
    # A guarded write whose refusal its guard does not explain (RefusedForGoodError): the
    # batch used to fail whole, and Lambda retried it for ever (IngestRetryAttempts -1).
    class Stalled(InMemoryCooccurrenceRepository):
        def apply(self, deltas, shard):
            if any(item == "Y" for item, _ in deltas):
                raise RefusedForGoodError("update_item on counts refused 3 times though its guard ...")
            super().apply(deltas, shard)

    sink = InMemoryDeadLetterSink()
    events = [_view(1, "u1", "X"), _view(2, "u2", "A"), _view(3, "u1", "Y")]
    batch = {"Records": [_record(700 + n, e) for n, e in enumerate(events)]}
    processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
    response = process_batch(batch, None, processor, parse_record, ingest_records(_ingest(Stalled())), sink)
    assert response == {"batchItemFailures": []}
    [letter] = sink.letters
    assert letter.sequence_number == "702" and letter.reason.startswith(WRITE_REJECTED)
