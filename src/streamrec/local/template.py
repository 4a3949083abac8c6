"""Read ``template.yaml`` and resolve it for a local, in-process stack.

The local pipeline must never keep a second, hand-written copy of the tables, streams or
event-source settings (CONVENTIONS.md, rule 10): everything here is derived from the SAM
template. Intrinsic functions are resolved the way CloudFormation would resolve them for a
stack named ``stack_name`` in :data:`REGION` / :data:`ACCOUNT_ID`, with local endpoints:

* physical names of tables, streams, queues and functions are ``f"{stack}-{LogicalId}"``
  (unless the resource sets ``TableName``, ``Name``, ``QueueName`` or ``FunctionName``);
* ``!Ref`` of a table or a stream gives its name, of a queue its local queue URL, of a
  parameter its override or ``Default``;
* ``!GetAtt X.Arn`` gives the ARN in the right format for the service;
* ``!Sub``, ``!Join``, ``!Select``, ``!Split`` and ``!FindInMap`` are supported;
* ``Conditions`` built from ``!Equals``, ``!Not``, ``!And``, ``!Or`` and ``!Condition`` on
  parameters are evaluated: a resource whose ``Condition`` is false is left out, and
  ``!If`` picks its branch (``AWS::NoValue`` drops the property);
* ``Rules`` are ignored (CloudFormation checks them at deploy time);
* an ``AWS::Serverless::HttpApi`` resource stands for the local HTTP API: ``!Ref`` gives
  the local API id, and ``HttpApi`` events may name it with ``ApiId: !Ref <it>``; the
  ``x-amazon-apigateway-cors`` of its ``DefinitionBody`` is the local API's CORS.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ACCOUNT_ID",
    "REGION",
    "FunctionDef",
    "CorsConfig",
    "HttpRoute",
    "KinesisEventSource",
    "LocalTemplate",
    "QueueDef",
    "StreamDef",
    "TableDef",
    "TemplateError",
    "load_raw_template",
    "load_template",
]

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
URL_SUFFIX = "amazonaws.com"
LOCAL_API_ID = "local"

# Lambda's documented defaults for a Kinesis event source mapping.
_DEFAULT_BATCH_SIZE = 100
_DEFAULT_RETRY_ATTEMPTS = -1  # infinite

_TABLE_TYPES = {"AWS::DynamoDB::Table"}
_STREAM_TYPES = {"AWS::Kinesis::Stream"}
_QUEUE_TYPES = {"AWS::SQS::Queue"}
_FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}
_LAYER_TYPES = {"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"}
_IMPLICIT_APIS = {"ServerlessHttpApi", "ServerlessRestApi"}
_HTTP_API_TYPES = {"AWS::Serverless::HttpApi"}

_NAME_PROPERTY = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Kinesis::Stream": "Name",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Serverless::LayerVersion": "LayerName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::S3::Bucket": "BucketName",
}

# Queue attributes that CreateQueue accepts, as named in AWS::SQS::Queue properties.
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
)

_NO_VALUE = object()
_SUB_PATTERN = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """The template cannot be loaded or resolved for the local stack."""


# --------------------------------------------------------------------------------------
# YAML loading with CloudFormation short-form tags
# --------------------------------------------------------------------------------------
class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns ``!Ref X``, ``!GetAtt A.B``, ``!Sub ...`` into long forms."""


# The same on libyaml's parser when PyYAML has it: the pure-Python one took 0.1-0.35 s per
# template read, which every test's stack and every command pays. A text libyaml refuses is
# read again by _CfnLoader, whose message quotes the line and names what it found there.
# (libyaml also reads a few texts the pure-Python parser refuses, such as a tab after "A:".)
_LIBYAML_SAFE_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FastCfnLoader(_LIBYAML_SAFE_LOADER):  # type: ignore[misc,valid-type]
    """:class:`_CfnLoader` on libyaml's parser."""


