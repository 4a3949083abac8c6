"""``streamrec run``: the local stack with the HTTP API and the demo data, served until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrec.argtypes import output_file, positive_seconds, whole_number
from streamrec.cli import progress
from streamrec.cli.target import LOCAL_OUTPUTS, accepts_connections, serves_moto
from streamrec.cli.wording import count_noun
from streamrec.kinesis_put import record_data

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


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
    if isinstance(endpoint, str) and accepts_connections(endpoint) and serves_moto(endpoint) is not False:
        raise SystemExit(
            f"error: {outputs_file} belongs to a local stack still running at {endpoint}: stop "
            f"that one, or give this one its own outputs file (--outputs FILE)"
        )


def add_run_parser(subparsers: Any) -> None:
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


def _typed_program() -> str:
    """This program, as the commands printed for the user are to start it."""
    # `python -m streamrec.cli` has the module's file as argv[0].
    if sys.argv[0].endswith(".py"):
        return f"{_as_typed(sys.executable)} -m streamrec.cli"
    return _as_typed(sys.argv[0])


def _outputs_flag(outputs_file: str) -> str:
    """What a printed command needs to reach this stack: a stack started with its own
    --outputs is found only through it (``=``, so that a path starting with - is no flag)."""
    return "" if Path(outputs_file) == LOCAL_OUTPUTS else f" --outputs={shlex.quote(outputs_file)}"


def _examples(outputs: dict[str, Any]) -> str:
    api = outputs["api_url"]
    python = _as_typed(sys.executable)
    program = _typed_program()
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
    outputs_flag = _outputs_flag(outputs["outputs_file"])
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
  {program} catalog load examples/catalog.jsonl{outputs_flag}
  {program} coupons load examples/coupons.json{outputs_flag}
  {program} events load examples/events.jsonl{outputs_flag}

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
    stack: Any,
    stop: threading.Event,
    every: float = 1.0,
    dead_letters: Callable[[], int] = lambda: 0,
    dlq_list: str = "streamrec dlq list",
) -> None:
    """Serve until ``stop`` is set (never, in ``streamrec run``: Ctrl-C ends the wait),
    showing the pipeline's work on what arrives after the demo load (`streamrec catalog
    load`, the shop's producers): a progress line while records are processed or a batch is
    retried, then a summary once the pipeline is quiet again (two quiet checks in a row, as
    ``drain``), naming what reached the dead-letter queue (``dead_letters`` counts it) and
    the command that lists it (``dlq_list``, as it reaches this stack)."""
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
            progress.status(
                # The similarity function works on a batch's changes before the ingest's
                # invocation ends and counts it: "ingested 0" alone would read as a stall.
                f"processing new records... ingested {work.ingested} (a batch counts when it ends), "
                f"{work.recomputed} changed items recomputed{retrying} ({time.monotonic() - started:.0f}s)"
            )
            continue
        letters = (
            f", {count_noun(work.dead_letters, 'dead letter')} ({dlq_list})" if work.dead_letters else ""
        )
        progress.status(
            f"processed {count_noun(work.ingested, 'new record')} "
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

    stack.put_events(events, lambda done, total: progress.status(f"loaded {done}/{total} events"))
    progress.status(f"loaded {len(events)} events", done=True)
    on_stream = len(events) + put_before

    def show(stats: dict[str, Any]) -> None:
        # The ingest's progress against what was put; the similarity function's records are
        # the changed items the ingest announces, a number not known in advance.
        work = PipelineWork.of(stats)
        progress.status(
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
    progress.status(
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
    progress.status(f"loaded {len(records)} demo catalog records", done=True)
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
    progress.status(f"defined {len(loaded)} demo coupons", done=True)
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


class StopSignals:
    """``streamrec run``'s SIGINT / SIGTERM handler. The first signal stops the stack
    (:class:`KeyboardInterrupt`); another one while it stops must not cut the stop short (its
    threads would then keep the process alive), and is told the stop goes on, once the stop
    has been announced: before that it is the same stop asked twice (``kill -TERM`` of
    ``make run``'s process group reaches streamrec once directly and once through make,
    which passes SIGTERM on to its child), and "still stopping" would come first."""

    def __init__(self) -> None:
        self.stopping = False
        self.announced = False

    def __call__(self, _signum: int, _frame: Any) -> None:
        if not self.stopping:
            self.stopping = True
            raise KeyboardInterrupt
        if self.announced:
            progress.status("still stopping (letting invocations in flight finish)...", done=True)

    def announce(self, message: str) -> None:
        """Shows the line that says the stack is stopping."""
        progress.status(message, done=True)
        self.announced = True


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
        progress.status("note: --no-demo loads no demo data; --events and --seed are ignored", done=True)
    _refuse_outputs_of_a_running_stack(args.outputs)
    started = time.monotonic()
    seed = DEFAULT_SEED if args.seed is None else args.seed
    events = [] if args.no_demo else generate_demo_events(args.events, seed=seed)
    stop_signals = StopSignals()
    previous = {number: signal.signal(number, stop_signals) for number in (signal.SIGINT, signal.SIGTERM)}
    local: LocalStack | None = None
    written: dict[str, Any] = {}  # the outputs file as last written, marked stopped at the end
    status = 0
    try:
        progress.status("starting the local stack...")
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
                progress.status(
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
                progress.status(f"ready in {time.monotonic() - started:.1f}s", done=True)
                print(_examples(outputs), flush=True)
                # Serve until Ctrl-C / SIGTERM.
                from streamrec.reliability.dlq import message_count

                sqs, queue_url = stack.client("sqs"), outputs["dead_letter_queue_url"]
                _follow(
                    stack,
                    threading.Event(),
                    dead_letters=lambda: message_count(sqs, queue_url),
                    dlq_list=f"{_typed_program()} dlq list{_outputs_flag(str(args.outputs))}",
                )
            except KeyboardInterrupt:
                stop_signals.announce("stopping (letting invocations in flight finish)...")
    except KeyboardInterrupt:
        stop_signals.announce("interrupted")
    except (LocalStackError, TemplateError, HttpApiError) as error:
        hint = " (--cors-origins)" if "parameter CorsAllowOrigins=" in str(error) else ""
        progress.status(f"error: {error}{hint}", done=True)
        status = 1
    except BrokenPipeError:
        raise  # `streamrec run | head`: main ends it quietly
    except OSError as error:  # the machine's (a full disk): one line, as main says it
        progress.status(f"error: {error}", done=True)
        status = 1
    except Exception:  # a bug: its traceback, then the exit below all the same
        progress.status.end_line()
        traceback.print_exc()
        status = 1
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if written:  # a script polling `ready` must not act on a stopped stack (also after an error)
            try:
                _write_outputs(args.outputs, {**written, "ready": False, "stopped": True})
            except LocalStackError as error:  # never in place of the error in flight, if any
                progress.status(f"note: {error}: it still says the stack runs", done=True)
    if status == 0:
        progress.status("stopped", done=True)
    if local is not None and local.abandoned:
        # An invocation that outlived the wait now retries against a stopped moto: Python
        # would wait for its threads at exit (it joins thread pools' threads, daemon or
        # not), a minute after "stopped" or an error. Its data lived in memory only.
        progress.status(
            f"left the invocations still in flight behind ({', '.join(local.abandoned)})", done=True
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
