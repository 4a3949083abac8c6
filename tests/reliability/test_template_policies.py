"""The template: cfn-lint clean, translatable by SAM in both ApiAuth modes, every data route
authorized, and each function's IAM policy granting exactly the actions and resources its
code uses.

"Uses" is measured, not declared: each handler runs on the in-process moto account over
the sample events of events/ (a crash between the count and user writes makes the ingest
re-read its replay guards, a poison record makes it send a dead letter), every AWS call is
recorded with the function that made it, and the recorded (action, resource) pairs must
equal the pairs the template's policy statements grant.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.client import BaseClient

from streamrec.local.template import load_raw_template
from streamrec.reliability.sandbox import sandbox
from streamrec.repositories.base import RepositoryError
from tests.unit.conftest import kinesis_event

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"
# IAM actions of the API operations whose name differs from the action's.
ACTION_OF = {"sqs:SendMessageBatch": "sqs:SendMessage"}


def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def _with_poison_record(event: dict[str, Any]) -> dict[str, Any]:
    """The Kinesis event plus one record that is not JSON (the handler dead-letters it)."""
    poison = json.loads(json.dumps(event["Records"][-1]))
    sequence = str(int(poison["kinesis"]["sequenceNumber"]) + 1)
    poison["kinesis"].update(sequenceNumber=sequence, data=base64.b64encode(b"{not json").decode())
    poison["eventID"] = poison["eventID"].split(":", 1)[0] + ":" + sequence
    return {"Records": [*event["Records"], poison]}


def _fresh_views() -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            "event_id": f"fresh-{n}",
            "event_type": "view",
            "user_id": f"user-01{n}",
            "item_id": "headlamp",
            "timestamp": now - 60 + n,
            "category": "camping",
        }
        for n in range(3)
    ]


def _functions(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in raw["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def _granted(function: dict[str, Any]) -> set[tuple[str, str]]:
    """(action, logical id) pairs of a function's inline policy statements."""
    pairs: set[tuple[str, str]] = set()
    for policy in function["Properties"].get("Policies", []):
        assert isinstance(policy, dict) and "Statement" in policy, f"only inline statements: {policy!r}"
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            for resource in resources:
                assert isinstance(resource, dict) and "Fn::GetAtt" in resource, (
                    f"resources must name a resource of the template, not {resource!r}"
                )
                logical, attribute = resource["Fn::GetAtt"]
                assert attribute == "Arn"
                pairs.update((action, logical) for action in actions)
    return pairs


