"""The local stack's view of template.yaml: everything derived from it, nothing hand-copied.

Expected values are read from the raw YAML here too, so that a template change never
needs a test change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from streamrec.local.template import LocalTemplate, TemplateError, load_template
from streamrec.settings import DEFAULT_COUPON_MODEL, Settings, load_settings

from .support import TEMPLATE

ENDPOINT = "http://127.0.0.1:4566"
STACK = "unit-stack"


class _TagsAsNone(yaml.SafeLoader):
    """Reads the template with every intrinsic function replaced by None."""


_TagsAsNone.add_multi_constructor("!", lambda loader, suffix, node: None)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_TagsAsNone)  # noqa: S506 - SafeLoader subclass


@pytest.fixture(scope="module")
def template() -> LocalTemplate:
    return load_template(TEMPLATE, stack_name=STACK, endpoint_url=ENDPOINT)


def _of_type(raw: dict[str, Any], rtype: str) -> dict[str, Any]:
    return {k: v for k, v in raw["Resources"].items() if v["Type"] == rtype}


def test_tables_come_from_the_template(raw: dict[str, Any], template: LocalTemplate) -> None:
    tables = _of_type(raw, "AWS::DynamoDB::Table")
    assert set(template.tables) == set(tables)
    for logical_id, resource in tables.items():
        props = resource["Properties"]
        table = template.tables[logical_id]
        assert table.name == f"{STACK}-{logical_id}"
        assert table.arn == f"arn:aws:dynamodb:us-east-1:123456789012:table/{STACK}-{logical_id}"
        kwargs = table.create_kwargs
        assert kwargs["TableName"] == table.name
        assert kwargs["KeySchema"] == props["KeySchema"]
        assert kwargs["AttributeDefinitions"] == props["AttributeDefinitions"]
        assert kwargs["BillingMode"] == props["BillingMode"]
        assert "PointInTimeRecoverySpecification" not in kwargs and "SSESpecification" not in kwargs


def test_streams_and_queues(raw: dict[str, Any], template: LocalTemplate) -> None:
    streams = _of_type(raw, "AWS::Kinesis::Stream")
    assert set(template.streams) == set(streams)
    defaults = {name: spec.get("Default") for name, spec in raw["Parameters"].items()}
    for logical_id, resource in streams.items():
        stream = template.streams[logical_id]
        assert stream.arn == f"arn:aws:kinesis:us-east-1:123456789012:stream/{STACK}-{logical_id}"
        count = resource["Properties"]["ShardCount"]
        assert stream.shard_count == (count if isinstance(count, int) else int(defaults["EventStreamShards"]))
        assert stream.retention_hours == int(defaults["StreamRetentionHours"])
    queues = _of_type(raw, "AWS::SQS::Queue")
    assert set(template.queues) == set(queues)
    for logical_id in queues:
        queue = template.queues[logical_id]
        assert queue.url == f"{ENDPOINT}/123456789012/{STACK}-{logical_id}"
        assert queue.arn == f"arn:aws:sqs:us-east-1:123456789012:{STACK}-{logical_id}"


def test_function_environment_merges_globals_and_own_variables(
    raw: dict[str, Any], template: LocalTemplate
) -> None:
    globals_env = raw["Globals"]["Function"]["Environment"]["Variables"]
    for logical_id, resource in _of_type(raw, "AWS::Serverless::Function").items():
        env = template.functions[logical_id].environment
        own = ((resource["Properties"].get("Environment") or {}).get("Variables")) or {}
        assert set(env) == set(globals_env) | set(own)
        for name, value in {**globals_env, **own}.items():
            if value is not None:  # a literal, not an intrinsic function
                assert env[name] == str(value)
    ingest = template.functions["IngestFunction"].environment
    assert ingest["USERS_TABLE"] == template.tables["UsersTable"].name
    assert ingest["CHANGED_ITEMS_STREAM"] == template.streams["ChangedItemsStream"].name
    assert ingest["DEAD_LETTER_QUEUE_URL"] == template.queues["DeadLetterQueue"].url
    assert ingest["SIMILARITY_MEASURE"] == str(raw["Parameters"]["SimilarityMeasure"]["Default"])
    merged = template.merged_environment()
    assert merged["CHANGED_ITEMS_STREAM"] == ingest["CHANGED_ITEMS_STREAM"]
    # The coupon parameters' defaults (empty CouponModel) give the built-in coupon model.
    api = load_settings(template.functions["ApiFunction"].environment)
    assert api.coupon_ranking == "model" and api.coupon_model == DEFAULT_COUPON_MODEL
    assert api.coupon_fill == Settings().coupon_fill
    # The blending parameters' defaults are the code's.
    defaults = Settings()
    assert (api.content_weight, api.content_slots, api.cold_item_weight) == (
        defaults.content_weight,
        defaults.content_slots,
        defaults.cold_item_weight,
    )


def test_kinesis_event_sources(raw: dict[str, Any], template: LocalTemplate) -> None:
    for logical_id, resource in _of_type(raw, "AWS::Serverless::Function").items():
        function = template.functions[logical_id]
        events = {
            n: e["Properties"]
            for n, e in resource["Properties"].get("Events", {}).items()
            if e["Type"] == "Kinesis"
        }
        assert {s.event_name for s in function.kinesis_sources} == set(events)
        for source in function.kinesis_sources:
            props = events[source.event_name]
            if props["BatchSize"] is None:
                # The similarity function's is the SimilarityBatchSize parameter (2000 by default).
                assert source.batch_size == int(raw["Parameters"]["SimilarityBatchSize"]["Default"])
            else:
                assert source.batch_size == props["BatchSize"]
            assert source.starting_position == props["StartingPosition"]
            assert source.maximum_batching_window_s == props.get("MaximumBatchingWindowInSeconds", 0)
            if "MaximumRetryAttempts" in props and props["MaximumRetryAttempts"] is None:
                # The ingest's is the IngestRetryAttempts parameter (-1 by default).
                assert source.maximum_retry_attempts == int(
                    raw["Parameters"]["IngestRetryAttempts"]["Default"]
                )
            else:
                assert source.maximum_retry_attempts == props.get("MaximumRetryAttempts", -1)
            assert source.bisect_batch_on_function_error == props.get("BisectBatchOnFunctionError", False)
            assert source.report_batch_item_failures == (
                "ReportBatchItemFailures" in props.get("FunctionResponseTypes", [])
            )
            assert source.stream.logical_id in template.streams
            if "DestinationConfig" in props:
                assert source.on_failure_queue is not None
                assert source.on_failure_queue.logical_id in template.queues
    event_stream = template.streams["EventStream"]
    assert [s.stream for s in template.kinesis_sources if s.function_logical_id == "IngestFunction"] == [
        event_stream
    ]


def test_http_routes(raw: dict[str, Any], template: LocalTemplate) -> None:
    expected = {
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"])
        for r in _of_type(raw, "AWS::Serverless::Function").values()
        for e in r["Properties"].get("Events", {}).values()
        if e["Type"] == "HttpApi"
    }
    assert {(r.method, r.path) for r in template.http_routes} == expected
    assert all(r.route_key == f"{r.method} {r.path}" for r in template.http_routes)


def test_handlers_and_settings(template: LocalTemplate) -> None:
    for function in template.functions.values():
        assert function.handler_file.name == function.handler.rsplit(".", 1)[0] + ".py"
        assert function.handler_file.parent == function.code_dir
        assert function.memory_mb > 0 and function.timeout_s > 0
    assert template.outputs["EventStreamName"] == template.streams["EventStream"].name
    assert template.outputs["ApiUrl"] == "https://local.execute-api.us-east-1.amazonaws.com"


def test_parameter_overrides(template: LocalTemplate) -> None:
    other = load_template(
        TEMPLATE,
        stack_name=STACK,
        endpoint_url=ENDPOINT,
        parameter_overrides={
            "SimilarityMeasure": "cosine",
            "EventStreamShards": 2,
            "StreamRetentionHours": 72,
        },
    )
    assert other.functions["ApiFunction"].environment["SIMILARITY_MEASURE"] == "cosine"
    assert other.streams["EventStream"].shard_count == 2
    assert {stream.retention_hours for stream in other.streams.values()} == {72}
    with pytest.raises(TemplateError, match="StreamRetentionHours"):
        load_template(TEMPLATE, parameter_overrides={"StreamRetentionHours": 200})
    with pytest.raises(TemplateError, match="not one of"):
        load_template(TEMPLATE, parameter_overrides={"SimilarityMeasure": "euclid"})
    with pytest.raises(TemplateError, match="undeclared"):
        load_template(TEMPLATE, parameter_overrides={"NoSuchParameter": 1})


SMALL = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Env: {Type: String, Default: dev}
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties: {VisibilityTimeout: 45}
  Stream:
    Type: AWS::Kinesis::Stream
    Properties: {Name: !Sub "events-${Env}", ShardCount: 1}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Handler: pkg.mod.handle
      Environment:
        Variables:
          A: !Sub "${AWS::StackName}/${Env}/${Queue.Arn}/${!Literal}"
          B: !Join ["-", [!Ref Env, !GetAtt Queue.QueueName]]
          C: !Select [1, !Split [",", "x,y,z"]]
          D: !Sub ["${X}!", {X: !Ref Stream}]
          E: true
      Events:
        Any:
          Type: HttpApi
          Properties: {Path: "/files/{proxy+}", Method: any}
"""


