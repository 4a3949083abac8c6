"""Coupons: their definition (validated like events), eligibility rules and ranking.

A coupon applies to one category or to a list of items, gives a percentage or a fixed
amount off above a minimum spend, is valid in [valid_from, valid_to), and can be redeemed
``budget`` times in total and ``per_user_limit`` times per user. For a user at time ``now``
a coupon is *offered* only when all of these hold:

* valid: ``valid_from <= now < valid_to``;
* not exhausted: ``remaining > 0``;
* not used up by this user: the user row's redemption count < ``per_user_limit``;
* in the user's scopes: the user engaged with the scope (the category's entry of the user
  row, or a listed item in stock among the recent items, with an affinity > 0 as stored:
  decayed to ``now`` it may underflow to 0 after a long absence; with ``seen="purchased"``
  a listed item the user bought does not count);
* or, only to fill a list the user's scopes leave shorter than k (``coupon_fill="popular"``):
  a category coupon of one of the shop's most-bought categories (``#popular_categories``,
  forward-decayed purchases), after every coupon of the user's own scopes, with score 0.

Offered coupons are ranked by :func:`streamrec_core.coupon_scores`:
``(p / max p) · (1 + coupon_value_weight · v)``. ``p`` is the coupon model's probability
that the user buys in the scope soon (:func:`streamrec_core.coupon_propensity`, a logistic
model over :data:`COUPON_FEATURES`, weights ``Settings.coupon_model`` fitted by ``streamrec
eval p4 --fit`` on a warm-up), or with ``coupon_ranking="affinity"`` the decayed affinity.
``v`` is the coupon's relative value (:meth:`Coupon.relative_value`): the share of a typical
order (``coupon_reference_spend``, or the minimum spend when larger) it saves. Fill coupons are not
scored (0): they follow in the order of :func:`popular_fill`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from streamrec_core import coupon_propensity, coupon_scores, top_k

from streamrec.domain.filters import read_out_of_stock
from streamrec.domain.model import (
    POPULAR_CATEGORIES_ROW,
    CategoryAffinity,
    UserState,
    shown_kind,
)
from streamrec.domain.recommend import EXCLUDE_NONE, EXCLUDE_PURCHASED, own_items
from streamrec.events import (
    EARLIEST_TIMESTAMP,
    EPOCH_TEXT,
    ID_REGEX,
    ID_RULE,
    CategoryName,
    EntityId,
    TimeFormatError,
    UserEvent,
    epoch_unit_hint,
    instant_seconds,
    json_type,
    schema_problems,
    whole_number,
)
from streamrec.repositories.base import CouponRepository, SimilarityRepository, UserRepository
from streamrec.settings import Settings

MAX_SCOPE_ITEMS = 100
# Most-bought categories whose scope index rows one read of a popular fill takes.
FILL_CATEGORIES_PER_READ = 10
# Which of the user's own items count toward an item-list coupon (``seen``): all, or all
# but the past purchases (a shop of durables: no discount on what was just paid in full).
COUPON_SEEN_MODES = (EXCLUDE_NONE, EXCLUDE_PURCHASED)
# Outcomes of a redemption write (CouponRepository.redeem).
REDEEMED = "redeemed"
EXHAUSTED = "exhausted"  # no redemption left: counted as refused, remaining stays at 0
DUPLICATE = "duplicate"  # the coupon row already holds this record (replay guard)
UNKNOWN = "unknown"  # no such coupon


# Coupon validity times beyond this are typing mistakes (milliseconds sent as seconds...).
LATEST_COUPON_TIME = 4_102_444_800  # 2100-01-01T00:00:00Z


class InvalidCoupon(ValueError):
    """A coupon definition that breaks the schema; the message names the fields."""


def _epoch(value: Any) -> float:
    # The event schema's timestamp rules (ISO-8601 with a zone, or epoch seconds), with a
    # far-future bound instead of its "at most a day ahead": coupons are defined ahead of time.
    try:
        seconds = instant_seconds(value)
    except TimeFormatError as error:
        raise ValueError(
            "a date alone: give a time of day and a zone (e.g. 2025-11-27T00:00:00Z)"
            if error.date_only
            else "ISO-8601 time needs a time zone (e.g. Z)"
            if error.missing_zone
            else "must be ISO-8601 with a zone or epoch seconds"
        ) from None
    # "NaN" would pass every comparison (valid_to > valid_from included).
    if not EARLIEST_TIMESTAMP <= seconds <= LATEST_COUPON_TIME:
        numeric = not isinstance(value, str) or EPOCH_TEXT.fullmatch(value)
        hint = epoch_unit_hint(seconds) if numeric else ""
        raise ValueError(f"must be from 2000-01-01 to 2100-01-01{hint}")
    return seconds


# Parsed by _epoch (CouponSpec._times) into epoch seconds; the schema says what is accepted
# (a string is ISO-8601 with a zone or epoch seconds in digits, so it carries no "format").
CouponTime = Annotated[
    float,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": EARLIEST_TIMESTAMP, "maximum": LATEST_COUPON_TIME},
                # Digits (EPOCH_TEXT, not negative: never in the range), or what may be
                # ISO-8601: a year of the range first (1999 with a zone west of UTC can be
                # 2000 in UTC).
                {
                    "type": "string",
                    "pattern": r"^([0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?|(1999|20[0-9]{2}|2100).+)$",
                },
            ],
            "description": "Epoch seconds (a number, or a string holding one in digits) or ISO-8601 "
            "with a zone (2025-11-01T00:00:00Z), from 2000-01-01 to 2100-01-01.",
        }
    ),
]


class CouponScope(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        # _one_kind's rule, for the OpenAPI document (a null counts as absent).
        json_schema_extra={
            "oneOf": [
                {"required": ["category"], "properties": {"category": {"type": "string"}}},
                {"required": ["items"], "properties": {"items": {"type": "array"}}},
            ]
        },
    )

    category: CategoryName | None = None
    items: (
        Annotated[
            list[EntityId],
            Field(
                min_length=1, max_length=MAX_SCOPE_ITEMS, description="Item ids; a repeated id counts once."
            ),
        ]
        | None
    ) = None

    @field_validator("items", mode="before")
    @classmethod
    def _distinct(cls, items: Any) -> Any:
        # Before the 100-item bound: 101 copies of one id are one item. Anything but a list
        # of strings is left to the type check.
        if isinstance(items, list) and all(isinstance(item, str) for item in items):
            return list(dict.fromkeys(items))
        return items

    @model_validator(mode="after")
    def _one_kind(self) -> CouponScope:
        if (self.category is None) == (self.items is None):
            raise ValueError("give exactly one of category or items")
        return self


PERCENT_RULE = "a percent discount is at most 100"


class Discount(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        # _percent_range's rule, for the OpenAPI document (3.1: JSON Schema's if/then).
        json_schema_extra={
            "if": {"properties": {"kind": {"const": "percent"}}, "required": ["kind"]},
            "then": {"properties": {"value": {"maximum": 100}}},
        },
    )

    kind: Literal["percent", "amount"]
    value: Annotated[
        float,
        Field(gt=0, le=1e9, allow_inf_nan=False, description="Percent off (at most 100), or the amount off."),
    ]

    @model_validator(mode="before")
    @classmethod
    def _percent_range_first(cls, data: Any) -> Any:
        # Before the value's own bound (1e9), so that 2e9 percent is told the percent's rule.
        if isinstance(data, dict) and data.get("kind") == "percent":
            value = data.get("value")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 100:
                raise ValueError(PERCENT_RULE)
        return data

    @model_validator(mode="after")
    def _percent_range(self) -> Discount:
        # Whatever the value's type was (a Decimal or numpy number from a Python caller).
        if self.kind == "percent" and self.value > 100:
            raise ValueError(PERCENT_RULE)
        return self


class CouponSpec(BaseModel):
    """The body of ``PUT /coupons/{coupon_id}`` and one line of ``streamrec coupons load``."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=512, strict=True)

    scope: CouponScope
    discount: Discount
    min_spend: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] = 0.0
    valid_from: CouponTime
    valid_to: CouponTime
    budget: Annotated[int, Field(ge=0, le=1_000_000_000)]
    per_user_limit: Annotated[int, Field(ge=1, le=1_000_000)] = 1

    _whole_counts = field_validator("budget", "per_user_limit", mode="before")(whole_number)

    @field_validator("valid_from", "valid_to", mode="before")
    @classmethod
    def _times(cls, value: Any) -> float:
        return _epoch(value)

    @field_validator("valid_to")
    @classmethod
    def _after_valid_from(cls, valid_to: float, info: ValidationInfo) -> float:
        # A field check, not a model one: it is reported with the other fields' problems
        # (a model validator runs only once every field is valid).
        valid_from = info.data.get("valid_from")
        if valid_from is not None and valid_to <= valid_from:
            raise ValueError("must be after valid_from")
        return valid_to


