"""Trends: the numpy math by hand, the counters exactly once (memory and DynamoDB on moto
give equal rows under re-delivery), trending lists and demand with hand-checked numbers,
and each API read in one round trip."""

from __future__ import annotations

import json
import math

import boto3
import numpy as np
import pytest
from streamrec_core import (
    holt_forecast,
    hour_of_day_profile,
    mean_forecast,
    profile_hours,
    velocity_scores,
    window_counts,
    window_exposure,
)

from streamrec import wiring
from streamrec.domain.ingest import IngestService, SequencedEvent, plan_batch
from streamrec.domain.model import OUT_OF_STOCK_ROW, PopularList, sequence_key
from streamrec.domain.similarity import SimilarityService
from streamrec.domain.trends import (
    SHOP_COUNTER,
    TrendEntry,
    TrendingList,
    TrendsService,
    baseline_rate,
    category_counter,
    counter_attribute,
    entries_to_json,
    profile_from_json,
    score,
    shop_profile,
    trending_list,
)
from streamrec.events import parse_event
from streamrec.repositories.dynamodb import DynamoTable, DynamoTrendsRepository
from streamrec.repositories.memory import (
    InMemoryChangePublisher,
    InMemoryCooccurrenceRepository,
    InMemoryItemStatsRepository,
    InMemorySimilarityRepository,
    InMemoryTrendsRepository,
    InMemoryUserRepository,
)
from streamrec.settings import Settings, load_settings
from tests.unit.test_round_trips import CallLog

SHARD = "shardId-000000000000"
NOW = 1_764_000_000.0  # exactly the start of hour 490,000 (2025-11-24 16:00 UTC)
H = 490_000


# ---- numpy core ------------------------------------------------------------------------


def test_window_counts_take_the_unexpired_part_of_the_oldest_hour():
    # Hours H-2, H-1, H: a quarter of H has passed, so 3/4 of H-2 is still in the window.
    np.testing.assert_allclose(window_counts(np.array([[4.0, 1.0, 2.0]]), 0.25), [1 + 2 + 4 * 0.75])
    with pytest.raises(ValueError):
        window_counts(np.array([[1.0]]), 0.5)


def test_velocity_prior_keeps_a_small_blip_below_a_large_surge():
    velocity, expected = velocity_scores(np.array([3.0, 300.0, 20.0]), np.array([1.0, 100.0, 0.0]), 1.0, 5.0)
    np.testing.assert_allclose(expected, [1.0, 100.0, 0.0])
    # (3 + 5) / (1 + 5) = 1.333; (300 + 5) / (100 + 5) = 2.905; a new item: 25 / 5 = 5
    np.testing.assert_allclose(velocity, [8 / 6, 305 / 105, 5.0])
    assert velocity[1] > velocity[0]
    with pytest.raises(ValueError):
        velocity_scores(np.array([1.0]), np.array([1.0]), 1.0, 0.0)


def test_mean_forecast_is_flat_at_the_mean():
    level, trend, forecast = mean_forecast(np.array([0.0, 0.0, 6.0, 2.0]), 3)
    assert (level, trend, forecast.tolist()) == (2.0, 0.0, [2.0, 2.0, 2.0])
    assert mean_forecast(np.zeros(0), 2)[2].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        mean_forecast(np.ones(3), -1)


def test_demand_method_and_days_are_read_from_the_environment():
    from streamrec.settings import ConfigurationError

    assert load_settings({}).demand_method == "mean"
    assert load_settings({"DEMAND_METHOD": "holt"}).demand_method == "holt"
    with pytest.raises(ConfigurationError, match="DEMAND_METHOD='trend'"):
        load_settings({"DEMAND_METHOD": "trend"})
    # The forecast before 2026-11-30, and the window an upgrade needs for 28 days.
    assert load_settings({"DEMAND_METHOD": "holt", "DEMAND_DAYS": "14"}).demand_days == 14
    with pytest.raises(ConfigurationError, match="DEMAND_DAYS=30"):
        load_settings({"DEMAND_DAYS": "30"})
    with pytest.raises(ConfigurationError, match="DEMAND_DAYS='two weeks'"):
        load_settings({"DEMAND_DAYS": "two weeks"})


def test_holt_by_hand():
    # l0 = 2, b0 = 0; l1 = .5*4 + .5*2 = 3, b1 = .5*1 = .5; l2 = .5*6 + .5*3.5 = 4.75,
    # b2 = .5*1.75 + .5*.5 = 1.125; forecasts 5.875, 7.0, 8.125.
    level, trend, forecast = holt_forecast(np.array([2.0, 4.0, 6.0]), 0.5, 0.5, 3)
    assert (level, trend) == (4.75, 1.125)
    np.testing.assert_allclose(forecast, [5.875, 7.0, 8.125])
    # A falling series never forecasts negative demand: l1 = 0, b1 = -4 clamped to -l1 = 0.
    assert holt_forecast(np.array([4.0, 0.0]), 1.0, 1.0, 2) == (0.0, 0.0, pytest.approx([0.0, 0.0]))
    assert holt_forecast(np.zeros(0), 0.3, 0.1, 2)[2].tolist() == [0.0, 0.0]


def test_holt_level_never_negative_and_trend_never_below_minus_level():
    # A one-off sale of 50 then 13 quiet days: unclamped, l would overshoot to -5.85 (b -2.05).
    level, trend, forecast = holt_forecast(np.array([50.0] + [0.0] * 13), 0.3, 0.1, 7)
    assert level >= 0.0 and trend >= -level
    assert level + trend >= 0.0 and (forecast >= 0).all()
    # By hand (alpha = beta = .5), 8 then quiet days: l1 = 4, b1 = -2; l2 = .5 * (4 - 2) = 1,
    # b2 = .5 * (1 - 4) + .5 * -2 = -2.5, clamped to -l2 = -1; l3 = .5 * (1 - 1) = 0, b3 = -1
    # clamped to 0 (unclamped: l3 = .5 * (1 - 2.5) = -0.75).
    assert holt_forecast(np.array([8.0, 0.0]), 0.5, 0.5, 1)[:2] == (4.0, -2.0)
    assert holt_forecast(np.array([8.0, 0.0, 0.0]), 0.5, 0.5, 1)[:2] == (1.0, -1.0)
    assert holt_forecast(np.array([8.0, 0.0, 0.0, 0.0]), 0.5, 0.5, 1)[:2] == (0.0, 0.0)


