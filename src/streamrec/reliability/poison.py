"""Poison records: bad records of every kind mixed into a real replay.

Kinds (:data:`KINDS`), each generated in several variants:

* ``not_json``: bytes that are not JSON (garbage, truncated JSON, invalid UTF-8, NaN...);
* ``not_object``: JSON that is not an object (list, string, number, null, boolean);
* ``unknown_event_type``: an otherwise valid event with an unknown or mistyped event_type;
* ``missing_ids``: event_id, user_id or item_id absent or null;
* ``malformed_ids``: ids with forbidden characters, too long, starting with a symbol,
  colliding with global rows (``#totals``);
* ``absurd_timestamp``: zero, negative, milliseconds, far future, NaN, not a date, no zone;
* ``oversized_fields``: strings over their limits, numbers out of range, records far
  larger than any event (over the stream's per-record limit);
* ``processing_fails``: valid events that a (simulated) bug makes fail every time they
  are processed: the handler isolates them and dead-letters them with the error;
* ``retries_exhausted``: valid events whose processing fails with a *transient* error
  (a simulated outage of their rows) until Lambda gives up on them (the replay runs the
  ingest with 5 retries, as a stack deployed with ``IngestRetryAttempts=5``): Lambda's OnFailure
  destination receives their batch description, and ``streamrec dlq redrive`` reads
  them back from the stream once the outage is over.

:func:`run_poison_replay` mixes them into a real replay (in the sandbox), checks that
every bad record reached the dead-letter queue with a reason and that no shard stayed
blocked, then "fixes the bug", ends the outage, re-drives, and compares every table with
a clean replay of the valid events.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from streamrec.reliability import dlq
from streamrec.reliability.faults import ReplayConfig, drain_all, produce, replay
from streamrec.reliability.sandbox import diff_snapshots, normalized, sandbox
from streamrec.repositories.base import RepositoryError

__all__ = [
    "INVALID_KINDS",
    "KINDS",
    "PoisonReport",
    "bad_records",
    "failing_processing",
    "poison_events",
    "run_poison_replay",
]

INVALID_KINDS = (
    "not_json",
    "not_object",
    "unknown_event_type",
    "missing_ids",
    "malformed_ids",
    "absurd_timestamp",
    "oversized_fields",
)
PROCESSING_KINDS = ("processing_fails", "retries_exhausted")
KINDS = INVALID_KINDS + PROCESSING_KINDS

# Ids of the valid events that the simulated bug / outage hit (their own users and items,
# one event each, so that applying them later - after the re-drive - changes nothing else).
BUG_PREFIX = "procfail"
OUTAGE_PREFIX = "outage"
# The ingest's IngestRetryAttempts in the poison replay (a finite value, so that Lambda gives
# up on the outage records and their batch descriptions reach the dead-letter queue).
OUTAGE_RETRY_ATTEMPTS = 5


def _base(rng: random.Random, n: int) -> dict[str, Any]:
    return {
        "event_id": f"poison-{n}",
        "event_type": "view",
        "user_id": f"poison-user-{rng.randrange(1000)}",
        "item_id": f"poison-item-{rng.randrange(1000)}",
        "timestamp": 1_512_000_000 + rng.randrange(86_400),
    }


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _not_json(rng: random.Random, n: int) -> bytes:
    variants: list[Callable[[], bytes]] = [
        lambda: b"this is {not json",
        lambda: _json(_base(rng, n))[: rng.randrange(1, 40)],
        lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))) + b"\xff",
        lambda: b"\xfe\xff" + "événement".encode("utf-16-le"),
        lambda: b"{'event_id': 'single-quotes'}",
        lambda: b'{"event_id": "a", "event_type": "view",}',
        lambda: b"[" * 5000 + b"]" * 5000,  # nesting deeper than any parser allows
        lambda: b"NaN garbage",
    ]
    return rng.choice(variants)()


def _not_object(rng: random.Random, n: int) -> bytes:
    variants: list[Any] = [[], [_base(rng, n)], "view", 42, 3.5, None, True, False, [1, 2, 3]]
    return _json(rng.choice(variants))


def _unknown_event_type(rng: random.Random, n: int) -> bytes:
    event = _base(rng, n)
    event["event_type"] = rng.choice(["click", "VIEW", "", None, 5, "purchase ", ["view"], {"t": 1}])
    return _json(event)


def _missing_ids(rng: random.Random, n: int) -> bytes:
    event = _base(rng, n)
    field_name = rng.choice(["event_id", "user_id", "item_id"])
    if rng.random() < 0.5:
        del event[field_name]
    else:
        event[field_name] = None
    return _json(event)


def _malformed_ids(rng: random.Random, n: int) -> bytes:
    event = _base(rng, n)
    bad = rng.choice(
        [
            "#totals",
            "#popular",
            "-leading",
            "a b",
            "a/b",
            "a#b",
            "x" * 129,
            "é",
            "x\n",
            "<script>",
            "",
            "a?b=c",
        ]
    )
    if rng.random() < 0.15:
        event["event_id"] = rng.choice(["", "e" * 129])
    else:
        event[rng.choice(["user_id", "item_id"])] = bad
    return _json(event)


def _absurd_timestamp(rng: random.Random, n: int) -> bytes:
    event = _base(rng, n)
    event["timestamp"] = rng.choice(
        [
            0,
            -1,
            1_512_000_000_000,  # milliseconds
            32_503_680_000,  # year 3000
            1e308,
            "NaN",
            "yesterday",
            "2017-13-45T00:00:00Z",
            "2017-11-25T10:00:00",  # no zone
            True,
            None,
            [1_512_000_000],
        ]
    )
    return _json(event)


def _oversized_fields(rng: random.Random, n: int) -> bytes:
    event = _base(rng, n)
    choice = rng.randrange(6)
    if choice == 0:
        event["session_id"] = "s" * rng.randrange(129, 5_000)
    elif choice == 1:
        # (Not a category: one over 128 characters is read as none, the event kept.)
        event["user_id"] = "u" * rng.randrange(129, 5_000)
    elif choice == 2:
        # (Not a price: one out of range is read as none, the event kept.)
        event["item_id"] = "i" * rng.randrange(129, 2_000)
    elif choice == 3:
        event["quantity"] = rng.choice([0, 10**9, -3])
    elif choice == 4:
        event["event_id"] = "e" * rng.randrange(129, 2_000)
    else:
        event["comment"] = "x" * rng.randrange(20_000, 60_000)  # the record itself is too large
    return json.dumps(event, allow_nan=True).encode()


GENERATORS: dict[str, Callable[[random.Random, int], bytes]] = {
    "not_json": _not_json,
    "not_object": _not_object,
    "unknown_event_type": _unknown_event_type,
    "missing_ids": _missing_ids,
    "malformed_ids": _malformed_ids,
    "absurd_timestamp": _absurd_timestamp,
    "oversized_fields": _oversized_fields,
}


def bad_records(per_kind: int, rng: random.Random) -> list[dict[str, Any]]:
    """``per_kind`` records of each invalid kind: ``{"kind", "Data", "PartitionKey"}``."""
    records = []
    for kind in INVALID_KINDS:
        for n in range(per_kind):
            records.append(
                {
                    "kind": kind,
                    "Data": GENERATORS[kind](rng, n),
                    "PartitionKey": f"poison-{rng.randrange(10_000)}",
                }
            )
    return records


def poison_events(kind: str, count: int, timestamp: int = 1_512_000_000) -> list[dict[str, Any]]:
    """Valid events that the simulated bug (``processing_fails``) or outage
    (``retries_exhausted``) hits: one per user and item."""
    prefix = BUG_PREFIX if kind == "processing_fails" else OUTAGE_PREFIX
    return [
        {
            "event_id": f"{prefix}-{n}",
            "event_type": "view",
            "user_id": f"{prefix}-user-{n}",
            "item_id": f"{prefix}-item-{n}",
            "timestamp": timestamp + n,
        }
        for n in range(count)
    ]


class SimulatedBug(ValueError):
    """What the simulated domain bug raises (deterministic: no retry can help)."""


@contextmanager
def failing_processing(bug: bool = True, outage: bool = True) -> Iterator[dict[str, bool]]:
    """Make the ingest's planning fail for the poison events: ``SimulatedBug`` for the
    ``procfail-*`` items (a bug hit by those records), ``RepositoryError`` for the
    ``outage-*`` items (their rows unavailable). Yields a switch dict: set ``"bug"`` or
    ``"outage"`` to False to "deploy the fix" / "end the outage" without leaving."""
    from streamrec.domain import ingest

    state = {"bug": bug, "outage": outage}
    original = ingest.plan_batch

    def plan_batch(stored: Any, events: Any, *args: Any, **kwargs: Any) -> Any:
        events = list(events)
        for sequenced in events:
            item = sequenced.event.item_id
            if state["bug"] and item.startswith(BUG_PREFIX + "-"):
                raise SimulatedBug(f"simulated bug on item {item}")
            if state["outage"] and item.startswith(OUTAGE_PREFIX + "-"):
                raise RepositoryError(f"simulated outage of the rows of item {item}")
        return original(stored, events, *args, **kwargs)

    ingest.plan_batch = plan_batch  # type: ignore[assignment]
    try:
        yield state
    finally:
        ingest.plan_batch = original  # type: ignore[assignment]


@dataclass
class PoisonReport:
    valid_events: int
    bad_records_by_kind: dict[str, int]
    dead_letters_by_kind: dict[str, int]
    missing_from_dlq: dict[str, int]
    dlq_messages: int
    dlq_batch_descriptions: int
    redrive: dict[str, Any]
    dlq_after_redrive: int
    differences: int
    shards_drained: bool
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def bad_records(self) -> int:
        return sum(self.bad_records_by_kind.values())

    @property
    def ok(self) -> bool:
        return (
            self.differences == 0
            and not any(self.missing_from_dlq.values())
            and self.shards_drained
            and self.dlq_after_redrive == sum(self.bad_records_by_kind.get(k, 0) for k in INVALID_KINDS)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid_events": self.valid_events,
            "bad_records": self.bad_records,
            "bad_records_by_kind": self.bad_records_by_kind,
            "dead_letters_by_kind": self.dead_letters_by_kind,
            "missing_from_dlq": self.missing_from_dlq,
            "dlq_messages": self.dlq_messages,
            "dlq_batch_descriptions": self.dlq_batch_descriptions,
            "redrive": self.redrive,
            "dlq_after_redrive": self.dlq_after_redrive,
            "differences": self.differences,
            "shards_drained": self.shards_drained,
            "ok": self.ok,
            **self.details,
        }


def check_dead_letters(
    entries: Sequence[Mapping[str, Any]], letters: Sequence[dlq.Letter]
) -> tuple[Counter[str], Counter[str], list[str]]:
    """(dead-lettered bad records by kind, missing ones by kind, examples of problems).

    A record letter matches by (shard, sequence number) and must carry a reason; a
    ``retries_exhausted`` record matches a batch description covering its sequence number.
    """
    by_position = {}
    batches: list[tuple[str, int, int]] = []
    for letter in letters:
        if letter.kind == "record":
            by_position[(letter.shard, letter.sequence_range[0])] = letter
        elif letter.kind == "batch":
            first, last = letter.sequence_range
            batches.append((letter.shard, int(first), int(last)))
    found: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    problems: list[str] = []
    for entry in entries:
        kind = entry.get("kind")
        if kind is None:
            continue
        shard, sequence = entry["ShardId"], entry["SequenceNumber"]
        if kind == "retries_exhausted":
            hit = any(s == shard and a <= int(sequence) <= b for s, a, b in batches)
        else:
            record_letter = by_position.get((shard, sequence))
            reason = record_letter.reason if record_letter is not None else ""
            hit = bool(reason)
            if hit and kind == "processing_fails" and not reason.startswith(dlq.PROCESSING_FAILED):
                hit = False
                problems.append(f"{kind} record {sequence} dead-lettered as {reason!r}")
        if hit:
            found[kind] += 1
        else:
            missing[kind] += 1
            if len(problems) < 20:
                problems.append(f"{kind} record {sequence} not in the dead-letter queue")
    return found, missing, problems


def run_poison_replay(
    events: Sequence[Mapping[str, Any]],
    *,
    per_kind: int = 500,
    processing_failures: int = 500,
    outage_records: int = 5,
    batch_size: int | None = None,
    seed: int = 11,
    progress: Callable[[str], None] | None = None,
) -> PoisonReport:
    """See the module docstring. ``batch_size`` None uses the template's."""
    say = progress or (lambda _text: None)
    rng = random.Random(seed)
    bug_events = poison_events("processing_fails", processing_failures)
    outage_events = poison_events("retries_exhausted", outage_records)
    valid = list(events) + bug_events + outage_events
    started = time.monotonic()
    say(f"poison: clean run of the {len(valid)} valid events")
    clean = replay(valid, ReplayConfig(seed=seed))

    extra: list[tuple[float, dict[str, Any]]] = []
    for record in bad_records(per_kind, rng):
        extra.append((rng.uniform(0, len(events)), record))
    for kind, group in (("processing_fails", bug_events), ("retries_exhausted", outage_events)):
        for event in group:
            extra.append(
                (
                    rng.uniform(0, len(events)),
                    {"kind": kind, "Data": json.dumps(event).encode(), "PartitionKey": event["user_id"]},
                )
            )
    # Lambda gives up on the outage records only with finite retries (the template's ingest
    # retries until a batch succeeds): as deployed with IngestRetryAttempts=5.
    config = ReplayConfig(
        batch_size=batch_size, similarity_batch_size=batch_size, seed=seed, max_retries=OUTAGE_RETRY_ATTEMPTS
    )
    by_kind = Counter(entry["kind"] for _, entry in extra)
    say(f"poison: replay of {len(events)} events mixed with {sum(by_kind.values())} poison records")
    with sandbox(parameter_overrides={"EventStreamShards": config.shards}) as box:
        _, entries = produce(box, events, rng=random.Random(seed), extra=extra)
        with failing_processing() as switch:
            mappings = drain_all(box, config)
            drained = all(m.shards_drained() for m in mappings.values())
            sqs, kinesis = box.client("sqs"), box.client("kinesis")
            say("poison: reading the dead-letter queue")
            letters = dlq.receive_all(sqs, box.dead_letter_queue_url)
            found, missing, problems = check_dead_letters(entries, letters)
            say("poison: fix deployed, outage over; re-driving the dead-letter queue")
            switch["bug"] = switch["outage"] = False
            # Their outage hit the ingest's planning, before any write: re-driving the batch
            # descriptions is exact here (in general it may double counts: see dlq).
            report = dlq.redrive(
                sqs, kinesis, box.dead_letter_queue_url, letters=letters, include_partly_written=True
            )
            drain_all(box, config, mappings=mappings)
        remaining = dlq.message_count(sqs, box.dead_letter_queue_url)
        differences = diff_snapshots(clean.snapshot, normalized(box.snapshot()))
        stats = {name: m.stats.as_dict() for name, m in mappings.items()}
        checkpoints_at_end = all(m.shards_drained() for m in mappings.values())
    return PoisonReport(
        valid_events=len(valid),
        bad_records_by_kind=dict(sorted(by_kind.items())),
        dead_letters_by_kind=dict(sorted(found.items())),
        missing_from_dlq={kind: missing.get(kind, 0) for kind in sorted(by_kind)},
        dlq_messages=len(letters),
        dlq_batch_descriptions=sum(1 for letter in letters if letter.kind == "batch"),
        redrive=report.as_dict(),
        dlq_after_redrive=remaining,
        differences=len(differences),
        shards_drained=drained and checkpoints_at_end,
        details={
            "difference_examples": [d.describe() for d in differences[:20]],
            "problems": problems,
            "esm": stats,
            "reason_examples": sorted({letter.reason[:120] for letter in letters})[:25],
            "seconds": round(time.monotonic() - started, 1),
        },
    )
