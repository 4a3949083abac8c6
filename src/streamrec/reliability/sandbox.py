"""An in-process AWS account (moto's ``mock_aws``) built from ``template.yaml``.

:func:`sandbox` creates every table, stream and queue of the template, sets the functions'
environment, imports the real handlers (``functions/*/app.py``, a cold start) and yields a
:class:`Sandbox`. It has no server, no pollers and no threads of its own, so
single-threaded callers (the fault harness) get deterministic runs.

moto's backends and ``os.environ`` are process-global: one sandbox at a time, and never
while a :class:`~streamrec.local.stack.LocalStack` runs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from streamrec.local import stack as local_stack
from streamrec.local.stack import LambdaContext, find_template, import_handler
from streamrec.local.template import REGION, FunctionDef, LocalTemplate, load_template

__all__ = ["Sandbox", "SandboxError", "Snapshot", "diff_snapshots", "normalized", "sandbox", "scan_tables"]

# Attributes that legitimately differ between two runs applying the same events: replay
# guards (sequence numbers differ once duplicates are added), row versions (one per
# write), and wall-clock stamps.
VOLATILE_ATTRIBUTES = {
    "UsersTable": {"applied", "version"},
    # Content neighbours and an item's TF-IDF norm are derived from the catalog as it was
    # when they were computed (document frequencies, number of items), so they depend on
    # where batches were cut, which crashes and bisections change on purpose: they are
    # scores, not counts. So are the rows recorded as holding an item (they follow those
    # lists) and the digest an entry taken from a record not yet announced resets. The
    # records, postings and document count are compared exactly.
    "SimilarityTable": {
        "updated_at",
        "version",
        "content",
        "content_categories",
        "content_holders",
        "content_digest",
    },
    # A record's "shard" and "sequence" name the stream record that wrote it, a replay guard;
    # "norm_documents" is the catalog's size when its norm was computed, like the norm.
    "CatalogTable": {"norm", "norm_documents", "shard", "sequence"},
}
GUARD_PREFIX = "s#"

_lock = threading.Lock()
_ENV_UNSET = (
    "AWS_ENDPOINT_URL",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)

# table logical id -> key (tuple of key values) -> attributes (DynamoDB JSON)
Snapshot = dict[str, dict[tuple[str, ...], dict[str, Any]]]
Handler = Callable[[dict[str, Any], Any], Any]


class SandboxError(RuntimeError):
    """The sandbox cannot start (another sandbox or a local stack is running)."""


@dataclass
class Sandbox:
    """The template's resources on in-process moto, and its functions' handlers."""

    template: LocalTemplate
    handlers: dict[str, Handler]
    queue_urls: dict[str, str] = field(default_factory=dict)
    # Per function, its own environment over the union of all (the others' names unset).
    environments: dict[str, dict[str, str | None]] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        """A boto3 client (cached per service) for the mocked account."""
        if service not in self._clients:
            # Service names come as plain strings: boto3's stubs type only literal ones.
            self._clients[service] = boto3.client(service, region_name=self.template.region)  # type: ignore[call-overload]
        return self._clients[service]

    def function(self, logical_id: str) -> FunctionDef:
        return self.template.functions[logical_id]

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        """Call the function's handler with ``event`` and a fresh Lambda context, under the
        function's own environment."""
        with temporary_environment(self.environments.get(logical_id, {})):
            return self.handlers[logical_id](event, LambdaContext(self.function(logical_id)))

    @property
    def dead_letter_queue_url(self) -> str:
        return self.queue_urls["DeadLetterQueue"]

    def snapshot(self) -> Snapshot:
        """Every item of every table, keyed by logical table id and key values."""
        return scan_tables(self.client("dynamodb"), self.template)


def scan_tables(dynamodb: Any, template: LocalTemplate) -> Snapshot:
    """Every item of every table of ``template`` (any endpoint: sandbox or local stack)."""
    result: Snapshot = {}
    for logical_id, table in template.tables.items():
        keys = [k["AttributeName"] for k in table.create_kwargs["KeySchema"]]
        rows: dict[tuple[str, ...], dict[str, Any]] = {}
        kwargs: dict[str, Any] = {"TableName": table.name}
        while True:
            page = dynamodb.scan(**kwargs)
            for item in page["Items"]:
                rows[tuple(next(iter(item[k].values())) for k in keys)] = item
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        result[logical_id] = rows
    return result


