"""List, re-drive and discard the dead-letter queue (``streamrec dlq list|redrive|discard``).

The queue holds two shapes of message:

* **record letters**, sent by the functions themselves (``stream.process_batch``): one
  record with its ``reason``, origin (``source`` stream ARN, ``shard``,
  ``sequence_number``, ``partition_key``) and raw ``data`` (base64);
* **batch descriptions**, sent by Lambda's OnFailure destination when a batch exhausted
  its retries: ``KinesisBatchInfo`` (stream ARN, shard, first and last sequence number)
  without the data, which must be read back from the stream while it retains it.

Re-driving puts the original records back on their stream (same partition key, stream
order) and deletes the messages it re-drove. Records that were invalid (not JSON, schema
violations) would only come back, so they are kept unless ``include_invalid``; records
whose processing failed are re-driven; a message lacking what a
re-drive needs (a record letter without valid base64 ``data`` or a partition key, a batch
description without its stream, shard or sequence numbers) is kept. Re-putting is safe: a
record already applied is recognised by its ``event_id`` in the user's row (see
docs/reliability-and-security.md), and similarity recomputation is idempotent. A user event
whose write DynamoDB rejected (reason ``write rejected``) may have some of its count rows
written while its user row was not: re-driving it would count those rows again, so it is
kept unless ``include_partly_written``, and so is a batch description of the event stream:
the ingest may have written some of the batch's count rows in the attempts before Lambda
gave up (the template's ``IngestRetryAttempts`` is -1, retrying until the batch succeeds,
so such descriptions come only from a stack deployed with a finite value). Batch
descriptions of the changed-items stream are re-driven.

Letters of invalid records, which a re-drive keeps and which would only be rejected again,
are deleted by :func:`discard_invalid` once the shop has read them (the producer's bug fixed,
the record sent again corrected); every other letter stays.

Whatever happens, every received message that was not deleted (re-driven or discarded) is
made visible again before :func:`redrive`, :func:`discard_invalid` and :func:`receive_all`
return or raise, so that a re-run sees it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamrec.kinesis_put import put_stream_records

__all__ = [
    "DiscardReport",
    "Letter",
    "RedriveReport",
    "StreamNotFound",
    "discard_invalid",
    "read_range",
    "receive_all",
    "redrive",
    "release",
    "stream_name_of",
]

PROCESSING_FAILED = "processing failed"  # stream.PROCESSING_FAILED (kept import-free here)
WRITE_REJECTED = "write rejected"  # stream.WRITE_REJECTED
UNPARSEABLE = "unparseable record"  # stream.RecordCollector: the parser itself failed
_EMPTY_POLLS = 3  # SQS short polling may answer empty while messages remain
# Polls in a row answered only with messages received already (their visibility timeout ran
# out while a large queue was read) before the queue counts as read.
_STALE_POLLS = 20


class StreamNotFound(LookupError):
    """The stream given to :func:`redrive` does not exist (nothing was received or put)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.stream = stream


def _is_sequence_number(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value).isdigit()


def _printable(text: str) -> str:
    """``text`` with what a terminal should not be sent escaped as JSON writes it: newlines
    and control characters (one line per letter, no control sequence reaches the terminal)
    and lone surrogates (which no output encoding takes); spaces of any width are shown."""
    return "".join(
        c if c.isprintable() or unicodedata.category(c) == "Zs" else json.dumps(c)[1:-1] for c in text
    )


def stream_name_of(arn_or_name: str) -> str:
    """``arn:aws:kinesis:<region>:<account>:stream/<name>`` -> ``<name>`` (names pass through)."""
    return arn_or_name.split(":stream/", 1)[1] if ":stream/" in arn_or_name else arn_or_name


# The template's logical id of the stream the similarity function reads: CloudFormation and
# the local stack put it in the stream's name (<stack>-ChangedItemsStream[-<suffix>]).
CHANGED_ITEMS_STREAM_ID = "ChangedItemsStream"


# The logical id as the name's last part (before CloudFormation's random suffix), so that a
# stack whose own name holds it does not make its event stream look like one.
_CHANGED_ITEMS_NAME = re.compile(rf"(^|-){CHANGED_ITEMS_STREAM_ID}(-[A-Za-z0-9]+)?$")


