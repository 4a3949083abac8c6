"""argparse types shared by the ``streamrec`` commands: a bad value is argparse's one-line
usage error, before any work starts."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``minimum`` (to ``maximum``)."""
    bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum:,}"
    expected = f"a whole number >= {minimum}" if maximum is None else f"a whole number {bounds}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def positive_number(what: str) -> Callable[[str], float]:
    """An argparse type: a finite number above 0, ``what`` naming it in errors ("a number of
    seconds")."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"must be {what} above 0, got {text}")
        return value

    return parse


positive_seconds = positive_number("a number of seconds")
positive_rate = positive_number("a number per second")  # e.g. events per second


def output_file(text: str) -> Path:
    """An argparse type: a file to write (its folders are created when written), not a folder."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; name a file")
    return path
