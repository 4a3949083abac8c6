"""Ingest: apply a batch of user events to user state, co-occurrence counts and item stats.

The work is split in two so that a batch's effect is a pure function of its input:

1. :func:`plan_batch` (pure) replays the events over the users' stored states in memory
   and returns the new states and every count increment, each tagged with the sequence
   number of the record that caused it.
2. :meth:`IngestService.ingest` writes: count rows first (one guarded write per distinct
   row), the trend counters and coupon redemptions, then the changed-items announcement,
   then the users (one conditional write per user). A crash anywhere leaves users
   unwritten or every count row already holding the batch, and the replay guards make the
   retry add only what is missing.

Counts follow the max-based weighted co-occurrence (see ../shared/NOTES.md): with
a_ui = the largest event weight user u gave item i among u's recent ``history_length``
distinct items, c_ii = sum_u a_ui and c_ij = sum_u min(a_ui, a_uj). Re-applying an event
that does not raise a_ui changes nothing.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from streamrec.domain.coupons import apply_to_categories
from streamrec.domain.model import (
    TOTALS_ROW,
    Delta,
    HistoryItem,
    UserState,
    basket_row,
    block_of,
    category_buys_row,
    popularity_increment,
)
from streamrec.domain.trends import HOUR, plan_trends
from streamrec.events import BASKET_EVENT_TYPES, COUPON_REDEEMED, UserEvent
from streamrec.repositories.base import (
    CatalogRepository,
    ChangePublisher,
    CooccurrenceRepository,
    CouponRepository,
    ItemStatsRepository,
    TrendsRepository,
    UserRepository,
)
from streamrec.settings import Settings

WEIGHT = "w"  # c_ii in an item-stats row; the sum of all c_ii in the totals row
USERS = "users"  # distinct users, in the totals row
EVENTS = "events"  # events applied, in the totals row
BASKETS = "b"  # baskets holding the item in an item-stats row; all baskets in the totals row
PURCHASE = "purchase"
# The events that take an item out of the cart.
CART_EXITS = ("remove_from_cart", PURCHASE)


def event_count_attribute(event_type: str) -> str:
    return f"n:{event_type}"


def popularity_attribute(epoch: int) -> str:
    return f"p:{epoch}"


@dataclass(frozen=True)
class SequencedEvent:
    """A validated event and the sequence key of the record that carried it."""

    sequence: str
    event: UserEvent


@dataclass
class BatchPlan:
    """Everything one batch changes, before anything is written."""

    users: dict[str, UserState] = field(default_factory=dict)  # only users with applied events
    cooccurrence: dict[tuple[str, int], list[Delta]] = field(default_factory=lambda: defaultdict(list))
    item_stats: dict[str, list[Delta]] = field(default_factory=lambda: defaultdict(list))
    changed_items: set[str] = field(default_factory=set)
    norm_changed: set[str] = field(default_factory=set)
    # Items whose popularity counters grew, and the category each event named.
    popular_changed: set[str] = field(default_factory=set)
    categories: dict[str, str] = field(default_factory=dict)
    # Per item, the first applied event's time in stream order (whole epoch seconds): its
    # stats row keeps the first batch's as ``first_seen`` (trending's baseline spans the hours
    # since), which is so the item's first event however the stream was cut into batches
    # (the earliest of the first batch was not). An older event's count, later, still
    # widens the span (trends.baseline_rate).
    first_seen: dict[str, int] = field(default_factory=dict)
    applied_events: int = 0
    duplicates: int = 0
    # Applied events that were late for their user (is_late): not in the recent items, cart
    # or basket.
    late_events: int = 0
    # Adds to the cart older than the item's last purchase or removal (see UserState.cart_left).
    stale_cart_adds: int = 0
    # (sequence, coupon id) of each coupon_redeemed event applied, in stream order.
    redemptions: list[tuple[str, str]] = field(default_factory=list)
    # Their outcomes on the coupon rows (redeemed, exhausted, duplicate, unknown), once written.
    redemption_outcomes: list[str] = field(default_factory=list)
    # Hourly trend counters keyed by (item or "#cat:<category>", day): see domain/trends.py.
    trends: dict[tuple[str, int], list[Delta]] = field(default_factory=lambda: defaultdict(list))


def decayed_affinity(entry: HistoryItem, weight: float, timestamp: float, half_life_seconds: float) -> None:
    """Add an event of ``weight`` at ``timestamp`` to the entry's decayed affinity sum."""
    if timestamp >= entry.ref_time:
        entry.affinity = entry.affinity * 0.5 ** ((timestamp - entry.ref_time) / half_life_seconds) + weight
        entry.ref_time = timestamp
    else:  # an out-of-order event counts at its own age
        entry.affinity += weight * 0.5 ** ((entry.ref_time - timestamp) / half_life_seconds)


