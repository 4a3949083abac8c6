"""The ``streamrec`` command line.

``streamrec run`` starts the embedded local stack (moto, the template's tables, streams
and queue, the functions polled like Lambda, the HTTP API), loads the demo events and
serves until Ctrl-C. Each subcommand is one ``_add_<name>`` (its arguments) and one
``_cmd_<name>`` (what it does), so that ``eval`` and ``bench`` can join ``run``.

``streamrec faults`` runs the fault-injection and poison-record replays
(docs/reliability-and-security.md); ``streamrec dlq list|redrive`` lists and re-drives the
dead-letter queue of the local stack or, with ``--queue-url``, of a deployed stack.
``streamrec coupons load FILE`` creates or redefines coupons (local stack or ``--table``);
``streamrec coupons prune`` takes expired coupons out of every scope's index.
``streamrec openapi`` prints or writes the HTTP API's OpenAPI document.
``streamrec catalog load FILE`` puts catalog records (``item_upsert``) on the event stream
(local stack or ``--stream``); ``streamrec events load FILE`` puts past user events there
(a backfill).
"""

from __future__ import annotations

import argparse
import base64
import codecs
import gzip
import itertools
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.parse
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from streamrec.argtypes import output_file, positive_rate, positive_seconds, whole_number
from streamrec.bench.cli import add_bench_parser
from streamrec.evaluation.cli import add_eval_parser
from streamrec.kinesis_put import RecordsKeptFailing, put_stream_records, record_data

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class StatusLine:
    """Progress lines on stderr (or ``stream``). On a terminal each line is rewritten in
    place as often as it comes. Elsewhere (``make run > log``, CI) rewrites would fill the
    file with control sequences, so lines are plain, at most one every ``every`` seconds,
    and every final line (``done=True``) is written."""

    def __init__(
        self, stream: TextIO | None = None, every: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream = stream
        self.every = every
        self.clock = clock
        self._last_plain: float | None = None  # None: the next progress line is written at once
        self._open = False  # a terminal line awaits its rewrite

    @property
    def stream(self) -> TextIO:
        # Looked up at each call: pytest's capsys replaces sys.stderr per test.
        return self._stream or sys.stderr

    def __call__(self, text: str, *, done: bool = False) -> None:
        stream = self.stream
        if stream.isatty():
            stream.write("\r\033[K" + text + ("\n" if done else ""))
            self._open = not done
        else:
            now = self.clock()
            if not done and self._last_plain is not None and now - self._last_plain < self.every:
                return
            stream.write(text + "\n")
            # After a final line the next phase's first progress line shows at once.
            self._last_plain = None if done else now
        stream.flush()

    def end_line(self) -> None:
        """End a terminal line still being rewritten, so that what follows starts on its own line."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


_status = StatusLine()


# --------------------------------------------------------------------------------------
# streamrec run
# --------------------------------------------------------------------------------------
DEMO_EVENTS = 6000


def _origins(text: str) -> str:
    """``--cors-origins`` as the template's CorsAllowOrigins takes it: origins as browsers
    send them (lower case, no trailing slash), separated by commas without spaces."""
    return ",".join(origin.strip().rstrip("/").lower() for origin in text.split(","))


def _refuse_outputs_of_a_running_stack(outputs_file: Path) -> None:
    """SystemExit when ``outputs_file`` belongs to a local stack still running: writing it
    would point `events load`, `dlq` and the others at this new stack instead."""
    try:
        endpoint = json.loads(outputs_file.read_text(encoding="utf-8")).get("endpoint_url")
    except (OSError, ValueError, AttributeError):
        return
    # No answer in time counts as running: a busy stack's outputs must not be taken over.
    if isinstance(endpoint, str) and _accepts_connections(endpoint) and _serves_moto(endpoint) is not False:
        raise SystemExit(
            f"error: {outputs_file} belongs to a local stack still running at {endpoint}: stop "
            f"that one, or give this one its own outputs file (--outputs FILE)"
        )


def _add_run(subparsers: Any) -> None:
    run = subparsers.add_parser(
        "run",
        help="start the local stack with the HTTP API and load the demo data",
        description=(
            "Start moto with every table, stream and queue of template.yaml, run the functions "
            "in-process (Kinesis polled like Lambda's event source mappings), serve the HTTP API "
            "and load the seeded demo events; serve until Ctrl-C."
        ),
    )
    run.add_argument(
        "--port",
        type=whole_number(0, 65535),
        default=3000,
        help="HTTP API port (default 3000; 0: any free port)",
    )
    run.add_argument(
        "--moto-port",
        type=whole_number(0, 65535),
        default=0,
        help="moto server port (default: any free port)",
    )
    run.add_argument(
        "--events",
        type=whole_number(0),
        default=DEMO_EVENTS,
        help=f"demo events to load (default {DEMO_EVENTS}; 0: none)",
    )
    run.add_argument("--seed", type=int, default=None, help="demo generator seed (default: the fixed seed)")
    run.add_argument("--no-demo", action="store_true", help="start empty, load no demo events")
    run.add_argument(
        "--template",
        type=Path,
        default=None,
        help="SAM template (default ./template.yaml, else the streamrec checkout's own)",
    )
    run.add_argument(
        "--outputs",
        type=output_file,
        default=LOCAL_OUTPUTS,
        help="where to write the stack's outputs (default .local/outputs.json)",
    )
    run.add_argument(
        "--drain-timeout",
        type=positive_seconds,
        default=600.0,
        help="seconds to wait for the demo data to be processed (default 600)",
    )
    run.add_argument(
        "--function-log-level",
        choices=_LOG_LEVELS,
        default="WARNING",
        help="POWERTOOLS_LOG_LEVEL of the functions (default WARNING)",
    )
    run.add_argument(
        "--cors-origins",
        type=_origins,
        default=None,
        metavar="ORIGINS",
        help="origins whose web pages may call the local API from a browser, separated by commas "
        "(e.g. http://localhost:8080), or * (the template's CorsAllowOrigins; default: its default, none)",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log the local stack's own activity")
    run.set_defaults(func=_cmd_run)


def _as_typed(executable: str) -> str:
    """How to type ``executable`` in this shell: its name when PATH finds this very file
    (an activated venv), else its path (relative to here when under it; `make run` runs
    .venv/bin/streamrec, which a bare `streamrec` does not find)."""
    # Not resolved: a venv's python is a symlink to the base interpreter, which lacks the
    # venv's packages.
    path = Path(executable).absolute()
    found = shutil.which(path.name)
    if found and Path(found).absolute() == path:
        return path.name
    try:
        return str(path.relative_to(Path.cwd().absolute()))
    except ValueError:
        return str(path)


def _examples(outputs: dict[str, Any]) -> str:
    api = outputs["api_url"]
    python = _as_typed(sys.executable)
    # `python -m streamrec.cli` has the module's file as argv[0].
    program = f"{python} -m streamrec.cli" if sys.argv[0].endswith(".py") else _as_typed(sys.argv[0])
    # Without demo data the commands still show the API's shape (on an empty stack).
    users = outputs.get("demo_users") or ["user-0001"]
    items = outputs.get("demo_items") or ["espresso-machine"]
    new_item = outputs.get("demo_new_item")
    catalog_lines = (
        f"""
  curl -s '{api}/items/tent-2-person-ultralight/similar?k=5'  # lists {new_item},
                                                  # new in the catalog, found by content similarity"""
        if new_item
        else ""
    )
    out_of_stock = outputs.get("demo_out_of_stock")
    stock_note = (
        f"""     # never lists out-of-stock items
                                                  # ({", ".join(out_of_stock)})"""
        if out_of_stock
        else ""
    )
    demo = (
        f"Demo users with history: {', '.join(outputs['demo_users'])}"
        if outputs.get("demo_users")
        else "No demo events were loaded: lists built from behaviour stay empty until events arrive, "
        "and the ids in the commands above are the demo's (load your own: below)."
    )
    return f"""
streamrec is running locally.
  HTTP API      {api}
  AWS endpoint  {outputs["endpoint_url"]}  (moto, region {outputs["region"]})
  event stream  {outputs["event_stream"]}
  outputs       {outputs["outputs_file"]}

Try:
  curl -s {api}/health
  curl -s '{api}/users/{users[0]}/recommendations?k=5'
  curl -s '{api}/items/{items[0]}/similar?k=5'
  curl -s '{api}/users/someone-new/recommendations?k=5'     # no history: popular items{catalog_lines}
  curl -s -X POST '{api}/cross-sell' -H 'content-type: application/json' \\
       -d '{{"items": ["tent-4-person-family"], "k": 5}}'{stock_note}
  curl -s '{api}/users/{users[0]}/coupons?k=3'                # coupons for the user's interests
  curl -s '{api}/items/trending?window=24h&k=5'              # rising fastest against their usual rate
  curl -s '{api}/items/new?k=5'                              # newest items in stock
  curl -s '{api}/items/{items[0]}/demand'                    # units bought per day, 7-day forecast
  curl -s -X PUT '{api}/coupons/my-coupon' -H 'content-type: application/json' \\
       -d '{{"scope": {{"category": "audio"}}, "discount": {{"kind": "percent", "value": 5}},
            "min_spend": 0, "valid_from": "2026-01-01T00:00:00Z", "valid_to": "2030-01-01T00:00:00Z",
            "budget": 100, "per_user_limit": 1}}'

{demo}

Put your own events (any producer; partition key = user_id):
  {python} - <<'EOF'
  import json, time, boto3
  kinesis = boto3.client("kinesis", endpoint_url="{outputs["endpoint_url"]}",
                         region_name="{outputs["region"]}",
                         aws_access_key_id="testing", aws_secret_access_key="testing")
  event = {{"event_id": "my-1", "event_type": "view", "user_id": "me",
           "item_id": "{items[0]}", "timestamp": int(time.time())}}
  kinesis.put_record(StreamName="{outputs["event_stream"]}", PartitionKey=event["user_id"],
                     Data=json.dumps(event))
  EOF
  curl -s '{api}/users/me/recommendations?k=5'

Load a catalog, coupons and past events (each record checked first; samples of each in
examples/, a new tent and its shopper: then try {api}/users/user-example/coupons):
  {program} catalog load examples/catalog.jsonl
  {program} coupons load examples/coupons.json
  {program} events load examples/events.jsonl

Ctrl-C stops everything (the data lives in memory only).
"""


