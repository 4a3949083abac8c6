"""HTTP API routes (API Gateway HTTP API, payload 2.0) on Powertools' resolver.

Query and path parameters are validated by the resolver's data validation (which also
yields the OpenAPI schema); a failure is a 400 with a readable message, never a trace.
API Gateway delivers path parameters percent-decoded, so an id holding ``#``, ``/``, ``?``
or another character the resolver's route patterns refuse reaches no route: the
not-found handler recognises the route from the event's ``routeKey`` (or the path) and
answers 400 rather than 404. Any other exception is logged and answered with a plain 500.
Two routes take a JSON body: ``POST /cross-sell`` and ``PUT /coupons/{coupon_id}``, each
validated by its pydantic model.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote_plus

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.shared.json_encoder import Encoder
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from streamrec.domain.coupons import COUPON_SEEN_MODES, CouponService, CouponSpec, stored_coupon
from streamrec.domain.filters import MAX_EXCLUDED_ITEMS, ListFilter
from streamrec.domain.profile import ProfileService, iso_utc
from streamrec.domain.recommend import (
    CROSS_SELL_MAX_ITEMS,
    EXCLUDE_MODES,
    EXCLUDE_NONE,
    EXCLUDE_PURCHASED,
    CrossSellService,
    RecommendationList,
    RecommendationService,
)
from streamrec.domain.trends import VELOCITY_DECIMALS, WINDOWS, TrendingItem, TrendsService
from streamrec.events import (
    ID_PATTERN,
    ID_REGEX,
    ID_RULE,
    CategoryName,
    DuplicateKey,
    EntityId,
    NotJsonNumber,
    issue_message,
    json_type,
    loads,
    quoted,
    text_json,
    whole_number,
)
from streamrec.http_models import (
    CartItemList,
    ErrorName,
    ErrorResponse,
    Health,
    ItemDemand,
    NewItemList,
    SimilarItemList,
    StoredCoupon,
    TrendingList,
    UserCoupons,
    UserItemList,
    UserProfile,
)
from streamrec.observability import logger
from streamrec.repositories.base import COUPONS_PER_SCOPE, RepositoryError, ScopeFullError
from streamrec.settings import Settings

K_DESCRIPTION = "How many items to return (1..100)."
# What a body that is not the object a route reads is told (Powertools' validation errors,
# and arrays, which refused_body turns away before Powertools unwraps their first element).
CART_BODY_MESSAGE = 'the body must be a JSON object like {"items": ["item-1"], "k": 10}'
COUPON_BODY_MESSAGE = "body must be a JSON object describing the coupon"
ID_DESCRIPTION = ID_RULE
CATEGORY_DESCRIPTION = (
    "Only items of this category (1..128 characters, not blank, no control characters); items of "
    "unknown category are left out."
)
# API Gateway bounds the request line (~10 KB for an HTTP API), so the query form is bounded
# in characters as well as in ids; the body form takes up to 100 ids of any length.
MAX_EXCLUDE_QUERY_CHARS = 4000
EXCLUDE_DESCRIPTION = (
    f"Item ids never to return, comma-separated (at most {MAX_EXCLUDED_ITEMS} ids, "
    f"{MAX_EXCLUDE_QUERY_CHARS} characters; each id {ID_DESCRIPTION})."
)

# The routes, as API Gateway names them in ``routeKey``, with a pattern of the raw path
# for events that carry no route key; used to tell a malformed id from an unknown route.
ROUTES = {
    "GET /users/{user_id}/recommendations": re.compile(r"^/users/(?P<user_id>.+)/recommendations$"),
    "GET /items/{item_id}/similar": re.compile(r"^/items/(?P<item_id>.+)/similar$"),
    "GET /items/trending": re.compile(r"^/items/trending$"),
    "GET /items/new": re.compile(r"^/items/new$"),
    "GET /items/{item_id}/demand": re.compile(r"^/items/(?P<item_id>.+)/demand$"),
    "GET /users/{user_id}/cross-sell": re.compile(r"^/users/(?P<user_id>.+)/cross-sell$"),
    "POST /cross-sell": re.compile(r"^/cross-sell$"),
    "GET /users/{user_id}/profile": re.compile(r"^/users/(?P<user_id>.+)/profile$"),
    "DELETE /users/{user_id}": re.compile(r"^/users/(?P<user_id>.+)$"),
    "GET /health": re.compile(r"^/health$"),
    "GET /users/{user_id}/coupons": re.compile(r"^/users/(?P<user_id>.+)/coupons$"),
    "PUT /coupons/{coupon_id}": re.compile(r"^/coupons/(?P<coupon_id>.+)$"),
    "GET /coupons/{coupon_id}": re.compile(r"^/coupons/(?P<coupon_id>.+)$"),
}
_ID_NAMES = ("user_id", "item_id", "coupon_id")
_DIGITS = re.compile(r"[0-9]+")


def _query_integer(value: Any) -> Any:
    """A query integer is written in digits only: pydantic's lax mode would also take
    ``5.0``, `` 5`` or ``+5``."""
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise ValueError("digits only")
    return value


_DECIMAL = re.compile(r"[0-9]{1,15}(\.[0-9]{1,15})?")  # (more digits: no velocity needs them)


def _query_decimal(value: Any) -> Any:
    """A query number is written in digits, with a decimal point or not (``1.5``): pydantic's
    lax mode would also take ``inf``, ``nan``, ``1e3`` or `` 1.5``."""
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise ValueError("digits, with a decimal point or not")
    return value


def _query_boolean(value: Any) -> Any:
    """A query boolean is ``true`` or ``false`` (lowercase, as in JSON): pydantic's lax mode
    would also take yes/no/on/off/1/0/True/FALSE."""
    if isinstance(value, str) and value not in ("true", "false"):
        raise ValueError("true or false")
    return value == "true" if isinstance(value, str) else value


# The bounds sit before the validator (as a pydantic Field) so that the JSON schema keeps
# them as minimum/maximum; a Query(ge=, le=) around a validated type renders them "ge"/"le".
CountQuery = Annotated[int, Field(ge=1, le=100), BeforeValidator(_query_integer)]
KQuery = Annotated[CountQuery, Query(description=K_DESCRIPTION)]
# A user's coupons: at most 20. Each listed coupon can take its own category's coupons to
# read when the list is filled from the most-bought categories, so k = 100 made any caller
# (an unknown user gets the fill alone) read the coupons of 100 categories per request.
MAX_COUPONS_K = 20
CouponCountQuery = Annotated[
    int,
    Field(ge=1, le=MAX_COUPONS_K),
    BeforeValidator(_query_integer),
    Query(description=f"How many coupons to return (1..{MAX_COUPONS_K})."),
]
CategoryQuery = Annotated[CategoryName | None, Query(description=CATEGORY_DESCRIPTION)]
IN_STOCK_DESCRIPTION = (
    "Leave out items the catalog marks out of stock (default true; items without a catalog record "
    "count as in stock)."
)
InStockQuery = Annotated[bool, BeforeValidator(_query_boolean), Query(description=IN_STOCK_DESCRIPTION)]
MinVelocityQuery = Annotated[
    float,
    Field(ge=0),
    BeforeValidator(_query_decimal),
    Query(
        description="Only items whose velocity (as answered, to 4 decimals) is at least this, written "
        "in digits with a decimal point or not, such as 1.5, not with an exponent, at most 15 digits either "
        "side of the point (default 0: every item "
        "with events in the window). At quiet hours the top of a list can read about 1, which is no rise."
    ),
]


def _excluded_ids(value: str) -> str:
    """Check the query's ``exclude`` where the other parameters are checked, so that its
    problems are named with theirs in one 400."""
    if len(value) > MAX_EXCLUDE_QUERY_CHARS:  # (the Query's own bound reports nothing then)
        raise ValueError(
            f"exclude must be at most {MAX_EXCLUDE_QUERY_CHARS} characters of comma-separated item ids"
        )
    ids = _split_ids(value)
    if len(ids) > MAX_EXCLUDED_ITEMS:
        raise ValueError(f"exclude holds {len(ids)} ids; at most {MAX_EXCLUDED_ITEMS}")
    bad = [item for item in ids if not ID_REGEX.fullmatch(item)]
    if bad:
        verb = "is not an item id" if len(bad) == 1 else "are not item ids"
        raise ValueError(f"exclude: {_named(bad)} {verb} ({ID_DESCRIPTION})")
    return value


def _split_ids(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


# What str.strip() takes off the ids of the query's exclude (Python's whitespace), spelt out:
# JSON Schema's regex (ECMAScript's) \s is another set (it holds U+FEFF, not U+001C..U+001F).
_STRIPPED = r"[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_ID = ID_PATTERN.removeprefix("^").removesuffix("$")
# _excluded_ids's rules but the count of ids, for the OpenAPI document only: the validator
# names the ids at fault, where a pattern would say the whole value does not match.
# Each part after the first starts at its comma, so a string matches in one way only: with
# the whitespace on both sides of a comma free to go to either part, a value that fails
# (", , , ... !") took time doubling with each comma in a backtracking engine (Python's,
# JavaScript's: validating clients).
EXCLUDE_QUERY_PATTERN = rf"^{_STRIPPED}*({_ID}{_STRIPPED}*)?(,{_STRIPPED}*({_ID}{_STRIPPED}*)?)*$"
ExcludeQuery = Annotated[
    Annotated[
        str,
        AfterValidator(_excluded_ids),
        WithJsonSchema(
            {"type": "string", "maxLength": MAX_EXCLUDE_QUERY_CHARS, "pattern": EXCLUDE_QUERY_PATTERN}
        ),
    ]
    | None,
    Query(max_length=MAX_EXCLUDE_QUERY_CHARS, description=EXCLUDE_DESCRIPTION),
]


def _answer(description: str, model: type[BaseModel]) -> OpenAPIResponse:
    return {"description": description, "content": {content_types.APPLICATION_JSON: {"model": model}}}


# Every operation's documented answers besides its own success: 400 (validation failures are
# answered 400 by bad_request below, never Powertools' 422, which openapi.py drops from the
# document) and 503; the two routes with a JSON body also 413 and 415 (refused_body). Only GET
# /coupons/{coupon_id} answers 404 for an unknown id (unknown users and items get known=false
# or popular items), besides unknown routes.
_ERRORS: dict[int, OpenAPIResponse] = {
    400: _answer("A malformed parameter or body (the message names it)", ErrorResponse),
    503: _answer("Storage temporarily unavailable; retry", ErrorResponse),
}
# The routes that name a user: with JwtUserClaim, a shopper's token names only its own.
_USER_ERRORS: dict[int, OpenAPIResponse] = {
    **_ERRORS,
    403: _answer("The token may name only its own user (JwtUserClaim)", ErrorResponse),
}
_BODY_ERRORS: dict[int, OpenAPIResponse] = {
    **_ERRORS,
    413: _answer("A body over 64 KiB (MAX_BODY_BYTES)", ErrorResponse),
    415: _answer("A body declared as anything but JSON", ErrorResponse),
}
# The largest body the API reads: a cart of 50 ids or a coupon scoping 100 items of
# 128-character ids takes under 16 KiB. Validating a larger one can cost seconds and hundreds
# of megabytes (one error per unknown field of a 6 MB object), so it is refused unread.
MAX_BODY_BYTES = 64 * 1024


SEEN_PATTERN = "^(purchased|history|none)$"
COUPON_SEEN_PATTERN = f"^({'|'.join(COUPON_SEEN_MODES)})$"
COUPON_SEEN_DESCRIPTION = (
    "Which of the user's own items count toward an item-list coupon: none (default: every item "
    "the user engaged with, purchases too, as for re-orders) or purchased (not the user's past "
    "purchases: no coupon offered for an item because the user bought it). Category coupons "
    "count every event either way."
)
CROSS_SELL_SEEN_DESCRIPTION = (
    "Which of the user's own items may not come back: none (default: past purchases come "
    "back, as re-orders), purchased (never a past purchase), or history (nor any recent "
    "item). Without a user, nothing."
)


class CrossSellRequest(BaseModel):
    """Body of ``POST /cross-sell``: the cart, and optionally whose cart it is."""

    model_config = ConfigDict(extra="forbid")

    items: Annotated[
        list[EntityId],
        Field(min_length=1, max_length=CROSS_SELL_MAX_ITEMS, description="The cart's item ids (1..50)."),
    ]
    user_id: EntityId | None = Field(default=None, description="The user; their stored cart is excluded too.")
    # strict: a JSON integer, not true or "5" (a whole float, 5.0, is read as 5: _whole_k)
    k: Annotated[int, Field(ge=1, le=100, strict=True, description=K_DESCRIPTION)] = 10
    category: Annotated[CategoryName | None, Field(description=CATEGORY_DESCRIPTION)] = None
    exclude: Annotated[
        list[EntityId],
        Field(
            max_length=MAX_EXCLUDED_ITEMS,
            description=f"Item ids never to return (at most {MAX_EXCLUDED_ITEMS}).",
        ),
    ] = []
    in_stock: bool = Field(default=True, strict=True, description=IN_STOCK_DESCRIPTION)
    seen: Annotated[str, Field(pattern=SEEN_PATTERN, description=CROSS_SELL_SEEN_DESCRIPTION)] = EXCLUDE_NONE

    _whole_k = field_validator("k", mode="before")(whole_number)

    @model_validator(mode="before")
    @classmethod
    def _null_is_the_default(cls, body: Any) -> Any:
        # An optional field given as null takes its default, whichever it is (user_id and
        # category already did, as None is their default; k, exclude and in_stock were 400).
        # Other names are kept, so that a misspelt field is still refused, null or not.
        if isinstance(body, dict):
            optional = cls.model_fields.keys() - {"items"}
            return {name: value for name, value in body.items() if value is not None or name not in optional}
        return body


class InvalidFilter(ValueError):
    """A filter parameter that parsed but makes no sense (answered with 400 and the message)."""


def list_filter(category: str | None, exclude: str | list[str] | None, in_stock: bool = True) -> ListFilter:
    """The filter of a list request: ``exclude`` is a comma-separated string (query) or a
    list (body) of item ids."""
    # Both forms are validated before (the query by _excluded_ids, the body by its schema).
    ids = _split_ids(exclude) if isinstance(exclude, str) else list(exclude or [])
    return ListFilter(category=category, exclude=frozenset(ids), in_stock_only=in_stock)


class NotDefined(LookupError):
    """The id in the path names nothing stored (a 404 naming it)."""


def _error(status: int, error: ErrorName, message: str) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": error, "message": message},
    )


def _repeated_query_names(raw_query: str) -> set[str]:
    """The query parameters given more than once (Powertools then passes a list, which a
    one-value parameter refuses)."""
    counts: dict[str, int] = {}
    for name, _value in parse_qsl(raw_query or "", keep_blank_values=True):
        counts[name] = counts.get(name, 0) + 1
    return {name for name, count in counts.items() if count > 1}


CART_FIELDS = f"expected {', '.join(CrossSellRequest.model_fields)}"
COUPON_FIELDS = f"expected {', '.join(CouponSpec.model_fields)}"


def _id_list_rule(name: str) -> str:
    limits = f"1..{CROSS_SELL_MAX_ITEMS}" if name == "items" else f"at most {MAX_EXCLUDED_ITEMS}"
    return f"{name} must be a list of {limits} item ids ({ID_DESCRIPTION})"


def _entry_position(issue: dict[str, Any]) -> int | None:
    """The list position an issue of the cart body is about (``items[3]``), if any."""
    positions = [part for part in issue.get("loc", ())[2:] if isinstance(part, int)]
    return positions[0] if positions else None


def _id_list_message(name: str, issue: dict[str, Any]) -> str:
    """The cart body's ``items`` or ``exclude`` issue, naming the entry at fault (the rule
    follows once, after every entry: see _validation_message)."""
    value = issue.get("input")
    position = _entry_position(issue)
    if position is not None:
        shown = quoted(value) if isinstance(value, str | None) else json_type(value)
        return f"{name}[{position}] is {shown}, not an item id"
    if issue.get("type") == "too_long" and isinstance(value, list):
        return f"{name} holds {len(value)} ids; {_id_list_rule(name)}"
    return _id_list_rule(name)


# How many bad entries of a cart's id list, or unknown names, a message names (then "N more").
SHOWN_ENTRIES = 5


def _validation_message(
    issues: Sequence[dict[str, Any]],
    coupon_body: bool,
    repeated: Collection[str],
    max_k: int = 100,
    seen_modes: Sequence[str] = EXCLUDE_MODES,
) -> str:
    """One 400 message for all of a request's issues: each described once; a body's
    unknown top-level fields together, with the expected ones, and an inner object's
    together (the first few of each: a 64 KiB body may name thousands); the first few bad
    entries of a cart's id list, then the list's rule once."""
    unknown: list[str] = []
    nested: dict[str, list[str]] = {}  # an inner object's path -> its unknown fields
    entries: dict[str, list[dict[str, Any]]] = {"items": [], "exclude": []}
    rest = []
    for issue in issues:
        location = issue.get("loc", ())
        if issue.get("type") == "extra_forbidden" and len(location) == 2:
            unknown.append(str(location[1]))
        elif issue.get("type") == "extra_forbidden" and len(location) > 2:
            nested.setdefault(".".join(str(part) for part in location[1:-1]), []).append(str(location[-1]))
        elif not coupon_body and _is_id_entry(issue):
            entries[str(location[1])].append(issue)
        else:
            rest.append(issue)
    messages = list(
        dict.fromkeys(_describe(issue, coupon_body, repeated, max_k, seen_modes) for issue in rest)
    )
    for path, names in nested.items():
        messages.append(f"{path}: unknown {'fields' if len(names) > 1 else 'field'} {_named(names)}")
    for name, bad in entries.items():
        if bad:
            messages += [_id_list_message(name, issue) for issue in bad[:SHOWN_ENTRIES]]
            if len(bad) > SHOWN_ENTRIES:
                messages.append(f"{len(bad) - SHOWN_ENTRIES} more entries of {name} are not item ids")
            messages.append(_id_list_rule(name))
    if coupon_body and "coupon_id" in unknown:
        unknown.remove("coupon_id")
        messages.append("coupon_id goes in the path (PUT /coupons/{coupon_id}), not in the body")
    if unknown:
        noun = "fields" if len(unknown) > 1 else "field"
        expected = COUPON_FIELDS if coupon_body else CART_FIELDS
        messages.append(f"unknown {noun} {_named(unknown)}; {expected}")
    return "; ".join(messages)


def _is_id_entry(issue: dict[str, Any]) -> bool:
    """An issue about one entry of the cart body's ``items`` or ``exclude`` (a lone
    surrogate in it is named as such, not as a bad id)."""
    location = issue.get("loc", ())
    return (
        location[:1] == ("body",)
        and len(location) > 2
        and location[1] in ("items", "exclude")
        and _entry_position(issue) is not None
        and issue.get("type") != "string_unicode"
    )


def _describe(
    issue: dict[str, Any],
    coupon_body: bool = False,
    repeated: Collection[str] = (),
    max_k: int = 100,
    seen_modes: Sequence[str] = EXCLUDE_MODES,
) -> str:
    """A readable message for one validation issue (``coupon_body``: the request is
    ``PUT /coupons/{coupon_id}``, whose body is a coupon, not a cart; ``repeated``: the
    query parameters given more than once)."""
    location = issue.get("loc", ())
    name = str(location[-1]) if location else "request"
    kind = issue.get("type", "")
    if location[:1] == ("query",) and name in repeated:
        lists = " (one comma-separated list: exclude=a,b)" if name == "exclude" else ""
        return f"{name} is given more than once; give it once{lists}"
    if kind == "string_unicode":  # e.g. "\ud800" in the JSON: a lone surrogate, not text
        field = ".".join(str(part) for part in location[1:] if isinstance(part, str)) or name
        return f"{field} is not valid Unicode text"
    if location[:1] == ("body",) and coupon_body:
        message = issue_message(issue)
        if kind == "json_invalid" or (
            kind in ("model_attributes_type", "dict_type", "missing") and len(location) == 1
        ):
            return COUPON_BODY_MESSAGE
        if len(location) == 1:  # about the whole coupon, naming no field
            return message
        return f"{'.'.join(str(part) for part in location[1:])}: {message}"
    if location[:1] == ("body",):
        fields = [str(part) for part in location[1:] if isinstance(part, str)]
        name = fields[0] if fields else "body"
        if kind == "json_invalid" or name == "body":
            return CART_BODY_MESSAGE
        if name in ("items", "exclude"):
            return _id_list_message(name, issue)
        if name == "k":
            return (
                "k must be an integer between 1 and 100 "
                "(a whole JSON number, 5 or 5.0, not a string or boolean)"
            )
        if name == "in_stock":
            return "in_stock must be true or false (a JSON boolean, not a string or number)"
    if name == "k":
        return f"k must be an integer between 1 and {max_k}"
    if name in _ID_NAMES and location[:1] in (("path",), ("body",)):
        return f"{name} is malformed: {ID_DESCRIPTION}"
    if name == "seen":
        return f"seen must be one of {', '.join(seen_modes)}"
    if name == "exclude":  # the query's: _excluded_ids words its problems
        return issue_message(issue)
    if name == "window":
        return f"window must be {' or '.join(WINDOWS)}"
    if name == "category":
        return _category_message(kind, issue.get("input"))
    if name == "in_stock":
        return "in_stock must be true or false (lowercase)"
    if name == "min_velocity":
        return (
            "min_velocity must be a number of 0 or more, in digits (such as 1.5; at most 15 either side "
            "of the point)"
        )
    return f"{name}: {issue_message(issue)}"


def _category_message(kind: str, value: Any) -> str:
    if kind == "string_type":  # in the body: an array, a number, ...
        return f"category must be a JSON string, not {json_type(value)}"
    rule = "category must be 1..128 characters, not blank, without control characters"
    if kind == "string_too_long" and isinstance(value, str):
        # Its length composed (NFC) may be more than the sender counted: "\u0958" is two.
        return f"{rule} (this one has {len(value)}, counted in Unicode's composed form, NFC)"
    return rule


def _listing(result: RecommendationList) -> list[dict[str, Any]]:
    return [asdict(item) for item in result.items]


def _method(event: dict[str, Any]) -> str:
    """A payload 2.0 event's HTTP method, upper case ("" when it carries none)."""
    return str((event.get("requestContext") or {}).get("http", {}).get("method", "")).upper()


