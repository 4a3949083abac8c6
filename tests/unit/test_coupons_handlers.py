"""Coupon routes and coupon_redeemed events through the handlers, on moto, with the sample
events of events/ (coupon_put.json, coupons_get.json, ingest_coupon_redeemed.json)."""

from __future__ import annotations

import base64
import json

import boto3
import pytest

from tests.unit.conftest import FakeLambdaContext, import_handler, kinesis_event, load_event


def _coupon_row(aws, coupon_id: str) -> dict:
    table = aws.tables["CouponsTable"].name
    return boto3.client("dynamodb").get_item(TableName=table, Key={"coupon_id": {"S": coupon_id}})["Item"]


def _put(api, body: dict | str, coupon_id: str = "camping-10") -> dict:
    event = load_event("coupon_put.json")
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    event["pathParameters"] = {"coupon_id": coupon_id}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/coupons/{coupon_id}"
    return api.lambda_handler(event, FakeLambdaContext())


def test_put_ingest_get_and_redeem_once(aws):
    api = import_handler("api")
    put = api.lambda_handler(load_event("coupon_put.json"), FakeLambdaContext())
    assert put["statusCode"] == 200, put
    assert json.loads(put["body"])["remaining"] == 1000

    ingest = import_handler("ingest")
    assert ingest.lambda_handler(load_event("ingest_kinesis.json"), FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    got = api.lambda_handler(load_event("coupons_get.json"), FakeLambdaContext())
    assert got["statusCode"] == 200, got
    body = json.loads(got["body"])
    assert [c["coupon_id"] for c in body["coupons"]] == ["camping-10"]
    assert body["coupons"][0]["reasons"] == ["your activity in category camping: 2 views"]

    # The sample holds the redemption twice (a producer duplicate: same event_id); Lambda
    # then re-delivers the whole batch: remaining drops by exactly one.
    redeemed = load_event("ingest_coupon_redeemed.json")
    assert ingest.lambda_handler(redeemed, FakeLambdaContext()) == {"batchItemFailures": []}
    assert ingest.lambda_handler(redeemed, FakeLambdaContext()) == {"batchItemFailures": []}
    row = _coupon_row(aws, "camping-10")
    assert (row["remaining"]["N"], row["redeemed"]["N"]) == ("999", "1")
    users = boto3.client("dynamodb").get_item(
        TableName=aws.tables["UsersTable"].name, Key={"user_id": {"S": "user-0001"}}
    )["Item"]
    assert json.loads(users["redemptions"]["S"]) == {"camping-10": 1}

    # per_user_limit 1 reached: never offered again; a redefinition keeps the counts.
    after = json.loads(api.lambda_handler(load_event("coupons_get.json"), FakeLambdaContext())["body"])
    assert after["coupons"] == []
    again = _put(api, {**json.loads(load_event("coupon_put.json")["body"]), "budget": 10})
    assert json.loads(again["body"])["remaining"] == 9


def _get(api, coupon_id: str = "camping-10") -> dict:
    event = load_event("coupon_get.json")
    event["pathParameters"] = {"coupon_id": coupon_id}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/coupons/{coupon_id}"
    return api.lambda_handler(event, FakeLambdaContext())


def test_a_coupon_reads_back_with_its_counts_and_whether_it_is_offered_now(aws):
    api = import_handler("api")
    missing = _get(api)
    assert missing["statusCode"] == 404
    assert json.loads(missing["body"]) == {
        "error": "not_found",
        "message": "coupon 'camping-10' is not defined (PUT /coupons/{coupon_id} defines it)",
    }
    malformed = _get(api, "bad#id")
    assert (
        malformed["statusCode"] == 400
        and "coupon_id is malformed" in json.loads(malformed["body"])["message"]
    )

    defined = json.loads(api.lambda_handler(load_event("coupon_put.json"), FakeLambdaContext())["body"])
    got = _get(api)
    assert got["statusCode"] == 200
    assert json.loads(got["body"]) == defined
    assert (defined["state"], defined["remaining"], defined["redeemed"], defined["refused"]) == (
        "active",
        1000,
        0,
        0,
    )
    assert defined["scope"] == {"category": "camping"} and defined["valid_to"] == 4102358400.0

    ingest = import_handler("ingest")
    assert ingest.lambda_handler(load_event("ingest_coupon_redeemed.json"), FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    counted = json.loads(_get(api)["body"])
    assert (counted["remaining"], counted["redeemed"]) == (999, 1)

    body = json.loads(load_event("coupon_put.json")["body"])
    states = {
        "ended": {**body, "valid_from": "2020-01-01T00:00:00Z", "valid_to": "2020-02-01T00:00:00Z"},
        "later": {**body, "valid_from": "2098-01-01T00:00:00Z"},
        "spent": {**body, "budget": 0},
        "never": {**body, "valid_from": "2098-01-01T00:00:00Z", "budget": 0},  # not offered once valid
    }
    for coupon_id, spec in states.items():
        assert _put(api, spec, coupon_id)["statusCode"] == 200
    assert {coupon_id: json.loads(_get(api, coupon_id)["body"])["state"] for coupon_id in states} == {
        "ended": "expired",
        "later": "scheduled",
        "spent": "exhausted",
        "never": "exhausted",
    }


def test_bad_coupon_input_is_a_400_with_a_message(aws):
    api = import_handler("api")
    bad = api.lambda_handler(load_event("coupon_put_bad.json"), FakeLambdaContext())
    assert bad["statusCode"] == 400
    message = json.loads(bad["body"])["message"]
    assert json.loads(bad["body"])["error"] == "bad_request"
    assert "budget" in message and "discount" in message and "scope" in message

    window = json.loads(load_event("coupon_put.json")["body"])
    window["valid_to"] = window["valid_from"]
    reply = _put(api, window)
    assert (
        reply["statusCode"] == 400
        and "valid_to: must be after valid_from" in json.loads(reply["body"])["message"]
    )
    both = _put(api, {**window, "budget": -1})  # named together, not one round each
    assert both["statusCode"] == 400
    assert json.loads(both["body"])["message"] == (
        "valid_to: must be after valid_from; budget: must be at least 0"
    )
    # Ranges and empty lists in the schema's words, not pydantic's ("Input should be ...").
    ranges = _put(
        api, {**window, "valid_to": "2030-01-01T00:00:00Z", "min_spend": 2e9, "scope": {"items": []}}
    )
    assert json.loads(ranges["body"])["message"] == (
        "scope.items: must not be empty; min_spend: must be at most 1,000,000,000"
    )
    for body in ("not json", "[1, 2]"):
        reply = _put(api, body)
        assert reply["statusCode"] == 400, reply
        assert "JSON object" in json.loads(reply["body"])["message"]
    reply = _put(api, json.loads(load_event("coupon_put.json")["body"]), coupon_id="bad#id")
    assert reply["statusCode"] == 400 and "coupon_id is malformed" in json.loads(reply["body"])["message"]

    event = load_event("coupons_get.json")
    for k in ("0", "21", "x"):
        event["queryStringParameters"] = {"k": k}
        reply = api.lambda_handler(event, FakeLambdaContext())
        assert reply["statusCode"] == 400
        assert json.loads(reply["body"])["message"] == "k must be an integer between 1 and 20"


def test_seen_purchased_offers_no_coupon_for_an_item_the_user_bought(aws):
    api = import_handler("api")
    ingest = import_handler("ingest")
    # user-0002 viewed the tent and bought the sleeping bag (events/ingest_kinesis.json).
    assert ingest.lambda_handler(load_event("ingest_kinesis.json"), FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    coupon = {**json.loads(load_event("coupon_put.json")["body"]), "scope": {"items": ["sleeping-bag-down"]}}
    assert _put(api, coupon, coupon_id="bag-10")["statusCode"] == 200

    def offered(query: dict[str, str]) -> dict:
        event = load_event("coupons_get.json")
        event["pathParameters"] = {"user_id": "user-0002"}
        event["rawPath"] = event["requestContext"]["http"]["path"] = "/users/user-0002/coupons"
        event["queryStringParameters"] = query
        event["rawQueryString"] = "&".join(f"{key}={value}" for key, value in query.items())
        return api.lambda_handler(event, FakeLambdaContext())

    default = json.loads(offered({"k": "3"})["body"])
    assert [(c["coupon_id"], c["reasons"]) for c in default["coupons"]] == [
        ("bag-10", ["it applies to sleeping-bag-down, which you bought"])
    ]
    assert json.loads(offered({"k": "3", "seen": "none"})["body"]) == default
    assert json.loads(offered({"k": "3", "seen": "purchased"})["body"])["coupons"] == []
    refused = offered({"seen": "history"})
    assert refused["statusCode"] == 400
    assert json.loads(refused["body"])["message"] == "seen must be one of none, purchased"


def test_redemption_of_an_exhausted_coupon_never_goes_below_zero(aws):
    api = import_handler("api")
    body = {**json.loads(load_event("coupon_put.json")["body"]), "budget": 0}
    assert _put(api, body)["statusCode"] == 200
    ingest = import_handler("ingest")
    redeemed = load_event("ingest_coupon_redeemed.json")
    assert ingest.lambda_handler(redeemed, FakeLambdaContext()) == {"batchItemFailures": []}
    assert ingest.lambda_handler(redeemed, FakeLambdaContext()) == {"batchItemFailures": []}
    row = _coupon_row(aws, "camping-10")
    assert (row["remaining"]["N"], row["redeemed"]["N"], row["refused"]["N"]) == ("0", "0", "1")
    stored = json.loads(_get(api)["body"])
    assert (stored["state"], stored["remaining"], stored["refused"]) == ("exhausted", 0, 1)


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "application/x-www-form-urlencoded",
        "text/plain; charset=utf-8",
        "application/json,text/plain",  # two types: which one is the body?
        "application/xml, text/x+json",
    ],
)
def test_a_body_that_is_not_json_is_a_415(aws, content_type):
    api = import_handler("api")
    event = load_event("coupon_put.json")
    event["headers"] = {**(event.get("headers") or {}), "content-type": content_type}
    reply = api.lambda_handler(event, FakeLambdaContext())
    assert reply["statusCode"] == 415
    assert json.loads(reply["body"]) == {
        "error": "unsupported_media_type",
        "message": "send the body as JSON (Content-Type: application/json)",
    }


def _with_body(name: str, body: str | None, content_type: str | None = "application/json") -> dict:
    event = load_event(name)
    event["headers"] = {"content-type": content_type} if content_type else {}
    event.pop("body", None)
    if body is not None:
        event["body"] = body
    return event


def test_a_coupon_body_names_its_problems_in_its_own_terms(aws):
    api = import_handler("api")
    body = json.loads(load_event("coupon_put.json")["body"])
    reply = _put(api, {**body, "scope": {"category": "\ud800"}})  # json.dumps keeps it escaped
    assert json.loads(reply["body"])["message"] == "scope.category is not valid Unicode text"
    event = load_event("coupon_put.json")
    event["queryStringParameters"], event["rawQueryString"] = {"k": "3"}, "k=3"
    reply = api.lambda_handler(event, FakeLambdaContext())
    # The cart's hint ("parameters such as k go in the JSON body") is not for a coupon.
    assert json.loads(reply["body"])["message"] == "unknown query parameter 'k' (it takes none)"


CART_MESSAGE = 'the body must be a JSON object like {"items": ["item-1"], "k": 10}'
COUPON_MESSAGE = "body must be a JSON object describing the coupon"


@pytest.mark.parametrize("content_type", [";", "; charset=utf-8", " ;", ";application/json"])
@pytest.mark.parametrize("name", ["api_cross_sell_post.json", "coupon_put.json"])
def test_a_content_type_naming_no_media_type_is_read_as_none(aws, name, content_type):
    # Powertools compared the header itself to application/json: an internal error.
    api = import_handler("api")
    reply = api.lambda_handler(_with_body(name, load_event(name)["body"], content_type), FakeLambdaContext())
    assert reply["statusCode"] == 200, reply
    bodiless = api.lambda_handler(_with_body(name, None, content_type), FakeLambdaContext())
    assert bodiless["statusCode"] == 400, bodiless


# Lenient base64 skips the characters outside its alphabet: {"items":["abc"]} would decode
# (to bytes that are not UTF-8), and so would {} and a coupon's JSON, each then answered
# as a JSON problem of a body the client sent as plain JSON.
@pytest.mark.parametrize(
    "body", ['{"items":["ab"]}', '{"items":["abc"]}', '{"items":["tent-123"]}', "{}", "eyJ", "ünïcode"]
)
@pytest.mark.parametrize("name", ["api_cross_sell_post.json", "coupon_put.json"])
def test_a_body_marked_base64_that_is_not_is_a_400(aws, name, body):
    event = _with_body(name, body)
    event["isBase64Encoded"] = True
    reply = import_handler("api").lambda_handler(event, FakeLambdaContext())
    assert reply["statusCode"] == 400, reply
    assert json.loads(reply["body"]) == {
        "error": "bad_request",
        "message": "the body is marked base64-encoded but is not base64",
    }


# Through the whole handler: the body checks that run before the resolver leave these to its
# handlers, whose 400s name them (a ValueError escaping those checks failed the invocation).
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"items": ["x"], "k": 1' + "0" * 5000 + "}", "body holds a number of more than 4,300 digits"),
        ("[" * 30_000 + "]" * 30_000, "body is nested too deeply to be a cart or a coupon"),
    ],
)
@pytest.mark.parametrize("name", ["api_cross_sell_post.json", "coupon_put.json"])
def test_a_body_past_jsons_limits_is_a_400_naming_them(aws, name, body, message):
    reply = import_handler("api").lambda_handler(_with_body(name, body), FakeLambdaContext())
    assert reply["statusCode"] == 400, reply
    assert json.loads(reply["body"])["message"] == message


