"""The local stack's process environment: what its clients see while it runs, and what is
left once it has stopped."""

from __future__ import annotations

import os
from pathlib import Path

import boto3

from streamrec.local.stack import LocalStack

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def test_the_environment_is_the_callers_again_once_the_stack_stops(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "the-callers-key")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", raising=False)
    before = dict(os.environ)
    with LocalStack(TEMPLATE, stack_name="streamrec-env", http_port=None) as stack:
        # This process's clients find moto without an endpoint (the caller's would be
        # used otherwise: nothing answers on port 9).
        assert "AWS_ENDPOINT_URL" not in os.environ
        names = boto3.client("dynamodb").list_tables()["TableNames"]
        assert {table.name for table in stack.template.tables.values()} <= set(names)
    assert dict(os.environ) == before