def _construct_intrinsic(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:
        raise TemplateError(f"cannot read !{tag_suffix} at {node.start_mark}")
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    return {f"Fn::{tag_suffix}": value}


for _loader in (_CfnLoader, _FastCfnLoader):
    _loader.add_multi_constructor("!", _construct_intrinsic)


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise TemplateError(
            f"template {path} is not UTF-8 text (byte {exc.start}): name a SAM template"
        ) from exc
    try:
        document = yaml.load(text, Loader=_FastCfnLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError:
        try:
            document = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
        except yaml.YAMLError as exc:
            raise TemplateError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path} has no Resources section")
    if not isinstance(document["Resources"], dict):
        raise TemplateError(f"{path}: Resources must be a mapping of logical ids to resources")
    return document


_NUMBER_TEXT = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")


def _check_number_parameter(name: str, value: Any, spec: dict[str, Any]) -> None:
    """A Number parameter's value, as CloudFormation checks it: a number within
    MinValue..MaxValue (written as a number: Python's float() also reads "nan", "inf" and
    "1_000", which would reach the functions as they are)."""
    if isinstance(value, bool) or not (isinstance(value, int | float) or _NUMBER_TEXT.fullmatch(str(value))):
        raise TemplateError(f"parameter {name}={value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):  # a YAML .nan or .inf, or 1e999
        raise TemplateError(f"parameter {name}={value!r} is not a number")
    low, high = spec.get("MinValue"), spec.get("MaxValue")
    if (low is not None and number < float(low)) or (high is not None and number > float(high)):
        bounds = f"{'' if low is None else low}..{'' if high is None else high}"
        raise TemplateError(f"parameter {name}={value!r} is not within {bounds}")


def load_raw_template(path: str | Path) -> dict[str, Any]:
    """The template as written, intrinsic functions in their long form (``{"Ref": ...}``,
    ``{"Fn::GetAtt": [...]}``), nothing resolved: for checks of the template itself."""
    return _load_yaml(Path(path))


# --------------------------------------------------------------------------------------
# Resolved resource descriptions
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TableDef:
    """A DynamoDB table of the template, ready for ``create_table(**create_kwargs)``."""

    logical_id: str
    name: str
    arn: str
    create_kwargs: dict[str, Any]
    ttl_attribute: str | None = None


@dataclass(frozen=True)
class StreamDef:
    """A Kinesis data stream of the template."""

    logical_id: str
    name: str
    arn: str
    shard_count: int
    retention_hours: int = 24


@dataclass(frozen=True)
class QueueDef:
    """An SQS queue of the template; ``url`` is the local queue URL."""

    logical_id: str
    name: str
    url: str
    arn: str
    attributes: dict[str, str]


@dataclass(frozen=True)
class KinesisEventSource:
    """A function's ``Type: Kinesis`` event, i.e. Lambda's event source mapping settings."""

    event_name: str
    function_logical_id: str
    stream: StreamDef
    starting_position: str
    batch_size: int
    maximum_batching_window_s: float
    report_batch_item_failures: bool
    maximum_retry_attempts: int  # -1 means infinite, as in Lambda
    bisect_batch_on_function_error: bool
    on_failure_queue: QueueDef | None
    enabled: bool = True


@dataclass(frozen=True)
class HttpRoute:
    """A function's ``Type: HttpApi`` event: one route of the implicit HTTP API."""

    event_name: str
    function_logical_id: str
    method: str  # upper case, or "ANY"
    path: str  # e.g. "/users/{user_id}/recommendations", or "$default"
    payload_format_version: str = "2.0"
    api_logical_id: str | None = None  # the AWS::Serverless::HttpApi named by ApiId, if any

    @property
    def route_key(self) -> str:
        """API Gateway's routeKey, e.g. ``"GET /health"`` (``"$default"`` for the catch-all)."""
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass(frozen=True)
class FunctionDef:
    """A Lambda function of the template, with its resolved configuration."""

    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str  # "module.func" as in the template
    handler_file: Path
    handler_function: str
    environment: dict[str, str]
    memory_mb: int
    timeout_s: int
    kinesis_sources: tuple[KinesisEventSource, ...] = ()
    http_routes: tuple[HttpRoute, ...] = ()


@dataclass(frozen=True)
class CorsConfig:
    """An HTTP API's CORS configuration (``x-amazon-apigateway-cors``); names in lower case."""

    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    max_age: int | None = None

    def allows(self, origin: str) -> bool:
        return "*" in self.allow_origins or origin in self.allow_origins

    def allow_origin(self, origin: str) -> str:
        """The Access-Control-Allow-Origin answered to an allowed ``origin``."""
        return "*" if "*" in self.allow_origins else origin


def _build_cors(r: _Resolver, logical_id: str, props: dict[str, Any]) -> CorsConfig | None:
    body = props.get("DefinitionBody")
    if not isinstance(body, dict) or "x-amazon-apigateway-cors" not in body:
        return None
    spec = r.resolve(body["x-amazon-apigateway-cors"])
    if spec is _NO_VALUE:
        return None
    if not isinstance(spec, dict):
        raise TemplateError(f"{logical_id}: x-amazon-apigateway-cors is not a mapping")

    def names(key: str) -> tuple[str, ...]:
        value = spec.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TemplateError(f"{logical_id}: x-amazon-apigateway-cors {key} is not a list of strings")
        return tuple(value)

    max_age = spec.get("maxAge")
    return CorsConfig(
        allow_origins=names("allowOrigins"),
        allow_methods=tuple(m.upper() for m in names("allowMethods")),
        allow_headers=tuple(h.lower() for h in names("allowHeaders")),
        max_age=int(max_age) if max_age is not None else None,
    )


@dataclass
class LocalTemplate:
    """A SAM template resolved for a local stack (see :func:`load_template`)."""

    path: Path
    stack_name: str
    endpoint_url: str
    region: str
    account_id: str
    parameters: dict[str, Any]
    conditions: dict[str, bool] = field(default_factory=dict)
    tables: dict[str, TableDef] = field(default_factory=dict)
    streams: dict[str, StreamDef] = field(default_factory=dict)
    queues: dict[str, QueueDef] = field(default_factory=dict)
    functions: dict[str, FunctionDef] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    # The HTTP API's CORS (None: none configured, as the template's default).
    cors: CorsConfig | None = None

    @property
    def kinesis_sources(self) -> list[KinesisEventSource]:
        """Every Kinesis event source of every function, in template order."""
        return [src for fn in self.functions.values() for src in fn.kinesis_sources]

    @property
    def http_routes(self) -> list[HttpRoute]:
        """Every HttpApi route of every function, in template order."""
        return [route for fn in self.functions.values() for route in fn.http_routes]

    def merged_environment(self) -> dict[str, str]:
        """Union of every function's environment; raises if two functions disagree on a name.

        All functions run in one local process, so they share one ``os.environ``.
        """
        merged: dict[str, str] = {}
        owner: dict[str, str] = {}
        for fn in self.functions.values():
            for key, value in fn.environment.items():
                if key in merged and merged[key] != value:
                    raise TemplateError(
                        f"environment variable {key} is {merged[key]!r} in {owner[key]} but "
                        f"{value!r} in {fn.logical_id}; the local stack runs every function in "
                        "one process and needs them to agree"
                    )
                merged[key] = value
                owner.setdefault(key, fn.logical_id)
        return merged


# --------------------------------------------------------------------------------------
# Intrinsic function resolution
# --------------------------------------------------------------------------------------
class _Resolver:
    """Resolves intrinsic functions against one template and one local stack."""

    def __init__(
        self,
        document: dict[str, Any],
        stack_name: str,
        endpoint_url: str,
        region: str,
        account_id: str,
        parameter_overrides: Mapping[str, Any],
    ) -> None:
        self.document = document
        self.resources: dict[str, dict[str, Any]] = document["Resources"]
        self.stack_name = stack_name
        self.endpoint_url = endpoint_url.rstrip("/")
        self.region = region
        self.account_id = account_id
        self.parameters = self._parameters(document.get("Parameters") or {}, parameter_overrides)
        declared = document.get("Conditions") or {}
        if not isinstance(declared, dict):
            raise TemplateError("Conditions must be a mapping")
        self._condition_specs: dict[str, Any] = declared
        self.conditions: dict[str, bool] = {}
        for name in declared:
            self.condition(name)

    # -- conditions -----------------------------------------------------------------------
    def condition(self, name: str, _visiting: tuple[str, ...] = ()) -> bool:
        """The value of the named condition (evaluated once, cycles refused)."""
        if name in self.conditions:
            return self.conditions[name]
        if name not in self._condition_specs:
            raise TemplateError(f"unknown condition {name!r}")
        if name in _visiting:
            raise TemplateError(f"condition {name!r} refers to itself")
        value = self._evaluate(self._condition_specs[name], (*_visiting, name))
        self.conditions[name] = value
        return value

    def _evaluate(self, spec: Any, visiting: tuple[str, ...]) -> bool:
        if not isinstance(spec, dict) or len(spec) != 1:
            raise TemplateError(f"a condition must be one condition function, got {spec!r}")
        ((key, arg),) = spec.items()
        if key == "Condition":
            return self.condition(str(arg), visiting)
        if key == "Fn::Equals":
            if not isinstance(arg, list) or len(arg) != 2:
                raise TemplateError(f"Fn::Equals takes two values, got {arg!r}")
            left, right = (self.resolve(v) for v in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            if not isinstance(arg, list) or len(arg) != 1:
                raise TemplateError(f"Fn::Not takes one condition, got {arg!r}")
            return not self._evaluate(arg[0], visiting)
        if key in ("Fn::And", "Fn::Or"):
            if not isinstance(arg, list) or not 2 <= len(arg) <= 10:
                raise TemplateError(f"{key} takes 2 to 10 conditions, got {arg!r}")
            values = [self._evaluate(v, visiting) for v in arg]
            return all(values) if key == "Fn::And" else any(values)
        raise TemplateError(f"{key} is not a condition function")

    # -- parameters -----------------------------------------------------------------------
    @staticmethod
    def _parameters(declared: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise TemplateError(f"parameter overrides for undeclared parameters: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in overrides:
                value = overrides[name]
            elif isinstance(spec, dict) and "Default" in spec:
                value = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no Default; pass it in parameter_overrides")
            allowed = spec.get("AllowedValues") if isinstance(spec, dict) else None
            if allowed is not None and str(value) not in {str(v) for v in allowed}:
                raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
            if isinstance(spec, dict) and spec.get("Type") == "Number":
                _check_number_parameter(name, value, spec)
            pattern = spec.get("AllowedPattern") if isinstance(spec, dict) else None
            if pattern is not None and not re.fullmatch(str(pattern), str(value)):
                what = spec.get("ConstraintDescription") or f"the pattern {pattern}"
                raise TemplateError(f"parameter {name}={value!r} is not {what}")
            values[name] = value
        return values

    # -- names and ARNs -------------------------------------------------------------------
    def resource(self, logical_id: str) -> dict[str, Any]:
        try:
            return self.resources[logical_id]
        except KeyError:
            raise TemplateError(f"reference to unknown resource or parameter {logical_id!r}") from None

    def physical_name(self, logical_id: str) -> str:
        res = self.resource(logical_id)
        prop = _NAME_PROPERTY.get(res.get("Type", ""))
        props = res.get("Properties") or {}
        explicit = props.get(prop) if prop else None
        name = str(self.resolve(explicit)) if explicit is not None else f"{self.stack_name}-{logical_id}"
        fifo = res.get("Type") in _QUEUE_TYPES and str(self.resolve(props.get("FifoQueue"))).lower() == "true"
        if fifo and not name.endswith(".fifo"):
            name += ".fifo"
        return name

    def queue_url(self, logical_id: str) -> str:
        return f"{self.endpoint_url}/{self.account_id}/{self.physical_name(logical_id)}"

    def arn(self, logical_id: str) -> str:
        rtype = self.resource(logical_id).get("Type", "")
        name = self.physical_name(logical_id)
        region, account = self.region, self.account_id
        if rtype in _TABLE_TYPES:
            return f"arn:aws:dynamodb:{region}:{account}:table/{name}"
        if rtype in _STREAM_TYPES:
            return f"arn:aws:kinesis:{region}:{account}:stream/{name}"
        if rtype in _QUEUE_TYPES:
            return f"arn:aws:sqs:{region}:{account}:{name}"
        if rtype in _FUNCTION_TYPES:
            return f"arn:aws:lambda:{region}:{account}:function:{name}"
        if rtype in _LAYER_TYPES:
            return f"arn:aws:lambda:{region}:{account}:layer:{name}:1"
        if rtype == "AWS::SNS::Topic":
            return f"arn:aws:sns:{region}:{account}:{name}"
        if rtype == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{name}"
        if rtype == "AWS::IAM::Role":
            return f"arn:aws:iam::{account}:role/{name}"
        raise TemplateError(f"no local ARN format for {logical_id} of type {rtype or '?'}")

    # -- Ref / GetAtt ---------------------------------------------------------------------
    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local"
            ),
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::Partition": "aws",
            "AWS::NotificationARNs": [],
        }
        if name in pseudo:
            return pseudo[name]
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in _IMPLICIT_APIS and name not in self.resources:
            return LOCAL_API_ID
        rtype = self.resource(name).get("Type", "")
        if rtype in _HTTP_API_TYPES:
            return LOCAL_API_ID
        if rtype in _QUEUE_TYPES:
            return self.queue_url(name)
        if rtype in _LAYER_TYPES or rtype == "AWS::SNS::Topic":
            return self.arn(name)
        return self.physical_name(name)

    def get_att(self, logical_id: str, attribute: str) -> Any:
        explicit_api = self.resources.get(logical_id, {}).get("Type") in _HTTP_API_TYPES
        if explicit_api or (logical_id in _IMPLICIT_APIS and logical_id not in self.resources):
            if attribute == "ApiEndpoint":
                return f"https://{LOCAL_API_ID}.execute-api.{self.region}.{URL_SUFFIX}"
            raise TemplateError(f"unsupported attribute {logical_id}.{attribute}")
        rtype = self.resource(logical_id).get("Type", "")
        if attribute == "Arn":
            return self.arn(logical_id)
        if rtype in _QUEUE_TYPES and attribute == "QueueName":
            return self.physical_name(logical_id)
        if rtype in _QUEUE_TYPES and attribute == "QueueUrl":
            return self.queue_url(logical_id)
        if rtype in _TABLE_TYPES and attribute == "StreamArn":
            return f"{self.arn(logical_id)}/stream/local"
        if rtype == "AWS::SNS::Topic" and attribute == "TopicName":
            return self.physical_name(logical_id)
        raise TemplateError(f"unsupported attribute {logical_id}.{attribute} (type {rtype or '?'})")

    # -- generic resolution ---------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic function inside ``value`` (recursively)."""
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(str(arg))
            if key.startswith("Fn::") or key == "Condition":
                return self._function(key, arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def _function(self, key: str, arg: Any) -> Any:
        if key == "Fn::GetAtt":
            parts = arg.split(".", 1) if isinstance(arg, str) else self.resolve(arg)
            if len(parts) != 2:
                raise TemplateError(f"malformed Fn::GetAtt {arg!r}")
            return self.get_att(str(parts[0]), str(parts[1]))
        if key == "Fn::Sub":
            return self._sub(arg)
        if key == "Fn::If":
            if not isinstance(arg, list) or len(arg) != 3:
                raise TemplateError(f"Fn::If takes [condition, if true, if false], got {arg!r}")
            return self.resolve(arg[1] if self.condition(str(arg[0])) else arg[2])
        if key == "Condition":
            return self.condition(str(arg))
        if key == "Fn::Join":
            delimiter, items = arg
            return str(delimiter).join(str(v) for v in self.resolve(items))
        if key == "Fn::Select":
            index, items = self.resolve(arg)
            return items[int(index)]
        if key == "Fn::Split":
            delimiter, source = self.resolve(arg)
            return str(source).split(str(delimiter))
        if key == "Fn::FindInMap":
            map_name, top, second = (str(v) for v in self.resolve(arg))
            try:
                return self.document["Mappings"][map_name][top][second]
            except (KeyError, TypeError):
                raise TemplateError(f"Fn::FindInMap {map_name}/{top}/{second} not found") from None
        raise TemplateError(f"{key} is not supported by the local stack")

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            template, variables = arg[0], self.resolve(arg[1])
        else:
            template, variables = arg, {}
        if not isinstance(template, str):
            raise TemplateError(f"malformed Fn::Sub {arg!r}")

        def replace(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(variables[expr])
            if "." in expr and not expr.startswith("AWS::"):
                logical_id, attribute = expr.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            return str(self.ref(expr))

        return _SUB_PATTERN.sub(replace, template)


# --------------------------------------------------------------------------------------
# Building the resource descriptions
# --------------------------------------------------------------------------------------
def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        raise TemplateError(f"environment values must be scalars, got {value!r}")
    return str(value)


def _build_table(r: _Resolver, logical_id: str, props: dict[str, Any]) -> TableDef:
    name = r.physical_name(logical_id)
    kwargs: dict[str, Any] = {"TableName": name}
    for key in ("KeySchema", "AttributeDefinitions"):
        if key not in props:
            raise TemplateError(f"table {logical_id} has no {key}")
        kwargs[key] = r.resolve(props[key])
    billing = r.resolve(props.get("BillingMode", "PROVISIONED"))
    kwargs["BillingMode"] = billing
    if billing == "PROVISIONED":
        throughput = r.resolve(props.get("ProvisionedThroughput"))
        if not throughput:
            raise TemplateError(f"table {logical_id} is PROVISIONED but has no ProvisionedThroughput")
        kwargs["ProvisionedThroughput"] = {k: int(v) for k, v in throughput.items()}
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification"):
        if key in props:
            kwargs[key] = r.resolve(props[key])
    ttl = r.resolve(props.get("TimeToLiveSpecification") or {})
    ttl_attribute = ttl.get("AttributeName") if ttl.get("Enabled") in (True, "true", "True") else None
    return TableDef(logical_id, name, r.arn(logical_id), kwargs, ttl_attribute)


def _build_stream(r: _Resolver, logical_id: str, props: dict[str, Any]) -> StreamDef:
    mode = (r.resolve(props.get("StreamModeDetails")) or {}).get("StreamMode", "PROVISIONED")
    shards = 1 if mode == "ON_DEMAND" else int(r.resolve(props.get("ShardCount", 1)))
    if shards < 1:
        raise TemplateError(f"stream {logical_id} has ShardCount {shards}")
    retention = int(r.resolve(props.get("RetentionPeriodHours", 24)))
    if not 24 <= retention <= 8760:
        raise TemplateError(f"stream {logical_id} has RetentionPeriodHours {retention} (24 to 8760)")
    return StreamDef(logical_id, r.physical_name(logical_id), r.arn(logical_id), shards, retention)


def _build_queue(r: _Resolver, logical_id: str, props: dict[str, Any]) -> QueueDef:
    attributes = {key: _env_value(r.resolve(props[key])) for key in _QUEUE_ATTRIBUTES if key in props}
    name, url, arn = r.physical_name(logical_id), r.queue_url(logical_id), r.arn(logical_id)
    return QueueDef(logical_id, name, url, arn, attributes)


def _handler_location(logical_id: str, code_dir: Path, handler: str) -> tuple[Path, str]:
    module, sep, func = handler.rpartition(".")
    if not sep or not module or not func:
        raise TemplateError(f"{logical_id}: Handler {handler!r} is not 'module.function'")
    path = code_dir.joinpath(*module.split(".")).with_suffix(".py")
    return path, func


def _build_kinesis_source(
    r: _Resolver,
    function_id: str,
    event_name: str,
    props: dict[str, Any],
    streams: dict[str, StreamDef],
    queues: dict[str, QueueDef],
) -> KinesisEventSource:
    where = f"{function_id}.Events.{event_name}"
    stream_arn = r.resolve(props.get("Stream"))
    stream = next((s for s in streams.values() if s.arn == stream_arn), None)
    if stream is None:
        raise TemplateError(f"{where}: Stream {stream_arn!r} is not a stream of this template")
    position = str(r.resolve(props.get("StartingPosition", "")))
    if position not in ("TRIM_HORIZON", "LATEST"):
        raise TemplateError(f"{where}: StartingPosition {position!r} is not supported locally")
    on_failure_queue = None
    destination = (r.resolve(props.get("DestinationConfig")) or {}).get("OnFailure")
    if destination:
        arn = destination.get("Destination")
        on_failure_queue = next((q for q in queues.values() if q.arn == arn), None)
        if destination.get("Type", "SQS") != "SQS" or on_failure_queue is None:
            raise TemplateError(f"{where}: only an SQS queue of this template is supported as OnFailure")
    response_types = r.resolve(props.get("FunctionResponseTypes") or [])
    return KinesisEventSource(
        event_name=event_name,
        function_logical_id=function_id,
        stream=stream,
        starting_position=position,
        batch_size=int(r.resolve(props.get("BatchSize", _DEFAULT_BATCH_SIZE))),
        maximum_batching_window_s=float(r.resolve(props.get("MaximumBatchingWindowInSeconds", 0))),
        report_batch_item_failures="ReportBatchItemFailures" in response_types,
        maximum_retry_attempts=int(r.resolve(props.get("MaximumRetryAttempts", _DEFAULT_RETRY_ATTEMPTS))),
        bisect_batch_on_function_error=bool(r.resolve(props.get("BisectBatchOnFunctionError", False))),
        on_failure_queue=on_failure_queue,
        enabled=bool(r.resolve(props.get("Enabled", True))),
    )


def _build_http_route(r: _Resolver, function_id: str, event_name: str, props: dict[str, Any]) -> HttpRoute:
    api_id = None
    if "ApiId" in props:
        raw = props["ApiId"]
        target = raw.get("Ref") if isinstance(raw, dict) and len(raw) == 1 else None
        if not isinstance(target, str) or r.resources.get(target, {}).get("Type") not in _HTTP_API_TYPES:
            raise TemplateError(
                f"{function_id}.Events.{event_name}: ApiId must be !Ref of an AWS::Serverless::HttpApi "
                "of this template"
            )
        api_id = target
    path = r.resolve(props.get("Path"))
    method = r.resolve(props.get("Method"))
    if path is None and method is None:
        path, method = "$default", "ANY"
    if not isinstance(path, str) or not isinstance(method, str):
        raise TemplateError(f"{function_id}.Events.{event_name}: HttpApi needs Path and Method")
    method = method.upper()
    version = str(r.resolve(props.get("PayloadFormatVersion", "2.0")))
    if version != "2.0":
        raise TemplateError(f"{function_id}.Events.{event_name}: only payload format 2.0 is emulated")
    if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
        method = "ANY"
    return HttpRoute(event_name, function_id, method, path, version, api_id)


def _build_function(
    r: _Resolver,
    logical_id: str,
    props: dict[str, Any],
    globals_fn: dict[str, Any],
    base_dir: Path,
    streams: dict[str, StreamDef],
    queues: dict[str, QueueDef],
) -> FunctionDef:
    def setting(key: str, default: Any = None) -> Any:
        return r.resolve(props.get(key, globals_fn.get(key, default)))

    code_uri = setting("CodeUri")
    handler = setting("Handler")
    if not isinstance(code_uri, str) or not isinstance(handler, str):
        raise TemplateError(f"{logical_id}: needs a local CodeUri directory and a Handler")
    code_dir = (base_dir / code_uri).resolve()
    handler_file, handler_function = _handler_location(logical_id, code_dir, handler)

    environment: dict[str, str] = {}
    for source in (globals_fn, props):
        variables = ((source.get("Environment") or {}).get("Variables")) or {}
        for key, value in r.resolve(variables).items():
            environment[str(key)] = _env_value(value)

    kinesis: list[KinesisEventSource] = []
    routes: list[HttpRoute] = []
    for event_name, event in (props.get("Events") or {}).items():
        etype = event.get("Type")
        eprops = event.get("Properties") or {}
        if etype == "Kinesis":
            kinesis.append(_build_kinesis_source(r, logical_id, event_name, eprops, streams, queues))
        elif etype == "HttpApi":
            routes.append(_build_http_route(r, logical_id, event_name, eprops))
        else:
            raise TemplateError(f"{logical_id}.Events.{event_name}: event type {etype!r} is not emulated")

    return FunctionDef(
        logical_id=logical_id,
        name=r.physical_name(logical_id),
        arn=r.arn(logical_id),
        code_dir=code_dir,
        handler=handler,
        handler_file=handler_file,
        handler_function=handler_function,
        environment=environment,
        memory_mb=int(setting("MemorySize", 128)),
        timeout_s=int(setting("Timeout", 3)),
        kinesis_sources=tuple(kinesis),
        http_routes=tuple(routes),
    )


def load_template(
    path: str | Path,
    *,
    stack_name: str = "streamrec-local",
    endpoint_url: str = "http://127.0.0.1:5000",
    parameter_overrides: Mapping[str, Any] | None = None,
    region: str = REGION,
    account_id: str = ACCOUNT_ID,
) -> LocalTemplate:
    """Load a SAM template and resolve its tables, streams, queues and functions.

    Args:
        path: the ``template.yaml`` file; ``CodeUri`` paths are relative to its directory.
        stack_name: prefix of every physical name (``f"{stack_name}-{LogicalId}"``).
        endpoint_url: the local AWS endpoint, used to build queue URLs.
        parameter_overrides: values for template parameters, instead of their ``Default``.
        region: region used in ARNs.
        account_id: account used in ARNs and queue URLs.

    Raises:
        TemplateError: the file is missing or invalid, or uses something not emulated.
    """
    path = Path(path).resolve()
    document = _load_yaml(path)
    r = _Resolver(document, stack_name, endpoint_url, region, account_id, parameter_overrides or {})
    result = LocalTemplate(
        path=path,
        stack_name=stack_name,
        endpoint_url=r.endpoint_url,
        region=region,
        account_id=account_id,
        parameters=dict(r.parameters),
        conditions=dict(r.conditions),
    )
    globals_fn = (document.get("Globals") or {}).get("Function") or {}
    for logical_id, res in r.resources.items():
        if not isinstance(res, dict):
            raise TemplateError(f"resource {logical_id} is not a mapping")
        rtype, props = res.get("Type"), res.get("Properties") or {}
        if "Condition" in res and not r.condition(str(res["Condition"])):
            continue
        if rtype in _TABLE_TYPES:
            result.tables[logical_id] = _build_table(r, logical_id, props)
        elif rtype in _STREAM_TYPES:
            result.streams[logical_id] = _build_stream(r, logical_id, props)
        elif rtype in _QUEUE_TYPES:
            result.queues[logical_id] = _build_queue(r, logical_id, props)
        elif rtype in _HTTP_API_TYPES:
            result.cors = _build_cors(r, logical_id, props) or result.cors
    for logical_id, res in r.resources.items():
        if "Condition" in res and not r.condition(str(res["Condition"])):
            continue
        if res.get("Type") == "AWS::Serverless::Function":
            result.functions[logical_id] = _build_function(
                r,
                logical_id,
                res.get("Properties") or {},
                globals_fn,
                path.parent,
                result.streams,
                result.queues,
            )
    for name, output in (document.get("Outputs") or {}).items():
        result.outputs[name] = r.resolve(output.get("Value")) if isinstance(output, dict) else None
    return result