def malformed_id(event: dict[str, Any]) -> str | None:
    """For a request that reached no route: the name of the path id that made it miss
    (``user_id``/``item_id``) when the request is one of our routes, else None."""
    method = _method(event)
    route_key = event.get("routeKey")
    if isinstance(route_key, str) and route_key in ROUTES:
        names = [n for n in _ID_NAMES if f"{{{n}}}" in route_key]
        return names[0] if names else None
    path = event.get("rawPath") or ""
    for key, pattern in ROUTES.items():
        route_method = key.split(" ", 1)[0]
        found = pattern.match(path) if route_method == method else None
        if found and found.groupdict():
            return next(iter(found.groupdict()))
    return None


def _media_type(event: dict[str, Any]) -> str:
    headers = {str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()}
    # A header sent twice reaches the function joined by a comma (API Gateway, the local
    # API): the same type twice is that type; different ones name no single type (a comma
    # inside a quoted parameter value does not join types).
    parts = _split_outside_quotes(headers.get("content-type", ""))
    types = {part.split(";", 1)[0].strip().lower() for part in parts}
    return types.pop() if len(types) == 1 else MIXED_MEDIA_TYPES


def _split_outside_quotes(header: str) -> list[str]:
    """The header's parts between the commas outside double quotes, in one pass: a regex
    lookahead rescanning to the end at each comma took 0.5 s of CPU on a 10 KB header of
    commas, on every route (GET /health needs no credentials)."""
    parts, start, quoted = [], 0, False
    for index, char in enumerate(header):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append(header[start:index])
            start = index + 1
    parts.append(header[start:])
    return parts


