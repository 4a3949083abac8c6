"""Rows holding non-ASCII text (event ids and categories may be any text up to 128
characters) stay within DynamoDB's 400 KB item limit at every bound the engine keeps,
on moto, which enforces the limit: the JSON attributes keep such text as UTF-8 (an
escape would cost 12 bytes per emoji) and a list's size is counted in bytes."""

from __future__ import annotations

from collections.abc import Callable

import boto3

from streamrec.domain.catalog import CONTENT_HOLDERS_KEPT
from streamrec.domain.ingest import SequencedEvent, plan_batch
from streamrec.domain.model import (
    POPULAR_CATEGORIES_ROW,
    CategoryAffinity,
    HistoryItem,
    Neighbour,
    PopularList,
    SimilarityRow,
    UserState,
    sequence_key,
)
from streamrec.events import parse_event
from streamrec.repositories.dynamodb import (
    CATEGORY_INDEX_BUDGET_BYTES,
    DynamoSimilarityRepository,
    DynamoTable,
    DynamoUserRepository,
    user_to_item,
)
from streamrec.repositories.item_size import ITEM_LIMIT_BYTES, item_size
from streamrec.settings import Settings

T0 = 1_764_000_000.0
ID_LENGTH = 128  # the longest id, event id and category the events may carry


def _text(prefix: str, n: int) -> str:
    """A 128-character text of 4-byte characters (emoji), distinct per ``n``."""
    head = f"{prefix}{n}-"
    return head + "\U0001f600" * (ID_LENGTH - len(head))


def _ascii_id(prefix: str, n: int) -> str:
    head = f"{prefix}{n}-"
    return head + "x" * (ID_LENGTH - len(head))


def _user_at_every_bound(settings: Settings) -> UserState:
    history = 96  # HistoryLength's maximum
    categories = [_text("cat", n) for n in range(max(history, settings.categories_kept))]
    return UserState(
        user_id=_ascii_id("u", 0),
        items=[
            HistoryItem(_ascii_id("i", n), 2.0, 1.234567, T0 + n, "add_to_cart", categories[n])
            for n in range(history)
        ],
        purchased=[_ascii_id("p", n) for n in range(settings.purchased_kept)],
        cart=[_ascii_id("c", n) for n in range(settings.purchased_kept)],
        # Control characters: JSON escapes them even as UTF-8 (6 bytes each, more than an emoji).
        recent_event_ids=[f"e{n}-".ljust(ID_LENGTH, "\u0001") for n in range(settings.recent_event_ids_kept)],
        applied={f"shardId-{n:012d}": "9" * 56 for n in range(4)},
        categories={
            category: CategoryAffinity(
                3.5, T0, {"view": 10, "add_to_cart": 3, "purchase": 1}, (1.0, 0.5, 0.25), 2
            )
            for category in categories[: settings.categories_kept]
        },
        basket_id=_text("b", 0),
        basket=[_ascii_id("k", n) for n in range(settings.basket_items_kept)],
        basket_bought=[_ascii_id("k", n) for n in range(settings.basket_items_kept)],
        basket_time=T0,
        event_counts={"view": 10**6, "add_to_cart": 10**5, "purchase": 10**4},
        redemptions={_ascii_id("coupon", n): 10**6 for n in range(settings.redemptions_kept)},
        trend_counted={(_ascii_id("t", n), 490_000 + n): 1.5 for n in range(settings.trend_items_kept)},
        cart_left={_ascii_id("l", n): T0 + n + 0.123456 for n in range(settings.cart_left_kept)},
    )


def test_a_user_row_at_every_bound_with_emoji_ids_and_categories_is_stored(aws):
    settings = Settings()
    state = _user_at_every_bound(settings)
    assert item_size(user_to_item(state, 1)) < ITEM_LIMIT_BYTES * 0.9
    users = DynamoUserRepository(DynamoTable(aws.tables["UsersTable"].name, boto3.client("dynamodb")))
    users.save_many([state])
    stored = users.get(state.user_id)
    assert stored is not None
    assert stored.recent_event_ids == state.recent_event_ids
    assert [entry.category for entry in stored.items] == [entry.category for entry in state.items]
    assert set(stored.categories) == set(state.categories)
    assert stored.trend_counted == state.trend_counted
    assert stored.cart_left == state.cart_left


