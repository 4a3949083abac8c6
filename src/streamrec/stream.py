"""Kinesis batch handling shared by the ingest and similarity functions.

Each record is parsed by Powertools' ``BatchProcessor`` (partial batch responses). A record
that no retry can fix (not JSON, schema violation) becomes a dead letter with its reason
and counts as processed, so it never blocks the shard. The valid records are then applied
together (the point of batching); if that fails, the whole batch fails and Lambda retries
or bisects it, and the replay guards keep the retry from double-counting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from streamrec.domain.ingest import IngestService, SequencedEvent
from streamrec.domain.model import sequence_key
from streamrec.domain.similarity import SimilarityService
from streamrec.events import ID_REGEX, InvalidEvent
from streamrec.observability import logger
from streamrec.repositories.base import DeadLetter, DeadLetterSink


def shard_of(record: KinesisStreamRecord) -> str:
    """The shard id from the record's eventID ("shardId-000000000000:<sequence>")."""
    return record.event_id.split(":", 1)[0]


@dataclass
class RecordCollector:
    """Parses records one by one; keeps valid payloads in order and rejects the rest."""

    parse: Callable[[Any], Any]
    accepted: list[tuple[KinesisStreamRecord, Any]] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)

    def __call__(self, record: KinesisStreamRecord) -> None:
        try:
            payload = record.kinesis.data_as_json()
            self.accepted.append((record, self.parse(payload)))
        except (ValueError, UnicodeDecodeError) as error:
            reason = error.reason if isinstance(error, InvalidEvent) else f"not valid JSON: {error}"
            self.rejected.append(
                DeadLetter(
                    reason=reason,
                    source=record.event_source_arn or "",
                    shard=shard_of(record),
                    sequence_number=record.kinesis.sequence_number,
                    partition_key=record.kinesis.partition_key,
                    data=record.kinesis.data,
                )
            )

    def applicable(self, response: dict[str, Any]) -> list[tuple[KinesisStreamRecord, Any]]:
        """Accepted records before the first failed one: Lambda re-delivers from there."""
        failed = [int(f["itemIdentifier"]) for f in response.get("batchItemFailures", [])]
        if not failed:
            return self.accepted
        first_failure = min(failed)
        return [(r, p) for r, p in self.accepted if int(r.kinesis.sequence_number) < first_failure]


def process_batch(
    event: dict[str, Any],
    context: Any,
    processor: BatchProcessor,
    parse: Callable[[Any], Any],
    apply: Callable[[list[tuple[KinesisStreamRecord, Any]]], None],
    dead_letters: DeadLetterSink,
) -> dict[str, Any]:
    """Parse every record, apply the valid ones together, dead-letter the invalid ones."""
    collector = RecordCollector(parse)
    response = process_partial_response(
        event=event, record_handler=collector, processor=processor, context=context
    )
    applicable = collector.applicable(response)
    if applicable:
        apply(applicable)
    if collector.rejected:
        dead_letters.send(collector.rejected)
        logger.warning(
            "dead-lettered records",
            extra={
                "count": len(collector.rejected),
                "reasons": sorted({d.reason for d in collector.rejected}),
            },
        )
    return response


def ingest_records(service: IngestService) -> Callable[[list[tuple[KinesisStreamRecord, Any]]], None]:
    def apply(records: list[tuple[KinesisStreamRecord, Any]]) -> None:
        shard = shard_of(records[0][0])
        events = [SequencedEvent(sequence_key(r.kinesis.sequence_number), event) for r, event in records]
        plan = service.ingest(events, shard)
        logger.info(
            "ingested batch",
            extra={
                "records": len(records),
                "applied": plan.applied_events,
                "duplicates": plan.duplicates,
                "users": len(plan.users),
                "cooccurrence_rows": len(plan.cooccurrence),
                "changed_items": len(plan.changed_items),
            },
        )

    return apply


@dataclass(frozen=True)
class ChangeNotice:
    """One changed-items record (see ``KinesisChangePublisher``)."""

    item_id: str
    changed: bool
    norm_changed: bool
    popular_changed: bool


def parse_change(payload: Any) -> ChangeNotice:
    """A changed-items record: ``{"item_id", "changed", "norm_changed", "popular_changed"}``."""
    if not isinstance(payload, dict) or not isinstance(payload.get("item_id"), str):
        raise InvalidEvent("changed-items record needs a string item_id")
    if not ID_REGEX.match(payload["item_id"]):
        raise InvalidEvent("changed-items record has a malformed item_id")
    return ChangeNotice(
        payload["item_id"],
        bool(payload.get("changed", True)),
        bool(payload.get("norm_changed")),
        bool(payload.get("popular_changed")),
    )


def similarity_records(service: SimilarityService) -> Callable[[list[tuple[KinesisStreamRecord, Any]]], None]:
    def apply(records: list[tuple[KinesisStreamRecord, Any]]) -> None:
        notices: list[ChangeNotice] = [notice for _, notice in records]
        changed = {n.item_id for n in notices if n.changed}
        norm_changed = {n.item_id for n in notices if n.norm_changed}
        popular_changed = {n.item_id for n in notices if n.popular_changed}
        rows = service.recompute(changed, norm_changed, popular_changed)
        logger.info(
            "recomputed similarity rows",
            extra={"announced": len(notices), "rows": len(rows), "popular": len(popular_changed)},
        )

    return apply
