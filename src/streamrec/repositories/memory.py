"""In-memory adapters with the DynamoDB adapters' semantics (guards, versions, copies).

Used by the evaluation harness and fast tests. States are deep-copied in and out, as a
database would, so callers cannot mutate stored data by accident.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from streamrec.domain.model import (
    POPULAR_ROW,
    Delta,
    ItemStats,
    PopularList,
    SimilarityRow,
    UserState,
)
from streamrec.repositories.base import (
    ConcurrentUpdateError,
    DeadLetter,
    guard_attribute,
    pending,
    summed,
)


def _apply_guarded(row: dict[str, float | str], deltas: Sequence[Delta], shard: str) -> None:
    guard = guard_attribute(shard)
    missing = pending(deltas, row.get(guard))  # type: ignore[arg-type]
    if not missing:
        return
    for attribute, value in summed(missing).items():
        row[attribute] = float(row.get(attribute, 0.0)) + value
    row[guard] = max(delta.sequence for delta in missing)


class InMemoryUserRepository:
    def __init__(self) -> None:
        self.rows: dict[str, UserState] = {}

    def get(self, user_id: str) -> UserState | None:
        state = self.rows.get(user_id)
        return copy.deepcopy(state) if state is not None else None

    def get_many(self, user_ids: Iterable[str]) -> dict[str, UserState]:
        return {u: copy.deepcopy(self.rows[u]) for u in user_ids if u in self.rows}

    def save_many(self, states: Iterable[UserState]) -> None:
        for state in states:
            stored = self.rows.get(state.user_id)
            if (stored.version if stored else 0) != state.version:
                raise ConcurrentUpdateError(f"user {state.user_id} changed concurrently")
            saved = copy.deepcopy(state)
            saved.version += 1
            self.rows[state.user_id] = saved


class InMemoryCooccurrenceRepository:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], dict[str, float | str]] = defaultdict(dict)

    def get_rows(self, item_ids: Iterable[str]) -> dict[str, dict[str, float]]:
        wanted = set(item_ids)
        result: dict[str, dict[str, float]] = {item: {} for item in wanted}
        for (item, _block), row in self.rows.items():
            if item in wanted:
                result[item].update({k: float(v) for k, v in row.items() if not k.startswith("s#")})
        return result

    def apply(self, deltas: Mapping[tuple[str, int], Sequence[Delta]], shard: str) -> None:
        for key, row_deltas in deltas.items():
            _apply_guarded(self.rows[key], row_deltas, shard)


class InMemoryItemStatsRepository:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, float | str]] = defaultdict(dict)

    def get_many(self, item_ids: Iterable[str]) -> dict[str, ItemStats]:
        result = {}
        for item in item_ids:
            row = self.rows.get(item)
            if row is not None:
                counts = {k: float(v) for k, v in row.items() if not k.startswith("s#")}
                weight = counts.pop("w", 0.0)
                result[item] = ItemStats(item, weight, counts)
        return result

    def apply(self, deltas: Mapping[str, Sequence[Delta]], shard: str) -> None:
        for item, row_deltas in deltas.items():
            _apply_guarded(self.rows[item], row_deltas, shard)


class InMemorySimilarityRepository:
    def __init__(self) -> None:
        self.rows: dict[str, SimilarityRow] = {}
        self.popular = PopularList()

    def get_many(
        self, item_ids: Sequence[str], with_popular: bool = False
    ) -> tuple[dict[str, SimilarityRow], PopularList]:
        rows = {i: copy.deepcopy(self.rows[i]) for i in item_ids if i in self.rows and i != POPULAR_ROW}
        return rows, (self.get_popular() if with_popular else PopularList())

    def put_rows(self, rows: Iterable[SimilarityRow]) -> None:
        for row in rows:
            self.rows[row.item_id] = copy.deepcopy(row)

    def get_popular(self) -> PopularList:
        return copy.deepcopy(self.popular)

    def put_popular(self, popular: PopularList) -> None:
        if popular.version != self.popular.version:
            raise ConcurrentUpdateError("popular list changed concurrently")
        self.popular = PopularList(list(popular.items), popular.version + 1)


@dataclass
class InMemoryChangePublisher:
    """Collects announcements; the caller drains them into the similarity service."""

    changed: set[str] = field(default_factory=set)
    norm_changed: set[str] = field(default_factory=set)

    def publish(self, changed: Iterable[str], norm_changed: set[str]) -> None:
        self.changed.update(changed)
        self.norm_changed.update(norm_changed)

    def drain(self) -> tuple[set[str], set[str]]:
        changed, norm_changed = self.changed, self.norm_changed
        self.changed, self.norm_changed = set(), set()
        return changed, norm_changed


@dataclass
class InMemoryDeadLetterSink:
    letters: list[DeadLetter] = field(default_factory=list)

    def send(self, letters: Sequence[DeadLetter]) -> None:
        self.letters.extend(letters)
