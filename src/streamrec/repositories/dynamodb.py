"""DynamoDB (and Kinesis/SQS) adapters of the repository interfaces, on the boto3 client.

The low-level client is used rather than an ORM because the hot paths are batch calls
(BatchGetItem of known keys, guarded ADD updates with generated expressions) whose
round trips and units we count. Throttling is retried by botocore (``AWS_RETRY_MODE``,
``AWS_MAX_ATTEMPTS`` set in template.yaml); what still fails becomes a RepositoryError.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from streamrec.concurrency import concurrently
from streamrec.domain.coupons import (
    DUPLICATE,
    EXHAUSTED,
    REDEEMED,
    UNKNOWN,
    Coupon,
    CouponSpec,
    remaining_after_redefinition,
    scope_keys,
)
from streamrec.domain.model import (
    CATALOG_STATS_ROW,
    POSTING_COUNT,
    CatalogItem,
    CatalogTally,
    CategoryAffinity,
    Delta,
    HistoryItem,
    ItemStats,
    Neighbour,
    PopularList,
    Posting,
    SimilarityRow,
    UserState,
    count_row,
    token_row,
)
from streamrec.domain.trends import (
    DAY,
    HourlyCounts,
    TrendingList,
    counts_from_attributes,
    entries_from_json,
    entries_to_json,
    profile_from_json,
    profile_to_json,
)
from streamrec.observability import logger
from streamrec.repositories.base import (
    COUPONS_PER_SCOPE,
    FIRST_SEEN,
    PRUNE_SAMPLE,
    ConcurrentUpdateError,
    DeadLetter,
    RefusedForGoodError,
    RepositoryError,
    ScopeFullError,
    guard_attribute,
    pending,
    prune_candidates,
    stats_from_attributes,
    summed,
)
from streamrec.repositories.item_size import ITEM_LIMIT_BYTES, item_size, number_size

BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
PUT_RECORDS_LIMIT = 500
SQS_BATCH_LIMIT = 10
# An update expression may be 4 KB; "ADD #12 :12, " is ~13 characters per attribute.
MAX_ATTRIBUTES_PER_UPDATE = 250
UNPROCESSED_RETRIES = 8
TRANSACTION_CONFLICT_RETRIES = 5
# Count rows of a batch are independent: writing them concurrently cuts a batch's latency
# (thousands of UpdateItems) without changing what is written. boto3 clients are thread-safe.
WRITE_CONCURRENCY = 8
# A read of more than 100 keys makes independent BatchGetItem calls, this many at a time.
READ_CONCURRENCY = 8
COUNT_PREFIX = "c:"  # neighbour attributes of co-occurrence rows
# A count row over its budget, or at DynamoDB's 400 KB item limit, drops its weakest counts
# down to ROOM_TARGET_SHARE of that limit (DynamoCooccurrenceRepository.make_room); a row
# found below ROOM_CHECK_SHARE already had room made by another shard's writer. A write is retried after
# at most MAKE_ROOM_ATTEMPTS such calls before it fails.
MAKE_ROOM_ATTEMPTS = 2
# Refusals of a guarded write in a row that its guard, read back, does not explain.
GUARD_STALLS = 3
ROOM_CHECK_SHARE = 0.9
ROOM_TARGET_SHARE = 0.75
# Names per REMOVE: "#499, " is 6 characters, so 500 stay well within the 4 KB expression.
MAX_REMOVES_PER_UPDATE = 500


def _chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _number(value: float) -> dict[str, str]:
    return {"N": repr(float(value))}


def _backoff(attempt: int) -> None:
    time.sleep(min(0.05 * 2**attempt, 2.0))


def _keys(ids: Iterable[str]) -> list[dict[str, Any]]:
    """Keys of the rows of tables keyed by ``item_id`` alone."""
    return [{"item_id": {"S": key}} for key in ids]


def error_code(error: BaseException | None) -> str:
    """The AWS error code of a ClientError ("" for anything else)."""
    return error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""


def _error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


@dataclass(frozen=True)
class IfAbsent:
    """A number SET only where the row has none yet (``if_not_exists``): idempotent under
    replays and concurrent writers alike."""

    value: int


class MakeRoom(Protocol):
    """Shrinks a row: ``keep`` the attributes to remove last, ``at_item_limit`` when a write
    was refused for taking the row past DynamoDB's item limit (else it billed over a budget)."""

    def __call__(self, key: dict[str, Any], keep: frozenset[str], at_item_limit: bool = False) -> None: ...


