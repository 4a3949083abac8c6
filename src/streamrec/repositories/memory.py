"""In-memory adapters with the DynamoDB adapters' semantics (guards, versions, copies).

Used by the evaluation harness and fast tests. States are copied in and out, as a database
would, so callers cannot mutate stored data by accident. The copies are structural (new
lists and dicts, immutable members shared): ``copy.deepcopy`` took two thirds of an
evaluation run's time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from streamrec.domain.model import (
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
    stats_from_attributes,
    summed,
)


def _copy_row(row: SimilarityRow) -> SimilarityRow:
    # Neighbour is frozen, so the lists may share their members.
    return replace(
        row, neighbours=list(row.neighbours), extended=list(row.extended), complements=list(row.complements)
    )


def _copy_list(popular: PopularList) -> PopularList:
    return replace(popular, items=list(popular.items))


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
        for (item, block), row_deltas in deltas.items():
            _apply_guarded(self.rows[item][block], row_deltas, shard)

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
        self, deltas: Mapping[str, Sequence[Delta]], shard: str, categories: Mapping[str, str] | None = None
    ) -> None:
        for item, row_deltas in deltas.items():
            row = self.rows[item]
            guard = row.get(guard_attribute(shard))
            _apply_guarded(row, row_deltas, shard)
            if categories and item in categories and row.get(guard_attribute(shard)) != guard:
                row["category"] = categories[item]


class InMemorySimilarityRepository:
    def __init__(self) -> None:
        self.rows: dict[str, SimilarityRow] = {}
        self.lists: dict[str, PopularList] = {}

    def get_many(
        self, item_ids: Sequence[str], lists: Sequence[str] = ()
    ) -> tuple[dict[str, SimilarityRow], dict[str, PopularList]]:
        rows = {i: _copy_row(self.rows[i]) for i in item_ids if i in self.rows}
        return rows, {name: self.get_list(name) for name in lists}

    def put_rows(self, rows: Iterable[SimilarityRow]) -> None:
        for row in rows:
            self.rows[row.item_id] = _copy_row(row)

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

    def publish(
        self, changed: Iterable[str], norm_changed: set[str], popular_changed: Iterable[str] = ()
    ) -> None:
        self.changed.update(changed)
        self.norm_changed.update(norm_changed)
        self.popular_changed.update(popular_changed)

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