# ---- counters ----------------------------------------------------------------------------


def _event(
    n: int, item: str, kind: str, timestamp: float, category: str | None = "camping", user: str = "", **extra
):
    """Event ``n`` of user ``user`` (default: one of 4 users, by ``n``)."""
    payload = {
        "event_id": f"t{n}",
        "event_type": kind,
        "user_id": user or f"u{n % 4}",
        "item_id": item,
        "timestamp": timestamp,
        **({"category": category} if category else {}),
        **extra,
    }
    return SequencedEvent(sequence_key(70_000 + n), parse_event(payload))


def test_plan_counts_weights_and_units_per_item_and_category_hour():
    events = [
        _event(0, "tent", "view", NOW - 30),  # hour H - 1 = 15:00 of the same day
        _event(1, "tent", "purchase", NOW + 10, quantity=3),  # hour H = 16:00
        _event(2, "tent", "remove_from_cart", NOW + 20),  # weight 0: counted nowhere
        _event(3, "stove", "add_to_cart", NOW + 30, category=None),
        _event(4, "tent", "view", NOW - 17 * 3600),  # 23:00 the day before
    ]
    plan = plan_batch({}, events, SHARD, Settings())
    day, hour_of_day = divmod(H, 24)
    assert hour_of_day == 16
    assert plan.trends[("tent", day)] == [
        (events[0].sequence, "v:15", 1.0),
        (events[1].sequence, "v:16", 2.0),
        (events[1].sequence, "p:16", 3.0),
    ]
    assert plan.trends[("tent", day - 1)] == [(events[4].sequence, "v:23", 1.0)]
    assert plan.trends[("#cat:camping", day)] == plan.trends[("tent", day)]
    assert plan.trends[("stove", day)] == [(events[3].sequence, "v:16", 1.5)]
    assert not [key for key in plan.trends if key[0] == "#cat:None"]


def _burst(count: int = 60) -> list[SequencedEvent]:
    kinds = ["view", "view", "add_to_cart", "purchase"]
    return [
        _event(n, f"i{n % 5}", kinds[n % 4], NOW - 3 * 86_400 + n * 3_000, category=f"c{n % 2}")
        for n in range(count)
    ]


def _ingest(trends, events, settings):
    service = IngestService(
        settings,
        InMemoryUserRepository(),
        InMemoryCooccurrenceRepository(),
        InMemoryItemStatsRepository(),
        InMemoryChangePublisher(),
        trends=trends,
    )
    service.ingest(events, SHARD)
    return service


def _counter_rows(repo: InMemoryTrendsRepository) -> dict[tuple[str, int], dict[str, float]]:
    return {
        key: {k: float(v) for k, v in row.items() if k[:2] in ("v:", "p:")} for key, row in repo.rows.items()
    }


def test_counters_exactly_once_in_memory_and_on_dynamodb(aws):
    settings = load_settings()
    events = _burst()
    clean = InMemoryTrendsRepository()
    _ingest(clean, events, settings)

    # Re-delivered and bisected on DynamoDB: the counts rows alone, applied as the ingest does.
    table = DynamoTable(settings.trends_table, boto3.client("dynamodb"))
    dynamo = DynamoTrendsRepository(table, settings.trends_retention_days)
    plan = plan_batch({}, events, SHARD, settings)
    dynamo.apply(plan.trends, SHARD)
    first_half = plan_batch({}, events[:30], SHARD, settings)
    dynamo.apply(first_half.trends, SHARD)  # a bisected retry of what is already held
    dynamo.apply(plan.trends, SHARD)  # the whole batch again

    stored = boto3.client("dynamodb").scan(TableName=settings.trends_table)["Items"]
    rows = {
        (item["item_id"]["S"], int(item["day"]["N"])): {
            k: float(v["N"]) for k, v in item.items() if k[:2] in ("v:", "p:")
        }
        for item in stored
    }
    assert rows == _counter_rows(clean) and rows
    for item in stored:  # expiry: the end of the row's day plus the retention
        day = int(item["day"]["N"])
        assert int(item["expires_at"]["N"]) == (day + 1 + settings.trends_retention_days) * 86_400

    # In memory: a crash after the counts (users unwritten) replays the same batch.
    replayed = InMemoryTrendsRepository()
    replayed.apply(first_half.trends, SHARD)
    _ingest(replayed, events, settings)
    assert _counter_rows(replayed) == _counter_rows(clean)
    # Totals: every weighted event and every unit bought counted once.
    items = [row for (key, _), row in _counter_rows(clean).items() if not key.startswith("#")]
    assert sum(v for row in items for k, v in row.items() if k.startswith("v:")) == sum(
        settings.event_weights[e.event.event_type] for e in events
    )
    assert sum(v for row in items for k, v in row.items() if k.startswith("p:")) == sum(
        e.event.event_type == "purchase" for e in events
    )


# ---- trending and demand -------------------------------------------------------------------


def _service_with(events, settings=None):
    settings = settings or Settings()
    repo = InMemoryTrendsRepository()
    _ingest(repo, events, settings)
    return TrendsService(settings, repo), repo


