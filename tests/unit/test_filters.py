"""Filters on the list endpoints: category, excluded ids, and their 400s.

A small shop with two categories: users view kitchen items together and garden items
together, and one user's session crosses over, so every item has neighbours of both kinds.
"""

from __future__ import annotations

import json

import pytest

from streamrec.domain.filters import ListFilter, Unlisted, out_of_stock
from streamrec.domain.model import OUT_OF_STOCK_ROW, PopularList
from streamrec.evaluation.engine import InMemoryEngine
from streamrec.http_api import ID_DESCRIPTION, build_app
from streamrec.settings import Settings

T0 = 1_764_000_000
KITCHEN = ["pan", "pot", "knife", "whisk"]
GARDEN = ["hose", "rake", "spade"]


def _events() -> list[dict]:
    events, n = [], 0
    sessions = [
        ("u1", KITCHEN),
        ("u2", KITCHEN[:3]),
        ("u3", GARDEN),
        ("u4", GARDEN[:2]),
        ("u5", ["pan", "hose", "pot", "rake"]),
    ]
    for user, items in sessions:
        for item in items:
            category = "kitchen" if item in KITCHEN else "garden"
            kind = "purchase" if user == "u5" else "view"
            events.append(
                {
                    "event_id": f"e{n}",
                    "event_type": kind,
                    "user_id": user,
                    "item_id": item,
                    "category": category,
                    "timestamp": T0 + n,
                    "basket_id": f"b-{user}",
                }
            )
            n += 1
    return events


@pytest.fixture(scope="module")
def engine() -> InMemoryEngine:
    # Confidence: in a shop this small, every pair is at or below chance, so the default
    # added_value measure would keep no complement at all.
    engine = InMemoryEngine(Settings(cross_sell_min_support=1, cross_sell_measure="confidence"), eager=True)
    engine.ingest(_events())
    engine.flush()
    return engine


def _ids(result) -> list[str]:
    return [item.item_id for item in result.items]


def test_neighbours_carry_their_category(engine):
    rows, _ = engine.similarity.get_many(["pan"])
    labelled = {n.item_id: n.category for n in rows["pan"].neighbours}
    assert labelled["pot"] == "kitchen" and labelled["hose"] == "garden"


def test_similar_items_by_category(engine):
    unfiltered = _ids(engine.recommendations.similar_items("pan", 10))
    assert {"hose", "pot"} <= set(unfiltered)
    garden = engine.recommendations.similar_items("pan", 10, ListFilter(category="garden"))
    assert garden.items and set(_ids(garden)) <= set(GARDEN)
    # Neighbours first, then garden's popular list pads (never a kitchen item).
    assert garden.items[0].source == "similar"
    assert any(item.reasons == ["popular in garden right now"] for item in garden.items)


def test_excluded_ids_never_come_back(engine):
    without = ListFilter(exclude=frozenset({"pot", "hose"}))
    for result in (
        engine.recommendations.similar_items("pan", 10, without),
        engine.recommendations.for_user("u1", 10, list_filter=without),
        engine.cross_sell_service.for_items(["pan"], 10, list_filter=without),
    ):
        assert result.items and not {"pot", "hose"} & set(_ids(result))


def test_recommendations_and_cross_sell_by_category(engine):
    kitchen_user = engine.recommendations.for_user("u1", 10, list_filter=ListFilter(category="garden"))
    assert kitchen_user.items and set(_ids(kitchen_user)) <= set(GARDEN)
    cross = engine.cross_sell_service.for_items(["pan"], 10, list_filter=ListFilter(category="garden"))
    assert cross.items and set(_ids(cross)) <= set(GARDEN)
    assert cross.items[0].reasons[0].startswith("often in baskets with pan")


def test_unknown_category_gives_an_empty_list(engine):
    result = engine.recommendations.similar_items("pan", 10, ListFilter(category="toys"))
    assert result.items == [] and result.fallback


