"""``k`` and ``in_stock`` take only their plain forms: in the query, k in digits and in_stock
``true`` or ``false`` (lowercase); in the POST /cross-sell body, a JSON integer and a JSON
boolean. Anything else is a 400 naming the parameter, never read as some other value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamrec.evaluation.engine import InMemoryEngine
from streamrec.events import json_type
from streamrec.http_api import build_app
from streamrec.repositories.memory import InMemoryCatalogRepository
from streamrec.settings import Settings

K_ROUTES = [
    "/users/u1/recommendations",
    "/items/i1/similar",
    "/users/u1/cross-sell",
    "/items/trending",
    "/users/u1/coupons",
    "/items/new",
]
IN_STOCK_ROUTES = [*K_ROUTES[:3], "/items/new"]
K_MESSAGE = "k must be an integer between 1 and 100"
IN_STOCK_MESSAGE = "in_stock must be true or false (lowercase)"


class _Unreachable:
    """Stands in for every service: a request that passes validation fails the test with a 500."""

    users = None
    settings = None
    similarity = None


def _event(method: str, path: str, query: dict[str, str] | None = None, body: Any = None) -> dict:
    """A payload 2.0 event; ``query`` holds the values as API Gateway delivers them (decoded)."""
    route = {
        "recommendations": "/users/{user_id}/recommendations",
        "similar": "/items/{item_id}/similar",
        "cross-sell": "/users/{user_id}/cross-sell" if path.startswith("/users/") else "/cross-sell",
        "trending": "/items/trending",
        "coupons": "/users/{user_id}/coupons",
        "new": "/items/new",
    }[path.rsplit("/", 1)[-1]]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {route}",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": {"content-type": "application/json"},
        "queryStringParameters": query,
        "requestContext": {"http": {"method": method, "path": path}, "requestId": "r", "stage": "$default"},
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = json.dumps(body)
    return event


def _answer(app, event: dict) -> tuple[int, dict]:
    response = app.resolve(event, None)
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture(scope="module")
def unreachable():
    placeholder: Any = _Unreachable()
    return build_app(placeholder, cross_sell=placeholder, coupons=placeholder, trends=placeholder)


@pytest.fixture(scope="module")
def engine_app():
    engine = InMemoryEngine(Settings(), eager=True, catalog=InMemoryCatalogRepository())
    engine.ingest(
        [
            {
                "event_id": f"e{n}",
                "event_type": "view",
                "user_id": "u1",
                "item_id": f"i{n}",
                "timestamp": 1e9 + n,
            }
            for n in range(8)
        ]
    )
    engine.upsert_catalog(
        [  # new arrivals (GET /items/new)
            {
                "event_type": "item_upsert",
                "item_id": f"new{n}",
                "title": f"Lantern {n}",
                "category": "camping",
                "price": 10.0,
                "in_stock": True,
                "tags": [],
                "timestamp": 1e9 + n,
            }
            for n in range(4)
        ]
    )
    engine.flush()
    return build_app(engine.recommendations, cross_sell=engine.cross_sell_service)


@pytest.mark.parametrize("path", K_ROUTES)
@pytest.mark.parametrize("k", ["5.0", " 5", "5 ", "+5", "0x5", "1e1", "", "5,6", "\u0665"])
def test_k_in_the_query_is_digits_only(unreachable, path, k):
    status, body = _answer(unreachable, _event("GET", path, {"k": k}))
    # A user's coupons are at most 20 (see test_a_users_coupons_are_at_most_20).
    message = K_MESSAGE.replace("100", "20") if path.endswith("/coupons") else K_MESSAGE
    assert (status, body) == (400, {"error": "bad_request", "message": message}), (k, body)


@pytest.mark.parametrize("path", IN_STOCK_ROUTES)
@pytest.mark.parametrize("in_stock", ["yes", "no", "1", "0", "True", "FALSE", "maybe", ""])
def test_in_stock_in_the_query_is_true_or_false(unreachable, path, in_stock):
    status, body = _answer(unreachable, _event("GET", path, {"in_stock": in_stock}))
    assert (status, body) == (400, {"error": "bad_request", "message": IN_STOCK_MESSAGE}), (in_stock, body)


@pytest.mark.parametrize("path", IN_STOCK_ROUTES)
def test_plain_forms_are_accepted(engine_app, path):
    for query in ({"k": "3"}, {"k": "03", "in_stock": "false"}, {"k": "3", "in_stock": "true"}):
        status, body = _answer(engine_app, _event("GET", path, query))
        assert status == 200 and len(body["items"]) == 3, (query, body)


@pytest.mark.parametrize("k", [True, False, "5", 5.5, 1e300, [5]])
def test_k_in_the_body_is_a_json_integer(unreachable, k):
    status, body = _answer(unreachable, _event("POST", "/cross-sell", body={"items": ["i1"], "k": k}))
    assert status == 400 and body["message"] == (
        "k must be an integer between 1 and 100 (a whole JSON number, 5 or 5.0, not a string or boolean)"
    ), (k, body)


def test_a_whole_k_written_as_a_float_is_the_integer(engine_app):
    # JSON Schema's integer (the OpenAPI schema's) takes 3.0, and many clients write every
    # number so.
    for k in (3.0, 3e0):
        status, body = _answer(engine_app, _event("POST", "/cross-sell", body={"items": ["i1"], "k": k}))
        assert status == 200 and len(body["items"]) == 3, (k, body)


@pytest.mark.parametrize("category", [["camping"], 5, True, {"name": "camping"}])
def test_a_category_of_another_json_type_is_named_so(unreachable, category):
    event = _event("POST", "/cross-sell", body={"items": ["i1"], "category": category})
    status, body = _answer(unreachable, event)
    assert (status, body["message"]) == (400, f"category must be a JSON string, not {json_type(category)}")


def test_a_category_too_long_once_composed_says_its_composed_length(unreachable):
    # 65 characters as sent, 130 in NFC ("\u0958" is two composed): the message says why.
    event = _event("POST", "/cross-sell", body={"items": ["i1"], "category": "\u0958" * 65})
    status, body = _answer(unreachable, event)
    assert status == 400 and body["message"].endswith(
        "(this one has 130, counted in Unicode's composed form, NFC)"
    ), body


@pytest.mark.parametrize("in_stock", ["true", "false", 1, 0])
def test_in_stock_in_the_body_is_a_json_boolean(unreachable, in_stock):
    status, body = _answer(
        unreachable, _event("POST", "/cross-sell", body={"items": ["i1"], "in_stock": in_stock})
    )
    assert status == 400 and body["message"] == (
        "in_stock must be true or false (a JSON boolean, not a string or number)"
    ), (in_stock, body)


def test_the_body_takes_a_json_integer_and_boolean(engine_app):
    for extra in ({"k": 3}, {"k": 3, "in_stock": False}, {"k": 3, "in_stock": True}):
        status, body = _answer(engine_app, _event("POST", "/cross-sell", body={"items": ["i1"], **extra}))
        assert status == 200 and len(body["items"]) == 3, (extra, body)


def test_null_in_the_body_is_a_field_not_given(engine_app):
    # Every optional field alike: null takes the field's default (k 10, in stock only, no
    # exclusions, no category, no user), so the answers are the same as without them.
    plain = _answer(engine_app, _event("POST", "/cross-sell", body={"items": ["i1"]}))
    nulls = {"k": None, "in_stock": None, "exclude": None, "category": None, "user_id": None}
    assert _answer(engine_app, _event("POST", "/cross-sell", body={"items": ["i1"], **nulls})) == plain
    assert plain[0] == 200 and plain[1]["items"]
    status, body = _answer(engine_app, _event("POST", "/cross-sell", body={"items": None}))
    assert status == 400 and "items" in body["message"], body
    status, body = _answer(
        engine_app, _event("POST", "/cross-sell", body={"items": ["i1"], "categroy": None})
    )
    assert status == 400 and "unknown field 'categroy'" in body["message"], body


@pytest.mark.parametrize(
    ("path", "takes"),
    [
        ("/users/u1/recommendations", "category, exclude, in_stock, k, seen"),
        ("/items/i1/similar", "category, exclude, in_stock, k"),
        ("/users/u1/cross-sell", "category, exclude, in_stock, k, seen"),
        ("/items/trending", "category, exclude, in_stock, k, min_velocity, window"),
        ("/users/u1/coupons", "k, seen"),
        ("/items/new", "category, exclude, in_stock, k"),
    ],
)
def test_a_misspelt_query_parameter_is_a_400_naming_what_the_route_takes(unreachable, path, takes):
    status, body = _answer(unreachable, _event("GET", path, {"k": "3", "categroy": "camping"}))
    assert (status, body) == (
        400,
        {"error": "bad_request", "message": f"unknown query parameter 'categroy' (it takes {takes})"},
    )


def test_many_unknown_query_parameters_are_counted_past_the_five_named(unreachable):
    query = {name: "1" for name in ("foo", "baz", "a", "b", "c", "d")}
    status, body = _answer(unreachable, _event("GET", "/users/u1/coupons", query))
    assert (status, body["message"]) == (
        400,
        "unknown query parameters 'a', 'b', 'baz', 'c', 'd' and 1 more (it takes k, seen)",
    )


def test_a_route_without_query_parameters_names_none_and_health_ignores_them(engine_app):
    event = _event("POST", "/cross-sell", {"x": "1"}, body={"items": ["i1"]})
    assert _answer(engine_app, event) == (
        400,
        {
            "error": "bad_request",
            "message": (
                "unknown query parameter 'x' (it takes none; parameters such as k go in the JSON body)"
            ),
        },
    )
    health = {**_event("GET", "/items/trending", {"_": "1700000000"}), "routeKey": "GET /health"}
    health.update(
        rawPath="/health",
        requestContext={**health["requestContext"], "http": {"method": "GET", "path": "/health"}},
    )
    assert _answer(engine_app, health)[0] == 200


def test_a_body_number_of_thousands_of_digits_is_a_400(unreachable):
    event = _event("POST", "/cross-sell", body={"items": ["i1"]})
    event["body"] = '{"items": ["i1"], "k": 1' + "0" * 5000 + "}"
    assert _answer(unreachable, event) == (
        400,
        {"error": "bad_request", "message": "body holds a number of more than 4,300 digits"},
    )


def test_a_request_no_route_takes_keeps_its_answer_whatever_its_query(unreachable):
    # A malformed id (the sample event carries ?k=5) is still named, and an unknown path is
    # still a 404: the query check does not preempt them.
    event = json.loads((Path(__file__).resolve().parents[2] / "events" / "api_bad_id.json").read_text())
    status, body = _answer(unreachable, event)
    assert status == 400 and body["message"].startswith("user_id is malformed"), body
    lost = {**_event("GET", "/items/trending", {"x": "1"}), "routeKey": "$default", "rawPath": "/nope"}
    lost["requestContext"] = {**lost["requestContext"], "http": {"method": "GET", "path": "/nope"}}
    assert _answer(unreachable, lost)[0] == 404


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("k=3&k=4", "k is given more than once; give it once"),
        (
            "exclude=i1&exclude=i2",
            "exclude is given more than once; give it once (one comma-separated list: exclude=a,b)",
        ),
    ],
)
def test_a_query_parameter_given_twice_is_named_as_such(unreachable, raw, message):
    # API Gateway passes a repeated parameter's values comma-joined, with the raw query.
    pairs = [part.split("=") for part in raw.split("&")]
    joined = {pairs[0][0]: ",".join(value for _, value in pairs)}
    event = {**_event("GET", "/users/u1/recommendations", joined), "rawQueryString": raw}
    assert _answer(unreachable, event) == (400, {"error": "bad_request", "message": message})


@pytest.mark.parametrize(
    ("body", "field"),
    [('{"items": ["i1"], "category": "\\ud800"}', "category"), ('{"items": ["i\\ud800"]}', "items")],
)
def test_a_lone_surrogate_in_the_body_is_named_as_such(unreachable, body, field):
    # One character long, so not "1..128 characters": it is not text at all.
    event = _event("POST", "/cross-sell", body={})
    event["body"] = body
    assert _answer(unreachable, event) == (
        400,
        {"error": "bad_request", "message": f"{field} is not valid Unicode text"},
    )


def test_a_query_value_that_is_not_utf8_is_refused_like_a_path_id(engine_app):
    # API Gateway passes the raw query too: %FF decodes to no character (leniently U+FFFD,
    # which would filter by a category no one sent).
    event = _event("GET", "/users/u1/recommendations", {"category": "\ufffd"})
    event["rawQueryString"] = "category=%FF"
    assert _answer(engine_app, event) == (
        400,
        {"error": "bad_request", "message": "query parameter 'category' is not UTF-8 once percent-decoded"},
    )
    # A name of such bytes says so too, rather than being an unknown parameter named U+FFFD.
    event = _event("GET", "/users/u1/recommendations", {"\ufffd": "1"})
    event["rawQueryString"] = "%FF=1"
    assert _answer(engine_app, event) == (
        400,
        {"error": "bad_request", "message": "query parameter '\ufffd' is not UTF-8 once percent-decoded"},
    )
    fine = _event("GET", "/users/u1/recommendations", {"category": "café", "k": "3"})
    fine["rawQueryString"] = "category=caf%C3%A9&k=3"
    assert _answer(engine_app, fine)[0] == 200


def test_a_content_type_is_split_at_commas_outside_quotes_only():
    from streamrec.http_api import _split_outside_quotes

    assert _split_outside_quotes('application/json; a="x,y", application/json') == [
        'application/json; a="x,y"',
        " application/json",
    ]
    assert _split_outside_quotes("") == [""]
    # One pass, whatever the header holds (a lookahead regex rescanned it at each comma).
    assert len(_split_outside_quotes("," * 9_999 + '"')) == 10_000


def test_a_users_coupons_are_at_most_20(unreachable):
    # k = 100 made any caller read the coupons of the 100 most-bought categories per request.
    status, body = _answer(unreachable, _event("GET", "/users/u1/coupons", {"k": "21"}))
    assert (status, body) == (
        400,
        {"error": "bad_request", "message": "k must be an integer between 1 and 20"},
    )
