"""The one place that creates the Powertools logger (configured by POWERTOOLS_* variables),
and the metrics its lines carry.

Metrics go out in CloudWatch's embedded metric format (EMF) on the log lines that already
hold the figures ("ingested batch"): CloudWatch Logs extracts them from a Lambda function's
log group by itself, so there is no second line and no PutMetricData call. Powertools'
``Metrics`` would print a line of its own, and it keeps one metric set per class, which the
local stack's functions (threads of one process) would share and flush for each other.
"""

import time
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger

logger = Logger()

METRICS_NAMESPACE = "streamrec"
# Each function's metrics apart (its name carries the stack's: two stacks in one account
# do not mix); inject_lambda_context puts the key on every line of an invocation.
METRICS_DIMENSION = "function_name"


def embedded_metrics(line: Mapping[str, Any], units: Mapping[str, str]) -> dict[str, Any]:
    """The ``_aws`` key that makes a log line holding ``line`` an EMF record: each key of
    ``units`` whose value in ``line`` is a number becomes a metric of that unit (``Count``,
    ``Seconds``, ...) in :data:`METRICS_NAMESPACE`, by function. Outside an invocation (no
    function name on the logger: tests, scripts), none: CloudWatch would reject the record."""
    function_name = logger.get_current_keys().get(METRICS_DIMENSION)
    measured = [
        {"Name": name, "Unit": unit}
        for name, unit in units.items()
        if isinstance(line.get(name), int | float) and not isinstance(line.get(name), bool)
    ]
    if not function_name or not measured:
        return {}
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {"Namespace": METRICS_NAMESPACE, "Dimensions": [[METRICS_DIMENSION]], "Metrics": measured}
            ],
        }
    }
