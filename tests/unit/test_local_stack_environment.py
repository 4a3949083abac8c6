"""The local stack's process environment: what its clients see while it runs, and what is
left once it has stopped."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from streamrec.local.stack import LocalStack, LocalStackError

pytestmark = pytest.mark.integration  # each test starts a local stack of its own

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def test_the_callers_endpoints_are_not_used_and_the_environment_is_whole_again(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "the-callers-key")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    # Each of these would take this process's clients away from moto: to a port nothing
    # answers on (a service's endpoint too, as a profile's endpoint_url would), to a FIPS
    # address moto does not know, to AWS's dual-stack address.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_USE_FIPS_ENDPOINT", "true")
    monkeypatch.setenv("AWS_USE_DUALSTACK_ENDPOINT", "true")
    monkeypatch.delenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", raising=False)
    before = dict(os.environ)
    with LocalStack(TEMPLATE, stack_name="streamrec-env", http_port=None) as stack:
        for client in (boto3.client("dynamodb"), stack.client("dynamodb")):
            names = client.list_tables()["TableNames"]
            assert {table.name for table in stack.template.tables.values()} <= set(names)
    assert dict(os.environ) == before


def test_a_stack_is_refused_inside_a_callers_mock_aws():
    with mock_aws():
        boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="the-callers")
        with pytest.raises(LocalStackError, match="mock_aws is active in this process"):
            LocalStack(TEMPLATE, stack_name="streamrec-env", http_port=None).start()
        # The caller's account was left as it was.
        urls = boto3.client("sqs", region_name="us-east-1").list_queues()["QueueUrls"]
        assert [url.rsplit("/", 1)[-1] for url in urls] == ["the-callers"]