# What _media_type says of a header naming two different types: not JSON, and not none.
MIXED_MEDIA_TYPES = "(several media types)"


def _is_json(media_type: str) -> bool:
    # Media types are case-insensitive (RFC 9110); +json suffixes are JSON (RFC 6839).
    return media_type == "application/json" or media_type.endswith("+json")


def with_json_media_type(event: dict[str, Any]) -> dict[str, Any]:
    """The event as Powertools can parse it: a JSON body's Content-Type spelt
    ``application/json`` (Powertools compares the header to that exact lowercase prefix and
    fails on ``Application/JSON`` or ``application/vnd.api+json`` with an internal error), and
    a request without a body, or whose Content-Type names no media type, rid of it
    (Powertools would fail on the type of a body that is not there, e.g. ``text/plain``, with
    an internal error too; the route then says the body is missing). ``refused_body`` has
    already refused every body that is not JSON."""
    media_type = _media_type(event)
    has_body = bool(event.get("body"))
    given = event.get("headers") or {}
    declared = any(str(name).lower() == "content-type" for name in given)
    if not declared or (has_body and media_type and not _is_json(media_type)):
        return event
    headers = {name: value for name, value in given.items() if str(name).lower() != "content-type"}
    # A header naming no media type (";", "; charset=utf-8") goes, as if none were sent:
    # Powertools would refuse it as not JSON with an internal error.
    if has_body and media_type:
        headers["content-type"] = "application/json"
    return {**event, "headers": headers}


