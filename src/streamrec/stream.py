"""Kinesis batch handling shared by the ingest and similarity functions.

Each record is parsed by Powertools' ``BatchProcessor``; the parser never raises, so the
partial batch response lists no record in practice (a batch fails whole, by raising). A record
that no retry can fix (not JSON, schema violation) becomes a dead letter with its reason
and counts as processed, so it never blocks the shard. The valid records are then applied
together (the point of batching). If that fails:

* with a *transient* error (storage throttled or unavailable after the client's own
  retries, a lost race): the whole batch fails and Lambda retries or bisects it; the replay
  guards keep the retry from double-counting, and after ``MaximumRetryAttempts`` Lambda
  sends the batch's description (shard, sequence range) to the OnFailure queue;
* with any other error (a bug hit by one record, a write DynamoDB rejects as invalid):
  retrying cannot help, so the handler isolates the failing records itself and
  dead-letters each with the error as its reason; the rest of the batch is applied and
  the shard moves on. The ingest finds them by replaying its pure planning record by
  record (nothing of theirs was written); otherwise halves of the batch are applied in
  turn, recursively (guards make re-applying the good records exact), and a record that
  fails twice on its own is the culprit. Such a culprit failed while writing, so rows
  written before the rejected one keep its increments: when applying it adds counts
  (``apply.adds_counts(payload)``: the ingest's records), its reason starts with
  :data:`WRITE_REJECTED` instead of :data:`PROCESSING_FAILED`, and ``streamrec dlq
  redrive`` keeps it unless told otherwise (re-applying it would count those rows twice).
  The similarity function's writes are guarded replacements, which a re-drive repeats
  exactly. A catalog record re-driven anyway (``--include-partly-written``, or a letter
  from before catalog records counted as partly written) also replaces a later record of its
  item with the same timestamp and other fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from aws_lambda_powertools.utilities.batch import BatchProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from streamrec.domain import ingest as ingest_domain
from streamrec.domain.catalog import CatalogService, SequencedUpsert
from streamrec.domain.ingest import IngestService, SequencedEvent
from streamrec.domain.model import sequence_key
from streamrec.domain.similarity import SimilarityService
from streamrec.events import ID_REGEX, DuplicateKey, InvalidEvent, ItemUpsert, UserEvent, loads
from streamrec.observability import embedded_metrics, logger
from streamrec.repositories.base import DeadLetter, DeadLetterSink, RefusedForGoodError, RepositoryError
from streamrec.repositories.dynamodb import error_code

# DynamoDB errors that say a request itself is invalid (e.g. an item over 400 KB): the same
# write fails however often it is retried.
NON_RETRYABLE_CODES = frozenset({"ValidationException", "SerializationException"})
# Prefix of the reason of a record whose processing (not parsing) kept failing: such a
# record was valid, so `streamrec dlq redrive` puts it back on its stream by default.
PROCESSING_FAILED = "processing failed"
# Prefix of the reason of an ingest record whose *write* DynamoDB kept rejecting (e.g. a
# count row at the 400 KB item limit): some of its count rows may hold its increments.
WRITE_REJECTED = "write rejected"
MAX_REASON_CHARS = 1_000
# A user event is well under 1 KB; a record far larger is a producer bug or abuse, rejected
# before parsing (the schema ignores unknown fields, so they would otherwise be accepted).
MAX_RECORD_BYTES = 16 * 1024


def record_size(data_base64: str | bytes) -> int:
    """A record's size in bytes, from its base64 data as delivered (without decoding it):
    3 bytes per 4 characters, less one per ``=`` of padding."""
    text = data_base64.decode("ascii", "replace") if isinstance(data_base64, bytes) else data_base64
    padding = len(text) - len(text.rstrip("="))
    return max(0, len(text) * 3 // 4 - min(padding, 2))


def decoding_problem(error: ValueError | RecursionError) -> str:
    """Why a record's data did not decode as JSON: bad base64 or UTF-8, a syntax error, too
    deep, or an integer of thousands of digits, which json refuses with Python's words
    (int_max_str_digits), not a producer's."""
    if isinstance(error, DuplicateKey):
        return str(error)
    if isinstance(error, ValueError) and "integer string conversion" in str(error):
        return "a number of more than 4,300 digits"
    return str(error)


