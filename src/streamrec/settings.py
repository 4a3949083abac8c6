"""Configuration, read in one place from environment variables set by template.yaml.

Handlers call :func:`load_settings` at cold start. The API's cache reads its own two
variables and the function's memory size (``repositories/cache.py``); no other production
code reads ``os.environ``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from streamrec_core import ADDED_VALUE, JACCARD, SIMILARITY_MEASURES

EVENT_TYPES = ("view", "add_to_cart", "remove_from_cart", "purchase")
# Chosen on P1/P2 (see README "Quality"); dyadic weights keep count sums exact in floats.
DEFAULT_EVENT_WEIGHTS = {"view": 1.0, "add_to_cart": 1.5, "remove_from_cart": 0.0, "purchase": 2.0}
MAX_EVENT_WEIGHT = 1000
# Weights of the user's decayed category affinity (coupon ranking), chosen on P4.
DEFAULT_CATEGORY_WEIGHTS = {"view": 1.0, "add_to_cart": 2.0, "remove_from_cart": 0.0, "purchase": 4.0}


# The coupon model's weights (intercept first): `streamrec eval p4 --fit` fitted them on the
# Taobao warm-up only (buys in the 2 days after each of 4 earlier cut-offs); see docs/coupons.md.
DEFAULT_COUPON_MODEL = (
    -4.4585,  # intercept
    0.705,  # log1p affinity
    -0.6557,  # log1p decayed views
    0.6092,  # log1p decayed cart adds
    -2.9278,  # log1p decayed purchases (just bought there: less likely to buy again soon)
    0.115,  # log1p views ever
    0.8737,  # log1p cart adds ever
    1.1046,  # log1p purchases ever (a category bought from before is bought from again)
    1.3512,  # recency
    2.1506,  # share
    -0.7728,  # log1p items in cart
)
COUPON_RANKINGS = ("model", "affinity")
COUPON_FILLS = ("popular", "none")
DEMAND_METHODS = ("mean", "holt")
COUPON_MODEL_SIZE = 11

CROSS_SELL_AGGREGATES = ("sum", "max")


class ConfigurationError(ValueError):
    """A setting is missing or invalid; raised at cold start, never per request."""


@dataclass(frozen=True)
class Settings:
    """Everything the domain code is configurable by. Defaults match template.yaml."""

    users_table: str = ""
    cooccurrence_table: str = ""
    item_stats_table: str = ""
    similarity_table: str = ""
    changed_items_stream: str = ""
    dead_letter_queue_url: str = ""
    coupons_table: str = ""
    trends_table: str = ""
    # Catalog records (item_upsert) and their token postings; "" = no catalog features.
    catalog_table: str = ""
    similarity_measure: str = JACCARD
    neighbours_per_item: int = 50
    half_life_hours: float = 24.0
    history_length: int = 10
    event_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    # Co-occurrence rows of one item are packed into this many blocks (by neighbour hash).
    cooccurrence_blocks: int = 16
    # A count row (block) whose counts a write finds over this many KB loses its weakest
    # counts down to 3/4 of it (its key and replay guards come on top): every write of a row
    # bills 1 unit per started KB of it, so a hot item's rows would otherwise cost up to 400
    # units a write. 0: no budget (DynamoDB's 400 KB limit); else 4 to 399.
    count_row_budget_kb: int = 16
    # When an item's own count changes, the rows of at most this many of its strongest
    # co-occurring items are recomputed too (their normalisation changed).
    propagation_limit: int = 200
    popular_list_size: int = 100
    category_list_size: int = 50
    # Blend of the personalized score: (1 - category_blend) * item-to-item part +
    # category_blend * popular-in-the-user's-categories part (each scaled to max 1).
    category_blend: float = 0.5
    categories_per_request: int = 3
    # Similarity of a recent item to itself, so that it can come back (repeat interest);
    # 0 leaves the user's own items to their neighbours' rows.
    self_similarity: float = 2.0
    # A recent item's affinity is also multiplied by (1 / (1 + its rank from the newest))
    # to this power: 0 turns position weighting off.
    position_decay: float = 0.0
    popularity_half_life_hours: float = 24.0
    # Two-hop neighbours: from the rows of an item's strongest ``two_hop_sources``
    # neighbours, keep ``two_hop_size`` items, scored sum_l S_il * S_lj * two_hop_weight.
    two_hop_sources: int = 20
    two_hop_size: int = 50
    two_hop_weight: float = 0.5
    # The items bought last that a user row keeps; also how many items its cart keeps.
    purchased_kept: int = 500
    recent_event_ids_kept: int = 100
    # The coupons a user row counts redemptions of: the ones redeemed last. A coupon pushed
    # out by this many others redeemed since can be offered again up to its per_user_limit;
    # without a bound, a user redeeming thousands of coupons over the years would take the
    # row past DynamoDB's 400 KB.
    redemptions_kept: int = 300
    # Trending counts a user's events on one item within one clock hour as the strongest of
    # them; the user row remembers the (item, hour) pairs touched last, at most this many
    # (one touching more can count an item's hour again, once per this many).
    trend_items_kept: int = 20
    # The items whose last purchase or removal time the user row keeps (UserState.cart_left):
    # an add to the cart older than it, arriving after it, is not applied to the cart.
    cart_left_kept: int = 50
    # Coupons (P4): the user row keeps its engagement with each category (at most
    # ``categories_kept``, the weakest evicted), decayed with this half-life and weighted by
    # these weights. A coupon's relevance is the coupon model's probability that the user buys
    # in its scope soon ("model"; weights: intercept, then one per COUPON_FEATURES of
    # domain/coupons.py) or the decayed affinity ("affinity"); its score is relevance / max
    # relevance * (1 + coupon_value_weight * its relative value).
    category_half_life_hours: float = 24.0
    category_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_CATEGORY_WEIGHTS))
    categories_kept: int = 20
    coupon_value_weight: float = 1.0
    # The shop's typical order value, in its currency: a coupon's relative value is the share
    # of such an order it saves (an amount coupon's amount / max(amount, min spend, this); a
    # percent coupon's percentage, scaled down when its minimum spend is above this). 0: the
    # minimum spend alone (an amount coupon with none then counts as 100 % off).
    coupon_reference_spend: float = 50.0
    coupon_ranking: str = "model"
    coupon_model: tuple[float, ...] = DEFAULT_COUPON_MODEL
    # A list left shorter than k by the user's own scopes is filled ("popular") with the
    # eligible coupons of the shop's most-bought categories (forward-decayed purchases, the
    # ``popular_category_list_size`` best kept in one list); "none" leaves it short.
    coupon_fill: str = "popular"
    popular_category_list_size: int = 100
    # With a JWT authorizer: the claim naming the shopper a token was issued to ("" = no
    # check). A token without ``jwt_admin_scope`` may then read only that user's lists.
    jwt_user_claim: str = ""
    jwt_admin_scope: str = "streamrec/admin"
    # Cross-sell ("frequently bought together"), from basket co-occurrence: add_to_cart and
    # purchase events sharing a basket_id, or else a user's such events at most
    # ``basket_gap_hours`` apart. A basket counts at most ``basket_items_kept`` items.
    basket_gap_hours: float = 24.0
    basket_items_kept: int = 50
    # A cart not checked out keeps its basket open past the gap while its latest event is at
    # most this old: a cart abandoned for weeks would pair its items with whatever the user
    # carts next.
    basket_open_cart_days: float = 7.0
    # An event more than this before the newest of its user's recent items is late (a
    # backfill or a re-drive behind live events): it counts where it carries its own time
    # (counts, popularity, trends, category engagement, purchases) but not in the state kept
    # in arrival order (the recent items, cart and basket, so no co-occurrence). Twice the
    # clock skew the parser allows, so an event stamped a day ahead makes no real one late;
    # 0 (LATE_EVENT_HOURS=off or 0): no event is late, everything applies in arrival order.
    late_event_hours: float = 48.0
    # A user row expires this many days after it was last written (DynamoDB TTL on
    # UsersTable's expires_at; read as no row once past it): 0 keeps rows for good.
    user_retention_days: int = 0
    # Each item's complements row: the ``complements_per_item`` best partners with at least
    # ``cross_sell_min_support`` shared baskets, by ``cross_sell_measure``. The default,
    # added_value: P(j | i) - cross_sell_popularity_penalty * P(j) (basket probabilities),
    # discounts popular partners: an item in every basket scores 0, and a partner is kept
    # only when its lift exceeds the penalty. The penalty, max over the cart, support 2 and
    # history weight 0.3 were chosen on P3-style validation splits (docs/cross-sell.md);
    # confidence, lift, llr summed and cosine did worse there.
    cross_sell_measure: str = ADDED_VALUE
    cross_sell_popularity_penalty: float = 2.0
    complements_per_item: int = 50
    cross_sell_min_support: int = 2
    # How a candidate's scores from several cart items combine: "sum" or "max"; with "max",
    # plus cross_sell_sum_weight times the sum (agreement between cart items breaks ties).
    cross_sell_aggregate: str = "max"
    cross_sell_sum_weight: float = 0.0
    # With a known user, items they bought before (not in the cart) are candidates too:
    # score = basket part (scaled to a maximum of 1) + cross_sell_history_weight / (1 + the
    # item's rank among the user's purchases, newest first) ** cross_sell_history_decay.
    cross_sell_history_weight: float = 0.3
    cross_sell_history_decay: float = 0.0
    # Trends (domain/trends.py): hourly counter rows expire this many days after their day
    # ends; velocity = (count + trending_prior) / (expected + trending_prior), expected from
    # the item's rate over the trending_baseline_days days before the window.
    trends_retention_days: int = 30
    trending_baseline_days: int = 7
    trending_prior: float = 5.0
    trending_list_size: int = 100
    trending_category_list_size: int = 50
    # Demand: units bought per day over demand_days (>= 7) whole days, forecast by their
    # mean ("mean") or by Holt's linear smoothing ("holt": level demand_alpha, trend
    # demand_beta). The mean of 28 days forecast best on `streamrec eval demand`.
    demand_days: int = 28
    demand_method: str = "mean"
    demand_alpha: float = 0.3
    demand_beta: float = 0.1
    # Content similarity (TF-IDF over title, category, tags; domain/catalog.py). Each item
    # keeps its ``content_per_item`` closest items scoring at least ``content_min_similarity``,
    # chosen among the ``content_candidates`` items sharing the most (idf-weighted) tokens
    # with it, and is merged into the lists of its ``content_merge_limit`` closest items. A
    # token held by ``posting_limit`` items is too common to find candidates by.
    content_per_item: int = 20
    content_candidates: int = 200
    content_merge_limit: int = 20
    content_min_similarity: float = 0.05
    posting_limit: int = 1000
    # Blending (domain/recommend.py): an item whose support (c_ii: each user's strongest
    # event weight on it, summed) is below ``cold_item_weight`` is cold, and its content
    # neighbours weigh more, up to all of the score at 0; ``content_weight`` is their weight
    # for a warm item, and ``content_slots`` the share of a similar-items list kept for items
    # known only by content (at least 1, never all of it). ``cold_popular_share`` times the
    # coldness is the share of a cold item's similar-items list (with content neighbours)
    # given to items popular in its category. Chosen on the content protocol's validation
    # split (docs/catalog.md).
    cold_item_weight: float = 80.0
    content_weight: float = 0.15
    content_slots: float = 0.1
    # The share of a similar-items list kept for items known only by behaviour (at least 1,
    # never all of it, after the content-only ones): a warming item's partners, which its
    # look-alikes outscore while its content weight is high. 0 (off): on the content
    # protocol's validation split 0.1 cost warming items 3 % (0.0871 against 0.0899).
    behaviour_slots: float = 0.0
    cold_popular_share: float = 0.5

    def __post_init__(self) -> None:
        # NaN passes every "out of range" test below (all comparisons are false) and inf
        # overflows the decays, so a non-finite number is refused first, whatever its range.
        for name, value in vars(self).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigurationError(f"{name.upper()}={value}; expected a finite number")
        if any(not math.isfinite(weight) for weight in self.event_weights.values()):
            raise ConfigurationError("EVENT_WEIGHTS must be finite numbers")
        if self.similarity_measure not in SIMILARITY_MEASURES:
            raise ConfigurationError(
                f"SIMILARITY_MEASURE={self.similarity_measure!r}; expected one of {SIMILARITY_MEASURES}"
            )
        if not 1 <= self.history_length <= 96:
            raise ConfigurationError(f"HISTORY_LENGTH={self.history_length}; expected 1..96")
        if not 0.0 <= self.category_blend <= 1.0:
            raise ConfigurationError(f"CATEGORY_BLEND={self.category_blend}; expected 0..1")
        if self.cart_left_kept < 0:
            raise ConfigurationError(f"cart_left_kept={self.cart_left_kept}; expected at least 0")
        if self.trend_items_kept < 1:
            raise ConfigurationError(f"trend_items_kept={self.trend_items_kept}; expected at least 1")
        if self.count_row_budget_kb != 0 and not 4 <= self.count_row_budget_kb <= 399:
            # Below 4 KB a row would be trimmed at almost every write; at 400 no write can
            # bill more (an item is at most 400 KB).
            raise ConfigurationError(
                f"COUNT_ROW_BUDGET_KB={self.count_row_budget_kb}; expected 0 (no budget) or 4..399"
            )
        if not 1 <= self.neighbours_per_item <= 500:
            raise ConfigurationError(f"NEIGHBOURS_PER_ITEM={self.neighbours_per_item}; expected 1..500")
        if self.half_life_hours <= 0:
            raise ConfigurationError(f"HALF_LIFE_HOURS={self.half_life_hours}; expected > 0")
        # Set in code only; a half-life of 0 divides by zero in every decay, a negative one
        # makes old events count more than new ones.
        for name in ("popularity_half_life_hours", "category_half_life_hours"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name}={getattr(self, name)}; expected > 0")
        if set(self.event_weights) != set(EVENT_TYPES):
            raise ConfigurationError(f"EVENT_WEIGHTS must give a weight to each of {EVENT_TYPES}")
        if any(weight < 0 for weight in self.event_weights.values()):
            raise ConfigurationError("EVENT_WEIGHTS must not be negative")
        if any(weight > MAX_EVENT_WEIGHT for weight in self.event_weights.values()):
            # Counts sum weights, and products of counts are taken: far below DynamoDB's
            # largest number (about 1e125) and a float's (1e308) for any shop's volume.
            raise ConfigurationError(f"EVENT_WEIGHTS must be at most {MAX_EVENT_WEIGHT:,}")
        if self.cross_sell_measure not in SIMILARITY_MEASURES:
            raise ConfigurationError(
                f"CROSS_SELL_MEASURE={self.cross_sell_measure!r}; expected one of {SIMILARITY_MEASURES}"
            )
        if self.cross_sell_popularity_penalty < 0:
            raise ConfigurationError(
                f"CROSS_SELL_POPULARITY_PENALTY={self.cross_sell_popularity_penalty}; expected >= 0"
            )
        if self.cross_sell_aggregate not in CROSS_SELL_AGGREGATES:
            raise ConfigurationError(
                f"CROSS_SELL_AGGREGATE={self.cross_sell_aggregate!r}; expected one of {CROSS_SELL_AGGREGATES}"
            )
        if not 1 <= self.trending_baseline_days < self.trends_retention_days:
            raise ConfigurationError(
                f"TRENDING_BASELINE_DAYS={self.trending_baseline_days}; expected 1..TRENDS_RETENTION_DAYS-1"
            )
        # At least 7: demand reports per_day_7d, the mean over the last 7 of these days.
        if not 7 <= self.demand_days < self.trends_retention_days:
            raise ConfigurationError(f"DEMAND_DAYS={self.demand_days}; expected 7..TRENDS_RETENTION_DAYS-1")
        if self.trending_prior <= 0:
            raise ConfigurationError(f"TRENDING_PRIOR={self.trending_prior}; expected > 0")
        if self.demand_method not in DEMAND_METHODS:
            raise ConfigurationError(
                f"DEMAND_METHOD={self.demand_method!r}; expected one of {DEMAND_METHODS}"
            )
        if not (0 < self.demand_alpha <= 1 and 0 < self.demand_beta <= 1):
            raise ConfigurationError("DEMAND_ALPHA and DEMAND_BETA must be in (0, 1]")
        if not 0.0 <= self.content_weight <= 1.0 or not 0.0 <= self.content_slots <= 1.0:
            raise ConfigurationError(
                f"CONTENT_WEIGHT={self.content_weight}, CONTENT_SLOTS={self.content_slots}; "
                "each must be in 0..1"
            )
        if not 0.0 <= self.behaviour_slots <= 1.0:
            raise ConfigurationError(f"BEHAVIOUR_SLOTS={self.behaviour_slots}; expected 0..1")
        if not 0.0 <= self.cold_popular_share <= 1.0:
            raise ConfigurationError(f"COLD_POPULAR_SHARE={self.cold_popular_share}; expected 0..1")
        if not 0 <= self.user_retention_days <= 3650:
            raise ConfigurationError(
                f"USER_RETENTION_DAYS={self.user_retention_days}; expected 0 (keep) to 3650"
            )
        if self.late_event_hours != 0 and not self.late_event_hours >= 24:
            raise ConfigurationError(
                f"LATE_EVENT_HOURS={self.late_event_hours}; expected at least 24 (the clock skew the "
                "parser accepts), or 0 or off (no event is late)"
            )
        if not self.cold_item_weight > 0:
            raise ConfigurationError(f"COLD_ITEM_WEIGHT={self.cold_item_weight}; expected > 0")
        if self.content_per_item < 1 or self.posting_limit < 2:
            raise ConfigurationError("expected content_per_item >= 1, posting_limit >= 2")
        if not 1 <= self.basket_items_kept <= 200:
            raise ConfigurationError(f"BASKET_ITEMS_KEPT={self.basket_items_kept}; expected 1..200")
        if self.coupon_ranking not in COUPON_RANKINGS:
            raise ConfigurationError(
                f"COUPON_RANKING={self.coupon_ranking!r}; expected one of {COUPON_RANKINGS}"
            )
        if not 1 <= self.popular_category_list_size <= 1000:
            raise ConfigurationError(
                f"popular_category_list_size={self.popular_category_list_size}; expected 1..1000"
            )
        if not 0 <= self.coupon_reference_spend <= 1e9:
            raise ConfigurationError(
                f"COUPON_REFERENCE_SPEND={self.coupon_reference_spend}; expected 0 to 1e9 (the shop's "
                "typical order value, in its currency)"
            )
        if self.coupon_fill not in COUPON_FILLS:
            raise ConfigurationError(f"COUPON_FILL={self.coupon_fill!r}; expected one of {COUPON_FILLS}")
        if not all(math.isfinite(weight) for weight in self.coupon_model):
            raise ConfigurationError("COUPON_MODEL weights must be finite numbers")
        if len(self.coupon_model) != COUPON_MODEL_SIZE:
            raise ConfigurationError(
                f"COUPON_MODEL has {len(self.coupon_model)} weights; expected {COUPON_MODEL_SIZE}"
                " (the intercept, then one per coupon feature)"
            )

    @property
    def half_life_seconds(self) -> float:
        return self.half_life_hours * 3600.0

    @property
    def count_row_budget_bytes(self) -> int | None:
        """count_row_budget_kb in bytes; None when there is no budget (0)."""
        return self.count_row_budget_kb * 1024 or None

    @property
    def category_half_life_seconds(self) -> float:
        return self.category_half_life_hours * 3600.0

    @property
    def popularity_half_life_seconds(self) -> float:
        return self.popularity_half_life_hours * 3600.0

    @property
    def basket_gap_seconds(self) -> float:
        return self.basket_gap_hours * 3600.0

    @property
    def basket_open_cart_seconds(self) -> float:
        return self.basket_open_cart_days * 86_400.0

    @property
    def late_event_seconds(self) -> float:
        return self.late_event_hours * 3600.0


def parse_event_weights(text: str) -> dict[str, float]:
    """Parse ``"view=1,add_to_cart=2,remove_from_cart=0,purchase=4"``."""
    weights = dict(DEFAULT_EVENT_WEIGHTS)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in EVENT_TYPES:
            raise ConfigurationError(f"EVENT_WEIGHTS entry {part!r}; expected <event_type>=<number>")
        try:
            weights[name.strip()] = float(value)
        except ValueError as error:
            raise ConfigurationError(f"EVENT_WEIGHTS entry {part!r} is not a number") from error
    return weights


def parse_coupon_model(text: str) -> tuple[float, ...]:
    """Parse ``"-3.1,0.4,..."`` (the intercept, then one weight per coupon feature)."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError as error:
        raise ConfigurationError(f"COUPON_MODEL={text!r}; expected comma-separated numbers") from error


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from the environment (or the given mapping)."""
    env = os.environ if environ is None else environ

    def number(name: str, default: float, kind: type = float) -> float:
        raw = env.get(name)
        if raw in (None, ""):
            return default
        try:
            return kind(raw)
        except ValueError as error:
            raise ConfigurationError(f"{name}={raw!r} is not a valid {kind.__name__}") from error

    return Settings(
        users_table=env.get("USERS_TABLE", ""),
        cooccurrence_table=env.get("COOCCURRENCE_TABLE", ""),
        item_stats_table=env.get("ITEM_STATS_TABLE", ""),
        similarity_table=env.get("SIMILARITY_TABLE", ""),
        changed_items_stream=env.get("CHANGED_ITEMS_STREAM", ""),
        dead_letter_queue_url=env.get("DEAD_LETTER_QUEUE_URL", ""),
        coupons_table=env.get("COUPONS_TABLE", ""),
        trends_table=env.get("TRENDS_TABLE", ""),
        catalog_table=env.get("CATALOG_TABLE", ""),
        similarity_measure=env.get("SIMILARITY_MEASURE") or Settings.similarity_measure,
        neighbours_per_item=int(number("NEIGHBOURS_PER_ITEM", Settings.neighbours_per_item, int)),
        count_row_budget_kb=int(number("COUNT_ROW_BUDGET_KB", Settings.count_row_budget_kb, int)),
        half_life_hours=number("HALF_LIFE_HOURS", Settings.half_life_hours),
        history_length=int(number("HISTORY_LENGTH", Settings.history_length, int)),
        category_blend=number("CATEGORY_BLEND", Settings.category_blend),
        event_weights=parse_event_weights(env.get("EVENT_WEIGHTS", "")),
        cross_sell_measure=env.get("CROSS_SELL_MEASURE") or Settings.cross_sell_measure,
        cross_sell_popularity_penalty=number(
            "CROSS_SELL_POPULARITY_PENALTY", Settings.cross_sell_popularity_penalty
        ),
        coupon_ranking=env.get("COUPON_RANKING") or Settings.coupon_ranking,
        coupon_fill=env.get("COUPON_FILL") or Settings.coupon_fill,
        demand_method=env.get("DEMAND_METHOD") or Settings.demand_method,
        demand_days=int(number("DEMAND_DAYS", Settings.demand_days, int)),
        coupon_reference_spend=number("COUPON_REFERENCE_SPEND", Settings.coupon_reference_spend),
        jwt_user_claim=env.get("JWT_USER_CLAIM", ""),
        jwt_admin_scope=env.get("JWT_ADMIN_SCOPE") or Settings.jwt_admin_scope,
        coupon_model=parse_coupon_model(env["COUPON_MODEL"])
        if env.get("COUPON_MODEL")
        else DEFAULT_COUPON_MODEL,
        content_weight=number("CONTENT_WEIGHT", Settings.content_weight),
        content_slots=number("CONTENT_SLOTS", Settings.content_slots),
        behaviour_slots=number("BEHAVIOUR_SLOTS", Settings.behaviour_slots),
        cold_item_weight=number("COLD_ITEM_WEIGHT", Settings.cold_item_weight),
        cold_popular_share=number("COLD_POPULAR_SHARE", Settings.cold_popular_share),
        user_retention_days=int(number("USER_RETENTION_DAYS", Settings.user_retention_days, int)),
        late_event_hours=0.0
        if env.get("LATE_EVENT_HOURS", "").strip().lower() == "off"
        else number("LATE_EVENT_HOURS", Settings.late_event_hours),
    )


def require(settings: Settings, *names: str) -> None:
    """Fail at cold start when a handler's tables or streams are not configured."""
    missing = [name for name in names if not getattr(settings, name)]
    if missing:
        raise ConfigurationError("missing configuration: " + ", ".join(n.upper() for n in missing))
