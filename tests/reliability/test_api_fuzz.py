"""Schemathesis against the API's own OpenAPI schema, on the local HTTP API.

The schema is the one Powertools' resolver derives from the routes
(``streamrec.openapi.openapi_document()``, committed as docs/openapi.json); schemathesis
generates valid and invalid requests for every operation (ids of every charset and length, k
of every type and size, missing and extra parameters) and sends them through the local API
Gateway bridge to the real API handler, whose reads go to the local stack's moto. No
answer may be a 5xx, and every 4xx must carry a JSON message naming no internal detail.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from streamrec.local.stack import LocalStack
from streamrec.openapi import openapi_document

pytestmark = pytest.mark.reliability

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
EXAMPLES_PER_OPERATION = 100
TALLY: Counter[str] = Counter()
LEAKS = ("Traceback", 'File "', "botocore", "dynamodb", "Exception", "streamrec.")


SCHEMA = schemathesis.openapi.from_dict(openapi_document())
SCHEMA.config.generation.update(max_examples=EXAMPLES_PER_OPERATION)


@pytest.fixture(scope="module")
def api_url() -> Any:
    with LocalStack(
        TEMPLATE,
        stack_name="streamrec-fuzz",
        http_port=0,
        env_overrides={"POWERTOOLS_LOG_LEVEL": "CRITICAL"},
    ) as stack:
        events = [
            {
                "event_id": f"fz-{n}",
                "event_type": "view",
                "user_id": f"u{n % 5}",
                "item_id": f"i{n % 7}",
                "timestamp": 1_700_000_000 + n,
            }
            for n in range(40)
        ]
        stack.put_events(events)
        stack.drain(timeout=60)
        assert stack.api_url is not None
        yield stack.api_url


@SCHEMA.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_no_leaks(case: Any, api_url: str) -> None:
    response = case.call(base_url=api_url, timeout=30)
    TALLY["cases"] += 1
    TALLY[f"{response.status_code // 100}xx"] += 1
    assert response.status_code < 500, (case.method, case.formatted_path, case.query, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) in ({"error", "message"}, {"message"}), body
        assert not any(leak in response.text for leak in LEAKS), response.text


def test_zz_fuzzing_tally() -> None:
    """Runs after the fuzzing (file order): report what was tried."""
    if not TALLY["cases"]:
        pytest.skip("the fuzzing test did not run (deselected)")
    print(
        f"schemathesis: {TALLY['cases']} cases, "
        + ", ".join(f"{k} {v}" for k, v in sorted(TALLY.items()) if k != "cases")
    )
    assert TALLY["5xx"] == 0
