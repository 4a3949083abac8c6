"""moto's DynamoDB and Kinesis backends are serialised by ``moto_fixes.apply`` (the local
pipelines call them from many threads; unserialised, racing writes to new item keys lost
rows: 4 of 32,000 under 16 threads)."""

from __future__ import annotations

import base64
import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from moto.dynamodb.models.table import Table
from moto.kinesis.models import Shard

from streamrec.local import moto_fixes


@pytest.fixture
def serialised(aws: Any) -> None:
    """moto in-process (the ``aws`` fixture) with the fixes applied."""
    moto_fixes.apply()


def _recording(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> list[bool]:
    """Wrap ``owner.name`` (below the backend) to record whether the lock is held in it."""
    held: list[bool] = []
    original = getattr(owner, name)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        held.append(moto_fixes._BACKEND_LOCK._is_owned())  # type: ignore[attr-defined]
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, recorded)
    return held


def test_dynamodb_item_writes_hold_the_backend_lock(
    serialised: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = boto3.client("dynamodb")
    client.create_table(
        TableName="rows",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "item_id", "AttributeType": "S"},
            {"AttributeName": "block", "AttributeType": "N"},
        ],
        KeySchema=[
            {"AttributeName": "item_id", "KeyType": "HASH"},
            {"AttributeName": "block", "KeyType": "RANGE"},
        ],
    )
    held = _recording(monkeypatch, Table, "put_item")

    def write(block: int) -> None:
        client.update_item(
            TableName="rows",
            Key={"item_id": {"S": "new-item"}, "block": {"N": str(block)}},
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(16)))
    client.put_item(TableName="rows", Item={"item_id": {"S": "other"}, "block": {"N": "0"}})

    assert len(held) == 17 and all(held)
    rows = client.query(
        TableName="rows",
        KeyConditionExpression="item_id = :i",
        ExpressionAttributeValues={":i": {"S": "new-item"}},
    )["Items"]
    assert sorted(int(r["block"]["N"]) for r in rows) == list(range(16))


def test_kinesis_puts_hold_the_backend_lock(serialised: None, monkeypatch: pytest.MonkeyPatch) -> None:
    client = boto3.client("kinesis")
    client.create_stream(StreamName="events", ShardCount=1)
    held = _recording(monkeypatch, Shard, "put_record")

    def put(n: int) -> None:
        records = [{"Data": f"{n}-{i}".encode(), "PartitionKey": "p"} for i in range(5)]
        client.put_records(StreamName="events", Records=records)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(put, range(8)))

    assert len(held) == 40 and all(held)
    (shard,) = client.list_shards(StreamName="events")["Shards"]
    iterator = client.get_shard_iterator(
        StreamName="events", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = client.get_records(ShardIterator=iterator, Limit=100)["Records"]
    assert len({r["SequenceNumber"] for r in records}) == 40


def test_apply_twice_wraps_once(serialised: None) -> None:
    from moto.dynamodb.models import DynamoDBBackend

    wrapped = DynamoDBBackend.put_item
    moto_fixes.apply()
    assert DynamoDBBackend.put_item is wrapped
    assert wrapped.__wrapped__.__name__ == "put_item"  # type: ignore[attr-defined]


# -- DynamoDB responses: AttributeValues encoded directly, byte for byte as moto would ----------

_names = st.text(alphabet="abcdefgh#_:é", max_size=6)  # "" too: moto's generic path mishandles it
_strings = st.text(max_size=12)
_numbers = st.integers(-(10**12), 10**12).map(str) | st.floats(allow_nan=False, allow_infinity=False).map(
    repr
)
_plain_scalars = st.one_of(
    _strings.map(lambda v: {"S": v}),
    _numbers.map(lambda v: {"N": v}),
    st.binary(max_size=12).map(lambda v: {"B": v}),
    st.lists(_strings, min_size=1, max_size=4).map(lambda v: {"SS": v}),
    st.lists(_numbers, min_size=1, max_size=4).map(lambda v: {"NS": v}),
    st.lists(st.binary(max_size=6), min_size=1, max_size=3).map(lambda v: {"BS": v}),
    st.just({"NULL": True}),
    st.booleans().map(lambda v: {"BOOL": v}),
)
_scalars = st.one_of(
    _plain_scalars,
    # Two members in one value: moto never makes one, but the generic path writes both,
    # in the shape's order.
    st.tuples(_plain_scalars, _plain_scalars).map(lambda pair: {**pair[1], **pair[0]}),
    # Forms the fast path leaves to the generic serializer (moto never makes them; the
    # answer must be the generic one all the same).
    st.just({"S": "x", "s": "y"}),
    st.just({"S": None, "N": "1"}),
    st.just({"N": 5}),
)
_attribute_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.dictionaries(_names, inner, max_size=4).map(lambda v: {"M": v}),
        st.lists(inner, max_size=4).map(lambda v: {"L": v}),
    ),
    max_leaves=20,
)
_items = st.dictionaries(_names, _attribute_values, min_size=1, max_size=5)