@dataclass
class Coupon:
    """A stored coupon: its definition and its redemption counts."""

    coupon_id: str
    spec: CouponSpec
    remaining: int
    redeemed: int = 0
    refused: int = 0

    def relative_value(self, reference_spend: float) -> float:
        """The share in [0, 1] of an order it saves, the order being the shop's typical one
        (``reference_spend``) or, when larger, the coupon's minimum spend: an amount coupon
        saves amount / max(amount, min_spend, reference_spend) (a 1-cent coupon is worth
        next to nothing, not 100 % off); a percent coupon saves its percentage of any order,
        scaled by reference_spend / min_spend when its minimum is above the typical order
        (the shopper must spend that much more to use it). ``reference_spend`` 0: the
        minimum spend alone (amount / max(amount, min_spend), the percentage as it is)."""
        discount, minimum = self.spec.discount, self.spec.min_spend
        if discount.kind == "percent":
            share = discount.value / 100.0
            return share * reference_spend / minimum if 0 < reference_spend < minimum else share
        return discount.value / max(discount.value, minimum, reference_spend)

    def scope_keys(self) -> list[str]:
        return scope_keys(self.spec.scope)


def remaining_after_redefinition(budget: int, redeemed: int, refused: int) -> int:
    """A (re)defined coupon's redemptions left: its budget less every use counted so far,
    those refused past the old budget included (the shop's checkout honoured them)."""
    return max(0, budget - redeemed - refused)


