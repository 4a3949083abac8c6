"""The DynamoDB client's fast read parsing gives exactly what botocore's own parse gives."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from streamrec import wiring
from streamrec.repositories.fast_reads import register_fast_reads

TABLE = "rows"

EVERY_TYPE = {
    "id": {"S": "tent"},
    "count": {"N": "1.5"},
    "big": {"N": "123456789012345678901234567890"},
    "names": {"SS": ["a", 'b"c']},
    "numbers": {"NS": ["1", "2.25"]},
    "nested": {
        "M": {
            "list": {"L": [{"N": "1"}, {"NULL": True}, {"BOOL": False}, {"S": "é 😀"}]},
            "empty": {"M": {}},
        }
    },
    "flag": {"BOOL": True},
    "nothing": {"NULL": True},
    "quoted": {"S": 'a value holding "B" in quotes and \\"BS\\"'},
}


@pytest.fixture
def clients(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        plain = boto3.client("dynamodb")
        plain.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        fast = register_fast_reads(boto3.client("dynamodb"))
        bodies: list[bytes] = []
        # Registered after the fast handler: sees the body botocore is left to parse.
        for operation in ("GetItem", "BatchGetItem"):
            fast.meta.events.register_last(
                f"before-parse.dynamodb.{operation}",
                lambda response_dict, **_: bodies.append(response_dict["body"]),
            )
        yield plain, fast, bodies


def _without_metadata(response: dict) -> dict:
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def test_reads_equal_botocores_own_parse_and_skip_it(clients):
    plain, fast, bodies = clients
    plain.put_item(TableName=TABLE, Item=EVERY_TYPE)
    plain.put_item(TableName=TABLE, Item={"id": {"S": "stove"}, "count": {"N": "2"}})
    key = {"id": {"S": "tent"}}
    assert _without_metadata(fast.get_item(TableName=TABLE, Key=key)) == _without_metadata(
        plain.get_item(TableName=TABLE, Key=key)
    )
    assert fast.get_item(TableName=TABLE, Key=key)["Item"] == EVERY_TYPE
    assert b"tent" not in bodies[-1]  # the item was taken out before botocore's parse
    request = {TABLE: {"Keys": [key, {"id": {"S": "stove"}}, {"id": {"S": "absent"}}]}}
    fast_batch = _without_metadata(fast.batch_get_item(RequestItems=request))
    plain_batch = _without_metadata(plain.batch_get_item(RequestItems=request))
    by_id = lambda response: sorted(response["Responses"][TABLE], key=lambda item: item["id"]["S"])  # noqa: E731
    assert by_id(fast_batch) == by_id(plain_batch) and len(by_id(fast_batch)) == 2
    assert fast_batch["UnprocessedKeys"] == plain_batch["UnprocessedKeys"] == {}
    assert b"stove" not in bodies[-1]
    # A key that finds nothing: no Item, as botocore says it.
    missing = fast.get_item(TableName=TABLE, Key={"id": {"S": "absent"}})
    assert "Item" not in missing and "Item" not in plain.get_item(
        TableName=TABLE, Key={"id": {"S": "absent"}}
    )


def test_binary_values_are_left_to_botocore(clients):
    plain, fast, bodies = clients
    plain.put_item(
        TableName=TABLE, Item={"id": {"S": "blob"}, "data": {"B": b"\x00\xff"}, "set": {"BS": [b"a"]}}
    )
    item = fast.get_item(TableName=TABLE, Key={"id": {"S": "blob"}})["Item"]
    assert item["data"] == {"B": b"\x00\xff"} and item["set"] == {"BS": [b"a"]}  # bytes, decoded
    assert b"blob" in bodies[-1]  # botocore parsed the whole body


def test_errors_are_parsed_by_botocore(clients):
    _, fast, _ = clients
    with pytest.raises(ClientError) as raised:
        fast.get_item(TableName="no-such-table", Key={"id": {"S": "x"}})
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_the_functions_client_parses_reads_the_fast_way(clients):
    plain, _, _ = clients
    plain.put_item(TableName=TABLE, Item=EVERY_TYPE)
    client = wiring.dynamodb_client()
    bodies: list[bytes] = []
    client.meta.events.register_last(
        "before-parse.dynamodb.GetItem", lambda response_dict, **_: bodies.append(response_dict["body"])
    )
    assert client.get_item(TableName=TABLE, Key={"id": {"S": "tent"}})["Item"] == EVERY_TYPE
    assert bodies and b"tent" not in bodies[-1]


def test_the_api_client_gives_up_sooner_than_the_stream_functions(clients, monkeypatch):
    # The template's Globals give every function 8 adaptive attempts; the API's client keeps
    # to 3 standard ones with short timeouts, whatever the environment says.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "8")
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    api = wiring.api_dynamodb_client().meta.config
    assert (api.connect_timeout, api.read_timeout) == (1.0, 3.0)
    assert api.retries == {"mode": "standard", "total_max_attempts": 3}
    stream = wiring.dynamodb_client().meta.config
    assert stream.retries["total_max_attempts"] == 8
    # Not botocore's 60 s, the functions' whole Timeout: a stalled call is retried within it.
    assert (stream.connect_timeout, stream.read_timeout) == (5, 20)
    for service in ("kinesis", "sqs"):
        config = wiring.stream_client(service).meta.config
        assert (config.connect_timeout, config.read_timeout) == (5, 20), service


def _handlers(client) -> int:
    """How many of the fast handlers the client runs before parsing a GetItem."""
    from streamrec.repositories import fast_reads

    handlers = client.meta.events._emitter._handlers.prefix_search("before-parse.dynamodb.GetItem")
    return sum(handler is fast_reads.take_attribute_fields for handler in handlers)


def test_the_handler_is_kept_once_a_canned_read_comes_back_whole(clients):
    from streamrec.repositories.fast_reads import PROBE_ITEM, reads_come_back_whole

    plain, fast, _ = clients
    assert _handlers(fast) == 1
    assert reads_come_back_whole(fast) is True
    # The canned answer is the probe's only: a real read still goes to the table.
    plain.put_item(TableName=TABLE, Item=EVERY_TYPE)
    assert fast.get_item(TableName=TABLE, Key={"id": {"S": "tent"}})["Item"] == EVERY_TYPE
    assert PROBE_ITEM != EVERY_TYPE


def test_a_botocore_that_drops_the_fields_gets_its_own_parse_back(clients):
    # As if botocore no longer merged customized_response_dict: the items would be lost.
    plain, _, _ = clients
    plain.put_item(TableName=TABLE, Item=EVERY_TYPE)
    client = boto3.client("dynamodb")
    client.meta.events.register_last(
        "before-parse.dynamodb.GetItem",
        lambda customized_response_dict, **_: customized_response_dict.clear(),
    )
    register_fast_reads(client)
    assert _handlers(client) == 0
    assert client.get_item(TableName=TABLE, Key={"id": {"S": "tent"}})["Item"] == EVERY_TYPE


def test_a_handler_that_fails_on_this_botocore_is_left_out(clients, monkeypatch):
    # E.g. a botocore that calls before-parse handlers with other arguments.
    from streamrec.repositories import fast_reads

    plain, _, _ = clients
    plain.put_item(TableName=TABLE, Item=EVERY_TYPE)

    def changed_signature(operation_model, response_dict, **_):
        raise TypeError("take_attribute_fields() missing 1 required argument: 'customized_response_dict'")

    monkeypatch.setattr(fast_reads, "take_attribute_fields", changed_signature)
    client = register_fast_reads(boto3.client("dynamodb"))
    handlers = client.meta.events._emitter._handlers.prefix_search("before-parse.dynamodb.GetItem")
    assert changed_signature not in handlers
    assert client.get_item(TableName=TABLE, Key={"id": {"S": "tent"}})["Item"] == EVERY_TYPE


def test_without_credentials_the_check_cannot_run_and_the_handler_stays(monkeypatch, tmp_path):
    from streamrec.repositories.fast_reads import reads_come_back_whole

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # A session of its own: the default one may hold credentials another test resolved.
    client = boto3.session.Session().client("dynamodb", region_name="us-east-1")
    assert reads_come_back_whole(client) is None
    assert _handlers(register_fast_reads(client)) == 1