@pytest.mark.parametrize(
    ("name", "body", "key"),
    [
        ("api_cross_sell_post.json", '{"items": ["tent"], "k": 3, "k": 300}', "k"),
        ("api_cross_sell_post.json", '{"items": ["tent"], "user_id": "u1", "user_id": "u2"}', "user_id"),
        (  # in a nested object too
            "coupon_put.json",
            '{"scope": {"category": "camping", "category": "hiking"}, "discount": {"kind": "percent", '
            '"value": 5}, "valid_from": 1764000000, "valid_to": 1864000000, "budget": 10}',
            "category",
        ),
    ],
)
def test_a_body_giving_a_name_twice_is_refused_not_read_by_its_last(aws, name, body, key):
    # json keeps the last value: a cart for u2 when the caller may have meant u1.
    reply = import_handler("api").lambda_handler(_with_body(name, body), FakeLambdaContext())
    assert reply["statusCode"] == 400, reply
    assert json.loads(reply["body"])["message"] == (
        f'the body\'s "{key}" is given more than once in one object; give it once'
    )


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ('{"items": ["x"], "k": 3', "Expecting ',' delimiter: line 1, column 24"),
        ('{"items": ["x"],}', "Expecting property name enclosed in double quotes: line 1, column 17"),
        ('{"items": ["x"]}\n{"k": 3}', "Extra data: line 2, column 1"),
        ("items=x", "Expecting value: line 1, column 1"),
        # Python's json reads these as floats: a budget of Infinity was "a number with a fraction".
        ('{"items": ["x"], "k": Infinity}', "Infinity is not a JSON number"),
        ('{"items": ["x"], "k": NaN}', "NaN is not a JSON number"),
    ],
)
@pytest.mark.parametrize(
    ("name", "message"),
    [("api_cross_sell_post.json", CART_MESSAGE), ("coupon_put.json", COUPON_MESSAGE)],
)
def test_a_body_that_is_not_json_is_told_where_its_parser_stopped(aws, name, message, body, where):
    reply = import_handler("api").lambda_handler(_with_body(name, body), FakeLambdaContext())
    assert reply["statusCode"] == 400, reply
    assert json.loads(reply["body"])["message"] == f"the body is not valid JSON ({where}); {message}"


