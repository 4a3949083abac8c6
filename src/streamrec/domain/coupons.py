"""Coupons: their definition (validated like events), eligibility rules and ranking.

A coupon applies to one category or to a list of items, gives a percentage or a fixed
amount off above a minimum spend, is valid in [valid_from, valid_to), and can be redeemed
``budget`` times in total and ``per_user_limit`` times per user. For a user at time ``now``
a coupon is *offered* only when all of these hold:

* valid: ``valid_from <= now < valid_to``;
* not exhausted: ``remaining > 0``;
* not used up by this user: the user row's redemption count < ``per_user_limit``;
* in scope: the user's decayed affinity to the scope is > 0 (the category's entry of the
  user row, or the summed decayed affinity of the listed items among the recent items).

Offered coupons are ranked by :func:`streamrec_core.coupon_scores`:
``(a / max a) · (1 + coupon_value_weight · v)``, with ``v`` the coupon's relative value:
``percent / 100``, or ``amount / max(amount, min_spend)`` (the share of the smallest
qualifying basket it saves).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from streamrec_core import coupon_scores, top_k

from streamrec.domain.model import CategoryAffinity, UserState
from streamrec.events import ID_REGEX, EntityId, UserEvent, schema_problems
from streamrec.repositories.base import CouponRepository, UserRepository
from streamrec.settings import Settings

MAX_SCOPE_ITEMS = 100
# Outcomes of a redemption write (CouponRepository.redeem).
REDEEMED = "redeemed"
EXHAUSTED = "exhausted"  # no redemption left: counted as refused, remaining stays at 0
DUPLICATE = "duplicate"  # the coupon row already holds this record (replay guard)
UNKNOWN = "unknown"  # no such coupon


class InvalidCoupon(ValueError):
    """A coupon definition that breaks the schema; the message names the fields."""


def _epoch(value: Any) -> float:
    # The event schema's timestamp rules (ISO-8601 with a zone, or epoch seconds), minus
    # its "not in the future" bound: coupons are defined ahead of time.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be ISO-8601 with a zone or epoch seconds")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError("must be ISO-8601 with a zone or epoch seconds") from error
    if parsed.tzinfo is None:
        raise ValueError("ISO-8601 time needs a time zone (e.g. Z)")
    return parsed.timestamp()


class CouponScope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    category: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    items: Annotated[list[EntityId], Field(min_length=1, max_length=MAX_SCOPE_ITEMS)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CouponScope:
        if (self.category is None) == (self.items is None):
            raise ValueError("scope needs exactly one of category or items")
        return self


class Discount(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["percent", "amount"]
    value: Annotated[float, Field(gt=0, le=1e9)]

    @model_validator(mode="after")
    def _percent_range(self) -> Discount:
        if self.kind == "percent" and self.value > 100:
            raise ValueError("a percent discount is at most 100")
        return self


class CouponSpec(BaseModel):
    """The body of ``PUT /coupons/{coupon_id}`` and one line of ``streamrec coupons load``."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=512)

    scope: CouponScope
    discount: Discount
    min_spend: Annotated[float, Field(ge=0, le=1e9)] = 0.0
    valid_from: float
    valid_to: float
    budget: Annotated[int, Field(ge=0, le=1_000_000_000)]
    per_user_limit: Annotated[int, Field(ge=1, le=1_000_000)] = 1

    @field_validator("valid_from", "valid_to", mode="before")
    @classmethod
    def _times(cls, value: Any) -> float:
        return _epoch(value)

    @model_validator(mode="after")
    def _window(self) -> CouponSpec:
        if self.valid_to <= self.valid_from:
            raise ValueError("valid_to must be after valid_from")
        return self


@dataclass
class Coupon:
    """A stored coupon: its definition and its redemption counts."""

    coupon_id: str
    spec: CouponSpec
    remaining: int
    redeemed: int = 0
    refused: int = 0

    @property
    def value(self) -> float:
        """Relative value in [0, 1]: percent / 100, or amount / max(amount, min_spend)."""
        discount = self.spec.discount
        if discount.kind == "percent":
            return discount.value / 100.0
        return discount.value / max(discount.value, self.spec.min_spend)

    def scope_keys(self) -> list[str]:
        return scope_keys(self.spec.scope)


def scope_keys(scope: CouponScope) -> list[str]:
    """Index keys of a scope: ``cat:<category>`` or one ``item:<item>`` per item."""
    if scope.category is not None:
        return [f"cat:{scope.category}"]
    return [f"item:{item}" for item in scope.items or ()]


def parse_coupon(coupon_id: Any, payload: Any) -> CouponSpec:
    """Validate a coupon id and definition; :class:`InvalidCoupon` says what is wrong."""
    if not isinstance(coupon_id, str) or not ID_REGEX.fullmatch(coupon_id):
        raise InvalidCoupon("coupon_id is malformed: 1-128 characters: letters, digits and . _ : @ -")
    if not isinstance(payload, dict):
        raise InvalidCoupon(f"a coupon must be a JSON object, got {type(payload).__name__}")
    try:
        return CouponSpec.model_validate(payload)
    except ValidationError as error:
        raise InvalidCoupon(schema_problems(error, "coupon")) from None


def coupon_record(payload: Any) -> tuple[str, CouponSpec]:
    """A load-file record: the definition plus its ``coupon_id``."""
    if not isinstance(payload, dict):
        raise InvalidCoupon(f"a coupon must be a JSON object, got {type(payload).__name__}")
    body = dict(payload)
    coupon_id = body.pop("coupon_id", None)
    return str(coupon_id) if coupon_id is not None else "", parse_coupon(coupon_id, body)


# ---- The user's category affinity (maintained by the ingest) -----------------------------


