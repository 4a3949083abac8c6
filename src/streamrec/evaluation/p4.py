"""P4 of ../shared/EVALUATION.md: coupon relevance on the Taobao head (a proxy).

Coupons exist for the 200 categories with the most ``buy`` events in the warm-up (ties by
total warm-up events, then category id). The warm-up is ingested by the production
IngestService on in-memory adapters, the coupons are defined through the production
CouponService, and at the warm-up's end every user with a warm-up event asks it for their
top 3, exactly as ``GET /users/{user_id}/coupons?k=3`` would. A coupon is relevant when the
user buys anything in its category during the test stream. precision@3 = hits / 3, averaged
over the users with at least one warm-up event and at least one test ``buy`` (the targets).
A method offering fewer than 3 coupons (the engine never offers out-of-scope ones) is not
padded: its missing slots count as misses.

Peers, on the same coupons and targets: ``most_bought`` (the 3 categories with the most
warm-up buys, for everyone) and ``most_viewed`` (the user's most-viewed coupon categories in
the warm-up; ties by the coupons' buy ranking).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from streamrec.domain.coupons import CouponService, CouponSpec
from streamrec.domain.ingest import IngestService, SequencedEvent
from streamrec.domain.model import sequence_key
from streamrec.evaluation.datasets import StreamData
from streamrec.events import parse_event
from streamrec.repositories.memory import (
    InMemoryChangePublisher,
    InMemoryCooccurrenceRepository,
    InMemoryCouponRepository,
    InMemoryItemStatsRepository,
    InMemoryUserRepository,
)
from streamrec.settings import Settings

COUPON_CATEGORIES = 200
K = 3
SHARD = "shardId-000000000000"
PURCHASE = "purchase"
VIEW = "view"


def _category_order(category: str) -> tuple[int, int | str]:
    return (0, int(category)) if category.isdigit() else (1, category)


def coupon_categories(data: StreamData, n: int = COUPON_CATEGORIES) -> list[str]:
    """The ``n`` categories with the most warm-up buys (ties: more warm-up events, then
    the smaller category id), best first."""
    warmup = data.events[: data.warmup]
    buys = Counter(e["category"] for e in warmup if e["event_type"] == PURCHASE)
    events = Counter(e["category"] for e in warmup)
    ranked = sorted(buys, key=lambda c: (-buys[c], -events[c], _category_order(c)))
    return ranked[:n]


def coupon_spec(category: str, warmup_end: float) -> CouponSpec:
    """The protocol's coupons are alike but for their category (10 % off, ample budget)."""
    return CouponSpec.model_validate(
        {
            "scope": {"category": category},
            "discount": {"kind": "percent", "value": 10},
            "valid_from": warmup_end - 365 * 86_400,
            "valid_to": warmup_end + 365 * 86_400,
            "budget": 1_000_000,
            "per_user_limit": 1,
        }
    )


def engine_rankings(
    data: StreamData, categories: Sequence[str], settings: Settings, batch: int = 1000
) -> dict[str, list[str]]:
    """Each warm-up user's top-3 coupon categories from the production services."""
    users = InMemoryUserRepository()
    coupons = InMemoryCouponRepository()
    ingest = IngestService(
        settings,
        users,
        InMemoryCooccurrenceRepository(),
        InMemoryItemStatsRepository(),
        InMemoryChangePublisher(),
        coupons,
    )
    sequence = 0
    warmup = data.events[: data.warmup]
    for start in range(0, len(warmup), batch):
        records = []
        for payload in warmup[start : start + batch]:
            sequence += 1
            records.append(SequencedEvent(sequence_key(sequence), parse_event(payload)))
        ingest.ingest(records, SHARD)
    service = CouponService(settings, users, coupons)
    coupon_of = {}
    for category in categories:
        coupon_id = f"p4-{category}"
        service.put(coupon_id, coupon_spec(category, data.warmup_end))
        coupon_of[coupon_id] = category
    ranked = {}
    for user in dict.fromkeys(e["user_id"] for e in warmup):
        offered = service.for_user(user, K, data.warmup_end)
        ranked[user] = [coupon_of[c.coupon_id] for c in offered]
    return ranked


def peer_rankings(data: StreamData, categories: Sequence[str]) -> dict[str, Callable[[str], list[str]]]:
    warmup = data.events[: data.warmup]
    position = {c: n for n, c in enumerate(categories)}
    views: dict[str, Counter[str]] = defaultdict(Counter)
    for e in warmup:
        if e["event_type"] == VIEW and e["category"] in position:
            views[e["user_id"]][e["category"]] += 1
    top = list(categories[:K])

    def most_viewed(user: str) -> list[str]:
        counts = views.get(user, Counter())
        return sorted(counts, key=lambda c: (-counts[c], position[c]))[:K]

    return {"most_bought": lambda _user: top, "most_viewed": most_viewed}


def bought_in_test(data: StreamData) -> dict[str, set[str]]:
    bought: dict[str, set[str]] = defaultdict(set)
    for e in data.events[data.warmup :]:
        if e["event_type"] == PURCHASE:
            bought[e["user_id"]].add(e["category"])
    return bought


def precision(
    ranking: Callable[[str], list[str]], targets: Sequence[str], bought: dict[str, set[str]]
) -> dict[str, float]:
    hits = sum(len(set(ranking(u)[:K]) & bought[u]) for u in targets)
    return {f"precision@{K}": hits / (K * len(targets)) if targets else 0.0, "hits": hits}


def run_p4(data: StreamData, settings: Settings | None = None) -> dict[str, Any]:
    """P4's result: ``{"engine": {"precision@3", "hits"}, "peers": {...}, "targets", ...}``."""
    settings = settings or Settings()
    categories = coupon_categories(data)
    bought = bought_in_test(data)
    warmup_users = {e["user_id"] for e in data.events[: data.warmup]}
    targets = sorted(u for u in bought if u in warmup_users)
    engine = engine_rankings(data, categories, settings)
    offered = [len(engine[u]) for u in targets]
    return {
        "engine": {
            **precision(lambda u: engine[u], targets, bought),
            "targets_offered_fewer_than_3": sum(n < K for n in offered),
        },
        "peers": {
            name: precision(rank, targets, bought) for name, rank in peer_rankings(data, categories).items()
        },
        "targets": len(targets),
        "users_ranked": len(engine),
        "coupons": len(categories),
        "settings": {
            "category_half_life_hours": settings.category_half_life_hours,
            "category_weights": dict(settings.category_weights),
            "categories_kept": settings.categories_kept,
            "coupon_value_weight": settings.coupon_value_weight,
        },
    }


__all__ = ["coupon_categories", "engine_rankings", "peer_rankings", "run_p4"]