def is_changed_items_stream(arn_or_name: str) -> bool:
    """Whether the stream is (by its name) the stack's changed-items stream."""
    return _CHANGED_ITEMS_NAME.search(stream_name_of(arn_or_name)) is not None


@dataclass
class Letter:
    """One dead-letter message."""

    message_id: str
    receipt_handle: str
    raw: str
    body: dict[str, Any] | None = None

    @staticmethod
    def parse_body(raw: str) -> dict[str, Any] | None:
        """A message body as a JSON object (None when it is not one)."""
        try:
            body = json.loads(raw)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    @property
    def kind(self) -> str:
        """``record`` (sent by a function), ``batch`` (Lambda OnFailure) or ``unknown``."""
        if self.body is None:
            return "unknown"
        if isinstance(self.body.get("KinesisBatchInfo"), dict):
            return "batch"
        if "sequence_number" in self.body and "data" in self.body:
            return "record"
        return "unknown"

    @property
    def reason(self) -> str:
        if self.kind == "record":
            return str(self.body.get("reason", "")) if self.body else ""
        if self.kind == "batch" and self.body:
            context = self.body.get("requestContext") or {}
            info = self.body.get("errorInfo") or {}
            reason = str(context.get("condition", "RetryAttemptsExhausted"))
            if info:
                reason += f": {info.get('errorType', '')}: {info.get('errorMessage', '')}"
            return reason
        return "unrecognised message"

    @property
    def stream_arn(self) -> str:
        if self.kind == "record" and self.body:
            return str(self.body.get("source", ""))
        if self.kind == "batch" and self.body:
            return str(self.body["KinesisBatchInfo"].get("streamArn", ""))
        return ""

    @property
    def origin(self) -> str:
        """Who sent it: the function ARN for batches, the stream for records."""
        if self.kind == "batch" and self.body:
            return str((self.body.get("requestContext") or {}).get("functionArn", ""))
        return self.stream_arn

    @property
    def shard(self) -> str:
        if self.kind == "record" and self.body:
            return str(self.body.get("shard", ""))
        if self.kind == "batch" and self.body:
            return str(self.body["KinesisBatchInfo"].get("shardId", ""))
        return ""

    @property
    def sequence_range(self) -> tuple[str, str]:
        if self.kind == "record" and self.body:
            sequence = str(self.body.get("sequence_number", ""))
            return sequence, sequence
        if self.kind == "batch" and self.body:
            info = self.body["KinesisBatchInfo"]
            return str(info.get("startSequenceNumber", "")), str(info.get("endSequenceNumber", ""))
        return "", ""

    @property
    def size(self) -> int:
        if self.kind == "batch" and self.body:
            size = self.body["KinesisBatchInfo"].get("batchSize", 0)
            return int(size) if _is_sequence_number(size) else 0
        return 1 if self.kind == "record" else 0

    @property
    def data(self) -> bytes | None:
        """A record letter's raw record (``None`` when its ``data`` is not valid base64)."""
        value = self.body.get("data") if self.kind == "record" and self.body else None
        if not isinstance(value, str):
            return None
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None

    @property
    def defect(self) -> str:
        """What a re-drive needs and this record letter or batch description lacks ("" if
        nothing): such a message was not written by this project or Lambda as it is."""
        if self.kind == "record" and self.body:
            if self.data is None:
                return "corrupt record letter: data is not valid base64"
            key = self.body.get("partition_key")
            if not isinstance(key, str) or not key:
                return "corrupt record letter: no partition_key"
            if not _is_sequence_number(self.body.get("sequence_number")):
                return "corrupt record letter: sequence_number is not a number"
        if self.kind == "batch" and self.body:
            info = self.body["KinesisBatchInfo"]
            for name in ("streamArn", "shardId"):
                if not isinstance(info.get(name), str) or not info.get(name):
                    return f"corrupt batch description: no {name}"
            for name in ("startSequenceNumber", "endSequenceNumber"):
                if not _is_sequence_number(info.get(name)):
                    return f"corrupt batch description: {name} is not a number"
        return ""

    def redrivable(
        self, include_invalid: bool = False, include_partly_written: bool = False
    ) -> tuple[bool, str]:
        """(whether to re-drive it, why not)."""
        if self.kind == "unknown":
            return False, "not a dead letter of this project"
        assert self.body is not None
        if self.kind == "record" and self.body.get("data_truncated"):
            return False, "record data was truncated in the queue"
        if self.defect:
            return False, self.defect
        if self.kind == "batch" and is_changed_items_stream(self.stream_arn):
            return True, ""  # the similarity function's writes are guarded replacements
        if self.kind == "batch":
            # The ingest gave up on it after retries that may have written some of its count
            # rows; put back at new sequence numbers, its records would count them again.
            if include_partly_written:
                return True, ""
            return False, (
                "user events given up on after retries: some of their counts may be written, "
                "a re-drive could count them twice"
            )
        if self.reason.startswith(WRITE_REJECTED):
            if include_partly_written:
                return True, ""
            return False, "some of its counts may be written: a re-drive could count them twice"
        if not include_invalid and self.reason.startswith(UNPARSEABLE):
            # Not the producer's error (so never discarded as invalid): ours, re-driven once fixed.
            return False, (
                "the parser failed on it (a defect of streamrec, see the ingest's log): "
                "re-drive it with --include-invalid once fixed"
            )
        if not include_invalid and not self.reason.startswith(PROCESSING_FAILED):
            return False, "invalid record: it would be rejected again"
        return True, ""

    @property
    def invalid(self) -> bool:
        """A user-event stream record the ingest rejected as invalid (not JSON, a schema
        violation, ...): the producer's error, which re-sent as it is would be rejected again.
        Not one whose processing failed, whose write was rejected or which the parser itself
        failed on (``unparseable record``: a bug of ours, re-drivable once fixed), not a
        changed-items record (the project writes those), and not a message lacking its reason
        or origin."""
        return (
            self.kind == "record"
            and not self.defect
            and bool(self.reason)
            and bool(self.stream_arn)
            and not is_changed_items_stream(self.stream_arn)
            and not self.reason.startswith((PROCESSING_FAILED, WRITE_REJECTED, UNPARSEABLE))
        )

    def describe(self) -> str:
        reason = _printable(self.reason)
        if self.kind == "unknown":
            head = self.raw if len(self.raw) <= 80 else self.raw[:79] + "…"
            return f"unknown message {self.message_id}: {reason}: {_printable(head)}"
        first, last = self.sequence_range
        where = f"{stream_name_of(self.stream_arn)}/{self.shard}"
        sequences = first if first == last else f"{first}..{last} ({self.size} records)"
        return f"{self.kind:6} {where} {sequences}: {reason}"

    def as_dict(self) -> dict[str, Any]:
        first, last = self.sequence_range
        redrivable, kept_because = self.redrivable()
        record = self.body if self.kind == "record" and self.body else {}
        return {
            "message_id": self.message_id,
            "kind": self.kind,
            "reason": self.reason,
            "origin": self.origin,
            "stream": stream_name_of(self.stream_arn),
            "shard": self.shard,
            "first_sequence_number": first,
            "last_sequence_number": last,
            "records": self.size,
            "redrivable": redrivable,
            # Why `dlq redrive` keeps it by default ("" when it re-drives it).
            "kept_because": kept_because,
            # An unrecognised message's body (its start), to tell what sent it.
            **({"body": self.raw[:1000]} if self.kind == "unknown" else {}),
            # A record letter's record as the producer sent it (base64), to find the bug.
            **(
                {
                    "partition_key": record.get("partition_key"),
                    "data": record.get("data"),
                    "data_truncated": bool(record.get("data_truncated")),
                }
                if record
                else {}
            ),
        }


