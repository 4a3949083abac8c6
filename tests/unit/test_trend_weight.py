"""One shopper cannot make an item trend: a user's events on one item within one clock hour
count in the trending counters as the strongest of them (ingest.trend_weight)."""

from __future__ import annotations

import pytest

from streamrec.domain.ingest import SequencedEvent, plan_batch
from streamrec.domain.model import UserState, sequence_key
from streamrec.events import parse_event
from streamrec.repositories.dynamodb import user_from_item, user_to_item
from streamrec.settings import ConfigurationError, Settings

SHARD = "shardId-000000000000"
NOW = 1_764_000_000.0  # the start of hour 490,000 (16:00 UTC)
DAY = 490_000 // 24


def _event(n: int, user: str, item: str, kind: str, timestamp: float, **extra) -> SequencedEvent:
    payload = {
        "event_id": f"w{n}",
        "event_type": kind,
        "user_id": user,
        "item_id": item,
        "timestamp": timestamp,
        "category": "camping",
        **extra,
    }
    return SequencedEvent(sequence_key(80_000 + n), parse_event(payload))


def _weighted(plan, row: str = "spam", day: int = DAY) -> dict[str, float]:
    totals: dict[str, float] = {}
    for _, attribute, value in plan.trends.get((row, day), []):
        if attribute.startswith("v:"):
            totals[attribute] = totals.get(attribute, 0.0) + value
    return totals


def test_repeats_by_one_user_within_an_hour_count_once():
    # 15 cart adds by one user in 30 minutes; the next hour's view counts again.
    events = [_event(n, "bot", "spam", "add_to_cart", NOW + n * 120) for n in range(15)]
    events.append(_event(20, "bot", "spam", "view", NOW + 3_600))
    plan = plan_batch({}, events, SHARD, Settings())
    assert _weighted(plan) == {"v:16": 1.5, "v:17": 1.0}
    # The category counters take the same weights.
    assert _weighted(plan, "#cat:camping") == {"v:16": 1.5, "v:17": 1.0}
    # The item's popularity and event counts still count every event.
    assert sum(value for _, name, value in plan.item_stats["spam"] if name == "n:add_to_cart") == 15


def test_a_stronger_event_adds_its_difference_and_other_users_count_in_full():
    events = [
        _event(0, "u1", "spam", "view", NOW + 10),  # 1
        _event(1, "u1", "spam", "view", NOW + 20),  # 0: a repeat
        _event(2, "u1", "spam", "add_to_cart", NOW + 30),  # 1.5 - 1
        _event(3, "u1", "spam", "purchase", NOW + 40, quantity=2),  # 2 - 1.5; both units bought
        _event(4, "u2", "spam", "view", NOW + 50),  # another user: 1
    ]
    plan = plan_batch({}, events, SHARD, Settings())
    assert _weighted(plan) == {"v:16": 3.0}
    bought = [value for _, name, value in plan.trends[("spam", DAY)] if name.startswith("p:")]
    assert bought == [2.0]


def test_events_of_other_hours_are_counted_against_their_own_hour():
    # Out of order, and one stamped ahead of the clock: neither opens the way for repeats.
    events = [
        _event(0, "u1", "spam", "view", NOW + 10),
        _event(1, "u1", "spam", "view", NOW - 3_600),  # hour 15: counts once
        _event(2, "u1", "spam", "view", NOW + 20 * 3_600),  # 20 hours ahead: counts once
        *[_event(3 + n, "u1", "spam", "view", NOW + 20 + n) for n in range(15)],  # hour 16 again
        _event(30, "u1", "spam", "view", NOW - 3_500),  # hour 15 again
    ]
    plan = plan_batch({}, events, SHARD, Settings())
    assert _weighted(plan) == {"v:15": 1.0, "v:16": 1.0}
    assert _weighted(plan, day=DAY + 1) == {"v:12": 1.0}


def test_the_memory_keeps_the_pairs_touched_last():
    # Beyond trend_items_kept (item, hour) pairs, the one touched longest ago is forgotten.
    settings = Settings(trend_items_kept=2)
    cycle = [_event(10 + n, "u1", item, "view", NOW + n) for n, item in enumerate(["spam", "a", "b", "spam"])]
    plan = plan_batch({}, cycle, SHARD, settings)
    assert _weighted(plan) == {"v:16": 2.0}
    assert list(plan.users["u1"].trend_counted) == [("b", 490_000), ("spam", 490_000)]


def test_the_memory_is_kept_across_batches_in_the_user_row():
    first = plan_batch({}, [_event(0, "bot", "spam", "view", NOW + 10)], SHARD, Settings())
    stored = {"bot": user_from_item(user_to_item(first.users["bot"], 1))}
    assert stored["bot"].trend_counted == {("spam", 490_000): 1.0}
    second = plan_batch(stored, [_event(1, "bot", "spam", "view", NOW + 20)], SHARD, Settings())
    assert _weighted(second) == {}
    # Rows written before it was kept, or with a development version's [hour, {item: w}],
    # read as no memory.
    item = user_to_item(UserState("old"), 1)
    del item["trend"]
    assert user_from_item(item).trend_counted == {}
    for interim in ("[-1,{}]", '[490000,{"spam":1.0}]'):
        item["trend"] = {"S": interim}
        assert user_from_item(item).trend_counted == {}


def test_the_memory_holds_at_least_one_pair():
    with pytest.raises(ConfigurationError, match="trend_items_kept=0; expected at least 1"):
        Settings(trend_items_kept=0)