@dataclass(frozen=True)
class PipelineWork:
    """What the local pipeline has done so far, summed over its pollers."""

    ingested: int = 0  # event-stream records handled by the ingest function (failed ones too)
    recomputed: int = 0  # changed items the similarity function recomputed
    retries: int = 0  # re-deliveries of failing batches
    dead_letters: int = 0  # messages sent to the dead-letter queue (records and batch descriptions)

    @classmethod
    def of(cls, stats: dict[str, Any], dead_letters: int = 0) -> PipelineWork:
        """From :meth:`LocalStack.stats` (pollers named ``"Function.Event"``)."""
        ingest = [s for n, s in stats.items() if n.startswith("IngestFunction.")]
        return cls(
            ingested=sum(s.records + s.failed_records for s in ingest),
            recomputed=sum(s.records for n, s in stats.items() if not n.startswith("IngestFunction.")),
            retries=sum(s.retries for s in stats.values()),
            dead_letters=dead_letters,
        )

    def since(self, earlier: PipelineWork) -> PipelineWork:
        return PipelineWork(
            self.ingested - earlier.ingested,
            self.recomputed - earlier.recomputed,
            self.retries - earlier.retries,
            self.dead_letters - earlier.dead_letters,
        )


class LettersAdded:
    """How many messages reached the dead-letter queue since the first call, from its size
    (``count``): a drop, a re-drive deleting the letters it sent back, counts as no new
    letter, not as a negative number of them (a letter arriving while as many are deleted
    between two calls goes unseen)."""

    def __init__(self, count: Callable[[], int]) -> None:
        self.count = count
        self.last: int | None = None
        self.added = 0

    def __call__(self) -> int:
        now = self.count()
        if self.last is not None:
            self.added += max(0, now - self.last)
        self.last = now
        return self.added


def _follow(
    stack: Any, stop: threading.Event, every: float = 1.0, dead_letters: Callable[[], int] = lambda: 0
) -> None:
    """Serve until ``stop`` is set (never, in ``streamrec run``: Ctrl-C ends the wait),
    showing the pipeline's work on what arrives after the demo load (`streamrec catalog
    load`, the shop's producers): a progress line while records are processed or a batch is
    retried, then a summary once the pipeline is quiet again (two quiet checks in a row, as
    ``drain``), naming what reached the dead-letter queue (``dead_letters`` counts it)."""
    dead_letters = LettersAdded(dead_letters)
    settled = PipelineWork.of(stack.stats(), dead_letters())
    started: float | None = None  # when the current burst of work was first seen
    quiet_checks = 0
    while not stop.wait(every):
        current = PipelineWork.of(stack.stats(), dead_letters())
        work = current.since(settled)
        if work == PipelineWork():
            continue
        started = started or time.monotonic() - every
        quiet_checks = quiet_checks + 1 if stack.quiet() else 0
        if quiet_checks < 2:
            retrying = f", {work.retries} retries of failing batches (see the log)" if work.retries else ""
            _status(
                f"processing new records... ingested {work.ingested}, "
                f"{work.recomputed} changed items recomputed{retrying} ({time.monotonic() - started:.0f}s)"
            )
            continue
        letters = (
            f", {_counted(work.dead_letters, 'dead letter')} (streamrec dlq list)"
            if work.dead_letters
            else ""
        )
        _status(
            f"processed {_counted(work.ingested, 'new record')} "
            f"({work.recomputed} changed items recomputed) in {time.monotonic() - started:.0f}s{letters}",
            done=True,
        )
        settled = current
        started, quiet_checks = None, 0


def _load(
    stack: Any, events: list[dict[str, Any]], drain_timeout: float, started: float, put_before: int = 0
) -> None:
    """Put the demo events on the stream and wait until the pipeline has processed them
    (``put_before``: records already put on the event stream, e.g. the demo catalog)."""
    from streamrec.local.stack import LocalStackError

    stack.put_events(events, lambda done, total: _status(f"loaded {done}/{total} events"))
    _status(f"loaded {len(events)} events", done=True)
    on_stream = len(events) + put_before

    def show(stats: dict[str, Any]) -> None:
        # The ingest's progress against what was put; the similarity function's records are
        # the changed items the ingest announces, a number not known in advance.
        work = PipelineWork.of(stats)
        _status(
            f"processing... ingested {min(work.ingested, on_stream)}/{on_stream} records, "
            f"{work.recomputed} changed items recomputed ({time.monotonic() - started:.0f}s)"
        )

    try:
        stack.drain(timeout=drain_timeout, progress=show)
    except LocalStackError as error:
        raise LocalStackError(f"{error} (raise --drain-timeout, or lower --events)") from None
    stats = stack.stats()
    failures = sum(s.failures for s in stats.values())
    work = PipelineWork.of(stats)
    _status(
        f"processed {work.ingested} records ({work.recomputed} changed items recomputed) in "
        f"{sum(s.batches for s in stats.values())} batches"
        + (f", {failures} batches sent to the dead-letter queue" if failures else ""),
        done=True,
    )


def _load_demo_catalog(stack: Any) -> list[dict[str, Any]]:
    """Put the demo shop's catalog (``local.demo.demo_catalog``) on the event stream, as
    `streamrec catalog load` would (partition key = item id)."""
    from streamrec.local.demo import demo_catalog

    records = demo_catalog()
    stack.put_records([{"Data": record_data(r), "PartitionKey": r["item_id"]} for r in records])
    _status(f"loaded {len(records)} demo catalog records", done=True)
    return records


def _load_demo_coupons(stack: Any, table: str) -> list[str]:
    """Define the demo shop's coupons (``local.demo.demo_coupons``) in the local table."""
    from streamrec.domain.coupons import coupon_record
    from streamrec.local.demo import demo_coupons
    from streamrec.repositories.dynamodb import DynamoCouponRepository, DynamoTable

    repository = DynamoCouponRepository(DynamoTable(table, stack.client("dynamodb")))
    loaded = []
    for record in demo_coupons():
        coupon_id, spec = coupon_record(record)
        repository.put(coupon_id, spec, time.time())
        loaded.append(coupon_id)
    _status(f"defined {len(loaded)} demo coupons", done=True)
    return loaded


def _write_outputs(path: Path, outputs: dict[str, Any]) -> None:
    from streamrec.local.stack import LocalStackError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Whole or not at all: commands may read it while the demo data loads.
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(outputs, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, path)
    except OSError as error:
        raise LocalStackError(f"cannot write {path}: {error.strerror or error}") from None