def message_count(sqs: Any, queue_url: str) -> int:
    """Messages in the queue, visible or being read (SQS's approximate counts)."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def receive_all(
    sqs: Any,
    queue_url: str,
    *,
    visibility_timeout: int = 300,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Letter]:
    """Receive every message (they stay invisible for ``visibility_timeout`` seconds unless
    :func:`release`\\ d or deleted). If receiving fails or is interrupted, the messages
    received so far are released before the error propagates (a Ctrl-C inside a receive
    call itself can leave its up to 10 messages hidden until their timeout ends).
    ``progress`` is told the count received after each call that brought new ones."""
    letters: list[Letter] = []
    seen: dict[str, Letter] = {}
    empty = stale = 0
    try:
        while limit is None or len(letters) < limit:
            response = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=visibility_timeout,
                WaitTimeSeconds=0,
            )
            messages = response.get("Messages") or []
            fresh = []
            for message in messages:
                known = seen.get(message["MessageId"])
                if known is None:
                    # Recorded before anything else, so that an interruption releases it too.
                    letter = Letter(message["MessageId"], message["ReceiptHandle"], message.get("Body", ""))
                    seen[letter.message_id] = letter
                    letters.append(letter)
                    fresh.append(letter)
                else:  # its visibility timeout ran out: only the latest receipt handle releases it
                    known.receipt_handle = message["ReceiptHandle"]
            for letter in fresh:
                letter.body = Letter.parse_body(letter.raw)
            if fresh:
                empty = stale = 0
                if progress is not None:
                    progress(len(letters))
            elif messages:
                # Only messages received already, back because their timeout ran out while
                # the queue was read: others may still come, but not for ever.
                stale += 1
                if stale >= _STALE_POLLS:
                    break
            else:  # short polling may answer empty while messages remain
                empty += 1
                if empty >= _EMPTY_POLLS:
                    break
    except BaseException:
        _release_quietly(sqs, queue_url, letters)
        raise
    return letters


def release(sqs: Any, queue_url: str, letters: Iterable[Letter]) -> None:
    """Make the letters visible again at once (they stay in the queue)."""
    batch = list(letters)
    for start in range(0, len(batch), 10):
        chunk = batch[start : start + 10]
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": letter.receipt_handle, "VisibilityTimeout": 0}
                for i, letter in enumerate(chunk)
            ],
        )


def _release_quietly(sqs: Any, queue_url: str, letters: Iterable[Letter]) -> None:
    """:func:`release` while another error propagates: that one is the error to report (if
    releasing fails too, the letters reappear when their visibility timeout ends)."""
    with contextlib.suppress(Exception):  # the error in flight is the one to report
        release(sqs, queue_url, letters)


@contextlib.contextmanager
def _released_unless_deleted(
    sqs: Any, queue_url: str, letters: Sequence[Letter], deleted: set[str]
) -> Iterator[None]:
    """Make every letter whose id is not in ``deleted`` (as it stands then) visible again when
    the block ends, also when it raises (that error is the one reported)."""
    try:
        yield
    except BaseException:
        _release_quietly(sqs, queue_url, [letter for letter in letters if letter.message_id not in deleted])
        raise
    release(sqs, queue_url, [letter for letter in letters if letter.message_id not in deleted])


def _delete(sqs: Any, queue_url: str, letters: Sequence[Letter]) -> dict[str, str]:
    """Delete the letters; returns those SQS did not delete (message id -> its error code):
    DeleteMessageBatch answers per entry, and a refused entry is not an exception."""
    refused: dict[str, str] = {}
    for start in range(0, len(letters), 10):
        chunk = letters[start : start + 10]
        answer = sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": letter.receipt_handle} for i, letter in enumerate(chunk)
            ],
        )
        for failure in (answer or {}).get("Failed") or []:
            refused[chunk[int(failure["Id"])].message_id] = str(failure.get("Code") or failure.get("Message"))
    return refused


# GetRecords may answer empty while records lie further on (a stretch of the shard without
# any, e.g. from the trim horizon): read on while behind the tip, this many empty answers in a
# row at most (paced at 5 reads a second, a shard's limit: about a minute).
EMPTY_READS_ALLOWED = 300


class IncompleteRead(Exception):
    """GetRecords kept answering empty while behind the shard's tip: the letter's records
    were not all read (not lost): keep the letter for another try."""


def read_range(
    kinesis: Any,
    stream: str,
    shard_id: str,
    first: str,
    last: str,
    sleep: Callable[[float], None] | None = None,
) -> list[dict[str, Any]]:
    """The records of ``shard_id`` with sequence numbers from ``first`` to ``last`` still in
    the stream (GetRecords output: ``Data`` bytes, ``PartitionKey``, ``SequenceNumber``);
    :class:`IncompleteRead` when they could not all be read."""
    from botocore.exceptions import ClientError

    from streamrec.repositories.dynamodb import error_code

    name = stream_name_of(stream)
    try:
        iterator = kinesis.get_shard_iterator(
            StreamName=name,
            ShardId=shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=first,
        )["ShardIterator"]
    except ClientError as error:
        if error_code(error) != "InvalidArgumentException":
            raise
        # A first record past the stream's retention is refused as an invalid starting point:
        # what is left of the range starts at the trim horizon.
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
    start, end = int(first), int(last)
    records: list[dict[str, Any]] = []
    empty = 0
    while iterator:
        response = kinesis.get_records(ShardIterator=iterator, Limit=1000)
        batch = response.get("Records") or []
        iterator = response.get("NextShardIterator")
        if not batch:
            if not response.get("MillisBehindLatest"):
                break  # at the tip: nothing further
            empty += 1
            if empty >= EMPTY_READS_ALLOWED:
                raise IncompleteRead(
                    f"GetRecords answered empty {empty} times in a row behind the tip of shard {shard_id}"
                )
            (sleep or time.sleep)(0.2)
            continue
        empty = 0
        for record in batch:
            sequence = int(record["SequenceNumber"])
            if sequence > end:
                return records
            if sequence >= start:
                records.append(record)
    return records


@dataclass
class RedriveReport:
    examined: int = 0
    redriven_messages: int = 0
    redriven_records: int = 0
    duplicates_skipped: int = 0
    kept: list[tuple[str, str]] = field(default_factory=list)  # (description, why)
    # (description, records put back, stream) of each letter re-driven (or, dry, that would be)
    redriven: list[tuple[str, int, str]] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "examined": self.examined,
            "redriven_messages": self.redriven_messages,
            "redriven_records": self.redriven_records,
            "duplicates_skipped": self.duplicates_skipped,
            "kept": len(self.kept),
            "kept_reasons": sorted({why for _, why in self.kept}),
            "dry_run": self.dry_run,
        }


def _put(kinesis: Any, stream: str, records: Sequence[dict[str, Any]]) -> None:
    """Put ``records`` (as GetRecords gave them) back on ``stream``, each partition key's in
    their order, also when PutRecords refuses some of a call (:func:`put_stream_records`);
    :class:`RecordsKeptFailing` when it keeps refusing them."""
    put_stream_records(
        kinesis,
        stream_name_of(stream),
        [record["Data"] for record in records],
        [record["PartitionKey"] for record in records],
        lambda *_: None,
    )


def _check_stream(kinesis: Any, stream: str) -> None:
    """:class:`StreamNotFound` unless ``stream`` exists."""
    from botocore.exceptions import ClientError

    from streamrec.repositories.dynamodb import error_code

    try:
        kinesis.describe_stream_summary(StreamName=stream_name_of(stream))
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            raise StreamNotFound(stream) from None
        raise


def redrive(
    sqs: Any,
    kinesis: Any,
    queue_url: str,
    *,
    dry_run: bool = False,
    include_invalid: bool = False,
    include_partly_written: bool = False,
    stream: str | None = None,
    letters: Sequence[Letter] | None = None,
    progress: Callable[[int, int], None] | None = None,
    receiving: Callable[[int], None] | None = None,
    visibility_timeout: int = 300,
) -> RedriveReport:
    """Put the dead-lettered records back on their streams and delete their messages.

    Every letter not deleted is released (visible again) when this returns or raises.

    Args:
        stream: put every re-driven record on this stream instead of its original one
            (checked first: :class:`StreamNotFound` if it does not exist).
        letters: messages already received (and still invisible) by :func:`receive_all`;
            by default the whole queue is received here (``receiving`` told the count so far),
            each hidden for ``visibility_timeout`` seconds until re-driven or released.
        progress: told (letters re-driven, letters to re-drive) after each one.
    """
    if stream is not None:
        try:
            _check_stream(kinesis, stream)
        except BaseException:
            if letters is not None:
                _release_quietly(sqs, queue_url, letters)
            raise
    if letters is None:
        letters = receive_all(sqs, queue_url, visibility_timeout=visibility_timeout, progress=receiving)
    letters = list(letters)
    deleted: set[str] = set()  # message ids
    with _released_unless_deleted(sqs, queue_url, letters, deleted):
        return _redrive(
            sqs,
            kinesis,
            queue_url,
            letters,
            deleted,
            dry_run=dry_run,
            include_invalid=include_invalid,
            include_partly_written=include_partly_written,
            stream=stream,
            progress=progress,
        )


@dataclass
class DiscardReport:
    examined: int = 0
    discarded: list[str] = field(default_factory=list)  # the discarded letters, described
    refused: list[str] = field(default_factory=list)  # those SQS did not delete, described with why


def discard_invalid(
    sqs: Any,
    queue_url: str,
    *,
    dry_run: bool = False,
    receiving: Callable[[int], None] | None = None,
    visibility_timeout: int = 300,
) -> DiscardReport:
    """Delete the letters of invalid records (:attr:`Letter.invalid`; with ``dry_run`` only
    name them) and release every other one. ``receiving`` and ``visibility_timeout`` as in
    :func:`redrive`."""
    letters = receive_all(sqs, queue_url, visibility_timeout=visibility_timeout, progress=receiving)
    chosen = [letter for letter in letters if letter.invalid]
    deleted: set[str] = set()
    refused: dict[str, str] = {}
    with _released_unless_deleted(sqs, queue_url, letters, deleted):
        if not dry_run:
            for start in range(0, len(chosen), 10):
                chunk = chosen[start : start + 10]
                refused.update(_delete(sqs, queue_url, chunk))
                deleted.update(letter.message_id for letter in chunk if letter.message_id not in refused)
    return DiscardReport(
        len(letters),
        [letter.describe() for letter in chosen if letter.message_id not in refused],
        [
            f"{letter.describe()} (SQS: {refused[letter.message_id]})"
            for letter in chosen
            if letter.message_id in refused
        ],
    )


class _Kept(Exception):
    """A letter left in the queue, with the reason the report gives."""


def _redrive(
    sqs: Any,
    kinesis: Any,
    queue_url: str,
    letters: Sequence[Letter],
    deleted: set[str],
    *,
    dry_run: bool,
    include_invalid: bool,
    include_partly_written: bool,
    stream: str | None,
    progress: Callable[[int, int], None] | None = None,
) -> RedriveReport:
    """:func:`redrive`'s work; adds the id of each message it deletes to ``deleted``."""
    report = RedriveReport(examined=len(letters), dry_run=dry_run)
    stream_exists = _StreamCheck(kinesis)
    todo: list[tuple[Letter, str, list[dict[str, Any]], str]] = []
    for letter in letters:
        try:
            _check_redrivable(letter, stream, stream_exists, include_invalid, include_partly_written)
            records, note = _records_of(letter, kinesis, stream_exists)
        except _Kept as kept:
            report.kept.append((letter.describe(), str(kept)))
            continue
        todo.append((letter, stream or letter.stream_arn, records, note))
    # Stream order per shard, so that a user's events go back in the order they came.
    todo.sort(key=lambda t: (stream_name_of(t[1]), t[0].shard, int(t[0].sequence_range[0] or 0)))
    put: set[tuple[str, str, str]] = set()
    for done, (letter, target, records, note) in enumerate(todo, start=1):
        fresh = []
        for record in records:
            key = (stream_name_of(letter.stream_arn), letter.shard, str(record["SequenceNumber"]))
            if key in put:
                report.duplicates_skipped += 1
                continue
            put.add(key)
            fresh.append(record)
        if not dry_run:
            if fresh:
                _put(kinesis, target, fresh)
            # Deleted right after its records are back: a crash re-drives at most this one again.
            refused = _delete(sqs, queue_url, [letter])
            if refused:  # back in the queue: a later re-drive puts its records again (harmless)
                report.kept.append(
                    (letter.describe(), f"re-driven, but SQS did not delete it: {refused[letter.message_id]}")
                )
            else:
                deleted.add(letter.message_id)
        report.redriven_messages += 1
        report.redriven_records += len(fresh)
        report.redriven.append((letter.describe() + note, len(fresh), stream_name_of(target)))
        if progress is not None:
            progress(done, len(todo))
    return report