def coupon_state(coupon: Coupon, now: float) -> str:
    """Whether the coupon can be offered at ``now``: ``expired`` (``valid_to`` reached),
    ``exhausted`` (no redemption left: never offered, even once valid), ``scheduled`` (before
    ``valid_from``) or ``active`` (offered to the users of its scope within their
    ``per_user_limit``)."""
    if coupon.spec.valid_to <= now:
        return "expired"
    if coupon.remaining <= 0:
        return "exhausted"
    return "scheduled" if now < coupon.spec.valid_from else "active"


def stored_coupon(coupon: Coupon, now: float) -> dict[str, Any]:
    """A stored coupon as ``PUT`` and ``GET /coupons/{coupon_id}`` answer it and ``streamrec
    coupons list --json`` prints it: its definition (times as epoch seconds), its counts and
    its state at ``now``."""
    spec = coupon.spec
    return {
        "coupon_id": coupon.coupon_id,
        **spec.model_dump(),
        "scope": spec.scope.model_dump(exclude_none=True),  # as GET .../coupons shows it
        "remaining": coupon.remaining,
        "redeemed": coupon.redeemed,
        "refused": coupon.refused,
        "state": coupon_state(coupon, now),
    }


def scope_keys(scope: CouponScope) -> list[str]:
    """Index keys of a scope: ``cat:<category>`` or one ``item:<item>`` per item."""
    if scope.category is not None:
        return [f"cat:{scope.category}"]
    return [f"item:{item}" for item in scope.items or ()]