# The methods of the routes that read a body (POST /cross-sell, PUT /coupons/{id}); the
# others ignore one (Powertools parses a body only for a route that declares it).
_BODY_METHODS = frozenset({"POST", "PUT"})


def answer_json(value: Any) -> str:
    """An answer's body: compact JSON with non-ASCII text as itself, sent as UTF-8 (Powertools'
    default escapes it: ``\\u30de`` is 6 bytes where UTF-8 takes 3, so a Japanese title or
    category answered at twice its size); a lone surrogate, which UTF-8 cannot carry, is
    escaped."""
    return text_json(value, separators=(",", ":"), cls=Encoder)


def _raw_answer(status: int, error: ErrorName, message: str) -> dict[str, Any]:
    """An error answer (payload 2.0) given before the resolver, shaped as ``_error``'s."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": answer_json({"error": error, "message": message}),
        "isBase64Encoded": False,
    }


class _NotBase64(ValueError):
    """A body marked base64-encoded that is not (Powertools' decoding would fail on it with
    an internal error)."""


def _body_text(event: dict[str, Any]) -> str | None:
    """The body as text; None when it is not UTF-8 (left to Powertools, whose answer names
    the problem). Raises _NotBase64 for a body marked base64-encoded that is not strictly
    base64: Powertools' lenient decoding would skip the characters outside the alphabet of a
    plain JSON body so marked, and answer that its JSON is not JSON."""
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return body
    try:
        raw = base64.b64decode(body, validate=True)
    except ValueError:  # binascii.Error, or characters that are not ASCII
        raise _NotBase64() from None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def caller(event: dict[str, Any]) -> str:
    """Who made the request, as API Gateway's authorizer vouches for it (for the log line of
    an admin action): the IAM principal's ARN, or the JWT's subject (and client id); "" when
    the request was not authorized (the local API)."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    iam = authorizer.get("iam") or {}
    if iam.get("userArn"):
        return str(iam["userArn"])
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    if not claims:
        return ""
    subject, client = claims.get("sub", ""), claims.get("client_id", "")
    return f"jwt:{subject}" + (f" (client {client})" if client and client != subject else "")