def _remember(values: list[str], value: str, limit: int) -> None:
    """Move ``value`` to the end of a bounded most-recent-last list."""
    if value in values:
        values.remove(value)
    values.append(value)
    del values[:-limit]


def is_late(state: UserState, event: UserEvent, settings: Settings) -> bool:
    """Whether ``event`` is more than ``late_event_hours`` older than the newest of the
    user's recent items: a backfill or re-drive arriving behind live events. The recent
    items, cart and basket are kept in arrival order, so applied there it would evict the
    user's live items, pair last year's items with today's, or put back in the cart an item
    bought since."""
    if not state.items or not settings.late_event_hours:  # 0: switched off
        return False
    newest = max(entry.ref_time for entry in state.items)
    return event.timestamp < newest - settings.late_event_seconds


def late_removal_applies(state: UserState, event: UserEvent) -> bool:
    """Whether a late ``remove_from_cart`` or ``purchase`` still takes its item out of the
    cart: unless the user's recent items show a newer event on the item (an add after it,
    say), nothing says the item went back in since. A late add never applies: the item may
    have been bought or removed since."""
    if event.event_type not in CART_EXITS or event.item_id not in state.cart:
        return False
    entry = state.find(event.item_id)
    return entry is None or entry.ref_time <= event.timestamp


def is_stale_cart_add(state: UserState, event: UserEvent, settings: Settings) -> bool:
    """Whether ``event`` adds to the cart an item bought or removed at or after its time:
    it arrived out of order (events from several producers: the shop's server and an app
    that buffers its beacons), and applied in arrival order it would put the item back in
    the cart for good and count it in the basket. Never with ``late_event_hours`` 0: that
    is for producers whose clocks disagree, whose events apply in arrival order."""
    if event.event_type != "add_to_cart" or not settings.late_event_hours:
        return False
    left = state.cart_left.get(event.item_id)
    return left is not None and left >= event.timestamp


def _remember_cart_exit(state: UserState, event: UserEvent, settings: Settings) -> None:
    """Keep the time of a purchase or removal of the item (the newest, touched last)."""
    left = state.cart_left.pop(event.item_id, event.timestamp)
    state.cart_left[event.item_id] = max(left, event.timestamp)
    while len(state.cart_left) > settings.cart_left_kept:
        del state.cart_left[next(iter(state.cart_left))]


def _remember_late_purchase(state: UserState, item: str, settings: Settings) -> None:
    """A late purchase is still a purchase (never recommended back): kept as the oldest one,
    unless the list is full."""
    if item not in state.purchased and len(state.purchased) < settings.purchased_kept:
        state.purchased.insert(0, item)


class UnknownCouponError(ValueError):
    """A ``coupon_redeemed`` event names a coupon that is not defined: the record is
    dead-lettered (nothing of it is applied), to be re-driven once the coupon exists."""


