"""``streamrec faults``: the fault-injection and poison-record replays of real events
(docs/reliability-and-security.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from streamrec.argtypes import output_file, whole_number
from streamrec.cli import progress

# Kinesis GetRecords' Limit and a Lambda Kinesis event source's BatchSize: 1 to 10,000.
FAULTS_MAX_BATCH_SIZE = 10_000


def _fault_share(text: str) -> float:
    """An argparse type: a share (rate) between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def add_faults_parser(subparsers: Any) -> None:
    faults = subparsers.add_parser(
        "faults",
        help="fault-injection and poison-record replays of real events (exactly-once check)",
        description=(
            "Replay real Taobao events through the production handlers on an in-process moto "
            "account: crash the functions before/after write steps, re-deliver, bisect and "
            "duplicate records, and compare every table with a clean run; then mix bad records "
            "of every kind into a replay, check the dead-letter queue, re-drive it and compare "
            "again. Prints a summary and writes the figures as JSON."
        ),
    )
    faults.add_argument(
        "--events",
        type=whole_number(1),
        default=2000,
        help="real events to replay, at least 1 (default 2000)",
    )
    faults.add_argument(
        "--sweep-events",
        type=whole_number(0),
        default=8,
        help="events whose batches are crashed at every write rank (default 8; 0 skips the sweep)",
    )
    faults.add_argument(
        "--batch-size",
        type=whole_number(1, FAULTS_MAX_BATCH_SIZE),
        default=100,
        help="batch size of the faulty run, 1 to 10000 as Kinesis/Lambda allow (default 100; the clean "
        "run uses the template's)",
    )
    faults.add_argument(
        "--duplicate-rate",
        type=_fault_share,
        default=0.1,
        help="share of events the producer puts twice, 0 to 1 (default 0.1)",
    )
    faults.add_argument(
        "--redelivery-rate",
        type=_fault_share,
        default=0.15,
        help="share of successful batches partly re-delivered, 0 to 1 (default 0.15)",
    )
    faults.add_argument(
        "--crash-rate",
        type=_fault_share,
        default=0.35,
        help="share of invocations crashed at a random write step, 0 to 1 (default 0.35)",
    )
    faults.add_argument(
        "--poison-per-kind",
        type=whole_number(0),
        default=500,
        help="bad records of each kind in the poison replay (default 500; 0 skips it)",
    )
    faults.add_argument(
        "--poison-events",
        type=whole_number(1),
        default=None,
        help="valid events of the poison replay, at least 1 (default: --events)",
    )
    faults.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    faults.add_argument(
        "--data",
        type=Path,
        default=None,
        help="data folder holding taobao_userbehavior_head/ (default ../shared/datasets)",
    )
    faults.add_argument(
        "--output",
        type=output_file,
        default=Path(".local/faults.json"),
        help="where to write the figures (default .local/faults.json)",
    )
    faults.set_defaults(func=_cmd_faults)


def _cmd_faults(args: argparse.Namespace) -> int:
    from streamrec.evaluation.datasets import DatasetInvalid, DatasetMissing
    from streamrec.reliability.faults import load_events, run_fault_injection
    from streamrec.reliability.poison import run_poison_replay

    started = time.monotonic()
    wanted = max(args.events, args.poison_events or 0)
    try:
        events = load_events(wanted, args.data)
    except (DatasetMissing, DatasetInvalid) as error:
        print(f"streamrec faults: {error}", file=sys.stderr)
        return 2
    if len(events) < wanted:
        option = "--events" if args.events >= wanted else "--poison-events"
        print(
            f"streamrec faults: only {len(events):,} events in the data file; {option} {wanted} asked",
            file=sys.stderr,
        )
        return 2

    def say(text: str) -> None:
        progress.status(f"[{time.monotonic() - started:5.0f}s] {text}", done=True)

    report = run_fault_injection(
        events[: args.events],
        sweep_events=args.sweep_events,
        batch_size=args.batch_size,
        duplicate_rate=args.duplicate_rate,
        redelivery_rate=args.redelivery_rate,
        crash_rate=args.crash_rate,
        seed=args.seed,
        progress=say,
    )
    result: dict[str, Any] = {"fault_injection": report.as_dict()}
    ok = report.ok
    print(
        f"fault injection: {report.events} events ({report.sweep_events} swept), "
        f"{report.faults_injected} faults injected, {report.duplicates_sent} duplicates sent, "
        f"{report.differences} differences"
    )
    for problem in report.details.get("problems", []):
        print(f"  problem: {problem}")
    if args.poison_per_kind > 0:
        poison = run_poison_replay(
            events[: args.poison_events or args.events],
            per_kind=args.poison_per_kind,
            processing_failures=args.poison_per_kind,
            seed=args.seed,
            progress=say,
        )
        result["poison"] = poison.as_dict()
        ok = ok and poison.ok
        kinds = ", ".join(f"{k} {v}" for k, v in poison.bad_records_by_kind.items())
        print(
            f"poison records: {poison.bad_records} ({kinds}); {poison.dlq_messages} dead letters, "
            f"missing {sum(poison.missing_from_dlq.values())}; "
            f"re-driven {poison.redrive['redriven_records']}; "
            f"{poison.dlq_after_redrive} left (invalid); {poison.differences} differences; "
            f"shards drained: {poison.shards_drained}"
        )
    result["seconds"] = round(time.monotonic() - started, 1)
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        print(json.dumps(result, indent=2))  # the figures are not lost
        raise SystemExit(f"error: cannot write {args.output}: {error.strerror or error}") from None
    print(f"{'OK' if ok else 'FAILED'}: figures written to {args.output} ({result['seconds']:.0f}s)")
    return 0 if ok else 1
