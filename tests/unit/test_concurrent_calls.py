"""Independent DynamoDB calls are made concurrently: the chunks of a large BatchGetItem or
BatchWriteItem, and the similarity function's popular-list merges. What is read and written
must not change: every key once, unprocessed ones retried, the same lists."""

from __future__ import annotations

import threading
import time

import pytest

from streamrec.domain.model import (
    POPULAR_CATEGORIES_ROW,
    POPULAR_ROW,
    PopularList,
    category_buys_row,
    category_row,
)
from streamrec.domain.similarity import SimilarityService
from streamrec.repositories.base import RepositoryError
from streamrec.repositories.dynamodb import DynamoTable
from streamrec.repositories.memory import (
    InMemoryCooccurrenceRepository,
    InMemoryItemStatsRepository,
    InMemorySimilarityRepository,
)
from streamrec.settings import load_settings

CALL_SECONDS = 0.02
GATHER_SECONDS = 10.0  # how long a gathered call waits for the others before going on alone


class InFlight:
    """Counts calls in flight at once (each takes CALL_SECONDS).

    The first ``gather`` calls wait, up to GATHER_SECONDS, until ``gather`` calls are in
    flight together: on a busy machine a thread may start after another thread's call has
    ended, so concurrent code is not seen as concurrent by timing alone. Serial code
    still shows ``most == 1``: its first call waits alone and goes on."""

    def __init__(self, gather: int = 1) -> None:
        self.now = 0
        self.most = 0
        self.calls = 0
        self.gather = gather
        self._changed = threading.Condition()

    def __enter__(self) -> None:
        with self._changed:
            self.now += 1
            self.calls += 1
            self.most = max(self.most, self.now)
            self._changed.notify_all()
            gathered = self.calls > self.gather or self._changed.wait_for(
                lambda: self.most >= self.gather, GATHER_SECONDS
            )
            if not gathered:
                self.gather = 0  # the calls are not concurrent: the rest need not wait

    def __exit__(self, *_: object) -> None:
        time.sleep(CALL_SECONDS)
        with self._changed:
            self.now -= 1


class SlowTable:
    """A DynamoDB client for one table keyed by ``item_id``: each call takes CALL_SECONDS;
    each request's first ``unprocessed`` keys or items are handed back once, unprocessed;
    the ``stuck`` key every time."""

    def __init__(self, name: str, unprocessed: int = 0, stuck: str = "", gather: int = 1) -> None:
        self.name = name
        self.items: dict[str, dict] = {}
        self.unprocessed = unprocessed
        self.stuck = stuck
        self.deferred: set[str] = set()  # keys already handed back once
        self.in_flight = InFlight(gather)
        self.requested: list[str] = []
        self._lock = threading.Lock()

    def _defer(self, keys: list[str]) -> set[str]:
        with self._lock:
            fresh = [key for key in keys if key not in self.deferred][: self.unprocessed]
            self.deferred.update(fresh)
            return set(fresh) | ({self.stuck} & set(keys))

    def batch_get_item(self, RequestItems: dict, **_: object) -> dict:
        with self.in_flight:
            keys = [key["item_id"]["S"] for key in RequestItems[self.name]["Keys"]]
            assert len(keys) <= 100 and len(set(keys)) == len(keys)
            deferred = self._defer(keys)
            with self._lock:
                self.requested.extend(key for key in keys if key not in deferred)
            found = [self.items[key] for key in keys if key not in deferred and key in self.items]
            again = [{"item_id": {"S": key}} for key in keys if key in deferred]
            return {
                "Responses": {self.name: found},
                "UnprocessedKeys": {self.name: {"Keys": again}} if again else {},
            }

    def batch_write_item(self, RequestItems: dict, **_: object) -> dict:
        with self.in_flight:
            puts = [request["PutRequest"]["Item"] for request in RequestItems[self.name]]
            assert len(puts) <= 25
            deferred = self._defer([item["item_id"]["S"] for item in puts])
            with self._lock:
                for item in puts:
                    if item["item_id"]["S"] not in deferred:
                        assert item["item_id"]["S"] not in self.items, "written twice"
                        self.items[item["item_id"]["S"]] = item
            again = [{"PutRequest": {"Item": i}} for i in puts if i["item_id"]["S"] in deferred]
            return {"UnprocessedItems": {self.name: again} if again else {}}


def _key(n: int) -> dict:
    return {"item_id": {"S": f"i{n:04d}"}}


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch):
    monkeypatch.setattr("streamrec.repositories.dynamodb._backoff", lambda attempt: None)


def test_a_large_read_reads_its_chunks_concurrently_and_every_key_once():
    client = SlowTable("t", unprocessed=7, gather=2)
    client.items = {f"i{n:04d}": {**_key(n), "v": {"N": str(n)}} for n in range(0, 450, 2)}
    found = DynamoTable("t", client).batch_get([_key(n) for n in range(450)])
    assert sorted(item["item_id"]["S"] for item in found) == sorted(client.items)
    assert sorted(client.requested) == [f"i{n:04d}" for n in range(450)]  # each key read once
    assert client.in_flight.calls == 10  # 5 chunks, each with one retry of its unprocessed keys
    assert client.in_flight.most > 1


def test_a_read_failing_in_one_chunk_fails_whole():
    client = SlowTable("t", stuck="i0150")
    with pytest.raises(RepositoryError, match="unprocessed"):
        DynamoTable("t", client).batch_get([_key(n) for n in range(300)])


