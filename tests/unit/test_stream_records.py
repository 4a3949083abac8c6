"""How the stream handlers read a record before its schema: the reasons a record that does
not decode is dead-lettered with, and the changed-items record's flags."""

from __future__ import annotations

import base64
import json

import pytest
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from streamrec.events import InvalidEvent, parse_record
from streamrec.stream import ChangeNotice, RecordCollector, parse_change


def _reason(data: bytes) -> str:
    record = KinesisStreamRecord(
        {
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/events",
            "eventID": "shardId-000000000000:1",
            "kinesis": {"partitionKey": "u1", "sequenceNumber": "1", "data": base64.b64encode(data).decode()},
        }
    )
    collector = RecordCollector(parse_record)
    collector(record)
    [letter] = collector.rejected
    return letter.reason


@pytest.mark.parametrize(
    "data, reason",
    [
        # json refuses it with Python's own words (sys.set_int_max_str_digits): not a producer's.
        (b'{"event_id": 1' + b"0" * 5000 + b"}", "not valid JSON: a number of more than 4,300 digits"),
        (b'{"event_id": "e1",}', "not valid JSON: Expecting property name enclosed in double quotes: line 1"),
        (b'{"user_id": "\xff"}', "not valid JSON: 'utf-8' codec can't decode byte 0xff"),
        (b"[" * 16_000, "not valid JSON: maximum recursion depth exceeded"),
        # json would keep the last user_id: which user was meant is a guess.
        (
            b'{"event_id": "e1", "event_type": "view", "user_id": "u1", "user_id": "u2", "item_id": "i"}',
            'not valid JSON: "user_id" is given more than once in one object; give it once',
        ),
    ],
)
def test_a_record_that_does_not_decode_is_dead_lettered_with_what_is_wrong(data: bytes, reason: str) -> None:
    assert _reason(data).startswith(reason), _reason(data)


PURCHASE = {"event_id": "e1", "event_type": "purchase", "user_id": "u1", "item_id": "i1", "timestamp": 1.7e9}
UPSERT = {
    "event_type": "item_upsert",
    "item_id": "i1",
    "title": "t",
    "category": "c",
    "price": 1.0,
    "in_stock": True,
    "timestamp": 1.7e9,
}


@pytest.mark.parametrize(
    "record, reason",
    [
        # Limits in the schema's words and as the README writes them, not pydantic's
        # "Input should be less than or equal to 100000".
        ({**PURCHASE, "quantity": 0}, "schema violation: quantity: must be at least 1"),
        ({**PURCHASE, "quantity": 100_001}, "schema violation: quantity: must be at most 100,000"),
        ({**PURCHASE, "event_id": ""}, "schema violation: event_id: must not be empty"),
        # An id's own limit, not the models' 512 characters that pydantic checks first.
        (
            {**PURCHASE, "user_id": "u" * 600},
            "schema violation: user_id: must be at most 128 characters long",
        ),
        ({**UPSERT, "price": 2e9}, "item_upsert schema violation: price: must be at most 1,000,000,000"),
        ({**UPSERT, "title": ""}, "item_upsert schema violation: title: must not be empty"),
        (
            {**UPSERT, "title": "x" * 513},
            "item_upsert schema violation: title: must be at most 512 characters long",
        ),
        (
            {**UPSERT, "tags": ["t"] * 51},
            "item_upsert schema violation: tags: must hold at most 50 entries, not 51",
        ),
    ],
)
def test_a_record_out_of_range_is_dead_lettered_with_the_schemas_limit(record: dict, reason: str) -> None:
    assert _reason(json.dumps(record).encode()) == reason


def test_base64_that_is_not_ascii_is_named_as_such() -> None:
    record = KinesisStreamRecord(
        {
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/events",
            "eventID": "shardId-000000000000:1",
            "kinesis": {"partitionKey": "u1", "sequenceNumber": "1", "data": "e30\u00e9"},
        }
    )
    collector = RecordCollector(parse_record)
    collector(record)
    [letter] = collector.rejected
    assert letter.reason == "not valid JSON: string argument should contain only ASCII characters"


def test_changed_items_flags_are_json_booleans() -> None:
    assert parse_change({"item_id": "a"}) == ChangeNotice("a", True, False, False, False)
    assert parse_change({"item_id": "a", "changed": False, "popular_changed": True}) == ChangeNotice(
        "a", False, False, True, False
    )
    # bool("false") would be True: a string flag is refused, not read as set.
    with pytest.raises(InvalidEvent, match="changed-items record's changed must be true or false"):
        parse_change({"item_id": "a", "changed": "false"})
    with pytest.raises(InvalidEvent, match="content_changed must be true or false"):
        parse_change({"item_id": "a", "content_changed": 1})