class ForeignUser(Exception):
    """The request's token may not name this user (``Settings.jwt_user_claim``)."""


def foreign_user(event: dict[str, Any], user_id: str, settings: Settings) -> str:
    """Why the request's token may not name ``user_id`` ("" when it may).

    With ``jwt_user_claim`` set, a JWT without ``jwt_admin_scope`` (a shopper's token) names
    only the user its claim holds. Admin tokens (the shop's backend), IAM callers and
    requests without an authorizer (the local API) name any user. Any other authorizer (a
    Lambda authorizer's context, payload 1.0's flat claims) names none: the check cannot
    tell a shopper from the shop there, so it fails closed."""
    claim = settings.jwt_user_claim
    if not claim:
        return ""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    if not authorizer or isinstance(authorizer.get("iam"), dict):
        return ""
    jwt = authorizer.get("jwt")
    if not isinstance(jwt, dict):
        return (
            "the request's authorizer is neither a JWT authorizer's (payload 2.0) nor IAM, "
            f"so with JWT_USER_CLAIM={claim} it may name no user"
        )
    claims = jwt.get("claims") or {}
    if settings.jwt_admin_scope in _token_scopes(jwt.get("scopes"), claims):
        return ""
    own = str(claims.get(claim) or "")
    if not own:
        return f"the token has no {claim} claim, so it may name no user"
    if own != user_id:
        return f"the token may name only its own user (its {claim} claim), not {user_id}"
    return ""


def _token_scopes(scopes: Any, claims: dict[str, Any]) -> list[str]:
    """The token's scopes: API Gateway's list when it gives one (it may give null), else the
    ``scope`` or ``scp`` claim, space-separated, or an array API Gateway has written as
    ``"[a b]"`` (it passes every claim as a string)."""
    if isinstance(scopes, list):
        return [str(scope) for scope in scopes]
    text = str(claims.get("scope") or claims.get("scp") or "")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return text.split()


def _body_bytes(event: dict[str, Any]) -> int:
    """The body's size as sent (a base64 body's decoded size)."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(body) * 3 // 4 - body[-2:].count("=")
    return len(body.encode(errors="surrogatepass"))


def _json_problem(text: str, described: str) -> str | None:
    """What keeps the body from being the JSON object ``described``, said plainly: not JSON
    (where the parser stopped), or an array; None otherwise (a body too deeply nested, or
    holding a number of over 4,300 digits, is left to the resolver, whose handlers name that)."""
    try:
        parsed = loads(text, finite=True)
    except DuplicateKey as duplicate:  # json would keep the last: which was meant is a guess
        return f"the body's {duplicate}"
    except NotJsonNumber as constant:  # read as a float, it was named a wrong kind of number
        return f"the body is not valid JSON ({constant}); {described}"
    except json.JSONDecodeError as error:
        where = f"{error.msg}: line {error.lineno}, column {error.colno}"
        return f"the body is not valid JSON ({where}); {described}"
    except (ValueError, RecursionError):  # a number of over 4,300 digits, too deep: the resolver's
        return None
    return f"{described}, not an array" if isinstance(parsed, list) else None


def refused_body(event: dict[str, Any]) -> dict[str, Any] | None:
    """The answer (payload 2.0) to a request to a body-reading method whose body no route
    takes, else None: a 413 for a body over MAX_BODY_BYTES, a 415 for a body declared as
    anything but JSON, a 400 for a body that is not JSON (saying where its parser stopped),
    a JSON array or a body starting with a byte-order mark.
    Checked before the resolver: Powertools would try to parse forms and multipart bodies,
    and answer a malformed multipart header with an internal error; and it validates a JSON
    array's first element as the body, silently dropping the rest."""
    if not event.get("body"):
        return None  # nothing to parse, whatever the header says (e.g. a GET from a form page)
    method = _method(event)
    if method not in _BODY_METHODS:
        return None
    size = _body_bytes(event)
    if size > MAX_BODY_BYTES:
        return _raw_answer(
            413,
            "payload_too_large",
            f"the body is {size:,} bytes; at most {MAX_BODY_BYTES:,} are read "
            "(a cart holds at most 50 items, a coupon's scope at most 100)",
        )
    media_type = _media_type(event)
    if media_type and not _is_json(media_type):
        return _raw_answer(
            415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)"
        )
    try:
        text = _body_text(event)
    except _NotBase64:  # not from API Gateway, which encodes bodies itself
        return _raw_answer(400, "bad_request", "the body is marked base64-encoded but is not base64")
    described = COUPON_BODY_MESSAGE if method == "PUT" else CART_BODY_MESSAGE
    if text is not None and text.startswith("\ufeff"):
        # JSON's parser refuses it as if the body were not JSON at all: say what it is.
        return _raw_answer(
            400,
            "bad_request",
            f"{described}; it starts with a byte-order mark (U+FEFF): send the JSON without it",
        )
    problem = _json_problem(text, described) if text is not None else None
    return _raw_answer(400, "bad_request", problem) if problem is not None else None


# The paths (in Powertools' <name> form) whose query parameters are checked: every route but
# GET /health. A request no route matches reaches the middlewares on a catch-all route of
# Powertools' own, whose 404 (or our malformed-id 400) must not be preempted.
_CHECKED_PATHS = frozenset(
    re.sub(r"\{(\w+)\}", r"<\1>", key.split(" ", 1)[1]) for key in ROUTES if key != "GET /health"
)


