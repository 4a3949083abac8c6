"""Repository interfaces: one per table, plus the two outbound channels of the ingest.

Each has a DynamoDB adapter (``dynamodb.py``) and an in-memory adapter (``memory.py``)
with the same semantics, so the evaluation harness runs the production domain code.

Replay guards: every count row remembers, per Kinesis shard, the ``sequence_key`` of the
last record whose deltas it holds. ``apply`` only adds deltas of later records, so a
re-delivered or bisected batch never counts a record twice (see :func:`pending`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from streamrec.domain.model import (
    CatalogItem,
    CatalogTally,
    Delta,
    ItemStats,
    PopularList,
    Posting,
    SimilarityRow,
    UserState,
)

if TYPE_CHECKING:
    from streamrec.domain.coupons import Coupon, CouponSpec
    from streamrec.domain.trends import HourlyCounts, TrendingList


class RepositoryError(RuntimeError):
    """A storage call failed after the client's own retries (retrying the batch may help)."""


class RefusedForGoodError(RepositoryError):
    """A storage call that retrying the batch cannot make succeed: its records are isolated
    and dead-lettered rather than holding their shard.

    ``sequences``: the sequence keys of the deltas refused, when known; the records they
    name are the culprits (each would be refused alone), so isolation needs no bisection.
    """

    def __init__(self, message: str, sequences: frozenset[str] = frozenset()) -> None:
        super().__init__(message)
        self.sequences = sequences


class ConcurrentUpdateError(RepositoryError):
    """A conditional write lost a race; the caller retries from a fresh read."""


# Compare-and-swap attempts of one versioned row (a popular, stock, new-arrivals or
# trending list) before the batch fails (and is retried whole).
SWAP_ATTEMPTS = 5


def compare_and_swap[Row](
    name: str,
    read: Row,
    read_again: Callable[[], Row],
    change: Callable[[Row], Row | None],
    write: Callable[[Row], None],
) -> tuple[Row, Row | None]:
    """Write ``change(current)`` (the row to store, conditional on ``current``'s version)
    unless it is None (nothing to change), starting from ``read`` (the row as just read);
    a write losing a race (:class:`ConcurrentUpdateError`) reads the row again with
    ``read_again`` and changes that, up to :data:`SWAP_ATTEMPTS` times in all. Returns the
    row last read and the one written (None when nothing was)."""
    current = read
    for attempt in range(SWAP_ATTEMPTS):
        if attempt:
            current = read_again()
        changed = change(current)
        if changed is None:
            return current, None
        try:
            write(changed)
            return current, changed
        except ConcurrentUpdateError:
            continue
    raise ConcurrentUpdateError(f"{name} kept changing under concurrent updates")


# An item-stats row's first_seen attribute (set once, by the first write of the row).
FIRST_SEEN = "first_seen"


def guard_attribute(shard: str) -> str:
    """Name of the replay-guard attribute of ``shard`` in a count row."""
    return f"s#{shard}"


def pending(deltas: Sequence[Delta], applied: str | None) -> list[Delta]:
    """The deltas a row still lacks, given the guard value ``applied`` it holds."""
    if applied is None:
        return list(deltas)
    return [delta for delta in deltas if delta[0] > applied]


def stats_from_attributes(item_id: str, attributes: Mapping[str, float | str]) -> ItemStats:
    """An ItemStats from a stats row's attributes (``w``, ``b``, ``n:<type>``, ``p:<epoch>``,
    ``category``, ``first_seen``; guards and keys ignored)."""
    stats = ItemStats(item_id)
    for name, value in attributes.items():
        if name == "w":
            stats.weight = float(value)
        elif name == "b":
            stats.baskets = float(value)
        elif name == "category":
            stats.category = str(value)
        elif name == FIRST_SEEN:
            stats.first_seen = float(value)
        elif name.startswith("p:"):
            stats.popularity[int(name[2:])] = float(value)
        elif not name.startswith("s#") and name != "item_id":
            stats.events[name] = float(value)
    return stats


def summed(deltas: Iterable[Delta]) -> dict[str, float]:
    """Sum deltas by attribute (what one write of the row adds)."""
    totals: dict[str, float] = {}
    for _sequence, attribute, value in deltas:
        totals[attribute] = totals.get(attribute, 0.0) + value
    return totals


