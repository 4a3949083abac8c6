"""Cross-sell: basket counting and complement scoring on hand-computed baskets, and the
validation of the two routes."""

from __future__ import annotations

import json
import math

import pytest

from streamrec.evaluation.engine import InMemoryEngine
from streamrec.http_api import build_app
from streamrec.settings import Settings

T0 = 1_764_000_000


def _purchase(n: int, user: str, item: str, basket: str | None, kind: str = "purchase", at: int = 0) -> dict:
    event = {"event_id": f"e{n}", "event_type": kind, "user_id": user, "item_id": item, "timestamp": T0 + at}
    if basket:
        event["basket_id"] = basket
    return event


# Four baskets: {a, b, c}, {a, b}, {a, d}, {c, d}. Basket counts: a 3, b 2, c 2, d 2; N = 4.
# Pairs with a: b 2, c 1, d 1.
BASKETS = [("o1", "u1", "abc"), ("o2", "u2", "ab"), ("o3", "u1", "ad"), ("o4", "u3", "cd")]


# The unit tests pin the scoring they check; the production defaults are tuned on P3.
PLAIN = {
    "cross_sell_measure": "confidence",
    "cross_sell_min_support": 1,
    "cross_sell_aggregate": "sum",
    "cross_sell_history_weight": 0.0,
}


def _engine(**overrides) -> InMemoryEngine:
    engine = InMemoryEngine(Settings(**{**PLAIN, **overrides}), eager=True)
    events, n = [], 0
    for basket, user, items in BASKETS:
        for item in items:
            events.append(_purchase(n, user, item, basket, at=n))
            n += 1
    engine.ingest(events)
    return engine


def _xlogx(*values: float) -> float:
    return sum(v * math.log(v) for v in values if v > 0)


def _llr(k11: float, k12: float, k21: float, k22: float) -> float:
    n = k11 + k12 + k21 + k22
    row = _xlogx(n) - _xlogx(k11 + k12, k21 + k22)
    col = _xlogx(n) - _xlogx(k11 + k21, k12 + k22)
    mat = _xlogx(n) - _xlogx(k11, k12, k21, k22)
    return max(0.0, 2 * (row + col - mat))


def test_basket_counts_are_kept_apart_from_view_counts():
    engine = _engine()
    stats = engine.item_stats.get_many(["a", "b", "c", "d", "#totals"])
    assert {i: s.baskets for i, s in stats.items()} == {"a": 3, "b": 2, "c": 2, "d": 2, "#totals": 4}
    pairs = engine.cooccurrence.get_rows(["#b:a"])["#b:a"]
    assert pairs == {"b": 2.0, "c": 1.0, "d": 1.0}


def test_complements_by_confidence_and_llr_match_hand_computation():
    row = _engine(cross_sell_measure="confidence").similarity.rows["a"]
    assert [(n.item_id, n.score) for n in row.complements] == [
        ("b", pytest.approx(2 / 3)),
        ("c", pytest.approx(1 / 3)),
        ("d", pytest.approx(1 / 3)),
    ]
    row = _engine(cross_sell_measure="llr").similarity.rows["a"]
    got = {n.item_id: n.score for n in row.complements}
    # k11 = both, k12 = partner without a, k21 = a without partner, k22 = neither.
    assert got["b"] == pytest.approx(_llr(2, 0, 1, 1))
    # c and d share 1 basket with a where chance gives 3 * 2 / 4 = 1.5: G² of (1, 1, 2, 0)
    # is positive, but they are bought with a less often than at random, so not complements.
    assert _llr(1, 1, 2, 0) > 0
    assert set(got) == {"b"}


def test_complements_by_added_value_match_hand_computation():
    # Row of a (in 3 of N = 4 baskets): P(b|a) = 2/3, P(b) = 2/4; P(c|a) = P(d|a) = 1/3,
    # P(c) = P(d) = 2/4. With penalty 1 only b is bought with a more often than at random.
    row = _engine(cross_sell_measure="added_value", cross_sell_popularity_penalty=1.0).similarity.rows["a"]
    assert [(n.item_id, n.score) for n in row.complements] == [("b", pytest.approx(2 / 3 - 1 / 2))]
    row = _engine(cross_sell_measure="added_value", cross_sell_popularity_penalty=0.5).similarity.rows["a"]
    assert [(n.item_id, n.score) for n in row.complements] == [
        ("b", pytest.approx(2 / 3 - 1 / 4)),
        ("c", pytest.approx(1 / 3 - 1 / 4)),
        ("d", pytest.approx(1 / 3 - 1 / 4)),
    ]


def test_the_default_measure_does_not_suggest_an_item_that_is_in_every_basket():
    # "bag" is in all 10 baskets; "glue" only with "paper" (in 2 of paper's 3 baskets).
    baskets = [("p1", "paper glue"), ("p2", "paper glue"), ("p3", "paper")]
    baskets += [(f"x{n}", "pen ink") for n in range(7)]
    events, n = [], 0
    for basket, items in baskets:
        for item in ["bag", *items.split()]:
            events.append(_purchase(n, f"u{basket}", item, basket, at=n))
            n += 1
    defaults = InMemoryEngine(Settings(cross_sell_history_weight=0.0), eager=True)
    defaults.ingest(events)
    assert [n.item_id for n in defaults.similarity.rows["paper"].complements] == ["glue"]
    confidence = InMemoryEngine(
        Settings(cross_sell_measure="confidence", cross_sell_history_weight=0.0), eager=True
    )
    confidence.ingest(events)
    assert [n.item_id for n in confidence.similarity.rows["paper"].complements] == ["bag", "glue"]


