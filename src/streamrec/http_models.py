"""The HTTP API's answers as pydantic models: the OpenAPI document's response schemas.

The routes name them in ``responses=`` (Powertools' additional response models), not as
return annotations: with ``enable_validation`` a return annotation also re-validates and
re-serializes every answer, which would change the bytes (an absent ``category_trend``
would become ``null``, a listed coupon's scope would gain ``"items": null``) and cost a
pydantic pass per request. The handlers keep returning plain dicts, and
``tests/unit/test_api_responses.py`` checks every route's real answers against these schemas.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from streamrec.domain.coupons import CouponScope, Discount

# domain/recommend.py's SOURCE_* constants (a test keeps them equal)
Source = Literal["personalized", "similar", "popular", "cross_sell", "new"]


def _drop_default(schema: dict[str, Any]) -> None:
    # A field that is absent rather than null: no "default": null in its schema.
    schema.pop("default", None)


# The API function's error names, one per status it answers with.
ErrorName = Literal[
    "bad_request",  # 400
    "forbidden",  # 403
    "not_found",  # 404
    "conflict",  # 409
    "payload_too_large",  # 413
    "unsupported_media_type",  # 415
    "internal_error",  # 500
    "unavailable",  # 503
]


class ErrorResponse(BaseModel):
    """Every error answer of the API function: 400 bad_request, 403 forbidden, 404 not_found,
    409 conflict, 413 payload_too_large, 415 unsupported_media_type, 500 internal_error, 503
    unavailable. An
    unknown route or method never reaches the function: API Gateway answers it 404
    {"message": "Not Found"}, without this shape (as the local API does)."""

    error: ErrorName = Field(
        description="400 bad_request, 403 forbidden, 404 not_found, 409 conflict, 413 payload_too_large, "
        "415 unsupported_media_type, 500 internal_error or 503 unavailable"
    )
    message: str = Field(description="What went wrong, for a human; names the parameter or field at fault.")


class Health(BaseModel):
    status: Literal["ok"]


class RecommendedItem(BaseModel):
    """One item of a list (recommendations, similar items, cross-sell)."""

    item_id: str
    score: float = Field(description="Relative score; the list is sorted by it, best first.")
    source: Source = Field(
        description="What put the item on the list; popular items pad short lists, and the catalog's "
        "newest items in stock ('new') what popular items cannot fill."
    )
    reasons: list[str] = Field(description='Readable reasons, e.g. "because you viewed X".')
    because: list[str] = Field(description="The item ids the reasons name (empty for popular and new items).")


class UserItemList(BaseModel):
    """Recommendations, or cross-sell for the user's cart."""

    user_id: str
    fallback: bool = Field(
        description="True when nothing personal was found: the list is popular items, then new "
        "ones (those the filters let through: it may be empty)."
    )
    items: list[RecommendedItem]


class SimilarItemList(BaseModel):
    item_id: str
    fallback: bool = Field(
        description="True when the item has no neighbours: the list is popular items, then new "
        "ones (those the filters let through: it may be empty)."
    )
    items: list[RecommendedItem]


class CartItemList(BaseModel):
    """Cross-sell for the posted cart."""

    items: list[RecommendedItem]
    fallback: bool = Field(
        description="True when nothing was found for the cart (no cart item has complements and, "
        "with a user_id, the user bought nothing listable before): popular items, then new ones (those "
        "the filters let through: it may be empty)."
    )


class NewItem(BaseModel):
    item_id: str
    listed_at: str = Field(
        description="When the item first came into stock (its first catalog record in stock), ISO-8601, "
        "UTC, to the second."
    )


class NewItemList(BaseModel):
    category: str | None = Field(
        description="The category asked for, in Unicode's composed form (NFC), as categories are matched; "
        "null: the whole catalog."
    )
    items: list[NewItem] = Field(
        description="Newest first: of the 100 newest items in stock, or the category's 50 newest."
    )


class ProfileItem(BaseModel):
    item_id: str
    kind: str = Field(
        description="The event type behind the user's strongest signal (view, add_to_cart, purchase; "
        "remove_from_cart for an item added to the cart and taken out again)."
    )
    category: str | None
    affinity: float = Field(description="Affinity decayed to now.")
    last_seen: str = Field(description="ISO-8601 time, UTC, to the second (e.g. 2026-01-01T12:00:00Z).")


class ProfileCategory(BaseModel):
    category: str
    affinity: float = Field(description="Sum of the decayed affinities of the recent items in the category.")


