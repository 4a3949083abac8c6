"""The user-event schema (one JSON object per Kinesis record) and its parser."""

from __future__ import annotations

import json
import math
import re
import time
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
# ID_PATTERN in words, for messages.
ID_RULE = "1-128 characters: ASCII letters A-Z a-z, digits 0-9 and . _ : @ - (not starting with a symbol)"
# Use ID_REGEX.fullmatch: with re.match, "$" would accept a trailing newline.
ID_REGEX = re.compile(ID_PATTERN)
EventType = Literal["view", "add_to_cart", "remove_from_cart", "purchase", "coupon_redeemed"]
USER_EVENT_TYPES: tuple[str, ...] = get_args(EventType)
# A coupon redemption names a coupon (``coupon_id``) and no item; every other type names an item.
COUPON_REDEEMED = "coupon_redeemed"
# The event types a basket_id (or order_id) belongs to; on the others it is ignored.
BASKET_EVENT_TYPES = ("add_to_cart", "purchase")

# Events older than this are certainly wrong (a clock at zero, a duration sent as a time...).
EARLIEST_TIMESTAMP = 946_684_800  # 2000-01-01T00:00:00Z
# Producers' clocks drift; anything further in the future than this is rejected.
MAX_CLOCK_SKEW_SECONDS = 86_400
# Above this, "seconds" are epoch milliseconds (year 5138; milliseconds of 2000 are 9.5e11).
MILLISECONDS_LIKELY = 1e11
# The units epoch "seconds" past MILLISECONDS_LIKELY most likely are, by magnitude: each
# from 2000 (9.5e11 ms) to past 2100 (4.1e12 ms), with room either side.
_EPOCH_UNITS = ((1e14, "milliseconds"), (1e17, "microseconds"), (1e20, "nanoseconds"))


def epoch_unit_hint(seconds: float) -> str:
    """For a number of "seconds" far in the future: the unit it most likely is, as a
    parenthesised hint (" (epoch seconds expected, not milliseconds)"), else ""."""
    if not MILLISECONDS_LIKELY < seconds < math.inf:
        return ""
    unit = next((name for bound, name in _EPOCH_UNITS if seconds < bound), "")
    return f" (epoch seconds expected, not {unit})" if unit else ""


# A date alone, with or without a zone after it (which Python drops for a date).
_DATE_ONLY = re.compile(
    r"\s*[0-9]{4}-?(?:[0-9]{2}-?[0-9]{2}|W[0-9]{2}-?[0-9]?)(?:[zZ]|[+-][0-9]{2}(?::?[0-9]{2})?)?\s*"
)
DATE_ONLY_MESSAGE = "timestamp is a date alone: give a time of day and a zone (e.g. 2025-11-27T00:00:00Z)"

# Epoch seconds written as a string: digits, optionally a fraction and an exponent.
EPOCH_TEXT = re.compile(r"-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?")

# max_length too: past the models' 512-character limit, which pydantic checks before the
# pattern, a long id would be told 512.
EntityId = Annotated[str, Field(pattern=ID_PATTERN, max_length=128)]


def _blank(value: str, invisible: tuple[str, ...] = ("Cf",)) -> bool:
    """Whether ``value`` is spaces and characters of the ``invisible`` Unicode categories
    (format characters such as a zero-width space) alone."""
    return not "".join(c for c in value if unicodedata.category(c) not in invisible).strip()


def _category_problem(value: str) -> str | None:
    # A category is shown and matched as text: a blank one (spaces, or only invisible format
    # characters such as a zero-width space) or one holding control characters (a NUL, a
    # newline) is a producer's bug, not a category.
    if _blank(value):
        return "a category must not be blank"
    if any(unicodedata.category(character) == "Cc" for character in value):
        return "a category must not hold control characters"
    return None