def test_min_support_drops_rare_pairs():
    row = _engine(cross_sell_measure="confidence", cross_sell_min_support=2).similarity.rows["a"]
    assert [n.item_id for n in row.complements] == ["b"]


def test_cross_sell_sums_over_the_cart_and_names_the_partner():
    engine = _engine(cross_sell_measure="confidence")
    # cart {a, c}: b scores conf(a->b) + conf(c->b) = 2/3 + 1/2, d scores 1/3 + 1/2.
    result = engine.cross_sell(["a", "c"], k=2)
    assert [(r.item_id, r.score) for r in result.items] == [
        ("b", pytest.approx(2 / 3 + 1 / 2)),
        ("d", pytest.approx(1 / 3 + 1 / 2)),
    ]
    assert result.items[0].because == ["a"]  # a contributed more to b
    assert result.items[1].because == ["c"]
    assert "a" not in [r.item_id for r in result.items]  # cart items never come back

    maxed = _engine(cross_sell_measure="confidence", cross_sell_aggregate="max").cross_sell(["a", "c"], k=2)
    assert [(r.item_id, r.score) for r in maxed.items] == [
        ("b", pytest.approx(2 / 3)),
        ("d", pytest.approx(1 / 2)),
    ]

    blended = _engine(
        cross_sell_measure="confidence", cross_sell_aggregate="max", cross_sell_sum_weight=0.1
    ).cross_sell(["a", "c"], k=2)
    assert [(r.item_id, r.score) for r in blended.items] == [
        ("b", pytest.approx(2 / 3 + 0.1 * (2 / 3 + 1 / 2))),
        ("d", pytest.approx(1 / 2 + 0.1 * (1 / 3 + 1 / 2))),
    ]


def test_implicit_baskets_split_on_the_time_gap_and_a_new_basket_id():
    engine = InMemoryEngine(Settings(basket_gap_hours=1.0), eager=True)
    engine.ingest(
        [
            _purchase(0, "u", "x", None, at=0),
            _purchase(1, "u", "y", None, at=600),  # same basket
            _purchase(2, "u", "z", None, at=600 + 7200),  # gap: new basket
            _purchase(3, "u", "w", "o9", at=600 + 7300),  # an id: new basket
            _purchase(4, "u", "z", "o9", at=600 + 7400),
            _purchase(4, "u", "z", "o9", at=600 + 7400),  # producer retry: ignored
            _purchase(5, "u", "v", None, kind="view", at=600 + 7500),  # views never count
        ]
    )
    rows = engine.cooccurrence.get_rows(["#b:x", "#b:z", "#b:v"])
    assert rows == {"#b:x": {"y": 1.0}, "#b:z": {"w": 1.0}, "#b:v": {}}
    assert engine.item_stats.get_many(["#totals"])["#totals"].baskets == 3


def test_an_abandoned_cart_does_not_pair_its_items_with_the_next_cart_weeks_later():
    # A tent carted and left; 40 days later the user carts and buys a phone case. The open
    # cart kept its basket open for good, so the tent was "often in baskets with" it.
    engine = InMemoryEngine(Settings(**PLAIN), eager=True)
    day = 86_400
    engine.ingest(
        [
            _purchase(0, "u", "tent", None, kind="add_to_cart", at=0),
            _purchase(1, "u", "case", None, kind="add_to_cart", at=40 * day),
            _purchase(2, "u", "case", None, at=40 * day + 60),
            # within basket_open_cart_days (7) of its latest event, a cart is picked up again
            _purchase(3, "v", "tent", None, kind="add_to_cart", at=0),
            _purchase(4, "v", "case", None, kind="add_to_cart", at=6 * day),
        ]
    )
    assert engine.cooccurrence.get_rows(["#b:tent"]) == {"#b:tent": {"case": 1.0}}
    assert engine.item_stats.get_many(["#totals"])["#totals"].baskets == 3


def test_a_cart_not_checked_out_stays_one_basket_past_the_gap():
    # Carted, picked up again two days later with one more item, then checked out: one
    # basket (its first items were counted in a basket of their own, then again).
    engine = InMemoryEngine(Settings(**PLAIN), eager=True)
    day = 86_400
    lines = [
        ("a", "add_to_cart", None, 0),
        ("b", "add_to_cart", None, 1),
        ("c", "add_to_cart", None, 2 * day),
    ]
    lines += [(item, "purchase", "o-1", 2 * day + n) for n, item in enumerate("abc", 1)]
    engine.ingest([_purchase(n, "u", i, b, kind=k, at=at) for n, (i, k, b, at) in enumerate(lines)])
    stats = engine.item_stats.get_many(["a", "b", "c", "#totals"])
    assert {i: s.baskets for i, s in stats.items()} == {"a": 1, "b": 1, "c": 1, "#totals": 1}
    assert _pairs(engine, "a")["#b:a"] == {"b": 1.0, "c": 1.0}
    assert engine.users.get("u").cart == []
    # Without ids, and with a line bought at once at checkout: the same one basket.
    engine = InMemoryEngine(Settings(**PLAIN), eager=True)
    lines = [(i, "add_to_cart", None, at) for i, at in (("a", 0), ("b", 1), ("c", 2 * day))]
    lines += [(item, "purchase", None, 2 * day + n) for n, item in enumerate("abcd", 1)]
    engine.ingest([_purchase(n, "u", i, b, kind=k, at=at) for n, (i, k, b, at) in enumerate(lines)])
    stats = engine.item_stats.get_many(["a", "b", "c", "d", "#totals"])
    assert {i: s.baskets for i, s in stats.items()} == {"a": 1, "b": 1, "c": 1, "d": 1, "#totals": 1}


