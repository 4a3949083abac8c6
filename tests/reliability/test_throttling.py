"""DynamoDB and Kinesis throttling: retried with backoff by botocore (the template sets
AWS_RETRY_MODE=adaptive, AWS_MAX_ATTEMPTS=8), and when a call stays throttled beyond
that, the batch fails and Lambda retries it; either way every event is applied once.

Throttling is injected where AWS would answer it: as HTTP 400
``ProvisionedThroughputExceededException`` responses in front of moto, so that botocore's
own retry handler sees them (patching the client would bypass it).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.retries.bucket import TokenBucket
from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse

from streamrec.reliability.faults import ReplayConfig, replay
from streamrec.reliability.sandbox import diff_snapshots

from .conftest import taobao_events

pytestmark = pytest.mark.reliability

THROTTLE_ERRORS = {
    "DynamoDB_20120810": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "Kinesis_20131202": "ProvisionedThroughputExceededException",
}


class Throttler:
    """Answers chosen calls with a throttling error instead of passing them to moto.

    ``plan(operation, body, count)`` gets the n-th call (1-based) of an operation and
    returns True to throttle it.
    """

    def __init__(self, plan: Any) -> None:
        self.plan = plan
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    @contextmanager
    def installed(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Throttler]:
        original = BotocoreStubber.__call__
        throttler = self

        def call(stubber: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
            if stubber.enabled:
                response = throttler.answer(request)
                if response is not None:
                    return response
            return original(stubber, event_name, request, **kwargs)

        monkeypatch.setattr(BotocoreStubber, "__call__", call)
        # Record botocore's backoff instead of sleeping it, and let the adaptive mode's
        # client-side rate limiter grant tokens at once (the test stays fast).
        monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=self.sleeps.append))
        monkeypatch.setattr(TokenBucket, "acquire", lambda bucket, amount=1, block=True: True)
        yield self

    def answer(self, request: Any) -> AWSResponse | None:
        target = request.headers.get("X-Amz-Target")
        if not target:
            return None
        target = target.decode() if isinstance(target, bytes) else target
        prefix, _, operation = target.partition(".")
        if prefix not in THROTTLE_ERRORS:
            return None
        body = json.loads(request.body or b"{}")
        with self._lock:
            self.calls[operation] += 1
            throttle = self.plan(operation, body, self.calls[operation])
            if throttle:
                self.throttled[operation] += 1
        if not throttle:
            return None
        payload = json.dumps({"__type": THROTTLE_ERRORS[prefix], "message": "Rate exceeded (injected)"})
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "throttled"}
        return AWSResponse(request.url, 400, headers, MockRawResponse(payload))


def test_throttled_writes_are_retried_and_every_event_is_applied_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No coupons: their setup writes (outside the functions) would shift the call counts.
    events = taobao_events(100, coupons=False)
    config = ReplayConfig(batch_size=50, similarity_batch_size=50)
    clean = replay(events, config)

    burst: dict[str, Any] = {"key": None, "left": 8}

    def plan(operation: str, body: dict[str, Any], count: int) -> bool:
        if operation == "UpdateItem":
            key = json.dumps([body.get("TableName"), body.get("Key")], sort_keys=True)
            if count == 40:
                burst["key"] = key  # this row is throttled 8 times in a row: all of botocore's attempts
            if key == burst["key"] and burst["left"]:
                burst["left"] -= 1
                return True
            return count % 7 == 0  # otherwise every 7th attempt is throttled once
        if operation == "PutRecords":
            return "ChangedItems" in body.get("StreamName", "") and count % 2 == 1
        if operation == "PutItem":
            return count % 5 == 0
        return False

    throttler = Throttler(plan)
    with throttler.installed(monkeypatch):
        throttled = replay(events, config)

    differences = diff_snapshots(clean.snapshot, throttled.snapshot)
    assert not differences, [d.describe() for d in differences[:10]]
    assert throttled.dead_letters == 0 and throttled.shards_drained
    assert throttler.throttled["UpdateItem"] > 20
    assert throttler.throttled["PutRecords"] > 0 and throttler.throttled["PutItem"] > 0
    assert len(throttler.sleeps) >= sum(throttler.throttled.values()) - 8, "botocore backed off and retried"
    ingest = throttled.esm["IngestFunction.UserEvents"]
    assert ingest.function_errors >= 1, "the long burst failed the batch, which Lambda retried"
    print(
        f"throttling: {dict(throttler.throttled)} throttled responses, {len(throttler.sleeps)} botocore "
        f"retries, {ingest.function_errors} batch retries, 0 differences"
    )