def test_intrinsic_functions(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(SMALL)
    t = load_template(path, stack_name="s", endpoint_url=ENDPOINT)
    env = t.functions["Fn"].environment
    assert env["A"] == "s/dev/arn:aws:sqs:us-east-1:123456789012:s-Queue/${Literal}"
    assert env["B"] == "dev-s-Queue"
    assert env["C"] == "y"
    assert env["D"] == "events-dev!"
    assert env["E"] == "true"
    assert t.streams["Stream"].name == "events-dev"
    assert t.queues["Queue"].attributes == {"VisibilityTimeout": "45"}
    fn = t.functions["Fn"]
    assert fn.handler_file == (tmp_path / "fn" / "pkg" / "mod.py").resolve()
    assert fn.handler_function == "handle"
    assert [(r.method, r.path, r.route_key) for r in fn.http_routes] == [
        ("ANY", "/files/{proxy+}", "ANY /files/{proxy+}")
    ]


@pytest.mark.parametrize(
    "snippet, message",
    [
        ("A: !Ref Nowhere", "unknown resource or parameter 'Nowhere'"),
        ("A: !GetAtt Queue.Colour", "unsupported attribute Queue.Colour"),
        ("A: !If [c, x, y]", "unknown condition 'c'"),
        ("A: !FindInMap [M, a, b]", "Fn::FindInMap M/a/b not found"),
    ],
)
def test_clear_errors(tmp_path: Path, snippet: str, message: str) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(SMALL.replace("E: true", snippet))
    with pytest.raises(TemplateError, match=message):
        load_template(path)


def test_missing_or_invalid_template(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="cannot read"):
        load_template(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("Resources: [\n")
    with pytest.raises(TemplateError, match="not valid YAML"):
        load_template(tmp_path / "bad.yaml")
    # The message quotes the line and names what was found there (libyaml's alone does not).
    (tmp_path / "alias.yaml").write_text("Resources:\n  A: *missing\n")
    with pytest.raises(TemplateError) as refused:
        load_template(tmp_path / "alias.yaml")
    assert "found undefined alias 'missing'" in str(refused.value)
    assert "line 2, column 6:\n      A: *missing\n         ^" in str(refused.value)
    (tmp_path / "none.yaml").write_text("Outputs: {}\n")
    with pytest.raises(TemplateError, match="has no Resources section"):
        load_template(tmp_path / "none.yaml")
    (tmp_path / "list.yaml").write_text("Resources:\n  - a\n")
    with pytest.raises(TemplateError, match="Resources must be a mapping of logical ids to resources"):
        load_template(tmp_path / "list.yaml")


def test_a_template_without_an_event_stream_is_named_in_template_terms(tmp_path: Path) -> None:
    from streamrec.local.stack import LocalStack, LocalStackError

    path = tmp_path / "template.yaml"
    path.write_text("Resources: {}\n")
    stack = LocalStack(path)
    stack._template = load_template(path)
    with pytest.raises(LocalStackError) as failed:
        stack.event_stream_name  # noqa: B018 - the property raises
    assert str(failed.value) == (
        f"cannot tell which stream of {stack._template.path} takes user events: the template needs "
        "an AWS::Kinesis::Stream named by its EventStreamName output (or exactly one stream)"
    )


CONDITIONAL = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Mode: {Type: String, Default: a, AllowedValues: [a, b]}
  Size: {Type: Number, Default: 2}
Conditions:
  IsB: !Equals [!Ref Mode, b]
  IsA: !Not [!Condition IsB]
  Big: !Equals [!Ref Size, 3]
  BigB: !And [!Condition IsB, !Condition Big]
  AOrBig: !Or [!Condition IsA, !Condition Big]
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
  OnlyB:
    Type: AWS::SQS::Queue
    Condition: IsB
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Handler: app.handle
      Environment:
        Variables:
          PICK: !If [IsB, bee, !If [AOrBig, ay, none]]
          DROP: !If [BigB, kept, !Ref AWS::NoValue]
      Events:
        Get:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Path: /x, Method: GET}
Outputs:
  Url: {Value: !Sub "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
"""


def test_conditions_pick_branches_and_drop_resources(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(CONDITIONAL)
    a = load_template(path, stack_name="s", endpoint_url=ENDPOINT)
    assert a.conditions == {"IsB": False, "IsA": True, "Big": False, "BigB": False, "AOrBig": True}
    assert "OnlyB" not in a.queues
    assert a.functions["Fn"].environment == {"PICK": "ay"}
    assert [(r.path, r.api_logical_id) for r in a.http_routes] == [("/x", "Api")]
    assert a.outputs["Url"] == "https://local.execute-api.us-east-1.amazonaws.com"
    b = load_template(
        path, stack_name="s", endpoint_url=ENDPOINT, parameter_overrides={"Mode": "b", "Size": 3}
    )
    assert "OnlyB" in b.queues
    assert b.functions["Fn"].environment == {"PICK": "bee", "DROP": "kept"}


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("IsA: !Not [!Condition IsB]", "IsA: !Not [!Condition IsA]", "refers to itself"),
        ("Big: !Equals [!Ref Size, 3]", "Big: !Equals [!Ref Size]", "Fn::Equals takes two values"),
        (
            "Properties: {ApiId: !Ref Api,",
            "Properties: {ApiId: !Ref OnlyB,",
            "ApiId must be !Ref of an AWS::Serverless::HttpApi",
        ),
    ],
)
def test_condition_errors_are_clear(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(CONDITIONAL.replace(old, new))
    with pytest.raises(TemplateError, match=message):
        load_template(path)


def test_the_api_routes_belong_to_the_explicit_http_api(template: LocalTemplate) -> None:
    assert {r.api_logical_id for r in template.http_routes} == {"HttpApi"}
    assert ("DELETE", "/users/{user_id}") in {(r.method, r.path) for r in template.http_routes}
    assert template.conditions == {
        "UseJwtAuth": False,
        "UseCors": False,
        "NotifyAlarms": False,
        "ReserveConcurrency": False,
    }
    jwt = load_template(TEMPLATE, parameter_overrides={"ApiAuth": "JWT", "ReserveStreamConcurrency": "yes"})
    assert jwt.conditions == {
        "UseJwtAuth": True,
        "UseCors": False,
        "NotifyAlarms": False,
        "ReserveConcurrency": True,
    }


def test_a_template_that_is_not_text_is_named(tmp_path):
    binary = tmp_path / "template.yaml"
    binary.write_bytes(b"Resources:\n  \xff\xfe: {}\n")
    with pytest.raises(TemplateError, match=f"template {binary} is not UTF-8 text"):
        load_template(binary)