@pytest.mark.parametrize(
    ("name", "message"),
    [("api_cross_sell_post.json", CART_MESSAGE), ("coupon_put.json", COUPON_MESSAGE)],
)
def test_an_array_around_the_body_is_a_400_not_its_first_element(aws, name, message):
    # Powertools would validate the first element alone and drop the rest silently.
    api = import_handler("api")
    good = load_event(name)["body"]
    for body in (f"[{good}]", f'[{good}, "garbage", 5]'):
        reply = api.lambda_handler(_with_body(name, body), FakeLambdaContext())
        assert reply["statusCode"] == 400, reply
        assert json.loads(reply["body"]) == {"error": "bad_request", "message": f"{message}, not an array"}
    # Base64 as API Gateway sends it, and with line breaks, which Powertools decodes too.
    for encode in (base64.b64encode, base64.encodebytes):
        event = _with_body(name, encode(f"[{good}]".encode()).decode())
        event["isBase64Encoded"] = True
        assert api.lambda_handler(event, FakeLambdaContext())["statusCode"] == 400
    assert "Item" not in boto3.client("dynamodb").get_item(
        TableName=aws.tables["CouponsTable"].name, Key={"coupon_id": {"S": "camping-10"}}
    )
    # The object itself is served.
    assert api.lambda_handler(_with_body(name, good), FakeLambdaContext())["statusCode"] == 200