def test_a_basket_counts_its_first_basket_items_kept_items_each_once():
    engine = InMemoryEngine(Settings(basket_items_kept=3), eager=True)
    # a, b, c fill the basket; d is past the cap; a again is already counted.
    engine.ingest([_purchase(n, "u", item, "o1", kind="add_to_cart", at=n) for n, item in enumerate("abcda")])
    stats = engine.item_stats.get_many(["a", "b", "c", "d", "#totals"])
    assert {i: s.baskets for i, s in stats.items()} == {"a": 1, "b": 1, "c": 1, "d": 0, "#totals": 1}
    assert engine.cooccurrence.get_rows(["#b:a"])["#b:a"] == {"b": 1.0, "c": 1.0}
    assert engine.users.get("u").basket == ["a", "b", "c"]


def test_returning_to_an_earlier_basket_id_starts_a_new_basket():
    # A basket is a run of one user's events with the same basket_id (the row keeps one
    # basket): o1, o2, o1 are three baskets, as docs/cross-sell.md says (the cart holding nothing
    # of o2's: else o1's purchase is o2's checkout).
    engine = InMemoryEngine(Settings(), eager=True)
    engine.ingest(
        [
            _purchase(0, "u", "a", "o1", at=1),
            _purchase(1, "u", "b", "o2", at=2),
            _purchase(2, "u", "c", "o1", at=3),
        ]
    )
    assert engine.item_stats.get_many(["#totals"])["#totals"].baskets == 3
    assert engine.cooccurrence.get_rows(["#b:a"])["#b:a"] == {}


def test_empty_cart_of_a_known_user_gets_their_past_purchases():
    engine = _engine(cross_sell_measure="confidence", cross_sell_history_weight=0.3)
    engine.ingest([_purchase(60, "newbie", "d", "o6", at=200)])
    engine.flush()
    result = engine.cross_sell_service.for_user("newbie", k=2)
    assert result.items[0].item_id == "d" and result.items[0].reasons == ["you bought it before"]


def test_user_cross_sell_uses_the_cart_minus_removed_and_bought():
    engine = _engine(cross_sell_measure="confidence")
    engine.ingest(
        [
            _purchase(100, "shopper", "a", None, kind="add_to_cart", at=1000),
            _purchase(101, "shopper", "d", None, kind="add_to_cart", at=1001),
            _purchase(102, "shopper", "d", None, kind="remove_from_cart", at=1002),
        ]
    )
    engine.flush()
    result = engine.cross_sell_service.for_user("shopper", k=3)
    assert engine.users.get("shopper").cart == ["a"]
    assert result.items[0].item_id == "b" and result.items[0].because == ["a"]
    assert "a" not in [r.item_id for r in result.items]


def test_a_long_cart_is_read_from_its_newest_items():
    # 60 filler items first, then a: a cart longer than CROSS_SELL_MAX_ITEMS (50) must still
    # count a, its newest item, and still exclude every older one from the answer.
    engine = _engine(cross_sell_measure="confidence")
    fillers = [
        _purchase(200 + n, "hoarder", f"filler{n}", None, kind="add_to_cart", at=2000 + n) for n in range(60)
    ]
    engine.ingest([*fillers, _purchase(300, "hoarder", "a", None, kind="add_to_cart", at=3000)])
    engine.flush()
    assert len(engine.users.get("hoarder").cart) == 61
    result = engine.cross_sell_service.for_user("hoarder", k=3)
    assert result.items[0].item_id == "b" and result.items[0].because == ["a"]
    assert not {r.item_id for r in result.items} & {f"filler{n}" for n in range(60)}


