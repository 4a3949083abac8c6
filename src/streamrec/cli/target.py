"""Where ``dlq``, ``coupons``, ``catalog`` and ``events`` act: the local stack (its outputs
file) or AWS (a named queue, table or stream)."""

from __future__ import annotations

import argparse
import json
import socket
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrec.cli import progress
from streamrec.cli.exits import said_stopped

LOCAL_STACK_PROBE_SECONDS = 1.0  # a running local stack accepts a connection at once
# ...but its moto server may take a while to answer while the pollers are busy.
LOCAL_STACK_ANSWER_SECONDS = 5.0
LOCAL_STACK_ANSWER_ATTEMPTS = 3
# Error codes that running the command again cannot fix (no "re-run" advice after them).
PERMANENT_ERRORS = frozenset(
    {
        "ResourceNotFoundException",  # DynamoDB, Kinesis: no such table or stream
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "InvalidClientTokenId",  # SQS: unknown access key
        "SignatureDoesNotMatch",
        "ValidationException",
        "KMSAccessDeniedException",  # Kinesis: the stream's key cannot be used
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
    }
)
LOCAL_OUTPUTS = Path(".local/outputs.json")  # where `streamrec run` writes them by default


def add_target_arguments(parser: argparse.ArgumentParser, flag: str) -> None:
    """Where a command acts: the local stack (its outputs file) or AWS (see :func:`resolve_target`);
    ``flag`` is the command's resource flag, which targets AWS."""
    parser.add_argument(
        "--outputs",
        type=Path,
        default=None,
        help=f"the local stack's outputs (default {LOCAL_OUTPUTS}); not with {flag}, which targets AWS",
    )
    parser.add_argument(
        "--endpoint-url",
        default=None,
        help="AWS endpoint (default: the local stack's, from --outputs, without a resource flag; else AWS)",
    )
    parser.add_argument(
        "--region",
        default=None,
        help="AWS region (default: the local stack's, from --outputs, without a resource flag; "
        "else your AWS configuration)",
    )


@dataclass(frozen=True)
class Target:
    """A command's resource and the boto3 client arguments to reach it; ``local_stack`` is
    the endpoint when both came from the local stack's outputs file."""

    name: str
    client_kwargs: dict[str, Any]
    local_stack: str | None = None

    def client(self, service: str) -> Any:
        import boto3

        try:
            return boto3.client(service, **self.client_kwargs)  # type: ignore[call-overload]
        except ValueError as error:  # e.g. an invalid AWS_ENDPOINT_URL or region
            raise SystemExit(f"error: {error}") from None

    @contextmanager
    def failures(
        self,
        done: Callable[[], str] | None = None,
        again: str = "",
        otherwise: str = "",
        otherwise_for: frozenset[str] | None = None,
    ) -> Iterator[None]:
        """One line instead of a traceback when AWS or the local stack fails mid-command,
        ending with ``done()``: what the command had done by then, and ``again`` (how to
        finish, e.g. "re-run") unless the cause is one that re-running cannot fix (a
        resource that does not exist, access denied, a request AWS refuses); then
        ``otherwise`` (what can), if given, for the error codes ``otherwise_for`` (None: all)."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            HTTPClientError,
            NoCredentialsError,
            NoRegionError,
        )
        from botocore.exceptions import ConnectionError as ConnectionFailure

        from streamrec.repositories.base import RepositoryError
        from streamrec.repositories.dynamodb import error_code

        def so_far(retry: bool = True, code: str = "") -> str:
            advice = again if retry else (otherwise if otherwise_for is None or code in otherwise_for else "")
            return (f"; {done()}" if done else "") + (f": {advice}" if done and advice else "")

        try:
            yield
        except KeyboardInterrupt as interruption:
            raise SystemExit(said_stopped(interruption, so_far())) from None
        except NoRegionError:
            # Raised by the first call: nothing was done yet, and re-running alone cannot help.
            progress.status.end_line()
            raise SystemExit(
                "error: no AWS region: pass --region (or set AWS_REGION); nothing was done"
            ) from None
        except (BotoCoreError, ClientError, RepositoryError) as error:
            progress.status.end_line()
            cause = error.__cause__ if isinstance(error, RepositoryError) else error
            if self.local_stack and isinstance(cause, (ConnectionFailure, HTTPClientError)):
                what = f"the local stack at {self.local_stack} stopped answering"
            elif isinstance(cause, NoCredentialsError):
                what = (
                    "Unable to locate AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, or run aws configure)"
                )
            else:
                what = str(error).rstrip(".")
            code = error_code(cause)
            permanent = code in PERMANENT_ERRORS or isinstance(cause, NoCredentialsError)
            raise SystemExit(f"error: {what}" + so_far(retry=not permanent, code=code)) from None


def accepts_connections(endpoint: str) -> bool:
    """Whether something listens at the endpoint URL's host and port."""
    url = urllib.parse.urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "localhost", port), timeout=LOCAL_STACK_PROBE_SECONDS):
            return True
    except OSError:
        return False