class DynamoTable:
    """A table name and client, with the batch helpers every repository needs."""

    def __init__(self, name: str, client: Any) -> None:
        # The client is the caller's (wiring's, with its timeouts and fast reads): one per
        # function for all its tables.
        self.name = name
        self.client = client

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        # The functions' client sends requests unchecked (wiring.DYNAMODB_CLIENT_CONFIG): a
        # parameter given as None would go as JSON null, which DynamoDB may take for an
        # absent one (a condition dropped, a write made unconditional).
        unset = [name for name, value in kwargs.items() if value is None]
        if unset:
            refused = ParamValidationError(report=f"no value for {', '.join(unset)}")
            raise RepositoryError(f"{operation} on {self.name} not sent: {refused}") from refused
        for attempt in range(TRANSACTION_CONFLICT_RETRIES + 1):
            try:
                return getattr(self.client, operation)(**kwargs)
            except ClientError as error:
                code = error_code(error)
                if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                    raise
                if code == "TransactionConflictException" and attempt < TRANSACTION_CONFLICT_RETRIES:
                    # The item is in a transaction (a split list's, a coupon prune's): this
                    # request was refused, not applied, and botocore does not retry it.
                    _backoff(attempt)
                    continue
                message = _error_message(error)
                raise RepositoryError(
                    f"{operation} on {self.name} failed: {code}" + (f" ({message})" if message else "")
                ) from error
            except BotoCoreError as error:
                raise RepositoryError(f"{operation} on {self.name} failed: {error}") from error
        raise AssertionError("unreachable: the last attempt returns or raises")

    def call_if_condition_holds(self, operation: str, **kwargs: Any) -> bool:
        """:meth:`call` of a conditional write: False when its ConditionExpression failed
        (nothing written), True when it was applied."""
        try:
            self.call(operation, **kwargs)
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def batch_get(
        self,
        keys: Sequence[dict[str, Any]],
        consistent: bool = False,
        projection: str = "",
        names: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Read items by key: one BatchGetItem per 100 keys, up to READ_CONCURRENCY at a
        time, unprocessed keys retried; ``projection``: only these attributes (a
        ProjectionExpression, whose placeholders ``names`` defines)."""
        options: dict[str, Any] = {
            **({"ConsistentRead": True} if consistent else {}),
            **({"ProjectionExpression": projection} if projection else {}),
            **({"ExpressionAttributeNames": dict(names)} if names else {}),
        }
        chunks = [list(chunk) for chunk in _chunks(list(keys), BATCH_GET_LIMIT)]
        # The chunks are independent reads: a large read then waits for a few calls, not one
        # call per 100 keys (the similarity function reads ~100 count rows per event).
        found = concurrently(lambda chunk: self._batch_get_chunk(chunk, options), chunks, READ_CONCURRENCY)
        return [item for items in found for item in items]

    def _batch_get_chunk(
        self, keys: list[dict[str, Any]], options: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {self.name: {"Keys": keys, **options}}
        for attempt in range(UNPROCESSED_RETRIES + 1):
            response = self.call("batch_get_item", RequestItems=request)
            items.extend(response.get("Responses", {}).get(self.name, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return items
            _backoff(attempt)
        raise RepositoryError(f"BatchGetItem on {self.name}: keys left unprocessed after retries")

    def batch_put(self, items: Sequence[dict[str, Any]]) -> None:
        """Write whole items (distinct keys): one BatchWriteItem per 25, up to
        WRITE_CONCURRENCY at a time, unprocessed items retried."""
        chunks = [list(chunk) for chunk in _chunks(list(items), BATCH_WRITE_LIMIT)]
        concurrently(self._batch_put_chunk, chunks, WRITE_CONCURRENCY)

    def _batch_put_chunk(self, items: list[dict[str, Any]]) -> None:
        request: dict[str, Any] = {self.name: [{"PutRequest": {"Item": item}} for item in items]}
        for attempt in range(UNPROCESSED_RETRIES + 1):
            response = self.call("batch_write_item", RequestItems=request)
            request = response.get("UnprocessedItems") or {}
            if not request:
                return
            _backoff(attempt)
        raise RepositoryError(f"BatchWriteItem on {self.name}: items left unprocessed after retries")

    def apply_guarded_many(
        self,
        rows: Sequence[tuple[dict[str, Any], Sequence[Delta], Mapping[str, str | int | IfAbsent]]],
        shard: str,
        attribute_name: Callable[[str], str] = str,
        make_room: MakeRoom | None = None,
        budget_units: Callable[[dict[str, Any]], float] | None = None,
    ) -> None:
        """:meth:`apply_guarded` for many rows, concurrently; returns when all are written
        and raises the first failure (the batch is then retried; guards absorb the rest)."""
        concurrently(
            lambda row: self.apply_guarded(
                row[0], row[1], shard, attribute_name, row[2], make_room, budget_units
            ),
            rows,
            WRITE_CONCURRENCY,
        )

    def apply_guarded(
        self,
        key: dict[str, Any],
        deltas: Sequence[Delta],
        shard: str,
        attribute_name: Callable[[str], str] = str,
        strings: Mapping[str, str | int | IfAbsent] | None = None,
        make_room: MakeRoom | None = None,
        budget_units: Callable[[dict[str, Any]], float] | None = None,
    ) -> None:
        """ADD the deltas this row lacks, and advance its replay guard, in one UpdateItem
        (``strings``: attributes SET in the same write; an int is stored as a number, an
        :class:`IfAbsent` only if the row has no such attribute yet).

        The condition "guard < first sequence" makes the write all-or-nothing per record
        range; when it fails, the stored guard tells which deltas are still missing. When
        DynamoDB refuses a write for taking the row over its 400 KB item limit, ``make_room``
        (if given) shrinks the row and the write is tried again, up to MAKE_ROOM_ATTEMPTS
        times. With ``budget_units`` too, a write that consumed more write units than
        ``budget_units(key)`` (1 per started KB of the row's larger image) is followed by
        ``make_room(key, added)``, ``added`` the attributes it added to; one that fails is
        logged and left to the row's next write (the deltas are written: failing the batch
        would only repeat them).
        """
        guard = guard_attribute(shard)
        missing = list(deltas)
        room_made = 0
        consumed = 0.0
        budgeted = make_room is not None and budget_units is not None
        measured = {"ReturnConsumedCapacity": "TOTAL"} if budgeted else {}
        stalled = 0  # refusals in a row that the guard read back does not explain
        while missing:
            part = _guarded_part(missing)
            totals = summed(part)
            names = {"#g": guard}
            values: dict[str, Any] = {":first": {"S": part[0][0]}, ":last": {"S": part[-1][0]}}
            adds, sets = [], ["#g = :last"]
            for index, (attribute, value) in enumerate(totals.items()):
                names[f"#{index}"] = attribute_name(attribute)
                values[f":{index}"] = _number(value)
                adds.append(f"#{index} :{index}")
            for index, (attribute, text) in enumerate((strings or {}).items()):
                names[f"#s{index}"] = attribute
                if isinstance(text, IfAbsent):
                    values[f":s{index}"] = {"N": str(text.value)}
                    sets.append(f"#s{index} = if_not_exists(#s{index}, :s{index})")
                    continue
                values[f":s{index}"] = {"N": str(text)} if isinstance(text, int) else {"S": text}
                sets.append(f"#s{index} = :s{index}")
            try:
                written = self.call(
                    "update_item",
                    TableName=self.name,
                    Key=key,
                    UpdateExpression=f"SET {', '.join(sets)} ADD {', '.join(adds)}",
                    ConditionExpression="attribute_not_exists(#g) OR #g < :first",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    **measured,
                )
                consumed = max(consumed, float(written.get("ConsumedCapacity", {}).get("CapacityUnits", 0)))
                missing = missing[len(part) :]
            except RepositoryError as error:
                if make_room is None or room_made >= MAKE_ROOM_ATTEMPTS or not _over_item_limit(error):
                    raise
                make_room(key, frozenset(), at_item_limit=True)
                room_made += 1
            except ClientError as error:
                if error_code(error) != "ConditionalCheckFailedException":
                    raise
                stored = self.call(
                    "get_item",
                    TableName=self.name,
                    Key=key,
                    ConsistentRead=True,
                    ProjectionExpression="#g",
                    ExpressionAttributeNames={"#g": guard},
                )
                applied = stored.get("Item", {}).get(guard, {}).get("S")
                before = len(missing)
                missing = pending(missing, applied)
                stalled = stalled + 1 if len(missing) == before else 0
                if stalled >= GUARD_STALLS:
                    # Refused, yet the guard read back is older than the write: no retry here
                    # can succeed (a guard of another type, say), and each one is billed.
                    raise RefusedForGoodError(
                        f"update_item on {self.name} refused {GUARD_STALLS} times though its guard "
                        f"{guard} reads {applied!r}, older than {part[0][0]!r}",
                        frozenset(sequence for sequence, _attribute, _value in missing),
                    ) from error
        if make_room is not None and budget_units is not None and consumed > budget_units(key):
            # (A basket taken back writes -1s: they add nothing worth keeping.)
            added = frozenset(
                attribute_name(attribute) for _sequence, attribute, value in deltas if value > 0
            )
            try:
                make_room(key, added)
            except RepositoryError as error:
                logger.warning(
                    "a row over its budget was not trimmed: its next write tries again",
                    extra={"key": json.dumps(key), "error": str(error)},
                )


def _over_item_limit(error: RepositoryError) -> bool:
    """Whether DynamoDB refused a write for taking an item over its 400 KB limit ("Item size
    has exceeded ..." for a put, "Item size to update has exceeded ..." for an update; not
    "Invalid UpdateExpression: Expression size has exceeded ...")."""
    cause = error.__cause__
    if not isinstance(cause, ClientError) or error_code(cause) != "ValidationException":
        return False
    return _error_message(cause).startswith("Item size")


def _guarded_part(deltas: Sequence[Delta]) -> list[Delta]:
    """The longest prefix of whole records whose distinct attributes fit one update."""
    attributes: set[str] = set()
    end = 0
    while end < len(deltas):
        sequence = deltas[end][0]
        record_end = end
        while record_end < len(deltas) and deltas[record_end][0] == sequence:
            record_end += 1
        grown = attributes | {attribute for _sequence, attribute, _value in deltas[end:record_end]}
        if end and len(grown) > MAX_ATTRIBUTES_PER_UPDATE:
            break
        attributes, end = grown, record_end
    return list(deltas[:end])


# ---- Users ------------------------------------------------------------------------------


def _json(value: Any) -> str:
    """Compact JSON that keeps non-ASCII text as it is: DynamoDB counts an item's UTF-8
    bytes, and an escape costs 6 of them per character (12 for an emoji) against 2 to 4."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def user_to_item(state: UserState, version: int) -> dict[str, Any]:
    items = [[e.item_id, e.max_weight, e.affinity, e.ref_time, e.kind, e.category] for e in state.items]
    return {
        "user_id": {"S": state.user_id},
        "items": {"S": _json(items)},
        "purchased": {"S": _json(state.purchased)},
        "cart": {"S": _json(state.cart)},
        "recent_event_ids": {"S": _json(state.recent_event_ids)},
        "applied": {"M": {shard: {"S": seq} for shard, seq in state.applied.items()}},
        "version": {"N": str(version)},
        "categories": {
            "S": _json(
                {
                    c: [a.affinity, a.ref_time, a.counts, a.decayed, a.in_cart]
                    for c, a in state.categories.items()
                }
            )
        },
        "redemptions": {"S": _json(state.redemptions)},
        "basket": {
            "S": _json(
                [state.basket_id, state.basket_time, state.basket, state.basket_bought, state.basket_start]
            )
        },
        "event_counts": {"S": _json(state.event_counts)},
        "trend": {"S": _json([[item, hour, weight] for (item, hour), weight in state.trend_counted.items()])},
        "cart_left": {"S": _json(state.cart_left)},
    }


def _category_affinity(
    affinity: float,
    ref_time: float,
    counts: dict[str, int],
    decayed: tuple[float, float, float] = (0.0, 0.0, 0.0),
    in_cart: int = 0,
) -> CategoryAffinity:
    # Rows written before the coupon model have no decayed counts by type nor cart count.
    return CategoryAffinity(affinity, ref_time, counts, (decayed[0], decayed[1], decayed[2]), in_cart)


def _trend_memory(item: dict[str, Any]) -> dict[tuple[str, int], float]:
    """The row's trending memory: [[item, hour, weight], ...]. A row without one, or with the
    short-lived [hour, {item: weight}] of a development version, reads as none (at worst an
    item's hour counts once more)."""
    stored = json.loads(item.get("trend", {}).get("S", "[]"))
    if not all(isinstance(entry, list) and len(entry) == 3 for entry in stored):
        return {}
    return {(counted, int(hour)): float(weight) for counted, hour, weight in stored}


def user_from_item(item: dict[str, Any]) -> UserState:
    # (Rows written before purchases were marked hold 3 fields, before the basket's earliest
    # event was kept 4: its latest stands in.)
    basket_id, basket_time, basket, *rest = json.loads(item.get("basket", {}).get("S", '["",0.0,[]]'))
    return UserState(
        user_id=item["user_id"]["S"],
        items=[HistoryItem(*entry) for entry in json.loads(item["items"]["S"])],
        purchased=json.loads(item["purchased"]["S"]),
        cart=json.loads(item["cart"]["S"]),
        recent_event_ids=json.loads(item["recent_event_ids"]["S"]),
        applied={shard: value["S"] for shard, value in item.get("applied", {}).get("M", {}).items()},
        version=int(item["version"]["N"]),
        categories={
            c: _category_affinity(*entry)
            for c, entry in json.loads(item.get("categories", {}).get("S", "{}")).items()
        },
        redemptions=json.loads(item.get("redemptions", {}).get("S", "{}")),
        basket_id=basket_id,
        basket=basket,
        basket_time=float(basket_time),
        basket_start=float(rest[1]) if len(rest) > 1 else float(basket_time),
        basket_bought=rest[0] if rest else [],
        event_counts=json.loads(item.get("event_counts", {}).get("S", "{}")),
        trend_counted=_trend_memory(item),
        # (Rows written before it was kept: none, as if no add arrived out of order.)
        cart_left=json.loads(item.get("cart_left", {}).get("S", "{}")),
    )


# The user rows' time-to-live attribute (UsersTable's TimeToLiveSpecification).
USER_EXPIRY = "expires_at"


class DynamoUserRepository:
    """User rows. ``retention_days`` > 0: each write stamps the row to expire that many days
    after it (DynamoDB's TTL deletes it some time after that), and a row past its time reads
    as no row: as a forgotten user to the API, and to the ingest as a fresh state that keeps
    only the row's version, for its conditional write."""

    def __init__(
        self, table: DynamoTable, retention_days: int = 0, clock: Callable[[], float] = time.time
    ) -> None:
        self.table = table
        self.retention_seconds = retention_days * 86_400
        self.clock = clock

    def _expired(self, item: dict[str, Any]) -> bool:
        expiry = item.get(USER_EXPIRY)
        return expiry is not None and float(expiry["N"]) <= self.clock()

    def get(self, user_id: str) -> UserState | None:
        item = self.table.call("get_item", TableName=self.table.name, Key={"user_id": {"S": user_id}})
        if "Item" not in item or self._expired(item["Item"]):
            return None
        return user_from_item(item["Item"])

    def get_many(self, user_ids: Iterable[str]) -> dict[str, UserState]:
        keys = [{"user_id": {"S": u}} for u in sorted(set(user_ids))]
        items = self.table.batch_get(keys, consistent=True)
        return {
            state.user_id: state
            for state in (
                UserState(item["user_id"]["S"], version=int(item["version"]["N"]))
                if self._expired(item)
                else user_from_item(item)
                for item in items
            )
        }

    def save_many(self, states: Iterable[UserState]) -> None:
        """One conditional PutItem per user, WRITE_CONCURRENCY at a time (the users of a
        batch are independent); raises the first failure."""
        concurrently(self._save, list(states), WRITE_CONCURRENCY)

    def _save(self, state: UserState) -> None:
        condition = "attribute_not_exists(user_id)" if state.version == 0 else "version = :v"
        extra = {} if state.version == 0 else {"ExpressionAttributeValues": {":v": {"N": str(state.version)}}}
        try:
            item = user_to_item(state, state.version + 1)
            if self.retention_seconds:
                item[USER_EXPIRY] = {"N": str(int(self.clock() + self.retention_seconds))}
            self.table.call(
                "put_item",
                TableName=self.table.name,
                Item=item,
                ConditionExpression=condition,
                **extra,
            )
        except ClientError as error:
            raise ConcurrentUpdateError(f"user {state.user_id} changed concurrently") from error

    def delete(self, user_id: str) -> None:
        self.table.call("delete_item", TableName=self.table.name, Key={"user_id": {"S": user_id}})


# ---- Counts -------------------------------------------------------------------------------


class DynamoCooccurrenceRepository:
    """Count rows, ``blocks`` per item. ``budget_bytes``: a row whose counts a write finds
    taking more than this is trimmed back to ROOM_TARGET_SHARE of it (weakest counts first,
    as at DynamoDB's 400 KB limit), since every write of a row bills 1 unit per started KB
    of it; None: rows grow up to the 400 KB limit. The budget is for the counts alone: the
    row's key and replay guards (~81 bytes per shard that ever wrote it, never removed) come
    on top, or a row written from many shards would lose every count at each trim."""

    # Rows whose overhead (key and guards) is remembered, at most: a warm container's
    # memory of the rows found over the budget by their guards; past it, it starts again.
    REMEMBERED_ROWS = 10_000

    def __init__(self, table: DynamoTable, blocks: int, budget_bytes: int | None = None) -> None:
        self.table = table
        self.blocks = blocks
        self.budget_bytes = budget_bytes
        # Row key -> bytes of it that are not counts, for rows found over the budget with
        # their counts within it (guards of many shards): their writes are then measured
        # against budget + overhead, instead of each reading the row again for nothing.
        self._overhead: dict[tuple[str, str], int] = {}

    def get_rows(self, item_ids: Iterable[str]) -> dict[str, dict[str, float]]:
        wanted = sorted(set(item_ids))
        keys = [{"item_id": {"S": i}, "block": {"N": str(b)}} for i in wanted for b in range(self.blocks)]
        result: dict[str, dict[str, float]] = {item: {} for item in wanted}
        for item in self.table.batch_get(keys):
            counts = result[item["item_id"]["S"]]
            for name, value in item.items():
                if name.startswith(COUNT_PREFIX):
                    counts[name[len(COUNT_PREFIX) :]] = float(value["N"])
        return result

    def apply(self, deltas: Mapping[tuple[str, int], Sequence[Delta]], shard: str) -> None:
        rows: list[tuple[dict[str, Any], Sequence[Delta], Mapping[str, str | int]]] = [
            ({"item_id": {"S": item}, "block": {"N": str(block)}}, row_deltas, {})
            for (item, block), row_deltas in deltas.items()
        ]
        self.table.apply_guarded_many(
            rows,
            shard,
            attribute_name=lambda neighbour: COUNT_PREFIX + neighbour,
            make_room=self.make_room,
            budget_units=self._budget_units if self.budget_bytes else None,
        )

    def _budget_units(self, key: dict[str, Any]) -> float:
        """Write units a write of the row may bill before its counts are checked: the budget,
        plus the whole KB of overhead of a row found over it with its counts within it.
        Whole KB only (units count started KB): the counts are checked once they may be
        over the budget, never later, at the cost of a read per write while they are within
        the overhead's last part-KB of it."""
        row = (key["item_id"]["S"], key["block"]["N"])
        return math.ceil((self.budget_bytes or ITEM_LIMIT_BYTES) / 1024) + self._overhead.get(row, 0) // 1024

    def make_room(
        self, key: dict[str, Any], keep: frozenset[str] = frozenset(), at_item_limit: bool = False
    ) -> None:
        """Remove a count row's weakest counts until they take at most ROOM_TARGET_SHARE of
        their room: the budget, if any, but never more than what DynamoDB's item limit
        leaves beside the row's key and replay guards. Called after a write billed more than
        the budget, or (``at_item_limit``) was refused for reaching the limit. The weakest
        partners matter least to an item's top-K neighbours. The counts in ``keep`` (those
        the write that found the row over its budget added to) go last: a newcomer seen in
        most batches would otherwise go at every trim, before it could outgrow the row's
        long-held counts. Counts at or below 0 (left by baskets taken back: a removal's -1 on a
        pair trimmed before, or an add and its removal in one batch) go first.
        Equal counts go in an order that changes from trim to trim (a hash of the name and
        the row's size), not by id, which would always spare the same ids.

        Left alone: after a write over the budget, counts within it (a row whose guards took
        it over the budget keeps its counts; its overhead is remembered, so its next writes
        are not read again until its counts grow); at the item limit, counts below
        ROOM_CHECK_SHARE of their room (the writers of other shards, refused at the same
        moment, find the room one of them made and just retry).
        Lossy by design: a removed partner seen again restarts from its new increment, and an
        increment racing the removal may go with it. The replay guards stay, so nothing is
        counted twice.
        """
        item = self.table.call("get_item", TableName=self.table.name, Key=key, ConsistentRead=True).get(
            "Item", {}
        )
        size = item_size(item)
        counts = sorted(
            (
                # Counts at or below 0 (a basket taken back) go first, kept or not.
                float(value["N"]) > 0 and name in keep,
                float(value["N"]),
                zlib.crc32(f"{size}:{name}".encode()),
                name,
                len(name.encode()) + number_size(value["N"]),
            )
            for name, value in item.items()
            if name.startswith(COUNT_PREFIX)
        )
        count_bytes = sum(entry[-1] for entry in counts)
        overhead = size - count_bytes
        beside_limit = ITEM_LIMIT_BYTES - overhead
        room = min(beside_limit, self.budget_bytes) if self.budget_bytes else beside_limit
        if at_item_limit or not self.budget_bytes:
            left_alone = room * ROOM_CHECK_SHARE
        else:
            left_alone = self.budget_bytes + 1  # a budget is the counts' own
        row = (key["item_id"]["S"], key["block"]["N"])
        if count_bytes < left_alone:
            if len(self._overhead) >= self.REMEMBERED_ROWS:
                self._overhead.clear()
            self._overhead[row] = overhead
            return
        self._overhead.pop(row, None)
        excess = count_bytes - room * ROOM_TARGET_SHARE
        dropped: list[str] = []
        for *_order, name, bytes_ in counts:
            if excess <= 0:
                break
            dropped.append(name)
            excess -= bytes_
        # At the item limit something is amiss (no budget, or one far above the data); over
        # the budget is routine upkeep of a hot item's rows, every few batches.
        at_item_limit = size >= ITEM_LIMIT_BYTES * ROOM_CHECK_SHARE
        (logger.warning if at_item_limit else logger.debug)(
            "count row at the item size limit: removing its weakest counts"
            if at_item_limit
            else "count row over its budget: removing its weakest counts",
            extra={
                "item_id": key["item_id"]["S"],
                "block": key["block"]["N"],
                "bytes": size,
                "count_bytes": count_bytes,
                "room": room,
                "counts": len(counts),
                "removed": len(dropped),
            },
        )
        for chunk in _chunks(dropped, MAX_REMOVES_PER_UPDATE):
            names = {f"#{index}": name for index, name in enumerate(chunk)}
            self.table.call(
                "update_item",
                TableName=self.table.name,
                Key=key,
                UpdateExpression="REMOVE " + ", ".join(names),
                ExpressionAttributeNames=names,
            )


class DynamoItemStatsRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def get_many(self, item_ids: Iterable[str]) -> dict[str, ItemStats]:
        keys = _keys(sorted(set(item_ids)))
        result = {}
        for item in self.table.batch_get(keys):
            attributes = {k: float(v["N"]) if "N" in v else v.get("S", "") for k, v in item.items()}
            result[item["item_id"]["S"]] = stats_from_attributes(item["item_id"]["S"], attributes)
        return result

    def apply(
        self,
        deltas: Mapping[str, Sequence[Delta]],
        shard: str,
        categories: Mapping[str, str] | None = None,
        first_seen: Mapping[str, int] | None = None,
    ) -> None:
        categories = categories or {}
        first_seen = first_seen or {}
        rows = []
        for item, row_deltas in deltas.items():
            strings: dict[str, str | int | IfAbsent] = {}
            if item in categories:
                strings["category"] = categories[item]
            if item in first_seen:  # in the same UpdateItem: no extra call
                strings[FIRST_SEEN] = IfAbsent(first_seen[item])
            rows.append(({"item_id": {"S": item}}, row_deltas, strings))
        self.table.apply_guarded_many(rows, shard)


# ---- Similarity rows and the popular list ----------------------------------------------------


# The lists of a similarity row, stored as JSON strings of [item, score] or, for an item
# whose category is known, [item, score, n]: n indexes a category list of the row (a
# category name per listed item would make the row, and every read of it, larger). The
# collaborative lists share ``categories``; the content list, derived from the catalog as it
# was when computed, has its own ``content_categories``.
_COLLABORATIVE_LISTS = ("neighbours", "extended", "complements")
_ROW_LISTS = frozenset({*_COLLABORATIVE_LISTS, "content"})


def _decode_neighbours(item: dict[str, Any], name: str, categories: list[str]) -> list[Neighbour]:
    return [
        Neighbour(entry[0], entry[1], categories[entry[2]] if len(entry) > 2 else None)
        for entry in json.loads(item.get(name, {}).get("S", "[]"))
    ]


# The most UTF-8 bytes one category index of a similarity row holds. An ASCII index of the
# longest categories (128 characters) fits 769 of them, more than a row lists; 600 distinct
# categories of 128 emoji would take 308 KB and, with the entries, pass DynamoDB's 400 KB.
# Past it, an entry is stored without its category (left out of category-filtered lists).
CATEGORY_INDEX_BUDGET_BYTES = 100_000


def _encode_lists(row: SimilarityRow, names: tuple[str, ...], index_name: str) -> dict[str, Any]:
    """The attributes of ``names`` and their category index ``index_name``."""
    index: dict[str, int] = {}
    index_bytes = 2  # the brackets
    encoded: dict[str, Any] = {}
    for name in names:
        entries: list[list[Any]] = []
        for n in getattr(row, name):
            position = None if n.category is None else index.get(n.category)
            if n.category is not None and position is None:
                added = len(_json(n.category).encode()) + 1  # and its comma
                if index_bytes + added <= CATEGORY_INDEX_BUDGET_BYTES:
                    index_bytes += added
                    position = index[n.category] = len(index)
            entries.append([n.item_id, n.score] if position is None else [n.item_id, n.score, position])
        encoded[name] = {"S": _json(entries)}
    encoded[index_name] = {"S": _json(list(index))}
    return encoded


def _encode_neighbours(row: SimilarityRow) -> dict[str, Any]:
    """The row's list attributes and their category indexes (no content attributes for a
    row without content neighbours, holders or digest: rows without a catalog stay as small
    as before)."""
    encoded = _encode_lists(row, _COLLABORATIVE_LISTS, "categories")
    if row.content:
        encoded.update(_encode_lists(row, ("content",), "content_categories"))
    if row.holders:
        encoded["content_holders"] = {"S": _json(row.holders)}
    if row.content_digest:
        encoded["content_digest"] = {"N": str(row.content_digest)}
    return encoded


def _row_from_item(item: dict[str, Any], wanted: frozenset[str] = _ROW_LISTS) -> SimilarityRow:
    """A stored row; only the lists ``wanted`` are decoded (the others empty: the similarity
    function reads thousands of rows per batch for one list of each)."""
    categories = (
        json.loads(item.get("categories", {}).get("S", "[]"))
        if not wanted.isdisjoint(_COLLABORATIVE_LISTS)
        else []
    )
    content_categories = (
        json.loads(item.get("content_categories", {}).get("S", "[]")) if "content" in wanted else []
    )

    def decoded(name: str, index: list[str]) -> list[Neighbour]:
        return _decode_neighbours(item, name, index) if name in wanted else []

    return SimilarityRow(
        item_id=item["item_id"]["S"],
        neighbours=decoded("neighbours", categories),
        measure=item.get("measure", {}).get("S", ""),
        updated_at=float(item.get("updated_at", {}).get("N", 0)),
        extended=decoded("extended", categories),
        complements=decoded("complements", categories),
        content=decoded("content", content_categories),
        holders=json.loads(item.get("content_holders", {}).get("S", "[]")) if "content" in wanted else [],
        content_digest=int(item.get("content_digest", {}).get("N", 0)) if "content" in wanted else 0,
        support=float(item["support"]["N"]) if "support" in item else None,
        category=item.get("category", {}).get("S", ""),
    )


# A list whose entries take more than LIST_PART_BYTES (JSON) is split across part rows, so
# that no list meets DynamoDB's 400 KB item limit. Only the out-of-stock set grows that
# large (popular lists hold at most 100 entries). The base row then holds a digest of each
# part instead of the entries; an entry's part is crc32(item id) modulo the part count, so a
# stock change rewrites its own part only. All of a write's rows go in one transaction
# conditional on the base row's version, whose 4 MB and 100-action limits bound the parts:
# MAX_LIST_PARTS of LIST_PART_BYTES (some 110,000-130,000 entries of 10-character ids).
# A reader checks each part against its digest, so it never mixes two versions. Part keys
# name the part count, so two layouts never share a row; rows of an earlier layout stay
# (at most 64 x 60 KB) and are rewritten if that layout comes back.
LIST_PART_BYTES = 60_000
MAX_LIST_PARTS = 64
# Consistent re-reads of a split list whose parts kept changing under the reader.
LIST_READ_ATTEMPTS = 3


class ListTooLargeError(ValueError):
    """A list's entries do not fit in MAX_LIST_PARTS part rows (deterministic: retrying
    cannot help, so a stream record that hits it is dead-lettered)."""


def list_part_key(name: str, part: int, parts: int) -> str:
    """Key of part ``part`` of the ``parts`` of list ``name`` (``#`` never starts an id,
    and no list name starts with ``#part:``)."""
    return f"#part:{parts}:{part}:{name}"


def _encode_entries(entries: Sequence[tuple[str, float]]) -> str:
    return _json([[i, w] for i, w in entries])


def _decode_entries(text: str) -> list[tuple[str, float]]:
    return [(i, w) for i, w in json.loads(text)]


def _split_entries(entries: Sequence[tuple[str, float]], parts: int) -> list[str]:
    """The entries' JSON per part (each part's entries keep their order)."""
    split: list[list[tuple[str, float]]] = [[] for _ in range(parts)]
    for entry in entries:
        split[zlib.crc32(entry[0].encode()) % parts].append(entry)
    return [_encode_entries(part) for part in split]


def _utf8_size(text: str) -> int:
    return len(text.encode())


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _list_layout(
    name: str, entries: Sequence[tuple[str, float]], whole: str, current_parts: int
) -> list[str]:
    """The encoded parts of a list to store (``whole``: all its entries encoded): one while
    it fits in a row, else the current number of parts (never fewer than 2) doubled until
    each part fits.

    Raises:
        ListTooLargeError: when MAX_LIST_PARTS parts are not enough.
    """
    # Back to one row only well below the limit, so a list near it does not flip its
    # layout (and rewrite every part) at each change.
    size = _utf8_size(whole)
    if size <= LIST_PART_BYTES and (current_parts == 1 or size <= LIST_PART_BYTES // 2):
        return [whole]
    if any(a[0] > b[0] for a, b in zip(entries, entries[1:], strict=False)):
        raise ValueError(f"{name}: a list split across rows must be in item id order (it reads back so)")
    parts = max(2, current_parts)
    while True:
        encoded = _split_entries(entries, parts)
        if max(_utf8_size(part) for part in encoded) <= LIST_PART_BYTES:
            return encoded
        if parts * 2 > MAX_LIST_PARTS:
            raise ListTooLargeError(
                f"{name} holds {len(entries):,} entries ({_utf8_size(whole):,} bytes as JSON): more than "
                f"{MAX_LIST_PARTS} rows of {LIST_PART_BYTES:,} bytes can take"
            )
        parts *= 2


def _list_head(item: dict[str, Any] | None) -> tuple[PopularList, list[str]]:
    """The list a base row holds and the digests of its parts (none: the entries are in
    the row itself)."""
    if not item:
        return PopularList(), []
    digests = json.loads(item["digests"]["S"]) if "digests" in item else []
    return (
        PopularList(
            [] if digests else _decode_entries(item["items"]["S"]),
            int(item["version"]["N"]),
            int(item.get("epoch", {}).get("N", 0)),
        ),
        digests,
    )


class DynamoSimilarityRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def get_many(
        self,
        item_ids: Sequence[str],
        lists: Sequence[str] = (),
        consistent: bool = False,
        row_lists: Collection[str] | None = None,
    ) -> tuple[dict[str, SimilarityRow], dict[str, PopularList]]:
        wanted = list(dict.fromkeys([*item_ids, *lists]))
        wanted_lists = frozenset(row_lists) if row_lists is not None else _ROW_LISTS
        list_names = set(lists)
        rows: dict[str, SimilarityRow] = {}
        found: dict[str, PopularList] = {name: PopularList() for name in lists}
        split: dict[str, list[str]] = {}
        for item in self.table.batch_get(_keys(wanted), consistent):
            key = item["item_id"]["S"]
            if key in list_names:
                found[key], digests = _list_head(item)
                if digests:
                    split[key] = digests
            else:
                row = _row_from_item(item, wanted_lists)
                rows[row.item_id] = row
        if split:  # a second read, only for lists too large for one row
            for name in self._fill_parts(found, split, consistent):
                found[name] = self.get_list(name)  # a write in flight: read it whole, consistently
        return rows, found

    def _fill_parts(
        self, found: dict[str, PopularList], split: Mapping[str, list[str]], consistent: bool
    ) -> list[str]:
        """Fill the split lists of ``found`` (name -> its parts' digests) from their part
        rows, in item id order (each part is; a list is split only when it is).

        Returns:
            the names of the lists with a part missing or other than its head names (a
            write landed between the two reads): those are left unfilled.
        """
        wanted = {
            list_part_key(name, part, len(digests)): (name, digest)
            for name, digests in split.items()
            for part, digest in enumerate(digests)
        }
        parts = {item["item_id"]["S"]: item for item in self.table.batch_get(_keys(wanted), consistent)}
        stale = {
            name
            for key, (name, digest) in wanted.items()
            if parts.get(key, {}).get("digest", {}).get("S") != digest
        }
        entries: dict[str, list[tuple[str, float]]] = {name: [] for name in split if name not in stale}
        for key, item in parts.items():
            if wanted[key][0] in entries:
                entries[wanted[key][0]].extend(_decode_entries(item["items"]["S"]))
        for name, listed in entries.items():
            listed.sort(key=lambda entry: entry[0])
            found[name].items = listed
        return sorted(stale)

    def put_rows(self, rows: Iterable[SimilarityRow]) -> None:
        rows = list({row.item_id: row for row in rows}.values())  # the last row of an item
        items = [
            {
                "item_id": {"S": row.item_id},
                **_encode_neighbours(row),
                "measure": {"S": row.measure or "-"},
                "updated_at": _number(row.updated_at),
                **({"support": _number(row.support)} if row.support is not None else {}),
                **({"category": {"S": row.category}} if row.category else {}),
            }
            for row in rows
        ]
        self.table.batch_put(items)

    def get_list(self, name: str) -> PopularList:
        for _ in range(LIST_READ_ATTEMPTS):
            found, digests = self._get_head(name)
            if not digests or not self._fill_parts({name: found}, {name: digests}, consistent=True):
                return found
        raise ConcurrentUpdateError(f"{name}'s parts kept changing while being read")

    def _get_head(self, name: str) -> tuple[PopularList, list[str]]:
        response = self.table.call(
            "get_item", TableName=self.table.name, Key={"item_id": {"S": name}}, ConsistentRead=True
        )
        return _list_head(response.get("Item"))

    def put_list(self, name: str, popular: PopularList) -> None:
        condition = "attribute_not_exists(item_id)" if popular.version == 0 else "version = :v"
        extra = (
            {} if popular.version == 0 else {"ExpressionAttributeValues": {":v": {"N": str(popular.version)}}}
        )
        whole = _encode_entries(popular.items)
        digests: list[str] = []
        if _utf8_size(whole) > LIST_PART_BYTES // 2 and popular.version:
            # Large enough that the stored layout matters: read it (small lists skip this).
            stored, digests = self._get_head(name)
            if stored.version != popular.version:
                raise ConcurrentUpdateError(f"{name} changed concurrently")
        parts = _list_layout(name, popular.items, whole, max(1, len(digests)))
        head = {
            "item_id": {"S": name},
            "version": {"N": str(popular.version + 1)},
            "epoch": {"N": str(popular.epoch)},
        }
        if len(parts) == 1:
            try:
                self.table.call(
                    "put_item",
                    TableName=self.table.name,
                    Item={**head, "items": {"S": parts[0]}},
                    ConditionExpression=condition,
                    **extra,
                )
            except ClientError as error:
                raise ConcurrentUpdateError(f"{name} changed concurrently") from error
            except RepositoryError as error:  # a transaction on the row was in flight
                if error_code(error.__cause__) == "TransactionConflictException":
                    raise ConcurrentUpdateError(f"{name} changed concurrently") from error
                raise
            return
        new_digests = [_digest(part) for part in parts]
        # Same layout: only the parts whose digest changed are written.
        changed = [
            n for n, digest in enumerate(new_digests) if len(digests) != len(parts) or digests[n] != digest
        ]
        actions: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table.name,
                    # "items" empty: a reader from before split lists sees an empty list.
                    "Item": {**head, "items": {"S": "[]"}, "digests": {"S": json.dumps(new_digests)}},
                    "ConditionExpression": condition,
                    **extra,
                }
            }
        ]
        actions += [
            {
                "Put": {
                    "TableName": self.table.name,
                    "Item": {
                        "item_id": {"S": list_part_key(name, n, len(parts))},
                        "items": {"S": parts[n]},
                        "digest": {"S": new_digests[n]},
                    },
                }
            }
            for n in changed
        ]
        try:
            self.table.call("transact_write_items", TransactItems=actions)
        except ClientError as error:
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if any(code in ("ConditionalCheckFailed", "TransactionConflict") for code in reasons):
                raise ConcurrentUpdateError(f"{name} changed concurrently") from error
            if "ValidationError" in reasons:  # deterministic: retrying cannot help
                raise ValueError(f"TransactWriteItems of {name} refused: {reasons}") from error
            raise RepositoryError(f"TransactWriteItems of {name} failed: {reasons or error}") from error


