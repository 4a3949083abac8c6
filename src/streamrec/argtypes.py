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


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return value


def positive_rate(text: str) -> float:
    """An argparse type: a finite number per second above 0 (e.g. events per second)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number per second, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number per second above 0, got {text}")
    return value


def output_file(text: str) -> Path:
    """An argparse type: a file to write (its folders are created when written), not a folder."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; name a file")
    return path