def _cmd_run(args: argparse.Namespace) -> int:
    from streamrec.local.demo import DEFAULT_SEED, demo_items, demo_users, generate_demo_events
    from streamrec.local.http_api import HttpApiError
    from streamrec.local.stack import LocalStack, LocalStackError
    from streamrec.local.template import TemplateError

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.port and args.port == args.moto_port:
        raise SystemExit(f"error: --port and --moto-port are both {args.port}; give them different ports")
    if args.no_demo and (args.seed is not None or args.events != DEMO_EVENTS):
        _status("note: --no-demo loads no demo data; --events and --seed are ignored", done=True)
    _refuse_outputs_of_a_running_stack(args.outputs)
    started = time.monotonic()
    seed = DEFAULT_SEED if args.seed is None else args.seed
    events = [] if args.no_demo else generate_demo_events(args.events, seed=seed)
    stopping = False

    def on_signal(_signum: int, _frame: Any) -> None:
        # The first Ctrl-C / SIGTERM stops the stack; another one while it stops must not
        # cut the stop short (its threads would then keep the process alive).
        nonlocal stopping
        if stopping:
            _status("still stopping (letting invocations in flight finish)...", done=True)
            return
        stopping = True
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)}
    local: LocalStack | None = None
    written: dict[str, Any] = {}  # the outputs file as last written, marked stopped at the end
    status = 0
    try:
        _status("starting the local stack...")
        local = LocalStack(
            args.template,
            moto_port=args.moto_port,
            http_port=args.port,
            env_overrides={"POWERTOOLS_LOG_LEVEL": args.function_log_level},
            parameter_overrides={} if args.cors_origins is None else {"CorsAllowOrigins": args.cors_origins},
        )
        with local as stack:
            try:
                # Written at once, so that `catalog load`, `coupons load` and `dlq` reach this
                # stack while the demo data loads (and not a stale stack's outputs); written
                # again with the demo's users and items when it is processed.
                loading_outputs = {**stack.outputs(), "outputs_file": str(args.outputs), "ready": False}
                _write_outputs(args.outputs, loading_outputs)
                written = loading_outputs
                loading = "; it answers already, and its lists fill as the demo data is processed"
                _status(
                    f"local stack up in {time.monotonic() - started:.1f}s: HTTP API on {stack.api_url}"
                    + ("" if args.no_demo else loading),
                    done=True,
                )
                catalog = [] if args.no_demo else _load_demo_catalog(stack)
                if events or catalog:
                    _load(stack, events, args.drain_timeout, started, put_before=len(catalog))
                outputs = stack.outputs()
                if catalog:
                    from streamrec.local.demo import DEMO_NEW_ITEM, DEMO_OUT_OF_STOCK

                    outputs["demo_new_item"] = DEMO_NEW_ITEM
                    outputs["demo_out_of_stock"] = list(DEMO_OUT_OF_STOCK)
                if not args.no_demo:
                    outputs["demo_coupons"] = _load_demo_coupons(stack, outputs["tables"]["CouponsTable"])
                outputs["demo_users"] = demo_users(3, events) if events else []
                outputs["demo_items"] = demo_items(3, events) if events else []
                outputs["outputs_file"] = str(args.outputs)
                outputs["ready"] = True  # the demo data is processed
                _write_outputs(args.outputs, outputs)
                written = outputs
                _status(f"ready in {time.monotonic() - started:.1f}s", done=True)
                print(_examples(outputs), flush=True)
                # Serve until Ctrl-C / SIGTERM.
                from streamrec.reliability.dlq import message_count

                sqs, queue_url = stack.client("sqs"), outputs["dead_letter_queue_url"]
                _follow(stack, threading.Event(), dead_letters=lambda: message_count(sqs, queue_url))
            except KeyboardInterrupt:
                _status("stopping (letting invocations in flight finish)...", done=True)
    except KeyboardInterrupt:
        _status("interrupted", done=True)
    except (LocalStackError, TemplateError, HttpApiError) as error:
        hint = " (--cors-origins)" if "parameter CorsAllowOrigins=" in str(error) else ""
        _status(f"error: {error}{hint}", done=True)
        status = 1
    except BrokenPipeError:
        raise  # `streamrec run | head`: main ends it quietly
    except OSError as error:  # the machine's (a full disk): one line, as main says it
        _status(f"error: {error}", done=True)
        status = 1
    except Exception:  # a bug: its traceback, then the exit below all the same
        _status.end_line()
        traceback.print_exc()
        status = 1
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if written:  # a script polling `ready` must not act on a stopped stack (also after an error)
            try:
                _write_outputs(args.outputs, {**written, "ready": False, "stopped": True})
            except LocalStackError as error:  # never in place of the error in flight, if any
                _status(f"note: {error}: it still says the stack runs", done=True)
    if status == 0:
        _status("stopped", done=True)
    if local is not None and local.abandoned:
        # An invocation that outlived the wait now retries against a stopped moto: Python
        # would wait for its threads at exit (it joins thread pools' threads, daemon or
        # not), a minute after "stopped" or an error. Its data lived in memory only.
        _status(f"left the invocations still in flight behind ({', '.join(local.abandoned)})", done=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


# --------------------------------------------------------------------------------------
# streamrec faults
# --------------------------------------------------------------------------------------
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


def _add_faults(subparsers: Any) -> None:
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
        _status(f"[{time.monotonic() - started:5.0f}s] {text}", done=True)

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


# --------------------------------------------------------------------------------------
# where dlq, coupons and catalog act: the local stack or AWS
# --------------------------------------------------------------------------------------
LOCAL_STACK_PROBE_SECONDS = 1.0  # a running local stack accepts a connection at once
# ...but its moto server may take a while to answer while the pollers are busy.
LOCAL_STACK_ANSWER_SECONDS = 5.0
LOCAL_STACK_ANSWER_ATTEMPTS = 3
# Error codes that running the command again cannot fix (no "re-run" advice after them).
PERMANENT_ERRORS = frozenset(
    {
        "ResourceNotFoundException",  # DynamoDB, Kinesis: no such table or stream
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "InvalidClientTokenId",  # SQS: unknown access key
        "SignatureDoesNotMatch",
        "ValidationException",
        "KMSAccessDeniedException",  # Kinesis: the stream's key cannot be used
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
    }
)
LOCAL_OUTPUTS = Path(".local/outputs.json")  # where `streamrec run` writes them by default


def _add_target_arguments(parser: argparse.ArgumentParser, flag: str) -> None:
    """Where a command acts: the local stack (its outputs file) or AWS (see :func:`_target`);
    ``flag`` is the command's resource flag, which targets AWS."""
    parser.add_argument(
        "--outputs",
        type=Path,
        default=None,
        help=f"the local stack's outputs (default {LOCAL_OUTPUTS}); not with {flag}, which targets AWS",
    )
    parser.add_argument(
        "--endpoint-url",
        default=None,
        help="AWS endpoint (default: the local stack's, from --outputs, without a resource flag; else AWS)",
    )
    parser.add_argument(
        "--region",
        default=None,
        help="AWS region (default: the local stack's, from --outputs, without a resource flag; "
        "else your AWS configuration)",
    )


@dataclass(frozen=True)
class Target:
    """A command's resource and the boto3 client arguments to reach it; ``local_stack`` is
    the endpoint when both came from the local stack's outputs file."""

    name: str
    client_kwargs: dict[str, Any]
    local_stack: str | None = None

    def client(self, service: str) -> Any:
        import boto3

        try:
            return boto3.client(service, **self.client_kwargs)  # type: ignore[call-overload]
        except ValueError as error:  # e.g. an invalid AWS_ENDPOINT_URL or region
            raise SystemExit(f"error: {error}") from None

    @contextmanager
    def failures(
        self,
        done: Callable[[], str] | None = None,
        again: str = "",
        otherwise: str = "",
        otherwise_for: frozenset[str] | None = None,
    ) -> Iterator[None]:
        """One line instead of a traceback when AWS or the local stack fails mid-command,
        ending with ``done()``: what the command had done by then, and ``again`` (how to
        finish, e.g. "re-run") unless the cause is one that re-running cannot fix (a
        resource that does not exist, access denied, a request AWS refuses); then
        ``otherwise`` (what can), if given, for the error codes ``otherwise_for`` (None: all)."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            HTTPClientError,
            NoCredentialsError,
            NoRegionError,
        )
        from botocore.exceptions import ConnectionError as ConnectionFailure

        from streamrec.repositories.base import RepositoryError
        from streamrec.repositories.dynamodb import error_code

        def so_far(retry: bool = True, code: str = "") -> str:
            advice = again if retry else (otherwise if otherwise_for is None or code in otherwise_for else "")
            return (f"; {done()}" if done else "") + (f": {advice}" if done and advice else "")

        try:
            yield
        except KeyboardInterrupt as interruption:
            _status.end_line()
            how, status = (
                ("terminated", TERMINATED_STATUS)
                if isinstance(interruption, Terminated)
                else ("interrupted", INTERRUPTED_STATUS)
            )
            print(f"streamrec: {how}" + so_far(), file=sys.stderr)
            raise SystemExit(status) from None
        except NoRegionError:
            # Raised by the first call: nothing was done yet, and re-running alone cannot help.
            _status.end_line()
            raise SystemExit(
                "error: no AWS region: pass --region (or set AWS_REGION); nothing was done"
            ) from None
        except (BotoCoreError, ClientError, RepositoryError) as error:
            _status.end_line()
            cause = error.__cause__ if isinstance(error, RepositoryError) else error
            if self.local_stack and isinstance(cause, (ConnectionFailure, HTTPClientError)):
                what = f"the local stack at {self.local_stack} stopped answering"
            elif isinstance(cause, NoCredentialsError):
                what = (
                    "Unable to locate AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, or run aws configure)"
                )
            else:
                what = str(error).rstrip(".")
            code = error_code(cause)
            permanent = code in PERMANENT_ERRORS or isinstance(cause, NoCredentialsError)
            raise SystemExit(f"error: {what}" + so_far(retry=not permanent, code=code)) from None


def _accepts_connections(endpoint: str) -> bool:
    """Whether something listens at the endpoint URL's host and port."""
    url = urllib.parse.urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "localhost", port), timeout=LOCAL_STACK_PROBE_SECONDS):
            return True
    except OSError:
        return False


def _serves_moto(endpoint: str, attempts: int = LOCAL_STACK_ANSWER_ATTEMPTS) -> bool | None:
    """Whether the local stack's moto server answers at ``endpoint`` (its dashboard page):
    True; False for another program that took the port since; None when nothing answered
    in ``attempts`` tries of LOCAL_STACK_ANSWER_SECONDS (a stack busy with a replay shares
    its process with the pollers, so a slow page is not a foreign one)."""
    import http.client
    import urllib.error
    import urllib.request

    for _ in range(attempts):
        try:
            with urllib.request.urlopen(  # noqa: S310 - a local stack's own endpoint
                endpoint.rstrip("/") + "/moto-api/", timeout=LOCAL_STACK_ANSWER_SECONDS
            ) as page:
                return b"<title>Moto</title>" in page.read(4096)
        except (urllib.error.HTTPError, http.client.HTTPException):
            return False  # an answer, not moto's (or not even HTTP: an SSH banner, say)
        except (OSError, ValueError) as error:
            if not isinstance(error, TimeoutError) and not isinstance(
                getattr(error, "reason", None), TimeoutError
            ):
                return False
    return None


def _check_endpoint(endpoint: Any, where: str) -> None:
    """SystemExit unless ``endpoint`` is a URL boto3 takes (it raises a bare ValueError)."""
    from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

    if not isinstance(endpoint, str) or not (
        is_valid_endpoint_url(endpoint) or is_valid_ipv6_endpoint_url(endpoint)
    ):
        raise SystemExit(f"error: {where} {endpoint!r} is not a URL (like http://localhost:4566)")