def is_text(value: str) -> bool:
    """Whether ``value`` is Unicode text (JSON can carry lone surrogates, which are not)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def whole_number(value: Any) -> Any:
    """A whole float (2.0) read as the integer, for an integer field's ``mode="before"``
    validator: many producers serialise every number as a float, and JSON Schema's
    ``integer`` (the OpenAPI schema's) takes 2.0. Anything else (2.5, "3", true) is left to
    the strict type check to refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _composed(value: Any, info: ValidationInfo) -> Any:
    # Before the length check: NFC can lengthen a text ("\u0958" is two characters composed),
    # and the text checked must be the one stored. Stored rows are read as they were stored.
    if isinstance(value, str) and not (info.context or {}).get("stored") and is_text(value):
        return unicodedata.normalize("NFC", value)
    return value


def _category_text(value: str, info: ValidationInfo) -> str:
    # Rows stored before this rule are read back as they are (context {"stored": True}).
    problem = None if (info.context or {}).get("stored") else _category_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# Unicode's format characters (category Cf, Unicode 15.0 as Python 3.12 has it), which
# ``_blank`` takes for invisible: listed for the schema's pattern, which refuses what the
# validator refuses but for a category of format characters beyond U+FFFF alone (tags,
# musical and Egyptian format marks: see _class_ranges); tests/unit/test_category_pattern.py
# checks the list against unicodedata.
FORMAT_CHARACTER_RANGES = (
    (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F),
    (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD),
    (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)  # fmt: skip


def _class_ranges(ranges: Iterable[tuple[int, int]]) -> str:
    """Code point ranges of the Basic Multilingual Plane for a regular expression's character
    class, as ``\\uXXXX`` escapes. Those beyond it are left out: written in a class they are
    surrogate pairs in JSON, which a JavaScript RegExp without the u flag (Ajv 6, some Swagger
    tools) reads as a range out of order and refuses to compile."""
    return "".join(
        f"\\u{start:04x}" if start == end else f"\\u{start:04x}-\\u{end:04x}"
        for start, end in ranges
        if end <= 0xFFFF
    )


CATEGORY_MAX_CHARS = 128
# A catalog record's, a coupon scope's or a filter's category. A user event's bad category
# is dropped instead (the event is kept, and takes its item's catalog category).
CategoryName = Annotated[
    str,
    # The pattern is the validator's rule for the schema's readers: at least one character
    # that is neither a space, a control character nor a format character, and no control
    # character.
    Field(
        min_length=1,
        max_length=CATEGORY_MAX_CHARS,
        json_schema_extra={
            "pattern": r"^[^\x00-\x1f\x7f-\x9f]*"
            rf"[^\s\x00-\x1f\x7f-\x9f{_class_ranges(FORMAT_CHARACTER_RANGES)}]"
            r"[^\x00-\x1f\x7f-\x9f]*$"
        },
    ),
    BeforeValidator(_composed),
    AfterValidator(_category_text),
]

# DynamoDB's smallest positive number: a smaller one is refused when the catalog row is
# written ("Number underflow"), after the record has passed the schema.
SMALLEST_STORED_NUMBER = 1e-130


def _storable_price(value: float) -> float:
    if 0 < value < SMALLEST_STORED_NUMBER:
        raise ValueError(
            f"a price is 0 or at least {SMALLEST_STORED_NUMBER:g} (the smallest number DynamoDB stores)"
        )
    return value


# A JSON number (strict: "12" and true are refused; an integer is a number).
Price = Annotated[
    float, Field(ge=0, le=1e9, allow_inf_nan=False, strict=True), AfterValidator(_storable_price)
]
ITEM_UPSERT = "item_upsert"


class InvalidEvent(ValueError):
    """A record that no retry can fix; ``reason`` says why, for the dead-letter queue."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _record_seconds(value: Any, info: ValidationInfo) -> float:
    """A record's ``timestamp`` (user event or catalog record) as epoch seconds, bounded by
    the record's arrival given in the validation context (see :func:`epoch_seconds`)."""
    return epoch_seconds(value, (info.context or {}).get("arrival"))


class UserEvent(BaseModel):
    """One user interaction. ``timestamp`` is normalised to epoch seconds (float)."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_max_length=512)

    event_id: Annotated[str, Field(min_length=1, max_length=128)]
    event_type: EventType
    user_id: EntityId
    # "" only for coupon_redeemed events (see _item_or_coupon), which carry ``coupon_id``.
    item_id: EntityId = ""
    timestamp: float
    session_id: Annotated[str, Field(max_length=128)] | None = None
    # Never stored: a positive price under 1e-130 is kept (not refused as in a catalog record).
    price: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False, strict=True)] | None = None
    # strict: a JSON integer (not 2.5, "3" or true; 2.0 is read as 2, see whole_number)
    quantity: Annotated[int, Field(ge=1, le=100_000, strict=True)] | None = None
    category: Annotated[str, Field(max_length=CATEGORY_MAX_CHARS)] | None = None
    coupon_id: EntityId | None = None
    # The basket/order an add_to_cart or purchase belongs to (``order_id`` is accepted too);
    # without it, a user's cart and purchase events within ``basket_gap_hours`` form one basket.
    basket_id: Annotated[EntityId | None, Field(validation_alias=AliasChoices("basket_id", "order_id"))] = (
        None
    )

    @model_validator(mode="before")
    @classmethod
    def _one_basket_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("event_type") not in BASKET_EVENT_TYPES:
            # Only carts and purchases form baskets: on other events the field is ignored,
            # whatever it holds (a producer with one schema for every event may send null
            # or ""), rather than dead-lettering a valid view.
            return {key: value for key, value in data.items() if key not in ("basket_id", "order_id")}
        # Both names given with different values: which basket was meant is a guess (the
        # alias would silently take basket_id).
        if (
            isinstance(data, dict)
            and data.get("basket_id") is not None
            and data.get("order_id") is not None
            and data["basket_id"] != data["order_id"]
        ):
            # Not quoted: the reason is logged, and the values may be anything (a producer's
            # customer record); the letter's data holds them.
            raise ValueError(
                "basket_id and order_id differ: give one of them (order_id is another name for basket_id)"
            )
        return data

    @model_validator(mode="before")
    @classmethod
    def _redemption_item_ignored(cls, data: Any) -> Any:
        # A redemption names no item; one given is ignored, whatever it holds (a producer with
        # one schema for every event may send null or ""), rather than losing the redemption.
        if isinstance(data, dict) and data.get("event_type") == COUPON_REDEEMED and "item_id" in data:
            return {key: value for key, value in data.items() if key != "item_id"}
        return data

    @field_validator("event_type", mode="before")
    @classmethod
    def _known_type(cls, value: Any) -> Any:
        # The stream also carries catalog records (parse_record routes those): name them too.
        if value not in USER_EVENT_TYPES:
            raise ValueError(
                f"must be one of {', '.join(USER_EVENT_TYPES)} (user events) or {ITEM_UPSERT} "
                f"(catalog records), got {str(value)[:40]!r}"
            )
        return value

    @model_validator(mode="after")
    def _item_or_coupon(self) -> UserEvent:
        if self.event_type == COUPON_REDEEMED:
            if self.coupon_id is None:
                raise ValueError("coupon_redeemed needs a coupon_id")
        elif self.coupon_id is not None:
            # Not ignored: a shop sending "bought with coupon X" on its purchases would see
            # no error while no redemption was ever counted (budgets, per-user limits).
            raise ValueError(
                f"coupon_id on a {self.event_type} event: redemptions are counted only from "
                "coupon_redeemed events; send one for the coupon and leave coupon_id off this event"
            )
        elif not self.item_id:
            raise ValueError("item_id: Field required")
        return self

    @field_validator("category", mode="before")
    @classmethod
    def _usable_category(cls, value: Any) -> Any:
        # A bad optional field must not lose the event: it is read as no category. Before
        # the string checks, which would refuse a lone surrogate ("\ud800" in the JSON: not
        # text) or a category over 128 characters (a breadcrumb trail) and the event with it.
        if not isinstance(value, str):
            return value
        if not is_text(value):
            return None
        # One category whether its producer composes "ガ" or writes カ + a combining mark (as
        # macOS names files): NFC, as the catalog's and the filters' categories are.
        value = unicodedata.normalize("NFC", value)
        return None if _category_problem(value) or len(value) > CATEGORY_MAX_CHARS else value

    @field_validator("price", mode="before")
    @classmethod
    def _usable_price(cls, value: Any) -> Any:
        # Nothing reads an event's price: one that breaks the rules (NaN, a string, negative)
        # is read as none rather than losing the purchase it rides on.
        # (NaN and infinities fail the range.)
        usable = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1e9
        return value if usable else None

    _whole_quantity = field_validator("quantity", mode="before")(whole_number)

    _epoch_seconds = field_validator("timestamp", mode="before")(_record_seconds)


class TimeFormatError(ValueError):
    """Neither ISO-8601 with a zone nor epoch seconds; ``missing_zone``: ISO-8601 without a
    zone (each caller words its own message)."""

    def __init__(self, missing_zone: bool = False, date_only: bool = False) -> None:
        super().__init__("ISO-8601 without a time zone" if missing_zone else "not ISO-8601 or epoch seconds")
        self.missing_zone = missing_zone
        # A date with no time of day ("2025-11-27"; Python drops a zone given after one).
        self.date_only = date_only


def instant_seconds(value: Any) -> float:
    """ISO-8601 with a zone, or epoch seconds (a JSON number or a string of digits, e.g.
    "1700000000.5"), as epoch seconds, unbounded: ±inf for a number too large for a float
    (each caller applies its own bounds). Raises :class:`TimeFormatError`, also for NaN and
    for strings Python's float() would read but a producer did not mean as a number
    ("NaN", "inf", " 17", "+17", "1_7")."""
    if isinstance(value, bool) or not isinstance(value, int | float | str) or value != value:
        raise TimeFormatError()  # (value != value: NaN, which is not a time)
    if not isinstance(value, str) or EPOCH_TEXT.fullmatch(value):
        try:
            return float(value)
        except OverflowError:  # an integer of hundreds of digits (a string would give inf)
            return -math.inf if isinstance(value, int) and value < 0 else math.inf
    text = str(value)
    if text.endswith(("Z", "z")):  # UTC; RFC 3339 allows a lower-case z, fromisoformat does not
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise TimeFormatError() from None
    if parsed.tzinfo is None:
        raise TimeFormatError(missing_zone=True, date_only=_DATE_ONLY.fullmatch(str(value)) is not None)
    return parsed.timestamp()


def epoch_seconds(value: Any, arrival: float | None = None) -> float:
    """A timestamp (ISO-8601 with a zone, or epoch seconds) as epoch seconds; ValueError if bad.

    It may be at most a day ahead of ``arrival`` (when the record reached the stream: the
    same at every delivery of it, so that a retried batch reads it as the first attempt
    did), or of now when not given."""
    try:
        seconds = instant_seconds(value)
    except TimeFormatError as error:
        raise ValueError(
            DATE_ONLY_MESSAGE
            if error.date_only
            else "ISO-8601 timestamp needs a time zone (e.g. Z or +02:00)"
            if error.missing_zone
            else "timestamp must be ISO-8601 or epoch seconds"
        ) from None
    if seconds != seconds or seconds < EARLIEST_TIMESTAMP:
        raise ValueError("timestamp is before 2000-01-01")
    if seconds > (time.time() if arrival is None else arrival) + MAX_CLOCK_SKEW_SECONDS:
        # Epoch milliseconds read as seconds land some 50,000 years ahead.
        numeric = not isinstance(value, str) or EPOCH_TEXT.fullmatch(value)
        hint = epoch_unit_hint(seconds) if numeric else ""
        raise ValueError(f"timestamp is more than a day in the future{hint}")
    return seconds


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages ("got an array", not "got list")."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def parse_event(payload: Any, arrival: float | None = None) -> UserEvent:
    """Validate a decoded JSON payload; raise :class:`InvalidEvent` with a readable reason.
    ``arrival``: when the record reached the stream (see :func:`epoch_seconds`)."""
    if not isinstance(payload, dict):
        raise InvalidEvent(f"event must be a JSON object, got {json_type(payload)}")
    try:
        return UserEvent.model_validate(payload, context={"arrival": arrival})
    except ValidationError as error:
        raise InvalidEvent(f"schema violation: {schema_problems(error, quote_input=False)}") from None


class ItemUpsert(BaseModel):
    """A catalog record on the event stream: the item's current title, category, price,
    stock and tags as of ``timestamp`` (later records win; see domain/catalog.py)."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_max_length=512)

    event_type: Literal["item_upsert"]
    item_id: EntityId
    title: Annotated[str, Field(min_length=1, max_length=512)]
    category: CategoryName
    price: Price
    in_stock: StrictBool
    tags: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=50)] = []
    timestamp: float

    _epoch_seconds = field_validator("timestamp", mode="before")(_record_seconds)

    @field_validator("title")
    @classmethod
    def _visible_title(cls, value: str, info: ValidationInfo) -> str:
        # A blank title (spaces, control or invisible characters alone) is a producer's bug:
        # kept, it made the item alike to its category alone. Stored records read as they are.
        if _blank(value, ("Cf", "Cc")) and not (info.context or {}).get("stored"):
            raise ValueError("a title must not be blank")
        return value


