"""Property tests of the event parser: it never raises anything but InvalidEvent, and every
valid event round-trips."""

from __future__ import annotations

import base64
import json
import math
import time
import unicodedata
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streamrec.events import (
    EARLIEST_TIMESTAMP,
    ID_PATTERN,
    InvalidEvent,
    ItemUpsert,
    UserEvent,
    parse_event,
    parse_record,
)
from streamrec.stream import RecordCollector

pytestmark = pytest.mark.reliability

EXAMPLES = 1000
NOW = int(time.time())  # fixed, so that generation is reproducible within the session
FIELDS = [
    "event_id",
    "event_type",
    "user_id",
    "item_id",
    "timestamp",
    "session_id",
    "price",
    "quantity",
    "category",
]
EVENT_TYPES = ["view", "add_to_cart", "remove_from_cart", "purchase"]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
ids = st.from_regex(ID_PATTERN, fullmatch=True)


@st.composite
def mutated_events(draw: Any) -> dict[str, Any]:
    """A valid-looking event with some fields replaced by arbitrary JSON values or removed."""
    event: dict[str, Any] = {
        "event_id": draw(st.text(min_size=1, max_size=128)),
        "event_type": draw(st.sampled_from(EVENT_TYPES)),
        "user_id": draw(ids),
        "item_id": draw(ids),
        "timestamp": draw(st.integers(EARLIEST_TIMESTAMP, NOW)),
    }
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        if draw(st.booleans()):
            event.pop(name, None)
        else:
            event[name] = draw(json_values)
    return event


GOOD = {"event_id": "e1", "event_type": "view", "user_id": "u", "item_id": "i", "timestamp": 1.7e9}


@st.composite
def valid_events(draw: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": draw(st.text(min_size=1, max_size=128)),
        "event_type": draw(st.sampled_from(EVENT_TYPES)),
        "user_id": draw(ids),
        "item_id": draw(ids),
        "timestamp": draw(
            st.integers(EARLIEST_TIMESTAMP, NOW) | st.floats(EARLIEST_TIMESTAMP, NOW, allow_nan=False)
        ),
    }
    optional = {
        "session_id": st.text(max_size=128),
        "category": st.text(max_size=128),
        "price": st.floats(0, 1e9, allow_nan=False),
        "quantity": st.integers(1, 100_000),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            event[name] = draw(strategy)
    return event


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=json_values | mutated_events())
def test_anything_is_an_event_or_an_invalid_event(payload: Any) -> None:
    try:
        event = parse_event(payload)
    except InvalidEvent as error:
        assert error.reason and isinstance(error.reason, str)
        return
    assert isinstance(event, UserEvent)
    assert math.isfinite(event.timestamp) and event.timestamp >= EARLIEST_TIMESTAMP
    assert event.price is None or math.isfinite(event.price)


@st.composite
def spliced_events(draw: Any) -> bytes:
    """A valid or mutated event's JSON with a few bytes overwritten somewhere: the shape the
    raw records take when a producer's serialisation goes wrong (most still parse as JSON
    objects, and so reach the event rules)."""
    data = json.dumps(draw(valid_events() | mutated_events()), ensure_ascii=draw(st.booleans())).encode()
    junk = draw(st.binary(max_size=3))
    at = draw(st.integers(0, len(data)))
    return data[:at] + junk + data[at + len(junk) :]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode) | spliced_events())
def test_raw_bytes_are_accepted_or_dead_lettered_with_a_reason(raw: bytes) -> None:
    """As the stream handler sees records: a Kinesis record's bytes, through the handler's
    strict JSON reader and the parser (stream.RecordCollector), which never raises."""
    collector = RecordCollector(parse_record)
    collector(
        KinesisStreamRecord(
            {
                "eventID": "shardId-000000000000:1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/events",
                "kinesis": {
                    "data": base64.b64encode(raw).decode(),
                    "sequenceNumber": "1",
                    "partitionKey": "u",
                    "approximateArrivalTimestamp": float(NOW),
                },
            }
        )
    )
    assert len(collector.accepted) + len(collector.rejected) == 1
    if collector.accepted:
        assert isinstance(collector.accepted[0][1], UserEvent | ItemUpsert)
    else:
        reason = collector.rejected[0].reason
        assert reason and not reason.startswith("unparseable record"), reason  # no parser bug


