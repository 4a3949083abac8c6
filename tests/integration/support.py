"""Helpers shared by the integration tests: event factory and a small HTTP client."""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

_event_ids = itertools.count(1)


def make_event(
    user_id: str,
    item_id: str,
    event_type: str = "view",
    *,
    age_s: int = 600,
    **extra: Any,
) -> dict[str, Any]:
    """A user event with a unique event_id, ``age_s`` seconds old."""
    return {
        "event_id": f"it-{next(_event_ids):06d}",
        "event_type": event_type,
        "user_id": user_id,
        "item_id": item_id,
        "timestamp": int(time.time()) - age_s,
        **extra,
    }


@dataclass(frozen=True)
class ApiResponse:
    """Status, headers and decoded JSON body (None when the body is not JSON)."""

    status: int
    headers: dict[str, str]
    body: Any
    raw: bytes


class ApiClient:
    """A tiny urllib client for the local HTTP API (real sockets, real HTTP)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> ApiResponse:
        request = urllib.request.Request(
            self.base_url + path, data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local URL
                status, raw, got = response.status, response.read(), dict(response.headers.items())
        except urllib.error.HTTPError as error:
            status, raw, got = error.code, error.read(), dict(error.headers.items())
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = None
        return ApiResponse(status, {k.lower(): v for k, v in got.items()}, decoded, raw)

    def get(self, path: str) -> ApiResponse:
        return self.request("GET", path)
