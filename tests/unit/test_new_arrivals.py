"""New arrivals: the catalog's newest items in stock pad the lists that behaviour cannot
fill yet (a shop's first hours, a thin category), through the production catalog and
similarity services over the in-memory adapters (test_catalog_adapters.py compares the
lists on DynamoDB)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from streamrec.domain.filters import ListFilter
from streamrec.domain.model import NEW_ARRIVALS_ROW, NOT_YET_LISTED, new_arrivals_row
from streamrec.settings import Settings
from tests.unit.test_catalog import T0, Pipeline, upsert, view

NOW = T0 + 86_400


def _shop(**settings) -> Pipeline:
    """Six items listed an hour apart (mug-1 first), four kitchen and two camping ones."""
    shop = Pipeline(Settings(**settings))
    shop.send(
        [upsert(f"mug-{n}", f"Mug {n}", "kitchen", at=3_600 * n) for n in range(1, 5)]
        + [upsert(f"tent-{n}", f"Tent {n}", "camping", at=3_600 * (4 + n)) for n in range(1, 3)]
    )
    return shop


def _listed(shop: Pipeline, name: str) -> list[str]:
    _, lists = shop.similarity.get_many([], [name])
    return [item for item, _ in lists[name].items]


def test_a_new_shop_recommends_its_newest_items_before_any_event():
    shop = _shop()
    answer = shop.recommendations.for_user("shopper", 4, now=NOW)
    assert [r.item_id for r in answer.items] == ["tent-2", "tent-1", "mug-4", "mug-3"]
    assert {(r.source, r.score, tuple(r.reasons), tuple(r.because)) for r in answer.items} == {
        ("new", 1.0, ("new in the catalog",), ())
    }
    assert answer.fallback
    # A category filter reads the category's own list.
    kitchen = shop.recommendations.for_user(
        "shopper", 10, now=NOW, list_filter=ListFilter(category="kitchen")
    )
    assert [(r.item_id, r.reasons) for r in kitchen.items] == [
        (f"mug-{n}", ["new in kitchen"]) for n in (4, 3, 2, 1)
    ]
    # Cross-sell for a cart with no baskets yet, the cart's item left out.
    cart = shop.cross_sell.for_items(["tent-2"], 3)
    assert [r.item_id for r in cart.items] == ["tent-1", "mug-4", "mug-3"]


def test_new_items_come_after_popular_ones_and_never_score_above_them():
    shop = _shop()
    shop.send([view("u1", "mug-1", at=7 * 3_600), view("u2", "mug-1", at=7 * 3_600 + 1)])
    shop.send([view("u3", "mug-2", at=7 * 3_600 + 2)])
    answer = shop.recommendations.for_user("shopper", 4, now=NOW)
    assert [(r.item_id, r.source) for r in answer.items] == [
        ("mug-1", "popular"),
        ("mug-2", "popular"),
        ("tent-2", "new"),
        ("tent-1", "new"),
    ]
    scores = [r.score for r in answer.items]
    # The new items take the lowest score listed (mug-2's, about half of mug-1's).
    assert scores[0] == 1.0 and 0.4 < scores[1] < 0.6 and scores[2] == scores[3] == scores[1]


def _counting_reads(shop: Pipeline) -> list[list[str]]:
    """The list names of each read of the shop's similarity table from now on."""
    reads: list[list[str]] = []
    get_many = shop.similarity.get_many

    def counted(items, lists=(), *args, **kwargs):
        reads.append(list(lists))
        return get_many(items, lists, *args, **kwargs)

    shop.similarity.get_many = counted  # type: ignore[method-assign]
    return reads


def test_the_new_arrivals_come_in_the_requests_one_read():
    shop = _shop()
    shop.send([view("u1", f"mug-{n}", at=7 * 3_600 + n) for n in range(1, 5)])
    reads = _counting_reads(shop)
    assert {r.source for r in shop.recommendations.for_user("shopper", 4, now=NOW).items} == {"popular"}
    assert [r.source for r in shop.recommendations.for_user("shopper", 6, now=NOW).items][4:] == [
        "new",
        "new",
    ]
    shop.recommendations.similar_items("tent-1", 6)
    shop.cross_sell.for_items(["tent-1"], 6)
    one_read = ["#popular", "#out_of_stock", NEW_ARRIVALS_ROW]
    # (A cold item's similar items read its category's popular list, and its new arrivals,
    # in a second read, as before.)
    assert reads == [one_read, one_read, one_read, ["#cat:camping", "#new:camping"], one_read]


def test_a_history_that_fills_the_read_leaves_the_new_arrivals_to_a_second_read_when_short():
    shop = _shop(history_length=96)
    shop.send([upsert(f"cup-{n}", f"Cup {n}", f"shelf-{n % 3}", at=8 * 3_600) for n in range(96)])
    shop.send([view("u1", f"cup-{n}", at=9 * 3_600 + n) for n in range(96)])
    reads = _counting_reads(shop)
    answer = shop.recommendations.for_user("u1", 100, "none", now=NOW)
    # 96 rows, #popular, #out_of_stock and 2 category lists fill the 100 keys of one read.
    assert len(reads[0]) == 4 and NEW_ARRIVALS_ROW not in reads[0]
    assert reads[1:] == [[NEW_ARRIVALS_ROW]] and answer.items[-1].source == "new"