class _StreamCheck:
    """Whether a stream exists, asked of Kinesis once per stream name."""

    def __init__(self, kinesis: Any) -> None:
        self.kinesis = kinesis
        self.exists: dict[str, bool] = {}

    def __call__(self, arn_or_name: str) -> bool:
        from botocore.exceptions import ClientError

        from streamrec.repositories.dynamodb import error_code

        name = stream_name_of(arn_or_name)
        if name not in self.exists:
            try:
                _check_stream(self.kinesis, name)
                self.exists[name] = True
            except StreamNotFound:
                self.exists[name] = False
            except ClientError as error:
                if error_code(error) != "AccessDeniedException":
                    raise
                # A role that may put records but not describe streams: PutRecords will tell.
                self.exists[name] = True
        return self.exists[name]


def _check_redrivable(
    letter: Letter,
    stream: str | None,
    stream_exists: _StreamCheck,
    include_invalid: bool,
    include_partly_written: bool,
) -> None:
    """Raises :class:`_Kept` with the reason when ``letter`` stays in the queue."""
    ok, why = letter.redrivable(include_invalid, include_partly_written)
    if not ok:
        raise _Kept(why)
    if letter.kind == "record" and not (stream or letter.stream_arn):
        raise _Kept("corrupt record letter: no source stream (pass --stream)")
    if (
        stream
        and letter.stream_arn
        and is_changed_items_stream(stream) != is_changed_items_stream(letter.stream_arn)
    ):
        # Its consumer would refuse every record and dead-letter it again, as invalid.
        came_from = (
            "the changed-items stream" if is_changed_items_stream(letter.stream_arn) else "the event stream"
        )
        raise _Kept(f"--stream {stream_name_of(stream)} is not its kind of stream: it came from {came_from}")
    if letter.kind == "record" and not stream and not stream_exists(letter.stream_arn):
        # Kept, not failed: one letter of a deleted stack must not hold back the others.
        raise _Kept(
            f"its stream {stream_name_of(letter.stream_arn)} no longer exists: "
            "--stream NAME puts its record on another"
        )


