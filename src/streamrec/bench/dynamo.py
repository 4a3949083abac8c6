"""DynamoDB item sizes and capacity units, and a metered in-memory DynamoDB client.

Item sizes are :mod:`streamrec.repositories.item_size`'s (the adapters use them too).

On-demand units: a write costs 1 WRU per started KB of the larger of the item's before and
after images (2 per KB when transactional); a read 1 RRU per started 4 KB when strongly
consistent, half of it when eventually consistent; BatchGetItem rounds each item up
separately. A read of a missing item still costs the minimum.

:class:`MeteredDynamoClient` answers exactly the low-level calls our adapters make
(GetItem, BatchGetItem, PutItem, UpdateItem with the generated ``SET`` (plain or
``if_not_exists``)/``ADD``/``DELETE``/``REMOVE`` expressions, numbers and string sets, and the
conditions :class:`_Condition`
reads, BatchWriteItem, DeleteItem, TransactWriteItems of puts), stores the same attributes
DynamoDB would, and meters every call, per table and per kind of row (:func:`row_kind`).
moto runs ~500 UpdateItem/s, too slow for a 20,000-event replay; ``bench`` cross-checks
this client against moto on a slice (same write calls, same stored item sizes).
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from streamrec.repositories.item_size import item_size

KB = 1024
READ_UNIT_BYTES = 4 * KB


def write_units(before: int, after: int, transactional: bool = False) -> int:
    """WRU of one write given the item's before/after sizes in bytes."""
    units = max(1, math.ceil(max(before, after) / KB))
    return 2 * units if transactional else units


def read_units(size: int, consistent: bool = False) -> float:
    """RRU of reading one item of ``size`` bytes (a missing item costs the minimum)."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2.0


@dataclass
class TableMeter:
    """What one table was charged."""

    write_units: int = 0
    read_units: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    writes: int = 0  # items written (an item of a BatchWriteItem counts once)
    reads: int = 0  # items (or missing keys) read
    missing_reads: int = 0  # keys read that hold no item (they still cost the minimum)
    # The same units by kind of row (row_kind), e.g. a catalog's records and its postings.
    write_units_by_kind: Counter[str] = field(default_factory=Counter)
    read_units_by_kind: dict[str, float] = field(default_factory=dict)

    def read(self, kind: str, units: float) -> None:
        self.read_units += units
        self.read_units_by_kind[kind] = self.read_units_by_kind.get(kind, 0.0) + units
        self.reads += 1


def row_kind(key: tuple[Any, ...]) -> str:
    """A row's kind by its partition key: ``#name`` of the special rows (``#tok:<token>`` ->
    ``#tok``, ``#catalog``), else ``item`` (an item's own row, a user's, ...)."""
    first = str(key[0])
    return first.split(":", 1)[0] if first.startswith("#") else "item"


def _condition_failed(operation: str, old: dict[str, Any] | None = None) -> ClientError:
    """DynamoDB's error; ``old``: the item, as ReturnValuesOnConditionCheckFailure=ALL_OLD returns it."""
    response: dict[str, Any] = {
        "Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}
    }
    if old is not None:
        response["Item"] = dict(old)
    return ClientError(response, operation)  # type: ignore[arg-type]


def _transaction_cancelled() -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
            "CancellationReasons": [{"Code": "ConditionalCheckFailed"}],
        },
        "TransactWriteItems",
    )


# A condition's tokens: parentheses, comparison operators, a function's name and its
# opening parenthesis, or a name / :value placeholder (or plain attribute name).
_TOKEN = re.compile(r"\s*(<>|<=|>=|[()<>=,]|(?:attribute_not_exists|attribute_exists|size)\(|[#:]?[\w.-]+)")
_OPERATORS = {
    "=": lambda x, y: x == y,
    "<>": lambda x, y: x != y,
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
}


def _tokens(condition: str) -> list[str]:
    tokens, position = [], 0
    condition = condition.rstrip()
    while position < len(condition):
        match = _TOKEN.match(condition, position)
        if match is None:
            raise NotImplementedError(f"condition {condition!r} at {position}")
        tokens.append(match[1])
        position = match.end()
    return tokens


def _size_of(value: dict[str, Any]) -> int:
    """DynamoDB's size(): a set's or list's elements, a map's entries, a string's length."""
    ((kind, content),) = value.items()
    if kind not in ("SS", "NS", "BS", "L", "M", "S", "B"):
        raise NotImplementedError(f"size() of a {kind} attribute (DynamoDB refuses it)")
    return len(content)