def parse_coupon(coupon_id: Any, payload: Any) -> CouponSpec:
    """Validate a coupon id and definition; :class:`InvalidCoupon` says everything that is
    wrong with them (the id's problem and the definition's, "; "-separated)."""
    problems = []
    if coupon_id is None:
        problems.append("coupon_id is missing")
    elif not isinstance(coupon_id, str) or not ID_REGEX.fullmatch(coupon_id):
        problems.append(f"coupon_id is malformed: {ID_RULE}")
    if not isinstance(payload, dict):
        raise InvalidCoupon(f"a coupon must be a JSON object, got {json_type(payload)}")
    try:
        spec = CouponSpec.model_validate(payload)
    except ValidationError as error:
        problems.append(schema_problems(error, "coupon"))
    if problems:
        raise InvalidCoupon("; ".join(problems))
    return spec


def coupon_record(payload: Any) -> tuple[str, CouponSpec]:
    """A load-file record: the definition plus its ``coupon_id``."""
    if not isinstance(payload, dict):
        raise InvalidCoupon(f"a coupon must be a JSON object, got {json_type(payload)}")
    body = dict(payload)
    coupon_id = body.pop("coupon_id", None)
    return str(coupon_id) if coupon_id is not None else "", parse_coupon(coupon_id, body)


# ---- The user's category affinity (maintained by the ingest) -----------------------------


# The event types whose decayed counts a category entry keeps (CategoryAffinity.decayed).
DECAYED_TYPES = ("view", "add_to_cart", "purchase")


def _cart_change(state: UserState, event: UserEvent) -> int:
    # +1 when the event puts a new item in the cart, -1 when it takes one out (read before
    # the event changes the cart).
    if event.event_type == "add_to_cart":
        return 0 if event.item_id in state.cart else 1
    if event.event_type in ("remove_from_cart", "purchase"):
        return -1 if event.item_id in state.cart else 0
    return 0


def apply_to_categories(
    state: UserState, event: UserEvent, settings: Settings, cart_changes: bool = True
) -> None:
    """Add ``event`` to the user's engagement with its category (pure; in the ingest plan,
    so it is written with the user row's guards). Call it before the event changes the
    cart (``cart_changes`` False: it will not, being late). Keeps the ``categories_kept``
    strongest categories as of the newest time the user's categories have seen (an old
    event, compared as of its own time, would weigh today's categories undecayed)."""
    if not event.category:
        return
    entry = state.categories.get(event.category)
    cart_change = _cart_change(state, event) if cart_changes else 0
    weight = settings.category_weights.get(event.event_type, 0.0)
    if weight <= 0:  # e.g. remove_from_cart: only the cart count can change
        if entry is not None and cart_change:
            state.categories[event.category] = replace(entry, in_cart=max(0, entry.in_cart + cart_change))
        return
    half_life = settings.category_half_life_seconds
    entry = entry or CategoryAffinity(0.0, event.timestamp)
    kind = DECAYED_TYPES.index(event.event_type) if event.event_type in DECAYED_TYPES else -1
    if event.timestamp >= entry.ref_time:
        factor = 0.5 ** ((event.timestamp - entry.ref_time) / half_life)
        affinity, ref_time, added = entry.affinity * factor + weight, event.timestamp, 1.0
        decayed = [value * factor for value in entry.decayed]
    else:  # an out-of-order event counts at its own age
        added = 0.5 ** ((entry.ref_time - event.timestamp) / half_life)
        affinity, ref_time = entry.affinity + weight * added, entry.ref_time
        decayed = list(entry.decayed)
    if kind >= 0:
        decayed[kind] += added
    counts = {**entry.counts, event.event_type: entry.counts.get(event.event_type, 0) + 1}
    # A new entry, never a change in place: states share entries with their copies.
    state.categories[event.category] = CategoryAffinity(
        affinity, ref_time, counts, (decayed[0], decayed[1], decayed[2]), max(0, entry.in_cart + cart_change)
    )
    if len(state.categories) > settings.categories_kept:
        as_of = max(event.timestamp, max(e.ref_time for e in state.categories.values()))
        weakest = min(
            state.categories,
            key=lambda c: (state.categories[c].at(as_of, half_life), c),
        )
        del state.categories[weakest]