# ---- The routes' validation ---------------------------------------------------------------------
def _request(app, method: str, path: str, body=None, query: str = "") -> tuple[int, dict]:
    event = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json"},
        "queryStringParameters": dict(p.split("=", 1) for p in query.split("&")) if query else None,
        "requestContext": {"http": {"method": method, "path": path}, "requestId": "r", "stage": "$default"},
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    response = build_app(_engine().recommendations).resolve(event, None)
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"items": []}, "items must be a list of 1..50 item ids"),
        (
            {"items": [f"i{n}" for n in range(51)]},
            "items holds 51 ids; items must be a list of 1..50 item ids",
        ),
        (
            {"items": ["ok", "#bad"]},
            'items[1] is "#bad", not an item id; items must be a list of 1..50 item ids',
        ),
        ({"items": ["ok", None]}, "items[1] is null, not an item id; items must be"),
        ({"items": [7]}, "items[0] is a number, not an item id; items must be"),
        (
            {"items": ["#bad", "x y", "ok"]},
            'items[0] is "#bad", not an item id; items[1] is "x y", not an item id; items must be a list of',
        ),
        (
            {"items": ["a"], "exclude": [f"#{n}" for n in range(8)]},
            "; ".join(f'exclude[{n}] is "#{n}", not an item id' for n in range(5))
            + "; 3 more entries of exclude are not item ids; exclude must be a list of at most 100 item ids",
        ),
        ({"items": ["x" * 200]}, f'items[0] is "{"x" * 59}…", not an item id; items must be'),
        (
            {"items": ["a"], "exclude": ["x/y"]},
            'exclude[0] is "x/y", not an item id; exclude must be a list of at most',
        ),
        ({"items": "a"}, "items must be a list of 1..50 item ids"),
        ({}, "items must be a list of 1..50 item ids"),
        ({"items": ["a"], "k": 0}, "k must be an integer between 1 and 100"),
        ({"items": ["a"], "k": 101}, "k must be an integer between 1 and 100"),
        ({"items": ["a"], "user_id": "no spaces"}, "user_id is malformed"),
        ({"items": ["a"], "colour": "red"}, "unknown field 'colour'; expected items, user_id, k,"),
        (
            {"items": ["a"], "colour": "red", "size": 1},
            "unknown fields 'colour', 'size'; expected items, user_id, k, category, exclude, in_stock",
        ),
        ("{not json", "the body must be a JSON object"),
        ([1, 2], "the body must be a JSON object"),
    ],
)
def test_bad_cross_sell_bodies_are_400_with_a_clear_message(body, message):
    status, answer = _request(None, "POST", "/cross-sell", body)
    assert status == 400, answer
    assert answer["error"] == "bad_request"
    assert answer["message"].startswith(message), answer["message"]


def test_cross_sell_takes_seen_in_the_query_and_the_body():
    listed = {}
    for seen in ("purchased", "history", "none"):
        status, answer = _request(None, "GET", "/users/u1/cross-sell", query=f"seen={seen}")
        assert status == 200, answer
        listed[seen] = [item["item_id"] for item in answer["items"]]
    # u1 (empty cart) bought a, b, c and d: their past purchases, or nothing.
    assert sorted(listed["none"]) == ["a", "b", "c", "d"]
    assert listed["purchased"] == listed["history"] == []
    status, answer = _request(
        None, "POST", "/cross-sell", {"items": ["a"], "user_id": "u1", "seen": "purchased"}
    )
    assert status == 200 and not {i["item_id"] for i in answer["items"]} & {"a", "b", "c", "d"}
    status, answer = _request(None, "GET", "/users/u1/cross-sell", query="seen=bought")
    assert (status, answer["message"]) == (400, "seen must be one of purchased, history, none")
    status, answer = _request(None, "POST", "/cross-sell", {"items": ["a"], "seen": "bought"})
    assert status == 400 and answer["message"].startswith("seen must be one of purchased, history, none")


def test_good_cross_sell_body_and_bad_user_route():
    status, answer = _request(None, "POST", "/cross-sell", {"items": ["a"], "k": 2, "user_id": "u1"})
    assert status == 200 and answer["fallback"] is False
    assert len(answer["items"]) == 2 and {i["item_id"] for i in answer["items"]} <= {"b", "c", "d"}
    status, answer = _request(None, "GET", "/users/u1/cross-sell", query="k=0")
    assert status == 400 and answer["message"] == "k must be an integer between 1 and 100"


def test_known_users_past_purchases_are_boosted_by_recency():
    engine = _engine(
        cross_sell_measure="confidence", cross_sell_history_weight=0.5, cross_sell_history_decay=1.0
    )
    engine.ingest([_purchase(50, "u1", "e", "o5", at=100)])
    engine.flush()
    # u1 bought (newest first) e, d, a, b, c. Cart {c}: a, b, d each have confidence 1/2 from c
    # (scaled to 1), plus 0.5 / (1 + rank): d 1/2 / 2, a 1/2 / 3, b 1/2 / 4; e only 1/2 / 1.
    result = engine.cross_sell(["c"], k=4, user_id="u1")
    assert [(r.item_id, r.score) for r in result.items] == [
        ("d", pytest.approx(1 + 0.25)),
        ("a", pytest.approx(1 + 0.5 / 3)),
        ("b", pytest.approx(1 + 0.125)),
        ("e", pytest.approx(0.5)),
    ]
    assert result.items[0].reasons == [
        "often in baskets with c, which is in your cart",
        "you bought it before",
    ]
    assert result.items[3].reasons == ["you bought it before"] and result.items[3].because == []
    # without the user, no boost and no e
    assert [r.item_id for r in engine.cross_sell(["c"], k=3).items] == ["a", "b", "d"]
    # A shop of durables asks for none of the user's purchases (seen=purchased): not as
    # complements, not boosted, not as padding; the cart's other complements stay.
    engine.ingest([_purchase(60, "u9", "f", "o9", at=200), _purchase(61, "u9", "c", "o9", at=200)])
    engine.flush()
    durable = engine.cross_sell_service.for_request(["c"], 4, "u1", seen="purchased")
    assert durable.items and not {r.item_id for r in durable.items} & {"a", "b", "c", "d", "e"}
    assert durable.items[0].item_id == "f" and durable.items[0].source == "cross_sell"
    assert "e" in {
        r.item_id for r in engine.cross_sell_service.for_request(["c"], 5, "u1", seen="none").items
    }


