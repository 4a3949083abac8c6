"""``streamrec dlq list|redrive|discard``: the dead-letter queue of the local stack or, with
``--queue-url``, of a deployed stack."""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.parse
from typing import Any

from streamrec.cli.progress import progress_lines
from streamrec.cli.target import Target, add_target_arguments, check_endpoint, resolve_target
from streamrec.cli.wording import count_noun, first_lines
from streamrec.kinesis_put import RecordsKeptFailing


def add_dlq_parser(subparsers: Any) -> None:
    dlq = subparsers.add_parser(
        "dlq",
        help="list, re-drive or discard the dead-letter queue",
        description=(
            "Dead letters are records the functions rejected (with a reason) and batch "
            "descriptions from Lambda's OnFailure destination. By default the local stack's "
            "queue (.local/outputs.json, written by `streamrec run`); on AWS pass --queue-url "
            "(the DeadLetterQueueUrl output) and use your usual AWS credentials."
        ),
    )
    actions = dlq.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, helptext in (
        ("list", "show every dead letter: kind, origin, shard, sequence numbers, reason"),
        ("redrive", "put the records back on their stream and delete the re-driven messages"),
        (
            "discard",
            "delete the letters of invalid records (not JSON, schema violations: a re-drive "
            "keeps them, as they would be rejected again), once you have read them; every "
            "other letter stays",
        ),
    ):
        action = actions.add_parser(name, help=helptext, description=helptext)
        action.add_argument(
            "--queue-url",
            default=None,
            help="the dead-letter queue URL (e.g. on AWS; its region is the URL's unless --region is given)",
        )
        add_target_arguments(action, "--queue-url")
        if name == "list":
            action.add_argument("--json", action="store_true", help="one JSON object per dead letter")
            action.set_defaults(func=_cmd_dlq_list)
        elif name == "discard":
            action.add_argument(
                "--invalid",
                action="store_true",
                required=True,
                help="the letters of invalid records (required: the only letters discard deletes)",
            )
            action.add_argument(
                "--dry-run", action="store_true", help="show what would be deleted; change nothing"
            )
            action.set_defaults(func=_cmd_dlq_discard)
        else:
            action.add_argument(
                "--dry-run", action="store_true", help="show what would be re-driven; change nothing"
            )
            action.add_argument(
                "--include-invalid",
                action="store_true",
                help="also re-drive records rejected as invalid (they will come back)",
            )
            action.add_argument(
                "--include-partly-written",
                action="store_true",
                help="also re-drive user events whose write DynamoDB rejected (reason 'write rejected') "
                "and user-event batches Lambda gave up on (a stack deployed with a finite "
                "IngestRetryAttempts): count rows written before would count them twice",
            )
            action.add_argument(
                "--stream",
                default=None,
                help="put the records on this stream instead of their original one (a stream "
                "where the queue is: of the local stack, or of AWS with --queue-url)",
            )
            action.set_defaults(func=_cmd_dlq_redrive)
    dlq.set_defaults(func=lambda args: dlq.print_help() or 2)


def _dlq_target(args: argparse.Namespace) -> Target:
    if args.queue_url is not None:
        # boto3 would take any text and fail later, reaching sqs.<region>.amazonaws.com.
        check_endpoint(args.queue_url, "--queue-url")
        if args.region is None and args.endpoint_url is None:
            # The URL names its region (sqs.<region>.amazonaws.com): a client of the configured
            # region would answer "the specified queue does not exist".
            args.region = _queue_url_region(args.queue_url)
    return resolve_target(args, args.queue_url, "--queue-url", lambda o: o["dead_letter_queue_url"])


def _queue_url_region(queue_url: str) -> str | None:
    """The region of an AWS queue URL (https://sqs.eu-west-1.amazonaws.com/...), else None."""
    host = urllib.parse.urlsplit(queue_url).hostname or ""
    found = re.fullmatch(r"sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?", host)
    return found.group(1) if found else None


MAX_VISIBILITY_SECONDS = 43_200  # SQS's limit (12 h)


