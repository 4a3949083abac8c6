"""Domain records shared by the services and the repositories."""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

# Global rows live beside item rows; '#' can never start an item id (see events.ID_PATTERN).
TOTALS_ROW = "#totals"
POPULAR_ROW = "#popular"
CATEGORY_ROW_PREFIX = "#cat:"
# Purchases by category: item-stats rows "#buys:<category>" (forward-decayed purchase
# counters, written by the ingest) and their ranking, the similarity table's
# "#popular_categories" list (entries are categories), from which coupon lists are filled.
CATEGORY_BUYS_PREFIX = "#buys:"
POPULAR_CATEGORIES_ROW = "#popular_categories"
# Basket co-occurrence rows live in the co-occurrence table beside the view-window rows,
# keyed "#b:<item>": baskets say "bought together" (complements), windows say "viewed
# together" (substitutes), and the two are counted and scored apart.
BASKET_ROW_PREFIX = "#b:"
# The set of items currently out of stock, a row of the similarity table beside the popular
# lists, so that the API reads it in the same BatchGetItem (no extra round trip).
OUT_OF_STOCK_ROW = "#out_of_stock"
# The newest items of the catalog (entries: item -> when it first came into stock, its
# record's listed_at), in stock, and each category's ("#new:<category>"): they pad lists
# that behaviour cannot fill yet (a shop's first hours, a thin category).
NEW_ARRIVALS_ROW = "#new"
NEW_ARRIVALS_PREFIX = "#new:"
# Catalog table: token posting rows "#tok:<token>" (the ids of the items holding the
# token; its size is the token's document frequency) and the "#catalog" row (documents).
TOKEN_ROW_PREFIX = "#tok:"
COUNT_ROW_PREFIX = "#df:"
CATALOG_STATS_ROW = "#catalog"

# Popularity uses forward decay (Cormode et al.): an event at time t adds
# w * 2^((t - start of its epoch) / half-life) to the item's counter of that epoch, so
# counters only ever grow by ADD, and every item decays at the same rate: rankings need no
# rewrite as time passes. Epochs bound the exponent (2^16 for a 16-day epoch and a 1-day
# half-life); values are scaled and rounded to integers so that sums are exact everywhere.
POPULARITY_EPOCH_SECONDS = 16 * 86_400
POPULARITY_SCALE = 100.0


def category_row(category: str) -> str:
    """Key of a category's popular list (beside the global ``#popular`` row)."""
    return CATEGORY_ROW_PREFIX + category


def new_arrivals_row(category: str | None) -> str:
    """Key of the newest in-stock items of ``category`` (of the whole catalog for None)."""
    return NEW_ARRIVALS_PREFIX + category if category else NEW_ARRIVALS_ROW


def category_buys_row(category: str) -> str:
    """Key of a category's purchase counters in the item-stats table."""
    return CATEGORY_BUYS_PREFIX + category


def basket_row(item_id: str) -> str:
    """Key of an item's basket co-occurrence row in the co-occurrence table."""
    return BASKET_ROW_PREFIX + item_id


