"""Independent calls made a few at a time: DynamoDB round trips that do not depend on each
other (chunks of a batch read or write, guarded row writes, list merges)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def concurrently(work: Callable[[Any], Any], items: Sequence[Any], workers: int) -> list[Any]:
    """``work(item)`` for each item, up to ``workers`` at a time (one item, or ``workers``
    of 1, in this thread); the results in order. Every item is attempted: the first failure
    (in item order) is raised once every call has ended."""
    if workers <= 1 or len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        # Each call in a copy of the caller's context: its log lines carry the caller's keys
        # (a batch's shard and sequence numbers: stream.process_batch).
        futures = [pool.submit(contextvars.copy_context().run, work, item) for item in items]
        return [future.result() for future in futures]