def _named(names: Sequence[str], shown: int = SHOWN_ENTRIES) -> str:
    """Names for a message: quoted, each cut to 64 characters (with an ellipsis), the first few."""
    listed = ", ".join(repr(name if len(name) <= 64 else name[:63] + "…") for name in names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")


def refuse_unknown_query_parameters(
    app: APIGatewayHttpResolver, next_middleware: Callable[..., Response]
) -> Response:
    """A 400 naming the query parameters the matched route does not take: a misspelt filter
    (``?categroy=camping``) would otherwise be ignored and return the unfiltered list. The
    route's parameters are the ones Powertools validates (``route.dependant.query_params``;
    ``_route`` is the route Powertools matched, which its own validation reads too)."""
    route = app.context.get("_route")
    given = app.current_event.query_string_parameters or {}
    # GET /health stays lenient: monitors add parameters of their own (cache busters).
    if route is not None and given and route.path in _CHECKED_PATHS:
        undecodable = _not_utf8(app.current_event.raw_query_string)
        if undecodable:
            # Decoded leniently (U+FFFD) a value would filter by a name no one sent; a path
            # id of such bytes is refused as malformed alike.
            return _error(
                400, "bad_request", f"query parameter {undecodable!r} is not UTF-8 once percent-decoded"
            )
        known = {field.alias for field in route.dependant.query_params}
        unknown = sorted(set(given) - known)
        if unknown:
            takes = f"it takes {', '.join(sorted(known))}" if known else "it takes none"
            if route.path == "/cross-sell":
                takes += "; parameters such as k go in the JSON body"
            noun = "parameters" if len(unknown) > 1 else "parameter"
            return _error(400, "bad_request", f"unknown query {noun} {_named(unknown)} ({takes})")
    return next_middleware(app)


def _not_utf8(raw_query: str) -> str:
    """The name of the first query parameter whose name or value is not UTF-8 once
    percent-decoded ("" if none)."""
    for pair in (raw_query or "").split("&"):
        name, _, value = pair.partition("=")
        for part in (name, value):
            try:
                unquote_plus(part, errors="strict")
            except UnicodeDecodeError:
                return unquote_plus(name)
    return ""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def refuse_malformed_path_ids(
    app: APIGatewayHttpResolver, next_middleware: Callable[..., Response]
) -> Response:
    """A 400 for a path id that is not an id as the request gave it. Powertools matches a
    route with a ``^...$`` regex, whose ``$`` also matches before a final newline, and hands
    the route what the regex captured: ``DELETE /users/alice%0A`` would reach the route as
    ``alice`` and forget her. So each id of the matched route is checked as API Gateway
    delivered it (``pathParameters``), and the path's segment of it for control characters."""
    route = app.context.get("_route")
    if route is not None:
        event = app.current_event.raw_event
        given = event.get("pathParameters") or {}
        pattern = route.path.split("/")
        segments = str(event.get("rawPath") or "").split("/")
        for position, part in enumerate(pattern):
            if not (part.startswith("<") and part.endswith(">")):
                continue
            name = part[1:-1]
            delivered = given.get(name)
            segment = segments[position] if len(segments) == len(pattern) else ""
            if (isinstance(delivered, str) and not ID_REGEX.fullmatch(delivered)) or _CONTROL.search(segment):
                return _error(400, "bad_request", f"{name} is malformed: {ID_DESCRIPTION}")
    return next_middleware(app)


def _answer_errors(app: APIGatewayHttpResolver) -> None:
    """Every error the routes raise, as a 4xx or 5xx JSON answer (``ErrorResponse``)."""

    @app.exception_handler(ForeignUser)
    def forbidden(error: ForeignUser) -> Response:
        return _error(403, "forbidden", str(error))

    @app.exception_handler(RequestValidationError)
    def bad_request(error: RequestValidationError) -> Response:
        coupon_body = app.current_event.http_method.upper() == "PUT"  # only PUT /coupons/{id}
        repeated = _repeated_query_names(app.current_event.raw_query_string)
        # GET /users/{user_id}/coupons takes fewer
        user_coupons = app.current_event.path.endswith("/coupons")
        max_k = MAX_COUPONS_K if user_coupons else 100
        seen_modes = COUPON_SEEN_MODES if user_coupons else EXCLUDE_MODES
        messages = _validation_message(error.errors(), coupon_body, repeated, max_k, seen_modes)
        return _error(400, "bad_request", messages)

    @app.exception_handler(NotDefined)
    def not_defined(error: NotDefined) -> Response:
        return _error(404, "not_found", str(error))

    @app.exception_handler(ScopeFullError)
    def scope_full(error: ScopeFullError) -> Response:
        return _error(409, "conflict", str(error))

    @app.exception_handler(InvalidFilter)
    def bad_filter(error: InvalidFilter) -> Response:
        return _error(400, "bad_request", str(error))

    @app.exception_handler(UnicodeDecodeError)
    def undecodable_body(_decode_error: UnicodeDecodeError) -> Response:
        # Powertools decodes the body before validating it: bytes that are not UTF-8.
        return _error(400, "bad_request", "body must be a JSON object in UTF-8")

    @app.exception_handler(ValueError)
    def integer_too_long(error: ValueError) -> Response:
        # json.loads refuses an integer of more than 4,300 digits (int_max_str_digits) with a
        # plain ValueError; any other ValueError reaching here is our bug.
        if app.current_event.body and "integer string conversion: value has" in str(error):
            return _error(400, "bad_request", "body holds a number of more than 4,300 digits")
        return internal_error(error)

    @app.exception_handler(RecursionError)
    def nested_too_deeply(recursion: RecursionError) -> Response:
        # json.loads recurses once per nesting level: "[[[[..." thousands deep. A request
        # without a body cannot do that: then it is our bug, answered like any other.
        if not app.current_event.body:
            return internal_error(recursion)
        return _error(400, "bad_request", "body is nested too deeply to be a cart or a coupon")

    @app.exception_handler(RepositoryError)
    def storage_unavailable(error: RepositoryError) -> Response:
        # Throttling comes in storms: the message (operation, table, DynamoDB's error code)
        # without the trace, some 8 KB a request.
        logger.error("storage call failed", extra={"error": str(error)})
        return _error(503, "unavailable", "recommendations are temporarily unavailable; retry shortly")

    @app.exception_handler(Exception)
    def internal_error(error: Exception) -> Response:
        # The log keeps the trace (no request data: ids only, via the correlation id);
        # the client gets a plain message naming nothing internal.
        logger.exception("unhandled error", extra={"error_type": type(error).__name__})
        return _error(500, "internal_error", "the request could not be served; retry later")

    @app.not_found
    def not_found(_missing: Any) -> Response:
        name = malformed_id(app.current_event.raw_event)
        if name is not None:
            return _error(400, "bad_request", f"{name} is malformed: {ID_DESCRIPTION}")
        return _error(404, "not_found", "no such route")


def build_app(
    service: RecommendationService,
    cross_sell: CrossSellService | None = None,
    coupons: CouponService | None = None,
    clock: Callable[[], float] = time.time,
    trends: TrendsService | None = None,
) -> APIGatewayHttpResolver:
    """The resolver with every route bound to ``service`` (and ``cross_sell``, by default
    built on the same settings and repositories; the coupon routes to ``coupons`` and the
    trending and demand routes to ``trends`` when given)."""
    app = APIGatewayHttpResolver(enable_validation=True, serializer=answer_json)
    app.use(middlewares=[refuse_malformed_path_ids, refuse_unknown_query_parameters])
    users = service.users
    complements = cross_sell or CrossSellService(service.settings, service.users, service.similarity)
    profiles = ProfileService(service.settings, service.users)

    def own_user(user_id: str) -> None:
        problem = foreign_user(app.current_event.raw_event, user_id, service.settings)
        if problem:
            raise ForeignUser(problem)

    _answer_errors(app)

    @app.get("/health", responses={200: _answer("The API is up", Health)})
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/users/<user_id>/recommendations",
        responses={200: _answer("The user's recommendations, best first", UserItemList), **_USER_ERRORS},
    )
    def recommendations(
        user_id: Annotated[str, Path(pattern=ID_PATTERN, description="The user.")],
        k: KQuery = 10,
        seen: Annotated[
            str,
            Query(
                pattern=SEEN_PATTERN,
                description="Which of the user's own items may not come back: purchased items "
                "(default), every recent item, cart item and purchase (history), or none.",
            ),
        ] = EXCLUDE_PURCHASED,
        category: CategoryQuery = None,
        exclude: ExcludeQuery = None,
        in_stock: InStockQuery = True,
    ) -> dict[str, Any]:
        given = app.current_event.query_string_parameters or {}
        if exclude in EXCLUDE_MODES and "seen" not in given:
            # The own-items mode was called exclude= before it became seen=: say so rather
            # than read the keyword as an item id (with seen= given, it is one).
            raise InvalidFilter(
                f"exclude takes item ids; for the user's own items use seen={exclude} "
                f"(to exclude an item named {exclude!r}, give seen= too)"
            )
        own_user(user_id)
        wanted = list_filter(category, exclude, in_stock)
        result = service.for_user(user_id, k, exclude=seen, list_filter=wanted)
        return {"user_id": user_id, "fallback": result.fallback, "items": _listing(result)}

    @app.get(
        "/items/<item_id>/similar",
        responses={200: _answer("Items similar to the item, best first", SimilarItemList), **_ERRORS},
    )
    def similar(
        item_id: Annotated[str, Path(pattern=ID_PATTERN, description="The item.")],
        k: KQuery = 10,
        category: CategoryQuery = None,
        exclude: ExcludeQuery = None,
        in_stock: InStockQuery = True,
    ) -> dict[str, Any]:
        result = service.similar_items(item_id, k, list_filter(category, exclude, in_stock))
        return {"item_id": item_id, "fallback": result.fallback, "items": _listing(result)}

    @app.get(
        "/items/new",
        responses={200: _answer("The catalog's newest items in stock, newest first", NewItemList), **_ERRORS},
    )
    def new_items(
        k: KQuery = 10,
        category: CategoryQuery = None,
        exclude: ExcludeQuery = None,
        in_stock: InStockQuery = True,
    ) -> dict[str, Any]:
        """New arrivals: the items whose first catalog record in stock came last (a new price,
        title or restock does not make an item new again), of the whole catalog or of one
        category. Empty until catalog records in stock have come."""
        arrivals = service.new_arrivals(k, list_filter(category, exclude, in_stock))
        return {
            "category": category,
            "items": [{"item_id": new.item_id, "listed_at": iso_utc(new.listed_at)} for new in arrivals],
        }

    @app.get(
        "/users/<user_id>/cross-sell",
        responses={200: _answer("Complements of the user's cart, best first", UserItemList), **_USER_ERRORS},
    )
    def user_cross_sell(
        user_id: Annotated[str, Path(pattern=ID_PATTERN, description="The user.")],
        k: KQuery = 10,
        category: CategoryQuery = None,
        exclude: ExcludeQuery = None,
        in_stock: InStockQuery = True,
        seen: Annotated[
            str, Query(pattern=SEEN_PATTERN, description=CROSS_SELL_SEEN_DESCRIPTION)
        ] = EXCLUDE_NONE,
    ) -> dict[str, Any]:
        """Items often in baskets with those in the user's cart (added, not removed, not yet
        bought); each names the cart item it goes with. With an empty cart: the user's past
        purchases ("you bought it before"; not with seen=purchased), then popular items."""
        own_user(user_id)
        result = complements.for_user(user_id, k, list_filter(category, exclude, in_stock), seen)
        return {"user_id": user_id, "fallback": result.fallback, "items": _listing(result)}

    @app.post(
        "/cross-sell",
        responses={
            200: _answer("Complements of the posted items, best first", CartItemList),
            **_BODY_ERRORS,
            403: _USER_ERRORS[403],
        },
    )
    def cross_sell_items(request: Annotated[CrossSellRequest, Body()]) -> dict[str, Any]:
        """Items often in baskets with the given ones ("frequently bought together"), never one
        of them (nor, with user_id, one in the user's stored cart)."""
        if request.user_id is not None:
            own_user(request.user_id)
        result = complements.for_request(
            request.items,
            request.k,
            request.user_id,
            list_filter(request.category, request.exclude, request.in_stock),
            request.seen,
        )
        return {"items": _listing(result), "fallback": result.fallback}

    @app.get(
        "/users/<user_id>/profile",
        responses={200: _answer("The user's profile", UserProfile), **_USER_ERRORS},
    )
    def profile(
        user_id: Annotated[str, Path(pattern=ID_PATTERN, description="The user.")],
    ) -> dict[str, Any]:
        """The user's recent items (newest first, affinity decayed to now), category
        affinities (summed decayed affinities of the recent items in each category), event
        counts by type, cart and number of distinct purchases. Unknown users: known=false."""
        own_user(user_id)
        return asdict(profiles.for_user(user_id, clock()))

    @app.delete(
        "/users/<user_id>",
        status_code=204,
        responses={
            204: {"description": "Forgotten (also when unknown); no body", "content": {}},
            **_ERRORS,
        },
    )
    def forget_user(
        user_id: Annotated[str, Path(pattern=ID_PATTERN, description="The user to forget.")],
    ) -> Response[str]:
        """Delete the user's row: recent items, purchases, cart, event ids. Aggregate counts
        (which hold no user id) keep the user's past contributions."""
        users.delete(user_id)
        logger.info(
            "user forgotten", extra={"user_id": user_id, "caller": caller(app.current_event.raw_event)}
        )
        return Response(status_code=204, body="")

    if coupons is not None:
        _add_coupon_routes(app, coupons, clock, own_user)
    if trends is not None:
        _add_trend_routes(app, trends, clock)
    return app


