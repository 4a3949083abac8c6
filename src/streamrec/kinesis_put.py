"""Putting records on a Kinesis stream so that each partition key's records arrive in
their order, within PutRecords's limits, retrying the records a call refuses: shared by the
commands that load a shop's data (``events load``, ``catalog load``) and by ``dlq redrive``."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from typing import Any

from streamrec.events import text_json

PUT_RECORDS_MAX = 500  # records per PutRecords call
# Bytes per PutRecords call, data and partition keys together (5 MiB): 500 records of the
# ingest's 16 KiB limit would be 8 MiB, which Kinesis refuses whole.
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024


def record_data(record: Any) -> bytes:
    """A record (catalog record or user event) as it is put on the stream: compact UTF-8
    JSON with non-ASCII text as itself (an escape such as ``\\u30ad`` takes 6 bytes a character, 12 for
    an emoji, where UTF-8 takes 2-4: a Japanese catalog record was twice its size, and one
    the ingest takes could be refused by the load's size check); a lone surrogate, which
    UTF-8 cannot carry, is escaped (the ingest then reads it as JSON sent it)."""
    return text_json(record, separators=(",", ":")).encode()


class RecordsKeptFailing(Exception):
    """PutRecords kept refusing ``count`` records of a call after every retry, with these
    error codes (ProvisionedThroughputExceededException: a shard's write limit)."""

    def __init__(self, count: int, codes: Sequence[str]) -> None:
        super().__init__(f"{count} records kept failing ({', '.join(codes)})")
        self.count = count
        self.codes = sorted(set(codes))

    def describe(self, noun: str, stream: str) -> str:
        throttled = "ProvisionedThroughputExceededException" in self.codes
        counted = f"{self.count} {noun}" + ("" if self.count == 1 else "s")
        return (
            f"{counted} kept failing on {stream} ({', '.join(self.codes)}"
            + ("; throttled: pace the load with --rate" if throttled else "")
            + ")"
        )


PUT_ATTEMPTS = 8  # per call, with backoff from 0.1 s to 2 s: some 7 s in all
# How many of one partition key's records a load may have put past its first record not yet
# taken (the resume point): fewer than the ingest's duplicate window (a user's last 100 event
# ids, Settings.recent_event_ids_kept), so that those sent again on resuming are all ignored.
AHEAD_PER_KEY = 99


class _Calls:
    """The PutRecords calls of a load, in turn: each holds the earliest record not yet taken
    of up to ``most`` keys, the keys whose earliest is earliest first, and never two records
    of one key, so that a refused record, sent again before the next call, still reaches
    its shard before its key's next one. A key is left out of a call while AHEAD_PER_KEY of
    its records are taken past the earliest record of all not yet taken (``first``)."""

    def __init__(self, keys: Sequence[str], sizes: Sequence[int], taken: list[bool] | None = None) -> None:
        self.sizes = sizes  # each record's bytes, data and partition key
        self.positions: dict[str, list[int]] = {}
        for index, key in enumerate(keys):
            self.positions.setdefault(key, []).append(index)
        self.taken_of = dict.fromkeys(self.positions, 0)  # each key's records taken: a prefix
        self.taken = taken if taken is not None else [False] * len(keys)  # by index
        self.count = 0  # records taken
        self.first = 0  # the earliest record not yet taken
        self.waiting = [(indices[0], key) for key, indices in self.positions.items()]
        heapq.heapify(self.waiting)
        self.parked: list[tuple[int, int, str]] = []  # (freed once first passes it, index, key)

    def next(self, most: int) -> list[int]:
        """The next call's records: at most ``most``, and of at most PUT_RECORDS_MAX_BYTES
        together (a call holds one record at least)."""
        # A key held back waits in ``parked`` until ``first`` passes the index that frees it,
        # instead of being looked at again by every call.
        while self.parked and self.parked[0][0] < self.first:
            _, index, key = heapq.heappop(self.parked)
            heapq.heappush(self.waiting, (index, key))
        call: list[int] = []
        size = 0
        while self.waiting and len(call) < most:
            index, key = heapq.heappop(self.waiting)
            taken = self.taken_of[key]
            # Its records taken at or past ``first`` number AHEAD_PER_KEY when the one taken
            # AHEAD_PER_KEY before its latest is still at or past ``first``.
            if taken >= AHEAD_PER_KEY and self.positions[key][taken - AHEAD_PER_KEY] >= self.first:
                heapq.heappush(self.parked, (self.positions[key][taken - AHEAD_PER_KEY], index, key))
                continue
            if call and size + self.sizes[index] > PUT_RECORDS_MAX_BYTES:
                heapq.heappush(self.waiting, (index, key))  # first in the next call
                break
            call.append(index)
            size += self.sizes[index]
        return sorted(call)

    def took(self, index: int, key: str) -> None:
        self.taken[index] = True
        self.count += 1
        self.taken_of[key] += 1
        if self.taken_of[key] < len(self.positions[key]):
            heapq.heappush(self.waiting, (self.positions[key][self.taken_of[key]], key))
        while self.first < len(self.taken) and self.taken[self.first]:
            self.first += 1


def put_stream_records(
    kinesis: Any,
    stream: str,
    data: Sequence[bytes],
    keys: Sequence[str],
    progress: Callable[[int, int], None],
    *,
    rate: float | None = None,
    accepted: list[bool] | None = None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> None:
    """PutRecords of the records ``data`` (partition keys ``keys``), in calls of at most
    PUT_RECORDS_MAX records and PUT_RECORDS_MAX_BYTES, so that each key's records reach the
    stream in their order (see :class:`_Calls`), retrying the records a call
    reports as failed (a shard's write limit: throttled) up to PUT_ATTEMPTS times before
    the next call, then :class:`RecordsKeptFailing`. When it stops, the entries taken are
    all those before the first one not taken and, past it, at most AHEAD_PER_KEY of each
    key, the key's first ones there.

    ``rate``: at most that many records per second (calls of at most a second's worth).
    ``accepted``: one flag per record, set as the stream takes it, so that a caller stopped
    midway knows which were sent. ``sleep`` and ``clock``: time.sleep and time.monotonic
    unless given (looked up at each call, so that tests can stand in for them)."""
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    most = PUT_RECORDS_MAX if rate is None else max(1, min(PUT_RECORDS_MAX, int(rate)))
    sizes = [len(record) + len(key.encode()) for record, key in zip(data, keys, strict=True)]
    calls = _Calls(keys, sizes, accepted)
    started, sent = clock(), 0
    while calls.first < len(data):
        if rate is not None:
            wait = started + sent / rate - clock()
            if wait > 0:
                sleep(wait)
        pending = calls.next(most)
        sent += len(pending)
        for attempt in range(PUT_ATTEMPTS):
            records = [{"Data": data[i], "PartitionKey": keys[i]} for i in pending]
            response = kinesis.put_records(StreamName=stream, Records=records)
            failed, codes = [], []
            for index, result in zip(pending, response["Records"], strict=True):
                if "ErrorCode" in result:
                    failed.append(index)
                    codes.append(str(result["ErrorCode"]))
                else:
                    calls.took(index, keys[index])  # sets accepted[index]
            pending = failed
            if not pending:
                break
            sleep(min(0.1 * 2**attempt, 2.0))
        else:
            raise RecordsKeptFailing(len(pending), codes)
        progress(calls.count, len(data))