def _check_target_flags(args: argparse.Namespace, name: str | None, flag: str) -> None:
    """Refuse target flags that do not go together (before a command reads its file: a
    large one takes a while)."""
    if args.endpoint_url is not None:
        _check_endpoint(args.endpoint_url, "--endpoint-url")
    if name is not None and args.outputs is not None:
        # Which one was meant is a guess: records could go to AWS instead of the stack.
        raise SystemExit(
            f"error: --outputs and {flag} do not go together: {flag} names a resource on AWS "
            "(or at --endpoint-url, with --region); --outputs alone targets the local stack"
        )


def _target(
    args: argparse.Namespace, name: str | None, flag: str, from_outputs: Callable[[dict[str, Any]], str]
) -> Target:
    """A command's target: ``name`` when its ``flag`` was given (AWS, or --endpoint-url),
    else the local stack's resource picked from its outputs file, with the stack's endpoint,
    region and test credentials. The stack must be running: an outputs file outlives it."""
    _check_target_flags(args, name, flag)
    if name is not None:
        return Target(name, {"region_name": args.region, "endpoint_url": args.endpoint_url})
    args.outputs = args.outputs or LOCAL_OUTPUTS
    if args.outputs.is_dir():
        raise SystemExit(
            f"error: {args.outputs} is a directory: --outputs takes the file `streamrec run` wrote"
        )
    if not args.outputs.is_file():
        where = f" (in {Path.cwd()})" if not args.outputs.is_absolute() else ""
        raise SystemExit(
            f"error: {args.outputs} not found{where}: start the local stack (`streamrec run`, which "
            f"writes it in the folder it runs in), run this command in that folder, or pass "
            f"--outputs FILE or {flag}"
        )
    try:
        outputs = json.loads(args.outputs.read_text(encoding="utf-8"))
        name = from_outputs(outputs)
    except OSError as error:
        raise SystemExit(f"error: cannot read {args.outputs}: {error.strerror or error}") from None
    except (ValueError, KeyError, TypeError):
        raise SystemExit(
            f"error: {args.outputs} is not an outputs file of `streamrec run`: "
            f"start the local stack (`streamrec run`) or pass {flag}"
        ) from None
    if args.region is not None and outputs.get("region") and args.region != outputs["region"]:
        # moto keeps each region apart: the stack's resources exist in its own region only.
        raise SystemExit(
            f"error: the local stack of {args.outputs} is in region {outputs.get('region')}, so "
            f"--region {args.region} would find none of its resources: leave --region out, or "
            f"name a resource on AWS with {flag}"
        )
    client_kwargs: dict[str, Any] = {
        "region_name": args.region or outputs.get("region"),
        "endpoint_url": args.endpoint_url or outputs.get("endpoint_url"),
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    local_stack = None if args.endpoint_url else outputs.get("endpoint_url")
    if local_stack:
        _check_endpoint(local_stack, f"the endpoint_url of {args.outputs}")
        # Without this check botocore retries the refused connection for 5-26 s, then fails
        # with a traceback.
        if not _accepts_connections(local_stack):
            raise SystemExit(
                f"error: the local stack at {local_stack} is not running ({args.outputs} is from an "
                f"earlier run): start it (`streamrec run`) or pass {flag}"
            )
        answer = _serves_moto(local_stack)
        if answer is None:
            seconds = LOCAL_STACK_ANSWER_SECONDS * LOCAL_STACK_ANSWER_ATTEMPTS
            raise SystemExit(
                f"error: the local stack at {local_stack} takes connections but did not answer "
                f"within {seconds:.0f} s (busy loading or replaying?): try again, or pass {flag}"
            )
        if not answer:
            raise SystemExit(
                f"error: the local stack at {local_stack} is not running ({args.outputs} is from an "
                f"earlier run, and another program now listens there): start it (`streamrec run`) "
                f"or pass {flag}"
            )
        from botocore.config import Config

        # A refused connection means the stack stopped: retrying only delays the error.
        client_kwargs["config"] = Config(retries={"mode": "standard", "max_attempts": 2})
    return Target(name, client_kwargs, local_stack)


# --------------------------------------------------------------------------------------
# streamrec dlq
# --------------------------------------------------------------------------------------
def _add_dlq(subparsers: Any) -> None:
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
        _add_target_arguments(action, "--queue-url")
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
        _check_endpoint(args.queue_url, "--queue-url")
        if args.region is None and args.endpoint_url is None:
            # The URL names its region (sqs.<region>.amazonaws.com): a client of the configured
            # region would answer "the specified queue does not exist".
            args.region = _queue_url_region(args.queue_url)
    return _target(args, args.queue_url, "--queue-url", lambda o: o["dead_letter_queue_url"])


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


@contextmanager
def _progress_lines(template: str) -> Iterator[Callable[..., None]]:
    """A progress callback showing ``template.format(*counts)`` on the status line; on exit
    its last line is written whole, if one was shown, so that a log keeps the final count
    (progress lines in a log come at most every 5 s) and what follows starts a new line."""
    last: list[tuple[Any, ...]] = []

    def show(*counts: Any) -> None:
        if last and last[0] == counts:
            return  # nothing new to show
        last[:] = [counts]
        _status(template.format(*counts))

    try:
        yield show
    finally:
        if last:
            _status(template.format(*last[0]), done=True)


def _cmd_dlq_list(args: argparse.Namespace) -> int:
    from streamrec.reliability import dlq

    target = _dlq_target(args)
    with target.failures():
        sqs = target.client("sqs")
        expected = _queue_size(sqs, target.name)
        # Hidden while listed: long enough that none comes back before the queue is read
        # (some 100 letters a second on the local stack), released as soon as it is.
        hidden = _hidden_for(30, expected)
        with _progress_lines("reading dead letters: {:,} of about " + f"{expected:,}") as progress:
            letters = dlq.receive_all(sqs, target.name, visibility_timeout=hidden, progress=progress)
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
            f"{_counted(len(letters), 'dead letter')} ({_counted(kinds['record'], 'record')}, "
            f"{_counted(kinds['batch'], 'batch description')}, {kinds['unknown']} unknown)"
        )
    if len(letters) < expected:
        # Another reader (a re-drive, a second list) held the rest, or SQS's count ran ahead.
        print(
            f"note: the queue held about {expected:,}; {expected - len(letters):,} were not "
            "received (being read by another command?): list again to see them",
            file=sys.stderr,
        )
    return 0


def _first_lines(lines: Sequence[str], shown: int) -> str:
    """The first ``shown`` lines, indented, then "... and N more" for the rest."""
    more = [f"... and {len(lines) - shown} more"] if len(lines) > shown else []
    return "\n".join(f"  {line}" for line in [*lines[:shown], *more])


def _named_ids(ids: Sequence[str], shown: int = 10) -> str:
    """The first ``shown`` ids, comma-separated, then "and N more"."""
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more


def _counted(n: int, noun: str) -> str:
    """``1 record``, ``2 records``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _cmd_dlq_discard(args: argparse.Namespace) -> int:
    from streamrec.reliability import dlq

    target = _dlq_target(args)
    with (
        _progress_lines("reading dead letters: {:,}") as receiving,
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
        f"{verb} {_counted(len(report.discarded), 'letter')} of invalid records of "
        f"{_counted(report.examined, 'dead letter')}; the others stay"
    )
    if report.discarded:
        print(_first_lines([f"{verb}: {description}" for description in report.discarded], 50))
    if report.refused:
        print(
            f"{_counted(len(report.refused), 'letter')} SQS did not delete, back in the queue "
            "(run again):\n" + _first_lines(report.refused, 50),
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
        _progress_lines("reading dead letters: {:,}") as show_received,
        _progress_lines(
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
                f"error: {_counted(failing.count, 'record')} of a letter kept failing on the stream "
                f"({', '.join(failing.codes)}); {interrupted()}; re-run (re-putting is safe)"
            ) from None
    verb = "would re-drive" if args.dry_run else "re-drove"
    duplicates = (
        f"; skipped {_counted(report.duplicates_skipped, 'record')} another letter holds too"
        if report.duplicates_skipped
        else ""
    )
    print(
        f"{verb} {_counted(report.redriven_records, 'record')} from {report.redriven_messages} of "
        f"{_counted(report.examined, 'dead letter')}; kept {len(report.kept)}{duplicates}"
    )
    if report.redriven:
        print(
            _first_lines(
                [
                    f"{verb} ({_counted(records, 'record')} to {stream}): {description}"
                    for description, records, stream in report.redriven
                ],
                50,
            )
        )
    if report.kept:
        print(_first_lines([f"kept ({why}): {description}" for description, why in report.kept], 50))
    return 0


# --------------------------------------------------------------------------------------
# streamrec coupons
# --------------------------------------------------------------------------------------
def _add_coupons_table_arguments(parser: argparse.ArgumentParser) -> None:
    """--table and the target arguments of every `coupons` action."""
    parser.add_argument("--table", default=None, help="the coupons table name (e.g. on AWS)")
    _add_target_arguments(parser, "--table")


def _coupons_target(args: argparse.Namespace) -> Target:
    """The coupons table of a `coupons` action: --table, or the local stack's."""
    return _target(args, args.table, "--table", lambda o: o["tables"]["CouponsTable"])


def _coupon_repository(target: Target) -> Any:
    """The DynamoDB coupon repository of a `coupons` action's table."""
    from streamrec.repositories.dynamodb import DynamoCouponRepository, DynamoTable

    return DynamoCouponRepository(DynamoTable(target.name, target.client("dynamodb")))


