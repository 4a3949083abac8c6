"""A local stand-in for the template's implicit API Gateway HTTP API (payload format 2.0).

Each HTTP request is matched against the ``Type: HttpApi`` events of the template (most
specific route first, greedy ``{proxy+}`` routes and ``$default`` last), turned into the
event API Gateway would send, and handed to the function; the function's response is
written back the way API Gateway writes it. A request that matches no route gets
API Gateway's ``404 {"message":"Not Found"}``; a function that raises gets
``500 {"message":"Internal Server Error"}``.

As observed on API Gateway HTTP APIs, ``rawPath`` and ``pathParameters`` are delivered
percent-decoded, while ``rawQueryString`` stays as sent.

CORS, when the template configures it (``x-amazon-apigateway-cors``, the ``CorsAllowOrigins``
parameter), works as API Gateway's: a preflight ``OPTIONS`` (with ``Origin`` and
``Access-Control-Request-Method``) is answered 204 by the API itself, with the CORS headers
when the origin, method and headers are allowed; any other response to an allowed origin
carries ``Access-Control-Allow-Origin`` (not those http.server gives before the headers are
read: 414 and 431).

No authorizer is emulated: whatever the template's ``ApiAuth`` (IAM or JWT), every request
is served without looking at ``Authorization`` and the event carries no
``requestContext.authorizer``. The server listens on 127.0.0.1 only; do not expose it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from streamrec.local.template import ACCOUNT_ID, LOCAL_API_ID, CorsConfig, HttpRoute

__all__ = ["HttpApiError", "HttpResponse", "LocalHttpApi", "MatchedRoute"]

# Not under "streamrec": Powertools owns that logger (its service name) and would reformat ours.
log = logging.getLogger(__name__.replace("streamrec.local", "streamrec_local", 1))

Invoke = Callable[[dict[str, Any]], Any]

_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "+json",
    "+xml",
)
_PARAM = re.compile(r"^\{([A-Za-z0-9_.-]+)(\+?)\}$")
_JSON = "application/json"


class HttpApiError(RuntimeError):
    """The local HTTP API cannot start (e.g. its port is taken)."""


@dataclass(frozen=True)
class MatchedRoute:
    """A route that matched a request, with the decoded path parameters."""

    route: HttpRoute
    path_parameters: dict[str, str]


@dataclass(frozen=True)
class HttpResponse:
    """What goes back on the wire."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class _CompiledRoute:
    route: HttpRoute
    pattern: re.Pattern[str] | None  # None for $default
    names: tuple[str, ...]
    rank: tuple[int, int, int, int]


def _compile(route: HttpRoute) -> _CompiledRoute:
    if route.path == "$default":
        return _CompiledRoute(route, None, (), (3, 0, 0, 1))
    parts: list[str] = []
    names: list[str] = []
    literals = 0
    greedy = False
    for segment in route.path.strip("/").split("/"):
        param = _PARAM.match(segment)
        if param is None:
            parts.append(re.escape(segment))
            literals += 1
        elif param.group(2):
            parts.append("(.+)")
            names.append(param.group(1))
            greedy = True
        else:
            parts.append("([^/]+)")
            names.append(param.group(1))
    pattern = re.compile("^/" + "/".join(parts) + "$") if parts != [""] else re.compile("^/$")
    # API Gateway prefers the most specific route: no greedy parameter, more literal
    # segments, fewer parameters, and an explicit method over ANY.
    rank = (1 if greedy else 0, -literals, len(names), 1 if route.method == "ANY" else 0)
    return _CompiledRoute(route, pattern, tuple(names), rank)


def _json_response(status: int, payload: dict[str, Any]) -> HttpResponse:
    body = json.dumps(payload).encode()
    return HttpResponse(status, [("content-type", _JSON)], body)