class _Condition:
    """Evaluates the ConditionExpression grammar the adapters use: comparisons (``=``,
    ``<>``, ``<``, ``<=``, ``>``, ``>=``) of attributes, ``size(attr)`` and :values,
    ``attribute_exists`` / ``attribute_not_exists``, AND, OR, NOT and parentheses (NOT
    binds tightest, then AND, then OR, as in DynamoDB). A comparison with a missing
    attribute, or of values of two types, is false, except ``<>``, which is then true."""

    def __init__(self, condition: str, stored: dict[str, Any] | None, names: dict, values: dict) -> None:
        self.tokens = _tokens(condition)
        self.position = 0
        self.stored = stored or {}
        self.names = names
        self.values = values

    def holds(self) -> bool:
        result = self._or()
        if self.position != len(self.tokens):
            raise NotImplementedError(f"condition tokens {self.tokens[self.position :]}")
        return result

    def _next(self) -> str:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _or(self) -> bool:
        result = self._and()
        while self._peek() == "OR":
            self._next()
            result = self._and() or result  # both sides parsed
        return result

    def _and(self) -> bool:
        result = self._not()
        while self._peek() == "AND":
            self._next()
            result = self._not() and result
        return result

    def _not(self) -> bool:
        if self._peek() == "NOT":
            self._next()
            return not self._not()
        if self._peek() == "(":
            self._next()
            result = self._or()
            if self._next() != ")":
                raise NotImplementedError("unbalanced parenthesis in a condition")
            return result
        token = self._peek() or ""
        if token in ("attribute_exists(", "attribute_not_exists("):
            self._next()
            present = self._attribute(self._next()) is not None
            if self._next() != ")":
                raise NotImplementedError(f"{token} takes one attribute")
            return present if token == "attribute_exists(" else not present
        left = self._operand()
        operator = self._next()
        if operator not in _OPERATORS:
            raise NotImplementedError(f"comparison operator {operator!r}")
        right = self._operand()
        if left is None or right is None or type(left) is not type(right):
            return operator == "<>"
        if isinstance(left, frozenset) and operator not in ("=", "<>"):
            return False  # sets are only compared for equality
        return bool(_OPERATORS[operator](left, right))

    def _attribute(self, token: str) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self.stored.get(str(self.names.get(token, token)))
        return value

    def _operand(self) -> Any:
        token = self._next()
        if token == "size(":
            value = self._attribute(self._next())
            if self._next() != ")":
                raise NotImplementedError("size() takes one attribute")
            return None if value is None else Decimal(_size_of(value))
        value = self.values[token] if token.startswith(":") else self._attribute(token)
        if value is None:
            return None
        ((kind, content),) = value.items()
        if kind in ("SS", "NS", "BS"):
            return frozenset(content)  # a set: equal whatever the order
        return Decimal(content) if kind == "N" else content


