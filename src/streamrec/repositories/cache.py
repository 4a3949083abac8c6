"""A warm-Lambda cache of hot rows in front of the similarity repository (LRU + TTL).

A warm API container serves many requests; the rows they read most (the ``#popular`` list,
category lists, neighbour rows of popular items) change at most once per similarity batch.
:class:`CachingSimilarityRepository` keeps them in process memory for ``ttl_seconds`` and
at most ``max_entries`` rows (least recently used first out), so a hit costs no read unit
and no round trip; the misses of one read are still fetched in one BatchGetItem, so a
personalized request stays within 2 sequential round trips (a cold item's similar items
read their category's popular list apart, a second read that a warm container mostly hits;
an out-of-stock set split across rows takes one more read when it is among the misses, and
so do the new arrivals of a short list when 95 or 96 recent items left them no room in the
read).

Freshness: a row is never served older than ``ttl_seconds`` after it was read. User rows
are never cached (a user's own events show at once, through self-similarity); what can lag
by up to the TTL is a neighbour row or a popular list. ``ttl_seconds = 0`` turns it off.

Configured in one place, :func:`cache_config` (environment ``API_CACHE_TTL_SECONDS``,
``API_CACHE_MAX_ENTRIES``), called by the API wiring at cold start.
"""

from __future__ import annotations

import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from streamrec.domain.model import PopularList, SimilarityRow
from streamrec.repositories.base import SimilarityRepository
from streamrec.settings import ConfigurationError

DEFAULT_TTL_SECONDS = 30.0
DEFAULT_MAX_ENTRIES = 5_000
# Rows are also bounded by what they list: 5,000 rows of NeighboursPerItem 500 (with their
# two-hop, complement and content lists) took 655 MB, past the API function's 512. A cached
# listed entry (an id, a score, a category, in a row or a popular list) costs about 220 bytes
# (measured: 5,000 rows of 200 entries, 20-character ids, took 215 MB); the cache may hold as
# many as fill CACHE_MEMORY_SHARE of the function's memory (AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
# set by Lambda; 512 MB when absent, the template's size), four fifths for rows, one fifth
# for popular lists. A cold API function takes some 90 MB besides.
BYTES_PER_LISTED_ENTRY = 220
CACHE_MEMORY_SHARE = 0.5
DEFAULT_MEMORY_MB = 512


def listed_entries_budget(memory_mb: float) -> int:
    """How many listed entries the cache may hold in a function of ``memory_mb``."""
    return int(memory_mb * 2**20 * CACHE_MEMORY_SHARE / BYTES_PER_LISTED_ENTRY)


@dataclass(frozen=True)
class CacheConfig:
    ttl_seconds: float = DEFAULT_TTL_SECONDS
    max_entries: int = DEFAULT_MAX_ENTRIES
    max_listed: int = listed_entries_budget(DEFAULT_MEMORY_MB)

    def __post_init__(self) -> None:
        # inf would cache rows for the container's life, nan would turn the cache off unseen.
        if not (math.isfinite(self.ttl_seconds) and self.ttl_seconds >= 0):
            raise ConfigurationError(
                f"API_CACHE_TTL_SECONDS={self.ttl_seconds}; expected a finite number >= 0"
            )
        if self.max_entries < 0:
            raise ConfigurationError(f"API_CACHE_MAX_ENTRIES={self.max_entries}; expected >= 0")

    @property
    def enabled(self) -> bool:
        return self.ttl_seconds > 0 and self.max_entries > 0


