"""A stream record's dead-letter reason is logged: it names a malformed id's field, not the
id (a producer's bad user id may be a name or an e-mail address); the letter's raw data
still holds the record for the producer to find. An API caller is still shown its own input
(tests/unit/test_coupons.py)."""

from __future__ import annotations

import pytest

from streamrec.events import InvalidEvent, parse_record

T0 = 1_764_000_000
PERSONAL = "Alice Smith <alice.smith@example.com>"


@pytest.mark.parametrize("field", ["user_id", "item_id"])
def test_a_malformed_id_in_an_event_is_named_by_its_field_only(field):
    event = {"event_id": "e1", "event_type": "view", "user_id": "u1", "item_id": "i1", "timestamp": T0}
    event[field] = PERSONAL
    with pytest.raises(InvalidEvent) as refused:
        parse_record(event)
    reason = str(refused.value)
    assert reason.startswith(f"schema violation: {field}: not an id: 1-128 characters")
    assert "Alice" not in reason and "example.com" not in reason


def test_a_malformed_id_in_a_catalog_record_is_named_by_its_field_only():
    record = {
        "event_type": "item_upsert",
        "item_id": PERSONAL,
        "title": "t",
        "category": "c",
        "price": 1,
        "in_stock": True,
        "timestamp": T0,
    }
    with pytest.raises(InvalidEvent) as refused:
        parse_record(record)
    reason = str(refused.value)
    assert reason.startswith("item_upsert schema violation: item_id: not an id")
    assert "Alice" not in reason


def test_differing_basket_and_order_ids_are_not_quoted():
    # Checked before the ids' pattern: the values may be any text, or a whole JSON object.
    for basket in (PERSONAL, {"customer": PERSONAL}):
        event = {
            "event_id": "e1",
            "event_type": "purchase",
            "user_id": "u1",
            "item_id": "i1",
            "timestamp": T0,
        }
        with pytest.raises(InvalidEvent) as refused:
            parse_record({**event, "basket_id": basket, "order_id": "o-1"})
        reason = str(refused.value)
        assert "basket_id and order_id differ" in reason
        assert "Alice" not in reason and "example.com" not in reason and "o-1" not in reason
