"""The ``streamrec`` command line.

``streamrec run`` starts the embedded local stack (moto, the template's tables, streams
and queue, the functions polled like Lambda, the HTTP API), loads the demo events and
serves until Ctrl-C. Each subcommand is one ``_add_<name>`` (its arguments) and one
``_cmd_<name>`` (what it does), so that ``eval`` and ``bench`` can join ``run``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _status(text: str, *, done: bool = False) -> None:
    """A progress line on stderr, rewritten in place."""
    sys.stderr.write("\r\033[K" + text + ("\n" if done else ""))
    sys.stderr.flush()


# --------------------------------------------------------------------------------------
# streamrec run
# --------------------------------------------------------------------------------------
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
    run.add_argument("--port", type=int, default=3000, help="HTTP API port (default 3000)")
    run.add_argument("--moto-port", type=int, default=0, help="moto server port (default: any free port)")
    run.add_argument("--events", type=int, default=6000, help="demo events to load (default 6000)")
    run.add_argument("--seed", type=int, default=None, help="demo generator seed (default: the fixed seed)")
    run.add_argument("--no-demo", action="store_true", help="start empty, load no demo events")
    run.add_argument("--template", type=Path, default=None, help="SAM template (default ./template.yaml)")
    run.add_argument("--outputs", type=Path, default=Path(".local/outputs.json"),
                     help="where to write the stack's outputs (default .local/outputs.json)")
    run.add_argument("--drain-timeout", type=float, default=600.0,
                     help="seconds to wait for the demo data to be processed (default 600)")
    run.add_argument("--function-log-level", choices=_LOG_LEVELS, default="WARNING",
                     help="POWERTOOLS_LOG_LEVEL of the functions (default WARNING)")
    run.add_argument("-v", "--verbose", action="store_true", help="log the local stack's own activity")
    run.set_defaults(func=_cmd_run)


def _examples(outputs: dict[str, Any]) -> str:
    api = outputs["api_url"]
    users = outputs.get("demo_users") or ["user-0001"]
    items = outputs.get("demo_items") or ["espresso-machine"]
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
  curl -s '{api}/users/someone-new/recommendations?k=5'     # no history: popular items

Demo users with history: {", ".join(users)}

Put your own events (any producer; partition key = user_id):
  python - <<'EOF'
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

Ctrl-C stops everything (the data lives in memory only).
"""


def _load(stack: Any, events: list[dict[str, Any]], drain_timeout: float, started: float) -> None:
    """Put the demo events on the stream and wait until the pipeline has processed them."""
    stack.put_events(events, lambda done, total: _status(f"loaded {done}/{total} events"))
    _status(f"loaded {len(events)} events", done=True)

    def show(stats: dict[str, Any]) -> None:
        batches = sum(s.batches for s in stats.values())
        records = sum(s.records for s in stats.values())
        _status(f"processing... {batches} batches, {records} records ({time.monotonic() - started:.0f}s)")

    stack.drain(timeout=drain_timeout, progress=show)
    stats = stack.stats()
    failures = sum(s.failures for s in stats.values())
    _status(
        f"processed {sum(s.records for s in stats.values())} records in "
        f"{sum(s.batches for s in stats.values())} batches"
        + (f", {failures} batches sent to the dead-letter queue" if failures else ""),
        done=True,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from streamrec.local.demo import DEFAULT_SEED, demo_items, demo_users, generate_demo_events
    from streamrec.local.http_api import HttpApiError
    from streamrec.local.stack import LocalStack, LocalStackError
    from streamrec.local.template import TemplateError

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    started = time.monotonic()
    seed = DEFAULT_SEED if args.seed is None else args.seed
    events = [] if args.no_demo else generate_demo_events(max(0, args.events), seed=seed)

    def on_sigterm(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        _status("starting the local stack...")
        with LocalStack(
            args.template,
            moto_port=args.moto_port,
            http_port=args.port,
            env_overrides={"POWERTOOLS_LOG_LEVEL": args.function_log_level},
        ) as stack:
            try:
                _status(f"local stack up in {time.monotonic() - started:.1f}s", done=True)
                if events:
                    _load(stack, events, args.drain_timeout, started)
                outputs = stack.outputs()
                outputs["demo_users"] = demo_users(3, events) if events else []
                outputs["demo_items"] = demo_items(3, events) if events else []
                outputs["outputs_file"] = str(args.outputs)
                args.outputs.parent.mkdir(parents=True, exist_ok=True)
                args.outputs.write_text(json.dumps(outputs, indent=2) + "\n", encoding="utf-8")
                _status(f"ready in {time.monotonic() - started:.1f}s", done=True)
                print(_examples(outputs), flush=True)
                threading.Event().wait()  # serve until Ctrl-C / SIGTERM
            except KeyboardInterrupt:
                _status("stopping (letting invocations in flight finish)...", done=True)
    except KeyboardInterrupt:
        _status("interrupted", done=True)
    except (LocalStackError, TemplateError, HttpApiError) as error:
        _status(f"error: {error}", done=True)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    _status("stopped", done=True)
    return 0


# --------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="streamrec", description="streamrec: real-time recommendations")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_run(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamrec`` script."""
    args = build_parser().parse_args(argv)
    command: Command = args.func
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