# ---- Trends -----------------------------------------------------------------------------
# Key (item_id, day): counter rows ``<item>`` / ``#cat:<category>`` / ``#all`` per UTC day
# (days since the epoch) with ``v:<hh>``/``p:<hh>`` numbers, ``expires_at`` (TTL) and replay
# guards; list rows ``#trending:...`` at day 0 with ``entries`` (JSON), ``version`` and
# ``profile`` (JSON, 24 numbers; absent in rows written before it was kept: flat).
TTL_ATTRIBUTE = "expires_at"
LIST_DAY = 0


class DynamoTrendsRepository:
    def __init__(self, table: DynamoTable, retention_days: int) -> None:
        self.table = table
        self.retention_days = retention_days

    @staticmethod
    def _key(name: str, day: int) -> dict[str, Any]:
        return {"item_id": {"S": name}, "day": {"N": str(day)}}

    def apply(self, deltas: Mapping[tuple[str, int], Sequence[Delta]], shard: str) -> None:
        # Every write (re)sets the expiry with the counts: no separate write per row.
        rows = [
            (self._key(name, day), row_deltas, {TTL_ATTRIBUTE: (day + 1 + self.retention_days) * DAY})
            for (name, day), row_deltas in deltas.items()
        ]
        self.table.apply_guarded_many(rows, shard)

    def get_counts(self, keys: Sequence[str], days: Sequence[int]) -> dict[str, HourlyCounts]:
        counts, _ = self.get_many(keys, days, [])
        return counts

    def get_many(
        self, keys: Sequence[str], days: Sequence[int], lists: Sequence[str], consistent: bool = False
    ) -> tuple[dict[str, HourlyCounts], dict[str, TrendingList]]:
        wanted = [self._key(name, day) for name in dict.fromkeys(keys) for day in dict.fromkeys(days)]
        wanted += [self._key(name, LIST_DAY) for name in dict.fromkeys(lists)]
        counts = {name: HourlyCounts() for name in keys}
        found = {name: TrendingList() for name in lists}
        list_names = set(lists)
        for item in self.table.batch_get(wanted, consistent):
            name, day = item["item_id"]["S"], int(item["day"]["N"])
            if name in list_names and day == LIST_DAY:
                found[name] = _trending_from_item(item)
            elif name in counts:
                attributes = {k: float(v["N"]) for k, v in item.items() if "N" in v}
                counts_from_attributes(counts[name], day, attributes)
        return counts, found

    def put_list(self, name: str, trending: TrendingList) -> None:
        condition = "attribute_not_exists(item_id)" if trending.version == 0 else "version = :v"
        extra = (
            {}
            if trending.version == 0
            else {"ExpressionAttributeValues": {":v": {"N": str(trending.version)}}}
        )
        try:
            self.table.call(
                "put_item",
                TableName=self.table.name,
                Item={
                    **self._key(name, LIST_DAY),
                    "entries": {"S": entries_to_json(trending.entries)},
                    "version": {"N": str(trending.version + 1)},
                    **(
                        {"profile": {"S": profile_to_json(trending.profile)}}
                        if trending.profile is not None
                        else {}
                    ),
                    **({"as_of": _number(trending.as_of)} if trending.as_of else {}),
                },
                ConditionExpression=condition,
                **extra,
            )
        except ClientError as error:
            raise ConcurrentUpdateError(f"{name} changed concurrently") from error


