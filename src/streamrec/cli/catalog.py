"""``streamrec catalog load|recount``: catalog records (``item_upsert``) onto the event stream
(local stack or ``--stream``), and the catalog's stored counts recounted."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrec.cli import progress
from streamrec.cli.inputs import check_input_file, checked_records, checking
from streamrec.cli.progress import progress_lines
from streamrec.cli.target import add_target_arguments, check_target_flags, resolve_target
from streamrec.cli.wording import count_noun, first_lines, named_ids, plain_number
from streamrec.kinesis_put import RecordsKeptFailing, put_stream_records, record_data


def add_catalog_parser(subparsers: Any) -> None:
    catalog = subparsers.add_parser(
        "catalog",
        help="load catalog records (title, category, price, stock, tags) through the event stream, "
        "or recount the catalog's stored counts",
        description="Catalog records travel on the event stream as item_upsert records, so the "
        "ingest stores them exactly as a live producer's (a later timestamp wins) and the "
        "similarity function updates content neighbours and stock. By default the local stack's "
        "stream (.local/outputs.json, written by `streamrec run`); on AWS pass --stream (the "
        "EventStreamName output) and use your usual AWS credentials.",
    )
    actions = catalog.add_subparsers(dest="action", metavar="ACTION", required=True)
    load = actions.add_parser(
        "load",
        help="put the catalog records of FILE (JSON lines, a JSON array or one object) on the event stream",
        description="Every record is validated first (the item_upsert schema: item_id, title, "
        "category, price, in_stock, tags, timestamp; event_type may be left out, and a missing "
        "timestamp is the load's time; other fields are not stored); nothing is sent when one is "
        "invalid or over the ingest's record size limit, and each error names its line.",
    )
    load.add_argument(
        "file",
        type=Path,
        help="FILE.jsonl (one record per line) or FILE.json (an array or one object); either may be "
        "gzip-compressed (.gz)",
    )
    load.add_argument("--stream", default=None, help="the event stream's name (e.g. on AWS)")
    add_target_arguments(load, "--stream")
    load.set_defaults(func=_cmd_catalog_load)
    recount = actions.add_parser(
        "recount",
        help="count every token's holders and the items again from the catalog records, and "
        "correct the stored counts that differ",
        description="Reads the whole catalog table once (a Scan: the records, the posting rows' "
        "counts, the document count), then sets each count that differs from the records', "
        "where it still holds the value read (one that changed meanwhile is named: run again "
        "once no catalog records are being loaded). What two shards writing one item, or a "
        "posting row counted before holders were, leaves wrong. Run it only while no catalog "
        "records are being ingested (not during a `catalog load`): the ingest writes a batch's "
        "counts before its records, and a recount between the two would take the counts back "
        "to the records written so far. By default the local stack's table; on AWS pass "
        "--table (the CatalogTableName output).",
    )
    recount.add_argument("--table", default=None, help="the catalog table's name (e.g. on AWS)")
    recount.add_argument("--dry-run", action="store_true", help="show the corrections; change nothing")
    add_target_arguments(recount, "--table")
    recount.set_defaults(func=_cmd_catalog_recount)
    catalog.set_defaults(func=lambda args: catalog.print_help() or 2)


@dataclass(frozen=True)
class Superseded:
    """A catalog file's record left out because a later record of the same item follows it:
    where each is, as :class:`RecordPlaces` names it ("line 4", "record 4")."""

    item_id: str
    place: str
    kept_place: str


def latest_per_item(
    records: Sequence[tuple[int, float, dict[str, Any]]],
) -> tuple[list[dict[str, Any]], list[tuple[str, int, int]]]:
    """Each item's latest record of a file of ``(position, timestamp, record)``: the one with
    the latest timestamp, the later one on a tie (in file order), and (item, position, kept
    position) of each record left out.

    The ingest keeps each item's latest record anyway, but it breaks a tie of timestamps by
    stream order, which PutRecords and its retries do not keep: sending one record per item
    leaves nothing to chance (and writes less)."""
    latest: dict[str, int] = {}  # item -> index in records
    for index, (_, timestamp, record) in enumerate(records):
        held = latest.get(record["item_id"])
        if held is None or timestamp >= records[held][1]:
            latest[record["item_id"]] = index
    superseded = [
        (record["item_id"], position, records[latest[record["item_id"]]][0])
        for index, (position, _, record) in enumerate(records)
        if index != latest[record["item_id"]]
    ]
    kept = [records[index][2] for index in sorted(latest.values())]
    return kept, superseded


def read_catalog_file(path: Path, now: float | None = None) -> tuple[list[dict[str, Any]], list[Superseded]]:
    """The validated item_upsert records of ``path`` (JSON lines, a JSON array or one JSON
    object), as JSON objects to put on the stream, one per item (:func:`latest_per_item`),
    and the records left out; SystemExit naming each invalid record's line otherwise."""
    from streamrec.events import ITEM_UPSERT, USER_EVENT_TYPES, InvalidEvent, parse_item_upsert

    loaded_at = time.time() if now is None else now

    def check(record: Any) -> tuple[Any, dict[str, Any]]:
        if isinstance(record, dict):
            kind = record.get("event_type")
            if kind in USER_EVENT_TYPES:
                raise InvalidEvent(f"a user event ({kind}): load those with `streamrec events load`")
            record = {"event_type": ITEM_UPSERT, "timestamp": loaded_at, **record}
        return parse_item_upsert(record), record

    def keep(
        line: int, upsert: Any, record: dict[str, Any], _data: bytes
    ) -> tuple[int, float, dict[str, Any]]:
        return line, upsert.timestamp, record

    checked, places = checked_records(path, "record", "loaded", check, keep)
    kept, superseded = latest_per_item(checked)
    return kept, [Superseded(item, places(left_out), places(sent)) for item, left_out, sent in superseded]


