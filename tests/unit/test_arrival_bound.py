"""A record's timestamp may be at most a day past the record's arrival on the stream, not
past the clock of the attempt reading it: a retried batch refuses and takes the same
records as its first attempt, so it plans the same batch as the rows already written."""

from __future__ import annotations

import types

import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

import streamrec.events
from streamrec.domain.ingest import IngestService
from streamrec.events import MAX_CLOCK_SKEW_SECONDS, parse_record
from streamrec.repositories.base import RepositoryError
from streamrec.repositories.memory import (
    InMemoryChangePublisher,
    InMemoryCooccurrenceRepository,
    InMemoryDeadLetterSink,
    InMemoryItemStatsRepository,
    InMemoryUserRepository,
)
from streamrec.settings import Settings
from streamrec.stream import RecordCollector, ingest_records, process_batch
from tests.unit.conftest import kinesis_event

ARRIVAL = 1_764_000_000.0
AHEAD = ARRIVAL + MAX_CLOCK_SKEW_SECONDS + 30  # refused: just over a day past the arrival


def _clock(monkeypatch: pytest.MonkeyPatch, now: float) -> None:
    monkeypatch.setattr(streamrec.events, "time", types.SimpleNamespace(time=lambda: now))


def _view(n: int, item: str, timestamp: float) -> dict:
    return {
        "event_id": f"e{n}",
        "event_type": "view",
        "user_id": "u1",
        "item_id": item,
        "timestamp": timestamp,
    }


@pytest.mark.parametrize("clock", [ARRIVAL, ARRIVAL + 60, ARRIVAL + 3 * 86_400])
def test_the_verdict_follows_the_arrival_not_the_clock(monkeypatch, clock):
    _clock(monkeypatch, clock)
    within = ARRIVAL + MAX_CLOCK_SKEW_SECONDS - 30  # taken, even read days later (a backlog)
    collector = RecordCollector(parse_record)
    for record in kinesis_event([_view(1, "X", AHEAD), _view(2, "X", within)], arrival=ARRIVAL)["Records"]:
        collector(KinesisStreamRecord(record))
    assert [payload.event_id for _, payload in collector.accepted] == ["e2"]
    [letter] = collector.rejected
    assert "timestamp is more than a day in the future" in letter.reason


class CrashingUsers(InMemoryUserRepository):
    """Fails ``crashes`` user-row writes: the count and stats rows are written, the user rows
    not (a timeout between them); Lambda retries the batch."""

    crashes = 0
    crashed = 0

    def save_many(self, *args, **kwargs):
        if self.crashes:
            self.crashes -= 1
            self.crashed += 1
            raise RepositoryError("timed out after the count rows")
        return super().save_many(*args, **kwargs)


def _run(clocks: list[float], monkeypatch) -> IngestService:
    users = CrashingUsers()
    service = IngestService(
        Settings(history_length=2),
        users,
        InMemoryCooccurrenceRepository(),
        InMemoryItemStatsRepository(),
        InMemoryChangePublisher(),
    )
    # u1 has viewed A; the batch: a view of Y stamped too far ahead, views of X and A.
    first = kinesis_event([_view(1, "A", ARRIVAL - 120)], arrival=ARRIVAL - 100)
    batch = kinesis_event(
        [_view(2, "Y", AHEAD), _view(3, "X", ARRIVAL - 60), _view(4, "A", ARRIVAL - 50)], 10, arrival=ARRIVAL
    )
    for attempt, (clock, event) in enumerate([(ARRIVAL - 90, first), *((clock, batch) for clock in clocks)]):
        users.crashes = int(attempt == 1 and len(clocks) > 1)  # the batch's first attempt, if retried
        _clock(monkeypatch, clock)
        processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
        try:
            process_batch(
                event, None, processor, parse_record, ingest_records(service), InMemoryDeadLetterSink()
            )
        except RepositoryError:
            continue
    return service


def test_a_retry_after_a_crash_counts_what_a_clean_run_counts(monkeypatch):
    clean = _run([ARRIVAL], monkeypatch)
    # The retry comes a minute later: against the clock, it took the view of Y that the first
    # attempt had refused, and counted the X-A pair twice (guards skip only older records).
    retried = _run([ARRIVAL, ARRIVAL + 60], monkeypatch)
    assert retried.users.crashed == 1 and clean.users.crashed == 0
    assert retried.cooccurrence.get_rows(["A", "X", "Y"]) == clean.cooccurrence.get_rows(["A", "X", "Y"])
    assert clean.cooccurrence.get_rows(["A"])["A"] == {"X": 1.0}
    assert retried.users.get("u1") == clean.users.get("u1")
    assert retried.item_stats.get_many(["A", "X", "Y"]) == clean.item_stats.get_many(["A", "X", "Y"])
