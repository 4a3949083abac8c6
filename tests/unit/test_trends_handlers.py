"""The trending and demand routes through the handlers on moto: events stamped now go
through the ingest and similarity handlers, then the API answers; bad input gets a 400."""

from __future__ import annotations

import json

import pytest

from tests.hours import clear_of_the_hours_end
from tests.unit.conftest import FakeLambdaContext, import_handler, kinesis_event, load_event


def _fresh_events(now: float) -> list[dict]:
    """In the current clock hour (so that the 1h window holds their whole bucket, whatever
    the minute the test runs at): 6 views of the headlamp, 2 views and 2 purchases (3 units)
    of the stove; 6 days ago: 1 view of the stove."""
    hour = now // 3600 * 3600
    events = [
        {"event_type": "view", "item_id": "headlamp", "timestamp": hour + n, "user_id": f"u{n}"}
        for n in range(6)
    ]
    events += [
        {"event_type": "view", "item_id": "camping-stove", "timestamp": hour + 6, "user_id": "u1"},
        {"event_type": "view", "item_id": "camping-stove", "timestamp": hour + 7, "user_id": "u2"},
        {"event_type": "purchase", "item_id": "camping-stove", "timestamp": hour + 8, "user_id": "u1"},
        {
            "event_type": "purchase",
            "item_id": "camping-stove",
            "timestamp": hour + 9,
            "user_id": "u2",
            "quantity": 2,
        },
        {"event_type": "view", "item_id": "camping-stove", "timestamp": now - 6 * 86_400, "user_id": "u9"},
    ]
    events.sort(key=lambda e: e["timestamp"])
    return [{**e, "event_id": f"fresh-{n}", "category": "camping"} for n, e in enumerate(events)]


def _changes(items: list[str]) -> dict:
    return kinesis_event(
        [{"item_id": i, "changed": True, "norm_changed": True, "popular_changed": True} for i in items],
        template="similarity_kinesis.json",
    )


