"""Kinesis pollers that behave like Lambda's event source mappings, for the local stack.

One :class:`KinesisPoller` per ``Type: Kinesis`` event of the template; it runs one worker
thread per shard. A worker reads the shard with GetShardIterator/GetRecords, fills a batch
of at most ``BatchSize`` records (waiting up to ``MaximumBatchingWindowInSeconds`` for it to
fill, never when it is already full), invokes the function with the Lambda Kinesis event
and handles the outcome as Lambda does:

* ``ReportBatchItemFailures`` on: ``{"batchItemFailures": [{"itemIdentifier": seq}]}``
  checkpoints before the lowest failed record and re-delivers from it; an empty or missing
  list (or ``None``) is a full success; an empty, null or unknown ``itemIdentifier`` fails
  the whole batch.
* A raised exception fails the whole batch. With ``BisectBatchOnFunctionError`` the batch
  is split in two and each half retried (first half first); as in Lambda, a split does
  not count towards ``MaximumRetryAttempts``, re-sending the same records does. When the
  retries are exhausted, a message describing the batch goes to the ``OnFailure`` SQS
  queue and the shard moves on.

Every worker also records when it last found its shard empty, so that the stack can tell
when the whole pipeline has caught up (see :meth:`KinesisPoller.caught_up_since`).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streamrec.local.template import ACCOUNT_ID, REGION, KinesisEventSource

__all__ = [
    "ActivityClock",
    "InvokeOutcome",
    "KinesisPoller",
    "PollerStats",
    "build_kinesis_event",
    "on_failure_message",
]

# Not under "streamrec": Powertools owns that logger (its service name) and would reformat ours.
log = logging.getLogger(__name__.replace("streamrec.local", "streamrec_local", 1))

# Lambda's limits on one synchronous invocation payload and on one GetRecords call.
_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
_MAX_GET_RECORDS = 10_000
_INVOKE_IDENTITY_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/local"

ClientFactory = Callable[[str], Any]
Invoke = Callable[[dict[str, Any]], Any]


class ActivityClock:
    """A shared, thread-safe logical clock that orders polls against pipeline activity.

    Anything that may put records on a stream (an invocation, a producer's PutRecords)
    calls :meth:`mark_activity` when it has finished; a poller takes :meth:`tick` just before
    a GetRecords call. A poll that returned nothing with a tick above
    :attr:`last_activity` therefore saw every record written so far.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = 0
        self._last_activity = 0

    def tick(self) -> int:
        """The next value of the clock."""
        with self._lock:
            self._now += 1
            return self._now

    def mark_activity(self) -> int:
        """Record that some activity has just finished; returns its tick."""
        with self._lock:
            self._now += 1
            self._last_activity = self._now
            return self._now

    @property
    def last_activity(self) -> int:
        """The tick of the most recent :meth:`mark_activity`."""
        with self._lock:
            return self._last_activity


@dataclass(frozen=True)
class PollerStats:
    """Counters of one poller (all shards), for progress displays and tests."""

    batches: int = 0  # batches read from the stream (before retries and bisections)
    invocations: int = 0  # function invocations, including retries
    records: int = 0  # records delivered and acknowledged by the function
    retries: int = 0  # re-deliveries of the same records (counted against MaximumRetryAttempts)
    bisections: int = 0  # batches split in two after a function error
    partial_failures: int = 0  # invocations answered with batchItemFailures
    errors: int = 0  # invocations that raised (or answered an invalid response)
    failures: int = 0  # batches given up on (sent to OnFailure, or discarded)
    failed_records: int = 0  # records in those batches
    poll_errors: int = 0  # GetRecords/GetShardIterator calls that failed


@dataclass(frozen=True)
class InvokeOutcome:
    """What one invocation did with a batch."""

    ok: bool
    failed_index: int | None = None  # index of the lowest reported failure (partial response)
    error: BaseException | None = None  # raised exception, or why the response was invalid

    @property
    def function_error(self) -> bool:
        """True when the whole batch failed (as opposed to a partial batch response)."""
        return not self.ok and self.failed_index is None


def _arrival_seconds(record: dict[str, Any]) -> float:
    arrival = record.get("ApproximateArrivalTimestamp")
    if isinstance(arrival, datetime):
        return arrival.timestamp()
    return float(arrival) if arrival is not None else time.time()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_kinesis_event(
    records: Sequence[dict[str, Any]], shard_id: str, stream_arn: str, region: str = REGION
) -> dict[str, Any]:
    """The event Lambda sends for ``records`` (GetRecords output) of one shard."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record["PartitionKey"],
                    "sequenceNumber": record["SequenceNumber"],
                    "data": base64.b64encode(record["Data"]).decode("ascii"),
                    "approximateArrivalTimestamp": _arrival_seconds(record),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{record['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": _INVOKE_IDENTITY_ARN,
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            }
            for record in records
        ]
    }


@dataclass
class _Counters:
    """Mutable counters behind :class:`PollerStats`, guarded by ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    values: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PollerStats.__dataclass_fields__, 0))

    def add(self, **deltas: int) -> None:
        with self.lock:
            for name, delta in deltas.items():
                self.values[name] += delta

    def snapshot(self) -> PollerStats:
        with self.lock:
            return PollerStats(**self.values)