def test_stock_and_category_changes_move_items_between_the_lists():
    shop = _shop()
    shop.send([upsert("tent-2", "Tent 2", "camping", at=9 * 3_600, in_stock=False)])
    assert "tent-2" not in _listed(shop, NEW_ARRIVALS_ROW)
    assert _listed(shop, new_arrivals_row("camping")) == ["tent-1"]
    # Back in stock and moved to kitchen: in its first listing's place (an hour after
    # tent-1, not at the time of the later records), out of its former category's list.
    shop.send([upsert("tent-2", "Tent 2", "kitchen", at=10 * 3_600)])
    assert _listed(shop, NEW_ARRIVALS_ROW) == ["tent-2", "tent-1", "mug-4", "mug-3", "mug-2", "mug-1"]
    assert _listed(shop, new_arrivals_row("camping")) == ["tent-1"]
    assert _listed(shop, new_arrivals_row("kitchen"))[0] == "tent-2"
    record = shop.catalog.get_many(["tent-2"])["tent-2"]
    assert (record.listed_at, record.timestamp) == (T0 + 6 * 3_600, T0 + 10 * 3_600)
    # A price change keeps the place: a later record is not a new arrival.
    shop.send([{**upsert("mug-1", "Mug 1", "kitchen", at=11 * 3_600), "price": 12.0}])
    assert _listed(shop, NEW_ARRIVALS_ROW)[-1] == "mug-1"
    # An item moved while in stock leaves its former category's list.
    shop.send([upsert("mug-2", "Mug 2", "camping", at=12 * 3_600)])
    assert "mug-2" not in _listed(shop, new_arrivals_row("kitchen"))
    assert _listed(shop, new_arrivals_row("camping")) == ["tent-1", "mug-2"]


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        # (timestamp, in stock) in stream order -> listed_at (None: not yet listed)
        (((200, True), (100, True)), 200),  # the later-stamped one first: the other is stale
        (((100, True), (200, True)), 100),
        (((100, False), (300, True), (200, True)), 300),  # coming soon: listed when in stock
        (((100, False), (200, True), (300, False)), 200),
        (((300, False), (200, True)), None),  # a stale record in stock lists nothing
        # In stock for a moment at one time: the batch's latest record is the first one
        # again, yet it came into stock (as a split taking [0] then [1, 2] sees it).
        (((100, False), (100, True), (100, False)), 100),
        (((100, False),), None),
    ],
)
def test_an_item_is_listed_when_it_first_comes_into_stock_however_the_batch_is_split(records, expected):
    n = len(records)
    splits = [[list(range(n))], [[i] for i in range(n)]] + [
        [list(range(c)), list(range(c, n))] for c in range(1, n)
    ]
    for batches in splits:
        shop = Pipeline()
        for batch in batches:
            shop.send(
                [upsert("lamp", "Lamp", "camping", at=records[i][0], in_stock=records[i][1]) for i in batch]
            )
        # The whole stream re-delivered (same sequence numbers) changes nothing.
        shop.send(
            [upsert("lamp", "Lamp", "camping", at=at, in_stock=stock) for at, stock in records],
            sequences=list(range(1, n + 1)),
        )
        listed_at = shop.catalog.get_many(["lamp"])["lamp"].listed_at
        assert listed_at == (NOT_YET_LISTED if expected is None else T0 + expected), batches
        assert _listed(shop, NEW_ARRIVALS_ROW) == ([] if expected is None or not records[-1][1] else ["lamp"])


def test_an_item_listed_out_of_stock_first_is_new_when_it_comes_into_stock():
    shop = Pipeline()
    shop.send([upsert("lantern", "Lantern", "camping", at=0, in_stock=False)])
    shop.send([upsert("tent", "Tent", "camping", at=3_600)])
    assert _listed(shop, NEW_ARRIVALS_ROW) == ["tent"]
    shop.send([upsert("lantern", "Lantern", "camping", at=7_200)])  # launched
    assert _listed(shop, NEW_ARRIVALS_ROW) == ["lantern", "tent"]


def test_the_lists_keep_their_sizes_and_a_re_delivery_changes_nothing():
    shop = _shop(popular_list_size=3, category_list_size=2)
    assert _listed(shop, NEW_ARRIVALS_ROW) == ["tent-2", "tent-1", "mug-4"]
    assert _listed(shop, new_arrivals_row("kitchen")) == ["mug-4", "mug-3"]
    _, before = shop.similarity.get_many([], [NEW_ARRIVALS_ROW])
    shop.send([upsert("mug-1", "Mug 1", "kitchen", at=3_600)], sequences=[1])  # its first delivery's
    _, after = shop.similarity.get_many([], [NEW_ARRIVALS_ROW])
    assert after[NEW_ARRIVALS_ROW] == before[NEW_ARRIVALS_ROW]  # the same version: not written


