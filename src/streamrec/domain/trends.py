"""Trending items and purchase demand, from hourly counters kept for a few days.

Counters. The ingest adds each event to hourly buckets of its item, of its category and of
the whole shop (rows ``<item>`` / ``#cat:<category>`` / ``#all`` of the trends table, one
row per UTC day, attributes
``v:<hh>`` = summed event weights and ``p:<hh>`` = units bought, hh = hour of the day), with
the same per-shard replay guards and one write per distinct row per batch as the other
count rows. Rows expire (DynamoDB TTL on ``expires_at``) ``trends_retention_days`` after
their day ends.

Trending. Shops have daily cycles (night and evening traffic differ several-fold), so
expected counts follow the shop's hour-of-day profile P (24 numbers, mean ~1:
:func:`shop_profile`, from the ``#all`` rows over the ``trending_baseline_days`` days before
the window, shrunk toward 1 by ``PROFILE_PRIOR`` pseudo-events per hour of day so a thin
shop gets ~1 everywhere). For a window of W hours (1 or 24) ending now, an item's count c
sums its current hour, the W - 1 hours before, and the still-inside part of the hour before
those (``streamrec_core.window_counts``). Its baseline rate r is its count over the
baseline days per profile-weighted hour it was observed in them (since its item-stats
row's ``first_seen``: :func:`baseline_rate`), i.e. its rate at a mean hour of the day;
expected e = r * the window's profile-weighted length (``streamrec_core.window_exposure``:
r * W for a flat profile); and

    velocity = (c + prior) / (e + prior)        (prior = ``trending_prior``, 5)

so a 1 -> 3 blip scores 8 / 6 = 1.33 while 100 -> 300 scores 305 / 105 = 2.90, a new item
with 20 events in the hour scores 25 / 5 = 5, and an item following the shop's daily shape
scores ~1 at every hour of the day.

The similarity function (which is told which items' popularity changed) refreshes the
lists ``#trending:1h`` / ``#trending:24h`` and ``#trending:<w>:cat:<category>``: each entry
keeps the item's baseline rate and its hourly counts from H - W on, and each list the
profile it was last refreshed with (lists written before the profile was kept read as a
flat one). An entry is refreshed whenever the item gets an event, so between refreshes its
stored hours are complete: the API re-scores entries as of its own clock (hours that left
the window drop out), and a list is one read (and, leaving out-of-stock items out, one of
the ``#out_of_stock`` set, mostly from the API's cache). Only the baseline and the profile
are as of the last refresh. A list keeps its places for items in stock, and the
out-of-stock items ranked among them besides (at most as many again).

Demand. Units bought per day over the last ``demand_days`` whole days, the last 24 hours and
today so far; the forecast is the mean of the daily series (``streamrec_core.mean_forecast``)
or, with ``demand_method`` "holt", Holt's linear smoothing of it
(``streamrec_core.holt_forecast``, ``demand_alpha``, ``demand_beta``), over the whole days up
to yesterday: the current UTC day as a whole, and the sum of it and the 6 following (today's
sales so far are not in it).
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from streamrec_core import (
    holt_forecast,
    hour_of_day_profile,
    mean_forecast,
    profile_hours,
    velocity_scores,
    window_counts,
    window_exposure,
)

from streamrec.concurrency import concurrently
from streamrec.domain.filters import Unlisted, read_out_of_stock
from streamrec.domain.model import Delta
from streamrec.events import UserEvent
from streamrec.repositories.base import SimilarityRepository, TrendsRepository, compare_and_swap
from streamrec.settings import Settings

HOUR = 3600
DAY = 86_400
WINDOWS = {"1h": 1, "24h": 24}
WEIGHTED = "v"  # summed event weights, per hour
PURCHASED = "p"  # units bought, per hour
CATEGORY_COUNTER_PREFIX = "#cat:"
SHOP_COUNTER = "#all"  # the whole shop's counter rows, for the hour-of-day profile
# Pseudo-events per hour of day at the shop's mean rate that the profile is shrunk with: a
# shop with far fewer weighted events per hour of day over the baseline days gets ~1.
PROFILE_PRIOR = 10.0
TRENDING_LIST_PREFIX = "#trending:"
FORECAST_DAYS = 7
VELOCITY_DECIMALS = 4  # as the API answers a velocity


def counter_attribute(kind: str, hour_of_day: int) -> str:
    return f"{kind}:{hour_of_day:02d}"


def category_counter(category: str) -> str:
    """Key of a category's counter rows ('#' never starts an item id)."""
    return CATEGORY_COUNTER_PREFIX + category