def category_affinities(state: UserState | None, now: float, settings: Settings) -> dict[str, float]:
    """The user's category affinities decayed to ``now``, of the categories engaged with
    (stored affinity > 0: after a long absence the decayed value may underflow to 0, and a
    returning shopper's categories are still theirs)."""
    if state is None:
        return {}
    half_life = settings.category_half_life_seconds
    return {c: entry.at(now, half_life) for c, entry in state.categories.items() if entry.affinity > 0}


def _item_affinities(state: UserState, now: float, settings: Settings) -> dict[str, float]:
    half_life = settings.half_life_seconds
    return {
        e.item_id: e.affinity * 0.5 ** (max(0.0, now - e.ref_time) / half_life)
        for e in state.items
        if e.affinity > 0
    }


# Event types as a reason names them: (type, singular, plural).
_ACTIVITY = (
    ("view", "view", "views"),
    ("add_to_cart", "cart add", "cart adds"),
    ("purchase", "purchase", "purchases"),
)


def category_reason(category: str, entry: CategoryAffinity | None) -> str:
    """E.g. "your activity in category C: 67 views, 13 cart adds, 1 purchase".

    The figures are events counted since the category entered the user's row (views of one
    item count each time), so the reason says events, not items."""
    counts = entry.counts if entry else {}
    parts = [
        f"{counts[kind]} {one if counts[kind] == 1 else many}"
        for kind, one, many in _ACTIVITY
        if counts.get(kind, 0)
    ]
    if not parts:
        return f"you showed interest in category {category}"
    return f"your activity in category {category}: " + ", ".join(parts)


# ---- Ranking ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OfferedCoupon:
    coupon_id: str
    score: float
    scope: dict[str, Any]
    discount: dict[str, Any]
    min_spend: float
    valid_to: float
    remaining: int
    reasons: list[str] = field(default_factory=list)


def eligible(coupon: Coupon, state: UserState | None, now: float) -> bool:
    """The rules that do not depend on affinity: valid now, not exhausted, not used up."""
    spec = coupon.spec
    if not spec.valid_from <= now < spec.valid_to or coupon.remaining <= 0:
        return False
    used = state.redemptions.get(coupon.coupon_id, 0) if state is not None else 0
    return used < spec.per_user_limit


# The coupon model's features of a user's engagement with a coupon's scope, in the order of
# Settings.coupon_model's weights (after its intercept). For a category scope they come from
# the user's CategoryAffinity entry, decayed to now with the category half-life; for an item
# list, from the user's recent items in the list (item half-life; by each item's strongest
# event type; "ever" = items held).
COUPON_FEATURES = (
    "log1p affinity",  # decayed, weighted event sum (category_weights)
    "log1p decayed views",
    "log1p decayed cart adds",
    "log1p decayed purchases",
    "log1p views ever",
    "log1p cart adds ever",
    "log1p purchases ever",
    "recency",  # 0.5 ** (hours since the scope's last event / half-life)
    "share",  # the scope's affinity / the user's total affinity
    "log1p items in cart",
)


def _category_features(
    state: UserState, now: float, settings: Settings
) -> dict[str, tuple[float, list[float]]]:
    half_life = settings.category_half_life_seconds
    factors = {c: 0.5 ** (max(0.0, now - e.ref_time) / half_life) for c, e in state.categories.items()}
    affinities = {c: e.affinity * factors[c] for c, e in state.categories.items()}
    total = sum(affinities.values()) or 1.0
    features = {}
    for category, entry in state.categories.items():
        factor, affinity = factors[category], affinities[category]
        ever = [entry.counts.get(kind, 0) for kind in DECAYED_TYPES]
        features[category] = (
            affinity,
            [
                np.log1p(affinity),
                *(np.log1p(value * factor) for value in entry.decayed),
                *(np.log1p(count) for count in ever),
                factor,
                affinity / total,
                np.log1p(entry.in_cart),
            ],
        )
    return features


