"""Fault injection: crash the functions at their write steps and prove exactly-once effects.

The harness replays real events through the production handlers (``functions/*/app.py``,
hence ``stream.process_batch``, the services and the DynamoDB/Kinesis/SQS adapters) on an
in-process moto account (:mod:`~streamrec.reliability.sandbox`), delivered by a
deterministic event source mapping (:mod:`~streamrec.reliability.esm`), twice:

* a **clean run**: every distinct event put once, batches of the template's ``BatchSize``,
  no faults;
* a **faulty run**: a producer that retries (≈``duplicate_rate`` of the events are put a
  second time, same ``event_id``, a few records later, i.e. at another sequence number),
  smaller batches, checkpoints moved back after successful batches (Lambda re-delivering
  records), and crashes: the :class:`FaultInjector` patches botocore so that a chosen write
  call (``UpdateItem``, ``PutItem``, ``BatchWriteItem``, ``DeleteItem``, ``PutRecords``,
  ``SendMessage(Batch)``) raises :class:`InjectedCrash` just *before* it is sent, or just
  *after* it succeeded (the response is lost, as in a timeout); every later call of that
  invocation fails too (the process is dead). The event source mapping then retries or
  bisects the batch exactly as Lambda does.

The ingest function runs over the whole event stream first, then the similarity function
over the whole changed-items stream (the "final drain"): every neighbour row and popular
list is then a function of the final counts, so the faulty run's tables must equal the
clean run's, row for row, once replay guards, versions and time stamps are set aside.

Two fault plans: :class:`SampledFaults` (a crash at a random write call of a fraction of
the invocations, with every (function, operation, table, before/after) combination crashed
at least ``coverage`` times) for long replays, and :class:`SweepFaults`, which crashes one
batch at *every* write rank in turn (before, then after), for short replays.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from botocore.client import BaseClient

from streamrec.reliability import dlq
from streamrec.reliability.esm import EsmStats, EventSourceMapping, Invocation
from streamrec.reliability.sandbox import Sandbox, Snapshot, diff_snapshots, normalized, sandbox

__all__ = [
    "FaultInjector",
    "FaultReport",
    "InjectedCrash",
    "ReplayConfig",
    "ReplayResult",
    "SampledFaults",
    "SweepFaults",
    "load_events",
    "produce",
    "with_catalog_records",
    "with_coupon_redemptions",
    "replay",
    "run_fault_injection",
]

WRITE_OPERATIONS = frozenset(
    {
        "UpdateItem",
        "PutItem",
        "BatchWriteItem",
        "DeleteItem",
        "TransactWriteItems",
        "PutRecords",
        "PutRecord",
        "SendMessage",
        "SendMessageBatch",
    }
)
PHASES = ("before", "after")
PUT_RECORDS_LIMIT = 500


class InjectedCrash(BaseException):
    """The function died here (timeout, out of memory, runtime killed).

    A BaseException, like the runtime's own interruptions, so that no ``except Exception``
    in the code under test can swallow it.
    """


@dataclass(frozen=True)
class WriteStep:
    """One kind of write: which function called which operation on which resource."""

    function: str
    service: str
    operation: str
    target: str  # logical id of the table, stream or queue

    @property
    def kind(self) -> str:
        return f"{self.function} {self.service}:{self.operation} {self.target}"


@dataclass(frozen=True)
class Fault:
    step: WriteStep
    phase: str  # "before" | "after"
    index: int  # write call index within the invocation (0-based)
    invocation: Invocation


class InvocationFaults(Protocol):
    def decide(self, step: WriteStep, index: int) -> str | None:
        """The phase to crash in at this write call, or None."""
        ...


class FaultPlan(Protocol):
    def begin(self, invocation: Invocation) -> InvocationFaults: ...

    def fired(self, fault: Fault) -> None: ...

    def finished(self, invocation: Invocation, writes: int, crashed: bool) -> None: ...


class _NoFaults:
    def decide(self, step: WriteStep, index: int) -> str | None:
        return None


class SampledFaults:
    """Crash a random write call of about ``rate`` of the invocations.

    The call index is drawn uniformly over the invocation's expected number of writes
    (the function's writes per record so far, times the batch size), so that early and
    late steps (count rows, the announcement, the users) are all hit.

    Coverage first: while some (write kind, phase) has crashed fewer than ``coverage``
    times, a call of that kind crashes with probability ``coverage_probability`` (so that
    not only the first call of a kind is chosen). An invocation that is the batch's last
    chance (retries exhausted next) never crashes, so no batch is given up because of an
    injected fault.
    """

    def __init__(
        self,
        rng: random.Random,
        rate: float = 0.35,
        coverage: int = 2,
        coverage_probability: float = 0.1,
    ) -> None:
        self.rng = rng
        self.rate = rate
        self.coverage = coverage
        self.coverage_probability = coverage_probability
        self.covered: Counter[tuple[str, str]] = Counter()
        self._writes: Counter[str] = Counter()  # function -> writes of completed invocations
        self._records: Counter[str] = Counter()  # function -> records of those invocations
        self._lock = threading.Lock()

    def begin(self, invocation: Invocation) -> InvocationFaults:
        if invocation.last_chance:
            return _NoFaults()
        target = None
        if self.rng.random() < self.rate:
            done = self._records[invocation.function]
            per_record = self._writes[invocation.function] / done if done else 3.0
            expected = max(1, round(per_record * invocation.size))
            target = (self.rng.randrange(expected), self.rng.choice(PHASES))
        return _SampledInvocation(self, target)

    def fired(self, fault: Fault) -> None:
        with self._lock:
            self.covered[(fault.step.kind, fault.phase)] += 1

    def finished(self, invocation: Invocation, writes: int, crashed: bool) -> None:
        if not crashed:
            self._writes[invocation.function] += writes
            self._records[invocation.function] += invocation.size


@dataclass
class _SampledInvocation:
    plan: SampledFaults
    target: tuple[int, str] | None

    def decide(self, step: WriteStep, index: int) -> str | None:
        plan = self.plan
        with plan._lock:
            pending = [p for p in PHASES if plan.covered[(step.kind, p)] < plan.coverage]
            if pending and plan.rng.random() < plan.coverage_probability:
                return plan.rng.choice(pending)
        if self.target is not None and index == self.target[0]:
            return self.target[1]
        return None


class SweepFaults:
    """Crash a batch at every write rank in turn, before the write and then after it. A write
    is named by its kind and its rank among the writes of that kind in the invocation (the
    3rd co-occurrence UpdateItem, ...): each invocation of the same records crashes at the
    first (kind, rank) not yet crashed in that phase, and the batch succeeds once none is
    left. Not by the write's index in the invocation: a retry skips writes whose effect is
    already stored (a catalog record, a user row written before the crash), so the same
    index would name a write of another kind. Such a skip still moves the later writes of
    its kind one rank down, so a few writes are crashed only under the rank they had first.
    Use with infinite retries and no bisection, so that the batch comes back unchanged."""

    def __init__(self) -> None:
        # (function, shard, first sequence, last sequence) -> (write kind, rank, phase) crashed
        self.crashed: defaultdict[tuple[str, str, str, str], set[tuple[str, int, str]]] = defaultdict(set)
        self.swept: Counter[tuple[str, str, str]] = Counter()  # batch -> crashes

    def begin(self, invocation: Invocation) -> InvocationFaults:
        key = (invocation.function, invocation.shard_id, invocation.first_sequence, invocation.last_sequence)
        return _SweepInvocation(self.crashed[key])

    def fired(self, fault: Fault) -> None:
        inv = fault.invocation
        self.swept[(inv.function, inv.shard_id, inv.first_sequence)] += 1

    def finished(self, invocation: Invocation, writes: int, crashed: bool) -> None:
        pass


@dataclass
class _SweepInvocation:
    crashed: set[tuple[str, int, str]]  # shared by the invocations of the same records
    ranks: Counter[str] = field(default_factory=Counter)

    def decide(self, step: WriteStep, index: int) -> str | None:
        rank = self.ranks[step.kind]
        self.ranks[step.kind] += 1
        for phase in PHASES:
            if (step.kind, rank, phase) not in self.crashed:
                self.crashed.add((step.kind, rank, phase))
                return phase
        return None


@dataclass
class _Current:
    invocation: Invocation
    faults: InvocationFaults
    writes: int = 0
    crashed: bool = False


class FaultInjector:
    """Patches botocore so that the plan can crash an invocation at a write call.

    Calls made outside an invocation (the harness's own puts, reads and scans) are never
    touched. ``names`` maps physical resource names to logical ids (for reports).
    """

    def __init__(self, plan: FaultPlan, names: Mapping[str, str]) -> None:
        self.plan = plan
        self.names = dict(names)
        self.faults: list[Fault] = []
        self.write_calls: Counter[str] = Counter()
        self._current: _Current | None = None
        self._lock = threading.Lock()

    @contextmanager
    def installed(self) -> Iterator[FaultInjector]:
        original = BaseClient._make_api_call  # type: ignore[attr-defined]
        injector = self

        def make_api_call(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            return injector._call(original, client, operation_name, api_params)

        BaseClient._make_api_call = make_api_call  # type: ignore[attr-defined]
        try:
            yield self
        finally:
            BaseClient._make_api_call = original  # type: ignore[attr-defined]

    @contextmanager
    def hook(self, invocation: Invocation) -> Iterator[None]:
        """Wraps one invocation (pass as the event source mapping's ``hook``)."""
        current = self._current = _Current(invocation, self.plan.begin(invocation))
        try:
            yield
        finally:
            self._current = None
            self.plan.finished(invocation, current.writes, current.crashed)

    def _target(self, params: Mapping[str, Any]) -> str:
        name = ""
        if "TableName" in params:
            name = str(params["TableName"])
        elif "RequestItems" in params:
            name = ",".join(sorted(params["RequestItems"]))
        elif "StreamName" in params:
            name = str(params["StreamName"])
        elif "StreamARN" in params:
            name = str(params["StreamARN"]).rsplit("/", 1)[-1]
        elif "QueueUrl" in params:
            name = str(params["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1]
        return self.names.get(name, name)

    def _call(self, original: Callable[..., Any], client: Any, operation: str, params: dict[str, Any]) -> Any:
        current = self._current
        if current is None:
            return original(client, operation, params)
        if current.crashed:
            raise InjectedCrash("the invocation already crashed")
        if operation not in WRITE_OPERATIONS:
            return original(client, operation, params)
        step = WriteStep(
            current.invocation.function,
            client.meta.service_model.service_name,
            operation,
            self._target(params),
        )
        with self._lock:
            index = current.writes
            current.writes += 1
            self.write_calls[step.kind] += 1
            phase = current.faults.decide(step, index)
            if phase == "before":
                current.crashed = True
                self._fire(Fault(step, phase, index, current.invocation))
        if phase == "before":
            raise InjectedCrash(f"crash before {step.kind} #{index}")
        if phase != "after":
            return original(client, operation, params)
        # The call is made; whatever it answers (even a failed condition) is lost with the process.
        with contextlib.suppress(Exception):
            original(client, operation, params)
        with self._lock:
            current.crashed = True
            self._fire(Fault(step, phase, index, current.invocation))
        raise InjectedCrash(f"crash after {step.kind} #{index}")

    def _fire(self, fault: Fault) -> None:
        self.faults.append(fault)
        self.plan.fired(fault)

    def summary(self) -> dict[str, Any]:
        by_kind: Counter[str] = Counter(f"{f.step.kind} {f.phase}" for f in self.faults)
        by_function: Counter[str] = Counter(f.step.function for f in self.faults)
        by_phase: Counter[str] = Counter(f.phase for f in self.faults)
        return {
            "total": len(self.faults),
            "by_function": dict(sorted(by_function.items())),
            "by_phase": dict(sorted(by_phase.items())),
            "by_kind": dict(sorted(by_kind.items())),
            "write_kinds_seen": sorted(self.write_calls),
            "write_kinds_not_crashed": sorted(
                kind for kind in self.write_calls if not any(f.step.kind == kind for f in self.faults)
            ),
            "write_calls": sum(self.write_calls.values()),
        }


# ---- data ---------------------------------------------------------------------------------


def load_events(count: int, data_dir: str | Path | None = None, offset: int = 0) -> list[dict[str, Any]]:
    """``count`` real Taobao events in stream order (timestamp, then row), from ``offset``.

    Mapping (EVALUATION.md P1): pv -> view, cart/fav -> add_to_cart, buy -> purchase;
    ``event_id`` is the row number. Raises ``DatasetMissing`` when the file is absent.
    """
    from streamrec.evaluation.datasets import default_data_dir, load_taobao

    stream = load_taobao(Path(data_dir) if data_dir is not None else default_data_dir())
    return [dict(event) for event in stream.events[offset : offset + count]]


FAULT_COUPON_PREFIX = "fault-"


def with_coupon_redemptions(events: Sequence[Mapping[str, Any]], every: int = 4) -> list[dict[str, Any]]:
    """``events`` with a ``coupon_redeemed`` event after every ``every``-th one that has a
    category: same user and time, coupon ``fault-<category>``. :func:`produce` defines
    those coupons with a budget of 1, so repeated categories also exercise refusals."""
    result: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        result.append(dict(event))
        if index % every == every - 1 and event.get("category"):
            result.append(
                {
                    "event_id": f"{event['event_id']}-coupon",
                    "event_type": "coupon_redeemed",
                    "user_id": event["user_id"],
                    "coupon_id": f"{FAULT_COUPON_PREFIX}{event['category']}",
                    "timestamp": event["timestamp"],
                }
            )
    return result


def with_catalog_records(events: Sequence[Mapping[str, Any]], every: int = 3) -> list[dict[str, Any]]:
    """``events`` with an ``item_upsert`` record before every ``every``-th event whose item
    has none yet (title and tag from its category, every third one out of stock), and, for
    every second such item, two more records ``4 * every`` events later: a newer one (new
    title, stock flipped) followed by an older one arriving late (which must change nothing).
    So the fault harness also crashes the catalog's writes and compares its table."""
    result: list[dict[str, Any]] = []
    later: dict[int, list[dict[str, Any]]] = {}
    cataloged: set[str] = set()
    for index, event in enumerate(events):
        result += later.pop(index, [])
        item = event.get("item_id")
        if index % every == 0 and item and item not in cataloged:
            cataloged.add(item)
            category = str(event.get("category") or "misc")
            record = {
                "event_type": "item_upsert",
                "item_id": item,
                "title": f"Product {item} of category {category}",
                "category": category,
                "price": float(len(cataloged)),
                "in_stock": len(cataloged) % 3 != 0,
                "tags": [f"c{category}"],
                "timestamp": event["timestamp"],
            }
            result.append(record)
            if len(cataloged) % 2 == 0:
                newer = {**record, "title": f"Renamed {item}", "in_stock": not record["in_stock"]}
                newer["timestamp"] = record["timestamp"] + 60
                older = {**record, "title": f"Stale {item}", "timestamp": record["timestamp"] - 60}
                later.setdefault(index + 4 * every, []).extend([newer, older])
        result.append(dict(event))
    for position in sorted(later):
        result += later[position]
    return result


def define_coupons(box: Sandbox, events: Sequence[Mapping[str, Any]]) -> None:
    """Create the coupons the events' redemptions name (outside any function: not faulted)."""
    from streamrec.domain.coupons import parse_coupon
    from streamrec.repositories.dynamodb import DynamoCouponRepository, DynamoTable

    named = sorted({str(e["coupon_id"]) for e in events if e.get("event_type") == "coupon_redeemed"})
    if not named:
        return
    table = DynamoTable(box.template.tables["CouponsTable"].name, box.client("dynamodb"))
    repository = DynamoCouponRepository(table)
    for coupon_id in named:
        category = coupon_id.removeprefix(FAULT_COUPON_PREFIX)
        body = {
            "scope": {"category": category},
            "discount": {"kind": "percent", "value": 5},
            "valid_from": 946_684_800,
            "valid_to": 4_102_444_800,
            "budget": 1,
        }
        repository.put(coupon_id, parse_coupon(coupon_id, body))


@dataclass
class ProducerStats:
    records: int = 0
    duplicates: int = 0  # the same event put again (same event_id, later sequence number)
    throttled_retries: int = 0


def produce(
    box: Sandbox,
    events: Sequence[Mapping[str, Any]],
    *,
    rng: random.Random | None = None,
    duplicate_rate: float = 0.0,
    max_gap: int = 40,
    extra: Sequence[tuple[float, dict[str, Any]]] = (),
) -> tuple[ProducerStats, list[dict[str, Any]]]:
    """Put ``events`` on the event stream as a retrying producer would.

    A fraction ``duplicate_rate`` of the events is put a second time 1..``max_gap`` records
    later (a PutRecords whose response was lost, retried). ``extra`` holds raw records
    ``(position, {"Data": bytes, "PartitionKey": str, ...})`` to mix in at fractional
    positions of the event list (poison records). Returns the stats and every put entry
    with its ``SequenceNumber`` and ``ShardId``.
    """
    rng = rng or random.Random(0)
    define_coupons(box, events)
    keyed: list[tuple[float, int, dict[str, Any]]] = []
    stats = ProducerStats()
    for index, event in enumerate(events):
        key = str(event.get("user_id") or event["item_id"])  # catalog records: by item
        entry = {"Data": json.dumps(event).encode(), "PartitionKey": key, "event": event}
        keyed.append((float(index), 0, entry))
        if duplicate_rate and rng.random() < duplicate_rate:
            keyed.append((index + rng.randint(1, max_gap) + 0.5, 1, {**entry, "duplicate": True}))
            stats.duplicates += 1
    keyed += [(position, 2, dict(entry)) for position, entry in extra]
    keyed.sort(key=lambda k: (k[0], k[1]))
    entries = [entry for _, _, entry in keyed]
    put_entries(box, entries, stats)
    return stats, entries


def put_entries(box: Sandbox, entries: list[dict[str, Any]], stats: ProducerStats | None = None) -> None:
    """PutRecords of ``entries`` in order (chunks of 500, failed records retried); stores
    each record's ``SequenceNumber`` and ``ShardId`` in its entry."""
    kinesis = box.client("kinesis")
    stream = box.template.outputs.get("EventStreamName") or next(iter(box.template.streams.values())).name
    for start in range(0, len(entries), PUT_RECORDS_LIMIT):
        pending = entries[start : start + PUT_RECORDS_LIMIT]
        for _ in range(10):
            response = kinesis.put_records(
                StreamName=stream,
                Records=[{"Data": e["Data"], "PartitionKey": e["PartitionKey"]} for e in pending],
            )
            failed = []
            for entry, result in zip(pending, response["Records"], strict=True):
                if "SequenceNumber" in result:
                    entry["SequenceNumber"], entry["ShardId"] = result["SequenceNumber"], result["ShardId"]
                else:
                    failed.append(entry)
            if not failed:
                break
            if stats is not None:
                stats.throttled_retries += len(failed)
            pending = failed
        else:
            raise RuntimeError(f"PutRecords kept failing for {len(pending)} records")
        if stats is not None:
            stats.records += len(entries[start : start + PUT_RECORDS_LIMIT])


# ---- one replay ---------------------------------------------------------------------------


@dataclass
class ReplayConfig:
    """How one replay runs. ``None`` batch sizes mean the template's ``BatchSize``."""

    shards: int = 2
    batch_size: int | None = None
    similarity_batch_size: int | None = None
    duplicate_rate: float = 0.0
    redelivery_rate: float = 0.0
    seed: int = 7
    max_retries: int | None = None  # None: the template's MaximumRetryAttempts
    bisect: bool | None = None  # None: the template's BisectBatchOnFunctionError


@dataclass
class ReplayResult:
    snapshot: Snapshot  # normalized
    esm: dict[str, EsmStats]
    esm_errors: dict[str, list[str]]
    producer: ProducerStats
    dead_letters: int
    shards_drained: bool
    faults: dict[str, Any] | None = None
    sweep: dict[str, int] | None = None
    seconds: float = 0.0


def ordered_sources(box: Sandbox) -> list[Any]:
    """Kinesis event sources, those reading the event stream first (the ingest), then the
    ones downstream (the similarity function on the changed-items stream)."""
    event_stream = box.template.outputs.get("EventStreamName")
    sources = list(box.template.kinesis_sources)
    return sorted(sources, key=lambda s: 0 if s.stream.name == event_stream else 1)


def drain_all(
    box: Sandbox,
    config: ReplayConfig,
    hook: Callable[[Invocation], Any] | None = None,
    mappings: dict[str, EventSourceMapping] | None = None,
) -> dict[str, EventSourceMapping]:
    """Drain every event source in order (creating the mappings on first use)."""
    rng = random.Random(config.seed + 1)
    mappings = {} if mappings is None else mappings
    event_stream = box.template.outputs.get("EventStreamName")
    for source in ordered_sources(box):
        name = f"{source.function_logical_id}.{source.event_name}"
        if name not in mappings:
            upstream = source.stream.name == event_stream
            mappings[name] = EventSourceMapping(
                box,
                source,
                batch_size=config.batch_size if upstream else config.similarity_batch_size,
                max_retries=config.max_retries,
                bisect=config.bisect,
                hook=hook,
                rng=rng,
                redelivery_rate=config.redelivery_rate,
            )
        mappings[name].drain()
    return mappings


def resource_names(box: Sandbox) -> dict[str, str]:
    t = box.template
    names = {table.name: logical for logical, table in t.tables.items()}
    names.update({stream.name: logical for logical, stream in t.streams.items()})
    names.update({queue.name: logical for logical, queue in t.queues.items()})
    return names


def replay(
    events: Sequence[Mapping[str, Any]], config: ReplayConfig, plan: FaultPlan | None = None
) -> ReplayResult:
    """One replay of ``events`` in a fresh sandbox; see the module docstring."""
    started = time.monotonic()
    with sandbox(parameter_overrides={"EventStreamShards": config.shards}) as box:
        producer, _ = produce(
            box, events, rng=random.Random(config.seed), duplicate_rate=config.duplicate_rate
        )
        injector = FaultInjector(plan, resource_names(box)) if plan is not None else None
        with injector.installed() if injector is not None else nullcontext():
            mappings = drain_all(box, config, injector.hook if injector is not None else None)
        snapshot = normalized(box.snapshot())
        result = ReplayResult(
            snapshot=snapshot,
            esm={name: m.stats for name, m in mappings.items()},
            esm_errors={name: m.errors for name, m in mappings.items()},
            producer=producer,
            dead_letters=dlq.message_count(box.client("sqs"), box.dead_letter_queue_url),
            shards_drained=all(m.shards_drained() for m in mappings.values()),
            faults=injector.summary() if injector is not None else None,
        )
    if isinstance(plan, SweepFaults):
        result.sweep = {"batches_swept": len(plan.swept), "crashes": sum(plan.swept.values())}
    result.seconds = time.monotonic() - started
    return result


# ---- the harness --------------------------------------------------------------------------


@dataclass
class FaultReport:
    events: int
    sweep_events: int
    faults_injected: int
    duplicates_sent: int
    differences: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.differences == 0 and self.details.get("problems", []) == []

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "sweep_events": self.sweep_events,
            "faults_injected": self.faults_injected,
            "duplicates_sent": self.duplicates_sent,
            "differences": self.differences,
            "ok": self.ok,
            **self.details,
        }


def _compare(label: str, clean: ReplayResult, faulty: ReplayResult) -> dict[str, Any]:
    differences = diff_snapshots(clean.snapshot, faulty.snapshot)
    problems = []
    if faulty.dead_letters:
        problems.append(f"{label}: {faulty.dead_letters} dead letters (an injected fault was given up on)")
    if not faulty.shards_drained:
        problems.append(f"{label}: a shard was not drained")
    return {
        "rows_compared": {table: len(rows) for table, rows in clean.snapshot.items()},
        "differences": len(differences),
        "difference_examples": [d.describe() for d in differences[:20]],
        "problems": problems,
        "esm": {name: stats.as_dict() for name, stats in faulty.esm.items()},
        "function_errors_seen": {name: errors[:10] for name, errors in faulty.esm_errors.items()},
        "faults": faulty.faults,
        "seconds": {"clean": round(clean.seconds, 1), "faulty": round(faulty.seconds, 1)},
    }


def run_fault_injection(
    events: Sequence[Mapping[str, Any]],
    *,
    sweep_events: int = 8,
    batch_size: int = 100,
    similarity_batch_size: int = 100,
    duplicate_rate: float = 0.1,
    redelivery_rate: float = 0.15,
    crash_rate: float = 0.35,
    coverage: int = 2,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> FaultReport:
    """The whole harness: a sweep over the first ``sweep_events`` events (every write rank
    of every batch, before and after), then the sampled faulty replay of all ``events``,
    each compared with its clean run."""
    say = progress or (lambda _text: None)
    details: dict[str, Any] = {
        "config": {
            "batch_size": batch_size,
            "similarity_batch_size": similarity_batch_size,
            "duplicate_rate": duplicate_rate,
            "redelivery_rate": redelivery_rate,
            "crash_rate": crash_rate,
            "coverage": coverage,
            "seed": seed,
        }
    }
    faults = duplicates = differences = 0
    problems: list[str] = []
    if sweep_events:
        subset = list(events[:sweep_events])
        sweep_config = ReplayConfig(
            shards=1, batch_size=4, similarity_batch_size=4, max_retries=-1, bisect=False, seed=seed
        )
        say(f"sweep: clean run of {len(subset)} events")
        clean = replay(subset, ReplayConfig(shards=1, batch_size=4, similarity_batch_size=4, seed=seed))
        say("sweep: crashing every write rank of every batch, before and after")
        swept = replay(subset, sweep_config, SweepFaults())
        sweep = _compare("sweep", clean, swept)
        sweep["batches_swept"] = (swept.sweep or {}).get("batches_swept", 0)
        details["sweep"] = sweep
        faults += (swept.faults or {}).get("total", 0)
        differences += sweep["differences"]
        problems += sweep["problems"]
    say(f"clean run of {len(events)} events")
    clean = replay(events, ReplayConfig(seed=seed))
    say("faulty run: crashes, duplicates, re-deliveries, bisections")
    faulty_config = ReplayConfig(
        batch_size=batch_size,
        similarity_batch_size=similarity_batch_size,
        duplicate_rate=duplicate_rate,
        redelivery_rate=redelivery_rate,
        seed=seed,
    )
    faulty = replay(events, faulty_config, SampledFaults(random.Random(seed), crash_rate, coverage))
    sampled = _compare("sampled", clean, faulty)
    redelivered = sum(stats.redelivered_records for stats in faulty.esm.values())
    sampled["duplicates"] = {
        "producer_duplicates": faulty.producer.duplicates,
        "redelivered_records": redelivered,
        "redeliveries": sum(stats.redeliveries for stats in faulty.esm.values()),
    }
    details["sampled"] = sampled
    faults += (faulty.faults or {}).get("total", 0)
    duplicates += faulty.producer.duplicates + redelivered
    differences += sampled["differences"]
    problems += sampled["problems"]
    details["problems"] = problems
    return FaultReport(
        events=len(events),
        sweep_events=min(sweep_events, len(events)),
        faults_injected=faults,
        duplicates_sent=duplicates,
        differences=differences,
        details=details,
    )