Applicable = list[tuple[KinesisStreamRecord, Any]]


def shard_of(record: KinesisStreamRecord) -> str:
    """The shard id from the record's eventID ("shardId-000000000000:<sequence>")."""
    return record.event_id.split(":", 1)[0]


def dead_letter(record: KinesisStreamRecord, reason: str) -> DeadLetter:
    """A dead letter for ``record``: where it came from, why, and its raw data."""
    return DeadLetter(
        reason=reason[:MAX_REASON_CHARS],
        source=record.event_source_arn or "",
        shard=shard_of(record),
        sequence_number=record.kinesis.sequence_number,
        partition_key=record.kinesis.partition_key,
        data=record.kinesis.data,
    )


def is_transient(error: BaseException) -> bool:
    """Whether retrying the batch later may succeed: storage or network failures that
    outlasted the client's retries, and lost races. Anything else is deterministic, such as
    a request botocore refuses to send (ParamValidationError): retried, it would hold its
    shard for good."""
    if isinstance(error, RefusedForGoodError):
        return False
    if isinstance(error, RepositoryError):
        cause = error.__cause__
        if isinstance(cause, ClientError):
            return error_code(cause) not in NON_RETRYABLE_CODES
        return not isinstance(cause, ParamValidationError)
    if isinstance(error, ParamValidationError):
        return False
    return isinstance(error, BotoCoreError | ClientError | TimeoutError | ConnectionError)


class FindFailing(Protocol):
    def __call__(self, records: Applicable) -> list[tuple[int, Exception]]:
        """Indexes (into ``records``) and errors of the records whose processing fails
        deterministically, found cheaply (without writing); may raise a transient error."""
        ...


@dataclass(frozen=True)
class FailedRecord:
    """A record whose processing fails deterministically; ``while_writing``: isolated by
    applying it (some of its writes may have succeeded), not by the pure planning replay."""

    record: KinesisStreamRecord
    payload: Any
    error: Exception
    while_writing: bool = False


def apply_isolating(
    apply: Callable[[Applicable], None],
    records: Applicable,
    failed: Callable[[list[FailedRecord]], None],
    find_failing: FindFailing | None = None,
) -> None:
    """Apply ``records``; on a deterministic failure, isolate the failing records, hand
    them (with their error) to ``failed`` and apply the others, in stream order.

    Isolation first takes the records a :class:`RefusedForGoodError` names, then asks
    ``find_failing`` (the ingest replays its pure planning record by record, then applies
    the rest in one go); failing those, it applies each half in turn,
    recursively, and a single record that fails twice on its own is the culprit. Transient
    errors propagate: the whole batch is then retried by Lambda.

    ``failed`` is called as soon as culprits are isolated, before any later record is
    applied, and must dead-letter them then: a later record of the same user moves the
    user row's shard guard past the culprit, so a retry of the batch (after a crash or a
    failed send) would skip the culprit as already applied and never dead-letter it.
    """
    try:
        apply(records)
        return
    except Exception as error:
        if is_transient(error):
            raise
        if _isolate_refused(apply, records, failed, error):
            return
    # Asked even for a single record: what it finds failed in planning (nothing written).
    if find_failing is not None:
        culprits = find_failing(records)
        if culprits:
            _set_aside(apply, records, failed, {i: FailedRecord(*records[i], error) for i, error in culprits})
            return
    _bisect(apply, records, failed)


def _set_aside(
    apply: Callable[[Applicable], None],
    records: Applicable,
    failed: Callable[[list[FailedRecord]], None],
    culprits: Mapping[int, FailedRecord],
) -> None:
    """Hand the ``culprits`` (by index into ``records``) to ``failed`` now, then apply the
    other records, isolating again whatever else fails."""
    failed([culprits[index] for index in sorted(culprits)])
    rest = [record for index, record in enumerate(records) if index not in culprits]
    if rest:
        apply_isolating(apply, rest, failed)