@pytest.mark.parametrize(
    ("name", "message"),
    [("api_cross_sell_post.json", CART_MESSAGE), ("coupon_put.json", COUPON_MESSAGE)],
)
def test_a_byte_order_mark_before_the_body_is_named(aws, name, message):
    api = import_handler("api")
    reply = api.lambda_handler(_with_body(name, "\ufeff" + load_event(name)["body"]), FakeLambdaContext())
    assert (reply["statusCode"], json.loads(reply["body"])["message"]) == (
        400,
        f"{message}; it starts with a byte-order mark (U+FEFF): send the JSON without it",
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [("api_cross_sell_post.json", CART_MESSAGE), ("coupon_put.json", COUPON_MESSAGE)],
)
@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/json", None])
@pytest.mark.parametrize("body", [None, ""])
def test_a_missing_body_is_a_400_whatever_its_content_type(aws, name, message, content_type, body):
    # Powertools failed on the declared type of a body that was not there (a 500).
    reply = import_handler("api").lambda_handler(_with_body(name, body, content_type), FakeLambdaContext())
    assert reply["statusCode"] == 400, reply
    assert json.loads(reply["body"]) == {"error": "bad_request", "message": message}


@pytest.mark.parametrize("name", ["api_health.json", "coupons_get.json", "api_delete_user.json"])
def test_a_body_on_a_route_that_reads_none_is_ignored(aws, name):
    api = import_handler("api")
    event = load_event(name)
    event["headers"] = {**(event.get("headers") or {}), "content-type": "text/plain"}
    event["body"] = "hello"
    assert api.lambda_handler(event, FakeLambdaContext())["statusCode"] in (200, 204)


