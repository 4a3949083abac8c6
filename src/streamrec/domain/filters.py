"""The filters every list endpoint takes: a category, item ids to leave out, stock.

A list is filtered before it is cut to ``k``, so a filter never shortens a list that the
candidates could fill; short lists are padded from the popular list of the filter's
category (or the global one), which is filtered the same way.

Categories of candidates come with the rows that name them (each neighbour carries its
item's category, see ``model.Neighbour``), so filtering costs no extra read. An item whose
category is unknown is left out of a category-filtered list: a filter must not let
through what it cannot vouch for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from streamrec.domain.model import OUT_OF_STOCK_ROW, PopularList
from streamrec.repositories.base import SimilarityRepository

# Items one request may exclude by id (the query string stays well under API Gateway's limits).
MAX_EXCLUDED_ITEMS = 100


@dataclass(frozen=True)
class ListFilter:
    """What a list may hold: items of ``category`` (any when None), none of ``exclude``,
    and with ``in_stock_only`` (the default) none that the catalog marks out of stock
    (the ``#out_of_stock`` row; items without a catalog record count as in stock)."""

    category: str | None = None
    exclude: frozenset[str] = field(default_factory=frozenset)
    in_stock_only: bool = True

    def admits(self, item_id: str, category: str | None) -> bool:
        """Whether an item of ``category`` (None: unknown) may be listed (stock apart: the
        services hold the out-of-stock set)."""
        if item_id in self.exclude:
            return False
        return self.category is None or category == self.category

    def keep(self, items: Iterable[str], categories: dict[str, str]) -> set[str]:
        """The ``items`` admitted, given what is known of their categories."""
        return {item for item in items if self.admits(item, categories.get(item))}


NO_FILTER = ListFilter()


@dataclass(frozen=True)
class Unlisted:
    """The ids a list may not hold: a few ``named`` ones (the user's own items, the cart's,
    the item asked about) and the ``stock`` set (out of stock), asked apart so that the
    set, which may hold some 110,000 ids, is never copied into a request's own set."""

    named: frozenset[str] = frozenset()
    stock: frozenset[str] = frozenset()

    def __contains__(self, item: object) -> bool:
        return item in self.named or item in self.stock

    def __or__(self, more: Iterable[str]) -> Unlisted:
        return Unlisted(self.named | frozenset(more), self.stock)


# The ids of the out-of-stock set last built, under the key of the list they came from: a
# warm API container reads the same list (from its cache) for many requests, and building
# the set of 110,000 ids took some 10 ms a request. Replaced whole, so threads that share
# it (the local stack's functions) read one pair or the other, never a mix.
_last_stock: tuple[tuple[int, int, int, int], frozenset[str]] = ((0, 0, 0, 0), frozenset())


def out_of_stock(lists: dict[str, PopularList]) -> frozenset[str]:
    """The ids in the ``#out_of_stock`` row of ``lists`` (empty when it was not read or is
    missing), built again only when the list differs from the last one asked about (its
    version, epoch, length and a hash of its entries: whatever table or engine the list
    came from, two lists share a key only by a collision of that hash as well)."""
    stock = lists.get(OUT_OF_STOCK_ROW)
    if stock is None or not stock.items:
        return frozenset()
    global _last_stock
    key = (stock.version, stock.epoch, len(stock.items), hash(tuple(stock.items)))
    last_key, last_ids = _last_stock
    if last_key == key:
        return last_ids
    ids = frozenset(item for item, _ in stock.items)
    _last_stock = (key, ids)
    return ids


def read_out_of_stock(similarity: SimilarityRepository) -> frozenset[str]:
    """The ``#out_of_stock`` ids, read on the API's read path (BatchGetItem, through the
    warm-container cache when ``similarity`` has one), not get_list's consistent
    compare-and-swap read."""
    _, lists = similarity.get_many([], [OUT_OF_STOCK_ROW])
    return out_of_stock(lists)
