"""How the commands word counts and lists in their messages."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal


def first_lines(lines: Sequence[str], shown: int) -> str:
    """The first ``shown`` lines, indented, then "... and N more" for the rest."""
    more = [f"... and {len(lines) - shown} more"] if len(lines) > shown else []
    return "\n".join(f"  {line}" for line in [*lines[:shown], *more])


def named_ids(ids: Sequence[str], shown: int = 10) -> str:
    """The first ``shown`` ids, comma-separated, then "and N more"."""
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more


def count_noun(n: int, noun: str) -> str:
    """``1 record``, ``2 records``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def plain_number(value: float) -> str:
    """A number as written, without an exponent or a trailing ".0" (1234567.5, 10, 0.000001)."""
    text = format(Decimal(repr(float(value))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