@dataclass(frozen=True)
class DeadLetter:
    """A record that no retry can fix, with where it came from and why."""

    reason: str
    source: str  # e.g. the stream ARN
    shard: str
    sequence_number: str
    partition_key: str
    data: str  # the raw payload, base64 as delivered


class UserRepository(Protocol):
    def get(self, user_id: str) -> UserState | None: ...

    def get_many(self, user_ids: Iterable[str]) -> dict[str, UserState]:
        """The ingest's read of a batch's users: consistent, since the batch is planned from
        these rows, and a plan made from a row one batch old would write count increments
        that the replay guards then keep when the user write fails and the batch is retried."""
        ...

    def save_many(self, states: Iterable[UserState]) -> None:
        """Write each state whose stored version still equals ``state.version`` (0 = new).

        Raises :class:`ConcurrentUpdateError` when a stored version moved on.
        """
        ...

    def delete(self, user_id: str) -> None:
        """Remove the user's row (state and history); a missing user is not an error."""
        ...


class CooccurrenceRepository(Protocol):
    def get_rows(self, item_ids: Iterable[str]) -> dict[str, dict[str, float]]:
        """``{item: {neighbour: c_ij}}`` for every requested item (empty dict when unseen)."""
        ...

    def apply(self, deltas: Mapping[tuple[str, int], Sequence[Delta]], shard: str) -> None:
        """Add deltas keyed by (item, block), guarded per shard; one write per row."""
        ...


class ItemStatsRepository(Protocol):
    def get_many(self, item_ids: Iterable[str]) -> dict[str, ItemStats]: ...

    def apply(
        self,
        deltas: Mapping[str, Sequence[Delta]],
        shard: str,
        categories: Mapping[str, str] | None = None,
        first_seen: Mapping[str, int] | None = None,
    ) -> None:
        """Add deltas keyed by item id (or a global row), guarded per shard; in the same
        write, set the category of the items named in ``categories`` and, where the row has
        none yet, the ``first_seen`` time of the items named there (only a write that adds
        deltas sets either: a fully replayed row is left alone)."""
        ...


class SimilarityRepository(Protocol):
    def get_many(
        self,
        item_ids: Sequence[str],
        lists: Sequence[str] = (),
        consistent: bool = False,
        row_lists: Collection[str] | None = None,
    ) -> tuple[dict[str, SimilarityRow], dict[str, PopularList]]:
        """Neighbour rows of the items (missing ones absent) and the named popular lists
        (``#popular``, ``#cat:<category>``; missing ones empty), in one read (one
        BatchGetItem) so that the API stays within 2 round trips. ``consistent`` reads (the
        similarity function's read-modify-write of content lists) see every acknowledged write.
        ``row_lists`` names the lists of each row the caller reads (``neighbours``,
        ``extended``, ``complements``, ``content``, which brings the row's ``holders`` and
        ``content_digest`` too; None: all): an adapter may leave the others empty, so such
        rows are for reading, never for writing back."""
        ...

    def put_rows(self, rows: Iterable[SimilarityRow]) -> None: ...

    def get_list(self, name: str) -> PopularList: ...

    def put_list(self, name: str, popular: PopularList) -> None:
        """Write if the stored version equals ``popular.version``; else ConcurrentUpdateError.
        A list too large for one DynamoDB row (the out-of-stock set of a large shop) must be
        in item id order: the DynamoDB adapter splits it by id and reads it back so."""
        ...


