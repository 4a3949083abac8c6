"""The warm-container cache: TTL with an injected clock, size bound, hit/miss counts."""

from __future__ import annotations

import pytest

from streamrec.domain.model import POPULAR_ROW, Neighbour, PopularList, SimilarityRow
from streamrec.repositories.cache import (
    CacheConfig,
    CachingSimilarityRepository,
    TtlLruCache,
    cache_config,
    cached_similarity,
)
from streamrec.repositories.memory import InMemorySimilarityRepository
from streamrec.settings import ConfigurationError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingRepository(InMemorySimilarityRepository):
    """In-memory similarity rows that count get_many calls (round trips)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_many(self, item_ids, lists=(), consistent=False, row_lists=None):
        self.reads += 1
        return super().get_many(item_ids, lists, consistent, row_lists)


def _row(item: str, *neighbours: str) -> SimilarityRow:
    return SimilarityRow(item, [Neighbour(n, 0.5) for n in neighbours])


@pytest.fixture
def setup():
    clock = Clock()
    inner = CountingRepository()
    inner.put_rows([_row("a", "b"), _row("b", "a")])
    inner.put_list(POPULAR_ROW, PopularList([("a", 3.0)]))
    cache = CachingSimilarityRepository(inner, CacheConfig(ttl_seconds=10, max_entries=100), clock=clock)
    return clock, inner, cache


def test_hits_within_ttl_cost_no_read(setup):
    clock, inner, cache = setup
    rows, lists = cache.get_many(["a", "b"], [POPULAR_ROW])
    assert set(rows) == {"a", "b"} and lists[POPULAR_ROW].items == [("a", 3.0)]
    assert inner.reads == 1 and cache.stats.misses == 3 and cache.stats.hits == 0
    clock.now += 9.9
    rows, lists = cache.get_many(["a", "b"], [POPULAR_ROW])
    assert inner.reads == 1 and cache.stats.hits == 3
    assert rows["a"].neighbours[0].item_id == "b"


def test_rows_read_for_some_lists_are_read_through_and_never_kept(setup):
    clock, inner, cache = setup
    cache.get_many(["a"], row_lists=("neighbours",))
    cache.get_many(["a"], row_lists=("neighbours",))
    assert inner.reads == 2 and cache.stats.misses == 0  # not looked up, not stored
    cache.get_many(["a"])
    assert inner.reads == 3 and cache.stats.misses == 1


def test_no_stale_data_beyond_ttl(setup):
    clock, inner, cache = setup
    cache.get_many(["a"], [POPULAR_ROW])
    inner.put_rows([_row("a", "c")])  # written by the similarity function, not through the cache
    inner.put_list(POPULAR_ROW, PopularList([("c", 9.0)], version=1))
    clock.now += 5
    assert cache.get_many(["a"])[0]["a"].neighbours[0].item_id == "b"  # within TTL: the cached row
    clock.now += 5  # exactly the TTL: expired
    rows, lists = cache.get_many(["a"], [POPULAR_ROW])
    assert rows["a"].neighbours[0].item_id == "c"
    assert lists[POPULAR_ROW].items == [("c", 9.0)]
    assert cache.stats.expirations == 2 and inner.reads == 2


def test_only_misses_are_fetched_in_one_read(setup):
    clock, inner, cache = setup
    cache.get_many(["a"])
    reads = inner.reads
    rows, _ = cache.get_many(["a", "b", "unseen"], [POPULAR_ROW])
    assert inner.reads == reads + 1  # one batch for b, unseen and the list
    assert set(rows) == {"a", "b"}
    cache.get_many(["unseen"])  # a missing row is remembered as missing too
    assert inner.reads == reads + 1


def test_size_bound_evicts_least_recently_used():
    clock = Clock()
    cache: TtlLruCache[int] = TtlLruCache(ttl=60, max_entries=2, clock=clock)
    cache.put("x", 1)
    cache.put("y", 2)
    assert cache.get("x") == 1  # x is now the most recently used
    cache.put("z", 3)
    assert len(cache) == 2 and cache.stats.evictions == 1
    assert cache.get("y") is None and cache.get("x") == 1 and cache.get("z") == 3
    assert cache.stats.hits == 3 and cache.stats.misses == 1
    assert cache.stats.hit_rate == pytest.approx(0.75)


def test_the_listed_entries_bound_the_cache_as_well_as_its_rows():
    # 5,000 rows of NeighboursPerItem 500 took 655 MB, past the API function's 512: rows are
    # also bounded by what they list, in a budget drawn from the function's memory.
    clock = Clock()
    cache: TtlLruCache[list[int]] = TtlLruCache(
        ttl=60, max_entries=100, clock=clock, max_weight=10, weigh=len
    )
    cache.put("a", [0] * 4)
    cache.put("b", [0] * 4)
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("c", [0] * 4)  # 12 > 10: b, the least recently used, goes
    assert cache.get("b") is None and cache.weight == 8
    cache.put("a", [0] * 1)  # replacing an entry replaces its weight
    assert cache.weight == 5
    cache.put("huge", [0] * 11)  # alone over the budget: not kept, and nothing evicted for it
    assert cache.weight == 5 and len(cache) == 2 and cache.get("huge") is None
    # Rows weigh what they list; the budget follows the function's memory.
    config = cache_config({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"})
    assert config.max_listed == 2 * cache_config({}).max_listed == 2 * CacheConfig().max_listed
    repository = CachingSimilarityRepository(
        InMemorySimilarityRepository(),
        CacheConfig(ttl_seconds=10, max_entries=100, max_listed=25),
        clock=clock,
    )
    repository.inner.put_rows([_row(f"i{n}", *[f"n{j}" for j in range(9)]) for n in range(3)])
    repository.get_many(["i0", "i1", "i2"])  # 10 listed each (the row and its 9), 20 for rows
    assert len(repository.rows) == 2 and repository.rows.weight == 20


def test_cached_values_are_copies(setup):
    _clock, _inner, cache = setup
    rows, _ = cache.get_many(["a"])
    rows["a"].neighbours.clear()
    assert cache.get_many(["a"])[0]["a"].neighbours


def test_writes_through_drop_the_entry(setup):
    _clock, inner, cache = setup
    cache.get_many(["a"])
    cache.put_rows([_row("a", "z")])
    assert cache.get_many(["a"])[0]["a"].neighbours[0].item_id == "z"
    popular = cache.get_list(POPULAR_ROW)
    cache.get_many([], [POPULAR_ROW])
    cache.put_list(POPULAR_ROW, PopularList([("z", 1.0)], popular.version))
    assert cache.get_many([], [POPULAR_ROW])[1][POPULAR_ROW].items == [("z", 1.0)]


def test_configuration_from_environment():
    assert cache_config({}) == CacheConfig()
    config = cache_config({"API_CACHE_TTL_SECONDS": "5", "API_CACHE_MAX_ENTRIES": "10"})
    assert config == CacheConfig(5.0, 10)
    with pytest.raises(ConfigurationError):
        cache_config({"API_CACHE_TTL_SECONDS": "soon"})
    with pytest.raises(ConfigurationError):
        cache_config({"API_CACHE_MAX_ENTRIES": "-1"})
    for never_fresh_or_off in ("inf", "nan", "-1"):
        with pytest.raises(ConfigurationError, match=f"API_CACHE_TTL_SECONDS={float(never_fresh_or_off)}"):
            cache_config({"API_CACHE_TTL_SECONDS": never_fresh_or_off})
    inner = InMemorySimilarityRepository()
    assert cached_similarity(inner, cache_config({"API_CACHE_TTL_SECONDS": "0"})) is inner
    assert isinstance(cached_similarity(inner, config), CachingSimilarityRepository)


def test_api_wiring_caches_rows_and_lists_not_users(aws, monkeypatch):
    """On moto: a warm container's repeat request reads only the user row (1 round trip)."""
    from streamrec import wiring
    from streamrec.settings import load_settings

    from .test_round_trips import SHARD, CallLog, _events

    settings = load_settings()
    events = _events(300, users=20, items=40)
    wiring.ingest_service(settings).ingest(events, SHARD)
    items = sorted({e.event.item_id for e in events})
    wiring.similarity_service(settings).recompute(items, items, items)
    calls = CallLog()
    service = wiring.recommendation_service(settings)
    first = service.for_user("u3", k=10)
    assert calls.names() == ["GetItem", "BatchGetItem"]
    calls.clear()
    again = service.for_user("u3", k=10)
    assert calls.names() == ["GetItem"]
    assert [r.item_id for r in again.items] == [r.item_id for r in first.items]