class _Server(ThreadingHTTPServer):
    """The local API's server: a client that drops its connection mid-request is that
    client's business, not a traceback on the terminal of `streamrec run`."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # reset, aborted, broken pipe
            log.debug("client %s dropped its connection", client_address)
            return
        super().handle_error(request, client_address)


class LocalHttpApi:
    """The HTTP API of the template, served on ``host:port`` by a ThreadingHTTPServer.

    Args:
        routes: the template's HttpApi routes.
        functions: logical id -> callable invoking that function with an event (the
            callable builds the Lambda context and serialises invocations of one function,
            as one Lambda execution environment would).
        host, port: where to listen; port 0 picks a free port.
        account_id: the requestContext's accountId.
        cors: the template's CORS configuration (None: no CORS, as without it on AWS).
    """

    def __init__(
        self,
        routes: Sequence[HttpRoute],
        functions: Mapping[str, Invoke],
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        account_id: str = ACCOUNT_ID,
        cors: CorsConfig | None = None,
    ) -> None:
        missing = sorted({r.function_logical_id for r in routes} - set(functions))
        if missing:
            raise HttpApiError(f"no function loaded for routes of {', '.join(missing)}")
        self._routes = sorted((_compile(r) for r in routes), key=lambda c: c.rank)
        self._functions = dict(functions)
        self.host = host
        self.requested_port = port
        self.account_id = account_id
        self.cors = cors
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Bind and serve in a background thread."""
        try:
            server = _Server((self.host, self.requested_port), _RequestHandler)
        except OSError as error:
            raise HttpApiError(
                f"cannot listen on {self.host}:{self.requested_port} ({error.strerror or error}); "
                "is another `streamrec run` up? choose another port"
            ) from error
        server.daemon_threads = True
        server.api = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="local-http-api", daemon=True)
        self._thread.start()
        log.debug("HTTP API listening on %s", self.url)

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    @property
    def port(self) -> int:
        """The bound port (differs from the requested one when it was 0)."""
        if self._server is None:
            return self.requested_port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:3000``."""
        return f"http://{self.host}:{self.port}"

    # -- translation ----------------------------------------------------------------------
    def match(self, method: str, path: str) -> MatchedRoute | None:
        """The route for ``method`` (case-sensitive, as HTTP methods are: ``get`` is no GET)
        and the still percent-encoded ``path``, if any."""
        for compiled in self._routes:
            route = compiled.route
            if route.method not in ("ANY", method):
                continue
            if compiled.pattern is None:
                return MatchedRoute(route, {})
            found = compiled.pattern.match(path)
            if found:
                values = found.groups()
                params = {name: unquote(value) for name, value in zip(compiled.names, values, strict=True)}
                return MatchedRoute(route, params)
        return None

    def build_event(
        self,
        matched: MatchedRoute,
        method: str,
        path: str,
        query: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        source_ip: str,
        protocol: str = "HTTP/1.1",
    ) -> dict[str, Any]:
        """The payload format 2.0 event for one request (``path`` still percent-encoded)."""
        merged: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in headers:
            key = name.lower()
            if key == "cookie":
                cookies += [c.strip() for c in value.split(";") if c.strip()]
                continue
            merged[key] = f"{merged[key]},{value}" if key in merged else value
        domain = merged.get("host", f"{self.host}:{self.port}")
        merged.setdefault("x-forwarded-for", source_ip)
        merged.setdefault("x-forwarded-proto", "http")
        merged.setdefault("x-forwarded-port", str(self.port))
        now = time.time()
        merged.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{secrets.token_hex(12)}")

        raw_path = unquote(path)
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": matched.route.route_key,
            "rawPath": raw_path,
            "rawQueryString": query,
        }
        if cookies:
            event["cookies"] = cookies
        event["headers"] = merged
        if query:
            params: dict[str, str] = {}
            for key, value in parse_qsl(query, keep_blank_values=True):
                params[key] = f"{params[key]},{value}" if key in params else value
            event["queryStringParameters"] = params
        event["requestContext"] = {
            "accountId": self.account_id,
            "apiId": LOCAL_API_ID,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0].split(":", 1)[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": matched.route.route_key,
            "stage": "$default",
            "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000),
        }
        if body:
            content_type = merged.get("content-type", "").lower()
            textual = any(t in content_type for t in _TEXT_TYPES)
            try:
                text = body.decode("utf-8") if textual else None
            except UnicodeDecodeError:
                text = None
            if text is None:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
            else:
                event["body"] = text
                event["isBase64Encoded"] = False
        else:
            event["isBase64Encoded"] = False
        if matched.path_parameters:
            event["pathParameters"] = dict(matched.path_parameters)
        return event

    @staticmethod
    def render(result: Any) -> HttpResponse:
        """Turn a function's return value into the HTTP response API Gateway would send."""
        if not (isinstance(result, dict) and "statusCode" in result):
            # Payload 2.0: anything without statusCode is a 200 JSON body.
            return HttpResponse(200, [("content-type", _JSON)], json.dumps(result).encode())
        try:
            status = int(result["statusCode"])
            headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
            for name, values in (result.get("multiValueHeaders") or {}).items():
                headers += [(str(name), str(v)) for v in values]
            headers += [("set-cookie", str(c)) for c in result.get("cookies") or []]
            raw = result.get("body")
            if raw is None:
                body = b""
            elif result.get("isBase64Encoded"):
                body = base64.b64decode(raw, validate=True)
            else:
                body = str(raw).encode()
        except (TypeError, ValueError, binascii.Error, AttributeError) as error:
            log.error("function returned a malformed HTTP response: %s", error)
            return _json_response(500, {"message": "Internal Server Error"})
        return HttpResponse(status, headers, body)

    def handle(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        source_ip: str,
        protocol: str = "HTTP/1.1",
    ) -> HttpResponse:
        """Serve one request; ``target`` is the request line's path and query."""
        split = urlsplit(target)
        matched = self.match(method, split.path or "/")
        if matched is None:
            return _json_response(404, {"message": "Not Found"})
        event = self.build_event(
            matched, method, split.path or "/", split.query, headers, body, source_ip, protocol
        )
        try:
            result = self._functions[matched.route.function_logical_id](event)
        except Exception:  # noqa: BLE001 - API Gateway turns a function error into a 500
            log.exception("%s failed on %s %s", matched.route.function_logical_id, method, target)
            return _json_response(500, {"message": "Internal Server Error"})
        return self.render(result)

    def preflight(self, method: str, headers: Sequence[tuple[str, str]]) -> HttpResponse | None:
        """API Gateway's own answer to a CORS preflight (None when the request is not one, or
        no CORS is configured): 204, with the CORS headers when the origin is allowed."""
        requested = _header(headers, "access-control-request-method")
        origin = _header(headers, "origin")
        if self.cors is None or origin is None or method != "OPTIONS" or requested is None:
            return None
        allowed = self.cors.allows(origin)
        return HttpResponse(204, _preflight(self.cors, requested, headers) if allowed else [], b"")

    def cors_marked(self, headers: Sequence[tuple[str, str]], response: HttpResponse) -> HttpResponse:
        """``response`` (any but a preflight's) as API Gateway sends it to the request's
        origin: with ``Access-Control-Allow-Origin`` when the origin is allowed."""
        origin = _header(headers, "origin")
        cors = self.cors
        if cors is None or origin is None or not cors.allows(origin):
            return response
        kept = [(n, v) for n, v in response.headers if not n.lower().startswith("access-control-")]
        return HttpResponse(
            response.status,
            [*kept, ("access-control-allow-origin", cors.allow_origin(origin))],
            response.body,
        )