# ---- Profile ---------------------------------------------------------------------------------
def _get_profile(app, user: str) -> tuple[int, dict]:
    """GET /users/{user}/profile through the resolver ``app``: (status, body)."""
    response = _profile_response(app, user)
    return response["statusCode"], json.loads(response["body"])


def _profile_response(app, user: str) -> dict:
    """GET /users/{user}/profile through the resolver ``app``: its answer, body unparsed."""
    path = f"/users/{user}/profile"
    event = {
        "version": "2.0",
        "routeKey": "GET /users/{user_id}/profile",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {},
        "pathParameters": {"user_id": user},
        "requestContext": {"http": {"method": "GET", "path": path}, "requestId": "r", "stage": "$default"},
        "isBase64Encoded": False,
    }
    return app.resolve(event, None)


def test_profile_decays_affinities_to_now_and_counts_events():
    weights = {"view": 1.0, "add_to_cart": 2.0, "remove_from_cart": 0.0, "purchase": 4.0}
    engine = InMemoryEngine(Settings(half_life_hours=1.0, event_weights=weights), eager=True)
    engine.ingest(
        [
            {**_purchase(0, "p", "tent", None, kind="view", at=0), "category": "camping"},
            {**_purchase(1, "p", "stove", None, kind="add_to_cart", at=3600), "category": "camping"},
            {**_purchase(2, "p", "mug", None, kind="view", at=3600), "category": "kitchen"},
        ]
    )
    app = build_app(engine.recommendations)
    from streamrec.domain.profile import ProfileService

    profile = ProfileService(engine.settings, engine.users).for_user("p", now=T0 + 7200)
    assert [r["item_id"] for r in profile.recent_items] == ["mug", "stove", "tent"]
    # one hour after the stove (weight 2) and mug (1), two hours after the tent (1)
    assert [r["affinity"] for r in profile.recent_items] == pytest.approx([0.5, 1.0, 0.25])
    assert profile.categories == [
        {"category": "camping", "affinity": pytest.approx(1.25)},
        {"category": "kitchen", "affinity": pytest.approx(0.5)},
    ]
    assert profile.event_counts == {"view": 2, "add_to_cart": 1}
    assert profile.cart == ["stove"] and profile.purchases == 0
    assert not ProfileService(engine.settings, engine.users).for_user("nobody").known

    status, answer = _get_profile(app, "p")
    assert status == 200 and answer["event_counts"] == {"view": 2, "add_to_cart": 1}


def test_profile_lists_recent_items_newest_first_by_event_time_and_the_route_uses_the_apps_clock():
    weights = {"view": 1.0, "add_to_cart": 2.0, "remove_from_cart": 0.0, "purchase": 4.0}
    engine = InMemoryEngine(Settings(half_life_hours=1.0, event_weights=weights), eager=True)
    # x is viewed 10 min before T0 and arrives first; y's older view (2 h before) arrives later.
    engine.ingest([_purchase(0, "p", "x", None, kind="view", at=-600)])
    engine.ingest([{**_purchase(1, "p", "y", None, kind="view", at=-7200), "timestamp": T0 - 7199.6}])
    from streamrec.domain.profile import ProfileService

    profile = ProfileService(engine.settings, engine.users).for_user("p", now=T0)
    assert [(r["item_id"], r["last_seen"]) for r in profile.recent_items] == [
        ("x", "2025-11-24T15:50:00Z"),
        ("y", "2025-11-24T14:00:00Z"),  # to the second, like whole-second events
    ]
    app = build_app(engine.recommendations, clock=lambda: T0)
    status, answer = _get_profile(app, "p")
    assert status == 200
    # Decayed to the app's clock (T0), not to the wall clock.
    assert [r["affinity"] for r in answer["recent_items"]] == pytest.approx(
        [0.5 ** (1 / 6), 0.5 ** (7199.6 / 3600)]
    )


def test_profile_names_an_item_taken_out_of_the_cart_as_recommendations_do():
    engine = InMemoryEngine(Settings(), eager=True)
    engine.ingest(
        [
            _purchase(0, "p", "stove", None, kind="add_to_cart", at=0),
            _purchase(1, "p", "stove", None, kind="remove_from_cart", at=60),
            _purchase(2, "p", "mug", None, kind="add_to_cart", at=120),
        ]
    )
    from streamrec.domain.profile import ProfileService

    profile = ProfileService(engine.settings, engine.users).for_user("p", now=T0 + 180)
    assert profile.cart == ["mug"]
    # The stored kind of the stove is still its strongest event, add_to_cart; like the
    # recommendations' "because you looked at stove", the profile says it was taken out.
    assert {r["item_id"]: r["kind"] for r in profile.recent_items} == {
        "stove": "remove_from_cart",
        "mug": "add_to_cart",
    }
    state = engine.users.get("p")
    assert state is not None and state.find("stove").kind == "add_to_cart"


def test_answers_carry_non_ascii_text_as_utf8_not_escapes():
    engine = InMemoryEngine(Settings(), eager=True)
    engine.ingest([{**_purchase(0, "p", "mug", None, kind="view"), "category": "キッチン"}])
    app = build_app(engine.recommendations, clock=lambda: T0)
    body = _profile_response(app, "p")["body"]
    # 3 bytes a character in UTF-8; the escape "\u30ad" took 6.
    assert '"category":"キッチン"' in body and "\\u" not in body
    assert json.loads(body)["categories"][0]["category"] == "キッチン"