def trending_list(window: str, category: str | None = None) -> str:
    """Key of a trending list: ``#trending:1h`` or ``#trending:1h:cat:<category>``."""
    name = TRENDING_LIST_PREFIX + window
    return f"{name}:cat:{category}" if category else name


# Attribute names by hour of the day, built once: the ingest plans one or two per event.
_WEIGHTED_ATTRIBUTES = tuple(counter_attribute(WEIGHTED, hour) for hour in range(24))
_PURCHASED_ATTRIBUTES = tuple(counter_attribute(PURCHASED, hour) for hour in range(24))


def plan_trends(rows: dict[tuple[str, int], list[Delta]], event: UserEvent, seq: str, weight: float) -> None:
    """Add one event to the hourly counters of its item, its category and the shop (keyed
    by (row, day)).

    Called by ``ingest.plan_batch`` per applied event; the deltas are written once per row
    per batch with the replay guards, like every count row."""
    purchase = event.event_type == "purchase"
    if weight <= 0 and not purchase:
        return
    day, hour_of_day = divmod(int(event.timestamp // HOUR), 24)
    keys = [(event.item_id, day), (SHOP_COUNTER, day)]
    if event.category:
        keys.append((category_counter(event.category), day))
    for key in keys:
        row = rows[key]
        if weight > 0:
            row.append((seq, _WEIGHTED_ATTRIBUTES[hour_of_day], weight))
        if purchase:
            row.append((seq, _PURCHASED_ATTRIBUTES[hour_of_day], float(event.quantity or 1)))


@dataclass
class HourlyCounts:
    """A counter row set's counts by absolute hour (epoch seconds // 3600)."""

    weighted: dict[int, float] = field(default_factory=dict)
    purchased: dict[int, float] = field(default_factory=dict)


def counts_from_attributes(counts: HourlyCounts, day: int, attributes: Mapping[str, object]) -> None:
    """Add a counter row's ``v:<hh>``/``p:<hh>`` attributes (of ``day``) to ``counts``."""
    for name, value in attributes.items():
        kind, _, hour_of_day = name.partition(":")
        if kind in (WEIGHTED, PURCHASED) and hour_of_day.isdigit():
            target = counts.weighted if kind == WEIGHTED else counts.purchased
            hour = day * 24 + int(hour_of_day)
            target[hour] = target.get(hour, 0.0) + float(value)  # type: ignore[arg-type]


def entries_to_json(entries: Sequence[TrendEntry]) -> str:
    """Compact JSON of list entries: [item, category, rate, [[hour, count], ...]]."""
    return json.dumps(
        [[e.item_id, e.category, e.baseline_rate, sorted(e.hours.items())] for e in entries],
        separators=(",", ":"),
        ensure_ascii=False,  # DynamoDB bills UTF-8 bytes: an escaped emoji is 12 of them, not 4
    )


def entries_from_json(text: str) -> list[TrendEntry]:
    return [
        TrendEntry(item, category, float(rate), {int(h): float(v) for h, v in hours})
        for item, category, rate, hours in json.loads(text)
    ]


@dataclass(frozen=True)
class TrendEntry:
    """An item in a trending list: its baseline rate (per hour, as of the entry's last
    refresh) and its weighted counts by absolute hour, from the window's oldest hour on."""

    item_id: str
    category: str | None
    baseline_rate: float
    hours: dict[int, float]


@dataclass
class TrendingList:
    entries: list[TrendEntry] = field(default_factory=list)
    version: int = 0
    # The shop's hour-of-day profile the list was last refreshed with (24 numbers, hour 0
    # first); None (a list written before it was kept, or holding a number that is not
    # positive): flat.
    profile: tuple[float, ...] | None = None
    # The clock the list was last merged as of (epoch seconds; 0: written before it was
    # kept): a merge scores as of the later of its own clock and this one, so a refresh whose
    # clock is behind another's does not undo the hour the other has already seen.
    as_of: float = 0.0


FLAT_PROFILE = (1.0,) * 24


def profile_to_json(profile: Sequence[float]) -> str:
    return json.dumps(list(profile), separators=(",", ":"))


def profile_from_json(text: str) -> tuple[float, ...] | None:
    """A list row's stored profile; None (read as flat) for one holding a number that is not
    positive: rows written before profiles kept 6 significant digits rounded a busy shop's
    quiet hours to 0, which a window of those hours would divide by."""
    profile = tuple(float(v) for v in json.loads(text))
    if len(profile) != 24:
        raise ValueError(f"a profile has 24 numbers, not {len(profile)}")
    return profile if all(0 < value < math.inf for value in profile) else None


@dataclass(frozen=True)
class TrendingItem:
    item_id: str
    category: str | None
    velocity: float
    count: float
    expected: float


def _clock(now: float) -> tuple[int, float]:
    """(current hour H, elapsed fraction of it)."""
    hour = int(now // HOUR)
    return hour, (now - hour * HOUR) / HOUR


def _window_matrix(hours: Sequence[Mapping[int, float]], current: int, window: int) -> np.ndarray:
    """Shape (n, window + 1): counts of hours current - window .. current. Later hours (events
    stamped ahead of the clock, up to the ingest's day of skew) count once their hour comes:
    added to the current one, an event stamped a day ahead would count in every window
    until then."""
    matrix = np.zeros((len(hours), window + 1))
    first = current - window
    for row, counts in enumerate(hours):
        for hour, value in counts.items():
            if first <= hour <= current:
                matrix[row, hour - first] += value
    return matrix


def _measure(
    entries: Sequence[TrendEntry],
    window: int,
    now: float,
    prior: float,
    profile: Sequence[float] | None = None,
) -> list[TrendingItem]:
    """Each entry's count, expected count and velocity as of ``now`` (in order);
    ``profile``: the shop's hour-of-day profile (None: flat)."""
    if not entries:
        return []
    current, elapsed = _clock(now)
    counts = window_counts(_window_matrix([e.hours for e in entries], current, window), elapsed)
    rates = np.array([e.baseline_rate for e in entries])
    exposure = window_exposure(np.array(profile or FLAT_PROFILE), current, window, elapsed)
    velocity, expected = velocity_scores(counts, rates, exposure, prior)
    return [
        TrendingItem(e.item_id, e.category, float(velocity[n]), float(counts[n]), float(expected[n]))
        for n, e in enumerate(entries)
    ]


def score(
    entries: Sequence[TrendEntry],
    window: int,
    now: float,
    prior: float,
    profile: Sequence[float] | None = None,
) -> list[TrendingItem]:
    """The entries' velocity as of ``now``, best first (ties, at the velocity as answered,
    ``VELOCITY_DECIMALS``: larger count, then item id); entries with nothing in the window
    left out. ``profile``: as :func:`_measure`."""
    ranked = [item for item in _measure(entries, window, now, prior, profile) if item.count > 0]
    # Rounded as answered: 7/6 computed two ways differs in its last bit, and an answer
    # showing two equal velocities must show the larger count first.
    return sorted(
        ranked, key=lambda item: (-round(item.velocity, VELOCITY_DECIMALS), -item.count, item.item_id)
    )


def baseline_rate(
    counts: Mapping[int, float],
    current: int,
    window: int,
    baseline_days: int,
    first_seen: float | None = None,
    profile: Sequence[float] | None = None,
) -> float:
    """Usual count per hour: the count over the ``baseline_days`` * 24 hours before the
    window's oldest (partial) hour, per hour the item was observed in them, each hour
    weighted by the shop's ``profile`` at its hour of day (None: flat), so that the rate is
    the item's at a mean hour of the day whichever hours it was observed in.

    Observed: from the hour of ``first_seen`` (epoch seconds, the item's stats row), or of
    an earlier count if there is one, to the baseline's end, at most the whole span and at
    least an hour, so that a new item selling at a steady pace scores 1, not span / age; its
    profile-weighted length at least 1 (a mean hour).
    ``first_seen`` None (an item whose row predates it, or a category): the whole span. An
    earlier count comes from an event older than the stored first_seen (arrived out of
    order) or from an item first written before first_seen was kept."""
    span = _baseline_span(current, window, baseline_days)
    total = sum(v for h, v in counts.items() if h in span)
    if total == 0:
        return 0.0
    first = span.start
    if first_seen is not None:
        first = max(first, min([int(first_seen // HOUR), *(h for h, v in counts.items() if v > 0)]))
    observed = np.arange(min(first, span.stop - 1), span.stop)
    # At least one mean hour: an item observed only in the shop's quiet hours (P near 0)
    # would otherwise divide by near nothing, a baseline so high that nothing it does trends.
    return total / max(profile_hours(np.array(profile or FLAT_PROFILE), observed), 1.0)


def _baseline_span(current: int, window: int, baseline_days: int) -> range:
    """The absolute hours of the baseline: the ``baseline_days`` * 24 before the window's
    oldest (partial) hour, which is left out."""
    end = current - window
    return range(end - baseline_days * 24, end)


def shop_start(counts: Mapping[int, float], current: int, window: int, baseline_days: int) -> float | None:
    """When the shop's counts (the ``#all`` rows, by absolute hour) start in the span of
    :func:`baseline_rate`, in epoch seconds; None when none are in it or some are before
    it (the rows read start with the span's first day). A category is observed
    from then: in a shop younger than the span every category would otherwise be taken as
    quiet before the shop opened, and read as rising (2 to 3 times over in a shop's first
    days). A category launched later in the span still reads too low a baseline."""
    span = _baseline_span(current, window, baseline_days)
    counted = [h for h, v in counts.items() if v > 0]
    if any(h < span.start for h in counted):  # open before the span (as far as the rows read show)
        return None
    inside = [h for h in counted if h in span]
    return float(min(inside) * HOUR) if inside else None


def shop_profile(
    counts: Mapping[int, float], current: int, window: int, baseline_days: int
) -> tuple[float, ...]:
    """The shop's hour-of-day profile (24 numbers, hour 0 UTC first) over the same span as
    :func:`baseline_rate`'s (``counts``: the ``#all`` rows' weighted counts by absolute hour):
    ``streamrec_core.hour_of_day_profile`` of its counts by hour of day, the hours observed
    counted from the shop's first count in the span (a shop, or the ``#all`` rows, younger
    than the span is not taken as quiet before it), with ``PROFILE_PRIOR``. Rounded to 6
    significant digits (stored with the lists, and a re-delivered batch computes the same
    one; not to decimals, which would round the quiet hours of a busy shop to 0)."""
    span = _baseline_span(current, window, baseline_days)
    inside = {h: v for h, v in counts.items() if h in span and v > 0}
    totals = np.zeros(24)
    observed = np.zeros(24)
    if inside:
        for h, v in inside.items():
            totals[h % 24] += v
        np.add.at(observed, np.arange(min(inside), span.stop) % 24, 1.0)
    profile = hour_of_day_profile(totals, observed, PROFILE_PRIOR)
    return tuple(float(f"{float(v):.6g}") for v in profile)


@dataclass(frozen=True)
class Demand:
    item_id: str
    known: bool
    last_24h: float
    today: float
    per_hour_24h: float
    per_day_7d: float
    per_day: float  # over all ``days``
    days: list[dict[str, object]]
    next_24h: float
    next_7d: float
    method: str  # "mean" or "holt" (Settings.demand_method)
    level: float
    trend: float
    alpha: float | None  # Holt's smoothing (None for the mean)
    beta: float | None


def _in_stock_places(
    ranked: list[TrendingItem], size: int, unavailable: AbstractSet[str]
) -> list[TrendingItem]:
    """The head of ``ranked`` (best first) up to its ``size``-th item not in ``unavailable``,
    and at most 2 · ``size`` items: out-of-stock items take no in-stock item's place."""
    kept, available = [], 0
    for item in ranked[: 2 * size]:
        if available == size:
            break
        kept.append(item)
        available += item.item_id not in unavailable
    return kept


@dataclass
class TrendsService:
    """Refreshes the trending lists (similarity function) and answers the API."""

    settings: Settings
    trends: TrendsRepository
    # Lists merged at once: each is a read and a conditional write of its own row, and a
    # batch touching hundreds of categories would otherwise wait on them one by one
    # (the DynamoDB wiring sets 8; the in-memory adapters keep 1).
    concurrency: int = 1
    # The time lists are refreshed as of (a replay passes its own clock).
    clock: Callable[[], float] = time.time
    # The similarity table, whose #out_of_stock set the API's trending lists leave out
    # (through the API's warm-container cache); None: nothing is left out for stock.
    stock: SimilarityRepository | None = None

    # ---- refresh (similarity function) ----

    def refresh(
        self,
        items: Mapping[str, str | None],
        now: float | None = None,
        first_seen: Mapping[str, float] | None = None,
    ) -> None:
        """Re-score ``items`` (item -> category) from their counters and merge them into the
        global and category lists of both windows (an item with nothing in a window leaves
        that window's lists). ``first_seen``: item -> its stats row's first_seen (items
        without one get the whole baseline span, see :func:`baseline_rate`)."""
        if not items:
            return
        now = self.clock() if now is None else now
        current, _ = _clock(now)
        # The shop's rows in the same read (about 10 more rows, one more BatchGetItem chunk at
        # most, read concurrently with the others).
        counts = self.trends.get_counts([*sorted(items), SHOP_COUNTER], self._days(current))
        settings = self.settings
        first_seen = first_seen or {}
        merges: list[tuple[str, dict[str, TrendEntry], int, tuple[float, ...]]] = []
        for label, window in WINDOWS.items():
            profile = shop_profile(
                counts[SHOP_COUNTER].weighted, current, window, settings.trending_baseline_days
            )
            fresh = {
                item: TrendEntry(
                    item,
                    category,
                    baseline_rate(
                        counts[item].weighted,
                        current,
                        window,
                        settings.trending_baseline_days,
                        first_seen.get(item),
                        profile,
                    ),
                    {h: v for h, v in counts[item].weighted.items() if h >= current - window and v > 0},
                )
                for item, category in items.items()
            }
            by_list: dict[str, dict[str, TrendEntry]] = defaultdict(dict)
            for item, entry in fresh.items():
                by_list[trending_list(label)][item] = entry
                if entry.category:
                    by_list[trending_list(label, entry.category)][item] = entry
            merges.extend((name, by_list[name], window, profile) for name in sorted(by_list))
        # Every list read for update in one batch read (a GetItem per list cost a call each),
        # then each merged on its own: the first failure fails the batch (retried; merges
        # are idempotent).
        _, stored = self.trends.get_many([], [], [merge[0] for merge in merges], consistent=True)
        unavailable = self._out_of_stock()
        concurrently(
            lambda merge: self._merge(
                merge[0], merge[1], merge[2], now, stored[merge[0]], merge[3], unavailable
            ),
            merges,
            self.concurrency,
        )

    def _days(self, current: int) -> list[int]:
        """Days whose rows hold the baseline and the longest window (and a day ahead)."""
        first = (current - max(WINDOWS.values()) - self.settings.trending_baseline_days * 24) // 24
        return list(range(first, current // 24 + 2))

    def _merge(
        self,
        name: str,
        fresh: dict[str, TrendEntry],
        window: int,
        now: float,
        read: TrendingList,
        profile: tuple[float, ...],
        unavailable: frozenset[str] = frozenset(),
    ) -> None:
        """Compare-and-swap merge of fresh entries into one list, re-scored as of ``now``
        with the shop's ``profile``, which the list then keeps (``read``: the list as just
        read for update; a lost race reads it again). The list keeps its size's worth of
        items not in ``unavailable`` (out of stock), and the ``unavailable`` ones ranked
        among them (at most the size again): an answer leaving those out still has its
        size's worth to choose from, and one asking for them (restocking) sees them."""

        def read_again() -> TrendingList:
            return self.trends.get_many([], [], [name], consistent=True)[1][name]

        settings = self.settings
        size = settings.trending_category_list_size if ":cat:" in name else settings.trending_list_size
        prior = settings.trending_prior

        def merged(stored: TrendingList) -> TrendingList | None:
            # Never as of an earlier time than the list's last merge (another shard's refresh
            # whose clock had passed the hour: scored as of this clock, its entries of the new
            # hour had nothing in the window and were dropped).
            as_of = max(now, stored.as_of)
            current = int(as_of // HOUR)
            entries = {e.item_id: e for e in stored.entries}
            entries.update(fresh)
            ranked = _in_stock_places(
                score(list(entries.values()), window, as_of, prior, profile), size, unavailable
            )
            kept = [entries[item.item_id] for item in ranked]
            # An entry counted only in later hours (events stamped ahead) has nothing in the
            # window yet, yet is not over: kept (while there is room) for the reads to come.
            listed = {entry.item_id for entry in kept}
            kept += [
                entry
                for entry in entries.values()
                if entry.item_id not in listed and max(entry.hours, default=current) > current
            ][: size - len(kept)]
            # Unchanged entries: written only for a new profile, and never to keep one
            # with no entries (a list of items with nothing in the window).
            if kept == stored.entries and (profile == stored.profile or not kept):
                return None
            return TrendingList(kept, stored.version, profile, as_of)

        compare_and_swap(
            name, read, read_again, merged, lambda trending: self.trends.put_list(name, trending)
        )

    # ---- API ----

    def trending(
        self,
        window: str,
        k: int,
        category: str | None = None,
        now: float | None = None,
        exclude: frozenset[str] = frozenset(),
        in_stock_only: bool = True,
        min_velocity: float = 0.0,
    ) -> tuple[list[TrendingItem], TrendingItem | None]:
        """Top ``k`` items by velocity in ``window`` (``1h``/``24h``), none of ``exclude``
        and, with ``in_stock_only``, none of the ``#out_of_stock`` set, none whose velocity
        is below ``min_velocity``, optionally of one category, and (with a category) the
        category's own velocity (whatever its value). One read of the trends table, and the
        out-of-stock set's through ``stock`` (mostly a cache hit)."""
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
        now = time.time() if now is None else now
        hours = WINDOWS[window]
        current, _ = _clock(now)
        name = trending_list(window, category)
        # With a category, the shop's counters too: when they start, for the category's baseline.
        counters = [category_counter(category), SHOP_COUNTER] if category else []
        # With a category, the global list too (same read): its profile stands in when the
        # category's list has none (never written: none of its items is in the window).
        names = [name, trending_list(window)] if category else [name]
        counts, lists = self.trends.get_many(counters, self._days(current) if counters else [], names)
        stored = lists[name]
        profile = stored.profile or lists[names[-1]].profile
        unlisted = Unlisted(exclude, self._out_of_stock() if in_stock_only else frozenset())
        entries = [entry for entry in stored.entries if entry.item_id not in unlisted]
        scored = score(entries, hours, now, self.settings.trending_prior, profile)
        # Compared as shown: an item answered with velocity 1.5 is kept by a floor of 1.5.
        items = [item for item in scored if round(item.velocity, VELOCITY_DECIMALS) >= min_velocity][:k]
        if not category:
            return items, None
        row = counts[category_counter(category)]
        baseline_days = self.settings.trending_baseline_days
        whole = TrendEntry(
            category,
            category,
            baseline_rate(
                row.weighted,
                current,
                hours,
                baseline_days,
                shop_start(counts[SHOP_COUNTER].weighted, current, hours, baseline_days),
                profile,
            ),
            row.weighted,
        )
        return items, _measure([whole], hours, now, self.settings.trending_prior, profile)[0]

    def _out_of_stock(self) -> frozenset[str]:
        """The ids of the ``#out_of_stock`` set (empty without ``stock``)."""
        return frozenset() if self.stock is None else read_out_of_stock(self.stock)

    def demand(self, item_id: str, now: float | None = None) -> Demand:
        """The item's purchases (units) per day over the last ``demand_days`` whole days, the
        last 24 hours and today, and the forecast (``demand_method``). Unknown items: zeros.
        One read."""
        settings = self.settings
        now = time.time() if now is None else now
        current, elapsed = _clock(now)
        today = current // 24
        days = list(range(today - settings.demand_days, today + 1))
        counts, _ = self.trends.get_many([item_id], days, [])
        row = counts[item_id]
        known = bool(row.weighted or row.purchased)
        daily = np.zeros(len(days))
        for hour, value in row.purchased.items():
            if days[0] <= hour // 24 and hour <= current:  # as in last_24h: none ahead of the clock
                daily[hour // 24 - days[0]] += value
        last_24h = float(window_counts(_window_matrix([row.purchased], current, 24), elapsed)[0])
        whole = daily[:-1]
        holt = settings.demand_method == "holt"
        if holt:
            level, trend, forecast = holt_forecast(
                whole, settings.demand_alpha, settings.demand_beta, FORECAST_DAYS
            )
        else:
            level, trend, forecast = mean_forecast(whole, FORECAST_DAYS)
        return Demand(
            item_id=item_id,
            known=known,
            last_24h=last_24h,
            today=float(daily[-1]),
            per_hour_24h=last_24h / 24,
            per_day_7d=float(whole[-7:].mean()) if whole.size else 0.0,
            per_day=float(whole.mean()) if whole.size else 0.0,
            days=[
                {"date": datetime.fromtimestamp(day * DAY, UTC).date().isoformat(), "purchases": float(value)}
                for day, value in zip(days[:-1], whole, strict=True)
            ],
            next_24h=float(forecast[0]),
            next_7d=float(forecast.sum()),
            method=settings.demand_method,
            level=level,
            trend=trend,
            alpha=settings.demand_alpha if holt else None,
            beta=settings.demand_beta if holt else None,
        )