def test_trending_ranks_by_velocity_not_raw_counts():
    events = []
    n = 0
    # "steady": 4 views an hour for 8 days; "rising": 1 an hour, 30 in the last hour;
    # "blip": 1 view in the baseline, 3 in the last hour; each view by another shopper.
    for hour in range(1, 8 * 24 + 1):
        for _ in range(4):
            events.append(_event(n, "steady", "view", NOW - hour * 3600 + 60, user=f"s{n}"))
            n += 1
        events.append(_event(n, "rising", "view", NOW - hour * 3600 + 120, user=f"s{n}"))
        n += 1
    for m in range(29):
        events.append(_event(n, "rising", "view", NOW - 3000 + m, user=f"s{n}"))
        n += 1
    events.append(_event(n, "blip", "view", NOW - 5 * 86_400, user=f"s{n}"))
    n += 1
    for m in range(3):
        events.append(_event(n, "blip", "view", NOW - 1000 + m, user=f"s{n}"))
        n += 1
    events.sort(key=lambda e: e.event.timestamp)
    events = [SequencedEvent(sequence_key(90_000 + i), e.event) for i, e in enumerate(events)]
    service, repo = _service_with(events)
    service.refresh({"steady": "camping", "rising": "camping", "blip": "camping"}, NOW)

    items, summary = service.trending("1h", 10, now=NOW)
    assert summary is None
    assert [i.item_id for i in items] == ["rising", "blip", "steady"]
    rising, blip, steady = items
    # rising: c = 30 (hour H-1, all inside at H + 0), baseline 168 / 168 = 1 per hour:
    # (30 + 5) / (1 + 5); blip: (3 + 5) / (1/168 + 5); steady: (4 + 5) / (4 + 5) = 1. (The
    # shop's traffic is the same every hour, so its profile is flat but for blip's one
    # baseline view at 16:00: 1.02 there, 0.999 elsewhere.)
    assert rising.count == 30 and rising.expected == pytest.approx(1.0, rel=1e-3)
    assert rising.velocity == pytest.approx(35 / 6, rel=1e-3)
    assert blip.velocity == pytest.approx(8 / (1 / 168 + 5), rel=1e-3)
    assert steady.velocity == pytest.approx(1.0, rel=1e-3)
    assert steady.count > blip.count  # more events, yet below: ranked by velocity

    # Half an hour later the window has lost half of hour H-1: re-scored as of then.
    later, _ = service.trending("1h", 10, now=NOW + 1800)
    assert {i.item_id: i.count for i in later}["rising"] == pytest.approx(15.0)
    # Two hours later nothing is left in the 1h window: stale entries decay out.
    assert service.trending("1h", 10, now=NOW + 7200)[0] == []

    without = service.trending("1h", 10, now=NOW, exclude=frozenset({"rising"}))[0]
    assert [i.item_id for i in without] == ["blip", "steady"]  # excluded before the cut

    by_category, whole = service.trending("24h", 2, category="camping", now=NOW)
    assert [i.item_id for i in by_category] == ["rising", "blip"]
    assert whole is not None and whole.count == pytest.approx(4 * 24 + 24 + 29 + 3)
    assert service.trending("24h", 5, category="nothing-here", now=NOW)[0] == []


def _recomputed(events, settings=None, now=NOW):
    """Ingest ``events`` (in order, batches of 500) and let the similarity function refresh
    the trending lists as of ``now``, as deployed: first-seen times from the item-stats rows."""
    settings = settings or Settings()
    repo, stats, publisher = (
        InMemoryTrendsRepository(),
        InMemoryItemStatsRepository(),
        InMemoryChangePublisher(),
    )
    pairs = InMemoryCooccurrenceRepository()
    ingest = IngestService(settings, InMemoryUserRepository(), pairs, stats, publisher, trends=repo)
    for start in range(0, len(events), 500):
        ingest.ingest(events[start : start + 500], SHARD)
    trends = TrendsService(settings, repo, clock=lambda: now)
    SimilarityService(settings, pairs, stats, InMemorySimilarityRepository(), trending=trends).recompute(
        *publisher.drain()
    )
    return trends, stats


def test_a_new_item_at_a_steady_pace_scores_1_like_an_old_one():
    # "veteran": 10 views an hour for 9 days; "newbie": launched 30 hours ago, 10 an hour
    # since; "sparse": first seen 9 days ago, one view 3 days ago, 2 in the last hour (its
    # quiet spell is not youth: its baseline spans the whole 168 hours).
    timed = [("veteran", NOW - h * 3600 + 60 + m) for h in range(1, 9 * 24 + 1) for m in range(10)]
    timed += [("newbie", NOW - h * 3600 + 60 + m) for h in range(1, 31) for m in range(10)]
    timed += [("sparse", NOW - 9 * 86_400), ("sparse", NOW - 3 * 86_400)]
    timed += [("sparse", NOW - 3000), ("sparse", NOW - 2000)]
    timed.sort(key=lambda pair: pair[1])
    events = [_event(n, item, "view", at, user=f"s{n}") for n, (item, at) in enumerate(timed)]
    trends, stats = _recomputed(events)
    assert stats.get_many(["newbie"])["newbie"].first_seen == int(NOW) - 30 * 3600 + 60
    for window, hours in (("1h", 1), ("24h", 24)):
        items = {i.item_id: i for i in trends.trending(window, 10, now=NOW)[0]}
        # newbie: observed since hour H - 30, so its baseline is 10 an hour like veteran's
        # (over the whole 168 hours it was 29 * 10 / 168 = 1.7 in the 1h window, 6 * 10 / 168
        # in the 24h one: velocity 2.2 and 18). Not exactly 10: newbie's own views make 1/8 of
        # the shop's since it came, so the shop's profile is up to 9% higher at the hours of
        # day it was seen in its baseline (10:00-15:00 for the 24h window) than at the others.
        assert items["newbie"].expected == pytest.approx(10 * hours, rel=0.1), window
        assert items["newbie"].velocity == pytest.approx(1.0, rel=0.1), window
        assert items["veteran"].velocity == pytest.approx(1.0, rel=0.03), window
    sparse = {i.item_id: i for i in trends.trending("1h", 10, now=NOW)[0]}["sparse"]
    assert sparse.expected == pytest.approx(1 / 168, rel=0.05)  # times the profile at 15:00