def _records_of(
    letter: Letter, kinesis: Any, stream_exists: _StreamCheck
) -> tuple[list[dict[str, Any]], str]:
    """The records a letter puts back (a record letter's own, a batch letter's read again
    from its stream) and a note on those lost; :class:`_Kept` when there are none to put."""
    from botocore.exceptions import ClientError

    from streamrec.repositories.dynamodb import error_code

    assert letter.body is not None
    if letter.kind == "record":
        record = {
            "Data": letter.data,
            "PartitionKey": letter.body["partition_key"],
            "SequenceNumber": str(letter.body["sequence_number"]),
        }
        return [record], ""
    first, last = letter.sequence_range
    try:
        records = read_range(kinesis, letter.stream_arn, letter.shard, first, last)
    except IncompleteRead as error:
        raise _Kept(f"its records could not all be read ({error}): re-run") from error
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        # Its records can only be read from that stream: --stream cannot help.
        name = stream_name_of(letter.stream_arn)
        if stream_exists(name):
            raise _Kept(f"its shard {letter.shard} is no longer in stream {name}: records lost") from error
        raise _Kept(f"its stream {name} no longer exists: records lost") from error
    if not records:
        raise _Kept("records no longer in the stream (retention)")
    lost = letter.size - len(records)
    # Its first records passed the stream's retention: the rest go back.
    note = f" ({lost} of its {letter.size} records no longer in the stream: lost)" if lost > 0 else ""
    return records, note