class UserProfile(BaseModel):
    user_id: str
    known: bool = Field(description="False for a user without stored events (every list is then empty).")
    recent_items: list[ProfileItem] = Field(description="Newest first.")
    categories: list[ProfileCategory] = Field(description="Strongest first.")
    event_counts: dict[str, int] = Field(description="Events by type.")
    cart: list[str] = Field(description="Item ids added and neither removed nor bought.")
    purchases: int = Field(
        description="Distinct items bought, of the last 500 kept (a user who bought more shows 500; "
        "event_counts.purchase counts every purchase event)."
    )


class OfferedCoupon(BaseModel):
    coupon_id: str
    score: float = Field(
        description="Ranking score: the user's predicted chance of buying in the coupon's scope soon "
        "(relative to the best coupon's) and the coupon's value; best first. 0 for a coupon of one "
        "of the shop's most-bought categories that fills a list the user's own scopes leave "
        "shorter than k."
    )
    scope: CouponScope
    discount: Discount
    min_spend: float
    valid_to: float = Field(description="Epoch seconds.")
    remaining: int = Field(description="Redemptions left of the coupon's budget.")
    reasons: list[str] = Field(
        description="Why it is offered: the user's activity in its scope, or 'popular in the shop' "
        "for a fill."
    )


class UserCoupons(BaseModel):
    user_id: str
    coupons: list[OfferedCoupon] = Field(description="Best first.")


class StoredCoupon(BaseModel):
    """The coupon as stored: its definition (times as epoch seconds) and its counts."""

    coupon_id: str
    scope: CouponScope
    discount: Discount
    min_spend: float
    valid_from: float = Field(description="Epoch seconds.")
    valid_to: float = Field(description="Epoch seconds.")
    budget: int
    per_user_limit: int
    remaining: int
    redeemed: int
    refused: int = Field(description="Redemptions counted after the budget ran out (remaining stays 0).")
    state: Literal["active", "scheduled", "expired", "exhausted"] = Field(
        description="Whether it is offered now: active; scheduled (before valid_from, with "
        "redemptions left); expired (valid_to reached); exhausted (no redemption left, so never "
        "offered until redefined with a larger budget)."
    )


class TrendingItem(BaseModel):
    item_id: str
    category: str | None
    velocity: float = Field(description="(count + 5) / (expected + 5); the list is sorted by it.")
    count: float = Field(description="Weighted events in the window.")
    expected: float = Field(
        description="The item's usual count for this window: its hourly rate times the "
        "window's hours, weighted by the shop's hour-of-day profile."
    )


class CategoryTrend(BaseModel):
    category: str
    velocity: float
    count: float
    expected: float


class TrendingList(BaseModel):
    window: Literal["1h", "24h"]
    category: str | None
    items: list[TrendingItem]
    category_trend: CategoryTrend | SkipJsonSchema[None] = Field(
        default=None,
        description="The category's own trend; only when a category was asked for.",
        json_schema_extra=_drop_default,
    )


class DemandPurchases(BaseModel):
    """Units bought. Also ``per_day_<N>d``: the mean per day over the N whole days of
    ``days`` (N is the demand_days setting, 28 by default: ``per_day_28d``)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"patternProperties": {"^per_day_[0-9]+d$": {"type": "number"}}},
    )

    last_24h: float
    today: float = Field(description="Since midnight UTC.")
    per_hour_24h: float
    per_day_7d: float


class DemandDay(BaseModel):
    date: str = Field(description="YYYY-MM-DD, UTC.")
    purchases: float


class DemandForecast(BaseModel):
    """The forecast from the whole UTC days of ``days`` (up to yesterday): their mean per
    day (``mean``, the default) or Holt's linear smoothing of them (``holt``). Today's sales
    so far (``purchases.today``) are not part of it."""

    next_24h: float = Field(
        description="Units forecast for the current UTC day as a whole (l + b), from the days up"
        " to yesterday: today's sales so far are not in it (they are in purchases.today)."
    )
    next_7d: float = Field(
        description="Units forecast for the current UTC day and the 6 following (the sum of"
        " l + h*b, h = 1..7, each floored at 0), from the same days."
    )
    method: Literal["mean", "holt"] = Field(description="The DEMAND_METHOD setting.")
    level: float = Field(description="Units per day as of yesterday (>= 0): the mean, or Holt's level.")
    trend: float = Field(description="Change per day: 0 for the mean, Holt's smoothed trend (>= -level).")
    alpha: float | None = Field(None, description="Holt's level smoothing (holt only).")
    beta: float | None = Field(None, description="Holt's trend smoothing (holt only).")


class ItemDemand(BaseModel):
    item_id: str
    known: bool = Field(
        description="False when the item has no events in the days read (or is unknown): all zeros."
    )
    purchases: DemandPurchases
    days: list[DemandDay] = Field(description="Oldest first, one per whole day.")
    forecast: DemandForecast