def test_an_answer_escapes_a_lone_surrogate_which_utf8_cannot_carry():
    from streamrec.http_api import answer_json

    assert answer_json({"a": "é\ud800"}) == '{"a":"\\u00e9\\ud800"}'
    assert answer_json({"a": "é"}).encode() == b'{"a":"\xc3\xa9"}'


def test_popular_padding_scores_below_the_lists_own_suggestions():
    engine = _engine(cross_sell_measure="confidence")
    # x (30 views) and y (10) are the most popular items.
    views = [
        _purchase(100 + n, f"v{n}", "x" if n < 30 else "y", None, kind="view", at=100 + n) for n in range(40)
    ]
    engine.ingest(views)
    result = engine.cross_sell(["a"], k=5)
    sources = [r.source for r in result.items]
    assert sources == ["cross_sell"] * 3 + ["popular"] * 2, sources
    scores = [r.score for r in result.items]
    assert scores == sorted(scores, reverse=True)
    assert scores[3] <= scores[2] and scores[4] < scores[3]
    # Without suggestions of its own, a padding item scores its popularity relative to the
    # most popular item (x, in the cart here: y has a third of its views).
    padded_only = engine.cross_sell(["x"], k=1)
    assert [(r.item_id, r.source) for r in padded_only.items] == [("y", "popular")]
    assert padded_only.items[0].score == pytest.approx(10 / 30, rel=0.01)


def test_an_item_taken_out_of_the_cart_leaves_the_basket_and_its_counts():
    # Six shoppers try size 42, take it out and buy size 43: a swap (substitutes), never
    # bought together. Before, each size was the other's complement.
    engine = InMemoryEngine(Settings(**PLAIN), eager=True)
    events, n = [], 0
    for user in range(6):
        for kind, item in (
            ("add_to_cart", "shoe-42"),
            ("remove_from_cart", "shoe-42"),
            ("add_to_cart", "shoe-43"),
            ("purchase", "shoe-43"),
        ):
            events.append(_purchase(n, f"u{user}", item, None, kind=kind, at=n))
            n += 1
    # A cart item that stays is counted, and a removal of an item the cart no longer holds
    # (bought already) takes nothing back.
    events += [
        _purchase(n, "u9", "sock", None, kind="add_to_cart", at=n),
        _purchase(n + 1, "u9", "tent", None, at=n + 1),
        _purchase(n + 2, "u9", "tent", None, kind="remove_from_cart", at=n + 2),
    ]
    engine.ingest(events)
    rows = engine.cooccurrence.get_rows(["#b:shoe-42", "#b:shoe-43", "#b:sock"])
    assert {item: {j: c for j, c in row.items() if c} for item, row in rows.items()} == {
        "#b:shoe-42": {},
        "#b:shoe-43": {},
        "#b:sock": {"tent": 1.0},
    }
    stats = engine.item_stats.get_many(["shoe-42", "shoe-43", "tent", "#totals"])
    assert (stats["shoe-42"].baskets, stats["shoe-43"].baskets, stats["tent"].baskets) == (0, 6, 1)
    # A basket emptied by the removal is no basket: one per shopper (N), not two.
    assert stats["#totals"].baskets == 6 + 1
    status, body = _request(build_app(engine.recommendations), "POST", "/cross-sell", {"items": ["shoe-43"]})
    assert status == 200 and all(
        item["item_id"] != "shoe-42" or item["source"] == "popular" for item in body["items"]
    )


def test_a_removal_after_the_implicit_basket_is_over_takes_nothing_back():
    # Over: a purchase counted in it and the gap has passed. A cart not checked out is not
    # over: an item taken out of it days later was never bought with the others, whether
    # the removal comes before or after their checkout.
    engine = InMemoryEngine(Settings(**{**PLAIN, "basket_gap_hours": 1.0}), eager=True)
    engine.ingest(
        [
            _purchase(0, "u", "a", None, at=0),
            _purchase(1, "u", "b", None, kind="add_to_cart", at=60),
            _purchase(2, "u", "b", None, kind="remove_from_cart", at=60 + 7200),  # basket over
        ]
    )
    assert engine.cooccurrence.get_rows(["#b:a"])["#b:a"] == {"b": 1.0}
    for removal_first in (True, False):
        engine = InMemoryEngine(Settings(**{**PLAIN, "basket_gap_hours": 1.0}), eager=True)
        removal = _purchase(2, "v", "b", None, kind="remove_from_cart", at=7200)
        checkout = _purchase(3, "v", "a", "o-1", at=7300)
        cart = [_purchase(0, "v", "a", None, kind="add_to_cart", at=0)]
        cart.append(_purchase(1, "v", "b", None, kind="add_to_cart", at=1))
        engine.ingest(cart + ([removal, checkout] if removal_first else [checkout, removal]))
        assert _pairs(engine, "a") == {"#b:a": {}}, removal_first
        assert engine.item_stats.get_many(["b"])["b"].baskets == 0