class CouponRepository(Protocol):
    """Coupons by id, an index of coupon ids by scope key (``cat:<category>``,
    ``item:<item>``), and exactly-once redemption counts."""

    def put(self, coupon_id: str, spec: CouponSpec, now: float | None = None) -> Coupon:
        """Create or redefine a coupon. Redemptions already counted are kept: remaining =
        max(0, budget - redeemed - refused) (``domain.coupons.remaining_after_redefinition``).
        The coupon is added to its scope's index rows (and removed from a previous scope's);
        given ``now``, those rows are then pruned."""
        ...

    def prune_expired(self, scope_keys: Sequence[str], now: float, limit: int | None = None) -> set[str]:
        """Take the coupons expired by ``now`` (and ids without a coupon) out of these scope
        keys' index, so that it does not grow with every past campaign; a coupon redefined
        concurrently keeps its entry. ``limit``: check at most that many of the listed ids
        (see :func:`prune_candidates`). Returns the ids of the coupons taken out."""
        ...

    def indexed_scopes(self) -> list[str]:
        """Every scope key whose index row lists a coupon, sorted: a whole-table read, for the
        ``coupons prune`` upkeep command only (requests read by key)."""
        ...

    def get_many(self, coupon_ids: Iterable[str]) -> dict[str, Coupon]: ...

    def all_coupons(self) -> Iterator[Coupon]:
        """Every coupon defined, in no particular order: a whole-table read, for the
        ``coupons list`` command only."""
        ...

    def defined(self, coupon_ids: Iterable[str]) -> set[str]:
        """Which of the ids are defined coupons, as of now (a consistent read of the keys
        alone: the ingest's check of the coupons its redemptions name)."""
        ...

    def in_scope(self, scope_keys: Sequence[str]) -> set[str]:
        """Ids of the coupons indexed under any of ``scope_keys`` (one read)."""
        ...

    def redeem(self, coupon_id: str, sequence: str, shard: str) -> str:
        """Count one redemption carried by record ``sequence`` of ``shard``, once: remaining
        is decremented only while > 0 (else the redemption is counted as refused), and a
        record the row's per-shard guard already holds changes nothing. Returns
        ``redeemed``, ``exhausted``, ``duplicate`` or ``unknown``."""
        ...


# A coupon definition checks at most this many of its scope's listed coupons for expiry:
# defining thousands of coupons in one scope would otherwise read the scope's every coupon
# each time. An expired coupon is then left behind at each definition with probability
# 1 - PRUNE_SAMPLE / listed, and still goes within a few more.
PRUNE_SAMPLE = 100


# The most coupons one scope (a category, or an item of item-list coupons) lists. Every
# request of a user engaged in the scope reads each of them (500 coupons: 5 BatchGetItem
# calls, 250 read units), and without a bound the index row would pass DynamoDB's
# 400 KB at a few thousand ids and refuse every further definition in the scope.
COUPONS_PER_SCOPE = 500


def scope_words(scope_key: str) -> tuple[str, str]:
    """A scope key's kind and name in words: ``cat:camping`` is ("category", "camping"),
    ``item:tent-1`` ("item", "tent-1")."""
    kind, _, name = scope_key.partition(":")
    return ("category" if kind == "cat" else "item"), name


class ScopeFullError(ValueError):
    """A definition would take a scope past :data:`COUPONS_PER_SCOPE` coupons that have not
    expired (those that have were pruned first). Retrying does not help; nothing of the
    coupon's own row was written."""

    def __init__(self, coupon_id: str, scope_key: str) -> None:
        kind, name = scope_words(scope_key)
        scope = f"{kind} {name!r}"
        super().__init__(
            f"coupon {coupon_id!r} not defined: its scope, {scope}, already lists {COUPONS_PER_SCOPE} "
            "coupons that have not expired (the most one scope lists); define it once some of them "
            "have expired, or narrow their scopes"
        )
        self.scope_key = scope_key


def prune_candidates(listed: set[str], limit: int | None) -> list[str]:
    """The ids a prune checks: all of ``listed``, or ``limit`` of them drawn at random."""
    ids = sorted(listed)
    if limit is None or len(ids) <= limit:
        return ids
    return sorted(random.sample(ids, limit))


class TrendsRepository(Protocol):
    """Hourly counters (rows ``<item>`` and ``#cat:<category>``, one per UTC day, kept by
    TTL) and the trending lists (``#trending:...``, versioned, compare-and-swap)."""

    def apply(self, deltas: Mapping[tuple[str, int], Sequence[Delta]], shard: str) -> None:
        """Add deltas keyed by (row, day), guarded per shard; one write per row."""
        ...

    def get_counts(self, keys: Sequence[str], days: Sequence[int]) -> dict[str, HourlyCounts]:
        """Counts of each key over ``days`` by absolute hour (empty when unseen)."""
        ...

    def get_many(
        self, keys: Sequence[str], days: Sequence[int], lists: Sequence[str], consistent: bool = False
    ) -> tuple[dict[str, HourlyCounts], dict[str, TrendingList]]:
        """Counts (as :meth:`get_counts`) and lists (missing ones empty) in one read (one
        BatchGetItem while under 100 keys); ``consistent`` reads (lists read for update)
        see every acknowledged write."""
        ...

    def put_list(self, name: str, trending: TrendingList) -> None:
        """Write if the stored version equals ``trending.version``; else ConcurrentUpdateError."""
        ...