def _trending_from_item(item: dict[str, Any]) -> TrendingList:
    profile = profile_from_json(item["profile"]["S"]) if "profile" in item else None
    as_of = float(item["as_of"]["N"]) if "as_of" in item else 0.0
    return TrendingList(entries_from_json(item["entries"]["S"]), int(item["version"]["N"]), profile, as_of)


# ---- Outbound channels ------------------------------------------------------------------------


class KinesisChangePublisher:
    """One record per changed item, partitioned by item, so an item's recomputations are
    ordered on one shard of the changed-items stream."""

    def __init__(self, stream_name: str, client: Any) -> None:
        self.stream_name = stream_name
        self.client = client

    def publish(
        self,
        changed: Iterable[str],
        norm_changed: set[str],
        popular_changed: Iterable[str] = (),
        content_changed: Iterable[str] = (),
    ) -> None:
        changed, popular, content = set(changed), set(popular_changed), set(content_changed)
        records = [
            {
                "Data": json.dumps(
                    {
                        "item_id": item,
                        "changed": item in changed,
                        "norm_changed": item in norm_changed,
                        "popular_changed": item in popular,
                        # Only on catalog announcements: other records stay as they were.
                        **({"content_changed": True} if item in content else {}),
                    }
                ).encode(),
                "PartitionKey": item,
            }
            for item in sorted(changed | norm_changed | popular | content)
        ]
        for chunk in _chunks(records, PUT_RECORDS_LIMIT):
            remaining = list(chunk)
            for attempt in range(UNPROCESSED_RETRIES + 1):
                try:
                    response = self.client.put_records(StreamName=self.stream_name, Records=remaining)
                except (ClientError, BotoCoreError) as error:
                    raise RepositoryError(f"PutRecords on {self.stream_name} failed: {error}") from error
                if not response.get("FailedRecordCount"):
                    break
                remaining = [
                    record
                    for record, result in zip(remaining, response["Records"], strict=True)
                    if "ErrorCode" in result
                ]
                _backoff(attempt)
            else:
                raise RepositoryError(
                    f"PutRecords on {self.stream_name}: records still failing after retries"
                )