def _hidden_for(base_seconds: int, letters: int) -> int:
    """How long a command hides the letters it reads: ``base_seconds``, and 1 s more per 20
    letters in the queue (reading and re-driving a large queue must end before any comes
    back), at most SQS's limit."""
    return min(MAX_VISIBILITY_SECONDS, base_seconds + letters // 20)


def _queue_size(sqs: Any, queue_url: str) -> int:
    """The queue's approximate message count; 0 for a role that may read the queue but not
    its attributes (the list then hides letters for 30 s and notes nothing)."""
    from botocore.exceptions import ClientError

    from streamrec.reliability import dlq
    from streamrec.repositories.dynamodb import error_code

    try:
        return dlq.message_count(sqs, queue_url)
    except ClientError as error:
        if error_code(error) not in ("AccessDenied", "AccessDeniedException"):
            raise
        return 0


def _cmd_dlq_list(args: argparse.Namespace) -> int:
    from streamrec.reliability import dlq

    target = _dlq_target(args)
    with target.failures():
        sqs = target.client("sqs")
        expected = _queue_size(sqs, target.name)
        # Hidden while listed: long enough that none comes back before the queue is read
        # (some 100 letters a second on the local stack), released as soon as it is.
        hidden = _hidden_for(30, expected)
        with progress_lines("reading dead letters: {:,} of about " + f"{expected:,}") as show_read:
            letters = dlq.receive_all(sqs, target.name, visibility_timeout=hidden, progress=show_read)
    with target.failures(
        lambda: f"the {len(letters)} dead letters listed reappear in the queue within {hidden} s"
    ):
        try:
            for letter in letters:
                print(json.dumps(letter.as_dict()) if args.json else letter.describe())
        finally:
            dlq.release(sqs, target.name, letters)
    if not args.json:
        kinds = {
            kind: sum(1 for letter in letters if letter.kind == kind)
            for kind in ("record", "batch", "unknown")
        }
        print(
            f"{count_noun(len(letters), 'dead letter')} ({count_noun(kinds['record'], 'record')}, "
            f"{count_noun(kinds['batch'], 'batch description')}, {kinds['unknown']} unknown)"
        )
    if len(letters) < expected:
        # Another reader (a re-drive, a second list) held the rest, or SQS's count ran ahead.
        print(
            f"note: the queue held about {expected:,}; {expected - len(letters):,} were not "
            "received (being read by another command?): list again to see them",
            file=sys.stderr,
        )
    return 0


def _cmd_dlq_discard(args: argparse.Namespace) -> int:
    from streamrec.reliability import dlq

    target = _dlq_target(args)
    with (
        progress_lines("reading dead letters: {:,}") as receiving,
        target.failures(
            lambda: (
                "nothing was changed (dry run)"
                if args.dry_run
                else "letters deleted before it stopped are gone, the others are back in the queue"
            ),
            again="" if args.dry_run else "re-run",
        ),
    ):
        sqs = target.client("sqs")
        report = dlq.discard_invalid(
            sqs,
            target.name,
            dry_run=args.dry_run,
            receiving=receiving,
            visibility_timeout=_hidden_for(300, _queue_size(sqs, target.name)),
        )
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"{verb} {count_noun(len(report.discarded), 'letter')} of invalid records of "
        f"{count_noun(report.examined, 'dead letter')}; the others stay"
    )
    if report.discarded:
        print(first_lines([f"{verb}: {description}" for description in report.discarded], 50))
    if report.refused:
        print(
            f"{count_noun(len(report.refused), 'letter')} SQS did not delete, back in the queue "
            "(run again):\n" + first_lines(report.refused, 50),
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_dlq_redrive(args: argparse.Namespace) -> int:
    from streamrec.reliability import dlq

    target = _dlq_target(args)
    # redrive deletes each letter once its records are back on the stream.
    # Letters not re-driven are made visible again, even when the re-drive fails.
    received = False  # whether any letter was read (before that, nothing can have changed)

    def interrupted() -> str:
        if args.dry_run:
            return "nothing was changed (dry run)"
        if not received:
            return "nothing was changed"
        return "letters re-driven before it stopped are deleted, the others are back in the queue"

    def receiving(count: int) -> None:
        nonlocal received
        received = True
        show_received(count)

    with (
        progress_lines("reading dead letters: {:,}") as show_received,
        progress_lines(
            "checking dead letters (dry run): {:,}/{:,}"
            if args.dry_run
            else "re-driving dead letters: {:,}/{:,}"
        ) as redriving,
        target.failures(
            interrupted,
            again="" if args.dry_run else "re-run (re-putting is safe)",
            # A stream named by a letter may be gone (e.g. a deleted stack's).
            otherwise="" if args.stream else "--stream NAME puts the records on another stream",
            otherwise_for=frozenset({"ResourceNotFoundException"}),
        ),
    ):
        try:
            sqs = target.client("sqs")
            report = dlq.redrive(
                sqs,
                target.client("kinesis"),
                target.name,
                dry_run=args.dry_run,
                include_invalid=args.include_invalid,
                include_partly_written=args.include_partly_written,
                stream=args.stream,
                receiving=receiving,
                progress=redriving,
                # Hidden until re-driven or released: 5 minutes, and 1 s per 20 letters more
                # (some 26 letters a second were re-driven from the local stack).
                visibility_timeout=_hidden_for(300, _queue_size(sqs, target.name)),
            )
        except dlq.StreamNotFound as missing:
            raise SystemExit(
                f"error: stream {missing.stream} not found (--stream); nothing was changed"
            ) from None
        except RecordsKeptFailing as failing:
            # The letter being re-driven stays in the queue: its records put before it
            # stopped come back again with it (the ingest skips the events it holds).
            raise SystemExit(
                f"error: {count_noun(failing.count, 'record')} of a letter kept failing on the stream "
                f"({', '.join(failing.codes)}); {interrupted()}; re-run (re-putting is safe)"
            ) from None
    verb = "would re-drive" if args.dry_run else "re-drove"
    duplicates = (
        f"; skipped {count_noun(report.duplicates_skipped, 'record')} another letter holds too"
        if report.duplicates_skipped
        else ""
    )
    print(
        f"{verb} {count_noun(report.redriven_records, 'record')} from {report.redriven_messages} of "
        f"{count_noun(report.examined, 'dead letter')}; kept {len(report.kept)}{duplicates}"
    )
    if report.redriven:
        print(
            first_lines(
                [
                    f"{verb} ({count_noun(records, 'record')} to {stream}): {description}"
                    for description, records, stream in report.redriven
                ],
                50,
            )
        )
    if report.kept:
        print(first_lines([f"kept ({why}): {description}" for description, why in report.kept], 50))
    return 0