def _get(api, name: str, query: dict | None = None, item_id: str | None = None) -> tuple[int, dict]:
    event = load_event(name)
    if query is not None:
        event["queryStringParameters"] = query
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    if item_id is not None:
        event["pathParameters"] = {"item_id": item_id}
        event["rawPath"] = event["requestContext"]["http"]["path"] = f"/items/{item_id}/demand"
    response = api.lambda_handler(event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


def test_trending_and_demand_routes(aws):
    now = clear_of_the_hours_end(60)
    ingest = import_handler("ingest")
    event = kinesis_event(_fresh_events(now))
    assert ingest.lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    assert ingest.lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}  # re-delivered
    similarity = import_handler("similarity")
    assert similarity.lambda_handler(_changes(["headlamp", "camping-stove"]), FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    api = import_handler("api")

    status, body = _get(api, "api_trending.json", {"window": "1h", "k": "5"})
    assert status == 200, body
    assert body["window"] == "1h" and body["category"] is None and "category_trend" not in body
    # headlamp: (6 + 5) / (0 + 5) = 2.2; stove: 2 users each viewing then buying (weight 2)
    # within the hour, counted as their strongest event: 2 + 2 = 4; its baseline 1 view
    # over the 143 hours from its first-seen hour (6 days ago, 144 hours before the current
    # one) to the window's: (4 + 5) / (1/143 + 5) (about: the shop's hour-of-day profile,
    # from that one baseline view, is within 10% of flat).
    assert [i["item_id"] for i in body["items"]] == ["headlamp", "camping-stove"]
    assert body["items"][0] == {
        "item_id": "headlamp",
        "category": "camping",
        "velocity": 2.2,
        "count": 6.0,
        "expected": 0.0,
    }
    assert body["items"][1]["velocity"] == pytest.approx(9 / (1 / 143 + 5), rel=1e-3)
    stove = body["items"][1]["velocity"]  # as answered: to 4 decimals

    status, body = _get(api, "api_trending.json", {"window": "1h", "exclude": "headlamp"})
    assert status == 200 and [i["item_id"] for i in body["items"]] == ["camping-stove"], body
    # Velocities 2.2 and about 1.7975 (the stove's, above): a floor compares with the velocity
    # as answered, so the stove's answered velocity keeps it and 0.0001 more does not.
    for floor, expected in (
        ("2", ["headlamp"]),
        (f"{stove + 0.0001:.4f}", ["headlamp"]),
        (f"{stove:.4f}", ["headlamp", "camping-stove"]),
    ):
        status, body = _get(api, "api_trending.json", {"window": "1h", "min_velocity": floor})
        assert status == 200 and [i["item_id"] for i in body["items"]] == expected, (floor, body)

    status, body = _get(api, "api_trending.json")  # 24h, category camping, k=5
    assert status == 200, body
    assert body["category"] == "camping" and len(body["items"]) == 2
    assert body["category_trend"]["count"] == 10.0  # both items' weighted events today: 6 + 4

    status, body = _get(api, "api_demand.json", item_id="camping-stove")
    assert status == 200, body
    assert body["known"] is True
    assert body["purchases"]["last_24h"] == 3.0
    assert len(body["days"]) == 28 and body["forecast"]["method"] == "mean"
    assert body["purchases"]["per_day_28d"] == 0 and "alpha" not in body["forecast"]

    status, body = _get(api, "api_demand.json", item_id="never-seen")
    assert status == 200 and body["known"] is False
    assert body["purchases"]["last_24h"] == 0 and body["forecast"]["next_7d"] == 0


def test_trending_and_demand_bad_input(aws):
    api = import_handler("api")
    status, body = _get(api, "api_trending_bad_window.json")
    assert (status, body) == (400, {"error": "bad_request", "message": "window must be 1h or 24h"})
    status, body = _get(api, "api_trending.json", {"k": "0"})
    assert (status, body["message"]) == (400, "k must be an integer between 1 and 100")
    status, body = _get(api, "api_trending.json", {"category": "x" * 129})
    assert (status, body["message"]) == (
        400,
        "category must be 1..128 characters, not blank, without control characters"
        " (this one has 129, counted in Unicode's composed form, NFC)",
    )
    status, body = _get(api, "api_trending.json", {"category": "\x00"})
    assert (status, body["message"]) == (
        400,
        "category must be 1..128 characters, not blank, without control characters",
    )
    status, body = _get(api, "api_trending.json", {"exclude": "ok,#bad"})
    assert status == 400 and body["message"].startswith("exclude: '#bad' is not an item id"), body
    status, body = _get(api, "api_demand.json", item_id="#bad id")
    assert status == 400 and body["message"].startswith("item_id is malformed")


def test_trending_leaves_out_of_stock_items_out_unless_asked(aws):
    # The catalog's sample batch marks the camping stove out of stock; it trends all the same.
    now = clear_of_the_hours_end(60)
    ingest, similarity = import_handler("ingest"), import_handler("similarity")
    for event in (load_event("ingest_catalog_kinesis.json"), kinesis_event(_fresh_events(now), 100)):
        assert ingest.lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    for event in (load_event("similarity_catalog_kinesis.json"), _changes(["headlamp", "camping-stove"])):
        assert similarity.lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    api = import_handler("api")

    status, body = _get(api, "api_trending.json", {"window": "1h"})
    assert status == 200 and [i["item_id"] for i in body["items"]] == ["headlamp"], body
    status, body = _get(api, "api_trending.json", {"window": "1h", "in_stock": "false"})
    assert status == 200 and [i["item_id"] for i in body["items"]] == ["headlamp", "camping-stove"], body
    # The category's own trend still counts every item's events, in stock or not.
    status, body = _get(api, "api_trending.json")  # 24h, category camping
    assert [i["item_id"] for i in body["items"]] == ["headlamp"] and body["category_trend"]["count"] == 10.0

    status, body = _get(api, "api_trending.json", {"in_stock": "no"})
    assert (status, body["message"]) == (400, "in_stock must be true or false (lowercase)")
    # A category filter written decomposed (e + a combining accent) is the composed one.
    status, body = _get(api, "api_trending.json", {"category": "cafe\u0301"})
    assert status == 200 and body["category"] == "café", body


@pytest.mark.parametrize(
    "floor", ["-1", "1e3", "nan", "inf", " 1.5", "1.", ".5", "1,5", "", "9" * 16, "0.30000000000000004"]
)
def test_a_min_velocity_that_is_not_a_plain_number_of_0_or_more_is_a_400(aws, floor):
    status, body = _get(import_handler("api"), "api_trending.json", {"min_velocity": floor})
    assert (status, body["message"]) == (
        400,
        "min_velocity must be a number of 0 or more, in digits (such as 1.5; at most 15 either side of the "
        "point)",
    )