def plan_batch(
    stored: Mapping[str, UserState],
    events: Iterable[SequencedEvent],
    shard: str,
    settings: Settings,
    trends: bool = True,
    known_coupons: Collection[str] | None = None,
) -> BatchPlan:
    """Replay ``events`` (in stream order) over the users' stored states.

    Args:
        stored: user id -> state as read before the batch (missing = new user). Not mutated.
        events: the batch's valid events in sequence order.
        shard: the Kinesis shard the batch came from (the replay-guard scope).
        settings: weights, history length, blocks.
        trends: whether to plan the hourly trend counters (skipped when nothing keeps them).
        known_coupons: the defined coupons among those the events redeem (None: unchecked);
            redeeming another raises :class:`UnknownCouponError`, so that it is not held
            against the user's ``per_user_limit`` of a coupon defined later.

    Returns:
        The plan: new user states and every count delta, tagged by record.
    """
    plan = BatchPlan()
    weights = settings.event_weights
    for sequenced in events:
        event = sequenced.event
        seq = sequenced.sequence
        state = plan.users.get(event.user_id)
        if state is None:
            original = stored.get(event.user_id)
            if original is None:
                state = UserState(user_id=event.user_id)
                plan.item_stats[TOTALS_ROW].append((seq, USERS, 1.0))
            else:
                state = original.copy()
        applied = state.applied.get(shard)
        if (applied is not None and seq <= applied) or event.event_id in state.recent_event_ids:
            plan.duplicates += 1
            continue
        plan.users[event.user_id] = state
        state.applied[shard] = seq
        # Not _remember: the id was just found absent, so there is nothing to move.
        state.recent_event_ids.append(event.event_id)
        del state.recent_event_ids[: -settings.recent_event_ids_kept]
        plan.applied_events += 1
        state.event_counts[event.event_type] = state.event_counts.get(event.event_type, 0) + 1
        plan.item_stats[TOTALS_ROW].append((seq, EVENTS, 1.0))
        if event.event_type == COUPON_REDEEMED and event.coupon_id is not None:
            if known_coupons is not None and event.coupon_id not in known_coupons:
                raise UnknownCouponError(
                    f"coupon_redeemed names coupon {event.coupon_id!r}, which is not defined"
                    f" (define it with PUT /coupons/{event.coupon_id} or streamrec coupons load,"
                    " then re-drive this record)"
                )
            # Counted in the user row here (written with its guards) and on the coupon row
            # by IngestService (its own per-shard guard): exactly once on both sides.
            # The latest redeemed last (the row keeps insertion order), the oldest evicted.
            state.redemptions[event.coupon_id] = state.redemptions.pop(event.coupon_id, 0) + 1
            while len(state.redemptions) > settings.redemptions_kept:
                del state.redemptions[next(iter(state.redemptions))]
            plan.redemptions.append((seq, event.coupon_id))
            continue
        plan.item_stats[event.item_id].append((seq, event_count_attribute(event.event_type), 1.0))
        plan.first_seen.setdefault(event.item_id, int(event.timestamp))
        weight = weights[event.event_type]
        if weight > 0:
            epoch, increment = popularity_increment(
                weight, event.timestamp, settings.popularity_half_life_seconds
            )
            plan.item_stats[event.item_id].append((seq, popularity_attribute(epoch), increment))
            plan.popular_changed.add(event.item_id)
        if event.category:
            plan.categories[event.item_id] = event.category
            if event.event_type == PURCHASE:
                # One per purchase event (not units): the shop's most-bought categories,
                # merged into #popular_categories when the similarity function refreshes
                # the popular lists of the item's category (it is told the item changed).
                epoch, bought = popularity_increment(
                    1.0, event.timestamp, settings.popularity_half_life_seconds
                )
                plan.item_stats[category_buys_row(event.category)].append(
                    (seq, popularity_attribute(epoch), bought)
                )
                plan.popular_changed.add(event.item_id)
        if trends:
            plan_trends(plan.trends, event, seq, trend_weight(state, event, weight, settings))
        late = is_late(state, event, settings)
        removes = late and late_removal_applies(state, event)
        stale_add = not late and is_stale_cart_add(state, event, settings)
        # Before the cart changes: it counts cart items (a late event changes them only by
        # a removal that still applies).
        apply_to_categories(state, event, settings, cart_changes=removes if late else not stale_add)
        if event.event_type in CART_EXITS:
            _remember_cart_exit(state, event, settings)
        if late:
            plan.late_events += 1
            if removes:
                state.cart.remove(event.item_id)
                if event.event_type == "remove_from_cart":
                    _leave_basket(state, event, seq, plan, settings)
            if event.event_type == PURCHASE:
                _remember_late_purchase(state, event.item_id, settings)
            continue
        if stale_add:
            # Still an interest in the item (history), but the cart and basket moved on.
            plan.stale_cart_adds += 1
        else:
            was_in_cart = event.item_id in state.cart
            _apply_to_cart(state, event, settings)
            _apply_to_basket(state, event, seq, plan, settings, was_in_cart)
        _apply_to_history(state, event, seq, weight, plan, settings)
    return plan


