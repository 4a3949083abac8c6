"""Unit-test fixtures: an in-process moto account whose resources come from template.yaml."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import uuid
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from streamrec.local import moto_fixes
from streamrec.local.stack import create_stream
from streamrec.local.template import load_template
from streamrec.observability import logger

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


def load_event(name: str) -> dict:
    """A sample event from events/ (the same files `sam local invoke -e` takes)."""
    return json.loads((EVENTS / name).read_text())


class FakeLambdaContext:
    function_name = "streamrec-test"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:streamrec-test"
    memory_limit_in_mb = 512
    log_group_name = "/aws/lambda/streamrec-test"
    log_stream_name = "test"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


@pytest.fixture
def aws(monkeypatch):
    """moto in-process with every table, stream and queue of template.yaml created, and the
    functions' environment variables set. Yields the resolved template. moto is patched
    as the local stack patches it (:func:`streamrec.local.moto_fixes.apply`: the same
    answers, sooner)."""
    moto_fixes.apply()
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        template = load_template(ROOT / "template.yaml", endpoint_url="https://sqs.us-east-1.amazonaws.com")
        dynamodb = boto3.client("dynamodb")
        for table in template.tables.values():
            dynamodb.create_table(**table.create_kwargs)
        kinesis = boto3.client("kinesis")
        for stream in template.streams.values():
            create_stream(kinesis, stream)
        sqs = boto3.client("sqs")
        for queue in template.queues.values():
            sqs.create_queue(QueueName=queue.name)
        for name, value in template.merged_environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv(
            "DEAD_LETTER_QUEUE_URL",
            sqs.get_queue_url(QueueName=template.queues["DeadLetterQueue"].name)["QueueUrl"],
        )
        yield template


def import_handler(function_dir: str):
    """Import functions/<dir>/app.py afresh (settings are read at import, i.e. cold start)."""
    path = ROOT / "functions" / function_dir / "app.py"
    spec = importlib.util.spec_from_file_location(f"handler_{function_dir}_{uuid.uuid4().hex}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kinesis_event(
    payloads: list[dict],
    first_sequence: int = 1,
    template: str = "ingest_kinesis.json",
    arrival: float | None = None,
) -> dict:
    """A Kinesis event like ``template``'s, carrying ``payloads`` (JSON) in order: for events
    that must be stamped at run time (e.g. within the last hour), so the records arrived now
    (a timestamp more than a day past a record's arrival is refused), or at ``arrival``."""
    import base64
    import copy
    import time

    record = load_event(template)["Records"][0]
    records = []
    for offset, payload in enumerate(payloads):
        sequence = str(first_sequence + offset).rjust(52, "0")
        new = copy.deepcopy(record)
        new["kinesis"].update(
            sequenceNumber=sequence,
            partitionKey=str(payload.get("user_id") or payload.get("item_id")),
            data=base64.b64encode(json.dumps(payload).encode()).decode(),
            approximateArrivalTimestamp=time.time() if arrival is None else arrival,
        )
        new["eventID"] = new["eventID"].split(":", 1)[0] + ":" + sequence
        records.append(new)
    return {"Records": records}


class BatchGetRecorder:
    """A DynamoDB client that records the ``RequestItems`` of each BatchGetItem it passes on
    (``requests``): for tests of how an adapter reads (consistent, projected)."""

    def __init__(self, client) -> None:
        self.client = client
        self.requests: list[dict] = []

    def __getattr__(self, name):
        return getattr(self.client, name)

    def batch_get_item(self, **kwargs):
        self.requests.append(kwargs["RequestItems"])
        return self.client.batch_get_item(**kwargs)


@pytest.fixture(autouse=True)
def fresh_status_line(monkeypatch):
    """Each test its own progress line: its pace (one plain line every 5 s) would otherwise
    carry over from the previous test's command, as it never does between two CLI runs."""
    import streamrec.cli

    monkeypatch.setattr(streamrec.cli.progress, "status", streamrec.cli.progress.StatusLine())


@pytest.fixture
def log_lines():
    """The project logger's lines as Lambda's log shows them: each formatted when logged, in
    the thread that logs it (caplog formats later, without the context keys of then)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    target = logging.getLogger(logger.name)
    target.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    target.removeHandler(handler)
