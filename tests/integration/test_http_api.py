"""The local HTTP API builds API Gateway's payload format 2.0 events and renders responses.

A stub function stands in for the API handler, so this tests the emulation alone; the
real handler is exercised in test_pipeline.py.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from streamrec.local.http_api import HttpApiError, LocalHttpApi
from streamrec.local.template import HttpRoute, load_template

from .support import TEMPLATE, ApiClient


class Recorder:
    """A stub function that records events and returns a preset response."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.response: Any = {"statusCode": 200, "body": "{}"}

    def __call__(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        if isinstance(self.response, Exception):
            raise self.response
        return self.response


ROUTES = [
    HttpRoute("Special", "Fn", "GET", "/items/special"),
    HttpRoute("Item", "Fn", "GET", "/items/{item_id}"),
    HttpRoute("Files", "Fn", "ANY", "/files/{proxy+}"),
    HttpRoute("Post", "Fn", "POST", "/echo"),
]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def served(recorder: Recorder) -> Iterator[tuple[LocalHttpApi, ApiClient]]:
    routes = ROUTES + load_template(TEMPLATE).http_routes
    api = LocalHttpApi(routes, {"Fn": recorder, "ApiFunction": recorder}, port=0)
    api.start()
    try:
        yield api, ApiClient(api.url)
    finally:
        api.stop()


def test_event_has_the_payload_2_0_fields(served: tuple[LocalHttpApi, ApiClient], recorder: Recorder) -> None:
    api, client = served
    response = client.request(
        "GET",
        "/users/x%40y/recommendations?k=5&k=6&tag=a%20b&empty=",
        headers={"Cookie": "c1=v1; c2=v2", "X-Custom": "Yes", "User-Agent": "tests/1.0"},
    )
    assert response.status == 200
    (event,) = recorder.events
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /users/{user_id}/recommendations"
    assert event["rawPath"] == "/users/x@y/recommendations"
    assert event["rawQueryString"] == "k=5&k=6&tag=a%20b&empty="
    assert event["queryStringParameters"] == {"k": "5,6", "tag": "a b", "empty": ""}
    assert event["pathParameters"] == {"user_id": "x@y"}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert event["headers"]["x-custom"] == "Yes"
    assert "cookie" not in event["headers"]
    assert all(name == name.lower() for name in event["headers"])
    assert event["isBase64Encoded"] is False and "body" not in event
    context = event["requestContext"]
    assert context["http"] == {
        "method": "GET",
        "path": "/users/x@y/recommendations",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "tests/1.0",
    }
    assert context["stage"] == "$default"
    assert context["routeKey"] == event["routeKey"]
    assert context["apiId"] == "local" and context["accountId"] == "123456789012"
    assert context["domainName"] == f"127.0.0.1:{api.port}"
    assert isinstance(context["timeEpoch"], int) and context["requestId"]
    assert context["time"].endswith("+0000")


def test_routes_without_query_or_parameters(served, recorder: Recorder) -> None:
    _, client = served
    client.get("/health")
    (event,) = recorder.events
    assert event["routeKey"] == "GET /health"
    assert "queryStringParameters" not in event and "pathParameters" not in event
    assert event["rawQueryString"] == ""


def test_most_specific_route_wins_and_greedy_paths(served, recorder: Recorder) -> None:
    _, client = served
    client.get("/items/special")
    client.get("/items/other")
    client.request("DELETE", "/files/a/b%2Fc.txt")
    keys = [e["routeKey"] for e in recorder.events]
    assert keys == ["GET /items/special", "GET /items/{item_id}", "ANY /files/{proxy+}"]
    assert recorder.events[2]["pathParameters"] == {"proxy": "a/b/c.txt"}


def test_unmatched_route_or_method_is_404(served, recorder: Recorder) -> None:
    _, client = served
    for method, path in [("GET", "/nowhere"), ("POST", "/items/special"), ("GET", "/echo")]:
        response = client.request(method, path, body=b"" if method == "POST" else None)
        assert response.status == 404
        assert response.body == {"message": "Not Found"}
    assert recorder.events == []


def test_bodies_text_and_binary(served, recorder: Recorder) -> None:
    _, client = served
    client.request("POST", "/echo", body=b'{"a": 1}', headers={"Content-Type": "application/json"})
    client.request("POST", "/echo", body=b"\x00\xff", headers={"Content-Type": "application/octet-stream"})
    text, binary = recorder.events
    assert text["body"] == '{"a": 1}' and text["isBase64Encoded"] is False
    assert base64.b64decode(binary["body"]) == b"\x00\xff" and binary["isBase64Encoded"] is True


def test_response_rendering(served, recorder: Recorder) -> None:
    _, client = served
    recorder.response = {
        "statusCode": 201,
        "headers": {"Content-Type": "image/png", "X-A": "1"},
        "cookies": ["s=1; Path=/"],
        "body": base64.b64encode(b"\x89PNG").decode(),
        "isBase64Encoded": True,
    }
    response = client.get("/health")
    assert response.status == 201
    assert response.raw == b"\x89PNG"
    assert response.headers["x-a"] == "1" and response.headers["content-type"] == "image/png"
    assert response.headers["set-cookie"] == "s=1; Path=/"

    recorder.response = {"plain": "dict"}  # no statusCode: API Gateway sends it as JSON
    response = client.get("/health")
    assert response.status == 200 and response.body == {"plain": "dict"}
    assert response.headers["content-type"] == "application/json"


def test_function_error_is_a_500(served, recorder: Recorder) -> None:
    _, client = served
    recorder.response = RuntimeError("boom")
    response = client.get("/health")
    assert response.status == 500
    assert response.body == {"message": "Internal Server Error"}
    recorder.response = {"statusCode": "not a number"}
    assert client.get("/health").status == 500


def test_port_in_use_is_a_clear_error(served) -> None:
    api, _ = served
    other = LocalHttpApi(ROUTES, {"Fn": Recorder()}, port=api.port)
    with pytest.raises(HttpApiError, match=f"cannot listen on 127.0.0.1:{api.port}"):
        other.start()


def test_routes_need_their_function() -> None:
    with pytest.raises(HttpApiError, match="no function loaded"):
        LocalHttpApi(ROUTES, {})