def schema_problems(error: ValidationError, whole: str = "event", quote_input: bool = True) -> str:
    """Each problem of a validation error as ``field.path: message`` (``whole`` names the
    object itself), joined by "; ": the reason a dead letter or a 400 carries. Without
    ``quote_input`` a malformed id is not repeated (a stream record's reason is logged, and a
    producer's bad id may be a name or an e-mail address)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in issue['loc']) or whole}: {issue_message(issue, quote_input)}"
        for issue in error.errors()
    )


class DuplicateKey(ValueError):
    """A JSON object that gives one name twice: which value was meant is a guess (json
    keeps the last), so such an object is refused, not read."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{quoted(key)} is given more than once in one object; give it once")
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for json: the object, or :class:`DuplicateKey`."""
    value = dict(pairs)
    if len(value) < len(pairs):
        names = [name for name, _ in pairs]
        raise DuplicateKey(next(name for name in names if names.count(name) > 1))
    return value


class NotJsonNumber(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's json reads them, but they are not JSON."""

    def __init__(self, constant: str) -> None:
        super().__init__(f"{constant} is not a JSON number")


def _not_json_number(constant: str) -> Any:
    raise NotJsonNumber(constant)


def loads(text: str | bytes, *, finite: bool = False) -> Any:
    """``json.loads`` refusing an object that gives a name twice (:class:`DuplicateKey`)
    and, with ``finite``, ``NaN`` and ``Infinity`` (:class:`NotJsonNumber`)."""
    if finite:
        return json.loads(text, object_pairs_hook=unique_keys, parse_constant=_not_json_number)
    return json.loads(text, object_pairs_hook=unique_keys)


