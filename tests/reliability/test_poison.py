"""Poison records of every kind, mixed into a real replay through the local stack.

The local stack runs the real pollers (Lambda's event source mapping: batches of 1,000,
partial responses, retries with bisection (5 for the ingest here: IngestRetryAttempts),
OnFailure to the dead-letter queue) and the
real handlers. Bad records must all reach the dead-letter queue with a reason while every
valid event is applied exactly once; a record hit by a (simulated) bug is dead-lettered by
the handler, records hit by a (simulated) outage end in Lambda's OnFailure batch
descriptions; `streamrec dlq list` shows them, and `streamrec dlq redrive`, after the fix,
re-applies both kinds; the tables then equal a clean run's.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streamrec.cli import main
from streamrec.local.stack import LocalStack
from streamrec.reliability import dlq
from streamrec.reliability.faults import ReplayConfig, replay
from streamrec.reliability.poison import (
    INVALID_KINDS,
    OUTAGE_RETRY_ATTEMPTS,
    bad_records,
    check_dead_letters,
    failing_processing,
    poison_events,
)
from streamrec.reliability.sandbox import diff_snapshots, normalized, scan_tables

from .conftest import taobao_events

pytestmark = pytest.mark.reliability

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
VALID_EVENTS = 100
PER_KIND = 75  # bad records of each invalid kind (525 in all; `streamrec faults` puts 500 of each)
PROCESSING_FAILURES = 50
OUTAGE_RECORDS = 2


@pytest.fixture(scope="module")
def scenario() -> dict[str, Any]:
    """The events, and the tables of a clean in-process replay of every valid one (computed
    before the module's local stack starts: both use moto's global state)."""
    events = taobao_events(VALID_EVENTS, coupons=False)  # the local stack has no coupons defined
    bug = poison_events("processing_fails", PROCESSING_FAILURES)
    outage = poison_events("retries_exhausted", OUTAGE_RECORDS)
    clean = replay(events + bug + outage, ReplayConfig(shards=1))
    return {"events": events, "bug": bug, "outage": outage, "clean": clean.snapshot}


@pytest.fixture(scope="module")
def stack(scenario: dict[str, Any]) -> Any:
    with LocalStack(
        TEMPLATE,
        stack_name="streamrec-poison",
        env_overrides={"POWERTOOLS_LOG_LEVEL": "CRITICAL"},
        # Finite, so that Lambda gives up on the outage records (the template's -1 retries
        # until the outage is over: tests/reliability/test_given_up_batches.py).
        parameter_overrides={"IngestRetryAttempts": OUTAGE_RETRY_ATTEMPTS},
        retry_backoff=0.005,
    ) as running:
        yield running


def _mixed(scenario: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    entries = [
        {"Data": json.dumps(e).encode(), "PartitionKey": e["user_id"], "event": e} for e in scenario["events"]
    ]
    poison = bad_records(PER_KIND, rng)
    for kind in ("processing_fails", "retries_exhausted"):
        group = scenario["bug"] if kind == "processing_fails" else scenario["outage"]
        poison += [
            {"kind": kind, "Data": json.dumps(e).encode(), "PartitionKey": e["user_id"]} for e in group
        ]
    for record in poison:
        entries.insert(rng.randrange(len(entries) + 1), record)
    return entries


def test_every_bad_record_is_dead_lettered_and_every_valid_event_applied_once(
    scenario: dict[str, Any], stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = _mixed(scenario, random.Random(5))
    kinesis, sqs = stack.client("kinesis"), stack.client("sqs")
    queue_url = stack.outputs()["dead_letter_queue_url"]
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(stack.outputs()))
    with failing_processing() as switch:
        sequence_numbers = stack.put_records(
            [{"Data": e["Data"], "PartitionKey": e["PartitionKey"]} for e in entries]
        )
        (shard,) = kinesis.list_shards(StreamName=stack.event_stream_name)["Shards"]
        for entry, sequence in zip(entries, sequence_numbers, strict=True):
            entry["SequenceNumber"], entry["ShardId"] = sequence, shard["ShardId"]
        stack.drain(timeout=240)

        # No shard blocked: the stream drained; only the outage records were given up on.
        ingest = stack.stats()["IngestFunction.UserEvents"]
        assert ingest.failed_records == OUTAGE_RECORDS, ingest

        letters = dlq.receive_all(sqs, queue_url)
        dlq.release(sqs, queue_url, letters)
        found, missing, problems = check_dead_letters(entries, letters)
        expected = Counter(e["kind"] for e in entries if "kind" in e)
        assert not problems, problems
        assert sum(missing.values()) == 0, missing
        assert found == expected
        assert all(found[kind] == PER_KIND for kind in INVALID_KINDS)
        assert all(letter.reason for letter in letters)

        capsys.readouterr()
        assert main(["dlq", "list", "--outputs", str(outputs)]) == 0
        listing = capsys.readouterr().out
        assert f"{len(letters)} dead letters" in listing and "processing failed: SimulatedBug" in listing
        assert "RetryAttemptsExhausted" in listing

        switch["bug"] = switch["outage"] = False  # the fix is deployed, the outage over
        # Batch descriptions of user events are kept unless told (counts may be written);
        # the outage hit the planning, before any write, so here re-driving them is exact.
        assert main(["dlq", "redrive", "--outputs", str(outputs), "--dry-run"]) == 0
        dry = capsys.readouterr().out
        assert f"would re-drive {PROCESSING_FAILURES} records" in dry
        # Each letter it would re-drive is named, with where its records would go.
        named = [line for line in dry.splitlines() if line.startswith("  would re-drive (1 record to ")]
        assert len(named) == PROCESSING_FAILURES and all("processing failed" in line for line in named)
        partly = ["--include-partly-written"]
        assert main(["dlq", "redrive", "--outputs", str(outputs), "--dry-run", *partly]) == 0
        assert f"would re-drive {PROCESSING_FAILURES + OUTAGE_RECORDS} records" in capsys.readouterr().out
        assert main(["dlq", "redrive", "--outputs", str(outputs), *partly]) == 0
        assert f"re-drove {PROCESSING_FAILURES + OUTAGE_RECORDS} records" in capsys.readouterr().out
        stack.drain(timeout=120)

    remaining = dlq.receive_all(sqs, queue_url)
    dlq.release(sqs, queue_url, remaining)
    assert len(remaining) == PER_KIND * len(INVALID_KINDS)  # only the invalid ones stay
    tables = normalized(scan_tables(stack.client("dynamodb"), stack.template))
    differences = diff_snapshots(scenario["clean"], tables)
    assert not differences, [d.describe() for d in differences[:10]]
    print(
        f"poison (local stack): {sum(expected.values())} bad records {dict(expected)}, "
        f"{len(letters)} dead letters, 0 missing, 0 differences"
    )