def test_an_item_bought_in_the_basket_is_never_taken_back():
    # Bought with a, then put in the cart again and taken out: still bought with a.
    engine = InMemoryEngine(Settings(**PLAIN), eager=True)
    engine.ingest(
        [
            _purchase(0, "u", "a", None, at=0),
            _purchase(1, "u", "x", None, at=1),
            _purchase(2, "u", "x", None, kind="add_to_cart", at=2),
            _purchase(3, "u", "x", None, kind="remove_from_cart", at=3),
        ]
    )
    assert engine.cooccurrence.get_rows(["#b:a"])["#b:a"] == {"x": 1.0}
    assert engine.item_stats.get_many(["x"])["x"].baskets == 1


def test_a_late_removal_that_empties_the_cart_leaves_the_basket_too():
    day = 86_400
    engine = InMemoryEngine(Settings(**PLAIN), eager=True)
    events = [_purchase(0, "u", "lamp", None, kind="add_to_cart", at=0)]
    events += [_purchase(1, "u", "sock", None, kind="add_to_cart", at=60)]
    events += [_purchase(2 + n, "u", f"v{n}", None, kind="view", at=3 * day + n) for n in range(3)]
    events.append(_purchase(9, "u", "lamp", None, kind="remove_from_cart", at=600))  # re-driven, late
    engine.ingest(events)
    assert engine.users.get("u").cart == ["sock"]
    assert {j: c for j, c in engine.cooccurrence.get_rows(["#b:sock"])["#b:sock"].items() if c} == {}


def _pairs(engine: InMemoryEngine, *items: str) -> dict[str, dict[str, float]]:
    rows = engine.cooccurrence.get_rows([f"#b:{item}" for item in items])
    return {name: {j: c for j, c in row.items() if c} for name, row in rows.items()}


@pytest.mark.parametrize("cart_id", [None, "cart-1"], ids=["cart-without-id", "cart-id"])
def test_a_checkout_with_an_order_id_completes_the_carts_basket(cart_id):
    # The common producer: cart adds without an id (or with a cart id), then the purchases
    # with the order's id. One basket, not two (each pair was counted twice, N too); a cart
    # item left behind and taken out after the checkout leaves that same basket.
    engine = InMemoryEngine(Settings(**PLAIN), eager=True)
    engine.ingest(
        [
            _purchase(0, "u", "a", cart_id, kind="add_to_cart", at=0),
            _purchase(1, "u", "b", cart_id, kind="add_to_cart", at=1),
            _purchase(2, "u", "c", cart_id, kind="add_to_cart", at=2),
            _purchase(3, "u", "a", "o-1", at=3),
            _purchase(4, "u", "b", "o-1", at=4),
            _purchase(5, "u", "d", "o-1", at=5),  # bought at once, never carted: the same order
            _purchase(6, "u", "c", None, kind="remove_from_cart", at=6),
        ]
    )
    assert _pairs(engine, "a", "c") == {"#b:a": {"b": 1.0, "d": 1.0}, "#b:c": {}}
    stats = engine.item_stats.get_many(["a", "b", "c", "d", "#totals"])
    assert {i: s.baskets for i, s in stats.items()} == {"a": 1, "b": 1, "c": 0, "d": 1, "#totals": 1}
    # The next order is a basket of its own, whatever it holds.
    engine.ingest([_purchase(7, "u", "a", "o-2", at=100), _purchase(8, "u", "e", "o-2", at=101)])
    assert _pairs(engine, "e") == {"#b:e": {"a": 1.0}}
    assert engine.item_stats.get_many(["#totals"])["#totals"].baskets == 2


HOUR = 3600


@pytest.mark.parametrize(
    "lines",
    [
        # The order's first line never carted: the cart's items follow.
        [("a", "add_to_cart", None, 0), ("b", "add_to_cart", None, 1), ("d", "purchase", "o-1", 2)]
        + [("a", "purchase", "o-1", 3), ("b", "purchase", "o-1", 4)],
        # A named cart checked out a day and a half later: its carted lines complete it.
        [("a", "add_to_cart", "cart-1", 0), ("b", "add_to_cart", "cart-1", 60)]
        + [("a", "purchase", "o-1", 36 * HOUR), ("b", "purchase", "o-1", 36 * HOUR + 1)],
        # Checked out without ids, days after the cart adds (or across the gap: 0 h, 20 h, 25 h).
        [("a", "add_to_cart", None, 0), ("b", "add_to_cart", None, 60)]
        + [("a", "purchase", None, 72 * HOUR), ("b", "purchase", None, 72 * HOUR + 1)],
        [("a", "add_to_cart", None, 0), ("b", "add_to_cart", None, 20 * HOUR)]
        + [("a", "purchase", None, 25 * HOUR), ("b", "purchase", None, 25 * HOUR + 1)],
        # Bought, carted again with another item, then the order: within the gap, one trip.
        [("a", "purchase", None, 0), ("a", "add_to_cart", None, 1), ("b", "add_to_cart", None, 2)]
        + [("a", "purchase", "o-1", 3), ("b", "purchase", "o-1", 4)],
    ],
    ids=[
        "uncarted-first-line",
        "named-cart-checked-out-later",
        "no-ids-days-later",
        "no-ids-across-the-gap",
        "bought-then-carted-again",
    ],
)
def test_a_checkout_counts_each_pair_once(lines):
    engine = InMemoryEngine(Settings(**PLAIN), eager=True)
    engine.ingest(
        [
            _purchase(n, "u", item, basket, kind=kind, at=at)
            for n, (item, kind, basket, at) in enumerate(lines)
        ]
    )
    assert _pairs(engine, "a")["#b:a"]["b"] == 1.0
    stats = engine.item_stats.get_many(["a", "b", "#totals"])
    assert {i: s.baskets for i, s in stats.items()} == {"a": 1, "b": 1, "#totals": 1}