def test_a_request_without_a_body_is_not_refused_for_its_content_type(aws):
    api = import_handler("api")
    event = load_event("coupons_get.json")
    event["headers"] = {**(event.get("headers") or {}), "content-type": "text/plain"}
    assert api.lambda_handler(event, FakeLambdaContext())["statusCode"] == 200


def test_a_body_that_is_not_utf8_is_a_400(aws):
    import base64

    api = import_handler("api")
    event = load_event("coupon_put.json")
    event["body"] = base64.b64encode(b'{"scope": "\xff\xfe"}').decode()
    event["isBase64Encoded"] = True
    reply = api.lambda_handler(event, FakeLambdaContext())
    assert reply["statusCode"] == 400
    assert json.loads(reply["body"])["message"] == "body must be a JSON object in UTF-8"


@pytest.mark.parametrize(
    "content_type",
    [
        "Application/JSON",
        "APPLICATION/JSON; charset=utf-8",
        "application/vnd.api+json",
        # sent twice: API Gateway joins a repeated header's values with a comma
        "application/json,application/json",
        "application/json, application/json; charset=utf-8",
        'application/json; foo="a,b"',  # a comma inside a quoted parameter joins nothing
    ],
)
def test_any_spelling_of_a_json_media_type_is_accepted(aws, content_type):
    api = import_handler("api")
    event = load_event("coupon_put.json")
    event["headers"] = {"Content-Type": content_type}
    reply = api.lambda_handler(event, FakeLambdaContext())
    assert reply["statusCode"] == 200, reply


def test_a_body_nested_thousands_deep_is_a_400(aws):
    api = import_handler("api")
    reply = _put(api, "[" * 5000)
    assert reply["statusCode"] == 400, reply
    assert json.loads(reply["body"])["message"] == "body is nested too deeply to be a cart or a coupon"


def test_a_rule_on_the_whole_coupon_and_a_bad_id_read_cleanly(aws):
    api = import_handler("api")
    body = json.loads(load_event("coupon_put.json")["body"])
    reply = _put(api, {**body, "valid_from": 2_000_000_000, "valid_to": 1_900_000_000})
    assert reply["statusCode"] == 400
    assert json.loads(reply["body"])["message"] == "valid_to: must be after valid_from"
    reply = _put(api, {}, coupon_id="-x")
    message = json.loads(reply["body"])["message"]
    assert reply["statusCode"] == 400 and ".;" not in message and "(not starting with a symbol)" in message


def test_a_recursion_error_without_a_body_is_ours_not_the_clients(aws, monkeypatch):
    api = import_handler("api")

    def recurse(*_args, **_kwargs):
        raise RecursionError("a bug")

    monkeypatch.setattr("streamrec.domain.coupons.CouponService.for_user", recurse)
    reply = api.lambda_handler(load_event("coupons_get.json"), FakeLambdaContext())
    assert reply["statusCode"] == 500


