"""Exactly-once under crashes, re-deliveries, bisections and producer duplicates.

Real Taobao events go through the production handlers on an in-process moto account; the
fault harness crashes the functions before and after their write calls and compares every
table with a clean run (see streamrec.reliability.faults). `streamrec faults` runs the
same harness on 2,000 events; these tests run it on fewer to stay fast.
"""

from __future__ import annotations

import random

import pytest

from streamrec.reliability.faults import (
    ReplayConfig,
    SampledFaults,
    SweepFaults,
    replay,
    run_fault_injection,
)
from streamrec.reliability.poison import INVALID_KINDS, run_poison_replay
from streamrec.reliability.sandbox import diff_snapshots

from .conftest import taobao_events

pytestmark = pytest.mark.reliability

SAMPLED_EVENTS = 120


def _assert_same_tables(clean, faulty) -> None:
    differences = diff_snapshots(clean.snapshot, faulty.snapshot)
    assert not differences, [d.describe() for d in differences[:10]]
    assert all(clean.snapshot[table] for table in clean.snapshot), "a table stayed empty: nothing was tested"
    assert faulty.dead_letters == 0, "a batch was given up on because of an injected fault"
    assert faulty.shards_drained


def test_a_crash_at_every_write_rank_before_and_after_changes_nothing() -> None:
    events = taobao_events(8)
    small = {"shards": 1, "batch_size": 4, "similarity_batch_size": 4}
    clean = replay(events, ReplayConfig(**small))
    swept = replay(events, ReplayConfig(**small, max_retries=-1, bisect=False), SweepFaults())
    _assert_same_tables(clean, swept)

    faults = swept.faults
    assert faults is not None and swept.sweep is not None
    kinds = faults["write_kinds_seen"]
    # Both functions, every kind of write step of each: counts, announcement, users, rows, lists.
    assert any(k.startswith("IngestFunction dynamodb:UpdateItem") for k in kinds), kinds
    assert "IngestFunction dynamodb:PutItem UsersTable" in kinds
    assert "IngestFunction dynamodb:UpdateItem CouponsTable" in kinds  # coupon_redeemed events
    assert "IngestFunction kinesis:PutRecords ChangedItemsStream" in kinds
    assert any(k.startswith("SimilarityFunction dynamodb:") for k in kinds), kinds
    for kind in kinds:
        for phase in ("before", "after"):
            assert faults["by_kind"].get(f"{kind} {phase}", 0) >= 1, f"{kind} never crashed {phase}"
    print(f"sweep: {faults['total']} crashes over {swept.sweep['batches_swept']} batches, 0 differences")


def test_sampled_crashes_duplicates_and_redeliveries_leave_the_clean_tables() -> None:
    events = taobao_events(SAMPLED_EVENTS)
    clean = replay(events, ReplayConfig())
    config = ReplayConfig(batch_size=30, similarity_batch_size=30, duplicate_rate=0.1, redelivery_rate=0.2)
    faulty = replay(events, config, SampledFaults(random.Random(7), rate=0.35, coverage=2))
    _assert_same_tables(clean, faulty)

    faults = faulty.faults
    assert faults is not None
    assert set(faults["by_function"]) == {"IngestFunction", "SimilarityFunction"}
    assert faults["write_kinds_not_crashed"] == []
    assert faults["by_phase"]["before"] > 0 and faults["by_phase"]["after"] > 0
    ingest = faulty.esm["IngestFunction.UserEvents"]
    assert faulty.producer.duplicates > 0
    assert ingest.redeliveries > 0 and ingest.bisections > 0 and ingest.retries > 0
    print(
        f"sampled: {faults['total']} faults, {faulty.producer.duplicates} producer duplicates, "
        f"{sum(s.redelivered_records for s in faulty.esm.values())} re-delivered records, 0 differences"
    )


def test_the_in_process_harnesses_report_as_the_command_does() -> None:
    """`streamrec faults` at a small scale: both reports are complete and clean."""
    events = taobao_events(40)
    faults = run_fault_injection(events, sweep_events=4, batch_size=20, similarity_batch_size=20)
    assert faults.ok, faults.as_dict()
    assert faults.faults_injected > 0 and faults.duplicates_sent > 0
    poison = run_poison_replay(events, per_kind=10, processing_failures=10, outage_records=2, batch_size=50)
    assert poison.ok, poison.as_dict()
    assert set(poison.bad_records_by_kind) == set(INVALID_KINDS) | {"processing_fails", "retries_exhausted"}
    assert poison.redrive["redriven_records"] == 12
