"""In-memory adapters with the DynamoDB adapters' semantics (guards, versions, copies).

Used by the evaluation harness and fast tests. States are copied in and out, as a database
would, so callers cannot mutate stored data by accident. The copies are structural (new
lists and dicts, immutable members shared): ``copy.deepcopy`` took two thirds of an
evaluation run's time.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from streamrec.domain.coupons import (
    DUPLICATE,
    EXHAUSTED,
    REDEEMED,
    UNKNOWN,
    Coupon,
    CouponSpec,
    remaining_after_redefinition,
    scope_keys,
)
from streamrec.domain.model import (
    CATALOG_STATS_ROW,
    POSTING_COUNT,
    CatalogItem,
    CatalogTally,
    Delta,
    ItemStats,
    PopularList,
    Posting,
    SimilarityRow,
    UserState,
)
from streamrec.domain.trends import HourlyCounts, TrendingList, counts_from_attributes
from streamrec.repositories.base import (
    COUPONS_PER_SCOPE,
    FIRST_SEEN,
    PRUNE_SAMPLE,
    ConcurrentUpdateError,
    DeadLetter,
    ScopeFullError,
    guard_attribute,
    prune_candidates,
    stats_from_attributes,
)


def _copy_list(popular: PopularList) -> PopularList:
    return replace(popular, items=list(popular.items))


def _apply_guarded(row: dict[str, float | str], deltas: Sequence[Delta], guard: str) -> None:
    """What ``pending`` + ``summed`` + one write do, in one pass (the ingest's hot path); the
    sums are formed in the same order, so results are bit-identical to the DynamoDB path
    while they are exact in binary floats (the default, dyadic event weights): DynamoDB adds
    decimal numbers, so weights such as 0.1 can end a last digit apart (21.0 there,
    20.99999999999999 here).
    ``guard`` is the shard's guard attribute (:func:`guard_attribute`); ``deltas`` are in
    sequence order, as a batch plan makes them."""
    applied = row.get(guard)
    if len(deltas) == 1:  # most rows of a batch get one delta: no totals dict
        sequence, attribute, value = deltas[0]
        if applied is None or sequence > applied:  # type: ignore[operator]
            row[attribute] = float(row.get(attribute, 0.0)) + (0.0 + value)
            row[guard] = sequence
        return
    totals: dict[str, float] = {}
    last = ""
    for sequence, attribute, value in deltas:
        if applied is not None and sequence <= applied:  # type: ignore[operator]
            continue
        totals[attribute] = totals.get(attribute, 0.0) + value
        if sequence > last:
            last = sequence
    if not totals:
        return
    for attribute, total in totals.items():
        row[attribute] = float(row.get(attribute, 0.0)) + total
    row[guard] = last


class InMemoryUserRepository:
    def __init__(self) -> None:
        self.rows: dict[str, UserState] = {}

    def get(self, user_id: str) -> UserState | None:
        state = self.rows.get(user_id)
        return state.copy() if state is not None else None

    def get_many(self, user_ids: Iterable[str]) -> dict[str, UserState]:
        return {u: self.rows[u].copy() for u in user_ids if u in self.rows}

    def save_many(self, states: Iterable[UserState]) -> None:
        for state in states:
            stored = self.rows.get(state.user_id)
            if (stored.version if stored else 0) != state.version:
                raise ConcurrentUpdateError(f"user {state.user_id} changed concurrently")
            saved = state.copy()
            saved.version += 1
            self.rows[state.user_id] = saved

    def delete(self, user_id: str) -> None:
        self.rows.pop(user_id, None)


class InMemoryCooccurrenceRepository:
    def __init__(self) -> None:
        # item -> block -> row, so that reading an item's row never walks the table.
        self.rows: dict[str, dict[int, dict[str, float | str]]] = defaultdict(lambda: defaultdict(dict))

    def get_rows(self, item_ids: Iterable[str]) -> dict[str, dict[str, float]]:
        result: dict[str, dict[str, float]] = {}
        for item in set(item_ids):
            counts: dict[str, float] = {}
            for row in self.rows.get(item, {}).values():
                counts.update({k: float(v) for k, v in row.items() if not k.startswith("s#")})
            result[item] = counts
        return result

    def apply(self, deltas: Mapping[tuple[str, int], Sequence[Delta]], shard: str) -> None:
        guard = guard_attribute(shard)
        rows = self.rows
        for (item, block), row_deltas in deltas.items():
            _apply_guarded(rows[item][block], row_deltas, guard)

    def items(self) -> list[str]:
        return list(self.rows)


class InMemoryItemStatsRepository:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, float | str]] = defaultdict(dict)

    def get_many(self, item_ids: Iterable[str]) -> dict[str, ItemStats]:
        result = {}
        for item in item_ids:
            row = self.rows.get(item)
            if row is not None:
                result[item] = stats_from_attributes(item, row)
        return result

    def apply(
        self,
        deltas: Mapping[str, Sequence[Delta]],
        shard: str,
        categories: Mapping[str, str] | None = None,
        first_seen: Mapping[str, int] | None = None,
    ) -> None:
        attribute = guard_attribute(shard)
        for item, row_deltas in deltas.items():
            row = self.rows[item]
            guard = row.get(attribute)
            _apply_guarded(row, row_deltas, attribute)
            if row.get(attribute) == guard:
                continue  # nothing written (a replay): as DynamoDB, which sends no update
            if categories and item in categories:
                row["category"] = categories[item]
            if first_seen and item in first_seen:
                row.setdefault(FIRST_SEEN, first_seen[item])  # DynamoDB's if_not_exists


class InMemorySimilarityRepository:
    def __init__(self) -> None:
        self.rows: dict[str, SimilarityRow] = {}
        self.lists: dict[str, PopularList] = {}

    def get_many(
        self,
        item_ids: Sequence[str],
        lists: Sequence[str] = (),
        consistent: bool = False,
        row_lists: Collection[str] | None = None,
    ) -> tuple[dict[str, SimilarityRow], dict[str, PopularList]]:
        # Whole rows whatever row_lists says: copying them costs no decoding here.
        rows = {i: self.rows[i].copy() for i in item_ids if i in self.rows}
        return rows, {name: self.get_list(name) for name in lists}

    def put_rows(self, rows: Iterable[SimilarityRow]) -> None:
        for row in rows:
            self.rows[row.item_id] = row.copy()

    def get_list(self, name: str) -> PopularList:
        return _copy_list(self.lists.get(name, PopularList()))

    def put_list(self, name: str, popular: PopularList) -> None:
        if popular.version != self.lists.get(name, PopularList()).version:
            raise ConcurrentUpdateError(f"{name} changed concurrently")
        self.lists[name] = PopularList(list(popular.items), popular.version + 1, popular.epoch)


@dataclass
class InMemoryChangePublisher:
    """Collects announcements; the caller drains them into the similarity service."""

    changed: set[str] = field(default_factory=set)
    norm_changed: set[str] = field(default_factory=set)
    popular_changed: set[str] = field(default_factory=set)
    # Items whose catalog record changed: drained apart (drain_content), so that callers of
    # drain() keep their three sets.
    content_changed: set[str] = field(default_factory=set)

    def publish(
        self,
        changed: Iterable[str],
        norm_changed: set[str],
        popular_changed: Iterable[str] = (),
        content_changed: Iterable[str] = (),
    ) -> None:
        self.changed.update(changed)
        self.norm_changed.update(norm_changed)
        self.popular_changed.update(popular_changed)
        self.content_changed.update(content_changed)

    def drain_content(self) -> set[str]:
        """Items whose catalog record changed since the last call."""
        drained, self.content_changed = self.content_changed, set()
        return drained

    def drain(self) -> tuple[set[str], set[str], set[str]]:
        """(changed, norm_changed, popular_changed) since the last drain."""
        drained = self.changed, self.norm_changed, self.popular_changed
        self.changed, self.norm_changed, self.popular_changed = set(), set(), set()
        return drained


@dataclass
class InMemoryDeadLetterSink:
    letters: list[DeadLetter] = field(default_factory=list)

    def send(self, letters: Sequence[DeadLetter]) -> None:
        self.letters.extend(letters)


class InMemoryCouponRepository:
    """Coupons with the DynamoDB adapter's semantics: kept counts on redefinition, a scope
    index, per-shard replay guards on redemptions, remaining never below 0."""

    def __init__(self) -> None:
        self.rows: dict[str, Coupon] = {}
        self.guards: dict[str, dict[str, str]] = defaultdict(dict)
        self.index: dict[str, set[str]] = defaultdict(set)

    def put(self, coupon_id: str, spec: CouponSpec, now: float | None = None) -> Coupon:
        old = self.rows.get(coupon_id)
        redeemed, refused = (old.redeemed, old.refused) if old else (0, 0)
        remaining = remaining_after_redefinition(spec.budget, redeemed, refused)
        coupon = Coupon(coupon_id, spec, remaining, redeemed, refused)
        keys = scope_keys(spec.scope)
        for done, key in enumerate(keys):
            if len(self.index[key]) >= COUPONS_PER_SCOPE and coupon_id not in self.index[key]:
                self.prune_expired([key], time.time() if now is None else now)
                if len(self.index[key]) >= COUPONS_PER_SCOPE:
                    named = set(old.scope_keys()) if old else set()
                    for added in keys[:done]:
                        if added not in named:
                            self.index[added].discard(coupon_id)
                    raise ScopeFullError(coupon_id, key)
            self.index[key].add(coupon_id)
        self.rows[coupon_id] = coupon
        for key in set(old.scope_keys() if old else ()) - set(coupon.scope_keys()):
            self.index[key].discard(coupon_id)
        if now is not None:
            self.prune_expired(coupon.scope_keys(), now, limit=PRUNE_SAMPLE)
        return replace(coupon)

    def prune_expired(self, scope_keys: Sequence[str], now: float, limit: int | None = None) -> set[str]:
        keys = list(dict.fromkeys(scope_keys))
        checked = prune_candidates(set().union(*(self.index.get(key, set()) for key in keys)), limit)
        expired = {c for c in checked if c not in self.rows or self.rows[c].spec.valid_to <= now}
        removed: set[str] = set()
        for key in keys:
            gone = self.index.get(key, set()) & expired
            self.index[key] -= gone
            removed |= gone
        return removed

    def indexed_scopes(self) -> list[str]:
        return sorted(key for key, listed in self.index.items() if listed)

    def get_many(self, coupon_ids: Iterable[str]) -> dict[str, Coupon]:
        return {c: replace(self.rows[c]) for c in coupon_ids if c in self.rows}

    def all_coupons(self) -> Iterator[Coupon]:
        return (replace(coupon) for coupon in list(self.rows.values()))

    def in_scope(self, scope_keys: Sequence[str]) -> set[str]:
        return set().union(*(self.index.get(key, set()) for key in scope_keys))

    def defined(self, coupon_ids: Iterable[str]) -> set[str]:
        return {coupon_id for coupon_id in coupon_ids if coupon_id in self.rows}

    def redeem(self, coupon_id: str, sequence: str, shard: str) -> str:
        coupon = self.rows.get(coupon_id)
        if coupon is None:
            return UNKNOWN
        guards = self.guards[coupon_id]
        if shard in guards and guards[shard] >= sequence:
            return DUPLICATE
        guards[shard] = sequence
        if coupon.remaining <= 0:
            coupon.refused += 1
            return EXHAUSTED
        coupon.remaining -= 1
        coupon.redeemed += 1
        return REDEEMED


class InMemoryTrendsRepository:
    """Counter rows keyed (row, day) with the DynamoDB adapter's guards, and versioned
    lists. Expiry (TTL) is not simulated: readers only ask for the days they need."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], dict[str, float | str]] = defaultdict(dict)
        self.lists: dict[str, TrendingList] = {}

    def apply(self, deltas: Mapping[tuple[str, int], Sequence[Delta]], shard: str) -> None:
        guard = guard_attribute(shard)
        for key, row_deltas in deltas.items():
            _apply_guarded(self.rows[key], row_deltas, guard)

    def get_counts(self, keys: Sequence[str], days: Sequence[int]) -> dict[str, HourlyCounts]:
        result = {key: HourlyCounts() for key in keys}
        for key in keys:
            for day in days:
                row = self.rows.get((key, day))
                if row:
                    counts_from_attributes(result[key], day, row)
        return result

    def get_many(
        self, keys: Sequence[str], days: Sequence[int], lists: Sequence[str], consistent: bool = False
    ) -> tuple[dict[str, HourlyCounts], dict[str, TrendingList]]:
        return self.get_counts(keys, days), {name: self.get_list(name) for name in lists}

    def get_list(self, name: str) -> TrendingList:
        stored = self.lists.get(name, TrendingList())
        return TrendingList(list(stored.entries), stored.version, stored.profile, stored.as_of)

    def put_list(self, name: str, trending: TrendingList) -> None:
        if trending.version != self.lists.get(name, TrendingList()).version:
            raise ConcurrentUpdateError(f"{name} changed concurrently")
        self.lists[name] = TrendingList(
            list(trending.entries), trending.version + 1, trending.profile, trending.as_of
        )


class InMemoryCatalogRepository:
    """Catalog records, postings and the guarded document count, as the DynamoDB adapter."""

    def __init__(self) -> None:
        self.items: dict[str, CatalogItem] = {}
        self.tokens: dict[str, set[str]] = defaultdict(set)
        # Each token's count of holders and its per-shard guards, as on its count row.
        self.token_counts: dict[str, dict[str, float | str]] = defaultdict(dict)
        self.stats: dict[str, float | str] = {}

    def get_many(self, item_ids: Iterable[str], consistent: bool = False) -> dict[str, CatalogItem]:
        return {
            i: replace(self.items[i], tags=list(self.items[i].tags), terms=dict(self.items[i].terms))
            for i in item_ids
            if i in self.items
        }

    def categories(self, item_ids: Iterable[str]) -> dict[str, str]:
        return {i: self.items[i].category for i in item_ids if i in self.items}

    def put_many(self, items: Sequence[tuple[CatalogItem, float | None]]) -> list[str]:
        conflicts = []
        for item, expected in items:
            stored = self.items.get(item.item_id)
            if (stored.timestamp if stored else None) != expected:
                conflicts.append(item.item_id)
                continue
            self.items[item.item_id] = replace(item, tags=list(item.tags), terms=dict(item.terms))
        return conflicts

    def refresh_norms(self, items: Sequence[CatalogItem]) -> None:
        for item in items:
            stored = self.items.get(item.item_id)
            same = stored is not None and (stored.timestamp, stored.shard, stored.sequence) == (
                item.timestamp,
                item.shard,
                item.sequence,
            )
            if stored is not None and same and stored.norm_documents < item.norm_documents:
                self.items[item.item_id] = replace(stored, norm=item.norm, norm_documents=item.norm_documents)

    def update_postings(
        self, add: Mapping[str, set[str]], remove: Mapping[str, set[str]], limit: int
    ) -> dict[str, int]:
        for token, ids in remove.items():
            if token in self.tokens:
                self.tokens[token].difference_update(ids)
        frequencies = {}
        for token, ids in add.items():
            if not ids:
                continue
            posting = self.tokens[token]
            if len(posting) < limit:
                posting.update(ids)
            frequencies[token] = self._posting(token).count
        return frequencies

    def _posting(self, token: str) -> Posting:
        counted = float(self.token_counts.get(token, {}).get(POSTING_COUNT, 0.0))
        return Posting.stored(self.tokens.get(token, ()), counted)

    def count_postings(self, deltas: Mapping[str, Sequence[Delta]], shard: str) -> None:
        for token, token_deltas in deltas.items():
            if token_deltas:
                _apply_guarded(self.token_counts[token], token_deltas, guard_attribute(shard))

    def stored_counts(self, progress: Callable[[int], None] | None = None) -> CatalogTally:
        tally = CatalogTally(stored_holders={token: None for token in self.tokens})
        for token, row in self.token_counts.items():
            if POSTING_COUNT in row:
                tally.stored_holders[token] = float(row[POSTING_COUNT])
        documents = self.stats.get("documents")
        tally.stored_documents = None if documents is None else float(documents)
        for item in self.get_many(self.items).values():
            tally.add_record(item.terms)
        return tally

    def set_counts(self, corrections: Sequence[tuple[str | None, float | None, int]]) -> list[str]:
        changed = []
        for token, stored, counted in corrections:
            row = self.stats if token is None else self.token_counts[token]
            attribute = "documents" if token is None else POSTING_COUNT
            now = row.get(attribute)
            if (None if now is None else float(now)) != stored:
                changed.append(CATALOG_STATS_ROW if token is None else token)
                continue
            row[attribute] = float(counted)
        return changed

    def postings(self, tokens: Iterable[str]) -> dict[str, Posting]:
        return {t: self._posting(t) for t in tokens}

    def add_documents(self, deltas: Sequence[Delta], shard: str) -> None:
        _apply_guarded(self.stats, deltas, guard_attribute(shard))

    def documents(self) -> int:
        return int(self.stats.get("documents", 0))
