"""P4 of ../shared/EVALUATION.md: coupon relevance on the Taobao head (a proxy).

Coupons exist for the 200 categories with the most ``buy`` events in the warm-up (ties by
total warm-up events, then category id). The warm-up is ingested by the production
IngestService on in-memory adapters, the coupons are defined through the production
CouponService, and at the warm-up's end every user with a warm-up event asks it for their
top 3, exactly as ``GET /users/{user_id}/coupons?k=3`` would. A coupon is relevant when the
user buys anything in its category during the test stream. precision@3 = hits / 3, averaged
over the users with at least one warm-up event and at least one test ``buy`` (the targets).
A method offering fewer than 3 coupons (the engine with ``coupon_fill="none"``) is not
padded: its missing slots count as misses. The engine's default fills short lists from the
``#popular_categories`` list, built from the warm-up's purchases by the production
similarity code (``Replay.refresh_popular``).

Peers, on the same coupons and targets: ``most_bought`` (the 3 categories with the most
warm-up buys, for everyone) and ``most_viewed`` (the user's most-viewed coupon categories in
the warm-up; ties by the coupons' buy ranking). The engine is also reported ranked the other
way (``engine_by_affinity`` at the defaults): what the coupon model adds; and without the
fill (``engine_fill_none``): what the fill adds.

:func:`fit_coupon_model` (``streamrec eval p4 --fit``) fits the coupon model's weights on the
warm-up alone: P4 repeated at cut-offs inside it, each labelled by the next 2 days' buys.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from streamrec.domain.coupons import (
    COUPON_FEATURES,
    Coupon,
    CouponService,
    CouponSpec,
    most_bought_categories,
    popular_fill,
    rank_coupons,
    scope_features,
)
from streamrec.domain.ingest import IngestService, SequencedEvent
from streamrec.domain.model import UserState, sequence_key
from streamrec.domain.similarity import SimilarityService
from streamrec.evaluation.datasets import StreamData, stream_from_events
from streamrec.evaluation.metrics import compared_intervals
from streamrec.events import parse_event
from streamrec.repositories.memory import (
    InMemoryChangePublisher,
    InMemoryCooccurrenceRepository,
    InMemoryCouponRepository,
    InMemoryItemStatsRepository,
    InMemorySimilarityRepository,
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


class Replay:
    """The production ingest on in-memory adapters, fed a stream's events in order."""

    def __init__(self, data: StreamData, settings: Settings, batch: int = 1000) -> None:
        self.events = data.events
        self.settings = settings
        self.batch = batch
        self.users = InMemoryUserRepository()
        self.coupons = InMemoryCouponRepository()
        self.item_stats = InMemoryItemStatsRepository()
        self.changes = InMemoryChangePublisher()
        # The #popular_categories list that fills short coupon lists (refresh_popular).
        self.similarity = InMemorySimilarityRepository()
        self.ingest = IngestService(
            settings,
            self.users,
            InMemoryCooccurrenceRepository(),
            self.item_stats,
            self.changes,
            self.coupons,
        )
        self.applied = 0

    def advance(self, end: int) -> None:
        """Ingest the events up to index ``end`` (exclusive), in batches."""
        while self.applied < end:
            chunk = self.events[self.applied : min(end, self.applied + self.batch)]
            records = [
                SequencedEvent(sequence_key(self.applied + n + 1), parse_event(payload))
                for n, payload in enumerate(chunk)
            ]
            self.ingest.ingest(records, SHARD)
            self.applied += len(chunk)

    def refresh_popular(self) -> None:
        """What the similarity function does with the popularity announcements so far:
        merge them into the popular lists, ``#popular_categories`` among them."""
        announced, self.changes.popular_changed = self.changes.popular_changed, set()
        lists = SimilarityService(
            self.settings, InMemoryCooccurrenceRepository(), self.item_stats, self.similarity
        )
        lists.update_popular_lists(announced)


# The settings that only rank coupons: the ingest never reads them, so rankings that differ
# only in these can share one ingest of the warm-up.
RANKING_SETTINGS = ("coupon_ranking", "coupon_fill")


