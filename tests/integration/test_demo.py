"""The demo data of `streamrec run`: events and coupons, answered by the local HTTP API."""

from __future__ import annotations

import json

from streamrec.cli.run import _load_demo_catalog, _load_demo_coupons
from streamrec.http_api import ROUTES
from streamrec.local.demo import demo_coupons, demo_items, demo_users, generate_demo_events
from streamrec.local.stack import LocalStack

from .support import ApiClient


def test_demo_users_get_coupons_of_their_interests(local_stack: LocalStack, api: ApiClient) -> None:
    events = generate_demo_events(600)
    local_stack.put_events(events)
    local_stack.drain(timeout=120)
    loaded = _load_demo_coupons(local_stack, local_stack.outputs()["tables"]["CouponsTable"])
    assert loaded == [record["coupon_id"] for record in demo_coupons()]

    offered_any = False
    for user in demo_users(3, events):
        reply = api.request("GET", f"/users/{user}/coupons?k=5")
        assert reply.status == 200, reply
        coupons = reply.body["coupons"]
        assert "camping-expired" not in {c["coupon_id"] for c in coupons}
        for coupon in coupons:
            assert coupon["reasons"], coupon
        offered_any = offered_any or bool(coupons)
    assert offered_any, "the demo users browse categories that have coupons"

    # A visitor the API does not know gets the shop's most-bought categories' coupons: the
    # demo purchases went through the ingest and the similarity function's
    # #popular_categories list, read by the API.
    reply = api.request("GET", "/users/first-time-visitor/coupons?k=3")
    assert reply.status == 200, reply
    filled = reply.body["coupons"]
    assert filled, "the demo purchases rank categories that have coupons"
    assert "camping-expired" not in {c["coupon_id"] for c in filled}
    for coupon in filled:
        assert coupon["score"] == 0 and "category" in coupon["scope"], coupon
        assert coupon["reasons"][0].startswith("popular in the shop: category "), coupon


def test_every_route_answers_on_the_demo_data(local_stack: LocalStack, api: ApiClient) -> None:
    """Each route of the API, as `streamrec run` serves it, on the demo events and coupons:
    a 2xx answer, and a non-empty list where the demo data has something to list."""
    _load_demo_catalog(local_stack)  # as `streamrec run` loads it, before the events
    events = generate_demo_events(600)
    local_stack.put_events(events)  # already loaded by another test: duplicates are skipped
    local_stack.drain(timeout=120)
    _load_demo_coupons(local_stack, local_stack.outputs()["tables"]["CouponsTable"])
    user = demo_users(1, events)[0]
    item = demo_items(1, events)[0]
    category = next(e["category"] for e in events if e["item_id"] == item)
    coupon = {
        "scope": {"category": category},
        "discount": {"kind": "percent", "value": 10},
        "valid_from": "2025-01-01T00:00:00Z",
        "valid_to": "2035-01-01T00:00:00Z",
        "budget": 10,
    }
    json_headers = {"content-type": "application/json"}
    nearest = api.get(f"/items/{item}/similar?k=5").body["items"][0]["item_id"]
    requests = {
        "GET /health": ("GET", "/health", None, None),
        "GET /users/{user_id}/recommendations": (
            "GET",
            f"/users/{user}/recommendations?k=5&category={category}",
            None,
            "items",
        ),
        "GET /items/{item_id}/similar": (
            "GET",
            f"/items/{item}/similar?k=5&exclude={nearest}",
            None,
            "items",
        ),
        "GET /users/{user_id}/cross-sell": ("GET", f"/users/{user}/cross-sell?k=5", None, "items"),
        "POST /cross-sell": ("POST", "/cross-sell", {"items": [item], "k": 5}, "items"),
        "GET /users/{user_id}/profile": ("GET", f"/users/{user}/profile", None, "recent_items"),
        "GET /users/{user_id}/coupons": ("GET", f"/users/{user}/coupons?k=3", None, None),
        "PUT /coupons/{coupon_id}": ("PUT", "/coupons/route-check", coupon, None),
        "GET /coupons/{coupon_id}": ("GET", f"/coupons/{demo_coupons()[0]['coupon_id']}", None, None),
        "GET /items/trending": ("GET", "/items/trending?window=24h&k=5", None, "items"),
        "GET /items/new": ("GET", "/items/new?k=5", None, "items"),
        "GET /items/{item_id}/demand": ("GET", f"/items/{item}/demand", None, "days"),
        "DELETE /users/{user_id}": ("DELETE", "/users/route-check-user", None, None),
    }
    assert set(requests) == set(ROUTES), "every route has a request here"
    for route, (method, path, body, listed) in requests.items():
        payload = json.dumps(body).encode() if body is not None else None
        reply = api.request(method, path, payload, json_headers if body is not None else None)
        assert 200 <= reply.status < 300, (route, reply.status, reply.body)
        if listed:
            assert reply.body[listed], f"{route}: empty {listed} on the demo data: {reply.body}"
    similar = api.get(f"/items/{item}/similar?k=5&exclude={nearest}").body["items"]
    assert similar and nearest not in {i["item_id"] for i in similar}
    in_category = {e["item_id"] for e in events if e.get("category") == category}
    recommended = api.get(f"/users/{user}/recommendations?k=5&category={category}").body["items"]
    assert {i["item_id"] for i in recommended} <= in_category


def test_demo_catalog_new_item_and_stock(local_stack: LocalStack, api: ApiClient) -> None:
    """`streamrec run`'s catalog: the new tent (no interactions) is found beside the old one
    by content similarity; out-of-stock products appear in no list."""
    from streamrec.cli.run import _load_demo_catalog
    from streamrec.local.demo import DEMO_NEW_ITEM, DEMO_OUT_OF_STOCK

    events = generate_demo_events(600)
    records = _load_demo_catalog(local_stack)
    local_stack.put_events(events)
    local_stack.drain(timeout=180)
    assert {r["item_id"] for r in records} >= {DEMO_NEW_ITEM, *DEMO_OUT_OF_STOCK}

    similar = api.request("GET", "/items/tent-2-person-ultralight/similar?k=10")
    assert similar.status == 200, similar
    listed = [i["item_id"] for i in similar.body["items"]]
    assert DEMO_NEW_ITEM in listed
    replies = [similar]
    replies += [api.request("GET", f"/users/{user}/recommendations?k=50") for user in demo_users(3, events)]
    replies.append(api.request("GET", "/items/camping-stove-2-burner/similar?k=50"))
    body = json.dumps({"items": ["tent-4-person-family"], "k": 50}).encode()
    replies.append(api.request("POST", "/cross-sell", body, {"content-type": "application/json"}))
    replies.append(api.request("GET", "/users/nobody-yet/recommendations?k=100"))  # popular
    for reply in replies:
        assert reply.status == 200, reply
        assert not set(DEMO_OUT_OF_STOCK) & {i["item_id"] for i in reply.body["items"]}, reply
