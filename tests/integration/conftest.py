"""Integration fixtures: one local stack (moto server, pollers, HTTP API) for this package.

The stack is package-scoped rather than session-scoped on purpose: it sets process-wide
environment variables (credentials, table names...) and moto's backends are global,
so it must be closed, and the environment restored, before the unit tests run in the same
pytest process. Only one LocalStack can run per process; tests that need another poller or
HTTP server attach it to this stack's moto endpoint instead of starting a second stack.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streamrec.local.stack import LocalStack

from .support import TEMPLATE, ApiClient


@pytest.fixture(scope="package")
def local_stack() -> Iterator[LocalStack]:
    """The template's stack on moto (free port) with the HTTP API (free port)."""
    with LocalStack(
        TEMPLATE,
        stack_name="streamrec-it",
        http_port=0,
        # No warm-container cache: these tests read right after writing (the cache's TTL is
        # checked by tests/unit/test_cache.py).
        env_overrides={"POWERTOOLS_LOG_LEVEL": "WARNING", "API_CACHE_TTL_SECONDS": "0"},
        retry_backoff=0.01,
    ) as stack:
        yield stack


@pytest.fixture(scope="package")
def api(local_stack: LocalStack) -> ApiClient:
    """A client for the stack's HTTP API."""
    assert local_stack.api_url is not None
    return ApiClient(local_stack.api_url)