# The shop's daily shape (quiet night, busy afternoon, peak 15:00-16:00 UTC at 4.5x the mean
# hour), as in the review's reproduction.
DAILY_SHAPE = [0.2] * 7 + [0.6] * 5 + [1.2] * 3 + [4.0] + [1.5] * 4 + [0.8] * 4


def _daily_cycle(now: float) -> list[SequencedEvent]:
    """8 days up to ``now`` of three items following DAILY_SHAPE (mean 40, 10 and 3 views an
    hour); "riser" has 3x its usual count in the last whole hour."""
    timed = []
    for h in range(1, 8 * 24 + 2):
        at = now - h * 3600 + 60
        shape = DAILY_SHAPE[int(at // 3600) % 24] / (sum(DAILY_SHAPE) / 24)
        for item, mean in (("bestseller", 40), ("midrange", 10), ("riser", 3)):
            timed += [
                (item, at + m) for m in range(round(mean * shape * (3 if item == "riser" and h == 1 else 1)))
            ]
    timed.sort(key=lambda pair: pair[1])
    return [_event(n, item, "view", at, user=f"d{n}") for n, (item, at) in enumerate(timed)]


def test_a_daily_cycle_is_expected_so_only_a_real_rise_trends():
    # At 16:00 the 1h window is the 15:00 peak hour. Against a flat baseline (the 168-hour
    # mean) every item "trended" there: bestseller 4.1, midrange 3.3 (riser, 41 views for
    # 3.1 expected, 5.7) and the category 4.7; at 04:00 everything was far below 1
    # (bestseller 0.31). Against the shop's profile the steady items score ~1 at the peak
    # and at night, riser (3x its usual peak hour) 2.4, the category ~1.
    trends, _ = _recomputed(_daily_cycle(NOW))
    items, whole = trends.trending("1h", 10, category="camping", now=NOW)
    velocity = {i.item_id: i.velocity for i in items}
    assert [i.item_id for i in items][0] == "riser" and velocity["riser"] > 2.0
    assert velocity["bestseller"] == pytest.approx(1.0, abs=0.05)
    assert velocity["midrange"] == pytest.approx(1.0, abs=0.05)
    assert whole is not None and whole.velocity < 1.2  # the category: riser's 18 extra views
    # The profile kept with the list: the peak hour ~4.4x the mean hour, the night ~0.25x.
    profile = trends.trends.get_list("#trending:1h").profile
    assert profile is not None and len(profile) == 24
    assert profile[15] > 4.0 and max(profile[:7]) < 0.3
    steady = {i.item_id: i.velocity for i in trends.trending("24h", 10, now=NOW)[0]}
    assert steady["bestseller"] == pytest.approx(1.0, abs=0.01)  # 24 hours: the whole cycle

    night = NOW + 12 * 3600  # 04:00: the window is 03:00, at 0.2 / 0.88 of the mean hour
    trends, _ = _recomputed(_daily_cycle(night), now=night)
    velocity = {i.item_id: i.velocity for i in trends.trending("1h", 10, now=night)[0]}
    # 0.94 each: the profile's shrinkage toward 1 (10 pseudo-events per hour of day against
    # this small shop's 84 at each night hour) puts the night 9% above its raw 0.226.
    assert velocity["bestseller"] == pytest.approx(1.0, abs=0.07)
    assert velocity["midrange"] == pytest.approx(1.0, abs=0.07)
    assert velocity["riser"] > 1.1  # 1 -> 2 views at night: the prior keeps it modest


def test_a_thin_shops_profile_is_about_flat():
    # 24 views over the week at scattered hours, then 3 in the last hour: the profile,
    # shrunk by 10 pseudo-events per hour of day, stays within 10% of 1, and the velocity
    # is the flat baseline's.
    timed = [("lamp", NOW - (n * 7 + 2) * 3600 - 600) for n in range(24)]
    timed += [("lamp", NOW - 1000 + m) for m in range(3)]
    timed.sort(key=lambda pair: pair[1])
    trends, _ = _recomputed([_event(n, item, "view", at) for n, (item, at) in enumerate(timed)])
    profile = trends.trends.get_list("#trending:1h").profile
    assert profile is not None and max(abs(v - 1) for v in profile) < 0.1
    lamp = trends.trending("1h", 10, now=NOW)[0][0]
    # first seen 7 * 23 + 2 hours ago: 24 views over its 162 hours before the window
    flat = (3 + 5) / (24 / 162 + 5)
    assert lamp.velocity == pytest.approx(flat, rel=0.01)


def test_profile_math_by_hand():
    # S = 24 events at 03:00 and 0 elsewhere, 7 hours of each hour of day: m = 24 / 168;
    # profile[3] = (24 + 10) / (7 * m + 10) = 34 / 11, elsewhere 10 / 11.
    totals = np.zeros(24)
    totals[3] = 24.0
    profile = hour_of_day_profile(totals, np.full(24, 7.0), 10.0)
    np.testing.assert_allclose(profile[[2, 3]], [10 / 11, 34 / 11])
    assert profile.mean() == pytest.approx(1.0)
    # Never-observed hours of day get 1; no observed hours at all: flat.
    np.testing.assert_allclose(hour_of_day_profile(np.zeros(24), np.zeros(24), 1.0), np.ones(24))
    # 1h window at 03:15 (hour H = 27, a quarter elapsed): 0.25 * p[3] + 0.75 * p[2].
    assert window_exposure(profile, 27, 1, 0.25) == pytest.approx(0.25 * 34 / 11 + 0.75 * 10 / 11)
    assert window_exposure(np.ones(24), 27, 24, 0.4) == pytest.approx(24.0)
    assert profile_hours(profile, np.arange(0, 48)) == pytest.approx(48.0)
    with pytest.raises(ValueError):
        hour_of_day_profile(totals, np.ones(24), 0.0)


def test_a_list_row_without_a_profile_reads_flat(aws):
    settings = load_settings()
    client = boto3.client("dynamodb")
    repo = DynamoTrendsRepository(DynamoTable(settings.trends_table, client), settings.trends_retention_days)
    # A row as written before the profile was kept: entries and version only.
    entry = TrendEntry("lamp", "camping", 2.0, {H - 1: 8.0})
    client.put_item(
        TableName=settings.trends_table,
        Item={
            "item_id": {"S": "#trending:1h"},
            "day": {"N": "0"},
            "entries": {"S": entries_to_json([entry])},
            "version": {"N": "3"},
        },
    )
    old = repo.get_many([], [], ["#trending:1h"])[1]["#trending:1h"]
    assert (old.entries, old.version, old.profile) == ([entry], 3, None)
    lamp = TrendsService(settings, repo).trending("1h", 5, now=NOW)[0][0]
    assert (lamp.expected, lamp.velocity) == (2.0, pytest.approx(13 / 7))  # r * 1 hour
    # Rewritten with a profile, it keeps it.
    profile = tuple(0.5 if h < 12 else 1.5 for h in range(24))
    repo.put_list("#trending:1h", TrendingList([entry], 3, profile))
    assert repo.get_many([], [], ["#trending:1h"])[1]["#trending:1h"].profile == profile
    lamp = TrendsService(settings, repo).trending("1h", 5, now=NOW)[0][0]
    assert lamp.expected == pytest.approx(3.0)  # 2 * profile[15]


def _first_seen_ingest() -> tuple[IngestService, InMemoryItemStatsRepository, InMemoryTrendsRepository]:
    stats, repo = InMemoryItemStatsRepository(), InMemoryTrendsRepository()
    ingest = IngestService(
        Settings(),
        InMemoryUserRepository(),
        InMemoryCooccurrenceRepository(),
        stats,
        InMemoryChangePublisher(),
        trends=repo,
    )
    return ingest, stats, repo


def test_first_seen_is_the_items_first_event_in_the_stream_and_is_kept():
    ingest, stats, repo = _first_seen_ingest()
    first = [_event(0, "lamp", "view", NOW - 500.5), _event(1, "lamp", "view", NOW - 900.25)]
    ingest.ingest(first, SHARD)
    assert stats.get_many(["lamp"])["lamp"].first_seen == int(NOW) - 501  # whole seconds, floored
    ingest.ingest(first, SHARD)  # re-delivered: nothing written
    # An older event arriving later (out of order) keeps the stored first_seen.
    ingest.ingest([_event(2, "lamp", "view", NOW - 86_400)], SHARD)
    assert stats.get_many(["lamp"])["lamp"].first_seen == int(NOW) - 501
    # ... and its count, before first_seen, still widens the item's observed span: the 1h
    # window's baseline is its 1 view over hours H - 24 .. H - 2.
    counts = repo.get_counts(["lamp"], [H // 24 - 1, H // 24])["lamp"].weighted
    assert baseline_rate(counts, H, 1, 7, NOW - 501) == pytest.approx(1 / 23)
    assert baseline_rate(counts, H, 1, 7, None) == pytest.approx(1 / 168)
    # A stats row written before first_seen was kept reads None: the whole span.
    stats.rows["old"] = {"n:view": 1.0}
    assert stats.get_many(["old"])["old"].first_seen is None


def test_first_seen_is_the_same_however_the_stream_is_cut_into_batches():
    # It was the earliest event of the first batch: the 2nd event's time alone, and the 1st's
    # when a batch held only it.
    events = [_event(0, "lamp", "view", NOW - 500), _event(1, "lamp", "view", NOW - 900)]
    found = []
    for batches in ([events], [events[:1], events[1:]]):
        ingest, stats, _ = _first_seen_ingest()
        for batch in batches:
            ingest.ingest(batch, SHARD)
        found.append(stats.get_many(["lamp"])["lamp"].first_seen)
    assert found == [int(NOW) - 500] * 2


def test_lists_merged_concurrently_equal_lists_merged_in_turn():
    events = [_event(n, f"i{n % 12}", "view", NOW - 7200 + n * 30, category=f"c{n % 5}") for n in range(200)]
    items = {f"i{n}": None for n in range(12)}
    lists = []
    for concurrency in (1, 4):
        service, repo = _service_with(events)
        service.concurrency = concurrency
        categories = {e.event.item_id: e.event.category for e in events}
        service.refresh({item: categories[item] for item in items}, NOW)
        lists.append({name: stored.entries for name, stored in repo.lists.items()})
    assert lists[0] == lists[1] and len(lists[0]) == 2 + 2 * 5


def test_score_keeps_ties_in_item_order():
    entries = [TrendEntry(x, None, 0.0, {H: 1.0}) for x in ("b", "a")]
    assert [i.item_id for i in score(entries, 1, NOW, 5.0)] == ["a", "b"]


def test_velocities_equal_as_answered_rank_by_count():
    # (2 + 5) / (1 + 5) and (3 + 5) / (13/7 + 5) are both 7/6, apart in their last bit.
    hour = 490_000
    fewer = TrendEntry("a-fewer", None, 1.0, {hour: 2.0})
    more = TrendEntry("b-more", None, 13 / 7, {hour: 3.0})
    ranked = score([fewer, more], 1, hour * 3600.0 + 3599.999, 5.0)
    assert ranked[0].velocity != ranked[1].velocity  # the float error this is about
    assert [(i.item_id, round(i.velocity, 4)) for i in ranked] == [("b-more", 1.1667), ("a-fewer", 1.1667)]


def test_an_event_stamped_ahead_of_the_clock_counts_once_its_hour_comes():
    # The ingest accepts events up to a day ahead (a producer's clock): counted in the
    # current hour, one stamped 20 hours ahead would count in every window until then.
    ahead = [_event(0, "lamp", "view", NOW + 20 * 3600 + 60), _event(1, "tent", "view", NOW - 60)]
    ahead += [_event(2, "stove", "purchase", NOW + 3600 + 60, quantity=3)]  # the next hour
    events = [SequencedEvent(sequence_key(97_000 + i), e.event) for i, e in enumerate(ahead)]
    service, _ = _service_with(events)
    service.refresh({"lamp": "camping", "tent": "camping", "stove": "camping"}, NOW)
    for hours in (0, 5, 19):
        counts = {i.item_id: i.count for i in service.trending("24h", 10, now=NOW + hours * 3600 + 30)[0]}
        assert "lamp" not in counts, hours
    assert "stove" not in {i.item_id for i in service.trending("1h", 10, now=NOW + 30)[0]}
    demand = service.demand("stove", NOW + 30)
    assert (demand.today, demand.last_24h) == (0.0, 0.0)  # not yet: its hour has not come
    later = service.demand("stove", NOW + 3600 + 90)
    assert (later.today, later.last_24h) == (3.0, 3.0)
    # Re-scored in its hour (the item's next event), it counts there.
    service.refresh({"lamp": "camping"}, NOW + 20 * 3600 + 120)
    assert {i.item_id: i.count for i in service.trending("1h", 10, now=NOW + 20 * 3600 + 120)[0]}[
        "lamp"
    ] == 1.0


def _stove_sales(settings: Settings) -> TrendsService:
    """2, 4 and 6 units on the last three whole days, 1 unit today, 5 views (not demand)."""
    today = H // 24
    events = []
    # 2, 4 and 6 units on the last three whole days, 1 unit today, 5 views (not demand).
    for days_ago, units in ((3, 2), (2, 4), (1, 6)):
        events.append(
            _event(len(events), "stove", "purchase", (today - days_ago) * 86_400 + 20 * 3600, quantity=units)
        )
    events.append(_event(len(events), "stove", "purchase", NOW - 60, quantity=1))
    events += [_event(len(events) + m, "stove", "view", NOW - 100 - m) for m in range(5)]
    events.sort(key=lambda e: e.event.timestamp)
    events = [SequencedEvent(sequence_key(95_000 + i), e.event) for i, e in enumerate(events)]
    service, _ = _service_with(events, settings)
    return service


def test_demand_daily_purchases_and_mean_forecast():
    demand = _stove_sales(Settings()).demand("stove", NOW)
    assert demand.known and len(demand.days) == 28
    assert [d["purchases"] for d in demand.days][-4:] == [0.0, 2.0, 4.0, 6.0]
    assert demand.today == 1.0 and demand.last_24h == 7.0
    assert demand.per_day_7d == pytest.approx(12 / 7) and demand.per_day == pytest.approx(12 / 28)
    # The mean of the 28 whole days (today's unit is not in it), flat.
    assert (demand.method, demand.level, demand.trend) == ("mean", pytest.approx(12 / 28), 0.0)
    assert demand.next_24h == pytest.approx(12 / 28) and demand.next_7d == pytest.approx(7 * 12 / 28)
    assert (demand.alpha, demand.beta) == (None, None)


def test_demand_daily_purchases_and_holt_forecast():
    settings = Settings(demand_method="holt", demand_days=14, demand_alpha=0.5, demand_beta=0.5)
    demand = _stove_sales(settings).demand("stove", NOW)
    assert demand.known and len(demand.days) == 14
    assert [d["purchases"] for d in demand.days][-3:] == [2.0, 4.0, 6.0]
    assert demand.today == 1.0
    # last 24 h (from 16:00 yesterday): yesterday's purchase at 20:00 and today's.
    assert demand.last_24h == 7.0 and demand.per_hour_24h == pytest.approx(7 / 24)
    assert demand.per_day_7d == pytest.approx(12 / 7)
    # Holt over 11 zero days then 2, 4, 6 (alpha = beta = .5), by the recurrences:
    level, trend = 0.0, 0.0
    for y in [0.0] * 11 + [2.0, 4.0, 6.0]:
        previous = level
        level = 0.5 * y + 0.5 * (level + trend)
        trend = 0.5 * (level - previous) + 0.5 * trend
    assert demand.level == pytest.approx(level) and demand.trend == pytest.approx(trend)
    assert demand.next_24h == pytest.approx(level + trend)
    assert demand.next_7d == pytest.approx(sum(max(0.0, level + h * trend) for h in range(1, 8)))
    assert (demand.method, demand.alpha, demand.beta) == ("holt", 0.5, 0.5)

    unknown = _stove_sales(settings).demand("never-seen", NOW)
    assert not unknown.known and unknown.next_7d == 0 and unknown.last_24h == 0
    assert all(d["purchases"] == 0 for d in unknown.days)
    assert math.isclose(unknown.per_day, 0.0)


# ---- round trips -------------------------------------------------------------------------


def test_trending_and_demand_take_one_round_trip(aws):
    settings = load_settings()
    import time

    # The middle of the last full hour, not the wall clock: the events (61-67 minutes before
    # it) then always fall in the hour before, inside the 1h window. With now = time.time(),
    # a run in the first seconds of an hour put them all two hours back, out of the window.
    now = (time.time() // 3600 - 1) * 3600 + 1800
    events = [
        _event(n, f"i{n % 4}", "purchase" if n % 3 == 0 else "view", now - 4000 + n * 10) for n in range(40)
    ]
    wiring.ingest_service(settings).ingest(events, SHARD)
    trends = wiring.trends_service(settings)
    trends.refresh({f"i{n}": "camping" for n in range(4)}, now)
    calls = CallLog()
    service = wiring.trends_service(settings)
    items, _ = service.trending("24h", 10, now=now)
    assert len(items) == 4
    assert calls.names() == ["BatchGetItem"]
    calls.clear()
    items, whole = service.trending("1h", 10, category="camping", now=now)
    assert items and whole is not None and whole.count > 0
    assert calls.names() == ["BatchGetItem"]  # the list and the category's counter rows
    calls.clear()
    assert service.demand("i0", now).known
    assert calls.names() == ["BatchGetItem"]


def test_bench_meters_trend_counters_and_list_upkeep():
    from streamrec.bench import runs

    events = [
        {
            "event_id": str(n),
            "event_type": "purchase" if n % 5 == 0 else "view",
            "user_id": f"u{n % 7}",
            "item_id": f"i{n % 9}",
            "timestamp": NOW - 3600 + n,
            "category": f"c{n % 3}",
        }
        for n in range(200)
    ]
    tables = runs.metered_tables()
    payloads = [json.dumps(event).encode() for event in events]
    runs._replay(tables, payloads, Settings(), 100, similarity=True)
    ingest = runs._units(tables, [runs.TRENDS], 200)[runs.TRENDS]
    upkeep = runs._units(tables, [runs.TRENDS], 200, phase="similarity")[runs.TRENDS]
    # One row per item (9), per category (3) and the shop's (#all) per batch: 2 batches, all
    # within one day.
    assert ingest["writes_per_event"] == pytest.approx(2 * 13 / 200)
    keys = [key for key, _ in tables.client.sizes[tables.names[runs.TRENDS]].items()]
    lists = [key for key in keys if str(key[0]).startswith("#trending")]
    assert len(keys) - len(lists) == 13 and ("#all", str(int(NOW) // 86_400)) in keys
    assert len(lists) == 2 + 2 * 3  # both windows: the global list and 3 category lists
    assert upkeep["rru_per_event"] > 0 and upkeep["writes_per_event"] > 0


@pytest.mark.parametrize(
    "fields",
    [
        {"trending_prior": 0.0},
        {"trending_baseline_days": 30},
        {"demand_days": 0},
        {"demand_days": 6},  # per_day_7d would be a mean over fewer days
        {"demand_days": 30},  # its oldest day's rows would be expiring
        {"demand_method": "croston"},
        {"demand_alpha": 1.5},
    ],
)
def test_bad_trend_settings_fail_at_cold_start(fields):
    from streamrec.settings import ConfigurationError

    with pytest.raises(ConfigurationError):
        Settings(**fields)


class RacedTrends(InMemoryTrendsRepository):
    """Another writer updates every list just after the first batch read of lists."""

    raced = False

    def get_many(self, keys, days, lists, consistent=False):
        counts, found = super().get_many(keys, days, lists, consistent)
        if lists and not self.raced:
            self.raced = True
            self._race(lists)
        return counts, found

    def _race(self, lists):
        for name in lists:
            current = self.get_list(name)
            other = TrendEntry("other-writer", None, 0.0, {H - 1: 1000.0})
            self.put_list(name, TrendingList([other, *current.entries], current.version))


def test_a_trending_list_changed_after_the_batch_read_is_read_again_not_overwritten():
    events = [_event(n, f"i{n % 3}", "view", NOW - 600 + n) for n in range(30)]
    repo = RacedTrends()
    _ingest(repo, events, Settings())
    TrendsService(Settings(), repo).refresh({"i0": None, "i1": None, "i2": None}, NOW)
    for name, stored in repo.lists.items():
        items = {entry.item_id for entry in stored.entries}
        assert {"other-writer", "i0", "i1", "i2"} <= items, name  # both writes kept


def _busy_shop_quiet_at_2_to_4(day: int, also: tuple[str, float] | None = None) -> InMemoryTrendsRepository:
    """Trend counters of a shop with 40,000 weighted events an hour but none at 02-04 UTC, over
    the 10 days to ``day``; ``also``: an item with that many events in the same hours."""
    repo = InMemoryTrendsRepository()
    for d in range(day - 9, day + 1):
        for hour_of_day in range(24):
            if hour_of_day not in (2, 3, 4):
                repo.rows[(SHOP_COUNTER, d)][counter_attribute("v", hour_of_day)] = 40_000.0
                if also is not None:
                    repo.rows[(also[0], d)][counter_attribute("v", hour_of_day)] = also[1]
    return repo


def test_a_busy_shops_quiet_hours_keep_a_positive_profile():
    # 40,000 weighted events an hour but none at 02-04 UTC: rounded to decimals, those hours'
    # profile was 0.0, and trending divided by it (refresh and the API both failed).
    day = 20_000
    repo = _busy_shop_quiet_at_2_to_4(day, also=("x", 10.0))
    repo.rows[("y", day)][counter_attribute("v", 3)] = 1.0
    now = day * 86_400 + 3.5 * 3600  # 03:30, a quiet hour
    profile = shop_profile(
        repo.get_counts([SHOP_COUNTER], list(range(day - 9, day + 1)))[SHOP_COUNTER].weighted,
        int(now // 3600),
        1,
        7,
    )
    assert min(profile) > 0 and profile[3] == pytest.approx(4.68e-5, rel=1e-3)
    service = TrendsService(Settings(), repo)
    service.refresh({"x": None, "y": None}, now=now, first_seen={"y": day * 86_400 + 3.2 * 3600})
    items, _ = service.trending("1h", 10, now=now + 1800)
    assert [item.item_id for item in items] == ["y"]  # an event in a quiet hour trends


def test_an_item_seen_only_in_a_quiet_hour_has_a_baseline_of_at_least_one_mean_hour():
    # A busy shop with nothing at 02-04 UTC: P[3] is about 5e-5. One view at 03:10 was a
    # baseline of 1 / P[3], some 21,000 views per mean hour, so its 3 views at 05:00 read as
    # nothing (velocity 0.0006).
    day = 20_000
    repo = _busy_shop_quiet_at_2_to_4(day)
    repo.rows[("z", day)][counter_attribute("v", 3)] = 1.0
    repo.rows[("z", day)][counter_attribute("v", 5)] = 3.0
    now = day * 86_400 + 5.5 * 3600
    service = TrendsService(Settings(), repo)
    service.refresh({"z": None}, now=now, first_seen={"z": day * 86_400 + 3 * 3600 + 600})
    [z], _ = service.trending("1h", 5, now=now)
    assert z.count == 3.0 and z.expected < 1.0 and z.velocity > 1.0


def test_a_refresh_behind_the_hour_keeps_entries_counted_after_its_clock():
    # Two similarity invocations around 16:00: B (clock 16:00:30) lists y, whose views (of 4
    # users, counted once each in the hour) are all after 16:00; A, whose clock read
    # 15:59:59.5 before it read the list B had just written, scored y as of its clock
    # (nothing in the window) and, the list being full (2 places, a and b), took it out.
    settings = Settings(trending_list_size=2)
    repo = InMemoryTrendsRepository()
    ingest = IngestService(
        settings,
        InMemoryUserRepository(),
        InMemoryCooccurrenceRepository(),
        InMemoryItemStatsRepository(),
        InMemoryChangePublisher(),
        trends=repo,
    )
    hour = 1_764_000_000.0  # 16:00:00 UTC
    earlier = [_event(0, "a", "view", hour - 600), _event(1, "b", "view", hour - 500)]
    ingest.ingest(earlier + [_event(n, "y", "view", hour + n) for n in range(2, 22)], SHARD)
    service = TrendsService(settings, repo)
    service.refresh({"y": None}, now=hour + 30)
    service.refresh({"a": None, "b": None}, now=hour - 0.5)
    assert repo.lists["#trending:1h"].as_of == hour + 30  # merged as of B's clock, the later
    items, _ = service.trending("1h", 10, now=hour + 32)
    assert [(item.item_id, item.count) for item in items][0] == ("y", 4.0)
    assert len(items) == 2


def test_a_stored_profile_with_a_zero_hour_reads_as_flat():
    # Rows written when profiles were rounded to decimals hold 0.0 for a busy shop's quiet
    # hours: a window of those hours divided by it (the API failed at those hours).
    rounded = [0.0 if hour in (2, 3, 4) else 1.1 for hour in range(24)]
    assert profile_from_json(json.dumps(rounded)) is None
    assert profile_from_json(json.dumps([0.5] * 12 + [1.5] * 12)) == (0.5,) * 12 + (1.5,) * 12
    with pytest.raises(ValueError, match="24 numbers, not 3"):
        profile_from_json("[1, 1, 1]")


def test_a_steady_category_of_a_shop_opened_three_days_ago_is_not_read_as_rising():
    # The category's baseline spread its 3 days of counts over the 7-day span, as if the
    # shop had been open and the category quiet before: every category read ~2x "rising".
    repo = InMemoryTrendsRepository()
    day = 20_000
    now = day * 86_400 + 10.5 * 3600
    current = int(now // 3600)
    for hour in range(current - 3 * 24, current + 1):
        for counter in (category_counter("C"), SHOP_COUNTER):
            # 2 an hour; the current hour half elapsed
            repo.rows[(counter, hour // 24)][counter_attribute("v", hour % 24)] = (
                1.0 if hour == current else 2.0
            )
    service = TrendsService(Settings(), repo)
    for window in ("1h", "24h"):
        _, whole = service.trending(window, 5, category="C", now=now)
        assert whole is not None and whole.velocity == pytest.approx(1.0, abs=0.05), window
    # An established shop (a count before the span, in the span's first day) keeps the
    # whole span: a category that was quiet for days before selling again reads as rising.
    span_start = current - 24 - 7 * 24
    assert span_start % 24 > 0  # the span's first day starts before it
    repo.rows[(SHOP_COUNTER, span_start // 24)][counter_attribute("v", 0)] = 1.0
    _, whole = service.trending("24h", 5, category="C", now=now)
    assert whole is not None and whole.velocity > 1.5


def test_a_category_without_its_own_list_takes_the_global_lists_profile():
    repo = InMemoryTrendsRepository()
    day = 20_000
    now = day * 86_400 + 10.5 * 3600
    current = int(now // 3600)
    for d in range(day - 9, day + 1):
        repo.rows[(category_counter("C"), d)][counter_attribute("v", 8)] = 3.0
    skewed = tuple(3.0 if hour_of_day == 9 else 0.5 for hour_of_day in range(24))
    repo.put_list("#trending:1h", TrendingList([], 0, skewed))
    service = TrendsService(Settings(), repo)
    _, whole = service.trending("1h", 5, category="C", now=now)
    counts = repo.get_counts([category_counter("C")], service._days(current))[category_counter("C")].weighted
    rate = baseline_rate(counts, current, 1, 7, None, skewed)
    assert whole is not None and rate > 0
    assert whole.expected == pytest.approx(rate * (0.5 * 3.0 + 0.5 * 0.5))  # half of 09:00, half of 10:00


def test_out_of_stock_items_take_no_in_stock_items_place_in_a_stored_list():
    # 80 camping items trend, the 40 hottest sold out: the category's list (50 places) kept
    # the 50 fastest, 40 of them out of stock, so an in-stock answer listed 10 at most.
    events = [
        _event(n, f"i{item:02d}", "view", NOW - 1800 + n % 60, user=f"s{n}")
        for item in range(80)
        for n in range(item * 100, item * 100 + 2 + (80 - item) // 8)
    ]
    stock = InMemorySimilarityRepository()
    sold_out = [f"i{item:02d}" for item in range(40)]
    stock.put_list(OUT_OF_STOCK_ROW, PopularList([(item, 0.0) for item in sold_out]))
    service, repo = _service_with(events)
    service.stock = stock
    service.refresh({f"i{item:02d}": "camping" for item in range(80)}, NOW)
    in_stock, _ = service.trending("1h", 50, "camping", NOW)
    assert [i.item_id for i in in_stock] == [f"i{item:02d}" for item in range(40, 80)]
    everything, _ = service.trending("1h", 50, "camping", NOW, in_stock_only=False)
    assert [i.item_id for i in everything] == [f"i{item:02d}" for item in range(50)]
    # The list holds its 50 in-stock items' places and the sold-out ones ranked among them
    # (here all 80); without a stock set it keeps its 50 places as before.
    assert len(repo.lists[trending_list("1h", "camping")].entries) == 80
    service.stock = None
    service.refresh({"i79": "camping"}, NOW)
    assert len(repo.lists[trending_list("1h", "camping")].entries) == 50
