"""Every operation answers what the OpenAPI document says: the API handler, called with the
sample events of events/ on moto, gives bodies that validate against the documented schema of
the operation and status, with no field the schema does not name."""

from __future__ import annotations

import copy
import json
import time
from typing import Any, get_args

import pytest
from jsonschema import Draft202012Validator

from streamrec.domain import recommend
from streamrec.http_api import ROUTES
from streamrec.http_models import Source
from streamrec.openapi import openapi_document
from tests.unit.conftest import FakeLambdaContext, import_handler, kinesis_event, load_event


def _recent_events(now: float) -> list[dict]:
    """Views and purchases of the camping items in the current hour (trending, demand)."""
    hour = now // 3600 * 3600
    events = [
        {"event_type": "view", "item_id": "headlamp", "timestamp": hour + n, "user_id": f"u{n}"}
        for n in range(4)
    ]
    events += [
        {"event_type": "purchase", "item_id": "camping-stove", "timestamp": hour + 5, "user_id": "u1"},
        {"event_type": "view", "item_id": "camping-stove", "timestamp": now - 6 * 86_400, "user_id": "u9"},
    ]
    events.sort(key=lambda e: e["timestamp"])
    return [{**e, "event_id": f"recent-{n}", "category": "camping"} for n, e in enumerate(events)]


# Catalog records of items no other request names (GET /items/new).
NEW_ARRIVALS = [
    {
        "event_type": "item_upsert",
        "item_id": f"lantern-{n}",
        "title": f"Camping lantern {n}",
        "category": "camping",
        "price": 20.0,
        "in_stock": True,
        "tags": ["light"],
        "timestamp": 1_764_201_000 + n,
    }
    for n in range(3)
]


def _with(name: str, path: str | None = None, query: dict | None = None, **path_parameters: str) -> dict:
    event = load_event(name)
    if path is not None:
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["pathParameters"] = path_parameters
    if query is not None:
        event["queryStringParameters"] = query
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    return event


def _not_json(name: str) -> dict:
    event = load_event(name)
    event["headers"] = {**event["headers"], "content-type": "text/plain"}
    return event


# (operation, expected status, event): every operation, the shapes that differ (unknown user
# or item, a trending list with and without its category's own trend) and error answers.
REQUESTS = [
    ("GET /health", 200, lambda: load_event("api_health.json")),
    ("GET /users/{user_id}/recommendations", 200, lambda: load_event("api_recommendations.json")),
    (
        "GET /users/{user_id}/recommendations",
        200,
        lambda: _with("api_recommendations.json", "/users/nobody/recommendations", user_id="nobody"),
    ),
    ("GET /users/{user_id}/recommendations", 400, lambda: load_event("api_bad_k.json")),
    ("GET /items/{item_id}/similar", 200, lambda: load_event("api_similar.json")),
    ("POST /cross-sell", 200, lambda: load_event("api_cross_sell_post.json")),
    ("POST /cross-sell", 400, lambda: load_event("api_cross_sell_bad_items.json")),
    ("POST /cross-sell", 415, lambda: _not_json("api_cross_sell_post.json")),
    ("GET /users/{user_id}/cross-sell", 200, lambda: load_event("api_cross_sell_user.json")),
    ("GET /users/{user_id}/profile", 200, lambda: load_event("api_profile.json")),
    (
        "GET /users/{user_id}/profile",
        200,
        lambda: _with("api_profile.json", "/users/nobody/profile", user_id="nobody"),
    ),
    ("GET /items/trending", 200, lambda: load_event("api_trending.json")),
    ("GET /items/trending", 200, lambda: _with("api_trending.json", query={"window": "1h"})),
    ("GET /items/trending", 400, lambda: load_event("api_trending_bad_window.json")),
    ("GET /items/new", 200, lambda: load_event("api_new_items.json")),
    ("GET /items/new", 200, lambda: _with("api_new_items.json", query={"category": "garden"})),
    ("GET /items/new", 400, lambda: _with("api_new_items.json", query={"k": "0"})),
    (
        "GET /items/{item_id}/demand",
        200,
        lambda: _with("api_demand.json", "/items/camping-stove/demand", item_id="camping-stove"),
    ),
    (
        "GET /items/{item_id}/demand",
        200,
        lambda: _with("api_demand.json", "/items/never-seen/demand", item_id="never-seen"),
    ),
    ("PUT /coupons/{coupon_id}", 200, lambda: load_event("coupon_put.json")),
    ("PUT /coupons/{coupon_id}", 400, lambda: load_event("coupon_put_bad.json")),
    ("PUT /coupons/{coupon_id}", 415, lambda: _not_json("coupon_put.json")),
    ("GET /coupons/{coupon_id}", 200, lambda: load_event("coupon_get.json")),  # after the PUT
    (
        "GET /coupons/{coupon_id}",
        404,
        lambda: _with("coupon_get.json", "/coupons/never-defined", coupon_id="never-defined"),
    ),
    ("GET /users/{user_id}/coupons", 200, lambda: load_event("coupons_get.json")),
    ("DELETE /users/{user_id}", 204, lambda: load_event("api_delete_user.json")),
]