class CatalogRepository(Protocol):
    """Catalog records by item id, token posting rows (``#tok:<token>``: the ids of the
    items holding the token, whose size is its document frequency) and the number of
    documents (row ``#catalog``, a guarded counter like the count rows)."""

    def get_many(self, item_ids: Iterable[str], consistent: bool = False) -> dict[str, CatalogItem]:
        """Stored records of the items (missing ones absent); ``consistent`` reads see
        every acknowledged write (the upsert's read-before-write)."""
        ...

    def categories(self, item_ids: Iterable[str]) -> dict[str, str]:
        """The catalog category of each item that has a record (a cheap projection, read
        consistently: the ingest plans category-keyed counts with it, and a retry must see
        what the first attempt saw, the batch's own catalog records included; only a record
        of another shard written between the two can change it)."""
        ...

    def put_many(self, items: Sequence[tuple[CatalogItem, float | None]]) -> list[str]:
        """Write each record if the stored one's timestamp still equals the expected one
        (None: no record yet). Returns the ids whose condition failed (a concurrent write)."""
        ...

    def refresh_norms(self, items: Sequence[CatalogItem]) -> None:
        """Store each item's ``norm`` and ``norm_documents`` where its stored record is still
        the item's (its ``timestamp``, ``shard`` and ``sequence``) with a norm computed at
        fewer documents (else nothing: another record brought its own norm, or a fresher one
        was stored meanwhile)."""
        ...

    def count_postings(self, deltas: Mapping[str, Sequence[Delta]], shard: str) -> None:
        """Add to each token's count of holders (+1 per item that gains it, -1 per item that
        loses it), guarded per shard like the count rows, so a replayed batch adds nothing."""
        ...

    def update_postings(
        self, add: Mapping[str, set[str]], remove: Mapping[str, set[str]], limit: int
    ) -> dict[str, int]:
        """Add items to the postings of tokens and remove items from them; both are set
        operations, so repeating them changes nothing. A posting already holding ``limit``
        ids takes no more (the token is then too common to be worth indexing). Returns
        each added token's document frequency after the update (its count of holders, or
        its posting's size where that is larger: a row counted before the count was kept)."""
        ...

    def stored_counts(self, progress: Callable[[int], None] | None = None) -> CatalogTally:
        """In one pass over the table (a Scan, paged: ``progress`` is told the rows read so
        far): every catalog record's tokens counted, each posting row's stored count of
        holders (None: none stored) and the stored document count (None: none stored)."""
        ...

    def set_counts(self, corrections: Sequence[tuple[str | None, float | None, int]]) -> list[str]:
        """Set each (token, or None for the document count; the stored value read; the new
        value) where the stored value is still the one read. Returns the tokens ("#catalog"
        for the document count) whose value changed since it was read."""
        ...

    def postings(self, tokens: Iterable[str]) -> dict[str, Posting]:
        """Each token's posting (empty for unknown tokens), in one read; its ``count`` as
        :meth:`update_postings` returns it."""
        ...

    def add_documents(self, deltas: Sequence[Delta], shard: str) -> None:
        """Add to the document count, guarded per shard like the count rows."""
        ...

    def documents(self) -> int: ...


class ChangePublisher(Protocol):
    def publish(
        self,
        changed: Iterable[str],
        norm_changed: set[str],
        popular_changed: Iterable[str] = (),
        content_changed: Iterable[str] = (),
    ) -> None:
        """Announce items whose co-occurrence counts, own count, popularity or catalog
        record (``content_changed``) changed."""
        ...


class DeadLetterSink(Protocol):
    def send(self, letters: Sequence[DeadLetter]) -> None: ...
