"""The HTTP API's OpenAPI document, derived from the routes themselves.

Powertools builds the schema from the resolver's routes and their pydantic/``Annotated``
parameters (the same ones that validate requests), so the document cannot drift from the
code; ``docs/openapi.json`` is its committed copy, which a test keeps equal to this output
(``streamrec openapi --output docs/openapi.json`` rewrites it).
"""

from __future__ import annotations

import json
from typing import Any

from streamrec import __version__

TITLE = "streamrec"
DESCRIPTION = (
    "Real-time recommendations for e-commerce: personalized recommendations, similar items, "
    "cross-sell, coupons, trending items, demand and user profiles, served from DynamoDB rows "
    "that the stream functions keep current. Errors are JSON objects with `error` and `message`."
)


class _RoutesOnly:
    """Stands in for the services: building the schema needs the routes, not the services."""

    users = None
    settings = None
    similarity = None


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route (as a JSON-ready dict)."""
    from streamrec.http_api import build_app

    placeholder: Any = _RoutesOnly()
    app = build_app(placeholder, cross_sell=placeholder, coupons=placeholder, trends=placeholder)
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(title=TITLE, version=__version__, description=DESCRIPTION)
    )
    return without_unused_validation_error(document)


def without_unused_validation_error(document: dict[str, Any]) -> dict[str, Any]:
    """The document without the ``422 HTTPValidationError`` answer Powertools gives every
    operation when validation is enabled, and without the schemas nothing refers to any more.

    Powertools adds that answer whatever the route's ``responses=`` say (it has no switch
    for it: aws-powertools/powertools-lambda-python#3600, #3995), but this API never answers
    422: its RequestValidationError handler answers 400 with the ``ErrorResponse`` body, which
    every operation documents.
    """
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    used: set[str] = set()
    pending = [document.get("paths", {})]
    while pending:  # the schemas the operations refer to, directly or through other schemas
        for name in _references(pending.pop()):
            if name in schemas and name not in used:
                used.add(name)
                pending.append(schemas[name])
    for name in set(schemas) - used:
        del schemas[name]
    return document


def _references(node: Any) -> set[str]:
    """The component schema names ``node`` refers to (``$ref``), at any depth."""
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _references(value)
        return found
    if isinstance(node, list):
        return set().union(*(_references(value) for value in node))
    return set()


def openapi_text() -> str:
    """The document as committed: sorted keys, two-space indent, final newline."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
