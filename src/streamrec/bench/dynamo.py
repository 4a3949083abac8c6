"""DynamoDB item sizes and capacity units, and a metered in-memory DynamoDB client.

Item sizes are :mod:`streamrec.repositories.item_size`'s (the adapters use them too).

On-demand units: a write costs 1 WRU per started KB of the larger of the item's before and
after images (2 per KB when transactional); a read 1 RRU per started 4 KB when strongly
consistent, half of it when eventually consistent; BatchGetItem rounds each item up
separately. A read of a missing item still costs the minimum.

:class:`MeteredDynamoClient` answers exactly the low-level calls our adapters make
(GetItem, BatchGetItem, PutItem, UpdateItem with the generated ``SET``/``ADD`` expressions
and ``attribute_not_exists``/``<``/``=`` conditions, BatchWriteItem, DeleteItem), stores
the same attributes DynamoDB would, and meters every call. moto runs ~500 UpdateItem/s,
too slow for a 20,000-event replay; ``bench`` cross-checks this client against moto on a
slice (same write calls, same stored item sizes).
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


def _condition_failed(operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}},
        operation,
    )


def _transaction_cancelled() -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
            "CancellationReasons": [{"Code": "ConditionalCheckFailed"}],
        },
        "TransactWriteItems",
    )


_TERM = re.compile(
    r"^\s*(?:attribute_not_exists\((?P<missing>[^)]+)\)|(?P<left>\S+)\s*(?P<op><|=)\s*(?P<right>\S+))\s*$"
)


def _compare(left: dict[str, Any] | None, op: str, right: dict[str, Any]) -> bool:
    if left is None:
        return False
    ((kind, a),) = left.items()
    ((_, b),) = right.items()
    x, y = (Decimal(a), Decimal(b)) if kind == "N" else (a, b)
    return bool(x < y) if op == "<" else bool(x == y)


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
        if not condition:
            return True
        for term in condition.split(" OR "):
            match = _TERM.match(term)
            if match is None:
                raise NotImplementedError(f"condition {condition!r}")
            if match["missing"]:
                name = names.get(match["missing"], match["missing"])
                if stored is None or name not in stored:
                    return True
            else:
                left = match["left"] or ""
                attribute = str(names.get(left, left))
                if _compare((stored or {}).get(attribute), match["op"], values[match["right"]]):
                    return True
        return False

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
            meter.read_units += read_units(self.sizes[TableName].get(key, 0), ConsistentRead)
            meter.reads += 1
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
                    meter.read_units += read_units(self.sizes[table].get(key, 0), consistent)
                    meter.reads += 1
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
        **_: Any,
    ) -> dict:
        names = ExpressionAttributeNames or {}
        values = ExpressionAttributeValues or {}
        with self._lock:
            key = self._key(TableName, Key)
            stored = self.tables[TableName].get(key)
            if not self._check(ConditionExpression, stored, names, values):
                self._write(TableName, key, None, "UpdateItem")
                raise _condition_failed("UpdateItem")
            updated = dict(stored) if stored is not None else dict(Key)
            for clause in re.split(r"\s(?=SET |ADD |REMOVE )", " " + UpdateExpression.strip()):
                clause = clause.strip()
                if not clause:
                    continue
                action, _space, body = clause.partition(" ")
                for part in body.split(","):
                    if action == "REMOVE":
                        updated.pop(names.get(part.strip(), part.strip()), None)
                    elif action == "SET":
                        left, _equals, right = part.partition("=")
                        updated[names.get(left.strip(), left.strip())] = values[right.strip()]
                    elif action == "ADD":
                        left, right = part.split()
                        name = names.get(left, left)
                        increment = Decimal(values[right]["N"])
                        current = Decimal(updated[name]["N"]) if name in updated else Decimal(0)
                        updated[name] = {"N": _decimal_text(current + increment)}
                    else:
                        raise NotImplementedError(f"update action {action}")
            self.tables[TableName][key] = updated
            units = self._write(TableName, key, updated, "UpdateItem")
        # As DynamoDB reports it when asked (the count rows' budget reads it).
        if ReturnConsumedCapacity == "TOTAL":
            return {"ConsumedCapacity": {"TableName": TableName, "CapacityUnits": float(units)}}
        return {}

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