def test_a_forgotten_cart_item_does_not_chain_later_orders_into_one_basket():
    # a stays in the cart: the first order completes its basket, the next orders are
    # baskets of their own (each joining had reset the gap: one basket for days), also the
    # one that buys a at last, a month later, whatever the order of its lines.
    orders = [("x", 1), ("z", 20), ("w", 40), ("v", 60)]
    engine = InMemoryEngine(Settings(**PLAIN), eager=True)
    engine.ingest(
        [_purchase(0, "u", "a", None, kind="add_to_cart", at=0)]
        + [_purchase(n, "u", item, f"o{n}", at=hours * HOUR) for n, (item, hours) in enumerate(orders, 1)]
    )
    assert _pairs(engine, "a", "z") == {"#b:a": {"x": 1.0}, "#b:z": {}}
    assert engine.item_stats.get_many(["#totals"])["#totals"].baskets == 4
    for lines in ("ay", "ya"):
        engine = InMemoryEngine(Settings(**PLAIN), eager=True)
        events = [
            _purchase(0, "u", "a", None, kind="add_to_cart", at=0),
            _purchase(1, "u", "x", "o-1", at=60),
        ]
        month = 30 * 86_400
        events += [_purchase(2 + n, "u", item, "o-2", at=month + n) for n, item in enumerate(lines)]
        engine.ingest(events)
        assert _pairs(engine, "x", "y") == {"#b:x": {"a": 1.0}, "#b:y": {"a": 1.0}}, lines


def test_a_cart_older_than_the_gap_is_not_completed_by_an_order_of_other_items():
    # A leftover in a cart named weeks ago, or a cart add stamped 40 hours after an order's
    # line that arrives after it: the order is a basket of its own.
    engine = InMemoryEngine(Settings(**PLAIN), eager=True)
    engine.ingest(
        [
            _purchase(0, "u", "a", "cart-1", kind="add_to_cart", at=0),
            _purchase(1, "u", "b", "o-7", at=30 * 86_400),
            _purchase(2, "u", "c", "o-7", at=30 * 86_400 + 1),
            _purchase(3, "v", "a", None, kind="add_to_cart", at=40 * HOUR),
            _purchase(4, "v", "e", "o-8", at=0),
        ]
    )
    assert _pairs(engine, "a", "b", "e") == {"#b:a": {}, "#b:b": {"c": 1.0}, "#b:e": {}}
    assert engine.item_stats.get_many(["#totals"])["#totals"].baskets == 4


def test_invoices_of_items_never_carted_stay_apart():
    # Purchases alone (no cart events), each invoice its own id: an item bought again on a
    # later invoice does not pull that invoice into the earlier one.
    engine = InMemoryEngine(Settings(**PLAIN), eager=True)
    engine.ingest(
        [
            _purchase(0, "u", "a", "inv-1", at=0),
            _purchase(1, "u", "b", "inv-1", at=1),
            _purchase(2, "u", "a", "inv-2", at=2),
            _purchase(3, "u", "c", "inv-2", at=3),
        ]
    )
    assert _pairs(engine, "b", "c") == {"#b:b": {"a": 1.0}, "#b:c": {"a": 1.0}}
    assert engine.item_stats.get_many(["#totals"])["#totals"].baskets == 2


def test_an_implicit_basket_spans_at_most_the_gap():
    # A shopper buying every 20 hours (gap 24): each purchase is within the gap of the last,
    # but weeks apart from the first. Before, it all was one basket, which stopped counting
    # at its 50th item; now two purchases 20 hours apart share one, the third starts anew.
    day = 86_400
    engine = InMemoryEngine(Settings(**PLAIN), eager=True)
    engine.ingest([_purchase(n, "u", f"i{n}", None, at=n * 20 * 3600) for n in range(60)])
    assert _pairs(engine, "i0", "i55") == {"#b:i0": {"i1": 1.0}, "#b:i55": {"i54": 1.0}}
    stats = engine.item_stats.get_many(["i0", "i55", "#totals"])
    assert {i: s.baskets for i, s in stats.items()} == {"i0": 1, "i55": 1, "#totals": 30}
    # An event stamped before the basket joins it only within the gap of its latest event.
    engine = InMemoryEngine(Settings(**PLAIN), eager=True)
    engine.ingest(
        [
            _purchase(0, "v", "a", None, at=30 * 3600),
            _purchase(1, "v", "b", None, at=30 * 3600 + 60),
            _purchase(2, "v", "c", None, at=0),  # arrives after them: 30 hours older
            _purchase(3, "v", "d", None, at=day),  # 6 hours before a: within the gap
        ]
    )
    assert _pairs(engine, "a", "c", "d") == {
        "#b:a": {"b": 1.0},
        "#b:c": {"d": 1.0},  # c opened a basket of its own, which d joined
        "#b:d": {"c": 1.0},
    }
