"""An admin action's log line names who did it, as API Gateway's authorizer vouches for it."""

from __future__ import annotations

import pytest

from streamrec import http_api
from streamrec.http_api import caller
from tests.unit.conftest import FakeLambdaContext, import_handler, load_event

IAM = {"iam": {"userArn": "arn:aws:iam::123456789012:role/privacy-tool", "accountId": "123456789012"}}
JWT = {
    "jwt": {"claims": {"sub": "3f1c", "client_id": "backend-app", "scope": "streamrec/admin"}, "scopes": None}
}


@pytest.mark.parametrize(
    ("authorizer", "expected"),
    [
        (IAM, "arn:aws:iam::123456789012:role/privacy-tool"),
        (JWT, "jwt:3f1c (client backend-app)"),
        ({"jwt": {"claims": {"sub": "backend-app", "client_id": "backend-app"}}}, "jwt:backend-app"),
        (None, ""),
    ],
    ids=["iam", "jwt", "client-credentials", "local"],
)
def test_the_caller_is_the_authorizers_principal(authorizer, expected):
    event = load_event("api_delete_user.json")
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    assert caller(event) == expected


def test_forgetting_a_user_logs_the_caller(aws, monkeypatch):
    lines: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        http_api.logger, "info", lambda message, extra=None: lines.append((message, extra or {}))
    )
    event = load_event("api_delete_user.json")
    event["requestContext"]["authorizer"] = IAM
    reply = import_handler("api").lambda_handler(event, FakeLambdaContext())
    assert reply["statusCode"] == 204
    assert ("user forgotten", {"user_id": "user-0002", "caller": IAM["iam"]["userArn"]}) in lines