class KinesisPoller:
    """Lambda's event source mapping for one Kinesis event of one function.

    Args:
        source: the event source, resolved from the template.
        invoke: calls the function with an event and returns its response (raising what
            the function raised); the stack builds the Lambda context.
        function_arn: used in the OnFailure message.
        client_factory: ``client_factory("kinesis")`` / ``("sqs")`` gives a boto3 client
            for the local endpoint; each worker thread makes its own.
        clock: the stack's :class:`ActivityClock`.
        idle_sleep: pause between two polls while a batching window is open, and after the
            first empty poll of a shard (moto answers a GetRecords in about a millisecond);
            each further empty poll doubles the pause, up to ``max_idle_sleep`` (a shard
            with records is read again at once).
        retry_backoff: first pause before a retry, doubled for each retry of the same records
            up to ``max_backoff`` (Lambda backs off too; locally we keep it short).
    """

    def __init__(
        self,
        source: KinesisEventSource,
        invoke: Invoke,
        function_arn: str,
        client_factory: ClientFactory,
        clock: ActivityClock,
        *,
        idle_sleep: float = 0.05,
        max_idle_sleep: float = 0.5,
        retry_backoff: float = 0.05,
        max_backoff: float = 1.0,
    ) -> None:
        self.source = source
        self.invoke = invoke
        self.function_arn = function_arn
        self.client_factory = client_factory
        self.clock = clock
        self.idle_sleep = idle_sleep
        self.max_idle_sleep = max(idle_sleep, max_idle_sleep)
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self.name = f"{source.function_logical_id}.{source.event_name}"
        self._counters = _Counters()
        self._stop = threading.Event()
        self._workers: list[_ShardWorker] = []

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Discover the stream's shards and start one worker thread per shard."""
        if self._workers:
            raise RuntimeError(f"poller {self.name} is already started")
        kinesis = self.client_factory("kinesis")
        shard_ids: list[str] = []
        kwargs: dict[str, Any] = {"StreamName": self.source.stream.name}
        while True:
            page = kinesis.list_shards(**kwargs)
            shard_ids += [shard["ShardId"] for shard in page["Shards"]]
            if not page.get("NextToken"):
                break
            kwargs = {"NextToken": page["NextToken"]}
        for shard_id in shard_ids:
            worker = _ShardWorker(self, shard_id)
            worker.position_at_start(kinesis)
            self._workers.append(worker)
        for worker in self._workers:
            worker.thread.start()
        log.debug("poller %s reads %d shard(s) of %s", self.name, len(shard_ids), self.source.stream.name)

    def request_stop(self) -> None:
        """Ask the workers to stop after their current invocation; does not wait."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> list[str]:
        """Stop polling; waits up to ``timeout`` seconds for an invocation in flight. Returns
        the shards whose invocation still runs (abandoned)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            if worker.thread.is_alive():
                worker.thread.join(max(0.0, deadline - time.monotonic()))
        alive = [w.shard_id for w in self._workers if w.thread.is_alive()]
        if alive:
            log.warning("poller %s: shard workers still busy after %.1fs: %s", self.name, timeout, alive)
        return alive

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    # -- state ----------------------------------------------------------------------------
    @property
    def stats(self) -> PollerStats:
        """A snapshot of the counters (all shards)."""
        return self._counters.snapshot()

    @property
    def shard_ids(self) -> list[str]:
        """The shards this poller reads."""
        return [w.shard_id for w in self._workers]

    def caught_up_since(self, tick: int) -> bool:
        """True when every shard is idle and found empty by a GetRecords that began after ``tick``."""
        return bool(self._workers) and all(w.caught_up_since(tick) for w in self._workers)

    def describe(self) -> str:
        """One line on each shard's state, for timeout messages."""
        return "; ".join(f"{self.name}[{w.shard_id}] {w.describe()}" for w in self._workers)

    # -- used by the workers --------------------------------------------------------------
    def _count(self, **deltas: int) -> None:
        self._counters.add(**deltas)

    def _wait(self, seconds: float) -> bool:
        """Sleep unless stopping; True when stop was requested."""
        return self._stop.wait(seconds)