def _preflight(cors: CorsConfig, requested: str, headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The CORS headers of a preflight answer from an allowed origin ([] when the method
    or a requested header is not allowed: the browser then refuses the request)."""
    wanted = [
        h.strip().lower() for h in (_header(headers, "access-control-request-headers") or "").split(",")
    ]
    if requested.upper() not in cors.allow_methods and "*" not in cors.allow_methods:
        return []
    if "*" not in cors.allow_headers and any(h and h not in cors.allow_headers for h in wanted):
        return []
    answer = [
        ("access-control-allow-origin", cors.allow_origin(_header(headers, "origin") or "")),
        ("access-control-allow-methods", ",".join(cors.allow_methods)),
        ("access-control-allow-headers", ",".join(cors.allow_headers)),
    ]
    if cors.max_age is not None:
        answer.append(("access-control-max-age", str(cors.max_age)))
    return answer


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (any case), or None."""
    return next((value for key, value in headers if key.lower() == name), None)


READ_TIMEOUT_SECONDS = 30.0
# API Gateway's payload limit for an HTTP API: a larger request is answered 413 there.
MAX_BODY_BYTES = 10 * 1024 * 1024


# The names a request to the local API may give in its Host header (and the address it
# listens on).
LOCAL_HOST_NAMES = ("127.0.0.1", "localhost", "::1")


def _host_name(header: str) -> str:
    """The host of a Host header, without its port ("[::1]:3000" is "::1")."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _encoded_target(target: str) -> str:
    """The request line's target with its raw (not percent-encoded) non-ASCII bytes
    percent-encoded, as a browser sends them: http.server decodes the line as Latin-1, so
    "?category=キッチン" sent raw read as mojibake holding control characters. Encoded, it
    reads as the same text would percent-encoded, and bytes that are not UTF-8 are refused
    as %FF is."""
    raw = target.encode("latin-1", errors="replace")
    return "".join(chr(byte) if byte < 0x80 else f"%{byte:02X}" for byte in raw)


class _BodyRefused(ValueError):
    """A request body the local API refuses before reading it, with API Gateway's answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _read_chunked(stream: Any) -> bytes:
    """A ``Transfer-Encoding: chunked`` body (RFC 9112 section 7.1; extensions and trailers
    are read and dropped), as API Gateway accepts it; ValueError when it is malformed."""
    body = bytearray()
    while True:
        line = stream.readline(1024)
        if not line.endswith(b"\n"):
            raise ValueError("chunk size line cut short")
        size_text = line.split(b";", 1)[0].strip()
        if not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", size_text):  # int(..., 16) takes -1, 0x3, 1_0
            raise ValueError(f"chunk size {size_text[:20]!r} is not a hexadecimal number")
        size = int(size_text, 16)
        if size == 0:
            break
        if len(body) + size > MAX_BODY_BYTES:
            raise _BodyRefused(413, "Request Entity Too Large")
        chunk = stream.read(size)
        if len(chunk) < size or stream.readline(3).strip():
            raise ValueError("chunk cut short or not followed by CRLF")
        body += chunk
    while stream.readline(8192).strip():  # trailer fields, up to the empty line
        pass
    return bytes(body)


class _RequestHandler(BaseHTTPRequestHandler):
    """Hands every request to the server's :class:`LocalHttpApi`."""

    protocol_version = "HTTP/1.1"
    server_version = "streamrec-local"
    # A client that stops sending mid-request (a body shorter than its Content-Length) or an
    # idle keep-alive connection is dropped after this many seconds instead of holding a
    # thread for ever.
    timeout = READ_TIMEOUT_SECONDS

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _read_chunked(self.rfile)
        lengths = {value.strip() for value in self.headers.get_all("Content-Length") or ["0"]}
        text = lengths.pop() if len(lengths) == 1 else ""  # two different lengths: which?
        if not text.isascii() or not text.isdigit():  # int() would take -5, +5 and 1_0
            raise _BodyRefused(400, "Bad Request")
        length = int(text)
        if length > MAX_BODY_BYTES:
            raise _BodyRefused(413, "Request Entity Too Large")
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        api: LocalHttpApi = self.server.api  # type: ignore[attr-defined]
        headers = list(self.headers.items())
        preflight = None
        host = _host_name(self.headers.get("Host", ""))
        try:
            if host and host not in (api.host, *LOCAL_HOST_NAMES):
                # DNS rebinding: a web page of another site, its name resolved to 127.0.0.1,
                # would read this unauthenticated API (with --cors-origins '*', any page can).
                raise _BodyRefused(
                    421, f"this local API answers requests to 127.0.0.1 or localhost, not {host}"
                )
            body = self._read_body()
        except _BodyRefused as refused:
            # The body is left unread: answer, then close the connection.
            self.close_connection = True
            response = _json_response(refused.status, {"message": str(refused)})
        except ValueError as error:
            # The stream is out of step with the request: answer, then close the connection.
            self.close_connection = True
            response = _json_response(400, {"message": f"malformed chunked body: {error}"})
        else:
            preflight = api.preflight(self.command, headers)
            if preflight is None:
                response = api.handle(
                    self.command,
                    _encoded_target(self.path),
                    headers,
                    body,
                    self.client_address[0],
                    self.request_version,
                )
        # API Gateway marks every answer to an allowed origin, errors before routing too.
        response = preflight if preflight is not None else api.cors_marked(headers, response)
        self.send_response(response.status)
        names = {name.lower() for name, _ in response.headers}
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        if "content-type" not in names and response.body:
            self.send_header("content-type", _JSON)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.send_header("apigw-requestid", uuid.uuid4().hex[:16])
        try:
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client went away (e.g. still sending the body a 413 left unread).
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals, before any route is looked up (a request line over
        64 KiB: 414; a header line over 64 KiB or over 100 headers: 431), answered in JSON
        like every other error instead of its HTML page. (A request line it cannot read at
        all is answered as HTTP/0.9 was: the body alone, without status line or headers.)"""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        body = json.dumps({"message": message or HTTPStatus(code).phrase}).encode()
        try:
            self.send_response(code, message)
            self.send_header("content-type", _JSON)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, PROPFIND...) goes through the API too, which answers 404
        # when no route takes it, as API Gateway does (http.server would answer 501 HTML).
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.info("%s %s", self.address_string(), format % args)