@dataclass(frozen=True)
class _RecentItems:
    """The user's recent items with their decay factors (item half-life) as of now, and
    their total decayed affinity: computed once for all item-list scopes of a request."""

    factors: dict[str, float]
    total: float

    @classmethod
    def of(cls, state: UserState, now: float, settings: Settings) -> _RecentItems:
        half_life = settings.half_life_seconds
        factors = {e.item_id: 0.5 ** (max(0.0, now - e.ref_time) / half_life) for e in state.items}
        return cls(factors, sum(e.affinity * factors[e.item_id] for e in state.items) or 1.0)


def _engaged(coupon: Coupon, state: UserState, left_out: AbstractSet[str]) -> bool:
    """Whether the coupon's scope is one of the user's: a category engaged with, or an item
    list holding one of the user's recent items not ``left_out``. Judged on the stored affinities,
    not the decayed ones, which underflow to 0 after a long absence (1,100 days at a 24-hour
    half-life)."""
    scope = coupon.spec.scope
    if scope.category is not None:
        entry = state.categories.get(scope.category)
        return entry is not None and entry.affinity > 0
    wanted = set(scope.items or ()) - left_out
    return any(e.affinity > 0 for e in state.items if e.item_id in wanted)


def _item_scope_features(
    scope_items: Iterable[str], state: UserState, recent: _RecentItems, left_out: AbstractSet[str]
) -> tuple[float, list[float]]:
    factors = recent.factors
    wanted = set(scope_items) - left_out
    held = [e for e in state.items if e.item_id in wanted]
    affinity = sum(e.affinity * factors[e.item_id] for e in held)
    decayed = [sum(factors[e.item_id] for e in held if e.kind == kind) for kind in DECAYED_TYPES]
    ever = [sum(1 for e in held if e.kind == kind) for kind in DECAYED_TYPES]
    return affinity, [
        np.log1p(affinity),
        *(np.log1p(value) for value in decayed),
        *(np.log1p(count) for count in ever),
        max((factors[e.item_id] for e in held), default=0.0),
        affinity / recent.total,
        np.log1p(sum(1 for item in state.cart if item in wanted)),
    ]


def scope_features(
    coupons: Sequence[Coupon],
    state: UserState,
    now: float,
    settings: Settings,
    left_out: AbstractSet[str] = frozenset(),
) -> tuple[np.ndarray, np.ndarray]:
    """The user's engagement with each coupon's scope: ``(affinity, features)``. An item
    list's engagement leaves out its ``left_out`` items: those out of stock (the coupon
    cannot be used on them, so the user's interest in them is no reason to offer it) and,
    when the caller asks so (``seen=purchased``), the user's past purchases.

    Returns:
        ``affinity`` shape (n,): the decayed affinity to the scope (0 = not one of the
        user's scopes: never ranked, at most a popular fill); ``features`` shape
        (n, len(COUPON_FEATURES)), the coupon model's input.
    """
    by_category = _category_features(state, now, settings)
    recent: _RecentItems | None = None  # built at the first item-list scope
    absent = (0.0, [0.0] * len(COUPON_FEATURES))
    rows = []
    for coupon in coupons:
        scope = coupon.spec.scope
        if scope.category is not None:
            rows.append(by_category.get(scope.category, absent))
        else:
            recent = recent or _RecentItems.of(state, now, settings)
            rows.append(_item_scope_features(scope.items or (), state, recent, left_out))
    affinity = np.array([a for a, _ in rows], dtype=np.float64)
    features = np.array([row for _, row in rows], dtype=np.float64).reshape(len(rows), len(COUPON_FEATURES))
    return affinity, features


def _reason(
    coupon: Coupon, state: UserState, now: float, settings: Settings, left_out: AbstractSet[str]
) -> str:
    scope = coupon.spec.scope
    if scope.category is not None:
        return category_reason(scope.category, state.categories.get(scope.category))
    items = _item_affinities(state, now, settings)
    held = [(items[i], i) for i in scope.items or () if i in items and i not in left_out]
    best = max(held)[1] if held else ""
    entry = state.find(best) if best else None
    kind = shown_kind(entry, state.cart) if entry else ""
    verb = {"purchase": "bought", "add_to_cart": "added to your cart", "remove_from_cart": "looked at"}.get(
        kind, "viewed"
    )
    return f"it applies to {best}, which you {verb}"


