"""The ``streamrec`` command line.

``streamrec run`` starts the embedded local stack (moto, the template's tables, streams
and queue, the functions polled like Lambda, the HTTP API), loads the demo events and
serves until Ctrl-C. Each subcommand is a module here with one ``add_<name>_parser`` (its
arguments) and its ``_cmd_<name>`` functions (what it does), as ``eval`` and ``bench`` join
from their own packages. What several share: ``target`` (the local stack or AWS),
``inputs`` (reading the files the loads take), ``progress`` (the status line on stderr),
``wording`` and ``exits``.

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
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from streamrec.bench.cli import add_bench_parser
from streamrec.cli import catalog, coupons, dlq, events, faults, openapi, progress, run
from streamrec.cli.exits import BROKEN_PIPE_STATUS, Terminated, said_stopped
from streamrec.evaluation.cli import add_eval_parser

__all__ = ["build_parser", "main"]

Command = Callable[[argparse.Namespace], int]


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
    run.add_run_parser(subparsers)
    faults.add_faults_parser(subparsers)
    dlq.add_dlq_parser(subparsers)
    coupons.add_coupons_parser(subparsers)
    openapi.add_openapi_parser(subparsers)
    catalog.add_catalog_parser(subparsers)
    events.add_events_parser(subparsers)
    add_eval_parser(subparsers)
    add_bench_parser(subparsers)
    return parser


def _chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the command that ``args`` chose, e.g. ``streamrec dlq list``'s."""
    for action in parser._actions:
        chosen = getattr(args, action.dest, None)
        if isinstance(action, argparse._SubParsersAction) and chosen in action.choices:
            return _chosen_parser(action.choices[chosen], args)
    return parser


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
    except KeyboardInterrupt as interruption:  # Ctrl-C, or SIGTERM as Terminated
        return said_stopped(interruption)
    except BrokenPipeError:
        _silence_stdout()
        return BROKEN_PIPE_STATUS
    except OSError as error:
        # The machine's, not the command's: a full disk under stdout, a file it may not read.
        progress.status.end_line()
        print(f"streamrec: {error}", file=sys.stderr)
        try:
            sys.stdout.flush()
        except OSError:
            _silence_stdout()
        return 1
    finally:
        if on_term:
            signal.signal(signal.SIGTERM, previous)