def normalized(snapshot: Snapshot) -> Snapshot:
    """The snapshot without replay guards, versions and time stamps (see VOLATILE_ATTRIBUTES),
    with sets sorted (DynamoDB sets have no order; a scan returns them in any)."""
    result: Snapshot = {}
    for table, rows in snapshot.items():
        volatile = VOLATILE_ATTRIBUTES.get(table, set())
        result[table] = {
            key: {
                name: _sorted_set(value)
                for name, value in item.items()
                if name not in volatile and not name.startswith(GUARD_PREFIX)
            }
            for key, item in rows.items()
        }
    return result


def _sorted_set(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((kind, members),) = value.items()
        if kind in ("SS", "NS", "BS"):
            return {kind: sorted(members)}
    return value


@dataclass(frozen=True)
class Difference:
    table: str
    key: tuple[str, ...]
    kind: str  # "missing" (only in the reference), "extra" (only in the run), "changed"
    attributes: tuple[str, ...] = ()

    def describe(self) -> str:
        where = f"{self.table}[{', '.join(self.key)}]"
        if self.kind == "changed":
            return f"{where}: {', '.join(self.attributes)} differ"
        return f"{where}: {self.kind}"


def diff_snapshots(expected: Snapshot, actual: Snapshot) -> list[Difference]:
    """Row-level differences between two normalized snapshots."""
    differences: list[Difference] = []
    for table in sorted(set(expected) | set(actual)):
        left, right = expected.get(table, {}), actual.get(table, {})
        for key in sorted(set(left) | set(right)):
            if key not in right:
                differences.append(Difference(table, key, "missing"))
            elif key not in left:
                differences.append(Difference(table, key, "extra"))
            elif left[key] != right[key]:
                names = sorted(
                    n for n in set(left[key]) | set(right[key]) if left[key].get(n) != right[key].get(n)
                )
                differences.append(Difference(table, key, "changed", tuple(names)))
    return differences


@contextmanager
def temporary_environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (``None``: unset) environment variables for the block, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _quiet_functions(level: str) -> Iterator[None]:
    """Lower the functions' Powertools logger while the sandbox runs (batches log at INFO)."""
    from streamrec.observability import logger

    previous = logger.log_level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


@contextmanager
def sandbox(
    template: str | Path | None = None,
    *,
    stack_name: str = "streamrec-sandbox",
    parameter_overrides: Mapping[str, Any] | None = None,
    function_log_level: str = "CRITICAL",
) -> Iterator[Sandbox]:
    """An in-process account with the template's resources; see the module docstring."""
    from moto import mock_aws  # heavy import, only when a sandbox starts

    from streamrec.local import moto_fixes

    moto_fixes.apply()

    if not _lock.acquire(blocking=False):
        raise SandboxError("another sandbox is running in this process")
    try:
        if local_stack._active is not None:
            raise SandboxError("a LocalStack is running in this process (moto's state is global)")
        path = find_template(template)
        base_env: dict[str, str | None] = {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": function_log_level,
            **dict.fromkeys(_ENV_UNSET),
        }
        with temporary_environment(base_env), mock_aws(), _quiet_functions(function_log_level):
            resolved = load_template(
                path,
                stack_name=stack_name,
                endpoint_url=f"https://sqs.{REGION}.amazonaws.com",
                parameter_overrides=parameter_overrides,
            )
            box = Sandbox(resolved, {})
            dynamodb, kinesis, sqs = box.client("dynamodb"), box.client("kinesis"), box.client("sqs")
            for table in resolved.tables.values():
                dynamodb.create_table(**table.create_kwargs)
            for stream in resolved.streams.values():
                kinesis.create_stream(StreamName=stream.name, ShardCount=stream.shard_count)
            for queue in resolved.queues.values():
                box.queue_urls[queue.logical_id] = sqs.create_queue(
                    QueueName=queue.name, Attributes=queue.attributes
                )["QueueUrl"]
            env: dict[str, str | None] = dict(resolved.merged_environment())
            for name, value in list(env.items()):
                for queue in resolved.queues.values():
                    if value == queue.url:
                        env[name] = box.queue_urls[queue.logical_id]
            env["POWERTOOLS_LOG_LEVEL"] = function_log_level
            with temporary_environment(env):
                for function in resolved.functions.values():
                    # As on AWS, each function sees its own variables only: one reading another
                    # function's (e.g. the ingest's stream name) fails here, not first on AWS.
                    own = {
                        name: (value if name in function.environment else None) for name, value in env.items()
                    }
                    own.pop("POWERTOOLS_LOG_LEVEL")
                    box.environments[function.logical_id] = own
                    with temporary_environment(own):
                        box.handlers[function.logical_id] = import_handler(function)
                yield box
    finally:
        _lock.release()