@settings(max_examples=EXAMPLES, deadline=None)
@given(event=valid_events())
# Categories NFC changes: a compatibility ideograph (U+F900 is U+8C48 composed), a kana and
# its combining mark, and a text of 65 characters that composing makes 129 (U+0958 is two).
@example(event={**GOOD, "category": "\uf900"})
@example(event={**GOOD, "category": "\u30ab\u3099"})
@example(event={**GOOD, "category": "\u0958" * 64 + "a"})
def test_valid_events_round_trip(event: dict[str, Any]) -> None:
    parsed = parse_event(event)
    expected = dict(event)
    category = event.get("category")
    if category is not None:
        # Read in Unicode's composed form (NFC), as the catalog's categories are; blank, with
        # control characters or longer than 128 characters once composed: no category.
        composed = unicodedata.normalize("NFC", category)
        unusable = (
            not "".join(c for c in composed if unicodedata.category(c) != "Cf").strip()
            or any(unicodedata.category(c) == "Cc" for c in composed)
            or len(composed) > 128
        )
        expected["category"] = None if unusable else composed
    for name in ("event_id", "event_type", "user_id", "item_id", "session_id", "category", "quantity"):
        assert getattr(parsed, name) == expected.get(name)
    assert parsed.timestamp == pytest.approx(float(event["timestamp"]))
    again = parse_event(json.loads(json.dumps(parsed.model_dump(mode="json"))))
    assert again == parsed


@pytest.mark.parametrize("price", [math.nan, math.inf, -1, 2e9, "12", True, [3], {"value": 3}])
def test_a_price_the_event_cannot_use_is_read_as_none_and_the_event_kept(price):
    # Nothing reads an event's price: refusing it lost the purchase it came with.
    assert parse_event({**GOOD, "event_type": "purchase", "price": price}).price is None
    assert parse_event({**GOOD, "price": 12.5}).price == 12.5


