"""End to end: Kinesis (moto) -> ingest -> changed items -> similarity -> HTTP API.

Events go on the template's event stream, the pollers deliver them to the real handlers
exactly as Lambda would, and every assertion is made through real HTTP requests on the
local HTTP API, against the API contract:

* GET /users/{user_id}/recommendations?k= -> {"user_id", "fallback", "items": [{"item_id",
  "score", "source", "reasons", "because"}]}
* GET /items/{item_id}/similar?k= -> {"item_id", "fallback", "items": [...]}
* GET /health -> {"status": "ok"}; bad input -> 400 {"error": "bad_request", "message"}.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import boto3
import pytest

from streamrec.local.stack import LocalStack
from tests.hours import clear_of_the_hours_end

from .support import ApiClient, make_event

pytestmark = pytest.mark.integration

# u1..u4 view a and b together (u3 also c); u7, u8 view c and d; u5 viewed only a; u6
# bought b. So b is a's strongest neighbour, and u5 should be offered b because of a.
HISTORY = [
    ("u1", "a", "view"),
    ("u1", "b", "view"),
    ("u2", "a", "view"),
    ("u2", "b", "view"),
    ("u3", "a", "view"),
    ("u3", "b", "view"),
    ("u3", "c", "view"),
    ("u4", "b", "view"),
    ("u4", "a", "view"),
    ("u7", "c", "view"),
    ("u7", "d", "view"),
    ("u8", "d", "view"),
    ("u8", "c", "view"),
    ("u5", "a", "view"),
    ("u6", "a", "view"),
    ("u6", "b", "view"),
    ("u6", "b", "add_to_cart"),
    ("u6", "b", "purchase"),
]


@pytest.fixture(scope="module")
def loaded(local_stack: LocalStack) -> LocalStack:
    """The stack after HISTORY went through the whole pipeline."""
    events = [
        make_event(user, item, kind, age_s=900 - 10 * index)
        for index, (user, item, kind) in enumerate(HISTORY)
    ]
    sequence_numbers = local_stack.put_events(events)
    assert len(sequence_numbers) == len(events)
    local_stack.drain(timeout=45)
    stats = local_stack.stats()
    assert stats["IngestFunction.UserEvents"].records >= len(events)
    assert stats["SimilarityFunction.ChangedItems"].records > 0, "ingest announced no changed items"
    return local_stack


def _ids(body: dict[str, Any]) -> list[str]:
    return [entry["item_id"] for entry in body["items"]]


def _assert_listing(body: dict[str, Any]) -> None:
    """Shape shared by both listing endpoints."""
    assert isinstance(body["fallback"], bool)
    assert isinstance(body["items"], list)
    for entry in body["items"]:
        assert isinstance(entry["item_id"], str)
        assert isinstance(entry["score"], (int, float))
        assert isinstance(entry["reasons"], list)
        assert all(isinstance(reason, str) for reason in entry["reasons"])


def _assert_bad_request(response: Any) -> None:
    assert response.status == 400, (response.status, response.raw)
    assert response.headers.get("content-type", "").startswith("application/json")
    assert response.body["error"] == "bad_request"
    assert isinstance(response.body["message"], str) and response.body["message"].strip()


def test_health(api: ApiClient) -> None:
    response = api.get("/health")
    assert response.status == 200
    assert response.body == {"status": "ok"}


def test_the_outputs_say_how_this_api_is_reached(local_stack: LocalStack, api: ApiClient) -> None:
    # The template's ApiAuth default (IAM) is AWS's: the local API takes no credentials.
    template_outputs = local_stack.outputs()["template_outputs"]
    assert template_outputs["ApiUrl"] == local_stack.api_url
    assert template_outputs["ApiAuthMode"].startswith("none (local")
    assert api.get("/users/someone/recommendations?k=1").status == 200  # unsigned, answered


def test_similar_items_rank_the_strongest_co_occurrence_first(loaded: LocalStack, api: ApiClient) -> None:
    response = api.get("/items/a/similar?k=5")
    assert response.status == 200, response.raw
    body = response.body
    assert body["item_id"] == "a"
    _assert_listing(body)
    assert body["fallback"] is False
    assert _ids(body)[0] == "b", body
    assert body["items"][0]["source"] == "similar"
    assert len(body["items"]) <= 5
    assert "a" not in _ids(body)


def test_recommendations_explain_why(loaded: LocalStack, api: ApiClient) -> None:
    response = api.get("/users/u5/recommendations?k=5")
    assert response.status == 200, response.raw
    body = response.body
    assert body["user_id"] == "u5"
    _assert_listing(body)
    assert body["fallback"] is False
    entry = next((e for e in body["items"] if e["item_id"] == "b"), None)
    assert entry is not None, body
    assert entry["source"] == "personalized"
    assert any(re.search(r"\ba\b", reason) for reason in entry["reasons"]), entry
    assert "a" in entry["because"], entry


def test_purchased_items_are_not_recommended_again(loaded: LocalStack, api: ApiClient) -> None:
    response = api.get("/users/u6/recommendations?k=10")
    assert response.status == 200, response.raw
    _assert_listing(response.body)
    assert "b" not in _ids(response.body), response.body


def test_unknown_user_gets_popular_items(loaded: LocalStack, api: ApiClient) -> None:
    response = api.get("/users/nobody-at-all/recommendations?k=5")
    assert response.status == 200, response.raw
    body = response.body
    _assert_listing(body)
    assert body["fallback"] is True
    assert body["items"], "the popular list is empty although events were ingested"
    assert {entry["source"] for entry in body["items"]} == {"popular"}


def test_trending_and_demand_show_what_the_pipeline_just_saw(loaded: LocalStack, api: ApiClient) -> None:
    """New items seen only in the current clock hour (so the 1h window holds their whole
    hourly bucket, whatever the minute the test runs at), in a category of their own:
    velocity = (count + 5) / 5, so trend-b (5 views, a cart and a purchase: 8.5 weighted
    events) leads trend-a (6 views)."""
    hour = int(clear_of_the_hours_end(120)) // 3600 * 3600
    kinds = [("trend-a", "view")] * 6 + [("trend-b", "view")] * 5
    kinds += [("trend-b", "add_to_cart"), ("trend-b", "purchase")]
    loaded.put_events(
        [
            make_event(f"tr{n}", item, kind, timestamp=hour + n, category="trend-check")
            for n, (item, kind) in enumerate(kinds)
        ]
    )
    loaded.drain(timeout=60)
    response = api.get("/items/trending?window=1h&k=3&category=trend-check")
    assert response.status == 200, response.raw
    body = response.body
    assert body["window"] == "1h" and body["category"] == "trend-check"
    assert [entry["item_id"] for entry in body["items"]] == ["trend-b", "trend-a"]
    assert body["items"][0]["velocity"] == (8.5 + 5) / 5
    assert body["items"][1]["velocity"] == (6 + 5) / 5
    demand = api.get("/items/trend-b/demand")
    assert demand.status == 200, demand.raw
    assert demand.body["known"] is True and demand.body["purchases"]["last_24h"] == 1.0
    assert len(demand.body["days"]) == 28 and demand.body["forecast"]["method"] == "mean"


@pytest.mark.parametrize(
    "path",
    [
        "/users/u5/recommendations?k=0",
        "/users/u5/recommendations?k=101",
        "/users/u5/recommendations?k=abc",
        "/users/bad%20user/recommendations?k=5",  # a space
        "/users/bad%2Auser/recommendations",  # '*'
        "/users/" + "x" * 129 + "/recommendations",  # too long
        "/users/-leading-symbol/recommendations",
        "/items/a/similar?k=0",
        "/items/a/similar?k=101",
        "/items/a/similar?k=abc",
        "/items/bad%20item/similar",
        "/users/a%23b/recommendations",  # '#', decoded by API Gateway: reaches no route
        "/users/a%2Fb/recommendations",  # '/' inside the id
        "/items/a%3Fb/similar",  # '?'
        "/items/%23totals/similar",  # a global row's key
        "/items/trending?window=2h",
        "/items/trending?k=0",
        "/items/trending?category=",
        "/items/%23trending%3A1h/demand",  # a list row's key
        "/items/a%2Fb/demand",
    ],
)
def test_bad_input_is_a_400_with_a_message(local_stack: LocalStack, api: ApiClient, path: str) -> None:
    response = api.get(path)
    _assert_bad_request(response)
    assert "Traceback" not in response.body["message"]


@pytest.mark.parametrize("path", ["/users/a%23b", "/users/-x", "/users/" + "y" * 129])
def test_deleting_a_malformed_user_id_is_a_400(local_stack: LocalStack, api: ApiClient, path: str) -> None:
    _assert_bad_request(api.request("DELETE", path))


def test_delete_user_forgets_their_history(loaded: LocalStack, api: ApiClient) -> None:
    loaded.put_events([make_event("forget-me", "a", age_s=50), make_event("forget-me", "c", age_s=40)])
    loaded.drain(timeout=45)
    before = api.get("/users/forget-me/recommendations?k=5")
    assert before.status == 200 and before.body["fallback"] is False, before.body

    deleted = api.request("DELETE", "/users/forget-me")
    assert deleted.status == 204 and deleted.raw == b""
    after = api.get("/users/forget-me/recommendations?k=5")
    assert after.status == 200 and after.body["fallback"] is True, after.body
    assert api.request("DELETE", "/users/forget-me").status == 204  # idempotent
    assert api.request("DELETE", "/users/never-seen").status == 204


@pytest.mark.parametrize(
    "method, path", [("GET", "/nope"), ("GET", "/users/u5"), ("POST", "/health"), ("GET", "/health/")]
)
def test_unknown_route_is_api_gateways_404(
    local_stack: LocalStack, api: ApiClient, method: str, path: str
) -> None:
    response = api.request(method, path, body=b"{}" if method == "POST" else None)
    assert response.status == 404
    assert response.body == {"message": "Not Found"}


def _refers_to(message: dict[str, Any], sequence_number: str, data_b64: str) -> bool:
    """Does a dead-letter message describe the record ``sequence_number``?

    Accepts the function's own dead letters and Lambda's OnFailure batch descriptions.
    """
    if message.get("sequence_number") == sequence_number or message.get("data") == data_b64:
        return True
    info = message.get("KinesisBatchInfo")
    if isinstance(info, dict):
        return int(info["startSequenceNumber"]) <= int(sequence_number) <= int(info["endSequenceNumber"])
    return False


def test_poison_record_is_dead_lettered_and_does_not_block(loaded: LocalStack, api: ApiClient) -> None:
    import base64

    poison = b"this is {not json"
    before = api.get("/users/u9/recommendations?k=5")
    assert before.status == 200 and before.body["fallback"] is True

    # The poison record and a valid event right behind it (same shard, likely one batch),
    # then another valid event in a later batch.
    sequence_numbers = loaded.put_records([{"Data": poison, "PartitionKey": "u9"}])
    loaded.put_events([make_event("u9", "a", age_s=60)])
    loaded.drain(timeout=45)
    loaded.put_events([make_event("u9", "c", age_s=30)])
    loaded.drain(timeout=45)

    sqs = loaded.client("sqs")
    queue_url = loaded.outputs()["dead_letter_queue_url"]
    messages: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        if not got.get("Messages"):
            break
        messages += [json.loads(m["Body"]) for m in got["Messages"]]
    data_b64 = base64.b64encode(poison).decode()
    assert any(_refers_to(m, sequence_numbers[0], data_b64) for m in messages), messages

    after = api.get("/users/u9/recommendations?k=5")
    assert after.status == 200, after.raw
    assert after.body["fallback"] is False, "events after the poison record were not applied"


def test_this_process_calls_moto_directly_and_other_processes_through_its_server(
    local_stack: LocalStack, api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    served: list[str] = []
    dispatch = DomainDispatcherApplication.__call__

    def counted(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        served.append(environ.get("HTTP_X_AMZ_TARGET", environ.get("PATH_INFO", "")))
        return dispatch(self, environ, start_response)

    monkeypatch.setattr(DomainDispatcherApplication, "__call__", counted)
    # Another process's client: by the outputs' endpoint, the server.
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=local_stack.region
    )
    outside = session.client("kinesis", endpoint_url=local_stack.outputs()["endpoint_url"])
    event = make_event("direct-u1", "direct-a", "view")
    outside.put_record(
        StreamName=local_stack.event_stream_name, Data=json.dumps(event).encode(), PartitionKey="direct-u1"
    )
    # drain() knows of the stack's own puts only: wait for the record to show first.
    deadline = time.monotonic() + 30
    while not (profile := api.get("/users/direct-u1/profile")).body.get("recent_items"):
        assert time.monotonic() < deadline, f"the record put through the server not ingested: {profile.raw}"
        time.sleep(0.05)
    local_stack.drain(timeout=45)
    assert [entry["item_id"] for entry in profile.body["recent_items"]] == ["direct-a"]
    # The pollers, the functions and the API read and wrote without the server.
    assert served == ["Kinesis_20131202.PutRecord"]