class CallRecorder:
    """Records (function, IAM action, resource logical id) of every AWS call."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.function: str | None = None
        self.calls: dict[str, set[tuple[str, str]]] = defaultdict(set)

    @contextmanager
    def installed(self) -> Iterator[CallRecorder]:
        original = BaseClient._make_api_call
        recorder = self

        def make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            if recorder.function is not None:
                action = f"{client.meta.service_model.endpoint_prefix}:{operation}"
                for target in recorder._targets(params):
                    recorder.calls[recorder.function].add((ACTION_OF.get(action, action), target))
                # A transaction is authorised action by action on each table (a Put by PutItem).
                for request in params.get("TransactItems", []):
                    for kind, item in request.items():
                        table = recorder.names.get(item["TableName"], f"<unknown {item['TableName']}>")
                        recorder.calls[recorder.function].add((f"dynamodb:{kind}Item", table))
            return original(client, operation, params)

        BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        try:
            yield self
        finally:
            BaseClient._make_api_call = original  # type: ignore[method-assign]

    def _targets(self, params: dict[str, Any]) -> list[str]:
        names = []
        if "TableName" in params:
            names.append(params["TableName"])
        names += list(params.get("RequestItems", {}))
        if "StreamName" in params:
            names.append(params["StreamName"])
        if "QueueUrl" in params:
            names.append(params["QueueUrl"].rsplit("/", 1)[-1])
        return [self.names.get(name, f"<unknown {name}>") for name in names]

    @contextmanager
    def as_function(self, name: str) -> Iterator[None]:
        self.function = name
        try:
            yield
        finally:
            self.function = None


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return load_raw_template(TEMPLATE)


def _define_coupon(table: str, coupon_id: str, budget: int = 0, valid_to: int = 4_000_000_000) -> None:
    """Written with a client of its own: not a call of the function being recorded."""
    import boto3

    from streamrec.domain.coupons import parse_coupon
    from streamrec.repositories.dynamodb import DynamoCouponRepository, DynamoTable

    spec = parse_coupon(
        coupon_id,
        {
            "scope": {"category": "camping"},
            "discount": {"kind": "percent", "value": 10},
            "valid_from": 1_700_000_000,
            "valid_to": valid_to,
            "budget": budget,
        },
    )
    DynamoCouponRepository(DynamoTable(table, boto3.client("dynamodb"))).put(coupon_id, spec)


def _split_out_of_stock_list(table: str) -> None:
    """An #out_of_stock list too large for one row (split into parts), written with a
    client of its own."""
    import boto3

    from streamrec.domain.model import OUT_OF_STOCK_ROW
    from streamrec.repositories.dynamodb import DynamoSimilarityRepository, DynamoTable

    repository = DynamoSimilarityRepository(DynamoTable(table, boto3.client("dynamodb")))
    gone = repository.get_list(OUT_OF_STOCK_ROW)
    gone.items = sorted([*gone.items, *((f"sold-out-{n:05d}", 0.0) for n in range(4000))])
    repository.put_list(OUT_OF_STOCK_ROW, gone)


def _norm_computed_long_ago(table: str, item_id: str) -> None:
    """A catalog record whose norm predates its catalog (written before norms recorded the
    document count they were computed at): the similarity function computes it again and
    writes it back."""
    import boto3

    boto3.client("dynamodb").update_item(
        TableName=table, Key={"item_id": {"S": item_id}}, UpdateExpression="REMOVE norm_documents"
    )


@contextmanager
def _a_list_write_in_flight_once() -> Iterator[None]:
    """The first read of a split list's parts finds one changed since its head was read (a
    write landed between the two reads): the reader then reads the list whole, consistently."""
    from streamrec.repositories.dynamodb import DynamoSimilarityRepository

    original = DynamoSimilarityRepository._fill_parts
    pending = [True]

    def fill_parts(self: Any, found: Any, split: Any, consistent: bool) -> list[str]:
        if pending:
            pending.clear()
            return sorted(split)
        return original(self, found, split, consistent)

    DynamoSimilarityRepository._fill_parts = fill_parts  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoSimilarityRepository._fill_parts = original  # type: ignore[method-assign]
    assert not pending, "the API read a split list"


@pytest.fixture(scope="module")
def used() -> dict[str, set[tuple[str, str]]]:
    """What each function's code calls, measured on the sample events."""
    from streamrec.repositories.dynamodb import DynamoUserRepository

    with sandbox(TEMPLATE) as box:
        t = box.template
        names = {table.name: k for k, table in t.tables.items()}
        names.update({stream.name: k for k, stream in t.streams.items()})
        names.update({queue.name: k for k, queue in t.queues.items()})
        recorder = CallRecorder(names)
        original_save = DynamoUserRepository.save_many
        failures = {"left": 1}

        def save_many_failing_once(self: Any, states: Any) -> None:
            if failures["left"]:
                failures["left"] -= 1
                raise RepositoryError("injected: users not written")
            original_save(self, states)

        with recorder.installed():
            DynamoUserRepository.save_many = save_many_failing_once  # type: ignore[method-assign]
            try:
                with recorder.as_function("IngestFunction"):
                    with pytest.raises(RepositoryError):
                        box.invoke("IngestFunction", _event("ingest_kinesis.json"))
                    box.invoke("IngestFunction", _event("ingest_kinesis.json"))  # the retry re-reads guards
                    # coupon_redeemed records of an exhausted coupon: the ingest reads that
                    # it is defined (BatchGetItem), the guarded UpdateItem fails its
                    # condition and the row is read (GetItem).
                    _define_coupon(t.tables["CouponsTable"].name, "camping-10")  # exhausted
                    box.invoke("IngestFunction", _event("ingest_coupon_redeemed.json"))
                    # Events stamped now (later records of the shard), so that the similarity function has
                    # trending lists to write.
                    box.invoke("IngestFunction", kinesis_event(_fresh_views(), first_sequence=6 * 10**51))
                    # item_upsert records: the catalog's reads, postings, count and records.
                    box.invoke("IngestFunction", _event("ingest_catalog_kinesis.json"))
            finally:
                DynamoUserRepository.save_many = original_save  # type: ignore[method-assign]
            with recorder.as_function("SimilarityFunction"):
                box.invoke("SimilarityFunction", _with_poison_record(_event("similarity_kinesis.json")))
                box.invoke(
                    "SimilarityFunction",
                    kinesis_event(
                        [
                            {
                                "item_id": "headlamp",
                                "changed": True,
                                "norm_changed": True,
                                "popular_changed": True,
                            }
                        ],
                        first_sequence=6 * 10**51,
                        template="similarity_kinesis.json",
                    ),
                )
                # An #out_of_stock list already split into parts: the catalog's items join
                # it by a transaction (content neighbours are written too).
                recorder.function = None
                _split_out_of_stock_list(t.tables["SimilarityTable"].name)
                _norm_computed_long_ago(t.tables["CatalogTable"].name, "tent-3-person-ultralight")
                recorder.function = "SimilarityFunction"
                box.invoke("SimilarityFunction", _event("similarity_catalog_kinesis.json"))
            # Last year's camping coupon: defining camping-10 again takes it out of the scope
            # index, by a transaction (ConditionCheckItem on the coupon).
            _define_coupon(t.tables["CouponsTable"].name, "camping-last-year", 10, valid_to=1_710_000_000)
            with recorder.as_function("ApiFunction"), _a_list_write_in_flight_once():
                for name in (
                    "api_recommendations.json",
                    "api_similar.json",
                    "api_health.json",
                    "api_delete_user.json",
                    "api_bad_id.json",
                    "coupon_put.json",
                    "coupons_get.json",
                    "coupon_put_bad.json",
                    "api_trending.json",
                    "api_trending_bad_window.json",
                    "api_demand.json",
                    "api_cross_sell_post.json",
                    "api_cross_sell_user.json",
                    "api_profile.json",
                ):
                    response = box.invoke("ApiFunction", _event(name))
                    assert response["statusCode"] < 500, (name, response)
        return dict(recorder.calls)


