"""Faster parsing of DynamoDB's read responses, for the botocore client every adapter uses.

botocore turns a response into Python by walking it against the service model: each
attribute value (``{"N": "1.5"}``) is a tagged union whose ten members are each looked up,
some 3 µs per value. A count row holds hundreds of values and the similarity function reads
about a hundred such rows per event, so that walk was most of its botocore CPU (a
BatchGetItem of 100 rows of 60 counts: 26 ms of CPU, 6 ms with this).

For DynamoDB's JSON protocol the walk changes nothing in an attribute value except binary
ones (``B``, ``BS``: base64 text decoded to bytes): ``S`` and ``N`` stay strings, ``SS`` and
``NS`` lists of strings, ``M`` and ``L`` nest, ``NULL`` and ``BOOL`` are booleans. So a
``before-parse`` handler (botocore's hook for handlers that adjust a response before it is
parsed) takes the bulky fields of a successful GetItem or BatchGetItem response out of the
body as ``json.loads`` gives them, and botocore parses the rest and merges them back: the
result is the same dictionary. A body in which ``"B"`` or ``"BS"`` appears (a binary
value's key, or by chance the end of a string such as ``say "B``: a needless fallback) is
left to botocore whole, and so are errors.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from streamrec.observability import logger

# The fields of each read's response that hold attribute values, by operation.
_ATTRIBUTE_FIELDS = {
    "GetItem": ("Item",),
    "BatchGetItem": ("Responses", "UnprocessedKeys"),
}
# A binary value's key always appears so (DynamoDB does not escape it); other matches only
# cost a fallback to botocore's parse.
_BINARY_KEYS = (b'"B"', b'"BS"')


def take_attribute_fields(
    operation_model: Any, response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """botocore's ``before-parse.dynamodb.*`` event: move the attribute-value fields of a
    read's successful response from its body into ``customized_response_dict``."""
    fields = _ATTRIBUTE_FIELDS.get(operation_model.name)
    if fields is None or response_dict.get("status_code", 500) >= 300:
        return
    body = response_dict.get("body")
    if not isinstance(body, bytes) or any(key in body for key in _BINARY_KEYS):
        return
    try:
        parsed = json.loads(body)
    except ValueError:  # not JSON: botocore's own parse reports it
        return
    if not isinstance(parsed, dict):
        return
    for name in fields:
        if name in parsed:
            customized_response_dict[name] = parsed.pop(name)
    response_dict["body"] = json.dumps(parsed).encode()


_EVENTS = ("before-parse.dynamodb.GetItem", "before-parse.dynamodb.BatchGetItem")
# The probe's table: a name no deployment uses; its request is answered in process.
PROBE_TABLE = "streamrec-fast-reads-probe"
PROBE_ITEM = {"id": {"S": "probe"}, "n": {"N": "1.5"}, "m": {"M": {"l": {"L": [{"BOOL": True}]}}}}


def register_fast_reads(client: Any) -> Any:
    """Install :func:`take_attribute_fields` on a boto3 DynamoDB client, once a canned read
    has shown that this botocore merges the fields back (:func:`reads_come_back_whole`);
    else leave the client as it is, with a warning. Returns the client."""
    for event in _EVENTS:
        client.meta.events.register(event, take_attribute_fields)
    if reads_come_back_whole(client) is False:
        for event in _EVENTS:
            client.meta.events.unregister(event, take_attribute_fields)
        logger.warning(
            "this botocore does not merge before-parse fields back: DynamoDB reads parsed by botocore"
        )
    return client


class _Body:
    """A canned HTTP body, as botocore's AWSResponse reads it."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


def reads_come_back_whole(client: Any) -> bool | None:
    """Whether a GetItem through ``client`` (its handlers installed) returns the item whole:
    one call answered in process by botocore's ``before-send`` hook, so nothing is sent.
    The functions run on the botocore of the Lambda runtime, which AWS updates, and the
    handler relies on botocore merging ``customized_response_dict`` into the parsed
    response: a botocore that stopped doing so would return reads without their items,
    silently. None when the check cannot run (no credentials to sign the request with)."""
    from botocore.awsrequest import AWSResponse
    from botocore.compat import HTTPHeaders
    from botocore.exceptions import NoCredentialsError, NoRegionError

    body = json.dumps({"Item": PROBE_ITEM}).encode()

    def answer(request: Any, **_: Any) -> Any:
        if PROBE_TABLE.encode() not in (request.body or b""):
            return None  # a real request: sent as usual
        headers = HTTPHeaders.from_dict(
            {"x-amz-crc32": str(zlib.crc32(body)), "content-type": "application/x-amz-json-1.0"}
        )
        return AWSResponse(request.url, 200, headers, _Body(body))

    client.meta.events.register_first("before-send.dynamodb.GetItem", answer)
    try:
        read = client.get_item(TableName=PROBE_TABLE, Key={"id": {"S": "probe"}})
    except (NoCredentialsError, NoRegionError):
        return None
    except Exception:  # noqa: BLE001 - any failure of the handler means: do without it
        logger.exception("the fast DynamoDB read check failed")
        return False
    finally:
        client.meta.events.unregister("before-send.dynamodb.GetItem", answer)
    return bool(read.get("Item") == PROBE_ITEM)
