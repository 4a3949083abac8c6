"""Events that arrive behind their user's live events (a history backfill loaded while the
shop is live, a dead letter re-driven days later): counted where they carry their own time,
never in the state kept in arrival order (recent items, cart, basket), which they would
otherwise take over (domain/ingest.is_late)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from streamrec.domain.coupons import apply_to_categories
from streamrec.domain.ingest import SequencedEvent, plan_batch
from streamrec.domain.model import UserState, sequence_key
from streamrec.events import parse_event
from streamrec.settings import Settings

SHARD = "shardId-000000000000"
NOW = 1_764_000_000
DAY = 86_400
SETTINGS = Settings(history_length=10)
_ids = iter(range(1, 1_000_000))


def _event(kind: str, item: str, at: float, **extra: Any) -> SequencedEvent:
    n = next(_ids)
    payload = {"event_id": f"e{n}", "event_type": kind, "user_id": "u", "item_id": item, "timestamp": at}
    return SequencedEvent(sequence_key(n), parse_event({**payload, **extra}))


def _replay(state: UserState | None, events: list[SequencedEvent], settings: Settings = SETTINGS):
    plan = plan_batch({"u": state} if state else {}, events, SHARD, settings)
    return plan.users["u"], plan


def _live() -> UserState:
    """Today: ten views, then the tent in the cart."""
    events = [_event("view", f"live{n}", NOW + n) for n in range(10)]
    state, _ = _replay(None, [*events, _event("add_to_cart", "tent", NOW + 20)])
    return state


def test_a_backfill_behind_live_events_leaves_the_recent_items_cart_and_basket():
    live = _live()
    year_ago = NOW - 365 * DAY
    backfill = [_event("view", f"old{n}", year_ago + n) for n in range(10)]
    backfill += [
        _event("add_to_cart", "kettle", year_ago + 20),
        _event("remove_from_cart", "tent", year_ago + 21),
        _event("purchase", "toaster", year_ago + 22, category="kitchen"),
    ]
    state, plan = _replay(live, backfill)
    assert [e.item_id for e in state.items] == [e.item_id for e in live.items]
    assert state.cart == ["tent"] and state.basket == live.basket == ["tent"]
    assert plan.late_events == 13 and plan.applied_events == 13
    # No pair with today's items, in views or baskets.
    assert not plan.cooccurrence
    # Counted where they carry their own time: the items' event counts and popularity,
    # the user's event counts, the category's engagement; and a purchase is a purchase.
    assert any(attribute == "n:purchase" for _, attribute, _ in plan.item_stats["toaster"]), plan.item_stats
    assert "old3" in plan.popular_changed
    assert state.event_counts["view"] == 20 and state.event_counts["purchase"] == 1
    assert "kitchen" in state.categories and state.categories["kitchen"].in_cart == 0
    assert state.purchased == ["toaster"]
    # Support (each user's strongest weight on an item) comes with co-occurrence: not counted.
    assert all(attribute != "w" for deltas in plan.item_stats.values() for _, attribute, _ in deltas)


def test_a_cart_add_re_driven_days_later_does_not_put_back_an_item_bought_since():
    state, _ = _replay(
        None,
        [
            _event("add_to_cart", "lamp", NOW - 3 * DAY),
            _event("purchase", "lamp", NOW - 2 * DAY),
            *(_event("view", f"today{n}", NOW + n) for n in range(10)),
            _event("add_to_cart", "stove", NOW + 20),
        ],
    )
    redriven = _event("add_to_cart", "lamp", NOW - 3 * DAY + 60)  # a dead letter, re-driven
    after, plan = _replay(state, [redriven])
    assert after.cart == ["stove"] and "lamp" in after.purchased
    assert [e.item_id for e in after.items] == [e.item_id for e in state.items]
    assert plan.late_events == 1 and not plan.cooccurrence


def test_events_in_time_order_and_slightly_out_of_order_are_not_late():
    state, plan = _replay(
        None,
        [
            _event("view", "a", NOW),
            _event("view", "b", NOW + DAY),
            _event("view", "c", NOW + DAY - 3600),  # an hour out of order: within the bound
            _event("view", "d", NOW + 2 * DAY),
        ],
    )
    assert plan.late_events == 0
    assert [e.item_id for e in state.items] == ["a", "b", "c", "d"]
    # One event stamped a day ahead (the parser's limit) makes no real one late.
    ahead, plan = _replay(
        state, [_event("view", "e", NOW + 3 * DAY), _event("view", "f", NOW + 2 * DAY + 60)]
    )
    assert plan.late_events == 0 and ahead.items[-1].item_id == "f"


def test_a_late_purchase_still_takes_its_item_out_of_the_cart_unless_it_was_added_since():
    # A purchase re-driven days later: nothing newer is known of the lamp, so it leaves the
    # cart (and its category's cart count); the tent was added again after the year-old
    # removal, so that removal does not apply.
    events = [_event("add_to_cart", "lamp", NOW - 3 * DAY, category="home")]
    events += [_event("view", f"today{n}", NOW + n) for n in range(8)]
    events.append(_event("add_to_cart", "tent", NOW + 20, category="camping"))
    state, _ = _replay(None, events)
    assert state.cart == ["lamp", "tent"] and state.categories["home"].in_cart == 1
    late = [
        _event("purchase", "lamp", NOW - 2 * DAY, category="home"),
        _event("remove_from_cart", "tent", NOW - 365 * DAY, category="camping"),
    ]
    after, plan = _replay(state, late)
    assert plan.late_events == 2
    assert after.cart == ["tent"] and after.purchased == ["lamp"]
    assert after.categories["home"].in_cart == 0 and after.categories["camping"].in_cart == 1
    # A late add puts nothing in the cart, and counts nothing there.
    again, plan = _replay(after, [_event("add_to_cart", "kettle", NOW - 5 * DAY, category="home")])
    assert plan.late_events == 1 and again.cart == ["tent"] and again.categories["home"].in_cart == 0


def test_late_events_can_be_switched_off():
    from streamrec.settings import load_settings

    off = load_settings({"LATE_EVENT_HOURS": "off"})
    state, plan = _replay(_live(), [_event("view", "old", NOW - 365 * DAY)], off)
    assert plan.late_events == 0 and state.items[-1].item_id == "old"  # arrival order, as before


def test_an_old_event_does_not_evict_a_category_of_today():
    settings = replace(SETTINGS, categories_kept=3)
    state = UserState(user_id="u")
    for n, category in enumerate(("a", "b", "c")):
        apply_to_categories(state, _event("view", f"i{n}", NOW + n, category=category).event, settings)
    old = _event("purchase", "x", NOW - 365 * DAY, category="old").event
    apply_to_categories(state, old, settings)
    # Compared as of the year-old purchase's own time, today's views weighed undecayed and
    # a view (1) lost to a purchase worth ~0 today.
    assert set(state.categories) == {"a", "b", "c"}


def test_the_late_bound_is_at_least_the_clock_skew_the_parser_accepts():
    import pytest

    from streamrec.settings import ConfigurationError, load_settings

    assert load_settings({"LATE_EVENT_HOURS": "0"}).late_event_hours == 0
    assert load_settings({"LATE_EVENT_HOURS": "72"}).late_event_hours == 72
    for bad in ("12", "-1", "nan"):
        with pytest.raises(ConfigurationError, match="LATE_EVENT_HOURS"):
            load_settings({"LATE_EVENT_HOURS": bad})


def test_an_add_arriving_after_the_items_purchase_or_removal_leaves_the_cart_and_basket():
    # Minutes out of order (not late): the shop's server sent the purchase and the removal,
    # the app its buffered cart adds afterwards.
    live = _live()
    state, plan = _replay(
        live,
        [
            _event("purchase", "tent", NOW + 120),
            _event("add_to_cart", "tent", NOW + 60),
            _event("add_to_cart", "shirt-M", NOW + 100),
            _event("remove_from_cart", "shirt-L", NOW + 130),
            _event("add_to_cart", "shirt-L", NOW + 105),
            _event("purchase", "shirt-M", NOW + 140),
        ],
    )
    assert state.cart == [] and plan.stale_cart_adds == 2 and plan.late_events == 0
    # The removed size was never in the basket: no pair of it with the size bought.
    basket_pairs = {
        (row, other)
        for (row, _), deltas in plan.cooccurrence.items()
        if row.startswith("#b:")
        for _, other, _ in deltas
    }
    assert ("#b:shirt-M", "tent") in basket_pairs  # (the live cart's tent was in the basket)
    assert not any("shirt-L" in row or other == "shirt-L" for row, other in basket_pairs), basket_pairs
    # The adds are still interest in the item (its recent entry), as any event.
    assert {"tent", "shirt-L", "shirt-M"} <= {entry.item_id for entry in state.items}
    # An add after the purchase (a repeat order) goes in as ever.
    again, plan = _replay(state, [_event("add_to_cart", "tent", NOW + 200)])
    assert again.cart == ["tent"] and plan.stale_cart_adds == 0


def test_the_cart_exits_kept_are_the_newest_time_of_the_items_touched_last():
    settings = replace(SETTINGS, cart_left_kept=2)
    state, _ = _replay(
        None,
        [
            _event("purchase", "a", NOW + 10),
            _event("remove_from_cart", "b", NOW + 20),
            _event("remove_from_cart", "a", NOW + 5),  # older than a's purchase: keeps 10
            _event("purchase", "c", NOW + 30),
        ],
        settings,
    )
    assert state.cart_left == {"a": NOW + 10, "c": NOW + 30}
    # b was forgotten: its old add now goes in (the bound's price, as for any late state).
    again, _ = _replay(
        state, [_event("add_to_cart", "b", NOW + 15), _event("add_to_cart", "a", NOW + 9)], settings
    )
    assert again.cart == ["b"]


def test_an_event_exactly_late_event_hours_behind_is_not_late_one_second_more_is():
    live = _live()  # newest recent item at NOW + 20
    edge = NOW + 20 - SETTINGS.late_event_seconds
    _, plan = _replay(live, [_event("view", "edge", edge)])
    assert plan.late_events == 0
    _, plan = _replay(live, [_event("view", "past", edge - 1)])
    assert plan.late_events == 1


def test_with_late_events_off_every_cart_add_applies_in_arrival_order():
    # For producers whose clocks disagree: an app a week behind re-adds an item bought.
    settings = replace(SETTINGS, late_event_hours=0)
    state, _ = _replay(None, [_event("purchase", "filter", NOW)], settings)
    again, plan = _replay(state, [_event("add_to_cart", "filter", NOW - 7 * DAY)], settings)
    assert again.cart == ["filter"] and plan.stale_cart_adds == 0