def apply_to_categories(state: UserState, event: UserEvent, settings: Settings) -> None:
    """Add ``event`` to the user's decayed affinity to its category (pure; in the ingest
    plan, so it is written with the user row's guards). Keeps the ``categories_kept``
    strongest categories (as of the event's time)."""
    weight = settings.category_weights.get(event.event_type, 0.0)
    if not event.category or weight <= 0:
        return
    half_life = settings.category_half_life_seconds
    entry = state.categories.get(event.category) or CategoryAffinity(0.0, event.timestamp)
    if event.timestamp >= entry.ref_time:
        affinity, ref_time = entry.at(event.timestamp, half_life) + weight, event.timestamp
    else:  # an out-of-order event counts at its own age
        affinity = entry.affinity + weight * 0.5 ** ((entry.ref_time - event.timestamp) / half_life)
        ref_time = entry.ref_time
    counts = {**entry.counts, event.event_type: entry.counts.get(event.event_type, 0) + 1}
    # A new entry, never a change in place: states share entries with their copies.
    state.categories[event.category] = CategoryAffinity(affinity, ref_time, counts)
    if len(state.categories) > settings.categories_kept:
        weakest = min(
            state.categories,
            key=lambda c: (state.categories[c].at(event.timestamp, half_life), c),
        )
        del state.categories[weakest]


def category_affinities(state: UserState | None, now: float, settings: Settings) -> dict[str, float]:
    """The user's category affinities decayed to ``now`` (positive ones)."""
    if state is None:
        return {}
    half_life = settings.category_half_life_seconds
    values = {c: entry.at(now, half_life) for c, entry in state.categories.items()}
    return {c: v for c, v in values.items() if v > 0}


def _item_affinities(state: UserState, now: float, settings: Settings) -> dict[str, float]:
    half_life = settings.half_life_seconds
    return {
        e.item_id: e.affinity * 0.5 ** (max(0.0, now - e.ref_time) / half_life)
        for e in state.items
        if e.affinity > 0
    }


_VERBS = (("view", "viewed", "item"), ("add_to_cart", "added", "item"), ("purchase", "bought", "item"))


def category_reason(category: str, entry: CategoryAffinity | None) -> str:
    """E.g. "you viewed 3 items and bought 1 item in category C recently"."""
    parts = []
    for kind, verb, noun in _VERBS:
        count = (entry.counts if entry else {}).get(kind, 0)
        if count:
            phrase = f"{verb} {count} {noun}{'s' if count > 1 else ''}"
            parts.append(phrase + (" to your cart" if kind == "add_to_cart" else ""))
    if not parts:
        return f"you showed interest in category {category}"
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"you {joined} in category {category} recently"


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


def rank_coupons(
    coupons: Iterable[Coupon], state: UserState | None, now: float, k: int, settings: Settings
) -> list[OfferedCoupon]:
    """The user's top-k offered coupons, best first (ties by coupon id), each with its reason."""
    candidates = sorted((c for c in coupons if eligible(c, state, now)), key=lambda c: c.coupon_id)
    if state is None or not candidates:
        return []
    categories = category_affinities(state, now, settings)
    items = _item_affinities(state, now, settings)
    affinity = np.zeros(len(candidates))
    reasons: list[str] = []
    for index, coupon in enumerate(candidates):
        scope = coupon.spec.scope
        if scope.category is not None:
            affinity[index] = categories.get(scope.category, 0.0)
            reasons.append(category_reason(scope.category, state.categories.get(scope.category)))
        else:
            held = [(items[i], i) for i in scope.items or () if i in items]
            affinity[index] = sum(a for a, _ in held)
            best = max(held)[1] if held else ""
            entry = state.find(best) if best else None
            verb = {"purchase": "bought", "add_to_cart": "added to your cart"}.get(
                entry.kind if entry else "", "viewed"
            )
            reasons.append(f"it applies to {best}, which you {verb}")
    scores = coupon_scores(affinity, np.array([c.value for c in candidates]), settings.coupon_value_weight)
    offered = []
    for index in top_k(scores, k):
        coupon = candidates[int(index)]
        offered.append(
            OfferedCoupon(
                coupon_id=coupon.coupon_id,
                score=float(scores[index]),
                scope=coupon.spec.scope.model_dump(exclude_none=True),
                discount=coupon.spec.discount.model_dump(),
                min_spend=coupon.spec.min_spend,
                valid_to=coupon.spec.valid_to,
                remaining=coupon.remaining,
                reasons=[reasons[int(index)]],
            )
        )
    return offered


@dataclass
class CouponService:
    """Coupon definitions (``PUT``) and a user's ranked coupons (``GET``)."""

    settings: Settings
    users: UserRepository
    coupons: CouponRepository

    def put(self, coupon_id: str, spec: CouponSpec) -> Coupon:
        return self.coupons.put(coupon_id, spec)

    def for_state(self, state: UserState | None, k: int, now: float) -> list[OfferedCoupon]:
        """Ranked coupons for a user state: 2 reads (scope index rows, then the coupons)."""
        if state is None:
            return []
        keys = [f"cat:{c}" for c in category_affinities(state, now, self.settings)]
        keys += [f"item:{e.item_id}" for e in state.items]
        coupon_ids = self.coupons.in_scope(keys)
        if not coupon_ids:
            return []
        return rank_coupons(self.coupons.get_many(coupon_ids).values(), state, now, k, self.settings)

    def for_user(self, user_id: str, k: int, now: float) -> list[OfferedCoupon]:
        """``GET /users/{user_id}/coupons``: 3 sequential reads (user, index rows, coupons)."""
        return self.for_state(self.users.get(user_id), k, now)