class _ShardWorker:
    """Reads one shard and drives the invocations for it."""

    def __init__(self, poller: KinesisPoller, shard_id: str) -> None:
        self.poller = poller
        self.source = poller.source
        self.shard_id = shard_id
        self.thread = threading.Thread(target=self._run, name=f"poller-{poller.name}-{shard_id}", daemon=True)
        self._iterator: str | None = None
        self._buffer: list[dict[str, Any]] = []
        self._window_opened: float | None = None
        self._busy = False
        self._empty_poll_tick: int | None = None
        self._checkpoint: str | None = None
        self._kinesis: Any = None
        self._sqs: Any = None

    # -- state ----------------------------------------------------------------------------
    def caught_up_since(self, tick: int) -> bool:
        empty_tick = self._empty_poll_tick
        return not self._busy and not self._buffer and empty_tick is not None and empty_tick > tick

    def describe(self) -> str:
        state = "busy" if self._busy else "idle"
        return f"{state}, {len(self._buffer)} buffered, checkpoint {self._checkpoint or '-'}"

    # -- reading --------------------------------------------------------------------------
    def position_at_start(self, kinesis: Any) -> None:
        """Take the initial shard iterator (TRIM_HORIZON or LATEST, as in the template)."""
        response = kinesis.get_shard_iterator(
            StreamName=self.source.stream.name,
            ShardId=self.shard_id,
            ShardIteratorType=self.source.starting_position,
        )
        self._iterator = response["ShardIterator"]

    def _reposition(self) -> None:
        """A fresh iterator after the last record read (after a failed GetRecords)."""
        last = self._buffer[-1]["SequenceNumber"] if self._buffer else self._checkpoint
        kwargs: dict[str, Any] = {"StreamName": self.source.stream.name, "ShardId": self.shard_id}
        if last is None:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=last)
        self._iterator = self._kinesis.get_shard_iterator(**kwargs)["ShardIterator"]

    def _get_records(self, limit: int) -> list[dict[str, Any]] | None:
        """Up to ``limit`` records; None when the call failed (already logged)."""
        try:
            if self._iterator is None:
                self._reposition()
            response = self._kinesis.get_records(
                ShardIterator=self._iterator, Limit=max(1, min(limit, _MAX_GET_RECORDS))
            )
        except Exception as error:  # noqa: BLE001 - keep polling whatever the endpoint says
            self.poller._count(poll_errors=1)
            log.warning("%s[%s]: GetRecords failed: %s", self.poller.name, self.shard_id, error)
            self._iterator = None
            return None
        self._iterator = response.get("NextShardIterator")
        return list(response.get("Records", []))

    def _fill_batch(self) -> list[dict[str, Any]]:
        """The next batch, or [] when the shard had nothing new (an empty poll)."""
        batch_size = self.source.batch_size
        if len(self._buffer) < batch_size:
            tick = self.poller.clock.tick()
            records = self._get_records(batch_size - len(self._buffer))
            if not self._buffer and not records:
                if records is not None:
                    self._empty_poll_tick = tick
                return []
            self._add(records or [])
        window = self.source.maximum_batching_window_s
        while len(self._buffer) < batch_size and self._window_opened is not None:
            remaining = self._window_opened + window - time.monotonic()
            if remaining <= 0 or self.poller._wait(min(self.poller.idle_sleep, remaining)):
                break
            records = self._get_records(batch_size - len(self._buffer))
            if records:
                self._add(records)
        batch: list[dict[str, Any]] = []
        size = 0
        for record in self._buffer[:batch_size]:
            size += len(record["Data"]) * 4 // 3 + 200
            if batch and size > _MAX_PAYLOAD_BYTES:
                break
            batch.append(record)
        return batch

    def _add(self, records: list[dict[str, Any]]) -> None:
        if records:
            self._busy = True
            if not self._buffer:
                self._window_opened = time.monotonic()
            self._buffer.extend(records)

    # -- main loop ------------------------------------------------------------------------
    def _run(self) -> None:
        self._kinesis = self.poller.client_factory("kinesis")
        pause = self.poller.idle_sleep
        while not self.poller.stopping:
            try:
                batch = self._fill_batch()
                if self.poller.stopping:
                    break
                if not batch:
                    # Back off on an idle shard: polling every 50 ms kept an idle stack at
                    # about 14% of a core.
                    self.poller._wait(pause)
                    pause = min(2 * pause, self.poller.max_idle_sleep)
                    continue
                pause = self.poller.idle_sleep
                self.poller._count(batches=1)
                self._process(batch)
                del self._buffer[: len(batch)]
                self._window_opened = time.monotonic() if self._buffer else None
                self._busy = bool(self._buffer)
            except Exception:  # noqa: BLE001 - a worker must never die silently
                log.exception("%s[%s]: unexpected error in the poller", self.poller.name, self.shard_id)
                self.poller._wait(self.poller.max_backoff)

    # -- invoking -------------------------------------------------------------------------
    def _invoke(self, records: list[dict[str, Any]]) -> InvokeOutcome:
        event = build_kinesis_event(records, self.shard_id, self.source.stream.arn)
        self.poller._count(invocations=1)
        try:
            response = self.poller.invoke(event)
        except Exception as error:  # noqa: BLE001 - a function error, handled as Lambda does
            self.poller._count(errors=1)
            return InvokeOutcome(ok=False, error=error)
        finally:
            self.poller.clock.mark_activity()
        if not self.source.report_batch_item_failures or not isinstance(response, dict):
            return InvokeOutcome(ok=True)
        failures = response.get("batchItemFailures")
        if not failures:
            return InvokeOutcome(ok=True)
        positions = {record["SequenceNumber"]: i for i, record in enumerate(records)}
        indexes: list[int] = []
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not identifier or identifier not in positions:
                self.poller._count(errors=1)
                return InvokeOutcome(
                    ok=False, error=ValueError(f"invalid batchItemFailures entry {failure!r}")
                )
            indexes.append(positions[identifier])
        self.poller._count(partial_failures=1)
        return InvokeOutcome(ok=False, failed_index=min(indexes))

    def _process(self, batch: list[dict[str, Any]]) -> None:
        """Deliver ``batch`` until every record is acknowledged or given up on."""
        src = self.source
        # (records, retries of these same records so far, invocations of this exact batch)
        work: deque[tuple[list[dict[str, Any]], int, int]] = deque([(batch, 0, 0)])
        while work:
            records, retries, invocations = work.popleft()
            outcome = self._invoke(records)
            invocations += 1
            if outcome.ok:
                self._acknowledge(records)
                continue
            remaining = records
            if outcome.failed_index is not None and outcome.failed_index > 0:
                self._acknowledge(records[: outcome.failed_index])
                remaining = records[outcome.failed_index :]
                # Re-delivering from the checkpoint is a new, smaller batch, not a retry.
                work.appendleft((remaining, retries, 0))
                continue
            if outcome.function_error and src.bisect_batch_on_function_error and len(remaining) > 1:
                half = len(remaining) // 2
                self.poller._count(bisections=1)
                self._log_failure(remaining, outcome, "bisecting")
                # Splitting a batch does not count towards the retry quota (Lambda docs).
                work.appendleft((remaining[half:], retries, 0))
                work.appendleft((remaining[:half], retries, 0))
                continue
            limit = src.maximum_retry_attempts
            if 0 <= limit <= retries:
                self._give_up(remaining, outcome, invocations)
                continue
            delay = min(self.poller.retry_backoff * 2**retries, self.poller.max_backoff)
            self.poller._count(retries=1)
            self._log_failure(
                remaining, outcome, f"retry {retries + 1}/{'inf' if limit < 0 else limit} in {delay:.2f}s"
            )
            if self.poller._wait(delay):
                return  # stopping: leave the records unacknowledged, as a shutdown would
            work.appendleft((remaining, retries + 1, invocations))

    def _log_failure(
        self, records: list[dict[str, Any]], outcome: InvokeOutcome, action: str, level: int = logging.WARNING
    ) -> None:
        """One line naming the batch (shard, size, sequence range), the error and what follows."""
        log.log(
            level,
            "%s[%s]: batch of %d records (%s..%s) failed: %s; %s",
            self.poller.name,
            self.shard_id,
            len(records),
            records[0]["SequenceNumber"],
            records[-1]["SequenceNumber"],
            _describe_error(outcome),
            action,
        )

    def _acknowledge(self, records: list[dict[str, Any]]) -> None:
        if records:
            self._checkpoint = records[-1]["SequenceNumber"]
            self.poller._count(records=len(records))

    def _give_up(self, records: list[dict[str, Any]], outcome: InvokeOutcome, invocations: int) -> None:
        """Retries exhausted: describe the batch to the OnFailure queue and move on."""
        self.poller._count(failures=1, failed_records=len(records))
        self._checkpoint = records[-1]["SequenceNumber"]
        queue = self.source.on_failure_queue
        message = self._failure_message(records, outcome, invocations)
        if queue is None:
            self._log_failure(records, outcome, "retries exhausted, discarding it", logging.ERROR)
            return
        self._log_failure(records, outcome, f"retries exhausted, sending it to {queue.name}", logging.ERROR)
        try:
            if self._sqs is None:
                self._sqs = self.poller.client_factory("sqs")
            self._sqs.send_message(QueueUrl=queue.url, MessageBody=json.dumps(message))
        except Exception:  # noqa: BLE001 - the record is lost either way; say so loudly
            log.exception(
                "%s[%s]: could not send the failure message to %s",
                self.poller.name,
                self.shard_id,
                queue.name,
            )

    def _failure_message(
        self, records: list[dict[str, Any]], outcome: InvokeOutcome, invocations: int
    ) -> dict[str, Any]:
        return on_failure_message(
            records,
            function_arn=self.poller.function_arn,
            shard_id=self.shard_id,
            stream_arn=self.source.stream.arn,
            error=outcome.error,
            invocations=invocations,
        )


def on_failure_message(
    records: Sequence[dict[str, Any]],
    *,
    function_arn: str,
    shard_id: str,
    stream_arn: str,
    error: BaseException | None,
    invocations: int,
) -> dict[str, Any]:
    """Lambda's OnFailure record for a Kinesis batch (GetRecords records), plus a local
    ``errorInfo``. It describes the batch (shard, sequence range) but carries no data."""
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": invocations,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "version": "1.0",
        "timestamp": _iso(time.time()),
        "KinesisBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": records[0]["SequenceNumber"],
            "endSequenceNumber": records[-1]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _iso(_arrival_seconds(records[0])),
            "approximateArrivalOfLastRecord": _iso(_arrival_seconds(records[-1])),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
        # Not sent by AWS: the local stack adds the error to ease debugging.
        "errorInfo": {
            "errorType": type(error).__name__ if error is not None else "PartialBatchFailure",
            "errorMessage": str(error) if error is not None else "batchItemFailures reported",
        },
    }


def _describe_error(outcome: InvokeOutcome) -> str:
    if outcome.error is not None:
        return f"{type(outcome.error).__name__}: {outcome.error}"
    return "partial batch failure reported"
