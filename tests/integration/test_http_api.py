"""The local HTTP API builds API Gateway's payload format 2.0 events and renders responses.

A stub function stands in for the API handler, so this tests the emulation alone; the
real handler is exercised in test_pipeline.py.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest

from streamrec.local import http_api
from streamrec.local.http_api import HttpApiError, LocalHttpApi
from streamrec.local.template import HttpRoute, TemplateError, load_template

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


def _raw_exchange(api: LocalHttpApi, request: bytes) -> bytes:
    """Send raw bytes and read until the server closes the connection."""
    with socket.create_connection((api.host, api.port), timeout=10) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


def test_a_chunked_body_reaches_the_function_whole(served, recorder: Recorder) -> None:
    api, _ = served
    head = (
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    reply = _raw_exchange(api, head + b'4;ext=1\r\n{"a"\r\n5\r\n: 12}\r\n0\r\nX-Trailer: t\r\n\r\n')
    assert reply.startswith(b"HTTP/1.1 200"), reply
    assert recorder.events[-1]["body"] == '{"a": 12}'
    broken = _raw_exchange(api, head + b"zz\r\nabc\r\n")
    assert broken.startswith(b"HTTP/1.1 400") and b"malformed chunked body" in broken, broken
    assert b"\r\nConnection: close\r\n" in broken
    for size in (b"-1", b"0x3", b"1_0"):  # what int(..., 16) would take
        refused = _raw_exchange(api, head + size + b"\r\nabc\r\n0\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 400") and b"is not a hexadecimal number" in refused, refused
    assert len(recorder.events) == 1


def test_methods_are_case_sensitive(served, recorder: Recorder) -> None:
    _, client = served
    assert client.request("get", "/items/special").status == 404
    assert client.request("GET", "/items/special").status == 200
    assert len(recorder.events) == 1


def test_a_body_shorter_than_announced_does_not_hold_the_connection(served, recorder, monkeypatch) -> None:
    api, client = served
    monkeypatch.setattr(http_api._RequestHandler, "timeout", 0.5)
    started = time.monotonic()
    reply = _raw_exchange(api, b'POST /echo HTTP/1.1\r\nHost: [::1]\r\nContent-Length: 100\r\n\r\n{"a": 1')
    assert reply == b"" and time.monotonic() - started < 5  # dropped, not answered
    assert recorder.events == []
    assert client.get("/health").status == 200


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


def test_a_body_over_api_gateways_limit_or_a_bad_length_is_refused_unread(served, recorder: Recorder) -> None:
    api, _ = served
    head = b"POST /echo HTTP/1.1\r\nHost: [::1]\r\nContent-Type: application/json\r\nConnection: close\r\n"
    too_large = _raw_exchange(api, head + b"Content-Length: 10485761\r\n\r\n{}")
    assert too_large.startswith(b"HTTP/1.1 413") and b"Request Entity Too Large" in too_large, too_large
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n"
    refused = _raw_exchange(api, chunked + b"A00001\r\n")  # 10 MiB + 1 announced by a chunk
    assert refused.startswith(b"HTTP/1.1 413"), refused
    for length in (
        b"-5",
        b"abc",
        b"+2",
        b"1_0",
        b"",
        b"2\r\nContent-Length: 3",
    ):  # int() reads the first four
        bad = _raw_exchange(api, head + b"Content-Length: " + length + b"\r\n\r\n{}")
        assert bad.startswith(b"HTTP/1.1 400") and b"Bad Request" in bad, bad
    assert recorder.events == []


def test_requests_http_server_refuses_itself_get_json_errors_not_html(served, recorder: Recorder) -> None:
    api, _ = served
    cases = [
        (
            b"GET /health?a=" + b"b" * 70_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            b"414",
            b"Request-URI Too Long",
        ),
        (
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
            b"431",
            b"Line too long",
        ),
        (
            b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(101)) + b"\r\n",
            b"431",
            b"Too many headers",
        ),
    ]
    for request, status, message in cases:
        reply = _raw_exchange(api, request)
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 " + status) or head.startswith(b"HTTP/1.0 " + status), reply[:200]
        assert b"content-type: application/json" in head.lower() and b"<html" not in reply.lower()
        assert message in json.loads(body)["message"].encode(), body
    assert recorder.events == []


def test_a_client_that_resets_its_connection_leaves_no_traceback(served, capfd) -> None:
    api, client = served
    for _ in range(3):
        connection = socket.create_connection((api.host, api.port), timeout=10)
        # Linger 0: close() sends a reset, mid-request line, as a killed client would.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.sendall(b"GET /hea")
        connection.close()
    time.sleep(0.5)
    assert client.get("/health").status == 200
    assert "Traceback" not in capfd.readouterr().err


SHOP = "https://shop.example.com"


def _cors_api(recorder: Recorder, origins: str | None) -> LocalHttpApi:
    overrides = {} if origins is None else {"CorsAllowOrigins": origins}
    template = load_template(TEMPLATE, parameter_overrides=overrides)
    return LocalHttpApi(template.http_routes, {"ApiFunction": recorder}, port=0, cors=template.cors)


def test_cors_from_the_template_answers_preflights_and_marks_responses(recorder: Recorder) -> None:
    api = _cors_api(recorder, f"{SHOP},http://localhost:8080")
    api.start()
    try:
        client = ApiClient(api.url)
        preflight = client.request(
            "OPTIONS",
            "/cross-sell",
            headers={
                "Origin": SHOP,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Content-Type, Authorization",
            },
        )
        assert preflight.status == 204 and preflight.raw == b""
        assert preflight.headers["access-control-allow-origin"] == SHOP
        assert "POST" in preflight.headers["access-control-allow-methods"].split(",")
        assert {"authorization", "content-type"} <= set(
            preflight.headers["access-control-allow-headers"].split(",")
        )
        assert preflight.headers["access-control-max-age"] == "600"
        # Another origin, or a header the API does not allow: answered, but without CORS
        # headers, so the browser refuses the request.
        for origin, asked in [("https://elsewhere.example", "content-type"), (SHOP, "x-secret")]:
            refused = client.request(
                "OPTIONS",
                "/cross-sell",
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": asked,
                },
            )
            assert refused.status == 204 and "access-control-allow-origin" not in refused.headers
        assert recorder.events == []  # preflights never reach the function
        allowed = client.request("GET", "/health", headers={"Origin": "http://localhost:8080"})
        assert (
            allowed.status == 200
            and allowed.headers["access-control-allow-origin"] == "http://localhost:8080"
        )
        other = client.request("GET", "/health", headers={"Origin": "https://elsewhere.example"})
        assert other.status == 200 and "access-control-allow-origin" not in other.headers
        # An error answered before any route runs (a body over 10 MB) is marked too.
        too_big = _raw_exchange(
            api,
            b"POST /cross-sell HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: "
            + SHOP.encode()
            + b"\r\nConnection: close\r\nContent-Length: 10485761\r\n\r\n{}",
        )
        assert too_big.startswith(b"HTTP/1.1 413"), too_big
        assert f"access-control-allow-origin: {SHOP}\r\n".encode() in too_big.lower(), too_big
    finally:
        api.stop()


def test_without_cors_a_preflight_is_an_unmatched_route(recorder: Recorder) -> None:
    api = _cors_api(recorder, None)  # the template's default: no CORS
    assert api.cors is None
    api.start()
    try:
        client = ApiClient(api.url)
        preflight = client.request(
            "OPTIONS", "/cross-sell", headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status == 404 and "access-control-allow-origin" not in preflight.headers
        plain = client.request("GET", "/health", headers={"Origin": SHOP})
        assert "access-control-allow-origin" not in plain.headers
    finally:
        api.stop()


def test_any_origin_and_a_malformed_origin_list(recorder: Recorder) -> None:
    api = _cors_api(recorder, "*")
    api.start()
    try:
        response = ApiClient(api.url).request("GET", "/health", headers={"Origin": SHOP})
        assert response.headers["access-control-allow-origin"] == "*"
    finally:
        api.stop()
    # An origin is scheme://host[:port]: a bare host or a path is refused, as CloudFormation would.
    # In lower case: a browser's Origin is, and an upper-case host would never match it.
    for bad in ["shop.example.com", f"{SHOP}/", f"{SHOP}, http://localhost:8080", "https://Shop.example.com"]:
        with pytest.raises(TemplateError, match="CorsAllowOrigins"):
            load_template(TEMPLATE, parameter_overrides={"CorsAllowOrigins": bad})


def test_a_request_naming_another_host_is_refused(served, recorder: Recorder) -> None:
    # DNS rebinding: a page of another site whose name resolves to 127.0.0.1 would otherwise
    # read this unauthenticated API.
    api, _ = served
    request = b"GET /health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
    refused = _raw_exchange(api, request % b"attacker.example:%d" % api.port)
    assert refused.startswith(b"HTTP/1.1 421"), refused
    assert b"answers requests to 127.0.0.1 or localhost, not attacker.example" in refused
    for host in (b"127.0.0.1:%d" % api.port, b"localhost:%d" % api.port, b"LOCALHOST", b"[::1]:3000"):
        assert _raw_exchange(api, request % host).startswith(b"HTTP/1.1 200"), host
    assert len(recorder.events) == 4


def test_raw_utf8_in_the_request_target_reads_as_its_percent_encoded_form(served, recorder: Recorder) -> None:
    # http.server decodes the request line as Latin-1: "キッチン" sent unencoded (as a
    # client may) reached the function as mojibake holding control characters.
    api, _ = served
    for target in (
        "/items/trending?category=キッチン".encode(),
        b"/items/trending?category=%E3%82%AD%E3%83%83%E3%83%81%E3%83%B3",
    ):
        reply = _raw_exchange(
            api, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        assert reply.startswith(b"HTTP/1.1 200"), reply
        assert recorder.events[-1]["queryStringParameters"] == {"category": "キッチン"}
    # Raw bytes that are not UTF-8 reach the function as %FF does (and it refuses them so).
    reply = _raw_exchange(
        api, b"GET /items/trending?category=\xff HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 200") and recorder.events[-1]["rawQueryString"] == "category=%FF"
