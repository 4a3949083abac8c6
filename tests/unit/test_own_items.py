"""The user's own items in "recommended for you": the cart under ``seen=history``, and a
recent item's category when its events carried none."""

from __future__ import annotations

from typing import Any

import pytest

from streamrec.domain.filters import ListFilter
from streamrec.domain.recommend import EXCLUDE_HISTORY, own_items
from streamrec.evaluation.engine import InMemoryEngine
from streamrec.repositories.memory import InMemoryCatalogRepository
from streamrec.settings import Settings

T0 = 1_764_000_000


def _event(n: int, kind: str, user: str, item: str, category: str | None = "camping") -> dict[str, Any]:
    event = {"event_id": f"e{n}", "event_type": kind, "user_id": user, "item_id": item, "timestamp": T0 + n}
    if category:
        event["category"] = category
    return event


def _ids(result: Any) -> list[str]:
    return [item.item_id for item in result.items]


def test_seen_history_leaves_out_a_cart_item_the_recent_window_let_go() -> None:
    engine = InMemoryEngine(Settings(history_length=3), eager=True)
    events = [_event(n, "view", f"o{n}", item) for n in range(6) for item in ("tent", "lantern", "stove")]
    events = [{**e, "event_id": f"o{i}"} for i, e in enumerate(events)]  # ids unique per user
    events.append(_event(100, "add_to_cart", "me", "lantern"))
    events += [_event(101 + n, "view", "me", item) for n, item in enumerate(["a", "b", "tent"])]
    engine.ingest(events)
    state = engine.users.get("me")
    assert state is not None and state.cart == ["lantern"]
    assert "lantern" not in [entry.item_id for entry in state.items]  # out of the window of 3

    everything = engine.recommendations.for_user("me", 10, exclude="none")
    lantern = next(item for item in everything.items if item.item_id == "lantern")
    # The user's own item says so, not "because you viewed tent".
    assert lantern.reasons == ["you recently looked at lantern"]
    unseen = engine.recommendations.for_user("me", 10, exclude=EXCLUDE_HISTORY)
    assert "lantern" not in _ids(unseen)
    assert "stove" in _ids(unseen)  # a neighbour of tent the user never touched


def test_a_recent_items_category_from_its_row_when_its_events_named_none() -> None:
    engine = InMemoryEngine(Settings(), eager=True, catalog=InMemoryCatalogRepository())
    engine.ingest([_event(1, "view", "me", "tent-1", category=None)])  # before its catalog record
    record = {
        "event_type": "item_upsert",
        "item_id": "tent-1",
        "title": "Dome tent",
        "category": "camping",
        "price": 10.0,
        "in_stock": True,
        "tags": ["tent"],
        "timestamp": T0 + 10,
    }
    engine.upsert_catalog([record])
    state = engine.users.get("me")
    assert state is not None and state.items[0].category is None

    camping = engine.recommendations.for_user("me", 5, list_filter=ListFilter(category="camping"))
    assert _ids(camping) == ["tent-1"]
    assert _ids(engine.recommendations.for_user("me", 5, list_filter=ListFilter(category="garden"))) == []


def test_a_purchase_is_never_recommended_back_unless_asked_for() -> None:
    # Bought items are left out by default and under seen=history; exclude=none (consumables)
    # lets them come back.
    engine = InMemoryEngine(Settings(), eager=True)
    events = [_event(n, "view", f"o{n}", item) for n in range(6) for item in ("tent", "lantern", "stove")]
    events = [{**e, "event_id": f"o{i}"} for i, e in enumerate(events)]
    events += [_event(100, "view", "me", "tent"), _event(101, "purchase", "me", "lantern")]
    engine.ingest(events)
    assert "lantern" not in _ids(engine.recommendations.for_user("me", 10))
    assert "lantern" not in _ids(engine.recommendations.for_user("me", 10, exclude=EXCLUDE_HISTORY))
    assert "lantern" in _ids(engine.recommendations.for_user("me", 10, exclude="none"))
    assert "stove" in _ids(engine.recommendations.for_user("me", 10))


def test_an_unknown_mode_is_refused_on_every_path_not_read_as_purchased() -> None:
    # for_state, cross-sell and coupons take the user's own items from own_items; a mode it
    # does not know must fail there, not answer as if "purchased" had been asked.
    engine = InMemoryEngine(Settings(), eager=True)
    engine.ingest([_event(1, "view", "me", "tent"), _event(2, "purchase", "me", "lantern")])
    state = engine.users.get("me")
    with pytest.raises(ValueError, match="exclude must be one of purchased, history, none, not 'bogus'"):
        own_items(state, "bogus")
    with pytest.raises(ValueError, match="exclude must be one of"):
        engine.recommendations.for_state(state, 10, "bogus")
    # The entry points refuse it before reading anything, in the same words, naming their
    # own parameter.
    with pytest.raises(ValueError, match="exclude must be one of purchased, history, none, not 'bogus'"):
        engine.recommendations.for_user("me", 10, exclude="bogus")
    with pytest.raises(ValueError, match="seen must be one of purchased, history, none, not 'bogus'"):
        engine.cross_sell_service.for_request(["tent"], 10, "me", seen="bogus")
    assert own_items(state, "purchased") == {"lantern"}
    assert own_items(None, "history") == frozenset()