def cache_config(environ: Mapping[str, str] | None = None) -> CacheConfig:
    """The API cache's configuration from the environment (defaults when unset)."""
    env = os.environ if environ is None else environ
    try:
        ttl = float(env.get("API_CACHE_TTL_SECONDS") or DEFAULT_TTL_SECONDS)
        size = int(env.get("API_CACHE_MAX_ENTRIES") or DEFAULT_MAX_ENTRIES)
        memory_mb = float(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or DEFAULT_MEMORY_MB)
    except ValueError as error:
        raise ConfigurationError(f"API cache setting is not a number: {error}") from error
    return CacheConfig(ttl, size, listed_entries_budget(memory_mb))


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    expirations: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class TtlLruCache[V]:
    """Bounded mapping whose entries expire ``ttl`` seconds after they were stored: at most
    ``max_entries`` of them and, given ``weigh``, at most ``max_weight`` in all (the least
    recently used go first).

    ``clock`` is injectable (monotonic seconds) so that tests control time.
    """

    def __init__(
        self,
        ttl: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
        max_weight: int | None = None,
        weigh: Callable[[V], int] | None = None,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self.max_weight = max_weight
        self.weigh = weigh
        self.weight = 0
        self.stats = CacheStats()
        self._entries: OrderedDict[str, tuple[float, V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> V | None:
        """The cached value, or None (counted as a miss) when absent or expired."""
        entry = self._entries.get(key)
        if entry is not None:
            stored_at, value, _ = entry
            if self.clock() - stored_at < self.ttl:
                self._entries.move_to_end(key)
                self.stats.hits += 1
                return value
            self.discard(key)
            self.stats.expirations += 1
        self.stats.misses += 1
        return None

    def put(self, key: str, value: V) -> None:
        if self.max_entries <= 0 or self.ttl <= 0:
            return
        self.discard(key)
        weight = self.weigh(value) if self.weigh is not None else 0
        if self.max_weight is not None and weight > self.max_weight:
            return  # alone over the budget: kept by nothing, and evicting the rest for it
        self._entries[key] = (self.clock(), value, weight)
        self.weight += weight
        while len(self._entries) > self.max_entries or (
            self.max_weight is not None and self.weight > self.max_weight and self._entries
        ):
            _, (_, _, dropped) = self._entries.popitem(last=False)
            self.weight -= dropped
            self.stats.evictions += 1

    def discard(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.weight -= entry[2]


_ABSENT = SimilarityRow(item_id="", neighbours=[])  # remembers "no row" (unseen item) too


class CachingSimilarityRepository:
    """:class:`SimilarityRepository` with a warm-container cache of rows and popular lists.

    Reads go to the cache first; the misses of one call are fetched with one ``get_many``
    of the wrapped repository (one BatchGetItem). Writes go through and drop the cached
    entry. Cached values are copied out, so callers cannot alter the cache.
    """

    def __init__(
        self,
        inner: SimilarityRepository,
        config: CacheConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        # Four fifths of the budget of listed entries for rows, one fifth for lists.
        self.rows: TtlLruCache[SimilarityRow] = TtlLruCache(
            config.ttl_seconds, config.max_entries, clock, config.max_listed * 4 // 5, _listed_in_row
        )
        self.lists: TtlLruCache[PopularList] = TtlLruCache(
            config.ttl_seconds, config.max_entries, clock, config.max_listed // 5, _listed_in_list
        )

    @property
    def stats(self) -> CacheStats:
        rows, lists = self.rows.stats, self.lists.stats
        return CacheStats(
            rows.hits + lists.hits,
            rows.misses + lists.misses,
            rows.evictions + lists.evictions,
            rows.expirations + lists.expirations,
        )

    def get_many(
        self,
        item_ids: Sequence[str],
        lists: Sequence[str] = (),
        consistent: bool = False,
        row_lists: Collection[str] | None = None,
    ) -> tuple[dict[str, SimilarityRow], dict[str, PopularList]]:
        if consistent or row_lists is not None:
            # A read-modify-write path, or rows with some lists left out: read through, and
            # never keep a partial row.
            return self.inner.get_many(item_ids, lists, consistent, row_lists)
        rows: dict[str, SimilarityRow] = {}
        found: dict[str, PopularList] = {}
        missing_rows: list[str] = []
        missing_lists: list[str] = []
        for item in dict.fromkeys(item_ids):
            row = self.rows.get(item)
            if row is None:
                missing_rows.append(item)
            elif row is not _ABSENT:
                rows[item] = _copy_row(row)
        for name in dict.fromkeys(lists):
            popular = self.lists.get(name)
            if popular is None:
                missing_lists.append(name)
            else:
                found[name] = _copy_list(popular)
        if missing_rows or missing_lists:
            fetched_rows, fetched_lists = self.inner.get_many(missing_rows, missing_lists)
            for item in missing_rows:
                row = fetched_rows.get(item)
                self.rows.put(item, _copy_row(row) if row is not None else _ABSENT)
                if row is not None:
                    rows[item] = row
            for name in missing_lists:
                popular = fetched_lists.get(name, PopularList())
                self.lists.put(name, _copy_list(popular))
                found[name] = popular
        return rows, found

    def put_rows(self, rows: Iterable[SimilarityRow]) -> None:
        rows = list(rows)
        self.inner.put_rows(rows)
        for row in rows:
            self.rows.discard(row.item_id)

    def get_list(self, name: str) -> PopularList:
        """Read-modify-write path (compare-and-swap): always read through."""
        return self.inner.get_list(name)

    def put_list(self, name: str, popular: PopularList) -> None:
        self.inner.put_list(name, popular)
        self.lists.discard(name)


def _listed_in_row(row: SimilarityRow) -> int:
    """A cached row's size in listed entries (1 at least: the row itself)."""
    lists = (row.neighbours, row.extended, row.complements, row.content, row.holders)
    return 1 + sum(len(listed) for listed in lists)


def _listed_in_list(popular: PopularList) -> int:
    return 1 + len(popular.items)


def _copy_row(row: SimilarityRow) -> SimilarityRow:
    return row if row is _ABSENT else row.copy()


def _copy_list(popular: PopularList) -> PopularList:
    return replace(popular, items=list(popular.items))


def cached_similarity(
    inner: SimilarityRepository, config: CacheConfig, clock: Callable[[], float] = time.monotonic
) -> SimilarityRepository:
    """``inner`` behind the cache, or ``inner`` itself when the cache is disabled."""
    return CachingSimilarityRepository(inner, config, clock) if config.enabled else inner