def test_a_time_of_hundreds_of_digits_is_a_400(aws):
    api = import_handler("api")
    body = json.loads(load_event("coupon_put.json")["body"])
    reply = _put(api, json.dumps({**body, "valid_from": 10**400}))
    assert reply["statusCode"] == 400, reply
    assert json.loads(reply["body"])["message"] == "valid_from: must be from 2000-01-01 to 2100-01-01"


def test_redemption_of_an_undefined_coupon_is_dead_lettered_and_not_held_against_the_user(aws, caplog):
    ingest = import_handler("ingest")
    redeemed = load_event("ingest_coupon_redeemed.json")
    first = json.loads(base64.b64decode(redeemed["Records"][0]["kinesis"]["data"]))
    view = {
        **first,
        "event_id": "evt-0102",
        "event_type": "view",
        "item_id": "tent-2-person-ultralight",
        "category": "camping",
    }
    del view["coupon_id"]
    # The same batch holds a valid view: it is applied, the redemption is not.
    redeemed["Records"][1]["kinesis"]["data"] = base64.b64encode(json.dumps(view).encode()).decode()
    assert ingest.lambda_handler(redeemed, FakeLambdaContext()) == {"batchItemFailures": []}

    sqs = boto3.client("sqs")
    queue = sqs.get_queue_url(QueueName=aws.queues["DeadLetterQueue"].name)["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["reason"] for m in messages] == [
        "processing failed: UnknownCouponError: coupon_redeemed names coupon 'camping-10', which is"
        " not defined (define it with PUT /coupons/camping-10 or streamrec coupons load, then"
        " re-drive this record)"
    ]
    user = boto3.client("dynamodb").get_item(
        TableName=aws.tables["UsersTable"].name, Key={"user_id": {"S": "user-0001"}}
    )["Item"]
    assert json.loads(user["redemptions"]["S"]) == {}
    assert "tent-2-person-ultralight" in user["items"]["S"]
    # The shop's data, not a bug: a warning with the reason, no traceback read as a crash.
    [logged] = [r for r in caplog.records if r.getMessage().startswith("record processing keeps failing")]
    assert (logged.levelname, logged.exc_info) == ("WARNING", None)

    # Defined afterwards, the coupon is offered to the user (nothing was counted).
    api = import_handler("api")
    assert _put(api, json.loads(load_event("coupon_put.json")["body"]))["statusCode"] == 200
    got = json.loads(api.lambda_handler(load_event("coupons_get.json"), FakeLambdaContext())["body"])
    assert [c["coupon_id"] for c in got["coupons"]] == ["camping-10"]

    # Re-driven (put back on the stream: a later sequence number), it counts once on both
    # rows; re-driven twice, the user row's recent event ids catch it.
    letter = json.loads(base64.b64decode(json.loads(messages[0]["Body"])["data"]))
    for sequence in (6 * 10**51, 6 * 10**51 + 1):
        redriven = kinesis_event([letter], first_sequence=sequence, template="ingest_coupon_redeemed.json")
        assert ingest.lambda_handler(redriven, FakeLambdaContext()) == {"batchItemFailures": []}
    assert (_coupon_row(aws, "camping-10")["redeemed"]["N"]) == "1"
    user = boto3.client("dynamodb").get_item(
        TableName=aws.tables["UsersTable"].name, Key={"user_id": {"S": "user-0001"}}
    )["Item"]
    assert json.loads(user["redemptions"]["S"]) == {"camping-10": 1}


def test_the_api_function_shares_one_similarity_cache(aws):
    api = import_handler("api")
    assert api.coupons.similarity is api.recommendations.similarity
    assert type(api.coupons.similarity).__name__ == "CachingSimilarityRepository"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"scope": "camping"}, "scope: must be a JSON object, got a string"),
        ({"discount": 5}, "discount: must be a JSON object, got a number"),
        (
            {"scope": {"items": ["x/y"]}},
            'scope.items.0: "x/y" is not an id: 1-128 characters: ASCII letters A-Z a-z, digits 0-9',
        ),
    ],
)
def test_a_coupon_bodys_wrong_types_and_ids_are_named_in_the_schemas_words(aws, patch, message):
    # Not pydantic's "Input should be a valid dictionary or object to extract fields from"
    # or the id's regular expression.
    api = import_handler("api")
    body = json.loads(load_event("coupon_put.json")["body"])
    reply = _put(api, {**body, **patch})
    assert reply["statusCode"] == 400 and json.loads(reply["body"])["message"].startswith(message)


