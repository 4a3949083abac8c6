"""Work-arounds for moto problems that the local pipelines hit.

moto's DynamoDB and Kinesis backends are not thread-safe, and the local pipelines call
them from many threads (the ingest writes rows 8 at a time; each shard has its own
poller). Two writes racing on an item key that is new to a table can lose one of the rows
(the table's per-key dict is created by both, one replacing the other: 4 rows of 32,000
lost under 16 threads here), a conditional write is not atomic with its check, and two
``PutRecords`` racing on a shard can draw the same sequence number. :func:`apply` makes
every call into those two backends hold one lock, so that each item write is atomic with
its condition, as in DynamoDB, and a shard's records are numbered in turn; none of their
calls waits, so the lock is held only while moto computes. (A read's response is built
from the stored item after the call returns; no torn read was seen in a test for one.)

moto 5.2 computes *every* SQS queue attribute, including the approximate message counts
(each a walk over the whole queue), whenever it needs one: for each message it sends
(``ContentBasedDeduplication``) and for each message it receives (the retention period).
Sending or receiving n messages thus costs O(n²): 0.6 s per ReceiveMessage of 10 at 1,000
messages, and the dead-letter queue of a poison-record replay holds thousands.
:func:`apply` makes ``Queue.attributes`` lazy (a counting attribute is computed only when
it is read) and checks the retention period directly. Answers are unchanged.

moto 5.2 writes each DynamoDB response through its generic serializer, which looks every
member of every ``AttributeValue`` up under several aliases: a row of 300 neighbours took
179 ms to encode (2.5 ms directly), far more than moto takes to find it, and a replay spent
half its time there. :func:`apply` encodes an ``AttributeValue`` (already a
wire-format dict in moto) directly, in the shape's member order, byte for byte as the
generic path does (``tests/unit/test_moto_fixes.py`` compares them); a value of any other
form still takes the generic path. It also parses each distinct ``UpdateExpression`` once
(moto parses it twice per call; the ingest's writes use some ten distinct expressions, their
names and values apart): the parsed tree is only read, or copied before it is changed.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

_COUNTS = frozenset(
    {
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
    }
)


class _WithoutCounts:
    """The queue as the attribute computation sees it, with the counts stubbed out."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def __getattr__(self, name: str) -> Any:
        if name.startswith("approximate_number_of_messages"):
            return 0
        return getattr(self._queue, name)