def rank_coupons(
    coupons: Iterable[Coupon],
    state: UserState | None,
    now: float,
    k: int,
    settings: Settings,
    left_out: AbstractSet[str] = frozenset(),
) -> list[OfferedCoupon]:
    """The user's top-k offered coupons, best first (ties by coupon id), each with its reason.

    Relevance is the coupon model's probability that the user buys in the scope soon
    (``coupon_ranking="model"``) or the decayed affinity (``"affinity"``); coupons outside
    the user's scopes (no affinity; for an item list, none with its items not ``left_out``:
    see :func:`scope_features`) are left out (``CouponService`` may fill with them)."""
    candidates = sorted((c for c in coupons if eligible(c, state, now)), key=lambda c: c.coupon_id)
    if state is None or not candidates:
        return []
    affinity, features = scope_features(candidates, state, now, settings, left_out)
    engaged = np.array([_engaged(c, state, left_out) for c in candidates], dtype=bool)
    # An engaged scope whose affinity underflowed still ranks (last, by affinity).
    relevance = np.where(engaged, np.maximum(affinity, np.finfo(np.float64).tiny), 0.0)
    if settings.coupon_ranking == "model":
        propensity = coupon_propensity(features, np.array(settings.coupon_model))
        relevance = np.where(engaged, propensity, 0.0)
    values = np.array([c.relative_value(settings.coupon_reference_spend) for c in candidates])
    scores = coupon_scores(relevance, values, settings.coupon_value_weight)
    chosen = [(candidates[int(index)], float(scores[index])) for index in top_k(scores, k)]
    return [
        _offer(coupon, score, _reason(coupon, state, now, settings, left_out)) for coupon, score in chosen
    ]


def popular_fill(
    coupons: Iterable[Coupon],
    state: UserState | None,
    now: float,
    k: int,
    category_rank: dict[str, int],
    reference_spend: float,
) -> list[OfferedCoupon]:
    """Up to k eligible category coupons of the shop's most-bought categories, by the
    category's rank (0 = most bought), then the larger value, then coupon id; score 0."""
    ranked = sorted(
        (c for c in coupons if c.spec.scope.category in category_rank and eligible(c, state, now)),
        key=lambda c: (
            category_rank[c.spec.scope.category or ""],
            -c.relative_value(reference_spend),
            c.coupon_id,
        ),
    )
    return [
        _offer(
            coupon,
            0.0,
            f"popular in the shop: category {coupon.spec.scope.category} is among the most bought lately",
        )
        for coupon in ranked[:k]
    ]


def _offer(coupon: Coupon, score: float, reason: str) -> OfferedCoupon:
    return OfferedCoupon(
        coupon_id=coupon.coupon_id,
        score=score,
        scope=coupon.spec.scope.model_dump(exclude_none=True),
        discount=coupon.spec.discount.model_dump(),
        min_spend=coupon.spec.min_spend,
        valid_to=coupon.spec.valid_to,
        remaining=coupon.remaining,
        reasons=[reason],
    )


def most_bought_categories(popular: SimilarityRepository) -> list[str]:
    """The ``#popular_categories`` list, most bought first, by the API's read path
    (BatchGetItem, warm-container cache; not get_list's consistent compare-and-swap read)."""
    _, lists = popular.get_many([], [POPULAR_CATEGORIES_ROW])
    return [category for category, _ in lists[POPULAR_CATEGORIES_ROW].items]


