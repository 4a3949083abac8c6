"""Rows holding non-ASCII text (event ids and categories may be any text up to 128
characters) stay within DynamoDB's 400 KB item limit at every bound the engine keeps,
on moto, which enforces the limit: the JSON attributes keep such text as UTF-8 (an
escape would cost 12 bytes per emoji) and a list's size is counted in bytes."""

from __future__ import annotations

import boto3

from streamrec.domain.model import (
    POPULAR_CATEGORIES_ROW,
    CategoryAffinity,
    HistoryItem,
    PopularList,
    UserState,
)
from streamrec.repositories.dynamodb import (
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
        recent_event_ids=[_text("e", n) for n in range(settings.recent_event_ids_kept)],
        applied={f"shardId-{n:012d}": "9" * 56 for n in range(4)},
        categories={
            category: CategoryAffinity(
                3.5, T0, {"view": 10, "add_to_cart": 3, "purchase": 1}, (1.0, 0.5, 0.25), 2
            )
            for category in categories[: settings.categories_kept]
        },
        basket_id=_text("b", 0),
        basket=[_ascii_id("k", n) for n in range(settings.basket_items_kept)],
        basket_time=T0,
        event_counts={"view": 10**6, "add_to_cart": 10**5, "purchase": 10**4},
        redemptions={_ascii_id("coupon", n): 10**6 for n in range(settings.redemptions_kept)},
        trend_counted={(_ascii_id("t", n), 490_000 + n): 1.5 for n in range(settings.trend_items_kept)},
    )


def test_a_user_row_at_every_bound_with_emoji_ids_and_categories_is_stored(aws):
    settings = Settings()
    state = _user_at_every_bound(settings)
    assert item_size(user_to_item(state, 1)) < ITEM_LIMIT_BYTES * 0.8
    users = DynamoUserRepository(DynamoTable(aws.tables["UsersTable"].name, boto3.client("dynamodb")))
    users.save_many([state])
    stored = users.get(state.user_id)
    assert stored is not None
    assert stored.recent_event_ids == state.recent_event_ids
    assert [entry.category for entry in stored.items] == [entry.category for entry in state.items]
    assert set(stored.categories) == set(state.categories)
    assert stored.trend_counted == state.trend_counted


def test_the_popular_categories_list_of_emoji_categories_fits_one_row(aws):
    # Ranked by score, not in id order, so it could not be split across rows.
    table = aws.tables["SimilarityTable"].name
    lists = DynamoSimilarityRepository(DynamoTable(table, boto3.client("dynamodb")))
    ranked = [(_text("cat", n), 1000.0 - n) for n in range(Settings().popular_category_list_size)]
    lists.put_list(POPULAR_CATEGORIES_ROW, PopularList(items=ranked, epoch=1))
    assert lists.get_list(POPULAR_CATEGORIES_ROW).items == ranked