def engine_rankings(
    data: StreamData, categories: Sequence[str], variants: Sequence[Settings], batch: int = 1000
) -> list[dict[str, list[str]]]:
    """Each warm-up user's top-3 coupon categories from the production services, once for
    each of ``variants`` (in order). The warm-up is ingested once, with the first settings;
    the others may differ from it only in :data:`RANKING_SETTINGS` (a ValueError otherwise).
    """
    settings = variants[0]
    for variant in variants[1:]:
        if replace(variant, **{name: getattr(settings, name) for name in RANKING_SETTINGS}) != settings:
            raise ValueError(f"rankings sharing an ingest may differ only in {', '.join(RANKING_SETTINGS)}")
    replay = Replay(data, settings, batch)
    replay.advance(data.warmup)
    replay.refresh_popular()
    warmup = data.events[: data.warmup]
    coupon_of = {}
    definitions = CouponService(settings, replay.users, replay.coupons, similarity=replay.similarity)
    for category in categories:
        coupon_id = f"p4-{category}"
        definitions.put(coupon_id, coupon_spec(category, data.warmup_end), data.warmup_end)
        coupon_of[coupon_id] = category
    users = list(dict.fromkeys(e["user_id"] for e in warmup))
    rankings = []
    for variant in variants:
        service = CouponService(variant, replay.users, replay.coupons, similarity=replay.similarity)
        rankings.append(
            {
                user: [coupon_of[c.coupon_id] for c in service.for_user(user, K, data.warmup_end)]
                for user in users
            }
        )
    return rankings


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


def target_hits(
    ranking: Callable[[str], list[str]], targets: Sequence[str], bought: dict[str, set[str]]
) -> list[int]:
    """Each target's relevant coupons among its top K, in ``targets`` order."""
    return [len(set(ranking(u)[:K]) & bought[u]) for u in targets]


def precision(hits: Sequence[int]) -> dict[str, float]:
    """precision@K and the hits behind it, from each target's hits."""
    total = sum(hits)
    return {f"precision@{K}": total / (K * len(hits)) if hits else 0.0, "hits": total}


# ---- Fitting the coupon model (Settings.coupon_model) on the warm-up only -------------------

DAY = 86_400.0
# Cut-offs inside the warm-up (its end minus these many days); each is labelled by the buys
# of the next FIT_HORIZON_SECONDS, as long as P4's test stream, so no label reaches past
# the warm-up.
FIT_CUTOFF_DAYS = (5, 4, 3, 2)
FIT_HORIZON_SECONDS = 2 * DAY
# Ridge penalty on the standardised weights (the intercept is not penalised): the middle of
# the plateau of leave-one-cut-off-out hits (l2 0.1-3: 184-186 hits, 10: 181, 100: 178).
FIT_L2 = 1.0


@dataclass
class Cutoff:
    """One fitting cut-off: the targets' user rows then, the coupons, and what they bought next."""

    time: float
    states: dict[str, UserState]
    coupons: list[Coupon]
    bought: dict[str, set[str]]
    # Rank of each category of #popular_categories then (0 = most bought): the fill's order.
    popular: dict[str, int]


def fit_cutoffs(data: StreamData, settings: Settings) -> list[Cutoff]:
    """Replay the warm-up once through the production ingest, stopping at each cut-off to
    define P4's coupons as of then (the 200 most-bought categories before it) and to keep
    the rows of its targets (a buy within the horizon after it, an event before it)."""
    replay = Replay(data, settings)
    cutoffs = []
    for days in FIT_CUTOFF_DAYS:
        time = data.warmup_end - days * DAY
        end = int(np.searchsorted(data.timestamps, time + FIT_HORIZON_SECONDS, side="left"))
        window = stream_from_events(data.events[:end], time)
        replay.advance(window.warmup)
        replay.refresh_popular()
        popular = {category: rank for rank, category in enumerate(most_bought_categories(replay.similarity))}
        bought = bought_in_test(window)
        before = {e["user_id"] for e in window.events[: window.warmup]}
        states = {}
        for user in sorted(u for u in bought if u in before):
            state = replay.users.get(user)
            if state is not None:
                states[user] = state.copy()
        coupons = []
        for category in coupon_categories(window):
            spec = coupon_spec(category, time)
            coupons.append(Coupon(f"p4-{category}", spec, remaining=spec.budget))
        cutoffs.append(Cutoff(time, states, coupons, bought, popular))
    return cutoffs