@dataclass
class CouponService:
    """Coupon definitions (``PUT``) and a user's ranked coupons (``GET``). ``similarity``
    holds the ``#popular_categories`` list that fills short lists and the ``#out_of_stock``
    set (None: never filled, stock not checked)."""

    settings: Settings
    users: UserRepository
    coupons: CouponRepository
    similarity: SimilarityRepository | None = None

    def put(self, coupon_id: str, spec: CouponSpec, now: float) -> Coupon:
        """Define a coupon; the coupons of its scope expired by ``now`` leave the index."""
        return self.coupons.put(coupon_id, spec, now)

    def get(self, coupon_id: str) -> Coupon | None:
        """The coupon as stored, with its counts (one read); None when it is not defined."""
        return self.coupons.get_many([coupon_id]).get(coupon_id)

    def for_state(
        self, state: UserState | None, k: int, now: float, seen: str = EXCLUDE_NONE
    ) -> list[OfferedCoupon]:
        """Ranked coupons for a user state: 2 reads (scope index rows, then the coupons), and
        at least 3 more when the list is short and filled (the popular categories, then the
        index rows and coupons of each chunk of them until k are found). ``seen``: which of
        the user's own items count toward an item-list coupon: all (``none``), or all but
        the past purchases (``purchased``: no coupon for an item just because it was bought)."""
        if seen not in COUPON_SEEN_MODES:
            raise ValueError(f"seen must be one of {', '.join(COUPON_SEEN_MODES)}, not {seen!r}")
        offered = self._in_user_scopes(state, k, now, seen) if state is not None else []
        if len(offered) < k and self.settings.coupon_fill == "popular" and self.similarity is not None:
            offered += self._fill(
                self.similarity, state, k - len(offered), now, {c.coupon_id for c in offered}
            )
        return offered

    def _in_user_scopes(self, state: UserState, k: int, now: float, seen: str) -> list[OfferedCoupon]:
        bought = own_items(state, seen)  # none, or the purchases (seen=purchased)
        keys = [f"cat:{c}" for c in category_affinities(state, now, self.settings)]
        keys += [f"item:{e.item_id}" for e in state.items if e.item_id not in bought]
        coupon_ids = self.coupons.in_scope(keys)
        if not coupon_ids:
            return []
        coupons = list(self.coupons.get_many(coupon_ids).values())
        return rank_coupons(coupons, state, now, k, self.settings, self._out_of_stock(coupons) | bought)

    def _out_of_stock(self, coupons: Sequence[Coupon]) -> frozenset[str]:
        """The ``#out_of_stock`` set (one read, through the warm-container cache), read only
        when an item-list coupon is among ``coupons``: an item list is ranked by the user's
        interest in its in-stock items alone, so one with none in stock is never offered; a
        category coupon is never left out for stock."""
        if self.similarity is None or not any(c.spec.scope.items for c in coupons):
            return frozenset()
        return read_out_of_stock(self.similarity)

    def _fill(
        self, popular: SimilarityRepository, state: UserState | None, k: int, now: float, offered: set[str]
    ) -> list[OfferedCoupon]:
        ranking = most_bought_categories(popular)
        category_rank = {category: rank for rank, category in enumerate(ranking)}
        # Walk the ranking a chunk at a time: a later chunk's categories rank after all of
        # the chunks read, so k found among those means done (mostly one chunk: 2 reads,
        # not 100 rows). A coupon found through a stale index entry may belong to a later
        # category: it does not end the walk before that category's chunk.
        chunk = max(FILL_CATEGORIES_PER_READ, k)
        candidates: list[Coupon] = []
        filled: list[OfferedCoupon] = []
        for start in range(0, len(ranking), chunk):
            keys = [f"cat:{category}" for category in ranking[start : start + chunk]]
            # (A stale index entry may name a coupon again: it is read once.)
            coupon_ids = self.coupons.in_scope(keys) - offered - {c.coupon_id for c in candidates}
            if coupon_ids:
                candidates += self.coupons.get_many(coupon_ids).values()
                filled = popular_fill(
                    candidates, state, now, k, category_rank, self.settings.coupon_reference_spend
                )
                if len(filled) == k and category_rank[filled[-1].scope["category"]] < start + chunk:
                    break
        return filled

    def for_user(self, user_id: str, k: int, now: float, seen: str = EXCLUDE_NONE) -> list[OfferedCoupon]:
        """``GET /users/{user_id}/coupons``: 3 sequential reads (user, index rows, coupons),
        3 or more for a filled list (an unknown user gets the fill alone)."""
        return self.for_state(self.users.get(user_id), k, now, seen)