def _body(operation: str, result: dict[str, Any], generic: bool, service: str = "dynamodb") -> str:
    from moto.core.serialize import JSONSerializer, XFormedAttributePicker
    from moto.core.utils import get_service_model

    serializer_class: type = JSONSerializer
    if generic:
        serializer_class = type(
            "Generic",
            (JSONSerializer,),
            {"_serialize_type_structure": JSONSerializer._streamrec_generic_structure},  # type: ignore[attr-defined]
        )
    serializer = serializer_class(
        operation_model=get_service_model(service).operation_model(operation),
        pretty_print=False,
        value_picker=XFormedAttributePicker(),
    )
    return serializer.serialize(result)["body"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=_items, others=st.lists(_items, max_size=3))
@example(item={"b": {"B": b"\x00"}, "bs": {"BS": [b"\xff"]}}, others=[])  # one-byte binaries
@example(item={"m": {"M": {"": {"S": "x"}, "k": {"N": "1"}}}}, others=[])  # an empty key inside
@example(item={"two": {"S": "x", "BOOL": False}, "l": {"L": [{"NULL": True, "N": "2"}]}}, others=[])
def test_attribute_values_encode_as_the_generic_serializer_does(item: dict, others: list[dict]) -> None:
    moto_fixes.apply()
    results = {
        ("dynamodb", "GetItem"): {"Item": item},
        ("dynamodb", "UpdateItem"): {"Attributes": item},
        ("dynamodb", "BatchGetItem"): {"Responses": {"rows": [item, *others]}, "UnprocessedKeys": {}},
        ("dynamodb", "Query"): {"Items": [item, *others], "Count": 1 + len(others), "LastEvaluatedKey": item},
        ("dynamodb", "TransactGetItems"): {"Responses": [{"Item": item}, *({"Item": o} for o in others)]},
        ("dynamodbstreams", "GetRecords"): {
            "Records": [{"eventName": "MODIFY", "dynamodb": {"Keys": item, "NewImage": o}} for o in others]
        },
    }
    for (service, operation), result in results.items():
        fast = _body(operation, result, generic=False, service=service)
        assert fast == _body(operation, result, generic=True, service=service), operation
        assert json.loads(fast)  # a body, not an empty answer


def test_a_similarity_row_reads_back_the_same_through_the_fast_path(
    serialised: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # End to end through boto3 and moto: what was written comes back, binaries included,
    # and it was the fast path that encoded it.
    encoded: list[dict[str, Any]] = []
    direct = moto_fixes._attribute_value

    def recorded(value: Any, base64: Any) -> dict[str, Any]:
        encoded.append(direct(value, base64))
        return encoded[-1]

    monkeypatch.setattr(moto_fixes, "_attribute_value", recorded)
    client = boto3.client("dynamodb")
    table = os.environ["SIMILARITY_TABLE"]
    assert [k["AttributeName"] for k in client.describe_table(TableName=table)["Table"]["KeySchema"]] == [
        "item_id"
    ]
    item = {
        "item_id": {"S": "tent"},
        "neighbours": {
            "L": [{"M": {"id": {"S": f"item-{n}"}, "score": {"N": str(n / 7)}}} for n in range(300)]
        },
        "packed": {"B": bytes(range(256))},
        "tags": {"SS": ["camping", "outdoor"]},
        "flag": {"BOOL": False},
        "nothing": {"NULL": True},
    }
    client.put_item(TableName=table, Item=item)
    encoded.clear()
    read = client.get_item(TableName=table, Key={"item_id": {"S": "tent"}}, ConsistentRead=True)
    assert read["Item"] == item
    assert item["neighbours"] in encoded and {"B": base64.b64encode(bytes(range(256))).decode()} in encoded


def test_a_parsed_update_expression_is_reused_without_its_first_calls_names_or_values(
    serialised: None,
) -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    client = boto3.client("dynamodb")
    table = os.environ["SIMILARITY_TABLE"]
    expression = "SET #g = :last ADD #0 :0"
    assert UpdateExpressionParser.make(expression) is UpdateExpressionParser.make(expression)
    for item, (name, count) in {"tent": ("views", 2), "stove": ("buys", 5)}.items():
        for _ in range(2):
            client.update_item(
                TableName=table,
                Key={"item_id": {"S": item}},
                UpdateExpression=expression,
                ExpressionAttributeNames={"#g": "last", "#0": name},
                ExpressionAttributeValues={":last": {"S": item}, ":0": {"N": str(count)}},
            )
    rows = {
        item: client.get_item(TableName=table, Key={"item_id": {"S": item}})["Item"]
        for item in ("tent", "stove")
    }
    assert rows == {
        "tent": {"item_id": {"S": "tent"}, "last": {"S": "tent"}, "views": {"N": "4"}},
        "stove": {"item_id": {"S": "stove"}, "last": {"S": "stove"}, "buys": {"N": "10"}},
    }
    for _ in range(2):  # a malformed expression is refused each time, not kept
        with pytest.raises(client.exceptions.ClientError, match="ValidationException"):
            client.update_item(TableName=table, Key={"item_id": {"S": "x"}}, UpdateExpression="SET #g = ")