def text_json(value: Any, **dump_options: Any) -> str:
    """``json.dumps(value, **dump_options)`` with non-ASCII text as itself, not as ``\\uXXXX``
    escapes (a third of the bytes for CJK once encoded as UTF-8), unless the value holds a
    lone surrogate (JSON can carry one; UTF-8 cannot, nor can a log line): then escaped."""
    text = json.dumps(value, ensure_ascii=False, **dump_options)
    return text if is_text(text) else json.dumps(value, **dump_options)


def quoted(value: Any, limit: int = 60) -> str:
    """A value as JSON for a message; a longer string is cut to ``limit`` characters, with
    an ellipsis inside its quotes."""
    if isinstance(value, str) and len(value) > limit:
        value = value[: limit - 1] + "…"
    return text_json(value)


def issue_message(issue: Mapping[str, Any], quote_input: bool = True) -> str:
    """pydantic's message for one issue, in the schema's words where pydantic's would name
    a Python class or a regular expression (quoting a malformed id unless ``quote_input`` is
    False)."""
    kind = issue.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a JSON object, got {json_type(issue.get('input'))}"
    if kind == "string_pattern_mismatch" and (issue.get("ctx") or {}).get("pattern") == ID_PATTERN:
        if not quote_input:
            return f"not an id: {ID_RULE}"
        return f"{quoted(issue.get('input'))} is not an id: {ID_RULE}"
    if kind in _JSON_TYPES:
        # JSON types are not coerced: say which one was sent, which pydantic's "Input should
        # be a valid number" does not (and "12.50" reads as a valid number to a person).
        value = issue.get("input")
        got = json_type(value)
        if kind == "int_type" and isinstance(value, float) and not isinstance(value, bool):
            got = "a number with a fraction" if math.isfinite(value) else "a number that is not finite"
        sent = f" ({quoted(value)})" if quote_input and isinstance(value, str) else ""
        return f"must be {_JSON_TYPES[kind]}, not {got}{sent}"
    # pydantic's "Input should be greater than or equal to 0", "List should have at least 1
    # item after validation, not 0": in the schema's words, limits as the README writes them.
    context = issue.get("ctx") or {}
    limit_rule = _LIMITS.get(kind)
    if limit_rule is not None:
        wording, key = limit_rule
        limit = context.get(key)
        if isinstance(limit, (int, float)) and not isinstance(limit, bool):
            if limit == 1 and kind in ("too_short", "string_too_short"):
                return "must not be empty"
            shown = f"{int(limit):,}" if float(limit).is_integer() else str(limit)
            held = context.get("actual_length")
            return wording.format(
                limit=shown,
                s="" if limit == 1 else "s",
                ies="y" if limit == 1 else "ies",
                held="" if held is None else f", not {held}",
            )
    if kind == "finite_number":
        return "must be a finite number"
    return str(issue.get("msg", kind)).removeprefix("Value error, ")


