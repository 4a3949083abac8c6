"""The embedded local stack: moto server + the template's resources + in-process functions.

:class:`LocalStack` starts moto's server on 127.0.0.1, creates every table, stream and
queue of ``template.yaml``, sets the environment the functions expect (their template
variables), imports every handler in-process, and polls the streams like Lambda's event
source mappings; optionally it also serves the HTTP API. Clients in this process reach
moto's backends directly (its ``mock_aws``); other processes reach the same backends
through the server.

All functions share one process, hence one ``os.environ`` (the union of their variables,
which must agree) and one set of imported ``streamrec`` modules. Each function runs at
most one invocation at a time, as one Lambda execution environment would, but different
functions run concurrently (each poller and each HTTP request has its own thread).
Only one LocalStack may run per process: moto's backends and ``os.environ`` are global.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import boto3
from botocore.config import Config

from streamrec.kinesis_put import record_data
from streamrec.local.http_api import LocalHttpApi
from streamrec.local.pollers import ActivityClock, KinesisPoller, PollerStats
from streamrec.local.template import FunctionDef, LocalTemplate, StreamDef, load_template

__all__ = [
    "DEFAULT_TEMPLATE",
    "LambdaContext",
    "LocalFunction",
    "LocalStack",
    "LocalStackError",
    "find_template",
]

# Not under "streamrec": Powertools owns that logger (its service name) and would reformat ours.
log = logging.getLogger(__name__.replace("streamrec.local", "streamrec_local", 1))

DEFAULT_TEMPLATE = "template.yaml"
_HOST = "127.0.0.1"
_PUT_CHUNK = 500  # PutRecords takes at most 500 records
POLLER_STOP_SECONDS = 10.0  # how long close() lets invocations in flight finish
# The local HTTP API takes no credentials: it answers requests naming this machine only.
LOCAL_API_AUTH = "none (local: no credentials; it answers requests to 127.0.0.1 or localhost only)"
_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# Variables that would send the functions or boto3 elsewhere than the local endpoint.
_UNSET = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SECURITY_TOKEN",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)

_active_lock = threading.Lock()
_active: LocalStack | None = None


class LocalStackError(RuntimeError):
    """The local stack cannot start, or did not settle in time."""


def find_template(explicit: str | Path | None = None) -> Path:
    """``explicit``, else ``./template.yaml``, else the repository's template.yaml."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise LocalStackError(f"template {path} not found")
        return path.resolve()
    candidates = [Path.cwd() / DEFAULT_TEMPLATE, Path(__file__).resolve().parents[3] / DEFAULT_TEMPLATE]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise LocalStackError(f"no {DEFAULT_TEMPLATE} in {candidates[0].parent}; pass the template path")


class LambdaContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    function_version = "$LATEST"
    identity = None
    client_context = None

    def __init__(self, function: FunctionDef) -> None:
        self.function_name = function.name
        self.invoked_function_arn = function.arn
        self.memory_limit_in_mb = function.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + function.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's Timeout (never negative)."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalFunction:
    """A template function whose handler is imported in this process."""

    def __init__(self, definition: FunctionDef, handler: Callable[[dict[str, Any], Any], Any]) -> None:
        self.definition = definition
        self.handler = handler
        self.invocations = 0
        self._lock = threading.Lock()  # one invocation at a time, like one execution environment

    def invoke(self, event: dict[str, Any]) -> Any:
        """Call the handler with ``event`` and a fresh :class:`LambdaContext`."""
        with self._lock:
            self.invocations += 1
            context = LambdaContext(self.definition)
            started = time.monotonic()
            try:
                return self.handler(event, context)
            finally:
                elapsed = time.monotonic() - started
                if elapsed > self.definition.timeout_s:
                    log.warning(
                        "%s ran %.1fs, over its %ds Timeout (Lambda would have stopped it)",
                        self.definition.logical_id,
                        elapsed,
                        self.definition.timeout_s,
                    )


def _module_name(function: FunctionDef) -> str:
    return f"streamrec_local_fn_{function.logical_id}"