def _isolate_refused(
    apply: Callable[[Applicable], None],
    records: Applicable,
    failed: Callable[[list[FailedRecord]], None],
    error: Exception,
) -> bool:
    """When ``error`` names the records whose writes were refused for good (by their deltas'
    sequences), dead-letter those and apply the others; whether it did.

    Bisecting instead costs a write of every part holding one of them: with a hot row
    refused (say the totals row, which every event touches), thousands of writes, past the
    function's timeout, and a timed-out batch is retried from scratch.
    """
    if not isinstance(error, RefusedForGoodError) or not error.sequences:
        return False
    refused = {
        index: FailedRecord(record, payload, error, while_writing=True)
        for index, (record, payload) in enumerate(records)
        if sequence_key(record.kinesis.sequence_number) in error.sequences
    }
    if not refused:
        return False
    _set_aside(apply, records, failed, refused)
    return True


def _bisect(
    apply: Callable[[Applicable], None],
    records: Applicable,
    failed: Callable[[list[FailedRecord]], None],
) -> None:
    """Generic isolation of ``records`` (which just failed together): halves, recursively."""
    if len(records) > 1:
        half = len(records) // 2
        for part in (records[:half], records[half:]):
            try:
                apply(part)
            except Exception as error:
                if is_transient(error):
                    raise
                if not _isolate_refused(apply, part, failed, error):
                    _bisect(apply, part, failed)
        return
    try:
        apply(records)  # once more alone: a record that still fails cannot be helped by retries
    except Exception as error:
        if is_transient(error):
            raise
        failed([FailedRecord(*records[0], error, while_writing=True)])


# Parses a record's decoded payload, given when the record reached the stream (its
# approximateArrivalTimestamp: the same at every delivery; None if the event lacks it).
RecordParser = Callable[[Any, float | None], Any]


@dataclass
class RecordCollector:
    """Parses records one by one; keeps valid payloads in order and rejects the rest."""

    parse: RecordParser
    accepted: list[tuple[KinesisStreamRecord, Any]] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)

    def __call__(self, record: KinesisStreamRecord) -> None:
        # Parsing is a pure function of the record: whatever it raises, a retry would too. So
        # the latest timestamp taken is a day past the record's arrival on the stream, not past
        # the clock: read against the clock, a record a day ahead refused by a first attempt
        # could be taken by its retry, planning another batch than the rows already written.
        arrival = record.kinesis.get("approximateArrivalTimestamp")
        size = record_size(record.kinesis.data)
        if size > MAX_RECORD_BYTES:
            self.rejected.append(
                dead_letter(record, f"record of {size} bytes is over the {MAX_RECORD_BYTES}-byte limit")
            )
            return
        try:
            payload = loads(record.kinesis.data_as_text())
        except (ValueError, RecursionError) as error:  # also bad base64 or UTF-8
            self.rejected.append(dead_letter(record, f"not valid JSON: {decoding_problem(error)}"))
            return
        try:
            self.accepted.append((record, self.parse(payload, None if arrival is None else float(arrival))))
        except InvalidEvent as error:
            self.rejected.append(dead_letter(record, error.reason))
        except Exception as error:  # noqa: BLE001 - a parser bug must not block the shard
            self.rejected.append(dead_letter(record, f"unparseable record: {type(error).__name__}: {error}"))

    def applicable(self, response: Mapping[str, Any]) -> list[tuple[KinesisStreamRecord, Any]]:
        """Accepted records before the first failed one: Lambda re-delivers from there."""
        failed = [int(f["itemIdentifier"]) for f in response.get("batchItemFailures", [])]
        if not failed:
            return self.accepted
        first_failure = min(failed)
        return [(r, p) for r, p in self.accepted if int(r.kinesis.sequence_number) < first_failure]