@pytest.mark.parametrize(
    "change, reason",
    [
        (
            {"event_type": "click"},
            "schema violation: event_type: must be one of view, add_to_cart, remove_from_cart, purchase, "
            "coupon_redeemed (user events) or item_upsert (catalog records), got 'click'",
        ),
        ({"event_type": "coupon_redeemed"}, "schema violation: event: coupon_redeemed needs a coupon_id"),
        (
            {"event_type": "purchase", "basket_id": "cart-9", "order_id": "o-1"},
            "schema violation: event: basket_id and order_id differ: give one of them",
        ),
        # Not ignored: no redemption would ever be counted, and nothing would say so.
        (
            {"event_type": "purchase", "coupon_id": "camping-10"},
            "schema violation: event: coupon_id on a purchase event: redemptions are counted only from "
            "coupon_redeemed events; send one for the coupon and leave coupon_id off this event",
        ),
        (
            {"quantity": math.nan},
            "schema violation: quantity: must be a whole JSON number, not a number that is not",
        ),
        ({"quantity": True}, "schema violation: quantity: must be a whole JSON number, not a boolean"),
        ({"quantity": "3"}, "schema violation: quantity: must be a whole JSON number, not a string"),
        (
            {"quantity": 2.5},
            "schema violation: quantity: must be a whole JSON number, not a number with a fraction",
        ),
        ({"timestamp": math.nan}, "schema violation: timestamp: timestamp must be ISO-8601 or epoch seconds"),
        ({"timestamp": "NaN"}, "schema violation: timestamp: timestamp must be ISO-8601 or epoch seconds"),
        ({"timestamp": "+1764288000"}, "schema violation: timestamp: timestamp must be ISO-8601 or epoch"),
        ({"timestamp": 10**400}, "schema violation: timestamp: timestamp is more than a day in the future"),
        ({"timestamp": -(10**400)}, "schema violation: timestamp: timestamp is before 2000-01-01"),
        (
            {"timestamp": "1999-01-01T00:00:00Z"},
            "schema violation: timestamp: timestamp is before 2000-01-01",
        ),
        (
            {"timestamp": 1.7e12},
            "schema violation: timestamp: timestamp is more than a day in the future (epoch seconds "
            "expected, not milliseconds)",
        ),
        (
            {"timestamp": 1_764_288_000_123_456},
            "schema violation: timestamp: timestamp is more than a day in the future (epoch seconds "
            "expected, not microseconds)",
        ),
        (
            {"timestamp": "1764288000123456789"},
            "schema violation: timestamp: timestamp is more than a day in the future (epoch seconds "
            "expected, not nanoseconds)",
        ),
        # A date alone: asking for a zone would not help (Python drops one given after a date).
        *(
            (
                {"timestamp": date},
                "schema violation: timestamp: timestamp is a date alone: give a time of day and a zone",
            )
            for date in ("2025-11-27", "2025-11-27Z", "2025-11-27+00:00", "2025-W48-4")
        ),
    ],
)
def test_a_dead_letter_reason_names_the_problem(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event({**GOOD, **change})
    assert caught.value.reason.startswith(reason), caught.value.reason


def test_the_milliseconds_hint_is_given_only_for_a_number() -> None:
    # An ISO-8601 time years ahead is not epoch milliseconds.
    with pytest.raises(InvalidEvent) as caught:
        parse_event({**GOOD, "timestamp": "9999-12-31T23:59:59-23:59"})
    assert caught.value.reason == "schema violation: timestamp: timestamp is more than a day in the future"
    with pytest.raises(InvalidEvent) as caught:
        parse_event({**GOOD, "timestamp": "1700000000000"})
    assert caught.value.reason.endswith("(epoch seconds expected, not milliseconds)")


def test_a_user_events_tiny_price_is_kept() -> None:
    # A user event's price is never stored: DynamoDB's smallest number (a catalog record's
    # price must be 0 or at least 1e-130) does not apply, and the event is not lost for it.
    assert parse_event({**GOOD, "price": 1e-200}).price == 1e-200


def test_numbers_keep_their_json_types() -> None:
    parsed = parse_event({**GOOD, "price": 12, "quantity": 3})
    assert (parsed.price, parsed.quantity) == (12.0, 3)  # an integer is a number
    # A whole float is the integer (producers that write every number as a float).
    assert parse_event({**GOOD, "quantity": 2.0}).quantity == 2
    assert type(parse_event({**GOOD, "quantity": 2.0}).quantity) is int


@pytest.mark.parametrize(
    "category", ["", "  ", "a\u0000b", "camping\n", "c\ud800", "ホーム > キッチン用品 > " * 9]
)
def test_a_user_events_bad_category_is_read_as_none(category: str) -> None:
    # Unlike a catalog record's: a bad optional field must not lose the event (it then
    # takes its item's catalog category); a breadcrumb trail over 128 characters neither.
    assert parse_event({**GOOD, "category": category}).category is None
    assert parse_event({**GOOD, "category": "Café & bar"}).category == "Café & bar"
    assert parse_event({**GOOD, "category": "キ" * 128}).category == "キ" * 128


@pytest.mark.parametrize("item_id", [None, "", "tent-1", "not an id!", 7])
def test_a_redemptions_item_id_is_ignored_whatever_it_holds(item_id: Any) -> None:
    # A producer with one schema for every event may send null or "": the redemption counts.
    redemption = {**GOOD, "event_type": "coupon_redeemed", "coupon_id": "camping-10", "item_id": item_id}
    parsed = parse_event(redemption)
    assert (parsed.coupon_id, parsed.item_id) == ("camping-10", "")
    with pytest.raises(InvalidEvent, match="item_id"):
        parse_event({**GOOD, "item_id": item_id if item_id != "tent-1" else None})


@pytest.mark.parametrize("event_type", ["view", "remove_from_cart"])
@pytest.mark.parametrize(
    "fields", [{"basket_id": ""}, {"order_id": 12345}, {"basket_id": "a", "order_id": "b"}]
)
def test_a_basket_id_off_carts_and_purchases_is_ignored_whatever_it_holds(
    event_type: str, fields: dict[str, Any]
) -> None:
    # The README says so: one schema for every event must not lose the views to the queue.
    parsed = parse_event({**GOOD, "event_type": event_type, **fields})
    assert (parsed.event_type, parsed.basket_id) == (event_type, None)
    # On a cart or a purchase the same field is still checked.
    with pytest.raises(InvalidEvent, match="basket_id|order_id"):
        parse_event({**GOOD, "event_type": "add_to_cart", **fields})


def test_a_category_written_decomposed_is_the_same_category_composed():
    # "ガジェット" with カ + a combining voiced mark (7 code points, as macOS names files)
    # and composed (5): one category in events, catalog records, coupon scopes and filters.
    composed = "ガジェット"
    decomposed = unicodedata.normalize("NFD", composed)
    assert len(decomposed) == 7 and len(composed) == 5
    assert parse_event({**GOOD, "category": decomposed}).category == composed
    record = {
        "event_type": "item_upsert",
        "item_id": "g1",
        "title": "t",
        "category": decomposed,
        "price": 1,
        "in_stock": True,
        "timestamp": 1.7e9,
    }
    upsert = parse_record(record)
    assert isinstance(upsert, ItemUpsert) and upsert.category == composed


def test_a_category_is_checked_for_its_length_as_it_is_stored_composed():
    # NFC lengthens some text: "\u0958" is two characters composed. The stored (composed) text
    # is the one held to 128 characters: an event's is then dropped (the event kept), a
    # catalog record's refused, never stored longer than a filter may name it.
    assert parse_event({**GOOD, "category": "\u0958" * 70}).category is None
    record = {
        "event_type": "item_upsert",
        "item_id": "g1",
        "title": "t",
        "price": 1,
        "in_stock": True,
        "timestamp": 1.7e9,
    }
    upsert = parse_record({**record, "category": "\u0958" * 64})
    assert isinstance(upsert, ItemUpsert) and upsert.category == "\u0915\u093c" * 64
    with pytest.raises(InvalidEvent, match="category: must be at most 128 characters long"):
        parse_record({**record, "category": "\u0958" * 65})
