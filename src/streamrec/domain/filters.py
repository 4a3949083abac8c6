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