def batch_keys(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The log keys naming a batch of raw Kinesis records (an event's ``Records``, or the
    records a step applies), so that an operator can tell which shard a failing or slow
    batch holds up. :func:`process_batch` sets them as context keys (of its thread and
    the calls it makes concurrently, not the logger's: the local stack runs every
    function's invocations in one process); a step's lines name the records it applies."""
    if not records:
        return {}
    return {
        "shard": str(records[0].get("eventID", "")).split(":", 1)[0] or None,
        "first_sequence": records[0].get("kinesis", {}).get("sequenceNumber"),
        "last_sequence": records[-1].get("kinesis", {}).get("sequenceNumber"),
        "batch_size": len(records),
    }


def _event_age_max(records: Applicable) -> float | None:
    """The largest (arrival on the stream - event timestamp) of the batch's user events, in
    seconds (None when no record carries its arrival time)."""
    ages = [
        float(arrival) - payload.timestamp
        for record, payload in records
        if not isinstance(payload, ItemUpsert)
        and (arrival := record.kinesis.get("approximateArrivalTimestamp")) is not None
    ]
    return round(max(ages), 1) if ages else None


@contextmanager
def logged_with(keys: Mapping[str, Any]) -> Iterator[None]:
    """``keys`` on every line logged in this thread until the block ends, and in the calls
    it makes through concurrently() (each runs in a copy of this context): the storage's
    warnings from its worker threads too. Context keys, not the logger's: in the local
    stack the other functions' threads log through the same logger."""
    logger.thread_safe_append_keys(**keys)
    try:
        yield
    finally:
        logger.thread_safe_remove_keys(keys)


def process_batch(
    event: dict[str, Any],
    context: Any,
    processor: BatchProcessor,
    parse: RecordParser,
    apply: Callable[[list[tuple[KinesisStreamRecord, Any]]], None],
    dead_letters: DeadLetterSink,
) -> PartialItemFailureResponse:
    """Parse every record, apply the valid ones together, dead-letter the invalid ones and
    those whose processing keeps failing (see the module docstring); every line logged
    meanwhile names the batch (:func:`batch_keys`)."""
    with logged_with(batch_keys(event.get("Records") or [])):
        collector = RecordCollector(parse)
        response = process_partial_response(
            event=event, record_handler=collector, processor=processor, context=context
        )
        adds_counts = getattr(apply, "adds_counts", None)

        def send(letters: list[DeadLetter]) -> None:
            dead_letters.send(letters)
            logger.warning(
                "dead-lettered records",
                extra={"count": len(letters), "reasons": sorted({d.reason for d in letters})[:20]},
            )

        traced = False  # one traceback per invocation: bisection calls the below once per record

        def dead_letter_failures(failures: list[FailedRecord]) -> None:
            nonlocal traced
            letters = []
            for failure in failures:
                record, error = failure.record, failure.error
                prefix = (
                    f"{WRITE_REJECTED} (count rows written before it keep its increments: a re-drive "
                    "could count them twice)"
                    if failure.while_writing and adds_counts is not None and adds_counts(failure.payload)
                    else PROCESSING_FAILED
                )
                letters.append(dead_letter(record, f"{prefix}: {type(error).__name__}: {error}"))
                # The shop's data, not a bug: the message says all, and a traceback would
                # read as a crash in the log.
                explained = isinstance(error, ingest_domain.UnknownCouponError)
                log = logger.warning if explained else logger.error
                log(
                    "record processing keeps failing; dead-lettered",
                    extra={
                        "sequence_number": record.kinesis.sequence_number,
                        "error_type": type(error).__name__,
                        **({"error": str(error)} if explained else {}),
                    },
                    # Where it failed: after a faulty deploy every record lands here, and the
                    # letters' reasons carry only the message.
                    exc_info=None if traced or explained else error,
                )
                traced = traced or not explained
            send(letters)  # now, before a later record is applied (see apply_isolating)

        applicable = collector.applicable(response)
        try:
            if applicable:
                apply_isolating(apply, applicable, dead_letter_failures, getattr(apply, "find_failing", None))
            if collector.rejected:
                # A retried batch rejects these again (parsing is pure), so they can wait until here.
                send(collector.rejected)
        except Exception as error:
            # Storage throttled or unavailable, a dead letter not sent: Lambda retries the batch.
            # Expected now and then, so no traceback; the batch's keys say which shard waits.
            logger.error(
                "batch failed; Lambda retries it", extra={"error": f"{type(error).__name__}: {error}"}
            )
            raise
        return response


# The "ingested batch" figures CloudWatch keeps as metrics (namespace streamrec, by function).
INGEST_METRICS = {
    "records": "Count",
    "applied": "Count",
    "duplicates": "Count",
    "late": "Count",
    "event_age_max_s": "Seconds",
}


class IngestRecords:
    """Applies a batch of valid records (the ingest function's ``apply``): the catalog
    records (``item_upsert``) through the catalog service, then the user events through the
    ingest service, exactly as without a catalog."""

    @staticmethod
    def adds_counts(payload: Any) -> bool:
        """Whether applying the record adds to counts, guarded by its shard and sequence
        number: re-driven under a new sequence number after a partial write, it would add
        them again. Every record of the ingest does: a user event its pairs and stats, a
        catalog record the document count and its tokens' counts of holders (written before
        the record itself: a record whose write was rejected is new again when re-driven)."""
        return isinstance(payload, (UserEvent, ItemUpsert))

    def __init__(self, service: IngestService, catalog: CatalogService | None = None) -> None:
        self.service = service
        self.catalog = catalog

    @staticmethod
    def _events(records: Applicable) -> list[SequencedEvent]:
        return [
            SequencedEvent(sequence_key(r.kinesis.sequence_number), event)
            for r, event in records
            if not isinstance(event, ItemUpsert)
        ]

    @staticmethod
    def _upserts(records: Applicable) -> list[SequencedUpsert]:
        return [
            SequencedUpsert(sequence_key(r.kinesis.sequence_number), record)
            for r, record in records
            if isinstance(record, ItemUpsert)
        ]

    def __call__(self, records: Applicable) -> None:
        shard = shard_of(records[0][0])
        keys = batch_keys([record for record, _ in records])
        upserts = self._upserts(records)
        recategorised: list[tuple[str, str, str]] = []
        if upserts and self.catalog is None:
            raise RuntimeError("item_upsert records need the catalog table (CATALOG_TABLE)")
        if upserts and self.catalog is not None:
            # Catalog records first: the user events that name no category then read their
            # items' categories from the catalog with this batch's records in it, on the
            # first attempt and on any retry or bisected half alike, so a retry plans its
            # category-keyed counts (#buys:, #cat: trends) under the same categories (unless
            # a catalog record on another shard changed one in between: docs/catalog.md).
            outcome = self.catalog.upsert(upserts, shard)
            recategorised = outcome.recategorised
            logger.info(
                "applied catalog records",
                extra={
                    **keys,
                    "records": len(upserts),
                    "written": len(outcome.written),
                    "stale": len(outcome.stale),
                    "duplicates": len(outcome.duplicates),
                    # Written, not announced: tokens, category and stock as stored.
                    "same_content": len(outcome.same_content),
                },
            )
            if outcome.stale:
                # Usually a late re-send; but a record stamped ahead by a producer's clock
                # keeps every later record of its item out until its own time has passed.
                logger.warning(
                    "catalog records older than the stored ones were ignored",
                    extra={
                        **keys,
                        "items": [
                            {"item_id": item, "timestamp": received, "stored_timestamp": stored}
                            for item, received, stored in outcome.stale[:10]
                        ],
                        "count": len(outcome.stale),
                    },
                )
        events = self._events(records)
        plan = self.service.ingest(events, shard, recategorised)
        if events:
            figures = {
                "records": len(events),
                "applied": plan.applied_events,
                "duplicates": plan.duplicates,
                # Applied, but behind their users' recent items (a backfill, a re-drive):
                # not in the recent items, cart or basket (domain/ingest.is_late).
                "late": plan.late_events,
                # Adds to the cart older than the item's purchase or removal: out of order
                # (domain/ingest.is_stale_cart_add), not put back in the cart.
                "stale_cart_adds": plan.stale_cart_adds,
                # How long before reaching the stream the events happened, at most: hours
                # here (a backlog at the producer, a clock behind) keep events out of
                # the 1h trending window, which nothing else would show.
                "event_age_max_s": _event_age_max(records),
                "users": len(plan.users),
                "cooccurrence_rows": len(plan.cooccurrence),
                "changed_items": len(plan.changed_items),
            }
            logger.info(
                "ingested batch", extra={**keys, **figures, **embedded_metrics(figures, INGEST_METRICS)}
            )

    def find_failing(self, records: Applicable) -> list[tuple[int, Exception]]:
        """Replay the batch's planning (pure, one read of its users) one event at a time,
        each over the states the previous ones left: the events whose planning raises.

        Planning a batch is the same fold over its events, so this finds exactly the
        records that make the batch fail before anything is written. (Catalog records are
        not replayed here: a failure among them is isolated by halves.)
        """
        shard = shard_of(records[0][0])
        indexed = [
            (index, record) for index, record in enumerate(records) if not isinstance(record[1], ItemUpsert)
        ]
        events = self._events([record for _, record in indexed])
        if self.service.catalog is not None:  # as the ingest plans them (the batch's records are in)
            events = list(ingest_domain.with_catalog_categories(events, self.service.catalog))
        stored = dict(self.service.users.get_many({e.event.user_id for e in events}))
        known_coupons = self.service.known_coupons(events)
        failing: list[tuple[int, Exception]] = []
        for (index, _), sequenced in zip(indexed, events, strict=True):
            try:
                plan = ingest_domain.plan_batch(
                    stored, [sequenced], shard, self.service.settings, known_coupons=known_coupons
                )
            except Exception as error:
                if is_transient(error):
                    raise
                failing.append((index, error))
                continue
            stored.update(plan.users)
        return failing


def ingest_records(service: IngestService, catalog: CatalogService | None = None) -> IngestRecords:
    """The ingest function's ``apply`` (with ``find_failing`` for cheap isolation)."""
    return IngestRecords(service, catalog)


@dataclass(frozen=True)
class ChangeNotice:
    """One changed-items record (see ``KinesisChangePublisher``)."""

    item_id: str
    changed: bool
    norm_changed: bool
    popular_changed: bool
    content_changed: bool = False


def parse_change(payload: Any, arrival: float | None = None) -> ChangeNotice:
    """A changed-items record: ``{"item_id", "changed", "norm_changed", "popular_changed"}``,
    and ``"content_changed": true`` when the item's catalog record changed (it carries no
    time: ``arrival`` is not read)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("item_id"), str):
        raise InvalidEvent("changed-items record needs a string item_id")
    if not ID_REGEX.fullmatch(payload["item_id"]):
        raise InvalidEvent("changed-items record has a malformed item_id")
    flags = {"changed": True, "norm_changed": False, "popular_changed": False, "content_changed": False}
    for name, default in flags.items():
        flags[name] = payload.get(name, default)
        if not isinstance(flags[name], bool):
            # bool("false") is True: a flag is read only as a JSON boolean.
            raise InvalidEvent(f"changed-items record's {name} must be true or false")
    return ChangeNotice(payload["item_id"], **flags)


def similarity_records(service: SimilarityService) -> Callable[[list[tuple[KinesisStreamRecord, Any]]], None]:
    def apply(records: list[tuple[KinesisStreamRecord, Any]]) -> None:
        notices: list[ChangeNotice] = [notice for _, notice in records]
        changed = {n.item_id for n in notices if n.changed}
        norm_changed = {n.item_id for n in notices if n.norm_changed}
        popular_changed = {n.item_id for n in notices if n.popular_changed}
        content_changed = {n.item_id for n in notices if n.content_changed}
        rows = service.recompute(changed, norm_changed, popular_changed, content_changed)
        logger.info(
            "recomputed similarity rows",
            extra={
                **batch_keys([record for record, _ in records]),
                "announced": len(notices),
                "rows": len(rows),
                "popular": len(popular_changed),
                "content": len(content_changed),
            },
        )

    return apply
