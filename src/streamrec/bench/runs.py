"""The measurements of ``streamrec bench``; each returns a plain dict for results.json.

* :func:`ingest_compute` — events/s per core through JSON decoding, ``parse_event`` and the
  production ``IngestService`` on the in-memory adapters (CPU time of this process).
* :func:`dynamodb_cost` — units per event of the production adapters over a Taobao replay
  (metered client, :mod:`streamrec.bench.dynamo`) against a naive one-row-per-pair design.
* :func:`moto_cross_check` — the same adapters on moto and on the metered client, a slice.
* :func:`api` — round trips and read units per request, scoring compute p50/p99, cache hit rate.
* :func:`end_to_end` — Kinesis -> handlers -> DynamoDB on the local stack (moto, in-process).
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import random
import socket
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.bench.dynamo import MeteredDynamoClient, TableMeter, read_units, row_kind, write_units
from streamrec.domain.catalog import CatalogService, SequencedUpsert
from streamrec.domain.ingest import IngestService, SequencedEvent
from streamrec.domain.model import POPULAR_ROW, Delta, HistoryItem, UserState, basket_row, sequence_key
from streamrec.domain.recommend import PADDING_SOURCES, RecommendationService
from streamrec.domain.similarity import SimilarityService
from streamrec.domain.trends import TrendsService
from streamrec.events import BASKET_EVENT_TYPES, parse_event, parse_item_upsert
from streamrec.repositories.cache import CacheConfig, CachingSimilarityRepository
from streamrec.repositories.dynamodb import (
    COUNT_PREFIX,
    WRITE_CONCURRENCY,
    DynamoCatalogRepository,
    DynamoCooccurrenceRepository,
    DynamoItemStatsRepository,
    DynamoSimilarityRepository,
    DynamoTable,
    DynamoTrendsRepository,
    DynamoUserRepository,
)
from streamrec.repositories.fast_reads import register_fast_reads
from streamrec.repositories.item_size import item_size
from streamrec.repositories.memory import (
    InMemoryChangePublisher,
    InMemoryCooccurrenceRepository,
    InMemoryItemStatsRepository,
    InMemorySimilarityRepository,
    InMemoryTrendsRepository,
    InMemoryUserRepository,
)
from streamrec.runtime import tune_collector_for_batches
from streamrec.settings import Settings
from streamrec.wiring import DYNAMODB_CLIENT_CONFIG

SHARD = "shardId-000000000000"
Progress = Callable[[str], None]

# Logical table names of template.yaml and the key attributes of each.
USERS, COUNTS, STATS, SIMILARITY, PAIRS = "users", "cooccurrence", "item_stats", "similarity", "pairs"
TRENDS, CATALOG = "trends", "catalog"
KEY_SCHEMA: dict[str, tuple[str, ...]] = {
    USERS: ("user_id",),
    CATALOG: ("item_id",),
    TRENDS: ("item_id", "day"),
    COUNTS: ("item_id", "block"),
    STATS: ("item_id",),
    SIMILARITY: ("item_id",),
    PAIRS: ("item_id", "neighbour"),  # the naive design: pairs whose count changed
    "pairs_all": ("item_id", "neighbour"),  # the naive design: every (event, window item) pair
}
ALL_PAIRS = "pairs_all"
# The tables each stream function writes or reads, as the bench meters them.
INGEST_TABLES = (USERS, COUNTS, STATS, TRENDS)
SIMILARITY_TABLES = (COUNTS, STATS, SIMILARITY, TRENDS)
# The similarity function's batch in the main run: what the changed-items stream's 2 s
# batching window gathers at some 150 events/s (1.7 records per event at ingest batches of
# 1,000). Below that, batches are smaller and cost more per event; a backlog fills them up
# to the template's BatchSize (similarity_backlog).
SIMILARITY_BATCH = 500
# The similarity stage's calls each wait this long first (RoundTripClock): long enough for
# concurrent calls to overlap as real ones do, short enough for a 20,000-event replay.
PROBE_LATENCY_SECONDS = 0.002


def _quiet(_: str) -> None:
    return None


class RoundTripClock:
    """Wraps a client: every call first waits ``latency`` seconds, a stand-in for
    DynamoDB's round trip that overlaps across threads as real calls do, and the time during
    which at least one call is waiting is summed. ``round_trips``, that time over the mean
    wait (a sleep overshoots a little), is the number of calls on the critical path: the
    code's sequential calls plus, for calls made concurrently, one per wave. The wrapped
    call runs after its wait, outside the timed span: its work is CPU, which the bench
    measures apart (wrap a :class:`CallCpu` to know what the wrapped client spent)."""

    def __init__(self, inner: Any, latency: float = PROBE_LATENCY_SECONDS) -> None:
        self.inner = inner
        self.latency = latency
        self.calls = 0
        self.busy_s = 0.0
        self.waited_s = 0.0  # summed over calls
        self._in_flight = 0
        self._since = 0.0
        self._lock = threading.Lock()

    @property
    def round_trips(self) -> float:
        return self.busy_s / (self.waited_s / self.calls) if self.calls else 0.0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def timed(**kwargs: Any) -> Any:
            with self._lock:
                if self._in_flight == 0:
                    self._since = time.perf_counter()
                self._in_flight += 1
                self.calls += 1
            started = time.perf_counter()
            try:
                time.sleep(self.latency)
            finally:
                with self._lock:
                    now = time.perf_counter()
                    self.waited_s += now - started
                    self._in_flight -= 1
                    if self._in_flight == 0:
                        self.busy_s += now - self._since
            return method(**kwargs)

        return timed


class CallCpu:
    """Wraps a client: the CPU each call costs its calling thread (botocore's serialising,
    signing, HTTP and parsing), summed under the current ``phase``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.phase = ""
        self.calls: Counter[str] = Counter()
        self.cpu_s: defaultdict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def timed(**kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return method(**kwargs)
            finally:
                spent = time.thread_time() - started
                with self._lock:
                    self.calls[self.phase] += 1
                    self.cpu_s[self.phase] += spent

        return timed


def _sequenced(payloads: Sequence[bytes], start: int) -> list[SequencedEvent]:
    """What the ingest handler does per record: decode JSON, validate, tag with sequence."""
    return [
        SequencedEvent(sequence_key(start + n), parse_event(json.loads(data)))
        for n, data in enumerate(payloads)
    ]


# ---- ingest compute ---------------------------------------------------------------------------
def ingest_compute(
    events: Sequence[Mapping[str, Any]],
    settings: Settings,
    batch_sizes: Sequence[int] = (1, 100, 1000),
    repeats: int = 3,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """Events per CPU-second (one core: the replay is single-threaded) per batch size, with
    the collector tuned as the ingest function's cold start tunes it."""
    payloads = [json.dumps(e, separators=(",", ":")).encode() for e in events]
    result: dict[str, Any] = {"events": len(payloads), "repeats": repeats, "by_batch": {}}
    # Each batch size runs in a fresh interpreter holding only the payloads, as a Lambda
    # container only ever runs batches of its own size: measured in one process, a size ran
    # ~25% slower after the others had churned the heap (and a forked child pays a
    # copy-on-write fault on every payload it touches).
    context = multiprocessing.get_context("spawn")
    for size in batch_sizes:
        with context.Pool(1) as pool:
            rates = pool.apply(_ingest_rates, (payloads, settings, size, repeats))
        median = statistics.median(rates)
        progress(f"ingest compute: batch {size}: {median:,.0f} events/s (median of {repeats})")
        result["by_batch"][str(size)] = {"median_events_per_s": statistics.median(rates), "runs": rates}
    return result


def _ingest_rates(payloads: Sequence[bytes], settings: Settings, size: int, repeats: int) -> list[float]:
    """``repeats`` replays at batch ``size`` (in a fresh process), with the collector tuned
    as the ingest function's cold start tunes it."""
    tune_collector_for_batches()
    return [_ingest_rate(payloads, settings, size) for _ in range(repeats)]


def _ingest_rate(payloads: Sequence[bytes], settings: Settings, size: int) -> float:
    """Events per CPU-second of one replay of ``payloads`` in batches of ``size``."""
    service = IngestService(
        settings,
        InMemoryUserRepository(),
        InMemoryCooccurrenceRepository(),
        InMemoryItemStatsRepository(),
        InMemoryChangePublisher(),
        trends=InMemoryTrendsRepository(),  # the hourly counters production keeps
    )
    # The data set and earlier runs stay in the heap of this process, not of a Lambda:
    # keep them out of the collector's passes (the run's own objects are collected).
    gc.collect()
    gc.freeze()
    started = time.process_time()
    for offset in range(0, len(payloads), size):
        service.ingest(_sequenced(payloads[offset : offset + size], offset + 1), SHARD)
        # The in-memory tables stand in for DynamoDB, whose rows are not in a Lambda's
        # heap: after each batch, freeze what is still alive (the tables) so that the
        # collector's full passes walk only a batch's own objects, as in Lambda.
        gc.freeze()
    rate = len(payloads) / max(time.process_time() - started, 1e-9)
    gc.unfreeze()  # the next run starts from a collected heap
    return rate


# ---- ingest with its DynamoDB calls ---------------------------------------------------------
# The template's tables behind the bench's logical names.
TEMPLATE_TABLES = {
    USERS: "UsersTable",
    COUNTS: "CooccurrenceTable",
    STATS: "ItemStatsTable",
    TRENDS: "TrendsTable",
    CATALOG: "CatalogTable",
    SIMILARITY: "SimilarityTable",
}


def _template_tables(client: Any, resolved: Any) -> Tables:
    """The template's tables, created through ``client``, behind the bench's logical names."""
    names = {}
    for logical, table_id in TEMPLATE_TABLES.items():
        table = resolved.tables[table_id]
        client.create_table(**table.create_kwargs)
        names[logical] = table.name
    return Tables(client, names)


def ingest_with_calls(
    events: Sequence[Mapping[str, Any]],
    settings: Settings,
    template: Path,
    batch: int = 1000,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """CPU per event of the ingest with the production DynamoDB adapters, botocore included
    (serialising, signing, HTTP, parsing): a moto server in another process answers, so this
    process's CPU time is the function's side only. The in-memory figure leaves all of that out.
    The similarity function runs on each batch's announcements too, and each function's
    calls are timed one by one (their botocore CPU per call: the similarity function's
    carry larger items)."""
    import subprocess
    import sys
    import urllib.request

    import boto3

    from streamrec.local.template import load_template

    payloads = [json.dumps(e, separators=(",", ":")).encode() for e in events]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()  # noqa: S310 - local
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(
                        "the moto server for the ingest-with-calls run did not start"
                    ) from None
                time.sleep(0.2)
        # Configured and parsing reads as the functions' client (wiring.dynamodb_client).
        client = register_fast_reads(
            boto3.client(
                "dynamodb",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
                config=DYNAMODB_CLIENT_CONFIG,
            )
        )
        tables = _template_tables(client, load_template(template, endpoint_url=endpoint))
        per_call = CallCpu(client)
        service = tables.ingest(settings, client=per_call)
        similarity = tables.similarity(settings, client=per_call)
        cpu = similarity_cpu = 0.0
        gc.collect()
        gc.freeze()  # the data set is no Lambda's heap: keep it out of the collector's passes
        for offset in range(0, len(payloads), batch):
            progress(f"ingest with DynamoDB calls: {offset:,}/{len(payloads):,} events")
            per_call.phase = "ingest"
            started = time.process_time()  # JSON decoding and parsing included, as noted
            sequenced = _sequenced(payloads[offset : offset + batch], offset + 1)
            service.ingest(sequenced, SHARD)
            cpu += time.process_time() - started
            # The trending lists are refreshed as of the newest event, as in the cost replay.
            tables.replay_time = max(tables.replay_time, *(s.event.timestamp for s in sequenced))
            assert isinstance(service.changes, InMemoryChangePublisher)
            per_call.phase = "similarity"
            started = time.process_time()
            _similarity_pass(similarity, service.changes)
            similarity_cpu += time.process_time() - started
    finally:
        gc.unfreeze()
        server.terminate()
        server.wait(timeout=10)
    n = len(payloads)
    return {
        "events": n,
        "batch": batch,
        "cpu_s_per_event": cpu / n,
        "events_per_cpu_s": n / max(cpu, 1e-9),
        "calls_per_event": per_call.calls["ingest"] / n,
        "botocore_cpu_s_per_call": per_call.cpu_s["ingest"] / max(per_call.calls["ingest"], 1),
        "similarity": {
            "cpu_s_per_event": similarity_cpu / n,
            "calls_per_event": per_call.calls["similarity"] / n,
            "botocore_cpu_s_per_call": per_call.cpu_s["similarity"] / max(per_call.calls["similarity"], 1),
        },
        "note": "production adapters + botocore against a moto server in another process (HTTP, "
        "no TLS); this process's CPU: JSON, planning, botocore, the adapters' threads",
    }


# ---- DynamoDB cost ----------------------------------------------------------------------------
@dataclass
class Tables:
    """The production adapters (and the naive pair table) on one client."""

    client: Any
    names: dict[str, str]
    # The replay's clock (its newest event), as of which the trending lists are refreshed.
    replay_time: float = 0.0

    def table(self, logical: str, client: Any | None = None) -> DynamoTable:
        """The adapter's table, on ``client`` (default: the tables')."""
        return DynamoTable(self.names[logical], client if client is not None else self.client)

    def trends(self, settings: Settings, client: Any | None = None) -> DynamoTrendsRepository:
        return DynamoTrendsRepository(self.table(TRENDS, client), settings.trends_retention_days)

    def ingest(self, settings: Settings, naive: bool = False, client: Any | None = None) -> IngestService:
        """As deployed (wiring.ingest_service), on ``client`` (default: the tables')."""
        counts: Any = (
            NaivePairRepository(self.table(PAIRS, client), self.table(ALL_PAIRS, client))
            if naive
            else DynamoCooccurrenceRepository(
                self.table(COUNTS, client),
                settings.cooccurrence_blocks,
                budget_bytes=settings.count_row_budget_bytes,
            )
        )
        return IngestService(
            settings,
            DynamoUserRepository(self.table(USERS, client)),
            counts,
            DynamoItemStatsRepository(self.table(STATS, client)),
            InMemoryChangePublisher(),  # Kinesis, not DynamoDB: priced separately
            trends=self.trends(settings, client),
            # As deployed (CATALOG_TABLE is set for every function): events without a
            # category read their item's (the Taobao events all carry one).
            catalog=DynamoCatalogRepository(self.table(CATALOG, client)),
        )

    def similarity(self, settings: Settings, client: Any | None = None) -> SimilarityService:
        """As deployed (wiring.similarity_service), on ``client`` (default: the tables')."""
        return SimilarityService(
            settings,
            DynamoCooccurrenceRepository(self.table(COUNTS, client), settings.cooccurrence_blocks),
            DynamoItemStatsRepository(self.table(STATS, client)),
            DynamoSimilarityRepository(self.table(SIMILARITY, client)),
            trending=TrendsService(
                settings,
                self.trends(settings, client),
                clock=lambda: self.replay_time,
                concurrency=WRITE_CONCURRENCY,
            ),
            # A rebuild reads its rows' content lists (consistent reads).
            catalog=DynamoCatalogRepository(self.table(CATALOG, client)),
            concurrency=WRITE_CONCURRENCY,
        )

    def recommendations(self, settings: Settings) -> RecommendationService:
        return RecommendationService(
            settings,
            DynamoUserRepository(self.table(USERS)),
            DynamoSimilarityRepository(self.table(SIMILARITY)),
        )


def metered_tables() -> Tables:
    names = {logical: f"bench-{logical}" for logical in KEY_SCHEMA}
    return Tables(MeteredDynamoClient({names[k]: v for k, v in KEY_SCHEMA.items()}), names)


class NaivePairRepository:
    """The naive design: one row per (item, neighbour) pair, one guarded UpdateItem per pair
    of each event (never merged, never packed). Only the write path is needed.

    ``apply`` writes the pairs whose max-based count changed (a strict baseline);
    :meth:`write_every_pair` writes every (event item, window item) pair both ways, as a
    plain co-occurrence counter would (the baseline of the issue)."""

    def __init__(self, table: DynamoTable, all_pairs: DynamoTable | None = None) -> None:
        self.table = table
        self.all_pairs = all_pairs

    def write_every_pair(
        self, item: str, window: Sequence[str], sequence: str, shard: str, row: Callable[[str], str] = str
    ) -> None:
        """``row`` names a pair's row (e.g. ``basket_row`` for basket co-occurrence)."""
        assert self.all_pairs is not None
        for other in window:
            if other == item:
                continue
            for a, b in ((item, other), (other, item)):
                self.all_pairs.apply_guarded(
                    {"item_id": {"S": row(a)}, "neighbour": {"S": b}}, [(sequence, "c", 1.0)], shard
                )

    def get_rows(self, item_ids: Any) -> dict[str, dict[str, float]]:
        raise NotImplementedError("the naive design is only used to meter ingest writes")

    def apply(self, deltas: Mapping[tuple[str, int], Sequence[Delta]], shard: str) -> None:
        for (item, _block), row_deltas in deltas.items():
            for delta in row_deltas:
                self.table.apply_guarded(
                    {"item_id": {"S": item}, "neighbour": {"S": delta[1]}},
                    [(delta[0], "c", delta[2])],
                    shard,
                )


def _phase(tables: Tables, phase: str) -> None:
    if isinstance(tables.client, MeteredDynamoClient):  # not moto
        tables.client.set_phase(phase)


def _replay(
    tables: Tables,
    payloads: Sequence[bytes],
    settings: Settings,
    batch: int,
    naive: bool = False,
    similarity: bool = False,
    progress: Progress = _quiet,
    label: str = "",
    consume: Callable[[SimilarityService, InMemoryChangePublisher], int] | None = None,
) -> dict[str, float]:
    """Ingest ``payloads`` in batches; with ``similarity``, hand each batch's announcements
    to the similarity service (``consume``; default: in chunks of SIMILARITY_BATCH items, as
    the stream would; its calls, and then the ingest's too, through a RoundTripClock each)."""
    consume = consume or _similarity_pass
    # The similarity function's calls also through a CallCpu: what the metered client spends
    # is DynamoDB's work, not the function's.
    metered_cpu = CallCpu(tables.client)
    ingest_clock, clock = RoundTripClock(tables.client), RoundTripClock(metered_cpu)
    ingest = tables.ingest(settings, naive, ingest_clock if similarity else None)
    publisher = ingest.changes
    assert isinstance(publisher, InMemoryChangePublisher)
    service = tables.similarity(settings, clock) if similarity else None
    announcements = 0
    similarity_cpu = 0.0
    try:
        for offset in range(0, len(payloads), batch):
            if offset % max(batch, 1000) == 0:
                progress(f"{label}: {offset:,}/{len(payloads):,} events")
            sequenced = _sequenced(payloads[offset : offset + batch], offset + 1)
            _phase(tables, "ingest")
            plan = ingest.ingest(sequenced, SHARD)
            tables.replay_time = max(tables.replay_time, *(s.event.timestamp for s in sequenced))
            if naive:  # batch 1: the event's item and the user's window after it
                event = sequenced[0].event
                state = plan.users.get(event.user_id)
                window = [entry.item_id for entry in state.items] if state else []
                assert isinstance(ingest.cooccurrence, NaivePairRepository)
                if event.item_id in window:
                    ingest.cooccurrence.write_every_pair(event.item_id, window, sequenced[0].sequence, SHARD)
                # Basket co-occurrence too: every (event item, basket item) pair of a cart or
                # purchase event, both ways, in basket rows.
                if state and event.event_type in BASKET_EVENT_TYPES and event.item_id in state.basket:
                    ingest.cooccurrence.write_every_pair(
                        event.item_id, state.basket, sequenced[0].sequence, SHARD, row=basket_row
                    )
            if service is None:
                publisher.drain()
                continue
            _phase(tables, "similarity")
            # The metered tables stand in for DynamoDB, whose rows are in no Lambda's heap:
            # freeze them out of the collector, whose passes the similarity function would
            # otherwise be charged for walking them (a third of its CPU at 20,000 events).
            gc.collect()
            gc.freeze()
            started = time.process_time()
            announcements += consume(service, publisher)
            similarity_cpu += time.process_time() - started
    finally:
        gc.unfreeze()
    return {
        "announcements": announcements,
        "similarity_cpu_s": similarity_cpu,
        "similarity_round_trips": clock.round_trips,
        # The service's own CPU: without the metered stand-in's work (DynamoDB's, not the function's).
        "similarity_service_cpu_s": max(similarity_cpu - sum(metered_cpu.cpu_s.values()), 0.0),
        "ingest_round_trips": ingest_clock.round_trips,
    }


def _similarity_pass(service: SimilarityService, publisher: InMemoryChangePublisher) -> int:
    """What the similarity function does with one ingest batch's announcements: chunks of
    SIMILARITY_BATCH items, as the changed-items stream delivers them. Returns their number."""
    changed, norm_changed, popular = publisher.drain()
    announced = sorted(changed | norm_changed | popular)
    for start in range(0, len(announced), SIMILARITY_BATCH):
        chunk = set(announced[start : start + SIMILARITY_BATCH])
        service.recompute(chunk & changed, chunk & norm_changed, chunk & popular)
    return len(announced)


def requests(calls: Mapping[str, int]) -> int:
    """DynamoDB requests among a meter's counts (``BatchWriteItem.Put`` and the like count the
    items a request carries, not requests)."""
    return sum(count for operation, count in calls.items() if "." not in operation)


@dataclass
class BacklogConsumer:
    """The similarity function behind a backlog: the changed-items stream's records (one per
    announced item and ingest batch, flags apart) queue up, and each invocation takes the
    ``batch`` oldest, so an item announced by several ingest batches in one invocation is
    handled once. Flushes what is left after ``ingest_batches`` ingest batches."""

    batch: int
    ingest_batches: int
    queue: list[tuple[str, bool, bool, bool]] = field(default_factory=list)
    seen_batches: int = 0
    invocations: int = 0

    def __call__(self, service: SimilarityService, publisher: InMemoryChangePublisher) -> int:
        changed, norm_changed, popular = publisher.drain()
        self.queue.extend(
            (item, item in changed, item in norm_changed, item in popular)
            for item in sorted(changed | norm_changed | popular)
        )
        self.seen_batches += 1
        last = self.seen_batches >= self.ingest_batches
        handled = 0
        while len(self.queue) >= self.batch or (last and self.queue):
            records, self.queue = self.queue[: self.batch], self.queue[self.batch :]
            self.invocations += 1
            service.recompute(
                {item for item, flag, _, _ in records if flag},
                {item for item, _, flag, _ in records if flag},
                {item for item, _, _, flag in records if flag},
            )
            handled += len(records)
        return handled


def similarity_backlog(
    events: Sequence[Mapping[str, Any]],
    settings: Settings,
    batches: Sequence[int],
    ingest_batch: int = 1000,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """The similarity function's units, CPU and critical-path calls per event when it works
    through a backlog ``batch`` records at a time, for each of ``batches`` (one replay each
    on fresh metered tables)."""
    payloads = [json.dumps(e, separators=(",", ":")).encode() for e in events]
    n = len(payloads)
    result: dict[str, Any] = {"events": n, "ingest_batch": ingest_batch, "batches": {}}
    for batch in batches:
        tables = metered_tables()
        consumer = BacklogConsumer(batch, -(-n // ingest_batch))
        stage = _replay(
            tables,
            payloads,
            settings,
            ingest_batch,
            similarity=True,
            progress=progress,
            label=f"similarity backlog, batches of {batch:,}",
            consume=consumer,
        )
        by_table = _units(tables, SIMILARITY_TABLES, n, phase="similarity")
        units = by_table["total"]
        result["batches"][str(batch)] = {
            "invocations": consumer.invocations,
            "records": stage["announcements"],
            "wru_per_event": units["wru_per_event"],
            "rru_per_event": units["rru_per_event"],
            # Each request costs botocore CPU on the deployed function (not in the metered CPU).
            "calls_per_event": sum(requests(by_table[name]["calls"]) for name in SIMILARITY_TABLES) / n,
            "service_cpu_s_per_event": stage["similarity_service_cpu_s"] / n,
            "round_trips_per_event": stage["similarity_round_trips"] / n,
        }
    return result


def _units(tables: Tables, logical: Sequence[str], events: int, phase: str = "ingest") -> dict[str, Any]:
    client: MeteredDynamoClient = tables.client
    meters = client.phases.get(phase, {})
    out: dict[str, Any] = {}
    for name in logical:
        meter = meters.get(tables.names[name]) or TableMeter()
        out[name] = {
            "wru_per_event": meter.write_units / events,
            "rru_per_event": meter.read_units / events,
            "writes_per_event": meter.writes / events,
            "reads_per_event": meter.reads / events,
            "missing_reads_per_event": meter.missing_reads / events,
            "calls": dict(meter.calls),
        }
    out["total"] = {
        "wru_per_event": sum(out[n]["wru_per_event"] for n in logical),
        "rru_per_event": sum(out[n]["rru_per_event"] for n in logical),
    }
    return out


def _size_histogram(tables: Tables, logical: str) -> dict[str, Any]:
    sizes = [item_size(i) for i in tables.client.items(tables.names[logical])]
    if not sizes:
        return {"rows": 0}
    return {
        "rows": len(sizes),
        "mean_bytes": statistics.fmean(sizes),
        "max_bytes": max(sizes),
        "over_1kb": sum(s > 1024 for s in sizes) / len(sizes),
    }


def dynamodb_cost(
    events: Sequence[Mapping[str, Any]],
    settings: Settings,
    batch: int = 1000,
    naive_window: int = 20,
    block_sweep: Sequence[int] = (4,),
    progress: Progress = _quiet,
) -> tuple[dict[str, Any], Tables]:
    """Units per event: production (``settings``) at ``batch``, with the similarity stage;
    the naive design at batch 1 with a ``naive_window``-item window (and at the production
    window when it differs). Returns the results and the production tables (for the API)."""
    payloads = [json.dumps(e, separators=(",", ":")).encode() for e in events]
    n = len(payloads)
    # One replay: ingest batches metered as phase "ingest", the similarity function's work on
    # each batch's announcements as phase "similarity".
    similarity_tables = metered_tables()
    stage = _replay(
        similarity_tables,
        payloads,
        settings,
        batch,
        similarity=True,
        progress=progress,
        label="cost: production ingest + similarity",
    )
    client: MeteredDynamoClient = similarity_tables.client
    ingest_units = _units(similarity_tables, INGEST_TABLES, n)
    similarity_units = _units(similarity_tables, SIMILARITY_TABLES, n, phase="similarity")
    similarity_stage = {
        **similarity_units,
        "wru_per_event": similarity_units["total"]["wru_per_event"],
        "rru_per_event": similarity_units["total"]["rru_per_event"],
        "announcements_per_event": stage["announcements"] / n,
        # CPU of the similarity service per event, metered client included (an upper bound),
        # and without the metered client's own work (the service's: what the cost model uses).
        "cpu_s_per_event": stage["similarity_cpu_s"] / n,
        "service_cpu_s_per_event": stage["similarity_service_cpu_s"] / n,
        # Its DynamoDB calls on the critical path (concurrent ones overlap), per event.
        "round_trips_per_event": stage["similarity_round_trips"] / n,
    }
    total = {
        "total": {
            key: ingest_units["total"][key] + similarity_stage[key]
            for key in ("wru_per_event", "rru_per_event")
        }
    }
    del client
    result: dict[str, Any] = {
        "events": n,
        "batch": batch,
        "history_length": settings.history_length,
        "cooccurrence_blocks": settings.cooccurrence_blocks,
        "production_ingest": ingest_units,
        # The ingest's DynamoDB calls on its critical path (its writes are concurrent), per event.
        "ingest_round_trips_per_event": stage["ingest_round_trips"] / n,
        "similarity_stage": similarity_stage,
        "production_total": total["total"],
        "row_sizes": {
            name: _size_histogram(similarity_tables, name)
            for name in (USERS, COUNTS, STATS, SIMILARITY, TRENDS)
        },
        "naive": {},
        # The production design's ingest WRU/event at each window the naive design is run at.
        "production_by_window": {str(settings.history_length): ingest_units["total"]["wru_per_event"]},
    }
    windows = [naive_window] + ([settings.history_length] if settings.history_length != naive_window else [])
    for window in windows:
        naive = metered_tables()
        # Batch 1: the naive design's pair writes follow each event's window.
        _replay(
            naive,
            payloads,
            replace(settings, history_length=window),
            1,
            naive=True,
            progress=progress,
            label=f"cost: naive design, window {window}",
        )
        # It differs from production in its pair rows only: its user, stats and trend-counter
        # writes are production's at the same batch size and window (replayed at batch 1,
        # they would be written once per event instead of once per batch).
        if window == settings.history_length:
            batched = ingest_units
        else:
            batched = _production_ingest_units(
                payloads, replace(settings, history_length=window), batch, progress, f"window {window}"
            )
            result["production_by_window"][str(window)] = batched["total"]["wru_per_event"]
        every_pair = _with_batched(_units(naive, [ALL_PAIRS], n), batched)
        changed_only = _with_batched(_units(naive, [PAIRS], n), batched)
        result["naive"][str(window)] = {"every_pair": every_pair, "changed_pairs_only": changed_only}
    # Other packings of the count rows (Settings.cooccurrence_blocks), production ingest only.
    result["blocks_sweep"] = {str(settings.cooccurrence_blocks): ingest_units["total"]["wru_per_event"]}
    for blocks in block_sweep:
        if blocks == settings.cooccurrence_blocks:
            continue
        swept = _production_ingest_units(
            payloads, replace(settings, cooccurrence_blocks=blocks), batch, progress, f"{blocks} count blocks"
        )
        result["blocks_sweep"][str(blocks)] = swept["total"]["wru_per_event"]
    base = result["naive"][str(naive_window)]
    production_wru = ingest_units["total"]["wru_per_event"]
    result["ratio_vs_naive"] = production_wru / base["every_pair"]["total"]["wru_per_event"]
    result["ratio_vs_naive_changed_pairs"] = (
        production_wru / base["changed_pairs_only"]["total"]["wru_per_event"]
    )
    # Both designs at the same window: what the row design alone saves.
    result["ratio_same_window"] = {
        window: result["production_by_window"][window] / designs["every_pair"]["total"]["wru_per_event"]
        for window, designs in result["naive"].items()
    }
    return result, similarity_tables


# ---- A hot item's count rows -------------------------------------------------------------------
HOT_ITEM = "hot-item"
HOT_ITEM_BATCH = 1000


def hot_item_payloads(events: int, seed: int = 7) -> list[bytes]:
    """A synthetic stream in which one item is viewed with an ever wider set of others, as a
    shop's best seller is over months: each user views the hot item, then 4 items drawn
    from a catalog of 5 x ``events`` ids (the Taobao sample never takes a row past 1 KB)."""
    rng = random.Random(seed)
    payloads: list[bytes] = []
    for user in range(events // 5 + 1):
        for item in [HOT_ITEM, *(f"item-{rng.randrange(events * 5):07d}" for _ in range(4))]:
            n = len(payloads)
            event = {"event_id": f"e{n}", "event_type": "view", "user_id": f"user-{user}", "item_id": item}
            payloads.append(json.dumps({**event, "timestamp": 1_764_000_000 + n, "category": "c"}).encode())
    return payloads[:events]


def hot_item_cost(
    events: int, settings: Settings, budgets_kb: Sequence[int], progress: Progress = _quiet
) -> dict[str, Any]:
    """The count table's units per event over :func:`hot_item_payloads` through the
    production ingest (batch 1,000, metered tables), for each count-row budget (0: none,
    rows grow to DynamoDB's limit), and the hot item's rows at the end."""
    payloads = hot_item_payloads(events)
    result: dict[str, Any] = {"events": events}
    for budget in budgets_kb:
        tables = metered_tables()
        label = f"hot item, count-row budget {budget} KB" if budget else "hot item, no count-row budget"
        _replay(
            tables,
            payloads,
            replace(settings, count_row_budget_kb=budget),
            HOT_ITEM_BATCH,
            progress=progress,
            label=label,
        )
        hot = [row for row in tables.client.items(tables.names[COUNTS]) if row["item_id"]["S"] == HOT_ITEM]
        sizes = [item_size(row) for row in hot]
        counts = _units(tables, [COUNTS], events)[COUNTS]
        result[str(budget)] = {
            "count_wru_per_event": counts["wru_per_event"],
            "count_rru_per_event": counts["rru_per_event"],
            "hot_item_partners": sum(sum(name.startswith(COUNT_PREFIX) for name in row) for row in hot),
            "hot_item_largest_row_bytes": max(sizes, default=0),
            # What the hot item's rows cost at the end: a write of each (a batch that touches
            # them all) and a read of each (the similarity function's, at each recompute).
            "hot_item_rows_wru_at_end": sum(write_units(size, size) for size in sizes),
            "hot_item_rows_rru_at_end": sum(read_units(size) for size in sizes),
        }
    return result


def _production_ingest_units(
    payloads: Sequence[bytes], settings: Settings, batch: int, progress: Progress, variant: str
) -> dict[str, Any]:
    """The production ingest's units per event under ``settings`` (a variant of the defaults)."""
    tables = metered_tables()
    _replay(tables, payloads, settings, batch, progress=progress, label=f"cost: production design, {variant}")
    return _units(tables, INGEST_TABLES, len(payloads))


def _with_batched(pairs: dict[str, Any], batched: dict[str, Any]) -> dict[str, Any]:
    """The naive design's pair-table units plus production's user, stats and trend units."""
    tables = {name: row for name, row in pairs.items() if name != "total"}
    tables.update({table: batched[table] for table in (USERS, STATS, TRENDS)})
    total = {key: sum(row[key] for row in tables.values()) for key in ("wru_per_event", "rru_per_event")}
    return {**tables, "total": total}


def _agreement(
    metered: Tables,
    on_moto: Callable[[Tables], None],
    logical: Sequence[str],
    template: Path,
    write_calls: Sequence[str],
    size: Callable[[dict[str, Any]], int] = item_size,
) -> dict[str, Any]:
    """Run ``on_moto`` on the template's tables in moto (in-process), then compare each of
    the ``logical`` tables with ``metered`` (replayed the same way): its ``write_calls``
    (a failed condition is a call too; a BatchWriteItem counts once) and its stored items'
    sizes (by ``size``) must agree."""
    import boto3
    from moto import mock_aws

    from streamrec.local import moto_fixes
    from streamrec.local.template import load_template
    from streamrec.reliability.sandbox import temporary_environment

    moto_fixes.apply()  # as on the local stack: the same answers, sooner
    credentials = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
    }
    calls: Counter[tuple[str, str]] = Counter()
    counting = threading.Lock()  # the adapters call from their worker threads too
    with temporary_environment(credentials), mock_aws():
        resolved = load_template(template, endpoint_url="https://sqs.us-east-1.amazonaws.com")
        session = boto3.session.Session(region_name="us-east-1")

        def count(params: dict[str, Any], model: Any, **_: Any) -> None:
            key = (model.name, params.get("TableName", "") or ",".join(params.get("RequestItems", {})))
            with counting:
                calls[key] += 1

        session.events.register("provide-client-params.dynamodb", count)  # before the client
        client = register_fast_reads(session.client("dynamodb"))
        moto_tables = _template_tables(client, resolved)
        on_moto(moto_tables)
        moto_sizes = {}
        for name in logical:
            items = []
            for page in client.get_paginator("scan").paginate(TableName=moto_tables.names[name]):
                items.extend(page["Items"])
            moto_sizes[name] = sorted(size(i) for i in items)
    result: dict[str, Any] = {"tables": {}}
    for name in logical:
        writes = sum(
            phase[metered.names[name]].calls[op]
            for phase in metered.client.phases.values()
            for op in write_calls
        )
        metered_sizes = sorted(size(i) for i in metered.client.items(metered.names[name]))
        moto_writes = sum(
            c for (op, table), c in calls.items() if table == moto_tables.names[name] and op in write_calls
        )
        result["tables"][name] = {
            "writes_metered": writes,
            "writes_moto": moto_writes,
            "rows": len(metered_sizes),
            "bytes_metered": sum(metered_sizes),
            "bytes_moto": sum(moto_sizes[name]),
            "same_sizes": metered_sizes == moto_sizes[name],
        }
    result["agree"] = all(
        t["same_sizes"] and t["writes_metered"] == t["writes_moto"] for t in result["tables"].values()
    )
    return result


def moto_cross_check(
    events: Sequence[Mapping[str, Any]], settings: Settings, template: Path, progress: Progress = _quiet
) -> dict[str, Any]:
    """Ingest a slice (one batch) through the production adapters on moto (in-process) and
    on the metered client: the write calls per table and the stored item sizes must agree."""
    payloads = [json.dumps(e, separators=(",", ":")).encode() for e in events]
    metered = metered_tables()
    _replay(metered, payloads, settings, len(payloads))

    def on_moto(tables: Tables) -> None:
        progress(f"cross-check: {len(payloads):,} events through moto")
        _replay(tables, payloads, settings, len(payloads))

    result = _agreement(metered, on_moto, INGEST_TABLES, template, ("UpdateItem", "PutItem"))
    return {"events": len(payloads), **result}


# ---- Catalog ------------------------------------------------------------------------------------
# The ingest function's batch size (template.yaml, IngestFunction's BatchSize): a catalog
# load's records reach it in batches of up to this many per shard.
CATALOG_BATCH = 1000
# The load's timestamp (the edits come 1 and 2 seconds later).
CATALOG_T0 = 1_764_000_000.0
# The catalog's edits replayed after its load: every item's price, then a share of titles.
CATALOG_TITLE_EDIT_SHARE = 0.1
CATALOG_TABLES = (CATALOG, SIMILARITY)
WRITE_CALLS = ("UpdateItem", "PutItem", "BatchWriteItem")


def catalog_edits(records: Sequence[Mapping[str, Any]], seed: int = 11) -> dict[str, list[dict[str, Any]]]:
    """The bench's three catalog streams over ``records`` (``item_upsert`` dicts, one per
    item, with a ``timestamp``): the load itself; every item again, its price up 10 % (no
    token changes); a seeded :data:`CATALOG_TITLE_EDIT_SHARE` of the items again, their
    title's last word swapped for a word drawn from the catalog's titles (a token lost and
    one gained, as an edit does; the same word at times)."""
    rng = random.Random(seed)
    later = max(float(r["timestamp"]) for r in records) if records else 0.0
    prices = [{**r, "price": round(float(r["price"]) * 1.1, 2), "timestamp": later + 1} for r in records]
    words = sorted({word for r in records for word in str(r["title"]).split()})
    edited = sorted(rng.sample(range(len(prices)), round(CATALOG_TITLE_EDIT_SHARE * len(prices))))
    titles = [
        {
            **prices[n],
            "title": " ".join([*str(prices[n]["title"]).split()[:-1], rng.choice(words)]),
            "timestamp": later + 2,
        }
        for n in edited
    ]
    return {"load": [dict(r) for r in records], "price change": prices, "title change": titles}


def _kind_units(tables: Tables, phase: str, records: int) -> dict[str, Any]:
    """Units per record of ``phase`` in the catalog and similarity tables, by kind of row."""
    meters = tables.client.phases.get(phase, {})
    out: dict[str, Any] = {}
    for name in CATALOG_TABLES:
        meter = meters.get(tables.names[name]) or TableMeter()
        out[name] = {
            "wru_per_record": meter.write_units / records,
            "rru_per_record": meter.read_units / records,
            "calls": dict(meter.calls),
            "wru_per_record_by_kind": {k: v / records for k, v in sorted(meter.write_units_by_kind.items())},
            "rru_per_record_by_kind": {k: v / records for k, v in sorted(meter.read_units_by_kind.items())},
        }
    out["total"] = {
        key: sum(out[name][key] for name in CATALOG_TABLES) for key in ("wru_per_record", "rru_per_record")
    }
    return out


def _catalog_replay(
    tables: Tables,
    streams: Mapping[str, Sequence[Mapping[str, Any]]],
    settings: Settings,
    batch: int,
    progress: Progress = _quiet,
) -> dict[str, dict[str, float]]:
    """Each stream through the production catalog ingest (CatalogService, batches of
    ``batch``) and each batch's announcements through the similarity service (chunks of
    SIMILARITY_BATCH), metered as phases ``<stream>: ingest`` and ``<stream>: similarity``.
    Returns, per stream, its announcements and each function's CPU seconds (this process's,
    the metered client's work included: an upper bound)."""
    publisher = InMemoryChangePublisher()
    service = CatalogService(settings, DynamoCatalogRepository(tables.table(CATALOG)), publisher)
    similarity = tables.similarity(settings)
    sequence = 0
    measured: dict[str, dict[str, float]] = {}
    for phase, stream in streams.items():
        upserts = [parse_item_upsert(json.loads(json.dumps(record))) for record in stream]
        found = measured[phase] = {"announced": 0, "ingest_cpu_s": 0.0, "similarity_cpu_s": 0.0}
        for offset in range(0, len(upserts), batch):
            progress(f"catalog cost: {phase}: {offset:,}/{len(upserts):,} records")
            chunk = upserts[offset : offset + batch]
            sequenced = [SequencedUpsert(sequence_key(sequence + n + 1), u) for n, u in enumerate(chunk)]
            sequence += len(chunk)
            _phase(tables, f"{phase}: ingest")
            started = time.process_time()
            service.upsert(sequenced, SHARD)
            found["ingest_cpu_s"] += time.process_time() - started
            _phase(tables, f"{phase}: similarity")
            content = sorted(publisher.drain_content())
            started = time.process_time()
            for start in range(0, len(content), SIMILARITY_BATCH):
                similarity.recompute((), (), (), set(content[start : start + SIMILARITY_BATCH]))
            found["similarity_cpu_s"] += time.process_time() - started
            found["announced"] += len(content)
    return measured


def catalog_cost(
    records: Sequence[Mapping[str, Any]],
    settings: Settings,
    batch: int = CATALOG_BATCH,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """Units per catalog record, by kind of row, of the production catalog ingest and the
    similarity function's content work (metered tables) over :func:`catalog_edits` of
    ``records``: the load, a price change of every item, a title change of some."""
    tables = metered_tables()
    streams = catalog_edits(records)
    measured = _catalog_replay(tables, streams, settings, batch, progress)
    result: dict[str, Any] = {"items": len(records), "batch": batch, "phases": {}}
    for phase, stream in streams.items():
        n = max(len(stream), 1)
        similarity = _kind_units(tables, f"{phase}: similarity", n)
        result["phases"][phase] = {
            "records": len(stream),
            "announced": int(measured[phase]["announced"]),
            "ingest": _kind_units(tables, f"{phase}: ingest", n),
            "similarity": similarity,
            "ingest_cpu_ms_per_record": 1000 * measured[phase]["ingest_cpu_s"] / n,
            "similarity_cpu_ms_per_record": 1000 * measured[phase]["similarity_cpu_s"] / n,
            # The similarity function writes a catalog record only to refresh its norm.
            "norm_refreshes_per_record": similarity[CATALOG]["calls"].get("UpdateItem", 0) / n,
        }
    sizes: dict[str, list[int]] = defaultdict(list)
    for row in tables.client.items(tables.names[CATALOG]):
        sizes[row_kind((row["item_id"]["S"],))].append(item_size(row))
    result["catalog_rows"] = {
        kind: {"rows": len(found), "mean_bytes": statistics.fmean(found), "max_bytes": max(found)}
        for kind, found in sorted(sizes.items())
    }
    return result


def _clockless_size(item: dict[str, Any]) -> int:
    """An item's size with its wall-clock ``updated_at`` (when a similarity row was written,
    a float whose digits vary from run to run) at a fixed value."""
    return item_size({**item, "updated_at": {"N": "0"}} if "updated_at" in item else dict(item))


def catalog_moto_cross_check(
    records: Sequence[Mapping[str, Any]],
    settings: Settings,
    template: Path,
    batch: int,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """:func:`catalog_cost`'s replay of a slice on moto (in-process) and on the metered
    client: the write calls per table and the stored item sizes must agree."""
    streams = catalog_edits(records)
    metered = metered_tables()
    _catalog_replay(metered, streams, settings, batch)

    def on_moto(tables: Tables) -> None:
        progress(f"catalog cross-check: {len(records):,} items through moto")
        _catalog_replay(tables, streams, settings, batch)

    result = _agreement(metered, on_moto, CATALOG_TABLES, template, WRITE_CALLS, size=_clockless_size)
    return {"items": len(records), **result}


# ---- API ----------------------------------------------------------------------------------
class _CallCounter:
    """Wraps a client: counts calls (all synchronous, so calls = sequential round trips)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def counted(**kwargs: Any) -> Any:
            self.calls += 1
            return method(**kwargs)

        return counted


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    values = np.array(samples_ns, dtype=np.float64) / 1e6
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99))}


def api(
    tables: Tables,
    events: Sequence[Mapping[str, Any]],
    settings: Settings,
    history_sizes: Sequence[int] = (1, 20, 200),
    samples: int = 300,
    cache_requests: int = 5000,
    requests_per_second: float = 50.0,
    seed: int = 7,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """Round trips and RRU per request on the metered tables after the replay; scoring
    compute percentiles on in-memory repositories; cache hit rate over a request mix."""
    rng = random.Random(seed)
    client: MeteredDynamoClient = tables.client
    client.set_phase("api")
    counter = _CallCounter(client)
    counted = Tables(counter, tables.names)
    service = counted.recommendations(settings)
    user_ids = [str(e["user_id"]) for e in events]
    item_ids = [str(e["item_id"]) for e in events]
    result: dict[str, Any] = {"endpoints": {}}
    sim_name = tables.names[SIMILARITY]
    users_name = tables.names[USERS]

    def measure(call: Callable[[], Any], count: int) -> dict[str, Any]:
        trips, units = [], []
        for _ in range(count):
            client.reset_meters()
            counter.calls = 0
            call()
            trips.append(counter.calls)
            units.append(client.meters[sim_name].read_units + client.meters[users_name].read_units)
        return {
            "round_trips_max": max(trips),
            "round_trips_mean": statistics.fmean(trips),
            "rru_mean": statistics.fmean(units),
        }

    progress("api: round trips and read units")
    result["endpoints"]["GET /users/{id}/recommendations"] = measure(
        lambda: service.for_user(rng.choice(user_ids), k=20), 200
    )
    result["endpoints"]["GET /items/{id}/similar"] = measure(
        lambda: service.similar_items(rng.choice(item_ids), k=20), 200
    )
    client.reset_meters()

    # Compute: the scoring path on in-memory repositories holding the replay's rows.
    memory = InMemorySimilarityRepository()
    dynamo_similarity = DynamoSimilarityRepository(tables.table(SIMILARITY))
    stored = client.items(sim_name)
    names = [item["item_id"]["S"] for item in stored]
    lists = [name for name in names if name.startswith("#")]
    rows, found = dynamo_similarity.get_many([name for name in names if not name.startswith("#")], lists)
    memory.put_rows(rows.values())
    memory.lists.update(found)
    with_rows = sorted(rows)
    category_of = {str(e["item_id"]): str(e.get("category") or "") for e in events}
    compute_settings = replace(settings, history_length=96)
    scorer = RecommendationService(compute_settings, InMemoryUserRepository(), memory)
    now = max(float(e["timestamp"]) for e in events)
    result["compute"] = {
        "note": (
            f"history is capped by Settings.history_length (now {settings.history_length}, at most 96): "
            "200 is measured as 96"
        )
    }
    # The replay left millions of objects: a full collection would land in some timings. A
    # Lambda container's heap is small, so collect once and keep them out of later passes.
    gc.collect()
    gc.freeze()
    for size in history_sizes:
        length = min(size, 96)
        progress(f"api: scoring compute, {length} history items")
        timings, cpu_timings = [], []
        for _ in range(samples):
            chosen = rng.sample(with_rows, min(length, len(with_rows)))
            state = UserState(
                "bench-user",
                items=[
                    HistoryItem(item, 1.0, 1.0, now - 60.0 * index, "view", category_of.get(item) or None)
                    for index, item in enumerate(chosen)
                ],
            )
            started, cpu_started = time.perf_counter_ns(), time.thread_time_ns()
            scorer.for_state(state, 20, now=now)
            cpu_timings.append(time.thread_time_ns() - cpu_started)
            timings.append(time.perf_counter_ns() - started)
        cpu = _percentiles(cpu_timings)
        result["compute"][str(size)] = {
            "history_items": length,
            **_percentiles(timings),  # wall clock: includes waits for a core on a shared machine
            "cpu_p50_ms": cpu["p50_ms"],
            "cpu_p99_ms": cpu["p99_ms"],  # this thread's CPU time: the compute itself
        }

    # Cache: a warm container serving a request mix drawn from the replay's users and items.
    progress("api: cache hit rate")
    config = CacheConfig()
    clock = [0.0]
    cached = CachingSimilarityRepository(dynamo_similarity, config, clock=lambda: clock[0])
    cached_service = RecommendationService(settings, DynamoUserRepository(tables.table(USERS)), cached)
    recommendations = 0
    for _ in range(cache_requests):
        clock[0] += 1.0 / requests_per_second
        if rng.random() < 0.8:
            _phase(tables, "cached recommendations")  # metered: read units with the cache
            recommendations += 1
            cached_service.for_user(rng.choice(user_ids), k=20)
        else:
            _phase(tables, "cached similar items")
            cached_service.similar_items(rng.choice(item_ids), k=20)
    stats = cached.stats
    meters = tables.client.phases.get("cached recommendations", {})
    result["cache"] = {
        "requests": cache_requests,
        "mix": "80% recommendations for users, 20% similar items, both drawn by event frequency",
        "requests_per_second": requests_per_second,
        "ttl_seconds": config.ttl_seconds,
        "max_entries": config.max_entries,
        "hit_rate": stats.hit_rate,  # per row looked up in the cache (the user row never is)
        # Read units of a recommendation request in the mix, measured: its user GetItem and
        # the rows the cache did not hold.
        "rru_per_recommendation": sum(m.read_units for m in meters.values()) / max(recommendations, 1),
        "hits": stats.hits,
        "misses": stats.misses,
        "evictions": stats.evictions,
    }
    assert POPULAR_ROW in found
    return result


# ---- end to end -------------------------------------------------------------------------------
def end_to_end(
    events: Sequence[Mapping[str, Any]], template: Path, probes: int = 5, progress: Progress = _quiet
) -> dict[str, Any]:
    """Events/s from PutRecords until the pipeline is quiet, and the ingest's freshness: time
    from put_record until the event's item shows in a new user's recommendations (as "you
    recently looked at", from the user row: the similarity rows are not waited for)."""
    from streamrec import wiring
    from streamrec.local.stack import LocalStack
    from streamrec.settings import load_settings

    progress("end to end: starting the local stack")
    with LocalStack(
        template,
        stack_name="streamrec-bench",
        http_port=None,
        env_overrides={"POWERTOOLS_LOG_LEVEL": "ERROR", "API_CACHE_TTL_SECONDS": "0"},
        # Polls every 20 ms, idle or not: the freshness figure is the pipeline's latency,
        # not the idle back-off of `streamrec run` (Lambda polls a shard once a second).
        idle_sleep=0.02,
        max_idle_sleep=0.02,
        retry_backoff=0.01,
    ) as stack:
        started = time.perf_counter()
        stack.put_events(list(events))
        stack.drain(timeout=300)
        elapsed = time.perf_counter() - started
        service = wiring.recommendation_service(load_settings())
        lags = []
        item = str(events[-1]["item_id"])
        for probe in range(probes):
            progress(f"end to end: freshness probe {probe + 1}/{probes}")
            user = f"bench-fresh-{probe}-{int(time.time())}"
            event = {
                "event_id": f"{user}-e",
                "event_type": "view",
                "user_id": user,
                "item_id": item,
                "timestamp": time.time(),
            }
            put_at = time.perf_counter()
            stack.put_events([event])
            while item not in {
                r.item_id for r in service.for_user(user, k=50).items if r.source not in PADDING_SOURCES
            }:
                if time.perf_counter() - put_at > 60:
                    raise TimeoutError("the probe event never showed in the recommendations")
                time.sleep(0.01)
            lags.append(time.perf_counter() - put_at)
            stack.drain(timeout=60)
    return {
        "events": len(events),
        "seconds": elapsed,
        "events_per_s": len(events) / elapsed,
        "freshness_median_s": statistics.median(lags),
        "freshness_max_s": max(lags),
        "probes": probes,
        "note": "moto in-process, called without HTTP; functions polled like Lambda; not AWS latencies",
    }


# Sizes of the out-of-stock set --stock compares: none, one row's worth (~2,000 ids of 10
# characters), a large shop, and near the set's ceiling (docs/catalog.md, "Limits of the out-of-stock set").
STOCK_SIZES = (0, 2_000, 20_000, 110_000)


def _stock_shop(
    settings: Settings, out_of_stock: int, seed: int, sessions: int = 2_500
) -> tuple[Any, list[str], str]:
    """An in-memory shop of 2,000 items in ``sessions`` of 5 events (3 views, 2 adds to the
    cart) of 500 users, whose similar
    items and recommendations are read through the API's warm-container cache, with
    ``out_of_stock`` ids in the set (every other listed item among them, the rest retired
    products nobody views). Returns the engine, its users and its most viewed item."""
    from streamrec.domain.model import OUT_OF_STOCK_ROW, PopularList
    from streamrec.domain.recommend import CrossSellService
    from streamrec.evaluation.engine import InMemoryEngine

    rng = random.Random(seed)
    engine = InMemoryEngine(settings)
    events: list[dict[str, Any]] = []
    items: list[str] = []
    for n in range(sessions):
        user, start = f"u{n % 500}", rng.randrange(1_995)
        for step in range(5):
            item = f"item-{min(1_999, int(rng.paretovariate(1.2)) + start + step):05d}"
            kind = "add_to_cart" if step >= 3 else "view"  # carts make cross-sell's baskets
            items.append(item)
            events.append(
                {
                    "event_id": f"e{n}-{step}",
                    "event_type": kind,
                    "user_id": user,
                    "item_id": item,
                    "timestamp": 1_764_000_000 + 60 * n + step,
                }
            )
    engine.ingest(events)
    engine.flush()
    listed = sorted(set(items))
    retired = [f"retired-{n:07d}" for n in range(max(0, out_of_stock - len(listed) // 2))]
    stock = sorted([*listed[::2], *retired][:out_of_stock])
    engine.similarity.put_list(OUT_OF_STOCK_ROW, PopularList([(item, 0.0) for item in stock]))
    cached = CachingSimilarityRepository(engine.similarity, CacheConfig())
    engine.recommendations = RecommendationService(settings, engine.users, cached)
    engine.cross_sell_service = CrossSellService(settings, engine.users, cached)
    top = Counter(items).most_common(1)[0][0]
    return engine, [f"u{n}" for n in range(min(500, sessions))], top


def stock_latency(
    sizes: Sequence[int],
    settings: Settings,
    samples: int = 51,
    seed: int = 7,
    sessions: int = 2_500,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """Median in-process time (ms) of a similar-items, a recommendations and a cross-sell
    request (k 10, in stock only) for each size of the out-of-stock set, read through the
    warm-container cache (hits, as a warm container serves between refreshes) in front of
    the in-memory adapters: what the set costs a request in CPU, no DynamoDB round trip."""
    result: dict[str, Any] = {"samples": samples, "sizes": {}}
    for size in sizes:
        progress(f"stock: {size:,} out-of-stock ids")
        requests = _stock_requests(*_stock_shop(settings, size, seed, sessions))
        result["sizes"][str(size)] = {
            f"{name}_median_ms": _median_ms(request, samples) for name, request in requests.items()
        }
    return result


def _stock_requests(engine: Any, users: list[str], top: str) -> dict[str, Callable[[int], Any]]:
    """The requests --stock times, each given its sample's number (which user asks)."""
    return {
        "similar": lambda n: engine.recommendations.similar_items(top, 10),
        "recommendations": lambda n: engine.recommendations.for_user(users[n % len(users)], 10),
        "cross_sell": lambda n: engine.cross_sell_service.for_request([top], 10),
    }


def _median_ms(request: Callable[[int], Any], samples: int) -> float:
    """The median time of ``samples`` calls of ``request``, after one untimed call (the
    cache's first read, the out-of-stock set's first build)."""
    request(0)
    times = []
    for n in range(samples):
        started = time.perf_counter()
        request(n)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3
