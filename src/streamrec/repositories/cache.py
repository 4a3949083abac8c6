"""A warm-Lambda cache of hot rows in front of the similarity repository (LRU + TTL).

A warm API container serves many requests; the rows they read most (the ``#popular`` list,
category lists, neighbour rows of popular items) change at most once per similarity batch.
:class:`CachingSimilarityRepository` keeps them in process memory for ``ttl_seconds`` and
at most ``max_entries`` rows (least recently used first out), so a hit costs no read unit
and no round trip; the misses of one read are still fetched in one BatchGetItem, so a
personalized request stays within 2 sequential round trips (a cold item's similar items
read their category's popular list apart, a second read that a warm container mostly hits;
an out-of-stock set split across rows takes one more read when it is among the misses).

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


@dataclass(frozen=True)
class CacheConfig:
    ttl_seconds: float = DEFAULT_TTL_SECONDS
    max_entries: int = DEFAULT_MAX_ENTRIES

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
    except ValueError as error:
        raise ConfigurationError(f"API cache setting is not a number: {error}") from error
    return CacheConfig(ttl, size)


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
    """Bounded mapping whose entries expire ``ttl`` seconds after they were stored.

    ``clock`` is injectable (monotonic seconds) so that tests control time.
    """

    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self.stats = CacheStats()
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> V | None:
        """The cached value, or None (counted as a miss) when absent or expired."""
        entry = self._entries.get(key)
        if entry is not None:
            stored_at, value = entry
            if self.clock() - stored_at < self.ttl:
                self._entries.move_to_end(key)
                self.stats.hits += 1
                return value
            del self._entries[key]
            self.stats.expirations += 1
        self.stats.misses += 1
        return None

    def put(self, key: str, value: V) -> None:
        if self.max_entries <= 0 or self.ttl <= 0:
            return
        self._entries[key] = (self.clock(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.stats.evictions += 1

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)


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
        self.rows: TtlLruCache[SimilarityRow] = TtlLruCache(config.ttl_seconds, config.max_entries, clock)
        self.lists: TtlLruCache[PopularList] = TtlLruCache(config.ttl_seconds, config.max_entries, clock)

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


def _copy_row(row: SimilarityRow) -> SimilarityRow:
    return row if row is _ABSENT else row.copy()


def _copy_list(popular: PopularList) -> PopularList:
    return replace(popular, items=list(popular.items))


def cached_similarity(
    inner: SimilarityRepository, config: CacheConfig, clock: Callable[[], float] = time.monotonic
) -> SimilarityRepository:
    """``inner`` behind the cache, or ``inner`` itself when the cache is disabled."""
    return CachingSimilarityRepository(inner, config, clock) if config.enabled else inner
