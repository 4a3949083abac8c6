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
from typing import Any

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


def register_fast_reads(client: Any) -> Any:
    """Install :func:`take_attribute_fields` on a boto3 DynamoDB client; returns the client."""
    client.meta.events.register("before-parse.dynamodb.GetItem", take_attribute_fields)
    client.meta.events.register("before-parse.dynamodb.BatchGetItem", take_attribute_fields)
    return client
