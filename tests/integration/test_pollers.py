"""The Kinesis poller behaves like Lambda's event source mapping.

Each test attaches a poller with a stub function to a fresh stream on the package's moto
server (a second LocalStack cannot run in the same process), so the semantics are tested
independently of the domain code.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streamrec.local.pollers import ActivityClock, KinesisPoller
from streamrec.local.stack import LocalStack, create_stream
from streamrec.local.template import ACCOUNT_ID, REGION, KinesisEventSource, QueueDef, StreamDef

pytestmark = pytest.mark.integration

FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:stub"
_names = itertools.count(1)


class Stub:
    """A fake function: records every event and answers with ``behaviour(records)``."""

    def __init__(self, behaviour: Callable[[list[dict[str, Any]]], Any] | None = None) -> None:
        self.behaviour = behaviour or (lambda records: None)
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> Any:
        with self.lock:
            self.events.append(event)
        return self.behaviour(event["Records"])

    @property
    def batches(self) -> list[list[str]]:
        """Delivered sequence numbers, one list per invocation."""
        return [[r["kinesis"]["sequenceNumber"] for r in e["Records"]] for e in self.events]


@dataclasses.dataclass
class Harness:
    stack: LocalStack
    stream: StreamDef
    queue: QueueDef
    clock: ActivityClock

    def source(self, **overrides: Any) -> KinesisEventSource:
        settings: dict[str, Any] = {
            "event_name": "Stub",
            "function_logical_id": "StubFunction",
            "stream": self.stream,
            "starting_position": "TRIM_HORIZON",
            "batch_size": 10,
            "maximum_batching_window_s": 0.0,
            "report_batch_item_failures": True,
            "maximum_retry_attempts": 2,
            "bisect_batch_on_function_error": True,
            "on_failure_queue": self.queue,
        }
        settings.update(overrides)
        return KinesisEventSource(**settings)

    def put(self, *payloads: bytes) -> list[str]:
        entries = [{"Data": p, "PartitionKey": "k"} for p in payloads]
        sequence_numbers = self.stack.put_records(entries, stream=self.stream.name)
        self.clock.mark_activity()
        return sequence_numbers

    def poller(self, stub: Stub, **overrides: Any) -> KinesisPoller:
        return KinesisPoller(
            self.source(**overrides),
            stub,
            FUNCTION_ARN,
            self.stack.client,
            self.clock,
            idle_sleep=0.02,
            retry_backoff=0.001,
        )

    def settle(self, poller: KinesisPoller, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 2:
            assert time.monotonic() < deadline, poller.describe()
            quiet = quiet + 1 if poller.caught_up_since(self.clock.last_activity) else 0
            time.sleep(0.03)

    def dead_letters(self) -> list[dict[str, Any]]:
        sqs = self.stack.client("sqs")
        got = sqs.receive_message(QueueUrl=self.queue.url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return [json.loads(m["Body"]) for m in got.get("Messages", [])]


@pytest.fixture
def harness(local_stack: LocalStack) -> Iterator[Harness]:
    """A fresh one-shard stream and queue on the package's moto server."""
    n = next(_names)
    name = f"poller-test-{n}"
    kinesis, sqs = local_stack.client("kinesis"), local_stack.client("sqs")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    stream = StreamDef("TestStream", name, f"arn:aws:kinesis:{REGION}:{ACCOUNT_ID}:stream/{name}", 1)
    queue = QueueDef("TestQueue", f"{name}-dlq", url, f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}-dlq", {})
    yield Harness(local_stack, stream, queue, ActivityClock())
    kinesis.delete_stream(StreamName=name)
    sqs.delete_queue(QueueUrl=url)


def test_batches_respect_batch_size_and_carry_lambdas_event_shape(harness: Harness) -> None:
    stub = Stub()
    seqs = harness.put(*[json.dumps({"n": i}).encode() for i in range(7)])
    poller = harness.poller(stub, batch_size=3)
    poller.start()
    try:
        harness.settle(poller)
    finally:
        poller.stop()
    assert stub.batches == [seqs[0:3], seqs[3:6], seqs[6:7]]
    assert [int(s) for s in seqs] == sorted(int(s) for s in seqs), "moto sequence numbers increase"
    record = stub.events[0]["Records"][0]
    assert set(record) == {
        "kinesis",
        "eventSource",
        "eventVersion",
        "eventID",
        "eventName",
        "invokeIdentityArn",
        "awsRegion",
        "eventSourceARN",
    }
    assert record["eventSource"] == "aws:kinesis" and record["eventName"] == "aws:kinesis:record"
    assert record["eventID"] == f"{poller.shard_ids[0]}:{seqs[0]}"
    assert record["eventSourceARN"] == harness.stream.arn
    assert record["awsRegion"] == REGION
    kinesis = record["kinesis"]
    assert kinesis["kinesisSchemaVersion"] == "1.0" and kinesis["partitionKey"] == "k"
    assert json.loads(base64.b64decode(kinesis["data"])) == {"n": 0}
    assert isinstance(kinesis["approximateArrivalTimestamp"], float)
    assert abs(kinesis["approximateArrivalTimestamp"] - time.time()) < 60
    stats = poller.stats
    assert (stats.batches, stats.invocations, stats.records, stats.retries) == (3, 3, 7, 0)