# pydantic's error types for a value out of its range: the wording, and the limit's key in
# the issue's context.
_LIMITS = {
    "greater_than_equal": ("must be at least {limit}", "ge"),
    "greater_than": ("must be more than {limit}", "gt"),
    "less_than_equal": ("must be at most {limit}", "le"),
    "less_than": ("must be less than {limit}", "lt"),
    "string_too_short": ("must be at least {limit} character{s} long", "min_length"),
    "string_too_long": ("must be at most {limit} character{s} long", "max_length"),
    "too_short": ("must hold at least {limit} entr{ies}{held}", "min_length"),
    "too_long": ("must hold at most {limit} entr{ies}{held}", "max_length"),
}


# pydantic's error types for a JSON value of the wrong type, and the type the field takes.
_JSON_TYPES = {
    "float_type": "a JSON number",
    "int_type": "a whole JSON number",
    "bool_type": "true or false",
    "string_type": "a JSON string",
    "list_type": "a JSON array",
}


def parse_item_upsert(payload: Any, arrival: float | None = None) -> ItemUpsert:
    """Validate an ``item_upsert`` record; raise :class:`InvalidEvent` with a readable reason.
    ``arrival``: when the record reached the stream (see :func:`epoch_seconds`)."""
    if not isinstance(payload, dict):
        raise InvalidEvent(f"record must be a JSON object, got {json_type(payload)}")
    try:
        return ItemUpsert.model_validate(payload, context={"arrival": arrival})
    except ValidationError as error:
        raise InvalidEvent(
            f"item_upsert schema violation: {schema_problems(error, quote_input=False)}"
        ) from None


def parse_record(payload: Any, arrival: float | None = None) -> UserEvent | ItemUpsert:
    """A record of the event stream: a catalog record (``event_type: item_upsert``) or a
    user event (everything else, validated exactly as :func:`parse_event`)."""
    if isinstance(payload, dict) and payload.get("event_type") == ITEM_UPSERT:
        return parse_item_upsert(payload, arrival)
    return parse_event(payload, arrival)