class _LazyAttributes(Mapping[str, Any]):
    """``Queue.attributes`` computed on demand: the counts only when asked for."""

    def __init__(self, queue: Any, compute: Any) -> None:
        self._queue = queue
        self._compute = compute
        self._cheap: dict[str, Any] | None = None
        self._full: dict[str, Any] | None = None

    def _all(self) -> dict[str, Any]:
        if self._full is None:
            self._full = self._compute(self._queue)
        return self._full

    def __getitem__(self, key: str) -> Any:
        if key in _COUNTS or self._full is not None:
            return self._all()[key]
        if self._cheap is None:
            self._cheap = self._compute(_WithoutCounts(self._queue))
        return self._cheap[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


__all__ = ["apply"]

# One lock for both backends, re-entrant: a backend's public methods call each other
# (put_item and update_item call get_table).
_BACKEND_LOCK = threading.RLock()


def _serialise(backend: type) -> None:
    """Make each public method of ``backend`` (a moto backend class) hold the lock."""
    if backend.__dict__.get("_streamrec_serialised", False):
        return
    for name, method in list(vars(backend).items()):
        if not name.startswith("_") and inspect.isfunction(method):  # not static or class methods
            setattr(backend, name, _locked(method))
    backend._streamrec_serialised = True  # type: ignore[attr-defined]


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _BACKEND_LOCK:
            return method(*args, **kwargs)

    return call


# AttributeValue's members in the order of its shape (botocore's dynamodb model), the
# order the generic serializer writes them in.
_STRING_MEMBERS = ("S", "N")
_ATTRIBUTE_MEMBERS = ("S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL")
_MEMBER_SET = frozenset(_ATTRIBUTE_MEMBERS)
_ATTRIBUTE_SERVICES = frozenset({"dynamodb", "dynamodbstreams"})


class _Unencodable(Exception):
    """A value the fast path does not know: the generic serializer takes it."""


def _attribute_value(value: Any, base64: Callable[[Any], str]) -> dict[str, Any]:
    """``value`` (an AttributeValue as moto holds it: ``{"S": "x"}``, ``{"M": {...}}``)
    as the generic JSON serializer writes it: members in shape order, ``None`` members
    left out, binaries in base64."""
    if type(value) is not dict or not value.keys() <= _MEMBER_SET:
        raise _Unencodable
    encoded: dict[str, Any] = {}
    for name in _ATTRIBUTE_MEMBERS:
        member = value.get(name)
        if member is None:
            continue
        if name in _STRING_MEMBERS:
            encoded[name] = _string(member)
        elif name == "B":
            encoded[name] = base64(member)
        elif name in ("SS", "NS"):
            encoded[name] = [_string(element) for element in _list(member)]
        elif name == "BS":
            encoded[name] = [base64(element) for element in _list(member)]
        elif name == "M":
            # An empty key makes the generic path write the value's members into the map
            # itself (a body boto3 cannot read); the fast path leaves that to it unchanged.
            if type(member) is not dict or "" in member:
                raise _Unencodable
            encoded[name] = {key: _attribute_value(inner, base64) for key, inner in member.items()}
        elif name == "L":
            encoded[name] = [_attribute_value(inner, base64) for inner in _list(member)]
        else:  # NULL, BOOL: booleans, written as they are
            encoded[name] = member
    return encoded


def _string(value: Any) -> str:
    if type(value) is not str:
        raise _Unencodable
    return value


def _list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise _Unencodable
    return value


def _encode_attribute_values_directly() -> None:
    """Patch moto's JSON serializer (idempotent): see the module docstring."""
    from moto.core.serialize import BaseJSONSerializer

    if getattr(BaseJSONSerializer, "_streamrec_fast_attribute_values", False):
        return
    generic = BaseJSONSerializer._serialize_type_structure

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == "AttributeValue" and self.service_model.service_name in _ATTRIBUTE_SERVICES:
            try:
                encoded = _attribute_value(value, self._base64)
            except _Unencodable:
                pass
            else:
                serialized[self.get_serialized_name(shape, key)] = encoded
                return
        generic(self, serialized, value, shape, key)

    BaseJSONSerializer._streamrec_generic_structure = generic  # type: ignore[attr-defined]  # for the test
    BaseJSONSerializer._serialize_type_structure = serialize_structure  # type: ignore[method-assign]
    BaseJSONSerializer._streamrec_fast_attribute_values = True  # type: ignore[attr-defined]


_PARSED_LIMIT = 4096  # distinct expressions kept; past it, parsed each time as before


def _parse_update_expressions_once() -> None:
    """Memoise moto's ``UpdateExpressionParser.make`` (idempotent): see the module docstring."""
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    if getattr(UpdateExpressionParser, "_streamrec_memoised", False):
        return
    parse = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]
    parsed: dict[str, Any] = {}

    def make(cls: type, expression: str) -> Any:
        tree = parsed.get(expression)
        if tree is None:
            tree = parse(cls, expression)  # a malformed one raises, and is not kept
            if len(parsed) < _PARSED_LIMIT:
                parsed[expression] = tree
        return tree

    UpdateExpressionParser.make = classmethod(make)  # type: ignore[method-assign,assignment]
    UpdateExpressionParser._streamrec_memoised = True  # type: ignore[attr-defined]


def apply() -> None:
    """Patch moto (idempotent): SQS and DynamoDB's responses only sped up, never changing
    an answer; DynamoDB and Kinesis serialised (see the module docstring)."""
    from moto.core.utils import unix_time
    from moto.dynamodb.models import DynamoDBBackend
    from moto.kinesis.models import KinesisBackend
    from moto.sqs.models import Queue, SQSBackend

    for backend in (DynamoDBBackend, KinesisBackend):
        _serialise(backend)
    _encode_attribute_values_directly()
    _parse_update_expressions_once()
    if getattr(SQSBackend, "_streamrec_fast_retention_check", False):
        return
    compute = Queue.attributes.fget  # type: ignore[attr-defined]
    Queue.attributes = property(lambda queue: _LazyAttributes(queue, compute))  # type: ignore[assignment]

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return retention + message.sent_timestamp / 1000 > unix_time()

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]
    SQSBackend._streamrec_fast_retention_check = True  # type: ignore[attr-defined]