def put_catalog_records(
    kinesis: Any, stream: str, records: Sequence[dict[str, Any]], on_sent: Callable[[int, int], None]
) -> None:
    """PutRecords (partition key = item_id, so one item's records keep their order),
    retrying the records a call reports as failed (see :func:`put_stream_records`)."""
    data, keys = [record_data(r) for r in records], [r["item_id"] for r in records]
    try:
        put_stream_records(kinesis, stream, data, keys, on_sent)
    except RecordsKeptFailing as failing:
        raise SystemExit(f"error: {failing.describe('record', stream)}; re-run to resend") from None


def _cmd_catalog_recount(args: argparse.Namespace) -> int:
    from streamrec.domain.catalog import recount
    from streamrec.repositories.dynamodb import DynamoCatalogRepository, DynamoTable

    target = resolve_target(args, args.table, "--table", lambda o: o["tables"]["CatalogTable"])
    with target.failures(lambda: "counts corrected before it stopped stay corrected", again="re-run"):
        repository = DynamoCatalogRepository(DynamoTable(target.name, target.client("dynamodb")))
        with progress_lines(f"reading {target.name}: " + "{:,} rows") as show_read:
            tally = repository.stored_counts(show_read)
        corrections = recount(tally)
        changed = (
            []
            if args.dry_run or not corrections
            else repository.set_counts([(c.token, c.stored, c.counted) for c in corrections])
        )
    left = set(changed)
    lines = [
        f"{'#catalog (documents)' if c.token is None else c.token}: "
        f"{'none' if c.stored is None else plain_number(c.stored)} -> {c.counted}"
        for c in corrections
        if ("#catalog" if c.token is None else c.token) not in left
    ]
    verb = "would correct" if args.dry_run else "corrected"
    print(
        f"{verb} {count_noun(len(corrections) - len(changed), 'count')} of {target.name} "
        f"({tally.items:,} items, {len(tally.stored_holders):,} posting rows read)"
    )
    if lines:
        print(first_lines(lines, 50))
    if changed:
        print(
            f"{count_noun(len(changed), 'count')} changed while counted, left as they are "
            f"({named_ids(changed)}): run again once no catalog records are being loaded",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_catalog_load(args: argparse.Namespace) -> int:
    check_target_flags(args, args.stream, "--stream")
    check_input_file(args.file)
    # The target first: a large file is not read only to learn that the stack is down.
    target = resolve_target(args, args.stream, "--stream", lambda o: o["event_stream"])
    with checking(args.file, "loaded"):
        records, superseded = read_catalog_file(args.file)
    if superseded:
        left_out = [f"item {s.item_id!r}: {s.place} ({s.kept_place} is sent)" for s in superseded]
        print(
            f"{len(superseded)} record(s) of {args.file} left out: a later record of the same item "
            "(a later timestamp, or the same one on a later line) replaces each:\n"
            + first_lines(left_out, 5),
            file=sys.stderr,
        )
    stream, sent = target.name, 0

    def show_sent(done: int, total: int) -> None:
        nonlocal sent
        sent = done
        progress.status(f"sent {done}/{total} records")

    def interrupted() -> str:
        # The ingest keeps each item's latest record, so sending again is safe.
        return f"sent {sent} of {len(records)} records to {stream} before it stopped"

    with target.failures(interrupted, again="re-run to send all"):
        put_catalog_records(target.client("kinesis"), stream, records, show_sent)
    out = sum(1 for r in records if not r["in_stock"])
    progress.status(
        f"sent {len(records)} catalog record(s), one per item ({out} out of stock), to {stream}", done=True
    )
    if target.local_stack:
        progress.status("the terminal of `streamrec run` shows their processing", done=True)
    return 0