def test_partial_failure_redelivers_from_the_lowest_failed_record(harness: Harness) -> None:
    seqs = harness.put(*[b"{}"] * 5)
    calls = itertools.count()

    def behaviour(records: list[dict[str, Any]]) -> Any:
        if next(calls) == 0:
            ids = [records[3]["kinesis"]["sequenceNumber"], records[1]["kinesis"]["sequenceNumber"]]
            return {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}
        return {"batchItemFailures": []}

    stub = Stub(behaviour)
    poller = harness.poller(stub)
    poller.start()
    try:
        harness.settle(poller)
    finally:
        poller.stop()
    assert stub.batches == [seqs, seqs[1:]]
    stats = poller.stats
    assert (stats.partial_failures, stats.retries, stats.records, stats.failures) == (1, 0, 5, 0)


def test_function_error_bisects_retries_then_sends_the_batch_to_on_failure(harness: Harness) -> None:
    seqs = harness.put(b"ok-0", b"ok-1", b"poison", b"ok-3")

    def behaviour(records: list[dict[str, Any]]) -> Any:
        if any(base64.b64decode(r["kinesis"]["data"]) == b"poison" for r in records):
            raise RuntimeError("cannot digest poison")
        return None

    stub = Stub(behaviour)
    poller = harness.poller(stub, maximum_retry_attempts=2)
    poller.start()
    try:
        harness.settle(poller)
    finally:
        poller.stop()
    # whole batch fails -> halves; [2,3] fails -> halves; [2] fails, retried twice; [3] ok.
    assert stub.batches == [seqs, seqs[0:2], seqs[2:4], seqs[2:3], seqs[2:3], seqs[2:3], seqs[3:4]]
    stats = poller.stats
    assert (stats.bisections, stats.retries, stats.errors, stats.failures, stats.failed_records) == (
        2,
        2,
        5,
        1,
        1,
    )
    assert stats.records == 3
    letters = harness.dead_letters()
    assert len(letters) == 1
    letter = letters[0]
    info = letter["KinesisBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == seqs[2]
    assert info["batchSize"] == 1
    assert info["streamArn"] == harness.stream.arn
    assert info["shardId"] == poller.shard_ids[0]
    assert letter["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert letter["requestContext"]["functionArn"] == FUNCTION_ARN
    assert letter["requestContext"]["approximateInvokeCount"] == 3
    assert letter["errorInfo"] == {"errorType": "RuntimeError", "errorMessage": "cannot digest poison"}


def test_invalid_item_identifier_fails_the_whole_batch(harness: Harness) -> None:
    seqs = harness.put(b"{}", b"{}")
    calls = itertools.count()
    stub = Stub(lambda records: {"batchItemFailures": [{"itemIdentifier": ""}]} if next(calls) == 0 else None)
    poller = harness.poller(stub, bisect_batch_on_function_error=False)
    poller.start()
    try:
        harness.settle(poller)
    finally:
        poller.stop()
    assert stub.batches == [seqs, seqs]
    assert (poller.stats.errors, poller.stats.retries, poller.stats.records) == (1, 1, 2)


def test_responses_are_ignored_without_report_batch_item_failures(harness: Harness) -> None:
    harness.put(b"{}", b"{}")
    stub = Stub(lambda records: {"batchItemFailures": [{"itemIdentifier": "1"}]})
    poller = harness.poller(stub, report_batch_item_failures=False)
    poller.start()
    try:
        harness.settle(poller)
    finally:
        poller.stop()
    assert len(stub.events) == 1 and poller.stats.records == 2


def test_exhausted_retries_without_bisect_give_up_on_the_whole_batch(harness: Harness) -> None:
    seqs = harness.put(b"a", b"b", b"c")

    def fail(records: list[dict[str, Any]]) -> Any:
        raise ValueError("always")

    stub = Stub(fail)
    poller = harness.poller(stub, bisect_batch_on_function_error=False, maximum_retry_attempts=1)
    poller.start()
    try:
        harness.settle(poller)
    finally:
        poller.stop()
    assert stub.batches == [seqs, seqs]
    (letter,) = harness.dead_letters()
    assert letter["KinesisBatchInfo"]["batchSize"] == 3
    assert letter["KinesisBatchInfo"]["startSequenceNumber"] == seqs[0]
    assert letter["KinesisBatchInfo"]["endSequenceNumber"] == seqs[2]


def test_batching_window_waits_to_fill_but_not_once_full(harness: Harness) -> None:
    stub = Stub()
    # A window long enough that a busy machine's stalls stay well inside it.
    poller = harness.poller(stub, batch_size=4, maximum_batching_window_s=6)
    poller.start()
    try:
        first = harness.put(b"1", b"2")
        time.sleep(0.3)
        second = harness.put(b"3")
        harness.settle(poller, timeout=20)
        assert stub.batches == [first + second], "records arriving within the window share a batch"

        started = time.monotonic()
        full = harness.put(b"4", b"5", b"6", b"7")
        while not stub.events[1:]:
            assert time.monotonic() - started < 3.0, "a full batch must not wait for the window"
            time.sleep(0.01)
        assert stub.batches[1] == full
        harness.settle(poller)
    finally:
        poller.stop()


def test_latest_skips_records_put_before_the_poller_started(harness: Harness) -> None:
    harness.put(b"old")
    stub = Stub()
    poller = harness.poller(stub, starting_position="LATEST")
    poller.start()
    try:
        new = harness.put(b"new")
        harness.settle(poller)
    finally:
        poller.stop()
    assert stub.batches == [new]


def test_stop_names_the_shards_whose_invocation_outlives_the_wait(harness: Harness) -> None:
    # streamrec run leaves such invocations behind instead of waiting for them at exit.
    release, entered = threading.Event(), threading.Event()

    def slow(_records: list[dict[str, Any]]) -> None:
        entered.set()
        release.wait(30)

    harness.put(b'{"n": 1}')
    poller = harness.poller(Stub(slow))
    poller.start()
    try:
        assert entered.wait(30), "the function was never invoked"
        assert poller.stop(timeout=0.2) == ["shardId-000000000000"]
    finally:
        release.set()
    assert poller.stop(timeout=30) == []


def test_an_idle_shard_is_polled_less_often_and_a_record_still_comes_at_once(harness: Harness) -> None:
    polls: list[float] = []

    def counting_client(service: str) -> Any:
        client = harness.stack.client(service)
        client.meta.events.register(
            "before-call.kinesis.GetRecords", lambda **_: polls.append(time.monotonic())
        )
        return client

    stub = Stub()
    poller = KinesisPoller(
        harness.source(),
        stub,
        FUNCTION_ARN,
        counting_client,
        harness.clock,
        idle_sleep=0.01,
        max_idle_sleep=0.2,
        retry_backoff=0.001,
    )
    # The pauses asked for, not the gaps between polls: a busy machine stretches those.
    pauses: list[float] = []
    wait = poller._wait

    def recorded_wait(seconds: float) -> bool:
        pauses.append(seconds)
        return wait(seconds)

    poller._wait = recorded_wait  # type: ignore[method-assign]
    poller.start()
    try:
        time.sleep(3.0)
        # Pauses of 0.01, 0.02, 0.04, 0.08, 0.16 s, then 0.2 s: about 19 polls in 3 s
        # (without the back-off, one every 0.01 s: well over 100).
        seen, asked = list(polls), list(pauses)
        assert len(seen) <= 30, len(seen)
        assert asked[:6] == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.16, 0.2]), asked[:6]  # fast, slower...
        assert max(asked) == pytest.approx(0.2), asked  # ...up to the limit: a record waits 0.2 s at most
        put_at = time.monotonic()
        harness.put(b'{"n": 1}')
        while not stub.events:
            assert time.monotonic() - put_at < 5.0, "the record was not delivered"
            time.sleep(0.005)
    finally:
        poller.stop()


def test_a_template_stream_is_created_with_its_retention(local_stack: LocalStack) -> None:
    name = f"poller-test-{next(_names)}"
    kinesis = local_stack.client("kinesis")
    create_stream(
        kinesis, StreamDef("Kept", name, f"arn:aws:kinesis:{REGION}:{ACCOUNT_ID}:stream/{name}", 2, 72)
    )
    try:
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        assert (summary["OpenShardCount"], summary["RetentionPeriodHours"]) == (2, 72)
    finally:
        kinesis.delete_stream(StreamName=name)