def test_an_out_of_stock_new_item_is_not_listed_and_excluded_items_are_skipped():
    shop = _shop()
    shop.send([upsert("mug-5", "Mug 5", "kitchen", at=12 * 3_600, in_stock=False)])
    assert "mug-5" not in _listed(shop, NEW_ARRIVALS_ROW)
    answer = shop.recommendations.for_user(
        "shopper", 3, now=NOW, list_filter=ListFilter(exclude=frozenset({"tent-2"}))
    )
    assert [r.item_id for r in answer.items] == ["tent-1", "mug-4", "mug-3"]
    # A list read from a cache older than the stock set may still hold a sold-out item:
    # the request's own stock set leaves it out.
    newest = shop.similarity.get_list(NEW_ARRIVALS_ROW)
    shop.similarity.put_list(NEW_ARRIVALS_ROW, replace(newest, items=[("mug-5", T0), *newest.items]))
    assert [r.item_id for r in shop.recommendations.for_user("shopper", 1, now=NOW).items] == ["tent-2"]


def test_a_cold_items_similar_items_go_on_with_new_items_of_its_category_first():
    # A shop's first day: every item is cold and the popular lists empty. A category larger
    # than a content list (here 2 look-alikes) goes on with its new items before the
    # catalog's other ones.
    shop = _shop(content_per_item=2)
    shop.send([upsert("knife", "Chef knife", "kitchen", at=12 * 3_600)])
    answer = shop.recommendations.similar_items("knife", 5)
    assert [(r.source, r.reasons[0]) for r in answer.items] == [
        *[("similar", "similar to knife (title, category, tags)")] * 2,
        *[("new", "new in kitchen")] * 2,
        ("new", "new in the catalog"),
    ]
    assert [r.item_id for r in answer.items[2:]] == ["mug-4", "mug-3", "tent-2"]


# ---- GET /items/new ---------------------------------------------------------------------------


def _arrivals(shop: Pipeline, k: int = 10, **list_filter) -> list[tuple[str, float]]:
    return [
        (new.item_id, new.listed_at)
        for new in shop.recommendations.new_arrivals(k, ListFilter(**list_filter))
    ]


def test_new_arrivals_are_the_newest_items_in_stock_of_the_catalog_or_a_category():
    shop = _shop()
    assert _arrivals(shop, 3) == [
        ("tent-2", T0 + 6 * 3_600),
        ("tent-1", T0 + 5 * 3_600),
        ("mug-4", T0 + 4 * 3_600),
    ]
    assert [item for item, _ in _arrivals(shop, category="kitchen")] == ["mug-4", "mug-3", "mug-2", "mug-1"]
    assert _arrivals(shop, category="garden") == []
    assert [item for item, _ in _arrivals(shop, 3, exclude=frozenset({"tent-2", "mug-4"}))] == [
        "tent-1",
        "mug-3",
        "mug-2",
    ]
    # A new price does not make an item new again; a sell-out takes it off, and its restock
    # puts it back at its first listing time, not the restock's.
    shop.send([upsert("mug-1", "Mug 1", "kitchen", at=20 * 3_600) | {"price": 12.0}])
    shop.send([upsert("tent-1", "Tent 1", "camping", at=21 * 3_600, in_stock=False)])
    assert [item for item, _ in _arrivals(shop, 3)] == ["tent-2", "mug-4", "mug-3"]
    shop.send([upsert("tent-1", "Tent 1", "camping", at=22 * 3_600)])
    assert _arrivals(shop, 2) == [("tent-2", T0 + 6 * 3_600), ("tent-1", T0 + 5 * 3_600)]
    # A list merged before a sell-out came (a cache) still holds the item: the request's own
    # stock set leaves it out, unless in_stock=false lets it through.
    newest = shop.similarity.get_list(NEW_ARRIVALS_ROW)
    shop.send([upsert("tent-2", "Tent 2", "camping", at=23 * 3_600, in_stock=False)])
    shop.similarity.put_list(
        NEW_ARRIVALS_ROW, replace(shop.similarity.get_list(NEW_ARRIVALS_ROW), items=newest.items)
    )
    assert [item for item, _ in _arrivals(shop, 2)] == ["tent-1", "mug-4"]
    assert [item for item, _ in _arrivals(shop, 2, in_stock_only=False)] == ["tent-2", "tent-1"]


def test_new_arrivals_take_one_read():
    shop = _shop()
    reads = _counting_reads(shop)
    shop.recommendations.new_arrivals(5, ListFilter(category="kitchen"))
    shop.recommendations.new_arrivals(5, ListFilter(in_stock_only=False))  # no stock set to read
    assert reads == [["#new:kitchen", "#out_of_stock"], ["#new"]]