def examples(cutoff: Cutoff, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """The in-scope (user, coupon) pairs of a cut-off: features (n, f) and labels (n,), 1
    when the user bought in the coupon's category within the horizon."""
    rows, labels = [], []
    for user, state in cutoff.states.items():
        affinity, features = scope_features(cutoff.coupons, state, cutoff.time, settings)
        for index in np.flatnonzero(affinity > 0):
            rows.append(features[index])
            category = cutoff.coupons[index].spec.scope.category
            labels.append(1.0 if category in cutoff.bought[user] else 0.0)
    return np.array(rows).reshape(len(rows), len(COUPON_FEATURES)), np.array(labels)


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = FIT_L2) -> np.ndarray:
    """Ridge logistic regression by Newton's method on standardised features.

    Args:
        features: shape (n, f); labels: shape (n,) in {0, 1}.

    Returns:
        shape (f + 1,) weights on the original scale, the intercept first.
    """
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale == 0] = 1.0
    design = np.hstack([np.ones((len(features), 1)), (features - mean) / scale])
    penalty = np.diag([0.0] + [l2] * features.shape[1])
    weights = np.zeros(design.shape[1])
    for _ in range(100):
        probability = np.exp(-np.logaddexp(0.0, -(design @ weights)))
        gradient = design.T @ (probability - labels) + penalty @ weights
        hessian = (design * (probability * (1 - probability))[:, None]).T @ design + penalty
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-10:
            break
    slopes = weights[1:] / scale
    return np.concatenate([[weights[0] - slopes @ mean], slopes])


def cutoff_precision(cutoff: Cutoff, settings: Settings, fill: bool = False) -> dict[str, float]:
    """precision@3 at a cut-off, ranked by the production ``rank_coupons``; with ``fill``,
    short lists are filled by the production ``popular_fill`` as ``CouponService`` does."""
    hits = 0
    for user, state in cutoff.states.items():
        offered = rank_coupons(cutoff.coupons, state, cutoff.time, K, settings)
        if fill and len(offered) < K:
            taken = {c.coupon_id for c in offered}
            rest = [c for c in cutoff.coupons if c.coupon_id not in taken]
            offered += popular_fill(
                rest, state, cutoff.time, K - len(offered), cutoff.popular, settings.coupon_reference_spend
            )
        hits += sum(1 for c in offered if c.scope["category"] in cutoff.bought[user])
    targets = len(cutoff.states)
    return {f"precision@{K}": hits / (K * targets) if targets else 0.0, "hits": hits}


