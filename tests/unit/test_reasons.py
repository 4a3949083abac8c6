"""A personalized item's reason names the user's strongest event on the item it came from,
and an item taken out of the cart is no longer "added to your cart"."""

from __future__ import annotations

from streamrec.evaluation.engine import InMemoryEngine
from streamrec.settings import Settings

T0 = 1_764_000_000


def _event(n: int, kind: str, user: str, item: str) -> dict:
    return {"event_id": f"e{n}", "event_type": kind, "user_id": user, "item_id": item, "timestamp": T0 + n}


def _reasons(engine: InMemoryEngine, user: str) -> dict[str, list[str]]:
    result = engine.recommendations.for_user(user, k=5, now=T0 + 100)
    return {r.item_id: r.reasons for r in result.items}


def test_a_cart_item_taken_out_becomes_looked_at():
    engine = InMemoryEngine(Settings(), eager=True)
    # Others view the tent with the stove: the stove is the tent's neighbour.
    engine.ingest([_event(1, "view", "other", "tent"), _event(2, "view", "other", "stove")])
    engine.ingest([_event(3, "add_to_cart", "shopper", "tent")])
    engine.flush()
    assert _reasons(engine, "shopper")["stove"] == ["because you added tent to your cart"]

    engine.ingest([_event(4, "remove_from_cart", "shopper", "tent")])
    engine.flush()
    assert engine.users.get("shopper").cart == []
    assert _reasons(engine, "shopper")["stove"] == ["because you looked at tent"]

    engine.ingest([_event(5, "purchase", "shopper", "tent")])
    engine.flush()
    assert _reasons(engine, "shopper")["stove"] == ["because you bought tent"]