# ---- HTTP --------------------------------------------------------------------------------------
def _get(engine, path: str, query: str) -> tuple[int, dict]:
    params = dict(p.split("=", 1) for p in query.split("&")) if query else None
    event = {
        "version": "2.0",
        "routeKey": f"GET {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {},
        "queryStringParameters": params,
        "requestContext": {"http": {"method": "GET", "path": path}, "requestId": "r", "stage": "$default"},
        "isBase64Encoded": False,
    }
    response = build_app(engine.recommendations, cross_sell=engine.cross_sell_service).resolve(event, None)
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize("path", ["/users/u1/recommendations", "/items/pan/similar", "/users/u5/cross-sell"])
def test_routes_filter(engine, path):
    status, body = _get(engine, path, "k=5&category=garden&exclude=hose,spade")
    assert status == 200, body
    returned = {item["item_id"] for item in body["items"]}
    assert returned == {"rake"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("exclude=pan,%23bad", "exclude: '#bad' is not an item id"),
        ("exclude=" + ",".join(f"i{n}" for n in range(101)), "exclude holds 101 ids; at most 100"),
        ("category=", "category must be 1..128 characters, not blank, without control characters"),
        ("category=   ", "category must be 1..128 characters, not blank, without control characters"),
        ("category=a\x00b", "category must be 1..128 characters, not blank, without control characters"),
        ("seen=everything", "seen must be one of purchased, history, none"),
        ("in_stock=maybe", "in_stock must be true or false"),
        ("exclude=history", "exclude takes item ids; for the user's own items use seen=history"),
    ],
)
def test_bad_filters_are_400(engine, query, message):
    query = query.replace("%23", "#")
    status, body = _get(engine, "/users/u1/recommendations", query)
    assert status == 400 and message in body["message"], body


def test_an_exclude_over_its_length_says_so(engine):
    status, body = _get(engine, "/users/u1/recommendations", "exclude=" + "x" * 5000)
    assert (status, body["message"]) == (
        400,
        "exclude must be at most 4000 characters of comma-separated item ids",
    )


def test_a_bad_exclude_is_named_with_the_other_bad_parameters(engine):
    status, body = _get(engine, "/users/u1/recommendations", "k=0&exclude=#a,ok,#b")
    assert status == 400
    assert body["message"].split("; ") == [
        "k must be an integer between 1 and 100",
        f"exclude: '#a', '#b' are not item ids ({ID_DESCRIPTION})",
    ]


def test_cross_sell_body_filters(engine):
    app = build_app(engine.recommendations, cross_sell=engine.cross_sell_service)

    def post(body: dict) -> tuple[int, dict]:
        event = {
            "version": "2.0",
            "routeKey": "POST /cross-sell",
            "rawPath": "/cross-sell",
            "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {
                "http": {"method": "POST", "path": "/cross-sell"},
                "requestId": "r",
                "stage": "$default",
            },
            "body": json.dumps(body),
            "isBase64Encoded": False,
        }
        response = app.resolve(event, None)
        return response["statusCode"], json.loads(response["body"])

    status, body = post({"items": ["pan"], "category": "garden", "exclude": ["hose"]})
    assert status == 200 and {i["item_id"] for i in body["items"]} <= {"rake", "spade"} and body["items"]
    status, body = post({"items": ["pan"], "exclude": ["#x"]})
    assert status == 400 and "exclude must be a list of at most 100 item ids" in body["message"]


def test_an_item_named_like_a_seen_mode_is_excluded_once_seen_is_given(engine):
    # "history" is a valid item id: refused alone (the old spelling of seen=history), taken
    # as an item once the request gives seen= itself.
    status, body = _get(engine, "/users/u1/recommendations", "k=5&seen=history&exclude=history")
    assert status == 200, body


def test_the_out_of_stock_set_is_built_once_per_list_and_never_copied():
    entries = [(f"sku-{n:06d}", 0.0) for n in range(1_000)]
    first = out_of_stock({OUT_OF_STOCK_ROW: PopularList(entries, 7, 0)})
    # A warm container's cache hands each request its own copy of the list: same set.
    again = out_of_stock({OUT_OF_STOCK_ROW: PopularList(list(entries), 7, 0)})
    assert again is first and again == {item for item, _ in entries}
    # Another list at the same version (another table, a test's other engine) is read as
    # itself, and so is the next version.
    other = out_of_stock({OUT_OF_STOCK_ROW: PopularList([*entries[:-1], ("sku-x", 0.0)], 7, 0)})
    assert "sku-x" in other and "sku-000999" not in other
    assert out_of_stock({OUT_OF_STOCK_ROW: PopularList(entries[1:], 8, 0)}) == first - {"sku-000000"}
    assert out_of_stock({}) == out_of_stock({OUT_OF_STOCK_ROW: PopularList()}) == frozenset()

    unlisted = Unlisted(frozenset({"pan"}), first) | {"pot"}
    assert unlisted.stock is first  # the big set is shared, not merged
    assert "pan" in unlisted and "pot" in unlisted and "sku-000001" in unlisted
    assert "rake" not in unlisted