def test_a_coupon_bodys_unknown_fields_are_named_together_and_coupon_id_goes_in_the_path(aws):
    api = import_handler("api")
    body = json.loads(load_event("coupon_put.json")["body"])
    extra = {name: 1 for name in ("a", "b", "c", "d", "e", "f")}
    message = json.loads(_put(api, {**body, **extra, "coupon_id": "c1"})["body"])["message"]
    assert message == (
        "coupon_id goes in the path (PUT /coupons/{coupon_id}), not in the body; "
        "unknown fields 'a', 'b', 'c', 'd', 'e' and 1 more; "
        "expected scope, discount, min_spend, valid_from, valid_to, budget, per_user_limit"
    )
    nested = json.loads(_put(api, {**body, "scope": {"category": "camping", "colour": "red"}})["body"])
    assert nested["message"] == "scope: unknown field 'colour'"
    # An inner object's unknown fields are named together too: a body near the 64 KiB cap
    # holds thousands, which would make the answer larger than the request.
    crowded = {f"f{n:05d}": 0 for n in range(5000)}
    reply = _put(
        api, {**body, "scope": {"category": "camping", **crowded}, "discount": {**body["discount"], "x": 1}}
    )
    assert json.loads(reply["body"])["message"] == (
        "scope: unknown fields 'f00000', 'f00001', 'f00002', 'f00003', 'f00004' and 4995 more; "
        "discount: unknown field 'x'"
    )


@pytest.mark.parametrize("name", ["coupon_put.json", "api_cross_sell_post.json"])
@pytest.mark.parametrize("encoded", [False, True], ids=["text", "base64"])
def test_a_body_over_64_kib_is_a_413_unread(aws, name, encoded):
    # 8,000 unknown fields: validated, each would cost an error (seconds and hundreds of MB at 6 MB).
    body = json.dumps({f"field{n}": 0 for n in range(8000)})
    assert len(body) > 64 * 1024
    event = _with_body(name, base64.b64encode(body.encode()).decode() if encoded else body)
    event["isBase64Encoded"] = encoded
    reply = import_handler("api").lambda_handler(event, FakeLambdaContext())
    assert reply["statusCode"] == 413
    answer = json.loads(reply["body"])
    assert answer["error"] == "payload_too_large"
    assert answer["message"].startswith(f"the body is {len(body):,} bytes; at most 65,536 are read")


def test_a_body_just_under_the_cap_is_read(aws):
    # The largest cart there is, padded with spaces up to the cap: read and answered.
    body = json.dumps({"items": [f"item-{n:03d}" + "x" * 110 for n in range(50)], "k": 5})
    body += " " * (64 * 1024 - len(body))
    reply = import_handler("api").lambda_handler(
        _with_body("api_cross_sell_post.json", body), FakeLambdaContext()
    )
    assert reply["statusCode"] == 200, reply["body"]


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("coupon_get.json", "coupon_id", "camping-10"),
        ("coupon_put.json", "coupon_id", "camping-10"),
        ("api_delete_user.json", "user_id", "user-0002"),
        ("api_profile.json", "user_id", "user-0013"),
    ],
)
@pytest.mark.parametrize("with_path_parameters", [True, False])
def test_a_path_id_ending_in_a_control_character_is_refused_not_read_without_it(
    aws, name, field, value, with_path_parameters
):
    # Powertools' route regex ends in "$", which matches before a final newline: the route
    # used to get the id without it, and `DELETE /users/alice%0A` forgot alice.
    api = import_handler("api")
    for suffix in ("\n", "\r", "\t"):
        event = load_event(name)
        path = event["rawPath"]
        assert value in path
        event["rawPath"] = event["requestContext"]["http"]["path"] = path.replace(value, value + suffix)
        if with_path_parameters:  # as API Gateway delivers them (decoded)
            event["pathParameters"] = {field: value + suffix}
        else:
            event.pop("pathParameters", None)
        reply = api.lambda_handler(event, FakeLambdaContext())
        assert reply["statusCode"] == 400, (suffix, reply)
        assert json.loads(reply["body"])["message"].startswith(f"{field} is malformed"), reply