class SqsDeadLetterSink:
    """Sends each dead letter as a JSON message: reason, origin and the raw record.

    A record's data is cut so that its message fits SQS's message size limit, and messages
    are grouped so that each SendMessageBatch stays under the same limit in total.
    """

    MAX_REQUEST_BYTES = 256 * 1024  # SQS: per message and per SendMessageBatch
    MAX_MESSAGE_BYTES = MAX_REQUEST_BYTES - 1024  # room for the request's own framing

    def __init__(self, queue_url: str, client: Any) -> None:
        self.queue_url = queue_url
        self.client = client

    def message_body(self, letter: DeadLetter) -> str:
        """The JSON message for one letter, its data truncated until it fits one message."""
        data = letter.data
        while True:
            body = json.dumps(
                {
                    "reason": letter.reason,
                    "source": letter.source,
                    "shard": letter.shard,
                    "sequence_number": letter.sequence_number,
                    "partition_key": letter.partition_key,
                    "data": data,
                    "data_truncated": len(data) < len(letter.data),
                }
            )
            size = len(body.encode())
            if size <= self.MAX_MESSAGE_BYTES or not data:
                return body
            # JSON escapes can make a character cost up to 6 bytes: shrink in proportion.
            data = data[: max(0, len(data) * self.MAX_MESSAGE_BYTES // size - 64)]

    def batches(self, letters: Sequence[DeadLetter]) -> Iterator[list[str]]:
        """Message bodies grouped by at most 10 and at most MAX_REQUEST_BYTES in total."""
        batch: list[str] = []
        batch_bytes = 0
        for letter in letters:
            body = self.message_body(letter)
            size = len(body.encode())
            if batch and (len(batch) == SQS_BATCH_LIMIT or batch_bytes + size > self.MAX_REQUEST_BYTES):
                yield batch
                batch, batch_bytes = [], 0
            batch.append(body)
            batch_bytes += size
        if batch:
            yield batch

    def send(self, letters: Sequence[DeadLetter]) -> None:
        for start, bodies in enumerate(self.batches(letters)):
            entries: list[Any] = [
                {"Id": f"{start}-{index}", "MessageBody": body} for index, body in enumerate(bodies)
            ]
            # Entries SQS refused for its own reasons are sent again on their own: failing the
            # batch for them would make Lambda's retry send the letters already accepted a
            # second time (which still happens when a whole call fails).
            for attempt in range(UNPROCESSED_RETRIES + 1):
                try:
                    response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
                except (ClientError, BotoCoreError) as error:
                    raise RepositoryError(f"SendMessageBatch failed: {error}") from error
                failed = response.get("Failed", [])
                rejected = [entry for entry in failed if entry.get("SenderFault")]
                if rejected:  # the message itself is refused: sending it again cannot help
                    codes = sorted({str(entry.get("Code")) for entry in rejected})
                    raise RepositoryError(
                        f"dead-letter queue rejected {len(rejected)} messages ({', '.join(codes)})"
                    )
                retry = {entry["Id"] for entry in failed}
                entries = [entry for entry in entries if entry["Id"] in retry]
                if not entries:
                    break
                if attempt < UNPROCESSED_RETRIES:
                    _backoff(attempt)
            else:
                raise RepositoryError(f"dead-letter queue refused {len(entries)} messages")


# ---- Coupons -----------------------------------------------------------------------------
# One row per coupon (key ``coupon_id``): ``spec`` (the definition as JSON), ``budget``,
# ``remaining``, ``redeemed``, ``refused`` and one replay guard ``s#<shard>`` per shard.
# Index rows ``#scope:cat:<category>`` / ``#scope:item:<item>`` hold a string set
# ``coupons`` of the ids in that scope ('#' never starts an id, so no clash).
SCOPE_ROW_PREFIX = "#scope:"
PUT_ATTEMPTS = 5
# Tries of a redemption whose coupon a redefinition changes between its read and its write.
REDEEM_ATTEMPTS = 5
# TransactWriteItems takes 100 actions: an index row's update and 99 coupons' checks.
PRUNE_CHECKS = 99


def _coupon_from_item(item: dict[str, Any]) -> Coupon:
    return Coupon(
        coupon_id=item["coupon_id"]["S"],
        spec=CouponSpec.model_validate_json(item["spec"]["S"], context={"stored": True}),
        remaining=int(item["remaining"]["N"]),
        redeemed=int(item.get("redeemed", {}).get("N", 0)),
        refused=int(item.get("refused", {}).get("N", 0)),
    )


class DynamoCouponRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def _key(self, coupon_id: str) -> dict[str, Any]:
        return {"coupon_id": {"S": coupon_id}}

    def _index(self, keys: Iterable[str], coupon_id: str, action: str) -> None:
        for key in keys:
            self.table.call(
                "update_item",
                TableName=self.table.name,
                Key=self._key(SCOPE_ROW_PREFIX + key),
                UpdateExpression=f"{action} coupons :id",
                ExpressionAttributeValues={":id": {"SS": [coupon_id]}},
            )

    def _index_within_cap(self, keys: Sequence[str], coupon_id: str, now: float) -> None:
        """Index the coupon under each scope key, on condition that the scope lists fewer
        than COUPONS_PER_SCOPE coupons or this one already; a full scope is pruned of every
        expired coupon and tried once more, else ScopeFullError, after the keys before it
        that the coupon's stored row does not name are unindexed again (a stale entry of a
        live coupon would hold a slot until it expires)."""
        for done, key in enumerate(keys):
            for attempt in range(2):
                if self.table.call_if_condition_holds(
                    "update_item",
                    TableName=self.table.name,
                    Key=self._key(SCOPE_ROW_PREFIX + key),
                    UpdateExpression="ADD coupons :id",
                    ConditionExpression="attribute_not_exists(coupons) OR size(coupons) < :cap"
                    " OR contains(coupons, :coupon)",
                    ExpressionAttributeValues={
                        ":id": {"SS": [coupon_id]},
                        ":cap": {"N": str(COUPONS_PER_SCOPE)},
                        ":coupon": {"S": coupon_id},
                    },
                ):
                    break
                if attempt == 1:
                    self._unindex_refused(keys[:done], coupon_id)
                    raise ScopeFullError(coupon_id, key)
                self.prune_expired([key], now)  # all of them: the sample may have missed some

    def _unindex_refused(self, keys: Sequence[str], coupon_id: str) -> None:
        """Take a refused definition's id out of ``keys`` where the coupon's stored row (read
        now) names no such scope, each guarded as a prune is (:meth:`_unlist_if_unchanged`):
        a redefinition landing meanwhile keeps its entries."""
        stored = self.table.call(
            "get_item", TableName=self.table.name, Key=self._key(coupon_id), ConsistentRead=True
        ).get("Item")
        named = set(_coupon_from_item(stored).scope_keys()) if stored else set()
        as_read = {coupon_id: stored} if stored else {}
        for key in keys:
            if key not in named:
                self._unlist_if_unchanged(SCOPE_ROW_PREFIX + key, [coupon_id], as_read)

    def put(self, coupon_id: str, spec: CouponSpec, now: float | None = None) -> Coupon:
        """Read, then write conditionally on ``redeemed`` not having moved (retried), so a
        concurrent redemption is never lost. The new scope is indexed before the row is
        written (within COUPONS_PER_SCOPE: ScopeFullError) and the old one unindexed after:
        a crash leaves at most a stale index entry, which is harmless (ranking reads each
        coupon's own scope). The new scope is indexed again after the write: a prune of the
        scope that read the coupon's previous row, expired, may have taken the entry out in
        between. Given ``now``, the scope's index rows are then pruned (:meth:`prune_expired`,
        a sample of them); a full scope is pruned whole, as of ``now`` or the clock."""
        keys = scope_keys(spec.scope)
        self._index_within_cap(keys, coupon_id, time.time() if now is None else now)
        for _attempt in range(PUT_ATTEMPTS):
            stored = self.table.call(
                "get_item", TableName=self.table.name, Key=self._key(coupon_id), ConsistentRead=True
            ).get("Item")
            old = _coupon_from_item(stored) if stored else None
            redeemed, refused = (old.redeemed, old.refused) if old else (0, 0)
            values: dict[str, Any] = {
                ":spec": {"S": spec.model_dump_json()},
                ":budget": {"N": str(spec.budget)},
                ":remaining": {"N": str(remaining_after_redefinition(spec.budget, redeemed, refused))},
                ":redeemed": {"N": str(redeemed)},
                ":refused": {"N": str(refused)},
            }
            # Neither count may have moved since the read (a redemption, or one refused).
            counts_unmoved = "redeemed = :redeemed AND " + (
                "refused = :refused" if refused else "(attribute_not_exists(refused) OR refused = :refused)"
            )
            condition = counts_unmoved if old else "attribute_not_exists(coupon_id)"
            if not old:
                values.pop(":redeemed")
                values.pop(":refused")
            if not self.table.call_if_condition_holds(
                "update_item",
                TableName=self.table.name,
                Key=self._key(coupon_id),
                UpdateExpression="SET spec = :spec, budget = :budget, remaining = :remaining"
                + (", redeemed = :zero, refused = :zero" if not old else ""),
                ConditionExpression=condition,
                ExpressionAttributeValues={**values, **({":zero": {"N": "0"}} if not old else {})},
            ):
                continue
            self._index(keys, coupon_id, "ADD")
            stale = set(old.scope_keys() if old else ()) - set(keys)
            self._index(sorted(stale), coupon_id, "DELETE")
            if now is not None:
                try:
                    self.prune_expired(keys, now, limit=PRUNE_SAMPLE)
                except RepositoryError as error:
                    # The coupon is defined: pruning is upkeep, done again at the scope's
                    # next definition (a stale entry costs a read, never an offer).
                    logger.warning(
                        "expired coupons of the scope not pruned",
                        extra={"coupon_id": coupon_id, "error": str(error)},
                    )
            return Coupon(
                coupon_id,
                spec,
                remaining_after_redefinition(spec.budget, redeemed, refused),
                redeemed,
                refused,
            )
        raise ConcurrentUpdateError(f"coupon {coupon_id} kept changing while it was redefined")

    def prune_expired(self, scope_keys: Sequence[str], now: float, limit: int | None = None) -> set[str]:
        """Take out of these scopes' index rows the coupons expired by ``now`` (``valid_to
        <= now``) and ids without a coupon row (of ``limit`` ids drawn at random when they
        list more). One transaction per index row (per 99 ids), on condition that each
        coupon's row is still the one read (or still absent): a coupon redefined meanwhile
        keeps its entry. A cancelled transaction leaves its entries, harmless until the
        scope is pruned again. Returns the ids of the coupons taken out of every one of these
        index rows that listed them (a coupon that one cancelled transaction left listed is
        not among them)."""
        index_rows = self.table.batch_get(
            [self._key(SCOPE_ROW_PREFIX + key) for key in dict.fromkeys(scope_keys)], consistent=True
        )
        members = {row["coupon_id"]["S"]: set(row.get("coupons", {}).get("SS", [])) for row in index_rows}
        listed = prune_candidates(set().union(*members.values()), limit)
        if not listed:
            return set()
        stored = {
            item["coupon_id"]["S"]: item
            for item in self.table.batch_get([self._key(c) for c in listed], consistent=True)
        }
        expired = {
            coupon_id
            for coupon_id in listed
            if coupon_id not in stored or _coupon_from_item(stored[coupon_id]).spec.valid_to <= now
        }
        removed: set[str] = set()
        still_listed: set[str] = set()
        for row_key, coupon_ids in sorted(members.items()):
            for chunk in _chunks(sorted(coupon_ids & expired), PRUNE_CHECKS):
                (removed if self._unlist_if_unchanged(row_key, chunk, stored) else still_listed).update(chunk)
        return removed - still_listed

    def _unlist_if_unchanged(
        self, index_row: str, coupon_ids: Sequence[str], stored: Mapping[str, dict[str, Any]]
    ) -> bool:
        """Take ``coupon_ids`` (at most PRUNE_CHECKS) out of the index row ``index_row`` in one
        transaction that holds only while each coupon's row is still the one read
        (``stored``), or still absent when ``stored`` lacks it: a coupon redefined meanwhile
        keeps its entry. False when the transaction was cancelled (nothing taken out)."""
        checks = [
            {
                "ConditionCheck": {
                    "TableName": self.table.name,
                    "Key": self._key(coupon_id),
                    **(
                        {
                            "ConditionExpression": "spec = :spec",
                            "ExpressionAttributeValues": {":spec": stored[coupon_id]["spec"]},
                        }
                        if coupon_id in stored
                        else {"ConditionExpression": "attribute_not_exists(coupon_id)"}
                    ),
                }
            }
            for coupon_id in coupon_ids
        ]
        update = {
            "Update": {
                "TableName": self.table.name,
                "Key": self._key(index_row),
                "UpdateExpression": "DELETE coupons :gone",
                "ExpressionAttributeValues": {":gone": {"SS": list(coupon_ids)}},
            }
        }
        try:
            self.table.call("transact_write_items", TransactItems=[update, *checks])
        except ClientError as error:
            if error_code(error) != "TransactionCanceledException":
                raise
            return False
        return True

    def indexed_scopes(self) -> list[str]:
        """A Scan of the keys alone (paged), keeping the index rows that list a coupon (a
        row whose every coupon was pruned has no ``coupons`` attribute left)."""
        scopes = []
        options: dict[str, Any] = {
            "TableName": self.table.name,
            "ProjectionExpression": "coupon_id",
            "FilterExpression": "begins_with(coupon_id, :prefix) AND attribute_exists(coupons)",
            "ExpressionAttributeValues": {":prefix": {"S": SCOPE_ROW_PREFIX}},
        }
        while True:
            page = self.table.call("scan", **options)
            scopes += [
                item["coupon_id"]["S"].removeprefix(SCOPE_ROW_PREFIX) for item in page.get("Items", [])
            ]
            if "LastEvaluatedKey" not in page:
                return sorted(scopes)
            options["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def get_many(self, coupon_ids: Iterable[str]) -> dict[str, Coupon]:
        keys = [self._key(c) for c in sorted(set(coupon_ids))]
        return {c.coupon_id: c for c in map(_coupon_from_item, self.table.batch_get(keys))}

    def all_coupons(self) -> Iterator[Coupon]:
        """A Scan of the coupon rows (paged; the index rows are left out), in table order."""
        options: dict[str, Any] = {
            "TableName": self.table.name,
            "FilterExpression": "NOT begins_with(coupon_id, :prefix)",
            "ExpressionAttributeValues": {":prefix": {"S": SCOPE_ROW_PREFIX}},
        }
        while True:
            page = self.table.call("scan", **options)
            yield from map(_coupon_from_item, page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            options["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def defined(self, coupon_ids: Iterable[str]) -> set[str]:
        """Consistent and key-only (a coupon defined a moment ago counts; no row is parsed)."""
        keys = [self._key(c) for c in sorted(set(coupon_ids))]
        return {
            item["coupon_id"]["S"]
            for item in self.table.batch_get(keys, consistent=True, projection="coupon_id")
        }

    def in_scope(self, scope_keys: Sequence[str]) -> set[str]:
        keys = [self._key(SCOPE_ROW_PREFIX + k) for k in dict.fromkeys(scope_keys)]
        found: set[str] = set()
        for item in self.table.batch_get(keys):
            found.update(item.get("coupons", {}).get("SS", []))
        return found

    def redeem(self, coupon_id: str, sequence: str, shard: str) -> str:
        """One guarded UpdateItem: ``remaining - 1, redeemed + 1`` if the row exists, its
        guard is older than the record and ``remaining > 0``. When the condition fails, a
        consistent read tells a replay (guard holds the record), an unknown coupon, or an
        exhausted one (then ``refused + 1``, guarded the same way and only while ``remaining``
        is still 0: a redefinition with a larger budget in between makes it a redemption
        again, tried afresh)."""
        guard = guard_attribute(shard)
        one, zero = {"N": "1"}, {"N": "0"}

        def guarded_update(update: str, remaining: str, values: dict[str, Any]) -> bool:
            """``update`` if the row exists, its guard is older than the record and
            ``remaining`` holds (both updates set the guard to the record); ``values``: the
            expressions' values but ``:seq``."""
            return self.table.call_if_condition_holds(
                "update_item",
                TableName=self.table.name,
                Key=self._key(coupon_id),
                UpdateExpression=f"SET #g = :seq ADD {update}",
                ConditionExpression="attribute_exists(coupon_id) AND (attribute_not_exists(#g) OR #g < :seq) "
                f"AND {remaining}",
                ExpressionAttributeNames={"#g": guard},
                ExpressionAttributeValues={":seq": {"S": sequence}, **values},
            )

        for _attempt in range(REDEEM_ATTEMPTS):
            if guarded_update(
                "remaining :minus, redeemed :one",
                "remaining > :zero",
                {":minus": {"N": "-1"}, ":one": one, ":zero": zero},
            ):
                return REDEEMED
            stored = self.table.call(
                "get_item", TableName=self.table.name, Key=self._key(coupon_id), ConsistentRead=True
            ).get("Item")
            if not stored:
                return UNKNOWN
            applied = stored.get(guard, {}).get("S")
            if applied is not None and applied >= sequence:
                return DUPLICATE
            if guarded_update("refused :one", "remaining <= :zero", {":one": one, ":zero": zero}):
                return EXHAUSTED
            # Replayed, deleted or given a larger budget since the read: decide again.
        raise RepositoryError(
            f"coupon {coupon_id!r} changed under each of {REDEEM_ATTEMPTS} tries to count a redemption; "
            "the batch is retried"
        )


# ---- Catalog -----------------------------------------------------------------------------
# Item rows (key ``item_id``): title, category, price, in_stock, tags (JSON), timestamp,
# terms (token counts, JSON), norm and norm_documents, moved_by, former_categories (JSON),
# listed_at.
# Posting rows ``#tok:<token>``: string set ``items``
# (at most the posting limit); count rows ``#df:<token>``: ``df``, the count of items holding the
# token, with per-shard guards.
# Row ``#catalog``: ``documents`` with per-shard guards. '#' never starts an item id.


def _catalog_to_item(item: CatalogItem) -> dict[str, Any]:
    return {
        "item_id": {"S": item.item_id},
        "title": {"S": item.title},
        "category": {"S": item.category},
        "price": _number(item.price),
        "in_stock": {"BOOL": item.in_stock},
        "tags": {"S": _json(item.tags)},
        "timestamp": _number(item.timestamp),
        "terms": {"S": json.dumps(item.terms, separators=(",", ":"), sort_keys=True, ensure_ascii=False)},
        "norm": _number(item.norm),
        "norm_documents": _number(item.norm_documents),
        **({"shard": {"S": item.shard}, "sequence": {"S": item.sequence}} if item.shard else {}),
        **({"moved_by": {"S": item.moved_by}} if item.moved_by else {}),
        # What a version before moved_by reads (after a rollback): whether the row's own
        # record moved the item.
        **({"moved": {"BOOL": True}} if item.moved_by and item.moved_by == item.sequence else {}),
        **({"former_categories": {"S": _json(item.former_categories)}} if item.former_categories else {}),
        **({"listed_at": _number(item.listed_at)} if item.listed_at else {}),
    }


def _catalog_from_item(item: dict[str, Any]) -> CatalogItem:
    return CatalogItem(
        item_id=item["item_id"]["S"],
        title=item["title"]["S"],
        category=item["category"]["S"],
        price=float(item["price"]["N"]),
        in_stock=bool(item["in_stock"]["BOOL"]),
        tags=json.loads(item["tags"]["S"]),
        timestamp=float(item["timestamp"]["N"]),
        terms=json.loads(item["terms"]["S"]),
        norm=float(item["norm"]["N"]),
        shard=item.get("shard", {}).get("S", ""),
        sequence=item.get("sequence", {}).get("S", ""),
        norm_documents=float(item.get("norm_documents", {}).get("N", 0)),
        moved_by=_moved_by(item),
        former_categories=json.loads(item.get("former_categories", {}).get("S", "[]")),
        listed_at=float(item.get("listed_at", {}).get("N", 0)),
    )


def _moved_by(item: dict[str, Any]) -> str:
    """The sequence key of the record that moved the item; rows written before 2026-12-01
    say only whether their own record did (``moved``)."""
    if "moved_by" in item:
        return str(item["moved_by"]["S"])
    return item.get("sequence", {}).get("S", "") if item.get("moved", {}).get("BOOL", False) else ""


def _posting(ids: dict[str, Any] | None, counted: dict[str, Any] | None) -> Posting:
    """A token's posting row and count row as read (None: no such row): its ids, and its
    count of holders (at least its ids: a posting written before holders were counted)."""
    return Posting.stored(
        (ids or {}).get("items", {}).get("SS", []), float((counted or {}).get(POSTING_COUNT, {}).get("N", 0))
    )


class DynamoCatalogRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def _key(self, key: str) -> dict[str, Any]:
        return {"item_id": {"S": key}}

    def get_many(self, item_ids: Iterable[str], consistent: bool = False) -> dict[str, CatalogItem]:
        found = self.table.batch_get(_keys(sorted(set(item_ids))), consistent)
        return {row.item_id: row for row in map(_catalog_from_item, found)}

    def categories(self, item_ids: Iterable[str]) -> dict[str, str]:
        found = self.table.batch_get(
            _keys(sorted(set(item_ids))), consistent=True, projection="item_id, #c", names={"#c": "category"}
        )
        return {item["item_id"]["S"]: item["category"]["S"] for item in found if "category" in item}

    def _put(self, item: CatalogItem, expected: float | None) -> bool:
        condition = (
            {"ConditionExpression": "attribute_not_exists(item_id)"}
            if expected is None
            else {
                "ConditionExpression": "#t = :expected",
                "ExpressionAttributeNames": {"#t": "timestamp"},
                "ExpressionAttributeValues": {":expected": _number(expected)},
            }
        )
        return self.table.call_if_condition_holds(
            "put_item", TableName=self.table.name, Item=_catalog_to_item(item), **condition
        )

    def put_many(self, items: Sequence[tuple[CatalogItem, float | None]]) -> list[str]:
        # Independent conditional writes: concurrently, as the count rows.
        written = concurrently(lambda pair: self._put(*pair), items, WRITE_CONCURRENCY)
        return [item.item_id for (item, _), ok in zip(items, written, strict=True) if not ok]

    def _refresh_norm(self, item: CatalogItem) -> None:
        # The same record: its timestamp and the stream record that wrote it (a record of the
        # same timestamp with other fields may have replaced it meanwhile).
        written_by = (
            "#h = :shard AND #q = :sequence"
            if item.sequence
            else "attribute_not_exists(#h) AND attribute_not_exists(#q)"
        )
        by_values = {":shard": {"S": item.shard}, ":sequence": {"S": item.sequence}} if item.sequence else {}
        self.table.call_if_condition_holds(
            "update_item",
            TableName=self.table.name,
            Key=self._key(item.item_id),
            UpdateExpression="SET #n = :norm, #d = :documents",
            ConditionExpression=(
                f"#t = :timestamp AND {written_by} AND (attribute_not_exists(#d) OR #d < :documents)"
            ),
            ExpressionAttributeNames={
                "#n": "norm",
                "#d": "norm_documents",
                "#t": "timestamp",
                "#h": "shard",
                "#q": "sequence",
            },
            ExpressionAttributeValues={
                ":norm": _number(item.norm),
                ":documents": _number(item.norm_documents),
                ":timestamp": _number(item.timestamp),
                **by_values,
            },
        )

    def refresh_norms(self, items: Sequence[CatalogItem]) -> None:
        concurrently(self._refresh_norm, items, WRITE_CONCURRENCY)

    def _add(self, token: str, ids: set[str], limit: int) -> int:
        try:
            response = self.table.call(
                "update_item",
                TableName=self.table.name,
                Key=self._key(token_row(token)),
                UpdateExpression="ADD #i :ids",
                ConditionExpression="attribute_not_exists(#i) OR size(#i) < :limit",
                ExpressionAttributeNames={"#i": "items"},
                ExpressionAttributeValues={":ids": {"SS": sorted(ids)}, ":limit": {"N": str(limit)}},
                ReturnValues="ALL_NEW",
                # Full: its size is still a lower bound of the document frequency (a batch can
                # take a posting past the limit, the condition being checked before the ADD).
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            response_on_failure: dict[str, Any] = dict(error.response)
            item = response_on_failure.get("Item") or {}
            if "items" not in item:
                return limit  # too common to index further
            return len(_posting(item, None).items)
        return len(_posting(response.get("Attributes", {}), None).items)

    def _remove(self, token: str, ids: set[str]) -> None:
        self.table.call(
            "update_item",
            TableName=self.table.name,
            Key=self._key(token_row(token)),
            UpdateExpression="DELETE #i :ids",
            ExpressionAttributeNames={"#i": "items"},
            ExpressionAttributeValues={":ids": {"SS": sorted(ids)}},
        )

    def update_postings(
        self, add: Mapping[str, set[str]], remove: Mapping[str, set[str]], limit: int
    ) -> dict[str, int]:
        removals = [(token, ids) for token, ids in remove.items() if ids]
        additions = [(token, ids) for token, ids in add.items() if ids]
        # Removals first: a token both removed and added in a batch ends up added.
        concurrently(lambda pair: self._remove(*pair), removals, WRITE_CONCURRENCY)
        sizes = concurrently(lambda pair: self._add(pair[0], pair[1], limit), additions, WRITE_CONCURRENCY)
        # The counts of holders, written before the postings (count_postings): one consistent
        # read of the small count rows.
        keys = _keys(sorted(count_row(token) for token, _ in additions))
        counted = (
            {row["item_id"]["S"]: row for row in self.table.batch_get(keys, consistent=True)} if keys else {}
        )
        return {
            token: max(size, _posting(None, counted.get(count_row(token))).count)
            for (token, _), size in zip(additions, sizes, strict=True)
        }

    def count_postings(self, deltas: Mapping[str, Sequence[Delta]], shard: str) -> None:
        self.table.apply_guarded_many(
            [
                (self._key(count_row(token)), token_deltas, {})
                for token, token_deltas in deltas.items()
                if token_deltas
            ],
            shard,
        )

    def stored_counts(self, progress: Callable[[int], None] | None = None) -> CatalogTally:
        tally = CatalogTally()
        holders = tally.stored_holders
        read = 0
        # Only the records' tokens and the counts are needed: the rest of each row (the
        # posting rows' ids above all) is left out of the pages (not of the bill).
        names = {f"#a{n}": name for n, name in enumerate(("item_id", "terms", POSTING_COUNT, "documents"))}
        options: dict[str, Any] = {
            "TableName": self.table.name,
            "ProjectionExpression": ", ".join(names),
            "ExpressionAttributeNames": names,
        }
        while True:
            page = self.table.call("scan", **options)
            for row in page.get("Items", []):
                key = row["item_id"]["S"]
                if key == CATALOG_STATS_ROW:
                    tally.stored_documents = float(row["documents"]["N"]) if "documents" in row else None
                elif key.startswith(count_row("")):
                    holders[key.removeprefix(count_row(""))] = (
                        float(row[POSTING_COUNT]["N"]) if POSTING_COUNT in row else None
                    )
                elif key.startswith(token_row("")):  # a posting not counted yet: None
                    holders.setdefault(key.removeprefix(token_row("")), None)
                elif not key.startswith("#"):
                    tally.add_record(json.loads(row["terms"]["S"]).keys() if "terms" in row else ())
            read += len(page.get("Items", []))
            if progress is not None:
                progress(read)
            if "LastEvaluatedKey" not in page:
                return tally
            options["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _set_count(self, correction: tuple[str | None, float | None, int]) -> bool:
        token, stored, counted = correction
        key = CATALOG_STATS_ROW if token is None else count_row(token)
        attribute = "documents" if token is None else POSTING_COUNT
        values: dict[str, Any] = {":counted": {"N": str(counted)}}
        if stored is None:
            condition = "attribute_not_exists(#a)"
        else:
            condition = "#a = :stored"
            values[":stored"] = _number(stored)
        return self.table.call_if_condition_holds(
            "update_item",
            TableName=self.table.name,
            Key=self._key(key),
            UpdateExpression="SET #a = :counted",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues=values,
        )

    def set_counts(self, corrections: Sequence[tuple[str | None, float | None, int]]) -> list[str]:
        done = concurrently(self._set_count, corrections, WRITE_CONCURRENCY)
        return [
            CATALOG_STATS_ROW if token is None else token
            for (token, _, _), ok in zip(corrections, done, strict=True)
            if not ok
        ]

    def postings(self, tokens: Iterable[str]) -> dict[str, Posting]:
        wanted = sorted(set(tokens))
        rows = {
            row["item_id"]["S"]: row
            for row in self.table.batch_get(_keys([*map(token_row, wanted), *map(count_row, wanted)]))
        }
        return {t: _posting(rows.get(token_row(t)), rows.get(count_row(t))) for t in wanted}

    def add_documents(self, deltas: Sequence[Delta], shard: str) -> None:
        if deltas:
            self.table.apply_guarded(self._key(CATALOG_STATS_ROW), deltas, shard)

    def documents(self) -> int:
        item = self.table.call(
            "get_item", TableName=self.table.name, Key=self._key(CATALOG_STATS_ROW), ConsistentRead=True
        ).get("Item", {})
        return int(float(item.get("documents", {}).get("N", 0)))