def popularity_epoch(timestamp: float) -> int:
    return int(timestamp // POPULARITY_EPOCH_SECONDS)


def popularity_increment(weight: float, timestamp: float, half_life_seconds: float) -> tuple[int, float]:
    """(epoch, forward-decayed increment) of an event of ``weight`` at ``timestamp``."""
    epoch = popularity_epoch(timestamp)
    age_in_epoch = timestamp - epoch * POPULARITY_EPOCH_SECONDS
    return epoch, float(round(weight * POPULARITY_SCALE * 2.0 ** (age_in_epoch / half_life_seconds)))


def popularity_at_epoch(counters: dict[int, float], epoch: int, half_life_seconds: float) -> float:
    """An item's popularity in the scale of ``epoch`` (sum of its epoch counters, rescaled)."""
    return sum(
        value * 2.0 ** ((other - epoch) * POPULARITY_EPOCH_SECONDS / half_life_seconds)
        for other, value in counters.items()
    )


@lru_cache(maxsize=65_536)
def block_of(item_id: str, blocks: int) -> int:
    """The co-occurrence block that neighbour ``item_id`` is stored in (stable across runs;
    cached: the ingest asks once per co-occurring pair)."""
    return zlib.crc32(item_id.encode()) % blocks


def sequence_key(sequence_number: str | int) -> str:
    """An order-preserving string form of a Kinesis sequence number.

    Sequence numbers are decimal strings of up to 129 digits, larger than DynamoDB numbers
    hold exactly; prefixing the digit count makes string order equal numeric order.
    """
    digits = str(sequence_number).lstrip("0") or "0"
    return f"{len(digits):03d}{digits}"


@dataclass
class HistoryItem:
    """One of a user's recent distinct items.

    ``max_weight`` is the largest event weight the user gave the item (its contribution to
    co-occurrence counts); ``affinity`` is the time-decayed weight sum as of ``ref_time``.
    ``kind`` is the event type behind ``max_weight`` (used in reasons).
    """

    item_id: str
    max_weight: float
    affinity: float
    ref_time: float
    kind: str
    category: str | None = None

    def copy(self) -> HistoryItem:
        # Field by field: dataclasses.replace is several times slower on the ingest's path.
        return HistoryItem(
            self.item_id, self.max_weight, self.affinity, self.ref_time, self.kind, self.category
        )


def shown_kind(entry: HistoryItem, cart: Collection[str]) -> str:
    """The kind of the user's strongest event on ``entry`` as every answer names it: an item
    added to the cart and no longer in it (``cart``: the user's cart) was taken out again, so
    it is ``remove_from_cart`` ("looked at"), not ``add_to_cart``."""
    if entry.kind == "add_to_cart" and entry.item_id not in cart:
        return "remove_from_cart"
    return entry.kind


@dataclass(frozen=True)
class CategoryAffinity:
    """A user's engagement with one category, the coupon model's input.

    ``affinity`` is the decayed, weighted event sum as of ``ref_time``; ``decayed`` the
    decayed event counts by type (view, add_to_cart, purchase) as of ``ref_time``; ``counts``
    the events of each type ever applied (also for reasons); ``in_cart`` how many of the
    category's items are in the user's cart (counted as events add and remove them: an item
    leaving the cart by an event without a category, or by the cart's bound, stays counted,
    and an evicted category that comes back starts again at 0; a model feature, not a cart).
    """

    affinity: float
    ref_time: float
    counts: dict[str, int] = field(default_factory=dict)
    decayed: tuple[float, float, float] = (0.0, 0.0, 0.0)
    in_cart: int = 0

    def at(self, now: float, half_life_seconds: float) -> float:
        """The affinity decayed to ``now`` (never grown for a ``now`` in the past)."""
        return self.affinity * 0.5 ** (max(0.0, now - self.ref_time) / half_life_seconds)


@dataclass
class UserState:
    """A user's row: recent items (oldest first), purchases, cart and replay guards."""

    user_id: str
    items: list[HistoryItem] = field(default_factory=list)
    purchased: list[str] = field(default_factory=list)
    cart: list[str] = field(default_factory=list)
    recent_event_ids: list[str] = field(default_factory=list)
    # shard id -> sequence_key of the last applied record of that shard for this user.
    applied: dict[str, str] = field(default_factory=dict)
    version: int = 0
    # category -> decayed affinity (coupon ranking); coupon id -> redemptions by this user.
    categories: dict[str, CategoryAffinity] = field(default_factory=dict)
    redemptions: dict[str, int] = field(default_factory=dict)
    # The current basket: its id ("" = implicit, by time gap), its distinct items counted
    # (oldest first: the first ``basket_items_kept``) and the times of its latest and of its
    # earliest event (rows written before the earliest was kept read it as the latest).
    basket_id: str = ""
    basket: list[str] = field(default_factory=list)
    basket_time: float = 0.0
    basket_start: float = 0.0
    # The items of the current basket a purchase has counted: a removal never takes them back.
    basket_bought: list[str] = field(default_factory=list)
    # Events applied, by type (the profile's counts).
    event_counts: dict[str, int] = field(default_factory=dict)
    # (item, hour (epoch seconds // 3600)) -> the weight trending counted for the user's
    # events on the item in that hour, the pairs touched last kept: see ingest.trend_weight.
    trend_counted: dict[tuple[str, int], float] = field(default_factory=dict)
    # item -> the newest time of a purchase or removal of it: an add stamped before it that
    # arrives after it (an app's buffered beacon, a re-drive) leaves the cart and basket as
    # they are. The items touched last, ``cart_left_kept`` of them.
    cart_left: dict[str, float] = field(default_factory=dict)

    def copy(self) -> UserState:
        """An independent copy (new lists and entries; faster than ``copy.deepcopy`` and,
        field by field, than ``dataclasses.replace``)."""
        return UserState(
            user_id=self.user_id,
            items=[entry.copy() for entry in self.items],
            purchased=list(self.purchased),
            cart=list(self.cart),
            recent_event_ids=list(self.recent_event_ids),
            applied=dict(self.applied),
            version=self.version,
            categories=dict(self.categories),  # entries are frozen and replaced, never changed
            redemptions=dict(self.redemptions),
            basket_id=self.basket_id,
            basket=list(self.basket),
            basket_time=self.basket_time,
            basket_start=self.basket_start,
            basket_bought=list(self.basket_bought),
            event_counts=dict(self.event_counts),
            trend_counted=dict(self.trend_counted),
            cart_left=dict(self.cart_left),
        )

    def find(self, item_id: str) -> HistoryItem | None:
        for entry in self.items:
            if entry.item_id == item_id:
                return entry
        return None


# An increment of one numeric attribute, tagged with the record that caused it:
# (sequence_key of the Kinesis record, attribute, value). A plain tuple rather than a
# NamedTuple or dataclass: a batch builds two per co-occurring pair, and a tuple display
# costs no function call (a NamedTuple's __new__ cost a quarter of the ingest's time).
Delta = tuple[str, str, float]


@dataclass(frozen=True)
class Neighbour:
    """A listed item, its score, and its category when known (lists filtered by category
    need it, and carrying it in the row saves the API a read)."""

    item_id: str
    score: float
    category: str | None = None


@dataclass
class SimilarityRow:
    """The top-K neighbours of one item, best first, and its two-hop neighbours: items
    close to its neighbours that do not co-occur with it (best first)."""

    item_id: str
    neighbours: list[Neighbour]
    measure: str = ""
    updated_at: float = 0.0
    extended: list[Neighbour] = field(default_factory=list)
    # Items bought together with it (from basket co-occurrence), best first.
    complements: list[Neighbour] = field(default_factory=list)
    # Items whose catalog text (title, category, tags) is close to its own, by TF-IDF
    # cosine, best first (domain/catalog.py).
    content: list[Neighbour] = field(default_factory=list)
    # The items whose content lists hold this item, as the similarity function last saw
    # them (most recent last, at most ``catalog.CONTENT_HOLDERS_KEPT``): the rows to correct
    # when its title, tags or category change, also those its own list does not name.
    holders: list[str] = field(default_factory=list)
    # A digest of the tokens and category its content list and its entries in the holders'
    # lists were computed from (0: none recorded): a record that leaves them as they were
    # (a stock change) corrects no other row.
    content_digest: int = 0
    # How well behaviour knows the item: its c_ii (each user's strongest event weight on
    # it, summed) when the row was built. None: not recorded (a row only the catalog side
    # wrote, or one stored before rows carried it; see recommend.coldness).
    support: float | None = None
    # The item's own category ("" when unknown): where a cold item's list takes popular
    # items from (recommend.RecommendationService.similar_items).
    category: str = ""

    def copy(self) -> SimilarityRow:
        """A copy with its own lists (``Neighbour`` is frozen: the lists share members)."""
        return SimilarityRow(
            item_id=self.item_id,
            neighbours=list(self.neighbours),
            measure=self.measure,
            updated_at=self.updated_at,
            extended=list(self.extended),
            complements=list(self.complements),
            content=list(self.content),
            holders=list(self.holders),
            content_digest=self.content_digest,
            support=self.support,
            category=self.category,
        )


@dataclass
class PopularList:
    """The most popular items (forward-decayed, in the scale of ``epoch``), best first;
    versioned for compare-and-swap updates."""

    items: list[tuple[str, float]] = field(default_factory=list)
    version: int = 0
    epoch: int = 0


@dataclass
class ItemStats:
    """Per-item totals: ``weight`` is c_ii; ``events`` counts events by type;
    ``popularity`` holds forward-decayed counters by epoch."""

    item_id: str
    weight: float = 0.0
    events: dict[str, float] = field(default_factory=dict)
    popularity: dict[int, float] = field(default_factory=dict)
    category: str | None = None
    # Baskets holding the item (in the totals row: all baskets).
    baskets: float = 0.0
    # Epoch seconds (whole) of the item's first event in stream order, as the first batch
    # that wrote its row held it (None for rows written before it was kept): how long the
    # item has been observed.
    first_seen: float | None = None


@dataclass
class CatalogItem:
    """An item's catalog record as stored: its fields as of ``timestamp``, its token counts
    (title, category and tags), the norm of its TF-IDF vector and the document count it was
    computed at (``norm_documents``; 0 for rows written before it was kept), and the
    shard and sequence key of the stream record that wrote it ("" for rows written before
    they were kept): they tell a re-delivered record from a later one of the same time."""

    item_id: str
    title: str
    category: str
    price: float
    in_stock: bool
    tags: list[str]
    timestamp: float
    terms: dict[str, int] = field(default_factory=dict)
    norm: float = 0.0
    shard: str = ""
    sequence: str = ""
    norm_documents: float = 0.0
    # The sequence key of the record that last moved the item to this record's category,
    # when one of this record's batch did ("" otherwise): this record itself, or an earlier
    # one of the batch (Lamp in c1, then in c2 at another price). A re-delivery of the batch
    # then passes the category to the item-stats row again, under that record's sequence.
    moved_by: str = ""
    # The categories the item was in before, most recent last (at most
    # FORMER_CATEGORIES_KEPT): the similarity function takes the item out of their popular
    # lists whenever its record is announced.
    former_categories: list[str] = field(default_factory=list)
    # When the item first came into stock: the timestamp of its first record in stock (in
    # stream order, not stale), kept by every later one; new arrivals rank by it.
    # NOT_YET_LISTED while it never was in stock; 0 for rows stored before it was kept.
    listed_at: float = 0.0


# CatalogItem.listed_at of an item whose records so far were all out of stock ("coming soon").
NOT_YET_LISTED = -1.0


# The attribute of a token's posting row counting the items that hold the token.
POSTING_COUNT = "df"


@dataclass(frozen=True)
class Posting:
    """A token's posting row: the ids of the items holding it, at most ``posting_limit`` of
    them, and ``count``, how many items hold it (its document frequency, counted past the
    limit too)."""

    items: frozenset[str] = frozenset()
    count: int = 0

    @classmethod
    def stored(cls, items: Iterable[str], counted: float) -> Posting:
        """A posting as stored: its ids and its stored count of holders (0 when none is),
        taken as at least its ids (a posting written before holders were counted)."""
        ids = frozenset(items)
        return cls(ids, max(round(counted), len(ids)))


@dataclass
class CatalogTally:
    """One pass over the catalog table, for ``catalog recount``: each token's holders and
    the items, counted from the records as they go by (so that a catalog of millions is not
    held in memory), and the counts stored (None where none is)."""

    holders: Counter[str] = field(default_factory=Counter)
    items: int = 0
    stored_holders: dict[str, float | None] = field(default_factory=dict)
    stored_documents: float | None = None

    def add_record(self, terms: Iterable[str]) -> None:
        """Count one catalog record holding ``terms`` (its tokens: a mapping's keys count, not
        its values: a term-count dict counts each token once)."""
        self.items += 1
        self.holders.update(set(terms))


def token_row(token: str) -> str:
    """Key of a token's posting row in the catalog table."""
    return TOKEN_ROW_PREFIX + token


def count_row(token: str) -> str:
    """Key of a token's count row (its holders, :data:`POSTING_COUNT`, and per-shard guards)
    in the catalog table: a small row of its own, so that counting does not rewrite (and
    pay for) the posting's up to ``posting_limit`` ids."""
    return COUNT_ROW_PREFIX + token