def _add_coupons(subparsers: Any) -> None:
    coupons = subparsers.add_parser(
        "coupons",
        help="load coupon definitions into the coupons table, list them, or prune expired ones from "
        "its index",
        description="Coupons live in CouponsTable. By default the local stack's table "
        "(.local/outputs.json, written by `streamrec run`); on AWS pass --table (the CouponsTableName "
        "output) and use your usual AWS credentials.",
    )
    actions = coupons.add_subparsers(dest="action", metavar="ACTION", required=True)
    load = actions.add_parser(
        "load",
        help="create or redefine coupons from FILE (.json: an object or a list; .jsonl: one per line)",
        description="Every record is validated first (the PUT /coupons/{coupon_id} schema plus its "
        "coupon_id); nothing is written when one is invalid or a coupon_id comes twice. "
        "Redefining a coupon keeps the redemptions already counted.",
    )
    load.add_argument("file", type=Path, help="FILE.json or FILE.jsonl (either may be gzip-compressed: .gz)")
    _add_coupons_table_arguments(load)
    load.set_defaults(func=_cmd_coupons_load)
    prune = actions.add_parser(
        "prune",
        help="take expired coupons out of every scope's index (upkeep after campaigns end)",
        description="A definition prunes its own scope, so a scope no longer defined in keeps its "
        "expired coupons listed: each request for a user of that scope reads them (never offers "
        "them). This reads the whole table once (a Scan) and takes every expired coupon out of "
        "the index; the coupon rows stay (their redemption counts are the shop's record). Safe "
        "to run at any time, also while coupons are being defined.",
    )
    _add_coupons_table_arguments(prune)
    prune.set_defaults(func=_cmd_coupons_prune)
    listing = actions.add_parser(
        "list",
        help="every coupon defined, with its counts and whether it is offered now",
        description="Reads the whole table once (a Scan) and prints each coupon, by id: its "
        "state (active, scheduled, exhausted, expired), scope, discount, validity, and "
        "redemptions (remaining of budget, redeemed, refused past the budget); then a count "
        "per state. One coupon's is GET /coupons/{coupon_id}.",
    )
    listing.add_argument(
        "--state",
        choices=COUPON_STATES,
        action="append",
        help="only coupons in this state (repeat for several)",
    )
    listing.add_argument(
        "--json", action="store_true", help="one JSON object per line, as GET /coupons/{coupon_id} answers"
    )
    _add_coupons_table_arguments(listing)
    listing.set_defaults(func=_cmd_coupons_list)
    coupons.set_defaults(func=lambda args: coupons.print_help() or 2)


def _text_lines(text: str) -> Iterator[tuple[int, str]]:
    """(number, line) of ``text``'s lines, one at a time (a backfill's file holds millions),
    split at newlines only: unlike str.splitlines, not inside a JSON string holding a raw
    U+2028, U+2029 or U+0085, which JSON allows."""
    start, number = 0, 1
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        yield number, text[start:end]
        start, number = end + 1, number + 1


def _json_line_values(text: str) -> Iterator[tuple[int, Any, str]]:
    """(line, value, "") of each non-blank line that decodes and (line, None, problem) of
    each that does not, one at a time: one bad line must not hide the others."""
    from streamrec.events import loads

    for number, line in _text_lines(text):
        if line.strip():
            try:
                yield number, loads(line), ""
            except ValueError as error:
                yield number, None, f"not valid JSON: {_json_problem(error)}"


def _json_lines(text: str) -> tuple[list[tuple[int, Any]], list[tuple[int, str]]]:
    """(line, value) of each non-blank line that decodes, and (line, problem) of each that
    does not."""
    records, problems = [], []
    for number, value, problem in _json_line_values(text):
        if problem:
            problems.append((number, problem))
        else:
            records.append((number, value))
    return records, problems


def _json_problem(error: ValueError) -> str:
    """What json.loads refused: a syntax error, an object giving a name twice (as the ingest
    refuses it), or an integer of thousands of digits (which it refuses with a plain
    ValueError: Python's int_max_str_digits)."""
    from streamrec.events import DuplicateKey

    if isinstance(error, json.JSONDecodeError):
        return error.msg
    if isinstance(error, DuplicateKey):
        return str(error)
    return "a number of more than 4,300 digits"


GZIP_MAGIC = b"\x1f\x8b"


def _check_input_file(path: Path) -> None:
    """SystemExit unless ``path`` names an existing file."""
    if path.is_dir():
        raise SystemExit(f"error: {path} is a directory: name a file")
    if not path.exists():  # a pipe (/dev/stdin, <(...)) is read like a file
        raise SystemExit(f"error: {path} not found")


