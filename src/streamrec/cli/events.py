"""``streamrec events load``: past user events (a backfill) onto the event stream."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamrec.argtypes import positive_rate, whole_number
from streamrec.cli import progress
from streamrec.cli.coupons import coupon_repository
from streamrec.cli.inputs import check_input_file, checked_records, checking
from streamrec.cli.target import Target, add_target_arguments, check_target_flags, resolve_target
from streamrec.cli.wording import count_noun, first_lines, named_ids
from streamrec.kinesis_put import RecordsKeptFailing, put_stream_records

# What a backfill's backlog is estimated with: the ingest's sustained rate per event-stream
# shard that docs/performance-and-cost.md sizes shards by (~40 events/s measured against a
# local stand-in of DynamoDB, ~35 to be safe; not measured on AWS).
INGEST_EVENTS_PER_SHARD_SECOND = 35.0
# A load is refused (unless --force) when its oldest record would wait longer than this
# share of the stream's retention before the ingest reaches it: past the retention it is lost.
RETENTION_SHARE = 0.8


def add_events_parser(subparsers: Any) -> None:
    events = subparsers.add_parser(
        "events",
        help="load past user events (a backfill of views, cart changes, purchases) through the event stream",
        description="Past user events travel on the event stream like a live producer's, so the "
        "ingest counts them exactly as it counts live ones. By default the local stack's stream "
        "(.local/outputs.json, written by `streamrec run`); on AWS pass --stream (the "
        "EventStreamName output) and use your usual AWS credentials.",
    )
    actions = events.add_subparsers(dest="action", metavar="ACTION", required=True)
    load = actions.add_parser(
        "load",
        help="put the user events of FILE (JSON lines, a JSON array or one object) on the event stream",
        description='Every event is validated first (README "Event schema"); nothing is sent '
        "when one is invalid or over the ingest's record size limit, and each error names its "
        "line. An event whose user_id and event_id an earlier line already has is left out (the "
        "ingest would ignore it). The events are sent in timestamp order (a stable sort: ties "
        "keep the file's order), partition key = user_id, so that each user's events reach the "
        "ingest in the "
        "order they happened. On AWS the stream's shard count and retention are read first: a "
        "load whose backlog would outlast the retention is refused (records still unprocessed "
        "then are lost). An interrupted load prints the --skip that resumes it. A .jsonl file is "
        "read a line at a time and held in memory at about four times its size (a .json file, "
        "decoded whole, more): split a very long history into files by time range and load them "
        "oldest first.",
    )
    load.add_argument(
        "file",
        type=Path,
        help="FILE.jsonl (one event per line) or FILE.json (an array or one object); either may be "
        "gzip-compressed (.gz)",
    )
    load.add_argument("--stream", default=None, help="the event stream's name (e.g. on AWS)")
    load.add_argument(
        "--rate",
        type=positive_rate,
        default=None,
        help="send at most this many events per second (default: as fast as the stream takes "
        "them); at or below the ingest's pace, about 35 per shard, no backlog builds up",
    )
    load.add_argument(
        "--skip",
        type=whole_number(0),
        default=0,
        help="leave out the first N events of the file's timestamp order: the resume point an "
        "interrupted load printed",
    )
    load.add_argument(
        "--force",
        action="store_true",
        help="send even when the backlog would outlast the stream's retention",
    )
    load.add_argument(
        "--dry-run",
        action="store_true",
        help="check the file and say what would be sent, send nothing (no local stack needed; "
        "with --stream, the stream's shards and retention are checked too)",
    )
    add_target_arguments(load, "--stream")
    load.set_defaults(func=_cmd_events_load)
    events.set_defaults(func=lambda args: events.print_help() or 2)


@dataclass(frozen=True)
class EventFile:
    """The events of a file, validated, ready to put on the stream, column by column: in
    timestamp order (stable), one per user and event_id. A backfill holds millions, so each
    event is kept as the bytes to send, not as a parsed object."""

    data: list[bytes]  # each event as put on the stream: its record as written, compact JSON
    users: list[str]  # its user_id, the partition key (one string object per user)
    kinds: list[str]  # its event_type
    times: list[float]  # its timestamp in epoch seconds
    duplicates: list[tuple[str, str, str]]  # (event_id, where the one left out is, the one sent)
    reordered: bool  # whether the file was not in timestamp order

    def __len__(self) -> int:
        return len(self.data)

    def event(self, index: int) -> dict[str, Any]:
        """The ``index``-th event, decoded."""
        return dict(json.loads(self.data[index]))

    def after(self, skip: int) -> EventFile:
        """The events past the first ``skip`` (a resumed load's)."""
        return EventFile(
            self.data[skip:],
            self.users[skip:],
            self.kinds[skip:],
            self.times[skip:],
            self.duplicates,
            self.reordered,
        )


# Fields of a catalog record that no user event has: a record holding some, without
# event_type and user_id, is a catalog line given to `events load`.
CATALOG_FIELDS = frozenset({"title", "in_stock", "tags"})


def read_event_file(path: Path) -> EventFile:
    """The valid user events of ``path`` (JSON lines, a JSON array or one JSON object),
    the first of each user's event_id, in timestamp order; SystemExit naming each invalid record's
    line otherwise (nothing is sent then)."""
    from streamrec.events import ITEM_UPSERT, InvalidEvent, parse_event

    def check(record: Any) -> tuple[Any, dict[str, Any]]:
        if isinstance(record, dict) and record.get("event_type") == ITEM_UPSERT:
            raise InvalidEvent("a catalog record (item_upsert): load those with `streamrec catalog load`")
        if (
            isinstance(record, dict)
            and not {"event_type", "user_id"} & record.keys()
            and CATALOG_FIELDS & record.keys()
        ):  # `catalog load` takes records without their event_type
            fields = ", ".join(sorted(CATALOG_FIELDS & record.keys()))
            raise InvalidEvent(
                f"a catalog record ({fields}; no user_id or event_type): "
                "load those with `streamrec catalog load`"
            )
        return parse_event(record), record

    data: list[bytes] = []
    users: list[str] = []
    kinds: list[str] = []
    times: list[float] = []
    user_ids: dict[str, str] = {}
    # The ingest's duplicates are a user's events of one event_id: the first one counts. Keyed
    # by user_id NUL event_id (a user id holds no NUL), one string instead of a tuple of two.
    first_line: dict[str, int] = {}  # -> position (RecordPlaces)
    duplicates = []

    def keep(line: int, event: Any, _record: dict[str, Any], sent: bytes) -> None:
        key = f"{event.user_id}\0{event.event_id}"
        if key in first_line:
            duplicates.append((event.event_id, line, first_line[key]))
            return
        first_line[key] = line
        data.append(sent)
        users.append(user_ids.setdefault(event.user_id, event.user_id))
        kinds.append(sys.intern(event.event_type))
        times.append(event.timestamp)

    _, places = checked_records(path, "event", "sent", check, keep)
    first_line.clear()
    named = [(event_id, places(left_out), places(sent)) for event_id, left_out, sent in duplicates]
    order = sorted(range(len(times)), key=times.__getitem__)  # stable: the file's order on ties
    reordered = any(position != index for index, position in enumerate(order))
    if reordered:
        data, users = [data[i] for i in order], [users[i] for i in order]
        kinds, times = [kinds[i] for i in order], [times[i] for i in order]
    return EventFile(data, users, kinds, times, named, reordered)


def ingest_seconds(events: int, busiest: int, shards: int) -> float:
    """How long the ingest takes over ``events`` at INGEST_EVENTS_PER_SHARD_SECOND per
    shard, ``busiest`` of them of one user: a user's events all go to one shard (partition
    key user_id), so a skewed file is not spread evenly."""
    per_shard = INGEST_EVENTS_PER_SHARD_SECOND
    return max(events / (per_shard * max(1, shards)), busiest / per_shard)


def backlog_seconds(events: int, busiest: int, shards: int, rate: float | None) -> float:
    """How long the last of ``events`` waits on the stream before the ingest reaches it when
    they are sent at ``rate`` per second (None: at once): the ingest's time over them less
    the sending's."""
    return max(0.0, ingest_seconds(events, busiest, shards) - (events / rate if rate else 0.0))


def _duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _check_retention(kinesis: Any, stream: str, users: Sequence[str], args: argparse.Namespace) -> None:
    """Refuse (unless --force) a load whose backlog would outlast the stream's retention; say
    what the ingest has ahead of it either way (only a warning when the stream's shard count
    and retention cannot be read: a producer's role may only put records)."""
    from botocore.exceptions import ClientError

    from streamrec.repositories.dynamodb import error_code

    try:
        summary = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    except ClientError as error:
        if error_code(error) not in ("AccessDeniedException", "AccessDenied"):
            raise
        print(
            f"warning: cannot read {stream}'s shard count and retention (kinesis:DescribeStreamSummary "
            "denied): how long the ingest will take over the events is not checked",
            file=sys.stderr,
        )
        return
    shards, retention_hours = summary.get("OpenShardCount") or 1, summary["RetentionPeriodHours"]
    busiest = max(Counter(users).values())
    took = ingest_seconds(len(users), busiest, shards)
    backlog = backlog_seconds(len(users), busiest, shards, args.rate)
    plan = (
        f"{len(users):,} events: the ingest of {stream}'s {count_noun(shards, 'shard')} takes about "
        f"{_duration(took)} for them at ~{INGEST_EVENTS_PER_SHARD_SECOND:.0f} events/s per shard "
        f"(docs/performance-and-cost.md; not measured on AWS; a user's events all go to one shard)"
    )
    if backlog <= RETENTION_SHARE * retention_hours * 3600:
        print(plan + (f"; the last one waits about {_duration(backlog)}" if backlog else ""), file=sys.stderr)
        return
    advice = (
        f"the last events would wait about {_duration(backlog)} on a stream that keeps records "
        f"{retention_hours} h, and those past it are lost"
    )
    if args.force:
        print(f"warning: {plan}; {advice} (sent anyway: --force)", file=sys.stderr)
        return
    raise SystemExit(
        f"error: nothing sent; {plan}; {advice}. Pace the load with --rate {len(users) / took:.3g} (the "
        f"ingest's pace: it then runs about {_duration(took)}, and can be resumed with --skip), add "
        "shards (EventStreamShards), raise the stream's retention, or pass --force"
    )


def _events_dry_run(args: argparse.Namespace, events: EventFile) -> int:
    """What ``events load`` would send, and with --stream the stream's check; nothing sent."""
    kinds = Counter(events.kinds)
    users = len(set(events.users))
    print(
        f"{count_noun(len(events), 'event')} of {count_noun(users, 'user')} to send, "
        f"{datetime.fromtimestamp(events.times[0], UTC):%Y-%m-%d %H:%M:%S} to "
        f"{datetime.fromtimestamp(events.times[-1], UTC):%Y-%m-%d %H:%M:%S} UTC: "
        + ", ".join(f"{kinds[kind]} {kind}" for kind in sorted(kinds)),
        file=sys.stderr,
    )
    if args.stream is not None:
        target = resolve_target(args, args.stream, "--stream", lambda o: o["event_stream"])
        with target.failures():
            _check_retention(target.client("kinesis"), target.name, events.users, args)
    print("dry run: nothing sent", file=sys.stderr)
    return 0


def _note_redemptions(events: EventFile, target: Target, args: argparse.Namespace) -> None:
    """Say which coupons the file's redemptions name that the local stack does not define
    (a redemption of one goes to the dead-letter queue); on AWS, that they must be defined."""
    coupon_ids = sorted(
        {
            str(events.event(n)["coupon_id"])
            for n, kind in enumerate(events.kinds)
            if kind == "coupon_redeemed"
        }
    )
    if not coupon_ids:
        return
    redemptions = count_noun(events.kinds.count("coupon_redeemed"), "coupon_redeemed event")
    if not target.local_stack:
        progress.status(
            f"{redemptions}: each coupon must be defined (`streamrec coupons load --table`) before the "
            "ingest reaches its redemption, or the redemption goes to the dead-letter queue",
            done=True,
        )
        return
    table = json.loads(args.outputs.read_text(encoding="utf-8"))["tables"]["CouponsTable"]
    with target.failures():
        defined = coupon_repository(Target(table, target.client_kwargs, target.local_stack)).defined(
            coupon_ids
        )
    undefined = [c for c in coupon_ids if c not in defined]
    if undefined:
        progress.status(
            f"{redemptions}: {count_noun(len(undefined), 'coupon')} not defined in the local stack "
            f"({named_ids(undefined)}): define them (`streamrec coupons load`) before the ingest "
            "reaches their redemptions, or those go to the dead-letter queue (once they are defined, "
            "`streamrec dlq redrive` puts them back)",
            done=True,
        )


def _cmd_events_load(args: argparse.Namespace) -> int:
    check_target_flags(args, args.stream, "--stream")
    check_input_file(args.file)
    # The target first (a dry run needs none): a large backfill is not read only to learn
    # that the stack is down.
    target = (
        None if args.dry_run else resolve_target(args, args.stream, "--stream", lambda o: o["event_stream"])
    )
    with checking(args.file, "sent"):
        loaded = read_event_file(args.file)
    if loaded.duplicates:
        left_out = [
            f"{place}: event_id {event_id!r} ({sent} is sent)" for event_id, place, sent in loaded.duplicates
        ]
        print(
            f"{count_noun(len(loaded.duplicates), 'event')} of {args.file} left out: an earlier record has "
            "the same user_id and event_id (a duplicate, which the ingest ignores):\n"
            + first_lines(left_out, 5),
            file=sys.stderr,
        )
    if args.skip >= len(loaded):
        raise SystemExit(
            f"error: nothing sent; --skip {args.skip} leaves none of the file's {len(loaded)} events"
        )
    events = loaded.after(args.skip)
    if target is None:
        return _events_dry_run(args, events)
    stream = target.name
    accepted = [False] * len(events)

    def show_sent(done: int, total: int) -> None:
        progress.status(f"sent {done}/{total} events")

    def interrupted() -> str:
        # Past the first event not taken the stream holds at most AHEAD_PER_KEY events of
        # each user, the user's first ones there: sent again on resuming, they are ignored
        # as duplicates (same user and event_id, within the ingest's window).
        sent = args.skip + (accepted.index(False) if False in accepted else len(accepted))
        return (
            f"the stream has the first {sent} of the file's {len(loaded)} events (timestamp "
            f"order): resume with --skip {sent}"
        )

    with target.failures():
        kinesis = target.client("kinesis")
        if not target.local_stack:
            _check_retention(kinesis, stream, events.users, args)
    with target.failures(interrupted):
        try:
            put_stream_records(
                kinesis, stream, events.data, events.users, show_sent, rate=args.rate, accepted=accepted
            )
        except RecordsKeptFailing as failing:
            raise SystemExit(f"error: {failing.describe('event', stream)}; {interrupted()}") from None
    users = len(set(events.users))
    order = " (the file's order differed)" if loaded.reordered else ""
    progress.status(
        f"sent {count_noun(len(events), 'event')} of {count_noun(users, 'user')} to {stream}, in timestamp "
        f"order{order}",
        done=True,
    )
    _note_redemptions(events, target, args)
    if target.local_stack:
        progress.status("the terminal of `streamrec run` shows their processing", done=True)
    return 0