def _configure_function_logger() -> Callable[[], None]:
    """Give the functions' Powertools logger the level and service name of the environment
    just set, and print its records once (as JSON, not again through the root logger's
    handlers). It was created when ``streamrec`` was first imported, before that
    environment: on AWS each function imports it at its own cold start. Returns what
    restores the logger as it was."""
    from streamrec.observability import logger

    underlying = logging.getLogger(logger.name)
    level, propagate = underlying.level, underlying.propagate
    service = logger.get_current_keys().get("service")
    logger.setLevel(os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO"))
    logger.append_keys(service=os.environ.get("POWERTOOLS_SERVICE_NAME", service))
    underlying.propagate = False

    def restore() -> None:
        underlying.setLevel(level)
        underlying.propagate = propagate
        logger.append_keys(service=service)

    return restore


def import_handler(function: FunctionDef) -> Callable[[dict[str, Any], Any], Any]:
    """Import ``function``'s handler module by file path (a cold start) and return the handler."""
    path = function.handler_file
    if not path.is_file():
        raise LocalStackError(
            f"{function.logical_id}: handler file {path} not found "
            f"(CodeUri {function.code_dir}, Handler {function.handler})"
        )
    name = _module_name(function)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LocalStackError(f"{function.logical_id}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # Like Lambda, the code directory is importable, so a handler may import its siblings.
    sys.path.insert(0, str(function.code_dir))
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        sys.modules.pop(name, None)
        raise LocalStackError(
            f"{function.logical_id}: importing {path} failed: {type(error).__name__}: {error}"
        ) from error
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(function.code_dir))
    handler = getattr(module, function.handler_function, None)
    if not callable(handler):
        raise LocalStackError(f"{function.logical_id}: {path} has no callable {function.handler_function!r}")
    return cast(Callable[[dict[str, Any], Any], Any], handler)


def _port_free(port: int) -> bool:
    """Whether the servers can listen on ``port``: they bind with SO_REUSEADDR, as the probe
    does, so a port whose last connections linger in TIME_WAIT (for a minute after a stack
    stopped) is free, and one something listens on is not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((_HOST, port))
        except OSError:
            return False
    return True


def create_stream(kinesis: Any, stream: StreamDef) -> None:
    """Create the template's stream with its shards and retention (Kinesis creates every
    stream with 24 hours and takes a longer one as a second call)."""
    kinesis.create_stream(StreamName=stream.name, ShardCount=stream.shard_count)
    if stream.retention_hours != 24:
        kinesis.increase_stream_retention_period(
            StreamName=stream.name, RetentionPeriodHours=stream.retention_hours
        )


class LocalStack:
    """The template's pipeline running locally; use as a context manager.

    Args:
        template: path of ``template.yaml`` (default: see :func:`find_template`).
        stack_name: prefix of every physical resource name.
        moto_port: port of the moto server (0: a free port).
        http_port: port of the HTTP API (0: a free port; None: no HTTP API).
        parameter_overrides: template parameter values instead of their defaults.
        env_overrides: environment variables set after the template's (e.g. a log level).
        event_stream: logical id of the stream :meth:`put_events` writes to (default: the
            stream named by the template's ``EventStreamName`` output).
        idle_sleep: pause of a poller between two GetRecords calls of a shard found empty,
            doubled at each further empty poll up to ``max_idle_sleep``.
        retry_backoff: first pause before a poller retries a failed batch.
    """

    def __init__(
        self,
        template: str | Path | None = None,
        *,
        stack_name: str = "streamrec-local",
        moto_port: int = 0,
        http_port: int | None = None,
        parameter_overrides: Mapping[str, Any] | None = None,
        env_overrides: Mapping[str, str] | None = None,
        event_stream: str | None = None,
        idle_sleep: float = 0.05,
        max_idle_sleep: float = 0.5,
        retry_backoff: float = 0.05,
    ) -> None:
        self.template_path = find_template(template)
        self.stack_name = stack_name
        self.moto_port = moto_port
        self.http_port = http_port
        self.parameter_overrides = dict(parameter_overrides or {})
        self.env_overrides = dict(env_overrides or {})
        self.event_stream_id = event_stream
        self.idle_sleep = idle_sleep
        self.max_idle_sleep = max_idle_sleep
        self.retry_backoff = retry_backoff
        self.clock = ActivityClock()
        self.functions: dict[str, LocalFunction] = {}
        self.pollers: list[KinesisPoller] = []
        # "<poller>/<shard>" of invocations still running when close() stopped waiting.
        self.abandoned: list[str] = []
        self.http_api: LocalHttpApi | None = None
        self._template: LocalTemplate | None = None
        self._moto: Any = None
        self._in_process: Any = None  # moto's in-process mock (MockAWS), while the stack runs
        self._endpoint_url: str | None = None
        self._saved_env: dict[str, str | None] = {}
        self._restore_logger: Callable[[], None] | None = None
        self._kinesis: Any = None
        self._started = False

    # -- context manager ------------------------------------------------------------------
    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- properties -----------------------------------------------------------------------
    @property
    def template(self) -> LocalTemplate:
        """The template resolved for this stack (available once started)."""
        if self._template is None:
            raise LocalStackError("the stack is not started")
        return self._template

    @property
    def endpoint_url(self) -> str:
        """The moto endpoint, e.g. ``http://127.0.0.1:5000``."""
        if self._endpoint_url is None:
            raise LocalStackError("the stack is not started")
        return self._endpoint_url

    @property
    def region(self) -> str:
        """The region of every resource."""
        return self.template.region

    @property
    def api_url(self) -> str | None:
        """Base URL of the local HTTP API, or None when it is not served."""
        return self.http_api.url if self.http_api is not None else None

    @property
    def event_stream_name(self) -> str:
        """Physical name of the stream :meth:`put_events` writes to."""
        t = self.template
        if self.event_stream_id is not None:
            if self.event_stream_id not in t.streams:
                raise LocalStackError(f"event stream {self.event_stream_id!r} is not a stream of {t.path}")
            return t.streams[self.event_stream_id].name
        named = t.outputs.get("EventStreamName")
        if isinstance(named, str) and any(s.name == named for s in t.streams.values()):
            return named
        if len(t.streams) == 1:
            return next(iter(t.streams.values())).name
        raise LocalStackError(
            f"cannot tell which stream of {t.path} takes user events: the template needs an "
            "AWS::Kinesis::Stream named by its EventStreamName output (or exactly one stream)"
        )

    # -- start / close --------------------------------------------------------------------
    def start(self) -> LocalStack:
        """Start everything; on failure, whatever was started is stopped again."""
        global _active
        with _active_lock:
            if _active is not None:
                raise LocalStackError(
                    "another LocalStack is running in this process (moto's state and os.environ are global)"
                )
            _active = self
        self._started = True
        try:
            if self.http_port and not _port_free(self.http_port):
                raise LocalStackError(f"HTTP API port {self.http_port} is in use; choose another (0: any)")
            self._start_moto()
            self._template = load_template(
                self.template_path,
                stack_name=self.stack_name,
                endpoint_url=self.endpoint_url,
                parameter_overrides=self.parameter_overrides,
            )
            self._set_environment()
            self._create_resources()
            self._import_functions()
            self._start_pollers()
            if self.http_port is not None:
                self._start_http_api()
        except BaseException:
            self.close()
            raise
        log.info("local stack %s up: moto %s, HTTP API %s", self.stack_name, self.endpoint_url, self.api_url)
        return self

    def close(self) -> None:
        """Stop the HTTP API, the pollers and moto; restore the environment. Idempotent."""
        global _active
        if not self._started:
            return
        if self.http_api is not None:
            self.http_api.stop()
            self.http_api = None
        for poller in self.pollers:
            poller.request_stop()
        deadline = time.monotonic() + POLLER_STOP_SECONDS  # one wait for all, not one each
        for poller in self.pollers:
            busy = poller.stop(max(0.0, deadline - time.monotonic()))
            self.abandoned += [f"{poller.name}/{shard}" for shard in busy]
        self.pollers = []
        for function in self.functions.values():
            sys.modules.pop(_module_name(function.definition), None)
        self.functions = {}
        if self._moto is not None:
            try:
                self._moto.stop()
            except Exception:  # noqa: BLE001 - shutting down anyway
                log.exception("stopping the moto server failed")
            self._moto = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}
        if self._in_process is not None and self.abandoned:
            # Their calls would go to AWS's own addresses: left to the mock, as is the data.
            log.warning("moto's in-process mock left on for invocations still running: %s", self.abandoned)
        elif self._in_process is not None:
            # After the variables: the mock set its own credentials before they were saved,
            # and puts back the ones it found.
            try:
                self._in_process.stop()
            except Exception:  # noqa: BLE001 - shutting down anyway
                log.exception("stopping moto's in-process mock failed")
        self._in_process = None
        if self._restore_logger is not None:
            self._restore_logger()
            self._restore_logger = None
        self._started = False
        with _active_lock:
            if _active is self:
                _active = None

    def _start_moto(self) -> None:
        from moto.core.models import MockAWS  # heavy imports, only when a stack starts
        from moto.server import ThreadedMotoServer

        from streamrec.local import moto_fixes

        if MockAWS._nested_count:  # its account would be emptied, then shared
            raise LocalStackError(
                "moto's mock_aws is active in this process (a caller's, or one a stopped stack left "
                "on for its invocations still running): start the local stack outside it"
            )
        moto_fixes.apply()

        # werkzeug logs every request at INFO; the pollers make many.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        if self.moto_port and not _port_free(self.moto_port):
            raise LocalStackError(f"moto port {self.moto_port} is in use; choose another (or 0 for any)")
        self._moto = ThreadedMotoServer(ip_address=_HOST, port=self.moto_port, verbose=False)
        self._moto.start()
        _, port = self._moto.get_host_and_port()
        self._endpoint_url = f"http://{_HOST}:{port}"
        # moto's backends are process-global: start from an empty account.
        request = urllib.request.Request(f"{self._endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local URL
            response.read()
        # This process's clients (the functions', the pollers', client()'s) call moto's
        # backends directly, as the sandbox's do; the server is for other processes
        # (`streamrec events load`, your tools). Over HTTP each call also cost a new
        # connection, a server thread and werkzeug's parsing: about 3.3 ms a DynamoDB
        # write against 1.7 ms, and the local ingest is CPU-bound on such calls. MockAWS, not
        # mock_aws(): that would be a redirect to another server under TEST_SERVER_MODE.
        in_process = MockAWS()
        in_process.start(reset=False)
        self._in_process = in_process

    def _set_environment(self) -> None:
        env: dict[str, str | None] = {
            # No endpoint: moto's in-process mock answers requests to AWS's own addresses,
            # and to no others (FIPS and dual-stack ones would go to AWS).
            "AWS_ENDPOINT_URL": None,
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",  # nor a service's, nor a profile's
            "AWS_USE_FIPS_ENDPOINT": "false",
            "AWS_USE_DUALSTACK_ENDPOINT": "false",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            **_FAKE_CREDENTIALS,
            **dict.fromkeys(_UNSET),
        }
        env.update(self.template.merged_environment())
        env.update(
            {
                "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
                "POWERTOOLS_METRICS_DISABLED": "true",  # no EMF lines on stdout
            }
        )
        env.update(self.env_overrides)
        for key, value in env.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def client(self, service: str, through_server: bool = False) -> Any:
        """A new boto3 client of the stack's moto, for this process (each thread should make
        its own); ``through_server``: by :attr:`endpoint_url`, as another process reaches it."""
        session = boto3.session.Session(
            aws_access_key_id=_FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=_FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=_FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=self.region,
        )
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
        endpoint = {"endpoint_url": self.endpoint_url} if through_server else {}
        return session.client(service, config=config, **endpoint)  # type: ignore[call-overload]

    def _create_resources(self) -> None:
        t = self.template
        dynamodb, kinesis = self.client("dynamodb"), self.client("kinesis")
        # The queues through the server: their URLs, in the outputs, are the server's.
        sqs = self.client("sqs", through_server=True)
        for table in t.tables.values():
            dynamodb.create_table(**table.create_kwargs)
            if table.ttl_attribute:
                dynamodb.update_time_to_live(
                    TableName=table.name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
                )
        for stream in t.streams.values():
            create_stream(kinesis, stream)
        for queue in t.queues.values():
            url = sqs.create_queue(QueueName=queue.name, Attributes=queue.attributes)["QueueUrl"]
            if url != queue.url:
                raise LocalStackError(f"queue {queue.logical_id} got URL {url}, expected {queue.url}")
        deadline = time.monotonic() + 30
        for stream in t.streams.values():
            while (
                kinesis.describe_stream_summary(StreamName=stream.name)["StreamDescriptionSummary"][
                    "StreamStatus"
                ]
                != "ACTIVE"
            ):
                if time.monotonic() > deadline:
                    raise LocalStackError(f"stream {stream.name} did not become ACTIVE")
                time.sleep(0.05)
        self._kinesis = kinesis

    def _import_functions(self) -> None:
        # After _set_environment: handlers read their settings at import (cold start).
        self._restore_logger = _configure_function_logger()
        for function in self.template.functions.values():
            self.functions[function.logical_id] = LocalFunction(function, import_handler(function))

    def _start_pollers(self) -> None:
        for function in self.functions.values():
            for source in function.definition.kinesis_sources:
                if not source.enabled:
                    continue
                poller = KinesisPoller(
                    source,
                    function.invoke,
                    function.definition.arn,
                    self.client,
                    self.clock,
                    idle_sleep=self.idle_sleep,
                    max_idle_sleep=self.max_idle_sleep,
                    retry_backoff=self.retry_backoff,
                )
                self.pollers.append(poller)
                poller.start()

    def _start_http_api(self) -> None:
        routes = self.template.http_routes
        api = LocalHttpApi(
            routes,
            {fid: fn.invoke for fid, fn in self.functions.items()},
            host=_HOST,
            port=self.http_port or 0,
            account_id=self.template.account_id,
            cors=self.template.cors,
        )
        api.start()
        self.http_api = api

    # -- producing ------------------------------------------------------------------------
    def put_events(
        self,
        events: Sequence[Mapping[str, Any]],
        progress: Callable[[int, int], None] | None = None,
        *,
        stream: str | None = None,
    ) -> list[str]:
        """Put user events (JSON, partition key ``user_id``); returns their sequence numbers.

        ``progress(done, total)`` is called after each PutRecords call of up to 500 records.
        """
        entries = []
        for event in events:
            key = str(event.get("user_id") or event.get("event_id") or "unknown")[:256]
            entries.append({"Data": record_data(event), "PartitionKey": key})
        return self.put_records(entries, progress, stream=stream)

    def put_records(
        self,
        entries: Iterable[Mapping[str, Any]],
        progress: Callable[[int, int], None] | None = None,
        *,
        stream: str | None = None,
    ) -> list[str]:
        """Put raw ``{"Data": bytes, "PartitionKey": str}`` records (e.g. a poison record)."""
        records = [dict(e) for e in entries]
        name = stream or self.event_stream_name
        sequence_numbers: list[str] = []
        for start in range(0, len(records), _PUT_CHUNK):
            chunk = records[start : start + _PUT_CHUNK]
            results = self._put_chunk(name, chunk)
            sequence_numbers += [r["SequenceNumber"] for r in results]
            self.clock.mark_activity()
            if progress is not None:
                progress(start + len(chunk), len(records))
        return sequence_numbers

    def _put_chunk(self, stream: str, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any] | None] = [None] * len(chunk)
        pending = list(range(len(chunk)))
        for attempt in range(6):
            response = self._kinesis.put_records(StreamName=stream, Records=[chunk[i] for i in pending])
            failed = []
            for index, result in zip(pending, response["Records"], strict=True):
                if "SequenceNumber" in result:
                    results[index] = result
                else:
                    failed.append(index)
            if not failed:
                return [r for r in results if r is not None]
            log.warning("PutRecords: %d records throttled or failed, retrying", len(failed))
            pending = failed
            time.sleep(0.05 * 2**attempt)
        raise LocalStackError(f"PutRecords kept failing for {len(pending)} records on {stream}")

    # -- settling -------------------------------------------------------------------------
    def quiet(self) -> bool:
        """True when every poller found its shards empty after the last activity anywhere."""
        last = self.clock.last_activity
        return all(poller.caught_up_since(last) for poller in self.pollers)

    def drain(
        self,
        timeout: float = 120.0,
        progress: Callable[[dict[str, PollerStats]], None] | None = None,
    ) -> None:
        """Block until every stream is consumed and the functions' chain is quiet.

        The pipeline is quiet when every poller has found its shards empty in a GetRecords
        call made after the last invocation or PutRecords finished; this must hold at two
        checks in a row. ``progress`` gets :meth:`stats` at each check.

        Raises:
            LocalStackError: not quiet after ``timeout`` seconds (the message says where).
        """
        deadline = time.monotonic() + timeout
        quiet_checks = 0
        while True:
            if progress is not None:
                progress(self.stats())
            quiet_checks = quiet_checks + 1 if self.quiet() else 0
            if quiet_checks >= 2:
                return
            if time.monotonic() > deadline:
                states = "; ".join(p.describe() for p in self.pollers)
                raise LocalStackError(f"the pipeline did not settle within {timeout:g} s: {states}")
            time.sleep(self.idle_sleep)

    def stats(self) -> dict[str, PollerStats]:
        """Counters of every poller, by ``"Function.Event"`` name."""
        return {poller.name: poller.stats for poller in self.pollers}

    def outputs(self) -> dict[str, Any]:
        """Where everything is: endpoint, streams, tables, queues, HTTP API URL."""
        t = self.template
        template_outputs = dict(t.outputs)
        if "ApiUrl" in template_outputs:
            template_outputs["ApiUrl"] = self.api_url
        if "ApiAuthMode" in template_outputs:  # the template's default (IAM) is AWS's, not this API's
            template_outputs["ApiAuthMode"] = LOCAL_API_AUTH
        return {
            "stack_name": self.stack_name,
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "api_url": self.api_url,
            "event_stream": self.event_stream_name,
            "changed_items_stream": t.outputs.get("ChangedItemsStreamName"),
            "dead_letter_queue_url": t.outputs.get("DeadLetterQueueUrl"),
            "tables": {logical_id: table.name for logical_id, table in t.tables.items()},
            "streams": {logical_id: stream.name for logical_id, stream in t.streams.items()},
            "queues": {logical_id: queue.url for logical_id, queue in t.queues.items()},
            "template_outputs": template_outputs,
        }
