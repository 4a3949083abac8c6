"""Tests that stamp events in the current clock hour and then let the code read the clock
itself: if an hour ends in between, the events fall in the previous hour's bucket, which
the 1h window holds only in part, and exact counts come out a little lower."""

from __future__ import annotations

import time


def clear_of_the_hours_end(margin_seconds: float) -> float:
    """The time now, after sleeping into the next hour when fewer than ``margin_seconds``
    (what the test may take, on a slow machine) are left of the current one."""
    now = time.time()
    left = 3600 - now % 3600
    if left < margin_seconds:
        time.sleep(left + 1)
        now = time.time()
    return now