def _add_categories(
    item_stats: dict[str, list[Delta]], categories: dict[str, str], moved: Sequence[tuple[str, str, str]]
) -> None:
    """Add to a batch's item-stats writes the category each catalog record in ``moved``,
    ``(item id, sequence, category)``, gave its item: a delta of 0 under the record's
    sequence (its guard), after the batch's events of the item, as if in a batch of its
    own (a bisected retry may so apply it); a later event of the item sets it itself."""
    for item_id, sequence, category in moved:
        deltas = item_stats.setdefault(item_id, [])
        if not deltas or deltas[-1][0] < sequence:
            deltas.append((sequence, WEIGHT, 0.0))
            categories[item_id] = category


def trend_weight(state: UserState, event: UserEvent, weight: float, settings: Settings) -> float:
    """The part of an event's ``weight`` its item's trending counters take: a user's events
    on one item within one clock hour (the event's own) count as the strongest of them, so
    one shopper (or a script) repeating a view cannot make an item trend; a view then a cart
    add counts the cart add's weight. The user row remembers the (item, hour) pairs touched
    last, ``trend_items_kept`` of them, whatever order their hours come in. Purchases still
    count every unit in the demand counters (plan_trends)."""
    if weight <= 0:
        return weight
    # Per event on the ingest's hot path: locals and no max() calls.
    memory = state.trend_counted
    key = (event.item_id, int(event.timestamp // HOUR))
    counted = memory.pop(key, 0.0)
    memory[key] = weight if weight > counted else counted  # the pair touched last, last
    while len(memory) > settings.trend_items_kept:
        del memory[next(iter(memory))]
    return weight - counted if weight > counted else 0.0


def _apply_to_cart(state: UserState, event: UserEvent, settings: Settings) -> None:
    if event.event_type == "add_to_cart":
        _remember(state.cart, event.item_id, settings.purchased_kept)
    elif event.event_type in CART_EXITS and event.item_id in state.cart:
        state.cart.remove(event.item_id)
    if event.event_type == PURCHASE:
        _remember(state.purchased, event.item_id, settings.purchased_kept)


def _apply_to_basket(
    state: UserState, event: UserEvent, seq: str, plan: BatchPlan, settings: Settings, was_in_cart: bool
) -> None:
    """Count basket co-occurrence: each basket adds 1 to b_i for each distinct item it holds
    and 1 to c^b_ij for each pair, so a re-applied event (item already in the basket)
    changes nothing. A basket is the events sharing a ``basket_id``; events without one
    join the user's current implicit basket while all of them lie within
    ``basket_gap_hours`` (of its earliest and latest events), so a shopper buying every day
    starts a basket each day instead of growing one for weeks; but a cart not checked out
    (no purchase counted in its basket, an item of it still in the cart) keeps its basket
    open, so a cart picked up again days later is one basket, for
    ``basket_open_cart_days`` after its latest event. A purchase of an item the
    cart held in the current basket completes it whatever id it carries (an ``order_id`` at
    checkout after cart adds without one, or under a cart id): a cart not checked out
    however late (the basket's time then starts at the checkout), else within the gap; so
    does an order's line bought at once while the cart is not checked out, within the gap. The basket
    takes the order's id. Counted as a basket of its own, every checkout counted its pairs
    twice.
    An item taken out of the cart (``remove_from_cart`` of an item the cart held) leaves
    the current basket, which takes back what it counted for it: a size swapped for another
    was never bought with it. ``was_in_cart``: whether the cart held the item before the
    event."""
    if event.event_type == "remove_from_cart":
        if was_in_cart:
            _leave_basket(state, event, seq, plan, settings)
        return
    if event.event_type not in BASKET_EVENT_TYPES:
        return
    basket_id = event.basket_id or ""
    item, when = event.item_id, event.timestamp
    within_gap = max(state.basket_time, when) - min(state.basket_start, when) <= settings.basket_gap_seconds
    # A cart not checked out yet: no purchase has counted in the basket, and the cart still
    # holds an item of it. It stays open past the gap (a cart picked up again days later),
    # but not once abandoned (basket_open_cart_days since its latest event).
    checked_out = bool(state.basket_bought)
    open_cart = (
        not checked_out
        and when - state.basket_time <= settings.basket_open_cart_seconds
        and any(held in state.cart for held in state.basket)
    )
    purchase = event.event_type == PURCHASE
    # The checkout of an item carted in this basket, whatever id it carries: of a cart not
    # checked out however late, else within the gap (bought, carted again and bought in
    # the same trip). Counted in a basket of its own, its pairs were counted twice.
    checkout = purchase and was_in_cart and item in state.basket and (not checked_out or within_gap)
    same_id = state.basket_id == basket_id and (basket_id != "" or within_gap or open_cart)
    # An order's line bought at once (never carted) while the cart is not checked out, within
    # the gap: the cart's items may follow it (a cart left for longer is not taken to be
    # what an order of other items completes).
    first_line = purchase and open_cart and within_gap
    same = bool(state.basket) and (checkout or same_id or first_line)
    if same and basket_id:
        state.basket_id = basket_id  # the order's id: its other purchases join it too
    if not same:
        state.basket_id, state.basket, state.basket_bought = basket_id, [], []
        state.basket_time = state.basket_start = when
        plan.item_stats[TOTALS_ROW].append((seq, BASKETS, 1.0))
    else:
        if purchase and not checked_out and not within_gap:
            # The checkout of a cart older than the gap: the trip's time is its checkout's,
            # so the order's other lines (an id-less one too) are within the gap of it.
            state.basket_start = when
        else:
            state.basket_start = min(state.basket_start, when)
        state.basket_time = max(state.basket_time, when)
    if (
        purchase
        and item not in state.basket_bought
        and (item in state.basket or len(state.basket) < settings.basket_items_kept)
    ):
        state.basket_bought.append(item)  # counted in this basket for good
    # A full basket counts nothing more: its first basket_items_kept distinct items are the
    # ones counted, and the row keeps them all, so no item of it is ever counted twice.
    if item in state.basket or len(state.basket) >= settings.basket_items_kept:
        return
    plan.item_stats[item].append((seq, BASKETS, 1.0))
    plan.norm_changed.add(item)
    plan.changed_items.add(item)
    blocks = settings.cooccurrence_blocks
    for other in state.basket:
        plan.cooccurrence[(basket_row(item), block_of(other, blocks))].append((seq, other, 1.0))
        plan.cooccurrence[(basket_row(other), block_of(item, blocks))].append((seq, item, 1.0))
        plan.changed_items.add(other)
    state.basket.append(item)


def _basket_closed(state: UserState, event: UserEvent, settings: Settings) -> bool:
    """Whether the user's current basket is over by ``event``'s time: an implicit basket
    once a purchase has counted in it and ``basket_gap_hours`` have passed since its latest
    event (a cart not checked out stays open, even abandoned: the user's next cart add
    starts another basket after ``basket_open_cart_days``, but until then a removal still
    takes its pairs back; an explicit basket, named by its id, is never over)."""
    return (
        state.basket_id == ""
        and bool(state.basket_bought)
        and event.timestamp - state.basket_time > settings.basket_gap_seconds
    )


def _leave_basket(state: UserState, event: UserEvent, seq: str, plan: BatchPlan, settings: Settings) -> None:
    """A removal of an item the cart held: the item leaves the current basket, which takes
    back what it counted for it (-1 on b_i and on c^b_ij for each other item j of the
    basket, negative deltas under the event's own sequence number, so exactly once like the
    rest), unless the basket is over or a purchase counted the item in it. A basket left
    empty no longer counts among the baskets (N)."""
    item = event.item_id
    if item not in state.basket or item in state.basket_bought or _basket_closed(state, event, settings):
        return
    blocks = settings.cooccurrence_blocks
    plan.item_stats[item].append((seq, BASKETS, -1.0))
    plan.norm_changed.add(item)
    plan.changed_items.add(item)
    state.basket.remove(item)
    for other in state.basket:
        plan.cooccurrence[(basket_row(item), block_of(other, blocks))].append((seq, other, -1.0))
        plan.cooccurrence[(basket_row(other), block_of(item, blocks))].append((seq, item, -1.0))
        plan.changed_items.add(other)
    if not state.basket:
        plan.item_stats[TOTALS_ROW].append((seq, BASKETS, -1.0))


def _apply_to_history(
    state: UserState, event: UserEvent, seq: str, weight: float, plan: BatchPlan, settings: Settings
) -> None:
    item = event.item_id
    items = state.items
    index = -1
    for position, candidate in enumerate(items):  # a plain loop: next(generator) is slower
        if candidate.item_id == item:
            index = position
            break
    entry = items[index] if index >= 0 else None
    if entry is None:
        if weight <= 0:
            return  # e.g. removing from the cart an item the window no longer holds
        entry = HistoryItem(
            item, max_weight=0.0, affinity=0.0, ref_time=event.timestamp, kind=event.event_type
        )
        items.append(entry)
        # Evicted items keep their counts: the window bounds future pairs, not the past.
        del items[: -settings.history_length]
    else:
        # By position, not list.remove: that would compare entries field by field.
        del items[index]
        items.append(entry)
    if event.category:
        entry.category = event.category
    decayed_affinity(entry, weight, event.timestamp, settings.half_life_seconds)
    old, new = entry.max_weight, max(entry.max_weight, weight)
    if new <= old:
        return
    entry.max_weight, entry.kind = new, event.event_type
    plan.item_stats[item].append((seq, WEIGHT, new - old))
    plan.item_stats[TOTALS_ROW].append((seq, WEIGHT, new - old))
    plan.norm_changed.add(item)
    changed = plan.changed_items
    changed.add(item)
    # The hot loop of the ingest (one pass per pair): locals and inlined min() keep it lean.
    # The pair gains min(new, w) - min(old, w), which is > 0 only when w > old (old < new).
    blocks = settings.cooccurrence_blocks
    cooccurrence = plan.cooccurrence
    item_block = block_of(item, blocks)
    for other in items[:-1]:  # the entry itself was just moved to the end
        other_weight = other.max_weight
        if other_weight > old:
            gain = (new if new < other_weight else other_weight) - old
            other_id = other.item_id
            cooccurrence[(item, block_of(other_id, blocks))].append((seq, other_id, gain))
            cooccurrence[(other_id, item_block)].append((seq, item, gain))
            changed.add(other_id)


def with_catalog_categories(
    events: Sequence[SequencedEvent], catalog: CatalogRepository
) -> Sequence[SequencedEvent]:
    """Events without a category get their item's catalog category (one consistent,
    projected read of the batch's uncategorised items, after the batch's own catalog
    records were written), so that the user's history, the category popular lists and the
    coupons see it; events that name a category keep theirs. Planning is unchanged: this
    only fills in the field before it."""
    unread = {s.event.item_id for s in events if s.event.item_id and not s.event.category}
    # In NFC as events' own categories are: a record stored before categories were composed
    # (2026-11-30) may hold a decomposed one.
    known = (
        {item: unicodedata.normalize("NFC", c) for item, c in catalog.categories(unread).items()}
        if unread
        else {}
    )
    if not known:
        return events
    return [
        SequencedEvent(s.sequence, s.event.model_copy(update={"category": known[s.event.item_id]}))
        if not s.event.category and s.event.item_id in known
        else s
        for s in events
    ]


@dataclass
class IngestService:
    """Reads the batch's users, plans, and writes in the crash-safe order."""

    settings: Settings
    users: UserRepository
    cooccurrence: CooccurrenceRepository
    item_stats: ItemStatsRepository
    changes: ChangePublisher
    coupons: CouponRepository | None = None
    trends: TrendsRepository | None = None  # hourly counters (None: not kept)
    catalog: CatalogRepository | None = None

    def ingest(
        self,
        events: Sequence[SequencedEvent],
        shard: str,
        recategorised: Sequence[tuple[str, str, str]] = (),
    ) -> BatchPlan:
        """Apply one batch of one shard's events (in sequence order); the batch's catalog
        records, if any, are already in the catalog (see :func:`with_catalog_categories`),
        and ``recategorised`` names the items whose category they changed (see
        :meth:`recategorise`)."""
        if not events:
            if recategorised:
                self.recategorise(recategorised, shard)
            return BatchPlan()
        if self.catalog is not None:
            events = with_catalog_categories(events, self.catalog)
        stored = self.users.get_many({sequenced.event.user_id for sequenced in events})
        plan = plan_batch(
            stored,
            events,
            shard,
            self.settings,
            trends=self.trends is not None,
            known_coupons=self.known_coupons(events),
        )
        _add_categories(plan.item_stats, plan.categories, recategorised)
        # Merged into their new category's popular list: a move's catalog announcement does
        # that only for an item whose record names former categories, not for a new item's
        # c1 then c2, or c0, c1, c0, in one batch.
        plan.popular_changed.update(item_id for item_id, _, _ in recategorised)
        self.cooccurrence.apply(plan.cooccurrence, shard)
        self.item_stats.apply(plan.item_stats, shard, plan.categories, plan.first_seen)
        if self.trends is not None:
            self.trends.apply(plan.trends, shard)
        plan.redemption_outcomes = self._redeem(plan.redemptions, shard)
        if plan.changed_items or plan.popular_changed:
            self.changes.publish(plan.changed_items, plan.norm_changed, plan.popular_changed)
        self.users.save_many(plan.users.values())
        return plan

    def recategorise(self, changed: Sequence[tuple[str, str, str]], shard: str) -> None:
        """Set the category of the items a catalog record moved, ``(item id, the record's
        sequence, category)``, on their item-stats rows, in one guarded write each (a delta
        of 0: the guard makes a replay or an older record change nothing). The similarity
        function labels an item's own row with it when the row is rebuilt (a partner's
        event is enough): without this it kept the category of the item's last event, so a
        cold item moved to another category padded its list with the old one's bestsellers.
        With events of the same batch, :meth:`ingest` adds these to its own writes: one
        write per row must carry every delta, or the guard would take the later-sequenced
        write as covering the earlier."""
        deltas: dict[str, list[Delta]] = {}
        categories: dict[str, str] = {}
        _add_categories(deltas, categories, changed)
        self.item_stats.apply(deltas, shard, categories)
        self.changes.publish((), set(), sorted(categories))  # (see ingest)

    def known_coupons(self, events: Sequence[SequencedEvent]) -> set[str] | None:
        """The defined coupons among those the events redeem (a consistent key-only read when
        any do; None without a coupons table, where :meth:`_redeem` refuses the batch)."""
        if self.coupons is None:
            return None
        redeemed = {
            s.event.coupon_id
            for s in events
            if s.event.event_type == COUPON_REDEEMED and s.event.coupon_id is not None
        }
        return self.coupons.defined(redeemed) if redeemed else set()

    def _redeem(self, redemptions: Sequence[tuple[str, str]], shard: str) -> list[str]:
        """Count redemptions on the coupon rows, in stream order, before the users are
        written (like the count rows: a retry replans them and the guard skips what a row
        already holds)."""
        if not redemptions:
            return []
        if self.coupons is None:
            raise RuntimeError("coupon_redeemed events need the coupons table (COUPONS_TABLE)")
        return [self.coupons.redeem(coupon_id, seq, shard) for seq, coupon_id in redemptions]
