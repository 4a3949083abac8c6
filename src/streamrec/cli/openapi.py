"""``streamrec openapi``: print or write the HTTP API's OpenAPI document."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OPENAPI_DOCUMENT = "docs/openapi.json"  # the committed copy, in the project's folder


def add_openapi_parser(subparsers: Any) -> None:
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
        args.output = Path(__file__).resolve().parents[3] / OPENAPI_DOCUMENT  # src/streamrec/cli/openapi.py
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