def test_each_function_is_granted_exactly_what_its_code_uses(
    raw: dict[str, Any], used: dict[str, set[tuple[str, str]]]
) -> None:
    functions = _functions(raw)
    assert set(used) == set(functions), "every function ran"
    for name, function in functions.items():
        granted = _granted(function)
        assert used[name] - granted == set(), f"{name} calls what its policy does not grant"
        assert granted - used[name] == set(), f"{name} is granted what its code never uses"
    # The resources a function may touch, for the record (and a readable failure).
    assert {r for _, r in used["ApiFunction"]} == {
        "UsersTable",
        "SimilarityTable",
        "CouponsTable",
        "TrendsTable",
    }
    assert {a for a, r in used["IngestFunction"] if r == "CouponsTable"} == {
        "dynamodb:BatchGetItem",  # the redeemed coupons are defined (ingest.known_coupons)
        "dynamodb:UpdateItem",
        "dynamodb:GetItem",
    }
    assert ("dynamodb:DeleteItem", "UsersTable") in used["ApiFunction"]


def _documented_grants() -> dict[str, set[tuple[str, str]]]:
    """The table of grants in docs/reliability-and-security.md ("Access control"):
    "| Fn | TableA, TableB: Action, Action; Queue: Action |"."""
    grants: dict[str, set[tuple[str, str]]] = {}
    for line in (ROOT / "docs" / "reliability-and-security.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].endswith("Function"):
            continue
        pairs = grants.setdefault(cells[0], set())
        for clause in cells[1].split(";"):
            resources, _, actions = clause.partition(":")
            service = "sqs" if "Queue" in resources else "kinesis" if "Stream" in resources else "dynamodb"
            for resource in resources.split(","):
                pairs.update((f"{service}:{a.strip()}", resource.strip()) for a in actions.split(","))
    return grants


def test_the_docs_list_exactly_the_templates_grants(raw: dict[str, Any]) -> None:
    functions = _functions(raw)
    assert _documented_grants() == {name: _granted(function) for name, function in functions.items()}


def test_cfn_lint_is_clean() -> None:
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which("cfn-lint")
    assert cfn_lint, "cfn-lint is installed with aws-sam-cli (the dev extra)"
    result = subprocess.run(
        [cfn_lint, str(TEMPLATE)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _resolve_if(value: Any, conditions: dict[str, bool]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, yes, no = value["Fn::If"]
            return _resolve_if(yes if conditions[name] else no, conditions)
        return {k: _resolve_if(v, conditions) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_if(v, conditions) for v in value]
    return value


@pytest.mark.parametrize("mode, scheme", [("IAM", "AWS_IAM"), ("JWT", "JwtAuthorizer")])
def test_sam_translates_the_template_and_every_data_route_is_authorized(
    mode: str, scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unittest.mock import MagicMock

    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    document = yaml_parse(TEMPLATE.read_text())
    for resource in document["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = "s3://bucket/key"  # what `sam package` uploads
    loader = MagicMock()
    loader.load.return_value = {}
    parameters = {"ApiAuth": mode, "JwtIssuer": "https://issuer.example", "JwtAudience": "client"}
    monkeypatch.setenv("AWS_DEFAULT_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    output = transform(document, parameters, loader)

    api = output["Resources"]["HttpApi"]
    assert api["Type"] == "AWS::ApiGatewayV2::Api"
    body = _resolve_if(api["Properties"]["Body"], {"UseJwtAuth": mode == "JWT", "UseCors": False})
    assert set(body["components"]["securitySchemes"]) == {scheme}
    if mode == "JWT":  # the backend's and the shoppers' app clients may both be audiences
        authorizer = body["components"]["securitySchemes"][scheme]["x-amazon-apigateway-authorizer"]
        assert authorizer["jwtConfiguration"]["audience"] == {"Fn::Split": [",", {"Ref": "JwtAudience"}]}
    routes = {
        (method.upper(), path): spec
        for path, methods in body["paths"].items()
        for method, spec in methods.items()
    }
    events = {
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"])
        for e in _functions(yaml.safe_load(yaml.safe_dump(load_raw_template(TEMPLATE))))["ApiFunction"][
            "Properties"
        ]["Events"].values()
    }
    assert set(routes) == events, "the OpenAPI body and the function's events list the same routes"
    # With JWT, a token needs the admin scope to change state, the read scope (or the admin
    # one) for everything else; IAM has no scopes.
    # GET /coupons/{coupon_id} shows budgets and redemption counts: the shop's, not its users'.
    admin_routes = {
        ("PUT", "/coupons/{coupon_id}"),
        ("GET", "/coupons/{coupon_id}"),
        ("DELETE", "/users/{user_id}"),
    }
    read = [{"Ref": "JwtReadScope"}, {"Ref": "JwtAdminScope"}] if mode == "JWT" else []
    admin = [{"Ref": "JwtAdminScope"}] if mode == "JWT" else []
    for (method, path), spec in routes.items():
        assert "x-amazon-apigateway-integration" in spec, (method, path)
        if path == "/health":
            assert not spec.get("security"), "health stays open"
        else:
            scopes = admin if (method, path) in admin_routes else read
            assert spec["security"] == [{scheme: scopes}], (method, path)
    assert {(m, p) for m, p in routes if m in ("PUT", "DELETE", "POST")} - admin_routes == {
        ("POST", "/cross-sell")
    }
    # CORS (CorsAllowOrigins) stays in the body SAM hands to API Gateway: none by default,
    # else every method of the routes and the headers a browser's request carries.
    cors = api["Properties"]["Body"]["x-amazon-apigateway-cors"]
    assert _resolve_if(cors, {"UseCors": False}) == {"Ref": "AWS::NoValue"}
    allowed = _resolve_if(cors, {"UseCors": True})
    assert allowed["allowOrigins"] == {"Fn::Split": [",", {"Ref": "CorsAllowOrigins"}]}
    assert {m for m, _ in routes} <= set(allowed["allowMethods"])
    assert {"authorization", "content-type"} <= set(allowed["allowHeaders"])
    _assert_operations_settings(output["Resources"])


def _assert_operations_settings(resources: dict[str, Any]) -> None:
    """Throttling on the API's stage, each function logging to a group that expires, and
    alarms on dead letters, the streams' lag or stall and API server errors."""
    (stage,) = [r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    assert stage["Properties"]["StageName"] == "$default"
    assert stage["Properties"]["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }
    # The one route open without credentials gets a small limit of its own.
    assert stage["Properties"]["RouteSettings"] == {
        "GET /health": {"ThrottlingRateLimit": 10, "ThrottlingBurstLimit": 20}
    }
    # An access log line for every request (the route, not the path, which holds user ids),
    # kept as long as the functions' logs.
    access = stage["Properties"]["AccessLogSettings"]
    assert access["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    line = json.loads(access["Format"])
    assert line["requestId"] == "$context.requestId" and line["route"] == "$context.routeKey"
    assert {"status", "caller", "sub", "authorizerError"} <= set(line) and "$context.path" not in access[
        "Format"
    ]
    assert resources["ApiAccessLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    for name in ("Ingest", "Similarity", "Api"):
        logging = resources[f"{name}Function"]["Properties"]["LoggingConfig"]
        assert logging == {"LogGroup": {"Ref": f"{name}LogGroup"}}
        group = resources[f"{name}LogGroup"]
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    alarms = {
        name: alarm["Properties"]
        for name, alarm in resources.items()
        if alarm["Type"] == "AWS::CloudWatch::Alarm"
    }
    watched = {
        (a["Namespace"], a["MetricName"], json.dumps(a["Dimensions"][0]["Value"]))
        for a in alarms.values()
        if "Metrics" not in a
    }
    # Records coming in while a function runs not once (a disabled mapping: no IteratorAge).
    stalled = {
        name: {
            query["Id"]: query.get("Expression")
            or json.dumps(query["MetricStat"]["Metric"]["Dimensions"][0]["Value"])
            for query in alarm["Metrics"]
        }
        for name, alarm in alarms.items()
        if "Metrics" in alarm
    }
    unread = "IF(FILL(invocations, 0) == 0, FILL(incoming, 0), 0)"
    assert stalled == {
        "IngestStalledAlarm": {
            "incoming": '{"Ref": "EventStream"}',
            "invocations": '{"Ref": "IngestFunction"}',
            "unread": unread,
        },
        "SimilarityStalledAlarm": {
            "incoming": '{"Ref": "ChangedItemsStream"}',
            "invocations": '{"Ref": "SimilarityFunction"}',
            "unread": unread,
        },
    }
    assert watched == {
        ("AWS/SQS", "NumberOfMessagesSent", '{"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}'),
        ("AWS/Lambda", "IteratorAge", '{"Ref": "IngestFunction"}'),
        ("AWS/Lambda", "IteratorAge", '{"Ref": "SimilarityFunction"}'),
        # A batch Lambda keeps retrying: errors in each of 15 minutes, not an hour behind.
        ("AWS/Lambda", "Errors", '{"Ref": "IngestFunction"}'),
        ("AWS/Lambda", "Errors", '{"Ref": "SimilarityFunction"}'),
        ("AWS/ApiGateway", "5xx", '{"Ref": "HttpApi"}'),
    }
    for name in ("IngestFailingAlarm", "SimilarityFailingAlarm"):
        assert (alarms[name]["EvaluationPeriods"], alarms[name]["DatapointsToAlarm"]) == (3, 3)
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == {
            "Fn::If": ["NotifyAlarms", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }
        assert alarm["OKActions"] == alarm["AlarmActions"], "the topic hears of the recovery too"
    # Each layer is named after its stack, and a deploy deletes the version it replaces
    # (SAM's default, Retain, would keep every version of every deploy).
    layers = [r for r in resources.values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    assert sorted(json.dumps(layer["Properties"]["LayerName"]) for layer in layers) == [
        json.dumps({"Fn::Sub": "${AWS::StackName}-app"}),
        json.dumps({"Fn::Sub": "${AWS::StackName}-scoring"}),
    ]
    assert [layer["DeletionPolicy"] for layer in layers] == ["Delete", "Delete"]


def test_each_function_runs_with_its_own_environment_only():
    # All functions share one process here: with the union of their variables, code reading
    # another function's (the ingest's stream name, say) would pass every test and fail on AWS.
    with sandbox(TEMPLATE) as box:
        for logical_id, function in box.template.functions.items():
            given = {name for name, value in box.environments[logical_id].items() if value is not None}
            # The log level is the sandbox's own (function_log_level), the same for all.
            assert given == set(function.environment) - {"POWERTOOLS_LOG_LEVEL"}, logical_id
        seen: dict[str, str] = {}
        box.handlers["ApiFunction"] = lambda event, context: seen.update(os.environ)
        box.invoke("ApiFunction", {})
        assert "CHANGED_ITEMS_STREAM" not in seen and "USERS_TABLE" in seen