def _trend(item: TrendingItem) -> dict[str, Any]:
    return {
        "item_id": item.item_id,
        "category": item.category,
        "velocity": round(item.velocity, VELOCITY_DECIMALS),
        "count": round(item.count, 3),
        "expected": round(item.expected, 3),
    }


def _add_trend_routes(app: APIGatewayHttpResolver, trends: TrendsService, clock: Callable[[], float]) -> None:
    @app.get(
        "/items/trending",
        responses={200: _answer("The fastest-rising items, best first", TrendingList), **_ERRORS},
    )
    def trending(
        window: Annotated[
            str, Query(pattern="^(1h|24h)$", description="The window ending now: 1h (default) or 24h.")
        ] = "1h",
        category: Annotated[
            CategoryName | None,
            Query(
                description="Only items of this category (1..128 characters, not blank, "
                "no control characters)."
            ),
        ] = None,
        k: KQuery = 10,
        exclude: ExcludeQuery = None,
        in_stock: InStockQuery = True,
        min_velocity: MinVelocityQuery = 0.0,
    ) -> dict[str, Any]:
        """Items gaining attention fastest against their own usual rate: velocity =
        (count in the window + 5) / (expected count + 5), expected = the item's hourly
        rate over the 7 days before the window times the window's length, each hour
        weighted by the shop's hour-of-day profile (its usual traffic at that hour of the
        day relative to its mean hour), so the daily cycle is expected (counts are summed
        event weights). With a category, also the category's own velocity. Out-of-stock
        items are left out unless in_stock=false (a shop deciding what to restock wants
        them)."""
        wanted = list_filter(category, exclude, in_stock)
        items, whole = trends.trending(
            window,
            k,
            category,
            clock(),
            exclude=wanted.exclude,
            in_stock_only=wanted.in_stock_only,
            min_velocity=min_velocity,
        )
        body: dict[str, Any] = {"window": window, "category": category, "items": [_trend(i) for i in items]}
        if whole is not None:
            body["category_trend"] = {key: value for key, value in _trend(whole).items() if key != "item_id"}
        return body

    @app.get(
        "/items/<item_id>/demand",
        responses={200: _answer("The item's recent purchases and forecast", ItemDemand), **_ERRORS},
    )
    def demand(
        item_id: Annotated[str, Path(pattern=ID_PATTERN, description="The item.")],
    ) -> dict[str, Any]:
        """Units bought recently (last 24 h, today, per day over the last DEMAND_DAYS whole
        days, 28 by default, shown day by day) and the forecast from those whole days (up to
        yesterday): their mean per day (or Holt's smoothing, DEMAND_METHOD=holt), for the
        current UTC day (next_24h) and it plus the 6 following (next_7d); today's sales so
        far are in purchases.today, not in the forecast. An item without events in those
        days nor today (or unknown): known=false and zeros."""
        d = trends.demand(item_id, clock())
        return {
            "item_id": d.item_id,
            "known": d.known,
            "purchases": {
                "last_24h": d.last_24h,
                "today": d.today,
                "per_hour_24h": round(d.per_hour_24h, 4),
                "per_day_7d": round(d.per_day_7d, 4),
                f"per_day_{len(d.days)}d": round(d.per_day, 4),
            },
            "days": d.days,
            "forecast": {
                "next_24h": round(d.next_24h, 3),
                "next_7d": round(d.next_7d, 3),
                "method": d.method,
                "level": round(d.level, 4),
                "trend": round(d.trend, 4),
                **({"alpha": d.alpha, "beta": d.beta} if d.method == "holt" else {}),
            },
        }


