"""New arrivals: the catalog's newest items in stock pad the lists that behaviour cannot
fill yet (a shop's first hours, a thin category), through the production catalog and
similarity services over the in-memory adapters (test_catalog_adapters.py compares the
lists on DynamoDB)."""

from __future__ import annotations

from streamrec.domain.filters import ListFilter
from streamrec.domain.model import NEW_ARRIVALS_ROW, new_arrivals_row
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
    answer = shop.recommendations.for_user("shopper", 3, now=NOW)
    assert [(r.item_id, r.source) for r in answer.items] == [
        ("mug-1", "popular"),
        ("tent-2", "new"),
        ("tent-1", "new"),
    ]
    scores = [r.score for r in answer.items]
    assert scores == sorted(scores, reverse=True) and scores[1] == scores[0]


def test_a_full_list_reads_no_new_arrivals():
    shop = _shop()
    shop.send([view("u1", f"mug-{n}", at=7 * 3_600 + n) for n in range(1, 5)])
    reads: list[list[str]] = []
    get_many = shop.similarity.get_many

    def counted(items, lists=(), *args, **kwargs):
        reads.append(list(lists))
        return get_many(items, lists, *args, **kwargs)

    shop.similarity.get_many = counted  # type: ignore[method-assign]
    answer = shop.recommendations.for_user("shopper", 4, now=NOW)
    assert {r.source for r in answer.items} == {"popular"}
    assert all(NEW_ARRIVALS_ROW not in names for names in reads) and len(reads) == 1
    shop.recommendations.for_user("shopper", 6, now=NOW)
    assert reads[-1] == [NEW_ARRIVALS_ROW]  # short: one more read


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
    answer = shop.recommendations.for_user(
        "shopper", 3, now=NOW, list_filter=ListFilter(exclude=frozenset({"tent-2"}))
    )
    assert [r.item_id for r in answer.items] == ["tent-1", "mug-4", "mug-3"]