def test_the_ingest_keeps_every_list_of_a_user_row_at_its_bound():
    # The row above is built at the bounds by hand: this is what holds the ingest to them.
    settings = Settings(purchased_kept=5, recent_event_ids_kept=4, cart_left_kept=3, trend_items_kept=2)
    events = []
    for n in range(8):
        for kind, offset in (("add_to_cart", 0), ("view", 1)):
            payload = {"event_id": f"e{n}-{kind}", "event_type": kind, "user_id": "u"}
            events.append({**payload, "item_id": f"c{n}", "timestamp": T0 + 10 * n + offset})
        payload = {"event_id": f"e{n}-purchase", "event_type": "purchase", "user_id": "u"}
        events.append({**payload, "item_id": f"p{n}", "timestamp": T0 + 10 * n + 2})
    sequenced = [SequencedEvent(sequence_key(n + 1), parse_event(e)) for n, e in enumerate(events)]
    state = plan_batch({}, sequenced, "shardId-000000000000", settings).users["u"]
    assert state.cart == [f"c{n}" for n in range(3, 8)]  # the 5 added last
    assert state.purchased == [f"p{n}" for n in range(3, 8)]
    assert state.recent_event_ids == ["e6-purchase", "e7-add_to_cart", "e7-view", "e7-purchase"]
    assert list(state.cart_left) == ["p5", "p6", "p7"]
    assert len(state.trend_counted) == 2


def test_the_popular_categories_list_of_emoji_categories_fits_one_row(aws):
    # Ranked by score, not in id order, so it could not be split across rows.
    table = aws.tables["SimilarityTable"].name
    lists = DynamoSimilarityRepository(DynamoTable(table, boto3.client("dynamodb")))
    ranked = [(_text("cat", n), 1000.0 - n) for n in range(Settings().popular_category_list_size)]
    lists.put_list(POPULAR_CATEGORIES_ROW, PopularList(items=ranked, epoch=1))
    assert lists.get_list(POPULAR_CATEGORIES_ROW).items == ranked


def _similarity_row_at_every_bound(settings: Settings, category: Callable[[str, int], str]) -> SimilarityRow:
    """The longest lists a row can hold (NeighboursPerItem's maximum, 500), every entry of
    its own longest category and id, and scores of the longest repr."""

    def listed(prefix: str, size: int) -> list[Neighbour]:
        return [
            Neighbour(_ascii_id(prefix, n), 1.2345678901234567e-05 + n, category(prefix, n))
            for n in range(size)
        ]

    return SimilarityRow(
        item_id=_ascii_id("i", 0),
        neighbours=listed("n", 500),
        measure="jaccard",
        updated_at=T0,
        extended=listed("e", settings.two_hop_size),
        complements=listed("c", settings.complements_per_item),
        content=listed("t", settings.content_per_item),
        holders=[_ascii_id("h", n) for n in range(CONTENT_HOLDERS_KEPT)],
        content_digest=4_294_967_295,
        support=1.2345678901234567e-05,
        category=category("own", 0),
    )


def _stored_round_trip(
    aws, row: SimilarityRow
) -> tuple[DynamoSimilarityRepository, SimilarityRow, SimilarityRow]:
    """The row stored on moto and read back: (repository, row, stored)."""
    rows = DynamoSimilarityRepository(
        DynamoTable(aws.tables["SimilarityTable"].name, boto3.client("dynamodb"))
    )
    rows.put_rows([row])
    return rows, row, rows.get_many([row.item_id])[0][row.item_id]


def test_a_similarity_row_of_emoji_categories_at_every_bound_is_stored(aws):
    # Escaped, 600 distinct emoji categories took the row to 1 MB; as UTF-8 and with the
    # category index kept within its budget, it stays far below the limit.
    rows, row, stored = _stored_round_trip(aws, _similarity_row_at_every_bound(Settings(), _text))
    raw = boto3.client("dynamodb").get_item(TableName=rows.table.name, Key={"item_id": {"S": row.item_id}})
    assert item_size(raw["Item"]) < ITEM_LIMIT_BYTES * 0.6
    assert [n.item_id for n in stored.neighbours] == [n.item_id for n in row.neighbours]
    # The first categories (the strongest neighbours') are kept; the index's budget ends them.
    kept = [n.category for n in stored.neighbours if n.category is not None]
    assert kept == [n.category for n in row.neighbours[: len(kept)]]
    assert 150 < len(kept) < len(row.neighbours)
    assert len(raw["Item"]["categories"]["S"].encode()) <= CATEGORY_INDEX_BUDGET_BYTES
    assert [n.category for n in stored.content] == [n.category for n in row.content]


def test_a_similarity_rows_ascii_categories_are_all_kept_at_every_bound(aws):
    _, row, stored = _stored_round_trip(aws, _similarity_row_at_every_bound(Settings(), _ascii_id))
    for name in ("neighbours", "extended", "complements", "content"):
        assert getattr(stored, name) == getattr(row, name), name
