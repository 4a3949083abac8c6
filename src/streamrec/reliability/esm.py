"""A deterministic, single-threaded stand-in for Lambda's Kinesis event source mapping.

Same delivery semantics as :mod:`streamrec.local.pollers` (and Lambda): batches of at most
``BatchSize`` records per shard, partial batch responses (re-deliver from the lowest failed
record), whole-batch failures retried with bisection (a split does not count as a retry),
and after ``MaximumRetryAttempts`` a batch description sent to the OnFailure queue. It adds
what a fault harness needs: no threads or sleeps (runs are reproducible), shards served
round-robin one batch at a time, an optional hook around every invocation (the fault
injector), and *re-deliveries*: after a batch succeeds, the checkpoint may move back by a
random number of records, as when a shard lease moves before the checkpoint was stored.
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from streamrec.local.pollers import build_kinesis_event, on_failure_message
from streamrec.local.template import KinesisEventSource
from streamrec.reliability.sandbox import Sandbox

__all__ = ["EsmStats", "EventSourceMapping", "Invocation"]


@dataclass(frozen=True)
class Invocation:
    """What the invocation hook learns about one invocation."""

    function: str  # logical id
    shard_id: str
    first_sequence: str
    last_sequence: str
    size: int
    retries: int  # retries of these same records so far (counted against the limit)
    max_retries: int  # -1: infinite

    @property
    def last_chance(self) -> bool:
        """True when a failure now would send the batch to the OnFailure destination."""
        return 0 <= self.max_retries <= self.retries


InvocationHook = Callable[[Invocation], AbstractContextManager[Any]]


@dataclass
class EsmStats:
    batches: int = 0  # batches read from the stream
    invocations: int = 0
    records_delivered: int = 0  # records in all invocations (re-deliveries included)
    records_acknowledged: int = 0
    retries: int = 0
    bisections: int = 0
    partial_failures: int = 0
    function_errors: int = 0
    given_up_batches: int = 0  # sent to the OnFailure destination
    given_up_records: int = 0
    redeliveries: int = 0  # checkpoint moved back after a successful batch
    redelivered_records: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Shard:
    shard_id: str
    checkpoint: str | None = None  # last acknowledged sequence number
    acknowledged: list[str] = field(default_factory=list)  # recent acknowledged sequence numbers
    drained: bool = False


class EventSourceMapping:
    """Lambda's event source mapping for one ``Type: Kinesis`` event of a sandbox function.

    Args:
        box: the sandbox (clients, handlers, queues).
        source: the event source resolved from the template.
        batch_size: override of ``BatchSize`` (e.g. smaller batches for more invocations).
        max_retries: override of ``MaximumRetryAttempts`` (-1: infinite).
        bisect: override of ``BisectBatchOnFunctionError``.
        hook: context manager factory wrapped around every invocation (fault injection).
        rng: randomness of the re-deliveries.
        redelivery_rate: probability that a successful batch is re-delivered in part.
        max_redeliveries: bound on re-deliveries over the mapping's life.
    """

    def __init__(
        self,
        box: Sandbox,
        source: KinesisEventSource,
        *,
        batch_size: int | None = None,
        max_retries: int | None = None,
        bisect: bool | None = None,
        hook: InvocationHook | None = None,
        rng: random.Random | None = None,
        redelivery_rate: float = 0.0,
        max_redeliveries: int = 1_000,
    ) -> None:
        self.box = box
        self.source = source
        self.function = source.function_logical_id
        self.batch_size = batch_size or source.batch_size
        self.max_retries = source.maximum_retry_attempts if max_retries is None else max_retries
        self.bisect = source.bisect_batch_on_function_error if bisect is None else bisect
        self.hook = hook
        self.rng = rng or random.Random(0)
        self.redelivery_rate = redelivery_rate
        self.max_redeliveries = max_redeliveries
        self.stats = EsmStats()
        self.errors: list[str] = []  # the distinct function errors seen (for reports)
        self._last_error: BaseException | None = None
        kinesis = box.client("kinesis")
        shards = kinesis.list_shards(StreamName=source.stream.name)["Shards"]
        self._shards = [_Shard(s["ShardId"]) for s in shards]

    # -- reading ----------------------------------------------------------------------------
    def _read(self, shard: _Shard) -> list[dict[str, Any]]:
        kinesis = self.box.client("kinesis")
        kwargs: dict[str, Any] = {"StreamName": self.source.stream.name, "ShardId": shard.shard_id}
        if shard.checkpoint is None:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=shard.checkpoint)
        iterator = kinesis.get_shard_iterator(**kwargs)["ShardIterator"]
        return list(kinesis.get_records(ShardIterator=iterator, Limit=self.batch_size)["Records"])

    def shards_drained(self) -> bool:
        """True when every shard was read to its end by the last :meth:`drain`."""
        return all(shard.drained for shard in self._shards)

    def checkpoints(self) -> dict[str, str | None]:
        return {shard.shard_id: shard.checkpoint for shard in self._shards}

    # -- driving ----------------------------------------------------------------------------
    def drain(self, max_batches: int = 1_000_000) -> EsmStats:
        """Deliver every record of every shard (round-robin, one batch at a time)."""
        for shard in self._shards:
            shard.drained = False
        for _ in range(max_batches):
            active = [shard for shard in self._shards if not shard.drained]
            if not active:
                break
            for shard in active:
                batch = self._read(shard)
                if not batch:
                    shard.drained = True
                    continue
                self.stats.batches += 1
                self._process(shard, batch)
                self._maybe_redeliver(shard, len(batch))
        return self.stats

    def _maybe_redeliver(self, shard: _Shard, batch_length: int) -> None:
        if (
            self.redelivery_rate <= 0
            or self.stats.redeliveries >= self.max_redeliveries
            or self.rng.random() >= self.redelivery_rate
            or len(shard.acknowledged) < 2
        ):
            return
        back = self.rng.randint(1, min(batch_length, len(shard.acknowledged) - 1))
        shard.checkpoint = shard.acknowledged[-1 - back]
        self.stats.redeliveries += 1
        self.stats.redelivered_records += back

    def _acknowledge(self, shard: _Shard, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        sequence = [r["SequenceNumber"] for r in records]
        # Never move the checkpoint backwards here (a re-delivered range may be acked again).
        if shard.checkpoint is None or int(sequence[-1]) > int(shard.checkpoint):
            shard.checkpoint = sequence[-1]
        known = set(shard.acknowledged[-len(sequence) :])
        shard.acknowledged.extend(s for s in sequence if s not in known)
        del shard.acknowledged[:-10_000]
        self.stats.records_acknowledged += len(records)

    def _invoke(self, shard: _Shard, records: list[dict[str, Any]], retries: int) -> tuple[bool, int | None]:
        """(ok, index of the lowest reported failure or None for a whole-batch failure)."""
        event = build_kinesis_event(records, shard.shard_id, self.source.stream.arn, self.box.template.region)
        invocation = Invocation(
            function=self.function,
            shard_id=shard.shard_id,
            first_sequence=records[0]["SequenceNumber"],
            last_sequence=records[-1]["SequenceNumber"],
            size=len(records),
            retries=retries,
            max_retries=self.max_retries,
        )
        self.stats.invocations += 1
        self.stats.records_delivered += len(records)
        context = self.hook(invocation) if self.hook is not None else nullcontext()
        try:
            with context:
                response = self.box.invoke(self.function, event)
        except BaseException as error:  # noqa: BLE001 - includes injected crashes
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise
            self.stats.function_errors += 1
            self._note(error)
            self._last_error = error
            return False, None
        self._last_error = None
        if not self.source.report_batch_item_failures or not isinstance(response, dict):
            return True, None
        failures = response.get("batchItemFailures") or []
        if not failures:
            return True, None
        positions = {record["SequenceNumber"]: i for i, record in enumerate(records)}
        indexes = [positions.get(f.get("itemIdentifier")) for f in failures if isinstance(f, dict)]
        if not indexes or any(i is None for i in indexes):
            self.stats.function_errors += 1
            self._note(ValueError(f"invalid batchItemFailures {failures!r}"))
            return False, None
        self.stats.partial_failures += 1
        return False, min(i for i in indexes if i is not None)

    def _note(self, error: BaseException) -> None:
        text = f"{type(error).__name__}: {error}"[:200]
        if text not in self.errors and len(self.errors) < 50:
            self.errors.append(text)

    def _process(self, shard: _Shard, batch: list[dict[str, Any]]) -> None:
        work: deque[tuple[list[dict[str, Any]], int, int]] = deque([(batch, 0, 0)])
        while work:
            records, retries, invocations = work.popleft()
            ok, failed_index = self._invoke(shard, records, retries)
            invocations += 1
            if ok:
                self._acknowledge(shard, records)
                continue
            if failed_index is not None and failed_index > 0:
                self._acknowledge(shard, records[:failed_index])
                work.appendleft((records[failed_index:], retries, 0))
                continue
            if failed_index is None and self.bisect and len(records) > 1:
                half = len(records) // 2
                self.stats.bisections += 1
                work.appendleft((records[half:], retries, 0))
                work.appendleft((records[:half], retries, 0))
                continue
            if 0 <= self.max_retries <= retries:
                self._give_up(shard, records, invocations)
                continue
            self.stats.retries += 1
            work.appendleft((records, retries + 1, invocations))

    def _give_up(self, shard: _Shard, records: list[dict[str, Any]], invocations: int) -> None:
        self.stats.given_up_batches += 1
        self.stats.given_up_records += len(records)
        self._acknowledge(shard, records)
        self.stats.records_acknowledged -= len(records)
        queue = self.source.on_failure_queue
        if queue is None:
            return
        message = on_failure_message(
            records,
            function_arn=self.box.function(self.function).arn,
            shard_id=shard.shard_id,
            stream_arn=self.source.stream.arn,
            error=self._last_error,
            invocations=invocations,
        )
        self.box.client("sqs").send_message(
            QueueUrl=self.box.queue_urls[queue.logical_id], MessageBody=json.dumps(message)
        )