def _read_text(path: Path) -> str:
    """The UTF-8 text of an input file, gzip-compressed or not (a leading byte-order mark is
    dropped); SystemExit (nothing loaded) if it cannot be read."""
    _check_input_file(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SystemExit(f"error: nothing loaded; cannot read {path}: {error.strerror or error}") from None
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise SystemExit(
                f"error: nothing loaded; {path} is not one whole gzip file (cut short, damaged, or "
                f"followed by other bytes): {error}"
            ) from None
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: bom + error.start].count(b"\n") + 1
        raise SystemExit(
            f"error: nothing loaded; {path} line {line} is not UTF-8 text "
            f"(byte 0x{data[bom + error.start]:02x} at byte {bom + error.start}); save the file as UTF-8"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as reading in text mode does


def _is_json_lines(path: Path) -> bool:
    """Whether ``path`` is named as JSON lines: FILE.jsonl or FILE.jsonl.gz."""
    name = path.name.lower()
    return name.endswith(".jsonl") or name.endswith(".jsonl.gz")


def _refuse_an_array_over_lines(path: Path, text: str, what: str) -> None:
    """SystemExit when a .jsonl file holds one JSON array written over several lines (its
    lines alone are not records): the file is misnamed, and one message says so instead of
    an error per line."""
    stripped = text.strip()
    if not stripped.startswith("[") or "\n" not in stripped:
        return
    try:
        whole = json.loads(stripped)
    except ValueError:
        return
    if isinstance(whole, list):
        raise SystemExit(
            f"error: nothing loaded; {path} holds one JSON array over several lines, and a .jsonl "
            f"file is read one {what} per line: name it .json, or write one {what} per line"
        )


def read_coupon_file(path: Path) -> list[tuple[str, Any]]:
    """(coupon_id, CouponSpec) of every record of a .json or .jsonl file; SystemExit naming
    each invalid record (by position), or each coupon defined twice, otherwise."""
    from streamrec.domain.coupons import InvalidCoupon, coupon_record
    from streamrec.events import loads

    text = _read_text(path)
    if not text.strip():
        raise SystemExit(f"error: nothing loaded; {path} holds no coupons")
    if _is_json_lines(path):
        _refuse_an_array_over_lines(path, text, "coupon")
        where, (records, problems) = "line", _json_lines(text)
    else:
        try:
            payload = loads(text)
        except json.JSONDecodeError as error:
            # "Extra data" after a first whole value: JSON lines, most likely.
            hint = " (one coupon per line? name the file .jsonl)" if error.msg == "Extra data" else ""
            raise SystemExit(f"error: nothing loaded; {path} is not valid JSON: {error}{hint}") from None
        except ValueError as error:
            raise SystemExit(
                f"error: nothing loaded; {path} is not valid JSON: {_json_problem(error)}"
            ) from None
        items = payload if isinstance(payload, list) else [payload]
        where, records, problems = "record", list(enumerate(items, 1)), []
    parsed = []
    first_definition: dict[str, int] = {}
    for number, record in records:
        try:
            coupon_id, spec = coupon_record(record)
        except InvalidCoupon as error:
            problems.append((number, str(error)))
            continue
        parsed.append((coupon_id, spec))
        if coupon_id in first_definition:
            first = first_definition[coupon_id]
            problems.append((number, f"coupon_id {coupon_id!r} is already defined at {where} {first}"))
        else:
            first_definition[coupon_id] = number
    if problems:
        problems.sort(key=lambda problem: problem[0])  # in file order, whatever the kind
        named = [f"{path} {where} {number}: {reason}" for number, reason in problems]
        raise SystemExit("error: nothing loaded; invalid coupons:\n  " + "\n  ".join(named))
    if not parsed:
        raise SystemExit(f"error: nothing loaded; {path} holds no coupons")
    return parsed


SHOWN_KEPT = 20  # redefined coupons named by `coupons load` (a shop may redefine thousands)


def _refuse_full_scopes(path: Path, coupons: Sequence[tuple[str, Any]], now: float) -> None:
    """SystemExit, before anything is sent, when the file alone defines more coupons that
    have not expired in one scope than a scope lists (COUPONS_PER_SCOPE)."""
    from streamrec.domain.coupons import scope_keys
    from streamrec.repositories.base import COUPONS_PER_SCOPE, scope_words

    live: dict[str, int] = {}
    for _, spec in coupons:
        if spec.valid_to > now:
            for key in scope_keys(spec.scope):
                live[key] = live.get(key, 0) + 1
    over = sorted((key for key, count in live.items() if count > COUPONS_PER_SCOPE), key=lambda k: -live[k])
    if over:
        named = [" ".join(scope_words(key)) + f": {live[key]}" for key in over]
        raise SystemExit(
            f"error: nothing loaded; {path} defines more coupons that have not expired in one scope "
            f"than a scope lists ({COUPONS_PER_SCOPE}):\n" + _first_lines(named, 10)
        )


def _cmd_coupons_load(args: argparse.Namespace) -> int:
    from streamrec.domain.coupons import coupon_state, scope_keys
    from streamrec.repositories.base import RepositoryError, ScopeFullError

    _check_target_flags(args, args.table, "--table")
    coupons = read_coupon_file(args.file)
    now = time.time()
    _refuse_full_scopes(args.file, coupons, now)
    # The coupons the file ends first (valid_to passed), else in file order: a file that
    # ends campaigns and starts as many in a full scope frees their slots before it fills them.
    coupons.sort(key=lambda coupon: coupon[1].valid_to > now)
    target = _coupons_target(args)
    loaded = 0

    def interrupted() -> str:
        # Redefining a coupon keeps its redemptions, so loading again is safe.
        return f"loaded {loaded} of {len(coupons)} coupon(s) into {target.name} before it stopped"

    kept = []  # redefined coupons whose redemptions were kept: remaining < budget
    idle: dict[str, list[str]] = {"expired": [], "exhausted": []}  # stored, but never offered
    with target.failures(interrupted, again="re-run"):
        repository = _coupon_repository(target)
        for coupon_id, spec in coupons:
            # Pruned once below, not per coupon: thousands in one scope would each read it.
            try:
                stored = repository.put(coupon_id, spec)
            except ScopeFullError as error:
                raise SystemExit(f"error: {error}; {interrupted()}") from None
            if stored.redeemed or stored.refused:  # remaining = budget - redeemed - refused
                refused = f", {stored.refused} refused past the budget" if stored.refused else ""
                kept.append(
                    f"{coupon_id}: remaining {stored.remaining} of {spec.budget} "
                    f"({stored.redeemed} redeemed{refused})"
                )
            state = coupon_state(stored, time.time())
            if state in idle:
                idle[state].append(coupon_id)
            loaded += 1
            _status(f"loaded {loaded}/{len(coupons)} coupons", done=loaded == len(coupons))
    if kept:
        print(f"{len(kept)} redefined coupon(s) keep the redemptions already counted:")
        print(_first_lines(kept, SHOWN_KEPT))
    print(f"loaded {len(coupons)} coupon(s) into {target.name}")
    for state, why in (("expired", "their valid_to has passed"), ("exhausted", "no redemption left")):
        if idle[state]:
            print(
                f"note: {len(idle[state])} loaded coupon(s) are {state} ({why}): stored, never offered: "
                + _named_ids(idle[state]),
                file=sys.stderr,
            )
    scopes = sorted({key for _, spec in coupons for key in scope_keys(spec.scope)})
    try:
        pruned = len(repository.prune_expired(scopes, time.time()))
    except RepositoryError as error:
        # The load is done; a stale index entry costs reads, never an offer.
        print(
            f"warning: the expired coupons of the loaded scopes were not pruned ({error}); "
            "the next definition in a scope prunes it",
            file=sys.stderr,
        )
        return 0
    if pruned:
        print(
            f"{pruned} expired coupon(s) left the index of the loaded coupons' scopes (never offered again)"
        )
    return 0


COUPON_STATES = ("active", "scheduled", "exhausted", "expired")


def _plain_number(value: float) -> str:
    """A number as written, without an exponent or a trailing ".0" (1234567.5, 10, 0.000001)."""
    text = format(Decimal(repr(float(value))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _coupon_line(coupon: Any, state: str) -> str:
    """One coupon of `coupons list`: id, state, scope, discount, validity, counts."""
    spec = coupon.spec
    if spec.scope.category is not None:
        scope = f"category {spec.scope.category}"
    else:
        items = list(spec.scope.items or ())
        scope = f"items {', '.join(items[:3])}" + (f" (+{len(items) - 3})" if len(items) > 3 else "")
    value = _plain_number(spec.discount.value)
    discount = f"{value}% off" if spec.discount.kind == "percent" else f"{value} off"
    if spec.min_spend:
        discount += f" from {_plain_number(spec.min_spend)}"

    def moment(seconds: float) -> str:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    valid = f"{moment(spec.valid_from)}..{moment(spec.valid_to)}"
    return (
        f"{coupon.coupon_id}  {state}  {scope}; {discount}; {valid}; "
        f"remaining {coupon.remaining} of {spec.budget}, redeemed {coupon.redeemed}, refused {coupon.refused}"
    )


def _cmd_coupons_list(args: argparse.Namespace) -> int:
    from streamrec.domain.coupons import coupon_state, stored_coupon

    target = _coupons_target(args)
    with target.failures():
        repository = _coupon_repository(target)
        coupons = []
        for coupon in repository.all_coupons():  # a Scan: a large table takes a while
            coupons.append(coupon)
            if len(coupons) % 1000 == 0:
                _status(f"read {len(coupons)} coupons")
    if len(coupons) >= 1000:
        _status(f"read {len(coupons)} coupons", done=True)  # ends the progress line
    coupons.sort(key=lambda coupon: coupon.coupon_id)
    now = time.time()
    states = {coupon.coupon_id: coupon_state(coupon, now) for coupon in coupons}
    shown = [coupon for coupon in coupons if not args.state or states[coupon.coupon_id] in args.state]
    for coupon in shown:
        print(
            json.dumps(stored_coupon(coupon, now))
            if args.json
            else _coupon_line(coupon, states[coupon.coupon_id])
        )
    if not args.json:
        per_state = ", ".join(
            f"{sum(1 for coupon in shown if states[coupon.coupon_id] == state)} {state}"
            for state in COUPON_STATES
        )
        print(f"{_counted(len(shown), 'coupon')} ({per_state}) in {target.name}")
    return 0


# Scope index rows pruned per step of `coupons prune` (a progress line each).
PRUNE_SCOPES_PER_STEP = 100


def _cmd_coupons_prune(args: argparse.Namespace) -> int:

    target = _coupons_target(args)
    checked, pruned = 0, set[str]()

    def interrupted() -> str:
        # A prune takes out only what has expired: running it again is safe.
        return f"{len(pruned)} expired coupon(s) left the index of {checked} scope(s) before it stopped"

    with target.failures(interrupted, again="re-run"):
        repository = _coupon_repository(target)
        _status(f"reading the scope index of {target.name}")
        scopes = repository.indexed_scopes()
        # One clock for the whole run: a coupon expiring meanwhile is left for the next one.
        now = time.time()
        for start in range(0, len(scopes), PRUNE_SCOPES_PER_STEP):
            step = scopes[start : start + PRUNE_SCOPES_PER_STEP]
            pruned |= repository.prune_expired(step, now)
            checked += len(step)
            _status(f"checked {checked}/{len(scopes)} scopes", done=checked == len(scopes))
    print(
        f"{len(pruned)} expired coupon(s) left the index of {target.name} "
        f"({len(scopes)} scope(s) checked; never offered again, their rows kept)"
    )
    return 0


# --------------------------------------------------------------------------------------
# streamrec openapi
# --------------------------------------------------------------------------------------
OPENAPI_DOCUMENT = "docs/openapi.json"  # the committed copy, in the project's folder


def _add_openapi(subparsers: Any) -> None:
    openapi = subparsers.add_parser(
        "openapi",
        help="print the HTTP API's OpenAPI document (or write it with --output)",
        description="The OpenAPI 3.1 document derived from the API's routes and their validation "
        "models; docs/openapi.json is its committed copy.",
    )
    openapi.add_argument("--output", type=Path, default=None, help="write to this file instead of stdout")
    openapi.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 if --output (default {OPENAPI_DOCUMENT}) differs from the derived document "
        "(nothing is written)",
    )
    openapi.set_defaults(func=_cmd_openapi)


def _is_openapi_document(path: Path, text: str) -> bool:
    """Whether ``path`` holds (or is named as) an OpenAPI document, which --output may replace."""
    if path.name.endswith("openapi.json"):
        return True
    try:
        document = json.loads(text)
    except ValueError:
        return False
    return isinstance(document, dict) and "openapi" in document


def _cmd_openapi(args: argparse.Namespace) -> int:
    from streamrec.openapi import openapi_text

    text = openapi_text()
    if args.output is None and args.check:
        args.output = Path(__file__).resolve().parents[2] / OPENAPI_DOCUMENT  # src/streamrec/cli.py
        if not args.output.is_file():
            raise SystemExit(f"error: {args.output} not found: name the document with --output FILE")
    if args.output is None:
        sys.stdout.write(text)
        return 0
    if args.output.is_dir():
        raise SystemExit(f"error: {args.output} is a directory: --output takes a file (docs/openapi.json)")
    if args.check:
        if not args.output.exists():
            if not args.output.parent.is_dir():
                print(f"{args.output} does not exist, nor does its folder {args.output.parent}")
            else:
                print(f"{args.output} does not exist: run streamrec openapi --output {args.output}")
            return 1
        try:
            current = args.output.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            current = ""  # not the document (which is UTF-8)
        except OSError as error:
            raise SystemExit(f"error: cannot read {args.output}: {error.strerror or error}") from None
        if current != text:
            if not _is_openapi_document(args.output, current):
                # Advising --output here would have the user overwrite, say, the README.
                print(f"{args.output} is not an OpenAPI document: name the document with --output FILE")
            else:
                print(f"{args.output} is out of date: run streamrec openapi --output {args.output}")
            return 1
        print(f"{args.output} is up to date")
        return 0
    if not args.output.parent.is_dir():  # a typo in the path, not a folder to create
        what = "is not a folder" if args.output.parent.exists() else "does not exist"
        raise SystemExit(f"error: cannot write {args.output}: {args.output.parent} {what}")
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as error:
        where = error.filename or args.output
        raise SystemExit(f"error: cannot write {args.output}: {where}: {error.strerror or error}") from None
    print(f"wrote {args.output}")
    return 0


# --------------------------------------------------------------------------------------
# streamrec catalog
# --------------------------------------------------------------------------------------


def _add_catalog(subparsers: Any) -> None:
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
    _add_target_arguments(load, "--stream")
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
    _add_target_arguments(recount, "--table")
    recount.set_defaults(func=_cmd_catalog_recount)
    catalog.set_defaults(func=lambda args: catalog.print_help() or 2)


@dataclass(frozen=True)
class RecordPlaces:
    """Names a record of an input file by its position, as :func:`_checked_records` counts
    them: in JSON lines (or one object) the position is the line number; in a JSON array it
    is the element's number, shown with its line unless the array is on one line (where
    every record is on line 1). An array's syntax error has the position after its last
    decoded record and is named by its line, after that record."""

    array_lines: tuple[int, ...] | None = None  # each element's line, then the error's
    decoded: int = 0  # elements decoded
    one_line: bool = False

    def __call__(self, position: int) -> str:
        if self.array_lines is None:
            return f"line {position}"
        line = self.array_lines[position - 1]
        if position > self.decoded:
            return f"line {line}, after record {position - 1}" if position > 1 else f"line {line}"
        return f"record {position}" if self.one_line else f"record {position} (line {line})"


def _catalog_records(text: str) -> tuple[list[tuple[int, Any]], list[tuple[int, str]], RecordPlaces]:
    """(position, value) of each record of a file not named as JSON lines: JSON lines all
    the same, a JSON array or one JSON object spanning several lines, (position, problem) of
    each undecodable part, and how positions are named. An array is read up to its first
    syntax error only: past it, where the next record starts is a guess."""
    from streamrec.events import loads

    stripped = text.lstrip()
    if not stripped.startswith("["):
        records, problems = _json_lines(text)
        by_line = RecordPlaces()
        if not problems or not stripped.startswith("{"):
            return records, problems, by_line
        # Lines that are not JSON alone: one object over several lines (a nested object may
        # sit on a line of its own), unless it does not decode whole and some line is an
        # object alone or the first line is already broken (then each line is named).
        line = text.count("\n", 0, len(text) - len(stripped)) + 1
        lines_of_objects = any(isinstance(value, dict) for _, value in records)
        try:
            return [(line, loads(text))], [], by_line
        except json.JSONDecodeError as error:
            if error.lineno == line or lines_of_objects:
                return records, problems, by_line
            return [], [(error.lineno, f"not valid JSON: {error.msg}")], by_line
        except ValueError as error:
            if lines_of_objects:
                return records, problems, by_line
            return [], [(line, f"not valid JSON: {_json_problem(error)}")], by_line
    return _json_array(text)


def _json_array(text: str) -> tuple[list[tuple[int, Any]], list[tuple[int, str]], RecordPlaces]:
    """(position, value) of each element of the JSON array ``text`` holds (1 for the first),
    read strictly (one comma between elements, none after the last, nothing but white space
    after the array), up to its first syntax error: past it, where the next record starts is
    a guess. Then (position, problem) of that error and how positions are named."""
    from streamrec.events import unique_keys

    decoder = json.JSONDecoder(object_pairs_hook=unique_keys)
    records: list[tuple[int, Any]] = []
    lines: list[int] = []  # each record's line
    one_line = "\n" not in text.strip()

    counted = [0, 1]  # the offset asked last and its line

    def line_at(offset: int) -> int:
        # The offsets asked grow: count the newlines since the last one only (counting from
        # the start for each record took minutes on an array of 80,000 events).
        start, line = counted if offset >= counted[0] else (0, 1)
        counted[:] = [offset, line + text.count("\n", start, offset)]
        return counted[1]

    def skip_space(offset: int) -> int:
        while offset < len(text) and text[offset] in " \t\r\n":
            offset += 1
        return offset

    def done(
        problem: tuple[int, str] | None = None,
    ) -> tuple[list[tuple[int, Any]], list[tuple[int, str]], RecordPlaces]:
        if problem is None:
            return records, [], RecordPlaces(tuple(lines), len(records), one_line)
        line, what = problem
        places = RecordPlaces((*lines, line), len(records), one_line)
        return records, [(len(records) + 1, what)], places

    def stop(offset: int, what: str) -> tuple[list[tuple[int, Any]], list[tuple[int, str]], RecordPlaces]:
        return done((line_at(offset), what))

    def closed(offset: int) -> tuple[list[tuple[int, Any]], list[tuple[int, str]], RecordPlaces]:
        end = skip_space(offset)  # just past the closing ]
        if end < len(text):  # e.g. two files concatenated: the second would be lost
            return stop(end, "text after the array's closing ] (one array per file)")
        return done()

    position = skip_space(text.index("[") + 1)
    if text.startswith("]", position):
        return closed(position + 1)
    while position < len(text):
        start = position
        try:
            value, position = decoder.raw_decode(text, position)
        except ValueError as error:
            reason = f"not valid JSON: {_json_problem(error)} (the rest of the array is not read)"
            return done((getattr(error, "lineno", line_at(start)), reason))
        lines.append(line_at(start))
        records.append((len(lines), value))
        position = skip_space(position)
        if text.startswith("]", position):
            return closed(position + 1)
        if position >= len(text):
            break
        if text[position] != ",":
            return stop(
                position,
                "not valid JSON: a comma or ] expected after a record (the rest of the array is not read)",
            )
        position = skip_space(position + 1)
        if text.startswith("]", position):
            return stop(position, "not valid JSON: a comma before the closing ] (remove it)")
    return stop(position, "the array is not closed")


def _oversized(data: bytes) -> str:
    """Why the ingest would dead-letter ``data`` for its size ("" if it would not)."""
    from streamrec.stream import MAX_RECORD_BYTES, record_size

    size = record_size(base64.b64encode(data))
    if size <= MAX_RECORD_BYTES:
        return ""
    return (
        f"record of {size} bytes is over the ingest's {MAX_RECORD_BYTES}-byte limit "
        "(it would be dead-lettered)"
    )


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


def _decoded_records(text: str, json_lines: bool) -> tuple[Iterator[tuple[int, Any, str]], RecordPlaces]:
    """(position, value, "") of each record of a file's text and (position, None, problem)
    of each undecodable part, and how positions are named: one at a time for JSON lines,
    else as :func:`_catalog_records` reads the whole text (a JSON array, or one object over
    several lines)."""
    if json_lines:
        return _json_line_values(text), RecordPlaces()
    records, problems, places = _catalog_records(text)
    decoded = ((position, value, "") for position, value in records)
    return itertools.chain(decoded, ((position, None, problem) for position, problem in problems)), places


# Input files past this many characters (some 40,000 events) show their checking's progress.
LARGE_INPUT_CHARS = 4_000_000


def _checked_records[T](
    path: Path,
    noun: str,
    verb: str,
    check: Callable[[Any], tuple[Any, dict[str, Any]]],
    keep: Callable[[int, Any, dict[str, Any], bytes], T],
) -> tuple[list[T], RecordPlaces]:
    """What ``keep(position, parsed, sent, data)`` makes of every record of ``path`` (JSON
    lines, a JSON array or one JSON object), and how its positions are named (line numbers,
    or an array's record numbers: :class:`RecordPlaces`): ``check`` parses a decoded record
    (raising InvalidEvent with the reason) and returns it with the record to send, whose
    ``data`` (as put on the stream) must also fit the ingest's size limit. Records are read
    one at a time from JSON lines, so ``keep`` decides what of them stays in memory.
    SystemExit ("nothing <verb>") naming every bad record, or when the file holds none."""
    from streamrec.events import InvalidEvent

    text, json_lines = _read_text(path), _is_json_lines(path)
    if json_lines:
        _refuse_an_array_over_lines(path, text, noun)
    valid: list[T] = []
    problems: list[tuple[int, str]] = []
    decoded, places = _decoded_records(text, json_lines)
    shown = len(text) > LARGE_INPUT_CHARS  # checking 100,000 events takes some 4 s: say so
    count = 0
    for line, record, undecodable in decoded:
        count += 1
        if shown and count % 10_000 == 0:
            _status(f"checking {path}: {count:,} {noun}s read, nothing {verb} yet")
        if undecodable:
            problems.append((line, undecodable))
            continue
        try:
            parsed, sent = check(record)
        except InvalidEvent as error:
            problems.append((line, error.reason))
            continue
        data = record_data(sent)
        too_big = _oversized(data)
        if too_big:
            problems.append((line, too_big))
            continue
        if not problems:  # after the first problem nothing is sent: only problems are gathered
            valid.append(keep(line, parsed, sent, data))
    if shown:
        _status(f"checked {path}: {count:,} {noun}s", done=True)
    # In file order (a syntax error in an array comes after the records before it).
    problems.sort(key=lambda problem: problem[0])
    if problems:
        named = [f"{path} {places(position)}: {reason}" for position, reason in problems]
        raise SystemExit(
            f"error: nothing {verb}; {len(problems)} invalid {noun}(s):\n" + _first_lines(named, 50)
        )
    if not valid:
        raise SystemExit(f"error: nothing {verb}; {path} holds no {noun}s")
    return valid, places


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

    checked, places = _checked_records(path, "record", "loaded", check, keep)
    kept, superseded = latest_per_item(checked)
    return kept, [Superseded(item, places(left_out), places(sent)) for item, left_out, sent in superseded]


def put_catalog_records(
    kinesis: Any, stream: str, records: Sequence[dict[str, Any]], progress: Callable[[int, int], None]
) -> None:
    """PutRecords (partition key = item_id, so one item's records keep their order),
    retrying the records a call reports as failed (see :func:`put_stream_records`)."""
    data, keys = [record_data(r) for r in records], [r["item_id"] for r in records]
    try:
        put_stream_records(kinesis, stream, data, keys, progress)
    except RecordsKeptFailing as failing:
        raise SystemExit(f"error: {failing.describe('record', stream)}; re-run to resend") from None


def _cmd_catalog_recount(args: argparse.Namespace) -> int:
    from streamrec.domain.catalog import recount
    from streamrec.repositories.dynamodb import DynamoCatalogRepository, DynamoTable

    target = _target(args, args.table, "--table", lambda o: o["tables"]["CatalogTable"])
    with target.failures(lambda: "counts corrected before it stopped stay corrected", again="re-run"):
        repository = DynamoCatalogRepository(DynamoTable(target.name, target.client("dynamodb")))
        with _progress_lines(f"reading {target.name}: " + "{:,} rows") as progress:
            tally = repository.stored_counts(progress)
        corrections = recount(tally)
        changed = (
            []
            if args.dry_run or not corrections
            else repository.set_counts([(c.token, c.stored, c.counted) for c in corrections])
        )
    left = set(changed)
    lines = [
        f"{'#catalog (documents)' if c.token is None else c.token}: "
        f"{'none' if c.stored is None else _plain_number(c.stored)} -> {c.counted}"
        for c in corrections
        if ("#catalog" if c.token is None else c.token) not in left
    ]
    verb = "would correct" if args.dry_run else "corrected"
    print(
        f"{verb} {_counted(len(corrections) - len(changed), 'count')} of {target.name} "
        f"({tally.items:,} items, {len(tally.stored_holders):,} posting rows read)"
    )
    if lines:
        print(_first_lines(lines, 50))
    if changed:
        print(
            f"{_counted(len(changed), 'count')} changed while counted, left as they are "
            f"({_named_ids(changed)}): run again once no catalog records are being loaded",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_catalog_load(args: argparse.Namespace) -> int:
    _check_target_flags(args, args.stream, "--stream")
    _check_input_file(args.file)
    # The target first: a large file is not read only to learn that the stack is down.
    target = _target(args, args.stream, "--stream", lambda o: o["event_stream"])
    records, superseded = read_catalog_file(args.file)
    if superseded:
        left_out = [f"item {s.item_id!r}: {s.place} ({s.kept_place} is sent)" for s in superseded]
        print(
            f"{len(superseded)} record(s) of {args.file} left out: a later record of the same item "
            "(a later timestamp, or the same one on a later line) replaces each:\n"
            + _first_lines(left_out, 5),
            file=sys.stderr,
        )
    stream, sent = target.name, 0

    def progress(done: int, total: int) -> None:
        nonlocal sent
        sent = done
        _status(f"sent {done}/{total} records")

    def interrupted() -> str:
        # The ingest keeps each item's latest record, so sending again is safe.
        return f"sent {sent} of {len(records)} records to {stream} before it stopped"

    with target.failures(interrupted, again="re-run to send all"):
        put_catalog_records(target.client("kinesis"), stream, records, progress)
    out = sum(1 for r in records if not r["in_stock"])
    _status(
        f"sent {len(records)} catalog record(s), one per item ({out} out of stock), to {stream}", done=True
    )
    if target.local_stack:
        _status("the terminal of `streamrec run` shows their processing", done=True)
    return 0


# --------------------------------------------------------------------------------------
# streamrec events
# --------------------------------------------------------------------------------------
# What a backfill's backlog is estimated with: the ingest's sustained rate per event-stream
# shard that docs/performance-and-cost.md sizes shards by (~40 events/s measured against a
# local stand-in of DynamoDB, ~35 to be safe; not measured on AWS).
INGEST_EVENTS_PER_SHARD_SECOND = 35.0
# A load is refused (unless --force) when its oldest record would wait longer than this
# share of the stream's retention before the ingest reaches it: past the retention it is lost.
RETENTION_SHARE = 0.8


def _add_events(subparsers: Any) -> None:
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
    _add_target_arguments(load, "--stream")
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

    _, places = _checked_records(path, "event", "sent", check, keep)
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
        f"{len(users):,} events: the ingest of {stream}'s {_counted(shards, 'shard')} takes about "
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
        f"{_counted(len(events), 'event')} of {_counted(users, 'user')} to send, "
        f"{datetime.fromtimestamp(events.times[0], UTC):%Y-%m-%d %H:%M:%S} to "
        f"{datetime.fromtimestamp(events.times[-1], UTC):%Y-%m-%d %H:%M:%S} UTC: "
        + ", ".join(f"{kinds[kind]} {kind}" for kind in sorted(kinds)),
        file=sys.stderr,
    )
    if args.stream is not None:
        target = _target(args, args.stream, "--stream", lambda o: o["event_stream"])
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
    redemptions = _counted(events.kinds.count("coupon_redeemed"), "coupon_redeemed event")
    if not target.local_stack:
        _status(
            f"{redemptions}: each coupon must be defined (`streamrec coupons load --table`) before the "
            "ingest reaches its redemption, or the redemption goes to the dead-letter queue",
            done=True,
        )
        return
    table = json.loads(args.outputs.read_text(encoding="utf-8"))["tables"]["CouponsTable"]
    with target.failures():
        defined = _coupon_repository(Target(table, target.client_kwargs, target.local_stack)).defined(
            coupon_ids
        )
    undefined = [c for c in coupon_ids if c not in defined]
    if undefined:
        _status(
            f"{redemptions}: {_counted(len(undefined), 'coupon')} not defined in the local stack "
            f"({_named_ids(undefined)}): define them (`streamrec coupons load`) before the ingest "
            "reaches their redemptions, or those go to the dead-letter queue (once they are defined, "
            "`streamrec dlq redrive` puts them back)",
            done=True,
        )


def _cmd_events_load(args: argparse.Namespace) -> int:
    _check_target_flags(args, args.stream, "--stream")
    _check_input_file(args.file)
    # The target first (a dry run needs none): a large backfill is not read only to learn
    # that the stack is down.
    target = None if args.dry_run else _target(args, args.stream, "--stream", lambda o: o["event_stream"])
    loaded = read_event_file(args.file)
    if loaded.duplicates:
        left_out = [
            f"{place}: event_id {event_id!r} ({sent} is sent)" for event_id, place, sent in loaded.duplicates
        ]
        print(
            f"{_counted(len(loaded.duplicates), 'event')} of {args.file} left out: an earlier record has "
            "the same user_id and event_id (a duplicate, which the ingest ignores):\n"
            + _first_lines(left_out, 5),
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

    def progress(done: int, total: int) -> None:
        _status(f"sent {done}/{total} events")

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
                kinesis, stream, events.data, events.users, progress, rate=args.rate, accepted=accepted
            )
        except RecordsKeptFailing as failing:
            raise SystemExit(f"error: {failing.describe('event', stream)}; {interrupted()}") from None
    users = len(set(events.users))
    order = " (the file's order differed)" if loaded.reordered else ""
    _status(
        f"sent {_counted(len(events), 'event')} of {_counted(users, 'user')} to {stream}, in timestamp "
        f"order{order}",
        done=True,
    )
    _note_redemptions(events, target, args)
    if target.local_stack:
        _status("the terminal of `streamrec run` shows their processing", done=True)
    return 0


# --------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------
def _installed_version() -> str:
    """The installed package's version; "unknown (not installed)" from a bare source tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("streamrec")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="streamrec", description="streamrec: real-time recommendations")
    parser.add_argument("--version", action="version", version=f"streamrec {_installed_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_run(subparsers)
    _add_faults(subparsers)
    _add_dlq(subparsers)
    _add_coupons(subparsers)
    _add_openapi(subparsers)
    _add_catalog(subparsers)
    _add_events(subparsers)
    add_eval_parser(subparsers)
    add_bench_parser(subparsers)
    return parser


# Exit statuses of a command stopped from outside, as a shell reports them (128 + signal).
INTERRUPTED_STATUS = 130  # Ctrl-C (SIGINT)
BROKEN_PIPE_STATUS = 141  # the reader of its output went away (SIGPIPE), e.g. `| head`


def _chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the command that ``args`` chose, e.g. ``streamrec dlq list``'s."""
    for action in parser._actions:
        chosen = getattr(args, action.dest, None)
        if isinstance(action, argparse._SubParsersAction) and chosen in action.choices:
            return _chosen_parser(action.choices[chosen], args)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be: every command's interruption path runs."""


TERMINATED_STATUS = 143  # SIGTERM (timeout, systemd, a CI cancel)


def _terminated(_signum: int, _frame: Any) -> None:
    raise Terminated


def _silence_stdout() -> None:
    # Python would report the failed flush of stdout at exit: point it at /dev/null.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamrec`` script."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named with the command's own usage line, not the top-level one
        _chosen_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    command: Command = args.func
    # SIGTERM (timeout, systemd, a CI cancel) stops a command as Ctrl-C does, so that a load
    # says where to resume; `run` installs its own handler. Only the main thread may.
    on_term = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if on_term else None
    try:
        return command(args)
    except Terminated:
        _status.end_line()
        print("streamrec: terminated", file=sys.stderr)
        return TERMINATED_STATUS
    except KeyboardInterrupt:
        _status.end_line()
        print("streamrec: interrupted", file=sys.stderr)
        return INTERRUPTED_STATUS
    except BrokenPipeError:
        _silence_stdout()
        return BROKEN_PIPE_STATUS
    except OSError as error:
        # The machine's, not the command's: a full disk under stdout, a file it may not read.
        _status.end_line()
        print(f"streamrec: {error}", file=sys.stderr)
        try:
            sys.stdout.flush()
        except OSError:
            _silence_stdout()
        return 1
    finally:
        if on_term:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