def serves_moto(endpoint: str, attempts: int = LOCAL_STACK_ANSWER_ATTEMPTS) -> bool | None:
    """Whether the local stack's moto server answers at ``endpoint`` (its dashboard page):
    True; False for another program that took the port since; None when nothing answered
    in ``attempts`` tries of LOCAL_STACK_ANSWER_SECONDS (a stack busy with a replay shares
    its process with the pollers, so a slow page is not a foreign one)."""
    import http.client
    import urllib.error
    import urllib.request

    for _ in range(attempts):
        try:
            with urllib.request.urlopen(  # noqa: S310 - a local stack's own endpoint
                endpoint.rstrip("/") + "/moto-api/", timeout=LOCAL_STACK_ANSWER_SECONDS
            ) as page:
                return b"<title>Moto</title>" in page.read(4096)
        except (urllib.error.HTTPError, http.client.HTTPException):
            return False  # an answer, not moto's (or not even HTTP: an SSH banner, say)
        except (OSError, ValueError) as error:
            if not isinstance(error, TimeoutError) and not isinstance(
                getattr(error, "reason", None), TimeoutError
            ):
                return False
    return None


def check_endpoint(endpoint: Any, where: str) -> None:
    """SystemExit unless ``endpoint`` is a URL boto3 takes (it raises a bare ValueError)."""
    from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

    if not isinstance(endpoint, str) or not (
        is_valid_endpoint_url(endpoint) or is_valid_ipv6_endpoint_url(endpoint)
    ):
        raise SystemExit(f"error: {where} {endpoint!r} is not a URL (like http://localhost:4566)")


def check_target_flags(args: argparse.Namespace, name: str | None, flag: str) -> None:
    """Refuse target flags that do not go together (before a command reads its file: a
    large one takes a while)."""
    if args.endpoint_url is not None:
        check_endpoint(args.endpoint_url, "--endpoint-url")
    if name is not None and args.outputs is not None:
        # Which one was meant is a guess: records could go to AWS instead of the stack.
        raise SystemExit(
            f"error: --outputs and {flag} do not go together: {flag} names a resource on AWS "
            "(or at --endpoint-url, with --region); --outputs alone targets the local stack"
        )


def resolve_target(
    args: argparse.Namespace, name: str | None, flag: str, from_outputs: Callable[[dict[str, Any]], str]
) -> Target:
    """A command's target: ``name`` when its ``flag`` was given (AWS, or --endpoint-url),
    else the local stack's resource picked from its outputs file, with the stack's endpoint,
    region and test credentials. The stack must be running: an outputs file outlives it."""
    check_target_flags(args, name, flag)
    if name is not None:
        return Target(name, {"region_name": args.region, "endpoint_url": args.endpoint_url})
    args.outputs = args.outputs or LOCAL_OUTPUTS
    if args.outputs.is_dir():
        raise SystemExit(
            f"error: {args.outputs} is a directory: --outputs takes the file `streamrec run` wrote"
        )
    if not args.outputs.is_file():
        where = f" (in {Path.cwd()})" if not args.outputs.is_absolute() else ""
        raise SystemExit(
            f"error: {args.outputs} not found{where}: start the local stack (`streamrec run`, which "
            f"writes it in the folder it runs in), run this command in that folder, or pass "
            f"--outputs FILE or {flag}"
        )
    try:
        outputs = json.loads(args.outputs.read_text(encoding="utf-8"))
        name = from_outputs(outputs)
    except OSError as error:
        raise SystemExit(f"error: cannot read {args.outputs}: {error.strerror or error}") from None
    except (ValueError, KeyError, TypeError):
        raise SystemExit(
            f"error: {args.outputs} is not an outputs file of `streamrec run`: "
            f"start the local stack (`streamrec run`) or pass {flag}"
        ) from None
    if args.region is not None and outputs.get("region") and args.region != outputs["region"]:
        # moto keeps each region apart: the stack's resources exist in its own region only.
        raise SystemExit(
            f"error: the local stack of {args.outputs} is in region {outputs.get('region')}, so "
            f"--region {args.region} would find none of its resources: leave --region out, or "
            f"name a resource on AWS with {flag}"
        )
    client_kwargs: dict[str, Any] = {
        "region_name": args.region or outputs.get("region"),
        "endpoint_url": args.endpoint_url or outputs.get("endpoint_url"),
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    local_stack = None if args.endpoint_url else outputs.get("endpoint_url")
    if local_stack:
        check_endpoint(local_stack, f"the endpoint_url of {args.outputs}")
        # Without this check botocore retries the refused connection for 5-26 s, then fails
        # with a traceback.
        if not accepts_connections(local_stack):
            raise SystemExit(
                f"error: the local stack at {local_stack} is not running ({args.outputs} is from an "
                f"earlier run): start it (`streamrec run`) or pass {flag}"
            )
        answer = serves_moto(local_stack)
        if answer is None:
            seconds = LOCAL_STACK_ANSWER_SECONDS * LOCAL_STACK_ANSWER_ATTEMPTS
            raise SystemExit(
                f"error: the local stack at {local_stack} takes connections but did not answer "
                f"within {seconds:.0f} s (busy loading or replaying?): try again, or pass {flag}"
            )
        if not answer:
            raise SystemExit(
                f"error: the local stack at {local_stack} is not running ({args.outputs} is from an "
                f"earlier run, and another program now listens there): start it (`streamrec run`) "
                f"or pass {flag}"
            )
        from botocore.config import Config

        # A refused connection means the stack stopped: retrying only delays the error.
        client_kwargs["config"] = Config(retries={"mode": "standard", "max_attempts": 2})
    return Target(name, client_kwargs, local_stack)
