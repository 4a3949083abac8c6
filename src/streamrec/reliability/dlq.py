"""List and re-drive the dead-letter queue (``streamrec dlq list|redrive``).

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
whose processing failed, and whole batches, are re-driven. Re-putting those is safe: a
record already applied is recognised by its ``event_id`` in the user's row (see README,
"Reliability and security"), and similarity recomputation is idempotent. A user event
whose write DynamoDB rejected (reason ``write rejected``) may have some of its count rows
written while its user row was not: re-driving it would count those rows again, so it is
kept unless ``include_partly_written``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Letter", "RedriveReport", "read_range", "receive_all", "redrive", "release", "stream_name_of"]

PROCESSING_FAILED = "processing failed"  # stream.PROCESSING_FAILED (kept import-free here)
WRITE_REJECTED = "write rejected"  # stream.WRITE_REJECTED
PUT_RECORDS_LIMIT = 500
_EMPTY_POLLS = 3  # SQS short polling may answer empty while messages remain


def stream_name_of(arn_or_name: str) -> str:
    """``arn:aws:kinesis:<region>:<account>:stream/<name>`` -> ``<name>`` (names pass through)."""
    return arn_or_name.split(":stream/", 1)[1] if ":stream/" in arn_or_name else arn_or_name


@dataclass
class Letter:
    """One dead-letter message."""

    message_id: str
    receipt_handle: str
    raw: str
    body: dict[str, Any] | None = None

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Letter:
        raw = message.get("Body", "")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        return cls(
            message["MessageId"], message["ReceiptHandle"], raw, body if isinstance(body, dict) else None
        )

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
            return int(self.body["KinesisBatchInfo"].get("batchSize", 0))
        return 1 if self.kind == "record" else 0

    def redrivable(
        self, include_invalid: bool = False, include_partly_written: bool = False
    ) -> tuple[bool, str]:
        """(whether to re-drive it, why not)."""
        if self.kind == "unknown":
            return False, "not a dead letter of this project"
        if self.kind == "batch":
            return True, ""
        assert self.body is not None
        if self.body.get("data_truncated"):
            return False, "record data was truncated in the queue"
        if self.reason.startswith(WRITE_REJECTED):
            if include_partly_written:
                return True, ""
            return False, "some of its counts may be written: a re-drive could count them twice"
        if not include_invalid and not self.reason.startswith(PROCESSING_FAILED):
            return False, "invalid record (would be rejected again)"
        return True, ""

    def describe(self) -> str:
        first, last = self.sequence_range
        where = f"{stream_name_of(self.stream_arn)}/{self.shard}"
        sequences = first if first == last else f"{first}..{last} ({self.size} records)"
        return f"{self.kind:6} {where} {sequences}: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        first, last = self.sequence_range
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
            "redrivable": self.redrivable()[0],
        }


def receive_all(
    sqs: Any, queue_url: str, *, visibility_timeout: int = 300, limit: int | None = None
) -> list[Letter]:
    """Receive every message (they stay invisible for ``visibility_timeout`` seconds unless
    :func:`release`\\ d or deleted)."""
    letters: list[Letter] = []
    seen: set[str] = set()
    empty = 0
    while limit is None or len(letters) < limit:
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=visibility_timeout,
            WaitTimeSeconds=0,
        )
        fresh = [m for m in response.get("Messages") or [] if m["MessageId"] not in seen]
        if not fresh:  # nothing, or only messages whose visibility timeout ran out already
            empty += 1
            if empty >= _EMPTY_POLLS:
                break
            continue
        empty = 0
        for message in fresh:
            seen.add(message["MessageId"])
            letters.append(Letter.from_message(message))
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


def _delete(sqs: Any, queue_url: str, letters: Sequence[Letter]) -> None:
    for start in range(0, len(letters), 10):
        chunk = letters[start : start + 10]
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": letter.receipt_handle} for i, letter in enumerate(chunk)
            ],
        )


def read_range(kinesis: Any, stream: str, shard_id: str, first: str, last: str) -> list[dict[str, Any]]:
    """The records of ``shard_id`` with sequence numbers from ``first`` to ``last``
    (GetRecords output: ``Data`` bytes, ``PartitionKey``, ``SequenceNumber``)."""
    iterator = kinesis.get_shard_iterator(
        StreamName=stream_name_of(stream),
        ShardId=shard_id,
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=first,
    )["ShardIterator"]
    end = int(last)
    records: list[dict[str, Any]] = []
    empty = 0
    while iterator and empty < 5:
        response = kinesis.get_records(ShardIterator=iterator, Limit=1000)
        batch = response.get("Records") or []
        iterator = response.get("NextShardIterator")
        if not batch:
            empty += 1
            if not response.get("MillisBehindLatest"):
                break
            continue
        empty = 0
        for record in batch:
            if int(record["SequenceNumber"]) > end:
                return records
            records.append(record)
    return records


@dataclass
class RedriveReport:
    examined: int = 0
    redriven_messages: int = 0
    redriven_records: int = 0
    duplicates_skipped: int = 0
    kept: list[tuple[str, str]] = field(default_factory=list)  # (description, why)
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
    for start in range(0, len(records), PUT_RECORDS_LIMIT):
        pending = [
            {"Data": r["Data"], "PartitionKey": r["PartitionKey"]} for r in records[start : start + 500]
        ]
        for _ in range(8):
            response = kinesis.put_records(StreamName=stream_name_of(stream), Records=pending)
            if not response.get("FailedRecordCount"):
                break
            pending = [p for p, r in zip(pending, response["Records"], strict=True) if "ErrorCode" in r]
        else:
            raise RuntimeError(f"PutRecords to {stream} kept failing for {len(pending)} records")


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
) -> RedriveReport:
    """Put the dead-lettered records back on their streams and delete their messages.

    Args:
        stream: put every re-driven record on this stream instead of its original one.
        letters: messages already received (and still invisible) by :func:`receive_all`;
            by default the whole queue is received here.
    """
    letters = list(letters) if letters is not None else receive_all(sqs, queue_url)
    report = RedriveReport(examined=len(letters), dry_run=dry_run)
    keep: list[Letter] = []
    todo: list[tuple[Letter, str, list[dict[str, Any]]]] = []
    for letter in letters:
        ok, why = letter.redrivable(include_invalid, include_partly_written)
        if not ok:
            keep.append(letter)
            report.kept.append((letter.describe(), why))
            continue
        assert letter.body is not None
        if letter.kind == "record":
            records = [
                {
                    "Data": base64.b64decode(letter.body["data"]),
                    "PartitionKey": letter.body["partition_key"],
                    "SequenceNumber": letter.body["sequence_number"],
                }
            ]
        else:
            first, last = letter.sequence_range
            records = read_range(kinesis, letter.stream_arn, letter.shard, first, last)
            if not records:
                keep.append(letter)
                report.kept.append((letter.describe(), "records no longer in the stream (retention)"))
                continue
        todo.append((letter, stream or letter.stream_arn, records))
    # Stream order per shard, so that a user's events go back in the order they came.
    todo.sort(key=lambda t: (stream_name_of(t[1]), t[0].shard, int(t[0].sequence_range[0] or 0)))
    put: set[tuple[str, str, str]] = set()
    for letter, target, records in todo:
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
            _delete(sqs, queue_url, [letter])
        report.redriven_messages += 1
        report.redriven_records += len(fresh)
    release(sqs, queue_url, letters if dry_run else keep)
    return report
