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
    return document


def openapi_text() -> str:
    """The document as committed: sorted keys, two-space indent, final newline."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