def _add_coupon_routes(
    app: APIGatewayHttpResolver,
    coupons: CouponService,
    clock: Callable[[], float],
    own_user: Callable[[str], None],
) -> None:
    @app.get(
        "/users/<user_id>/coupons",
        responses={200: _answer("The coupons the user may use now, best first", UserCoupons), **_USER_ERRORS},
    )
    def user_coupons(
        user_id: Annotated[str, Path(pattern=ID_PATTERN, description="The user.")],
        k: CouponCountQuery = 3,
        seen: Annotated[
            str, Query(pattern=COUPON_SEEN_PATTERN, description=COUPON_SEEN_DESCRIPTION)
        ] = EXCLUDE_NONE,
    ) -> dict[str, Any]:
        """The coupons the user may use now: those of the user's own scopes, ranked by the
        user's predicted purchases in their scope and their value, then (score 0) coupons
        of the shop's most-bought categories filling a list shorter than k. Expired, not
        yet valid, exhausted and used-up coupons never appear."""
        own_user(user_id)
        offered = coupons.for_user(user_id, k, clock(), seen)
        return {"user_id": user_id, "coupons": [asdict(coupon) for coupon in offered]}

    @app.put(
        "/coupons/<coupon_id>",
        responses={
            200: _answer("The coupon as stored, with its counts", StoredCoupon),
            409: _answer(
                f"Its scope (a category or a listed item) already lists {COUPONS_PER_SCOPE} coupons "
                "that have not expired: the coupon is not defined",
                ErrorResponse,
            ),
            **_BODY_ERRORS,
        },
    )
    def put_coupon(
        coupon_id: Annotated[str, Path(pattern=ID_PATTERN, description="The coupon.")],
        spec: Annotated[CouponSpec, Body(description="The coupon's definition.")],
    ) -> dict[str, Any]:
        """Create or redefine a coupon; redemptions already counted are kept. The coupons of
        its scope that have expired leave the scope's index."""
        now = clock()
        coupon = coupons.put(coupon_id, spec, now)
        logger.info(
            "coupon defined", extra={"coupon_id": coupon_id, "caller": caller(app.current_event.raw_event)}
        )
        return stored_coupon(coupon, now)

    @app.get(
        "/coupons/<coupon_id>",
        responses={
            200: _answer("The coupon as stored, with its counts", StoredCoupon),
            404: _answer("No coupon of that id is defined", ErrorResponse),
            **_ERRORS,
        },
    )
    def get_coupon(
        coupon_id: Annotated[str, Path(pattern=ID_PATTERN, description="The coupon.")],
    ) -> dict[str, Any]:
        """A coupon's definition as stored, its redemption counts and whether it is offered
        now (its state). An expired coupon stays readable: its row is the shop's record."""
        now = clock()
        coupon = coupons.get(coupon_id)
        if coupon is None:
            raise NotDefined(f"coupon {coupon_id!r} is not defined (PUT /coupons/{{coupon_id}} defines it)")
        return stored_coupon(coupon, now)