def test_a_large_write_writes_its_chunks_concurrently_and_every_item_once():
    client = SlowTable("t", unprocessed=3, gather=2)
    DynamoTable("t", client).batch_put([{**_key(n), "v": {"N": str(n)}} for n in range(110)])
    assert sorted(client.items) == [f"i{n:04d}" for n in range(110)]
    assert client.in_flight.most > 1


class SlowLists(InMemorySimilarityRepository):
    """Popular lists whose writes take CALL_SECONDS, in flight counted; reads counted."""

    def __init__(self, gather: int) -> None:
        super().__init__()
        self.in_flight = InFlight(gather)
        self.reads = 0

    def get_many(self, item_ids, lists=(), consistent=False, row_lists=None):
        self.reads += 1
        rows, _ = super().get_many(item_ids, (), consistent, row_lists)
        return rows, {name: super(SlowLists, self).get_list(name) for name in lists}

    def get_list(self, name):
        self.reads += 1
        return super().get_list(name)

    def put_list(self, name, popular):
        with self.in_flight:
            super().put_list(name, popular)


def _service(concurrency: int) -> SimilarityService:
    stats = InMemoryItemStatsRepository()
    epoch = 20_000  # the stats rows' attributes: weight, category, popularity by epoch
    for n in range(12):
        stats.rows[f"i{n}"] = {"w": 1.0 + n, "category": f"c{n % 4}", f"p:{epoch}": 1.0 + n}
    for c in range(4):
        stats.rows[category_buys_row(f"c{c}")] = {f"p:{epoch}": 2.0 + c}
    return SimilarityService(
        load_settings(),
        InMemoryCooccurrenceRepository(),
        stats,
        SlowLists(gather=6 if concurrency > 1 else 1),  # six lists to merge
        concurrency=concurrency,
    )


def test_popular_lists_are_merged_concurrently_into_the_same_lists():
    lists = [POPULAR_ROW, POPULAR_CATEGORIES_ROW, *(category_row(f"c{c}") for c in range(4))]
    results = {}
    for concurrency in (1, 8):
        service = _service(concurrency)
        service.update_popular_lists([f"i{n}" for n in range(12)])
        repository = service.similarity
        assert isinstance(repository, SlowLists)
        assert repository.reads == 1  # every list read for update at once
        results[concurrency] = {name: repository.get_list(name).items for name in lists}
        assert repository.in_flight.most == (1 if concurrency == 1 else 6)
    assert results[1] == results[8]
    assert [item for item, _ in results[8][category_row("c1")]] == ["i9", "i5", "i1"]
    assert [category for category, _ in results[8][POPULAR_CATEGORIES_ROW]] == ["c3", "c2", "c1", "c0"]


def test_a_request_refused_for_a_transaction_in_flight_is_retried():
    from botocore.exceptions import ClientError

    class Conflicted:
        def __init__(self) -> None:
            self.attempts = 0

        def update_item(self, **_: object) -> dict:
            self.attempts += 1
            if self.attempts <= 2:
                raise ClientError(
                    {"Error": {"Code": "TransactionConflictException", "Message": "in a transaction"}},
                    "UpdateItem",
                )
            return {"Attributes": {}}

    client = Conflicted()
    assert DynamoTable("t", client).call("update_item", Key={}) == {"Attributes": {}}
    assert client.attempts == 3
    client.attempts = -10  # never succeeds within the retries: the error is named
    with pytest.raises(RepositoryError, match="update_item on t failed: TransactionConflictException"):
        DynamoTable("t", client).call("update_item", Key={})


def test_a_failing_row_does_not_stop_the_others_being_written():
    # The guarded count writes of a batch: a failure is raised, but every row is attempted
    # first (a retry then finds the rest written; a dead-lettered batch left less undone).
    client = SlowTable("t")
    written = []

    def apply_guarded(key, deltas, shard, attribute_name, strings, make_room, budget_units):
        if key == _key(0):
            raise RepositoryError("UpdateItem on t failed: ValidationException")
        written.append(key["item_id"]["S"])

    table = DynamoTable("t", client)
    table.apply_guarded = apply_guarded  # type: ignore[method-assign]
    with pytest.raises(RepositoryError, match="ValidationException"):
        table.apply_guarded_many([(_key(n), [], {}) for n in range(40)], "s0")
    assert sorted(written) == [f"i{n:04d}" for n in range(1, 40)]


class RacedLists(InMemorySimilarityRepository):
    """Another writer updates every list just after the batch read of the lists."""

    def get_many(self, item_ids, lists=(), consistent=False, row_lists=None):
        rows, found = super().get_many(item_ids, lists, consistent, row_lists)
        for name in lists:
            current = self.get_list(name)
            self.put_list(
                name, PopularList([("other-writer", 1e9), *current.items], current.version, current.epoch)
            )
        return rows, found


def test_a_list_changed_after_the_batch_read_is_read_again_not_overwritten():
    service = _service(8)
    service.similarity = RacedLists()
    service.update_popular_lists([f"i{n}" for n in range(12)])
    for name in (POPULAR_ROW, category_row("c1")):
        items = [item for item, _ in service.similarity.get_list(name).items]
        assert "other-writer" in items and "i9" in items  # both writes kept
