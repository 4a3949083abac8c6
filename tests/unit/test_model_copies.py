"""The hand-written copies of the domain records keep every field and share nothing mutable."""

from __future__ import annotations

import dataclasses

from streamrec.domain.model import CategoryAffinity, HistoryItem, Neighbour, SimilarityRow, UserState


def _non_default(cls):
    """An instance whose every field differs from its default (a missed field shows)."""
    values = {"str": "x", "float": 2.5, "int": 3, "str | None": "y"}
    return cls(**{f.name: values[str(f.type)] for f in dataclasses.fields(cls)})


def test_history_item_copy_keeps_every_field():
    item = _non_default(HistoryItem)
    copied = item.copy()
    assert copied == item and copied is not item


def test_user_state_copy_is_independent():
    state = UserState(
        "u",
        items=[_non_default(HistoryItem)],
        purchased=["a"],
        cart=["b"],
        recent_event_ids=["e1"],
        applied={"shard": "001"},
        version=4,
        categories={"c": CategoryAffinity(1.0, 2.0, {"view": 1})},
        redemptions={"coupon": 1},
        basket_id="k",
        basket=["b"],
        basket_time=5.0,
        event_counts={"view": 1},
    )
    copied = state.copy()
    assert copied == state
    for field in dataclasses.fields(UserState):
        value = getattr(copied, field.name)
        if isinstance(value, list | dict):
            assert value is not getattr(state, field.name), field.name
    copied.items[0].affinity = 9.0
    copied.cart.append("z")
    copied.event_counts["view"] = 7
    assert state.items[0].affinity == 2.5 and state.cart == ["b"] and state.event_counts == {"view": 1}


def test_similarity_row_copy_keeps_every_field_and_shares_no_list():
    lists = {"neighbours", "extended", "complements", "content"}
    values: dict[str, list] = {name: [Neighbour(name, 0.5, "c")] for name in lists}
    values["holders"] = ["h"]
    row = SimilarityRow(
        item_id="i", measure="jaccard", updated_at=2.5, support=3.0, category="c", content_digest=7, **values
    )
    assert {f.name for f in dataclasses.fields(SimilarityRow)} == set(values) | {
        "item_id",
        "measure",
        "updated_at",
        "support",
        "category",
        "content_digest",
    }
    copied = row.copy()
    assert copied == row
    for name in values:
        assert getattr(copied, name) is not getattr(row, name), name
