"""With JwtUserClaim, a shopper's token (no admin scope) reads only its own user's lists:
the user routes answer 403 for any other user, the shop's admin token and IAM callers read
any, and without the setting nothing changes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streamrec.http_api import foreign_user
from streamrec.settings import Settings
from tests.unit.conftest import FakeLambdaContext, import_handler, load_event

USER_ROUTES = ["api_profile.json", "api_recommendations.json", "coupons_get.json", "api_cross_sell_user.json"]


def _token(sub: str | None, scopes: list[str] | None = None, scope_claim: str = "streamrec/read") -> dict:
    claims = {"scope": scope_claim, "client_id": "shop-web"} | ({"sub": sub} if sub is not None else {})
    return {"jwt": {"claims": claims, "scopes": scopes}}


def _call(handler: Any, name: str, authorizer: dict | None, user_id: str | None = None) -> dict:
    event = load_event(name)
    if user_id is not None:
        event["pathParameters"]["user_id"] = user_id
        event["rawPath"] = event["rawPath"].replace(load_event(name)["pathParameters"]["user_id"], user_id)
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    return handler.lambda_handler(event, FakeLambdaContext())


@pytest.fixture
def checked(aws, monkeypatch):
    monkeypatch.setenv("JWT_USER_CLAIM", "sub")
    return import_handler("api")  # settings are read at cold start


@pytest.mark.parametrize("name", USER_ROUTES)
def test_a_shopper_token_reads_only_its_own_user(checked, name):
    own = load_event(name)["pathParameters"]["user_id"]
    assert _call(checked, name, _token(own, ["streamrec/read"]))["statusCode"] == 200
    refused = _call(checked, name, _token(own, ["streamrec/read"]), user_id="user-0999")
    assert refused["statusCode"] == 403
    assert json.loads(refused["body"]) == {
        "error": "forbidden",
        "message": "the token may name only its own user (its sub claim), not user-0999",
    }


def test_the_admin_scope_and_iam_read_any_user(checked):
    other = "user-0999"
    admin = _token("backend-app", ["streamrec/admin"])
    # API Gateway may pass no scopes list: the token's own scope claim then counts.
    admin_by_claim = _token("backend-app", None, scope_claim="streamrec/read streamrec/admin")
    iam = {"iam": {"userArn": "arn:aws:iam::123456789012:role/shop-backend"}}
    for authorizer in (admin, admin_by_claim, iam, None):
        for name in USER_ROUTES:
            assert _call(checked, name, authorizer, user_id=other)["statusCode"] == 200, (name, authorizer)


def test_a_posted_cart_names_the_tokens_user_or_none(checked):
    event = load_event("api_cross_sell_post.json")
    event["requestContext"]["authorizer"] = _token("user-0013", ["streamrec/read"])
    assert checked.lambda_handler(event, FakeLambdaContext())["statusCode"] == 200  # no user_id
    for user_id, status in [("user-0013", 200), ("user-0001", 403)]:
        event["body"] = json.dumps(
            {**json.loads(load_event("api_cross_sell_post.json")["body"]), "user_id": user_id}
        )
        assert checked.lambda_handler(event, FakeLambdaContext())["statusCode"] == status, user_id


def test_a_token_without_the_claim_names_no_user(checked):
    reply = _call(checked, "api_profile.json", _token(None, ["streamrec/read"]))
    assert reply["statusCode"] == 403
    assert json.loads(reply["body"])["message"] == "the token has no sub claim, so it may name no user"


@pytest.mark.parametrize(
    "authorizer",
    [
        {"claims": {"sub": "user-0013"}, "scopes": None},  # payload 1.0's flat claims
        {"lambda": {"user": "user-0013"}},  # a Lambda authorizer's context
    ],
)
def test_an_authorizer_of_another_kind_names_no_user(checked, authorizer):
    # The check cannot find a shopper's claim there: it refuses rather than let any user be read.
    reply = _call(checked, "api_profile.json", authorizer, user_id="user-0999")
    assert reply["statusCode"] == 403
    assert json.loads(reply["body"])["message"] == (
        "the request's authorizer is neither a JWT authorizer's (payload 2.0) nor IAM, "
        "so with JWT_USER_CLAIM=sub it may name no user"
    )


def test_without_the_setting_any_token_reads_any_user(aws):
    handler = import_handler("api")
    assert _call(handler, "api_profile.json", _token("someone-else", ["streamrec/read"]))["statusCode"] == 200


@pytest.mark.parametrize(
    "claims",
    [
        {"scope": "streamrec/read streamrec/admin"},  # Cognito
        {"scp": "streamrec/read streamrec/admin"},  # Okta, Entra
        {"scope": "[streamrec/read streamrec/admin]"},  # an array, as API Gateway passes one
    ],
)
def test_the_admin_scope_is_found_in_the_tokens_claims_when_api_gateway_gives_no_list(claims):
    event = {
        "requestContext": {"authorizer": {"jwt": {"claims": {"sub": "backend", **claims}, "scopes": None}}}
    }
    assert foreign_user(event, "u2", Settings(jwt_user_claim="sub")) == ""
    claims = {name: value.replace("streamrec/admin", "") for name, value in claims.items()}
    event["requestContext"]["authorizer"]["jwt"]["claims"] = {"sub": "backend", **claims}
    assert foreign_user(event, "u2", Settings(jwt_user_claim="sub")) != ""


def test_the_admin_scope_comes_from_the_environment(aws, monkeypatch):
    monkeypatch.setenv("JWT_USER_CLAIM", "sub")
    monkeypatch.setenv("JWT_ADMIN_SCOPE", "shop/admin")  # the template passes JwtAdminScope
    handler = import_handler("api")
    assert _call(handler, "api_profile.json", _token("backend", ["shop/admin"]))["statusCode"] == 200
    assert _call(handler, "api_profile.json", _token("backend", ["streamrec/admin"]))["statusCode"] == 403


def test_a_custom_claim_and_admin_scope():
    settings = Settings(jwt_user_claim="custom:shop_user_id", jwt_admin_scope="shop/admin")
    event = {
        "requestContext": {"authorizer": {"jwt": {"claims": {"custom:shop_user_id": "u1"}, "scopes": ["r"]}}}
    }
    assert foreign_user(event, "u1", settings) == ""
    assert "custom:shop_user_id claim" in foreign_user(event, "u2", settings)
    event["requestContext"]["authorizer"]["jwt"]["scopes"] = ["shop/admin"]
    assert foreign_user(event, "u2", settings) == ""


def test_the_claim_parameter_takes_namespaced_claims_only():
    from pathlib import Path

    from streamrec.local.template import TemplateError, load_template

    template = Path(__file__).resolve().parents[2] / "template.yaml"
    for claim in ("sub", "custom:shop_user_id", "https://shop.example/user_id"):
        environment = load_template(template, parameter_overrides={"JwtUserClaim": claim, "ApiAuth": "JWT"})
        assert environment.functions["ApiFunction"].environment["JWT_USER_CLAIM"] == claim
    with pytest.raises(TemplateError, match="JwtUserClaim"):
        load_template(template, parameter_overrides={"JwtUserClaim": "user id"})