class MeteredDynamoClient:
    """A thread-safe, dict-backed stand-in for ``boto3.client("dynamodb")`` that meters units.

    Args:
        key_schema: table name -> its key attribute names (hash[, range]).
    """

    def __init__(self, key_schema: dict[str, tuple[str, ...]]) -> None:
        self.key_schema = key_schema
        self.tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {name: {} for name in key_schema}
        # Each stored item's size, kept at write time so that reads are metered cheaply.
        self.sizes: dict[str, dict[tuple[Any, ...], int]] = {name: {} for name in key_schema}
        self._lock = threading.Lock()
        # Meters per phase (e.g. "ingest", "similarity" of one replay); ``meters`` is the current one's.
        self.phases: dict[str, dict[str, TableMeter]] = {}
        self.meters: dict[str, TableMeter] = self.set_phase("main")

    # -- helpers ----------------------------------------------------------------------
    def _key(self, table: str, item: dict[str, Any]) -> tuple[Any, ...]:
        return tuple([_scalar(item[name]) for name in self.key_schema[table]])

    def set_phase(self, phase: str) -> dict[str, TableMeter]:
        """Meter the following calls under ``phase`` (created on first use)."""
        with self._lock:
            self.meters = self.phases.setdefault(phase, {name: TableMeter() for name in self.key_schema})
        return self.meters

    def reset_meters(self) -> None:
        """Zero the current phase's meters."""
        with self._lock:
            for name in self.key_schema:
                self.meters[name] = TableMeter()

    def items(self, table: str) -> list[dict[str, Any]]:
        return list(self.tables[table].values())

    def _check(self, condition: str | None, stored: dict[str, Any] | None, names: dict, values: dict) -> bool:
        return not condition or _Condition(condition, stored, names, values).holds()

    def _write(
        self,
        table: str,
        key: tuple[Any, ...],
        after: dict[str, Any] | None,
        operation: str,
        transactional: bool = False,
    ) -> int:
        """Meter a write of ``after`` (None: the item is deleted or left as it was); returns
        its write units."""
        sizes = self.sizes[table]
        before = sizes.get(key, 0)
        size = item_size(after) if after is not None else before
        meter = self.meters[table]
        units = write_units(before, size, transactional)
        meter.write_units += units
        meter.write_units_by_kind[row_kind(key)] += units
        meter.writes += 1
        meter.calls[operation] += 1
        if after is not None:
            sizes[key] = size
        return units

    # -- reads ------------------------------------------------------------------------
    def get_item(self, TableName: str, Key: dict[str, Any], ConsistentRead: bool = False, **_: Any) -> dict:
        with self._lock:
            key = self._key(TableName, Key)
            stored = self.tables[TableName].get(key)
            meter = self.meters[TableName]
            meter.read(row_kind(key), read_units(self.sizes[TableName].get(key, 0), ConsistentRead))
            meter.calls["GetItem"] += 1
            # A projection only cuts the response, not the units: return the whole item.
            return {"Item": dict(stored)} if stored is not None else {}

    def batch_get_item(self, RequestItems: dict[str, Any], **_: Any) -> dict:
        responses: dict[str, list[dict[str, Any]]] = {}
        with self._lock:
            for table, request in RequestItems.items():
                meter = self.meters[table]
                meter.calls["BatchGetItem"] += 1
                consistent = bool(request.get("ConsistentRead"))
                found = responses.setdefault(table, [])
                for requested in request["Keys"]:
                    key = self._key(table, requested)
                    stored = self.tables[table].get(key)
                    meter.read(row_kind(key), read_units(self.sizes[table].get(key, 0), consistent))
                    if stored is None:
                        meter.missing_reads += 1
                    else:
                        found.append(stored)  # the adapters only read responses
        return {"Responses": responses, "UnprocessedKeys": {}}

    # -- writes -----------------------------------------------------------------------
    def put_item(
        self,
        TableName: str,
        Item: dict[str, Any],
        ConditionExpression: str | None = None,
        ExpressionAttributeNames: dict | None = None,
        ExpressionAttributeValues: dict | None = None,
        **_: Any,
    ) -> dict:
        with self._lock:
            key = self._key(TableName, Item)
            stored = self.tables[TableName].get(key)
            if not self._check(
                ConditionExpression, stored, ExpressionAttributeNames or {}, ExpressionAttributeValues or {}
            ):
                self._write(TableName, key, None, "PutItem")  # a failed condition still costs
                raise _condition_failed("PutItem")
            self.tables[TableName][key] = dict(Item)
            self._write(TableName, key, Item, "PutItem")
        return {}

    def update_item(
        self,
        TableName: str,
        Key: dict[str, Any],
        UpdateExpression: str,
        ConditionExpression: str | None = None,
        ExpressionAttributeNames: dict | None = None,
        ExpressionAttributeValues: dict | None = None,
        ReturnConsumedCapacity: str = "NONE",
        ReturnValues: str = "NONE",
        ReturnValuesOnConditionCheckFailure: str = "NONE",
        **_: Any,
    ) -> dict:
        names = ExpressionAttributeNames or {}
        values = ExpressionAttributeValues or {}
        with self._lock:
            key = self._key(TableName, Key)
            stored = self.tables[TableName].get(key)
            if not self._check(ConditionExpression, stored, names, values):
                self._write(TableName, key, None, "UpdateItem")
                old = stored if ReturnValuesOnConditionCheckFailure == "ALL_OLD" else None
                raise _condition_failed("UpdateItem", old)
            updated = dict(stored) if stored is not None else dict(Key)
            for clause in re.split(r"\s(?=SET |ADD |REMOVE |DELETE )", " " + UpdateExpression.strip()):
                clause = clause.strip()
                if not clause:
                    continue
                action, _space, body = clause.partition(" ")
                # (Not the comma inside if_not_exists(#a, :v).)
                for part in re.split(r",(?![^(]*\))", body):
                    if action == "REMOVE":
                        updated.pop(names.get(part.strip(), part.strip()), None)
                    elif action == "SET":
                        left, _equals, right = part.partition("=")
                        name, right = names.get(left.strip(), left.strip()), right.strip()
                        if right.startswith("if_not_exists("):
                            path, _comma, value = right[len("if_not_exists(") : -1].partition(",")
                            if names.get(path.strip(), path.strip()) in updated:
                                continue  # the stored value stays
                            right = value.strip()
                        updated[name] = values[right]
                    elif action == "ADD" and "SS" in values[part.split()[1]]:  # a set's union
                        left, right = part.split()
                        name = names.get(left, left)
                        members = set(updated.get(name, {}).get("SS", ())) | set(values[right]["SS"])
                        updated[name] = {"SS": sorted(members)}
                    elif action == "ADD":
                        left, right = part.split()
                        name = names.get(left, left)
                        increment = Decimal(values[right]["N"])
                        current = Decimal(updated[name]["N"]) if name in updated else Decimal(0)
                        updated[name] = {"N": _decimal_text(current + increment)}
                    elif action == "DELETE":  # a set's difference; an empty set is removed
                        left, right = part.split()
                        name = names.get(left, left)
                        members = set(updated.get(name, {}).get("SS", ())) - set(values[right]["SS"])
                        if members:
                            updated[name] = {"SS": sorted(members)}
                        else:
                            updated.pop(name, None)
                    else:
                        raise NotImplementedError(f"update action {action}")
            self.tables[TableName][key] = updated
            units = self._write(TableName, key, updated, "UpdateItem")
        # As DynamoDB reports it when asked (the count rows' budget reads it).
        response: dict[str, Any] = {}
        if ReturnConsumedCapacity == "TOTAL":
            response["ConsumedCapacity"] = {"TableName": TableName, "CapacityUnits": float(units)}
        if ReturnValues == "ALL_NEW":
            response["Attributes"] = dict(updated)
        return response

    def transact_write_items(self, TransactItems: list[dict[str, Any]], **_: Any) -> dict:
        """Puts only (what the adapters send): every condition is checked before anything
        is written, each metered as a transactional write."""
        with self._lock:
            puts = []
            for action in TransactItems:
                if set(action) != {"Put"}:
                    raise NotImplementedError(f"transaction action {sorted(action)}")
                put = action["Put"]
                table, item = put["TableName"], put["Item"]
                key = self._key(table, item)
                condition = put.get("ConditionExpression")
                names = put.get("ExpressionAttributeNames", {})
                if not self._check(
                    condition, self.tables[table].get(key), names, put.get("ExpressionAttributeValues", {})
                ):
                    raise _transaction_cancelled()
                puts.append((table, key, item))
            for table, key, item in puts:
                self.tables[table][key] = dict(item)
                self._write(table, key, item, "TransactWriteItems.Put", transactional=True)
        return {}

    def batch_write_item(self, RequestItems: dict[str, Any], **_: Any) -> dict:
        with self._lock:
            for table, requests in RequestItems.items():
                self.meters[table].calls["BatchWriteItem"] += 1
                for request in requests:
                    if "PutRequest" in request:
                        item = request["PutRequest"]["Item"]
                        key = self._key(table, item)
                        self.tables[table][key] = dict(item)
                        self._write(table, key, item, "BatchWriteItem.Put")
                    else:
                        key = self._key(table, request["DeleteRequest"]["Key"])
                        self.tables[table].pop(key, None)
                        self._write(table, key, None, "BatchWriteItem.Delete")
                        self.sizes[table].pop(key, None)
        return {"UnprocessedItems": {}}

    def delete_item(self, TableName: str, Key: dict[str, Any], **_: Any) -> dict:
        with self._lock:
            key = self._key(TableName, Key)
            self.tables[TableName].pop(key, None)
            self._write(TableName, key, None, "DeleteItem")
            self.sizes[TableName].pop(key, None)
        return {}


def _scalar(value: dict[str, Any]) -> Any:
    """The content of a key attribute (``{"S": x}`` or ``{"N": x}``)."""
    return value["S"] if "S" in value else value["N"]


def _decimal_text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text not in ("-0",) else "0"