def fit_coupon_model(
    data: StreamData, settings: Settings | None = None, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Fit Settings.coupon_model on the warm-up's cut-offs and report, for each cut-off, the
    precision@3 of the model fitted on the other cut-offs against the affinity ranking, and
    of the same model with short lists filled from the most-bought categories."""
    settings = settings or Settings()
    say = progress or (lambda _message: None)
    say(f"replaying the warm-up to {len(FIT_CUTOFF_DAYS)} cut-offs")
    cutoffs = fit_cutoffs(data, settings)
    sets = [examples(cutoff, settings) for cutoff in cutoffs]
    by_affinity = replace(settings, coupon_ranking="affinity")
    report: list[dict[str, Any]] = []
    for held_out, cutoff in enumerate(cutoffs):
        say(f"cut-off {held_out + 1}/{len(cutoffs)}: fitting on the others")
        others = [sets[n] for n in range(len(cutoffs)) if n != held_out]
        weights = fit_logistic(np.vstack([x for x, _ in others]), np.concatenate([y for _, y in others]))
        model = replace(settings, coupon_ranking="model", coupon_model=tuple(weights))
        report.append(
            {
                "cutoff": cutoff.time,
                "days_before_warmup_end": (data.warmup_end - cutoff.time) / DAY,
                "targets": len(cutoff.states),
                "examples": len(sets[held_out][1]),
                "positives": int(sets[held_out][1].sum()),
                "model": cutoff_precision(cutoff, model),
                "model_fill": cutoff_precision(cutoff, model, fill=True),
                "affinity": cutoff_precision(cutoff, by_affinity),
            }
        )
    weights = fit_logistic(np.vstack([x for x, _ in sets]), np.concatenate([y for _, y in sets]))
    rounded = [round(float(w), 4) for w in weights]
    return {
        "cutoffs": report,
        "hits": {name: sum(r[name]["hits"] for r in report) for name in ("model", "model_fill", "affinity")},
        "features": ["intercept", *COUPON_FEATURES],
        "weights": rounded,
        # Ready for the COUPON_MODEL variable (template parameter CouponModel).
        "COUPON_MODEL": ",".join(str(w) for w in rounded),
        "l2": FIT_L2,
        "horizon_days": FIT_HORIZON_SECONDS / DAY,
    }


def run_p4(data: StreamData, settings: Settings | None = None) -> dict[str, Any]:
    """P4's result: ``{"engine": {"precision@3", "hits"}, "peers": {...}, "targets", ...}``."""
    settings = settings or Settings()
    categories = coupon_categories(data)
    bought = bought_in_test(data)
    warmup_users = {e["user_id"] for e in data.events[: data.warmup]}
    targets = sorted(u for u in bought if u in warmup_users)
    # The same engine ranking by decayed affinity alone (coupon_ranking="affinity"): what the
    # coupon model adds; and without filling short lists from the most-bought categories
    # (coupon_fill="none"): what the fill adds. One ingest of the warm-up serves all three.
    other = "affinity" if settings.coupon_ranking == "model" else "model"
    fill = "none" if settings.coupon_fill == "popular" else "popular"
    engine, ablation, filled = engine_rankings(
        data,
        categories,
        [settings, replace(settings, coupon_ranking=other), replace(settings, coupon_fill=fill)],
    )
    offered = [len(engine[u]) for u in targets]
    peers = peer_rankings(data, categories)
    rankings = {
        "engine": engine.__getitem__,
        f"engine_by_{other}": ablation.__getitem__,
        f"engine_fill_{fill}": filled.__getitem__,
        **peers,
    }
    hits = {name: target_hits(rank, targets, bought) for name, rank in rankings.items()}
    # Each target's precision@3 (hits / 3) for the bootstrap over users.
    per_target = {name: {f"precision@{K}": np.array(h) / K} for name, h in hits.items()}
    return {
        "engine": {
            **precision(hits["engine"]),
            "targets_offered_fewer_than_3": sum(n < K for n in offered),
        },
        f"engine_by_{other}": precision(hits[f"engine_by_{other}"]),
        f"engine_fill_{fill}": {
            **precision(hits[f"engine_fill_{fill}"]),
            "targets_offered_fewer_than_3": sum(len(filled[u]) < K for u in targets),
        },
        "peers": {name: precision(hits[name]) for name in peers},
        # 95% bootstrap intervals over target users (1,000 resamples, fixed seed), paired:
        # "differences" are the engine's lead over each other method.
        **compared_intervals(per_target, targets),
        "targets": len(targets),
        "users_ranked": len(engine),
        "coupons": len(categories),
        "settings": {
            "category_half_life_hours": settings.category_half_life_hours,
            "category_weights": dict(settings.category_weights),
            "categories_kept": settings.categories_kept,
            "coupon_value_weight": settings.coupon_value_weight,
            "coupon_ranking": settings.coupon_ranking,
            "coupon_model": list(settings.coupon_model),
            "coupon_fill": settings.coupon_fill,
        },
    }


__all__ = ["coupon_categories", "engine_rankings", "fit_coupon_model", "peer_rankings", "run_p4"]