@pytest.fixture
def answers(aws) -> list[tuple[str, int, dict]]:
    """The API's answer to each of REQUESTS, after the sample events went through the ingest
    and similarity handlers (views, carts, baskets, purchases in the current hour, and three
    catalog records)."""
    ingest, similarity = import_handler("ingest"), import_handler("similarity")
    for name in ("ingest_kinesis.json", "ingest_baskets_kinesis.json"):
        assert ingest.lambda_handler(load_event(name), FakeLambdaContext()) == {"batchItemFailures": []}
    # Sequence numbers above the samples' (a shard's numbers only grow; a lower one would be
    # taken for a replay by the rows the samples wrote).
    recent = kinesis_event(_recent_events(time.time()) + NEW_ARRIVALS, first_sequence=6 * 10**51)
    assert ingest.lambda_handler(recent, FakeLambdaContext()) == {"batchItemFailures": []}
    changed = [
        {"item_id": item, "changed": True, "norm_changed": True, "popular_changed": True}
        for item in ("headlamp", "camping-stove")
    ]
    changed += [{"item_id": record["item_id"], "content_changed": True} for record in NEW_ARRIVALS]
    for event in (
        load_event("similarity_kinesis.json"),
        load_event("similarity_baskets_kinesis.json"),
        kinesis_event(changed, template="similarity_kinesis.json"),
    ):
        assert similarity.lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    api = import_handler("api")
    return [
        (operation, status, api.lambda_handler(event(), FakeLambdaContext()))
        for operation, status, event in REQUESTS
    ]


def _closed(node: Any) -> Any:
    """The schema with every object closed (no properties but those it names): a field the
    handler returns and the document omits must fail the test. Only object schemas: a
    ``oneOf`` branch naming one property (CouponScope's) constrains it, it lists no others."""
    if isinstance(node, dict):
        node = {key: _closed(value) for key, value in node.items()}
        if "properties" in node and node.get("type") == "object":
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_closed(value) for value in node]
    return node


def test_every_answer_validates_against_its_documented_schema(answers):
    document = openapi_document()
    components = _closed(copy.deepcopy(document["components"]))
    assert {operation for operation, status, _ in answers if status < 300} == set(ROUTES)
    for operation, status, answer in answers:
        assert answer["statusCode"] == status, (operation, answer)
        method, path = operation.split(" ", 1)
        documented = document["paths"][path][method.lower()]["responses"]
        assert str(status) in documented, f"{operation} answers {status}, which it does not document"
        content = documented[str(status)].get("content")
        if status == 204:
            assert not content and not answer.get("body"), (operation, answer)
            continue
        schema = content["application/json"]["schema"]
        validator = Draft202012Validator({**_closed(schema), "components": components})
        body = json.loads(answer["body"])
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
        assert not errors, (operation, status, errors, body)


def test_the_trending_list_names_its_category_trend_only_with_a_category(answers):
    trending = [
        json.loads(a["body"]) for op, status, a in answers if op == "GET /items/trending" and status == 200
    ]
    assert [("category_trend" in body, body["category"] is not None) for body in trending] == [
        (True, True),
        (False, False),
    ]
    # The recent camping events make both items trend, in camping's list too.
    for body in trending:
        listed = {(item["item_id"], item["category"]) for item in body["items"]}
        assert listed == {("headlamp", "camping"), ("camping-stove", "camping")}, body


def test_the_documented_sources_are_the_engines():
    sources = {value for name, value in vars(recommend).items() if name.startswith("SOURCE_")}
    assert set(get_args(Source)) == sources


def test_the_new_arrivals_answer_lists_the_catalogs_items_in_stock(answers):
    # (So that the schema check above sees the items' shape, not only an empty list.)
    [camping, garden] = [
        json.loads(a["body"]) for op, status, a in answers if op == "GET /items/new" and status == 200
    ]
    assert garden == {"category": "garden", "items": []}
    assert camping["category"] == "camping"
    assert [item["item_id"] for item in camping["items"]] == ["lantern-2", "lantern-1", "lantern-0"]
    assert all(item["listed_at"].endswith("Z") for item in camping["items"])
