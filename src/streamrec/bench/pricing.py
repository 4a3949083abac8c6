"""Dollars per million events and per million requests, from the measured units.

List prices, us-east-1, as known on 2026-11-28 from the AWS pricing pages named below
(this machine has no internet access: the figures were not re-read today and must be
checked before they are quoted):

* DynamoDB on-demand (aws.amazon.com/dynamodb/pricing/on-demand, after the 2024-11 cut):
  $0.625 per million write request units, $0.125 per million read request units.
* Lambda (aws.amazon.com/lambda/pricing): $0.20 per million requests, $0.0000166667 per
  GB-second (x86).
* Kinesis Data Streams provisioned (aws.amazon.com/kinesis/data-streams/pricing):
  $0.015 per shard-hour, $0.014 per million PUT payload units (25 KB each).
* API Gateway HTTP API (aws.amazon.com/api-gateway/pricing): $1.00 per million requests
  (first 300 million a month).
* Amazon Personalize (aws.amazon.com/personalize/pricing), recalled, NOT verified:
  real-time inference of a custom campaign $0.0556 per TPS-hour (first 20K TPS-hours a
  month; at least 1 TPS is provisioned and billed every hour, even when idle), training
  $0.24 per training hour, data ingestion $0.05 per GB.
"""

from __future__ import annotations

from typing import Any

PRICES_AS_OF = "2026-11-28 (recalled list prices, us-east-1; verify on the AWS pricing pages)"
DYNAMODB_PER_MILLION_WRU = 0.625
DYNAMODB_PER_MILLION_RRU = 0.125
LAMBDA_PER_MILLION_REQUESTS = 0.20
LAMBDA_PER_GB_SECOND = 0.0000166667
KINESIS_PER_SHARD_HOUR = 0.015
KINESIS_PER_MILLION_PUT_UNITS = 0.014
KINESIS_SHARD_RECORDS_PER_SECOND = 1000
HTTP_API_PER_MILLION_REQUESTS = 1.00
PERSONALIZE_PER_TPS_HOUR = 0.0556
PERSONALIZE_TRAINING_PER_HOUR = 0.24
PERSONALIZE_INGESTION_PER_GB = 0.05

# Assumptions (not measured on AWS): the latency of one DynamoDB call from Lambda, and the
# load at which shards are paid for (a shard is billed whether it is busy or not).
DYNAMODB_CALL_SECONDS = 0.005
SHARD_UTILISATION = 0.5
# Lambda gives a function CPU in proportion to its memory: one full vCPU at 1,769 MB.
LAMBDA_MB_PER_VCPU = 1769


def vcpu_share(memory_gb: float) -> float:
    """The share of a core a function of ``memory_gb`` gets (CPU-bound time stretches by 1/it)."""
    return min(1.0, memory_gb * 1024 / LAMBDA_MB_PER_VCPU)


def per_million_events(
    wru_per_event: float,
    rru_per_event: float,
    ingest: dict[str, float],
    similarity: dict[str, float],
    announcements_per_event: float,
    batch: int,
    similarity_batch: int,
) -> dict[str, Any]:
    """Cost of ingesting one million events, by service (USD).

    ``ingest`` and ``similarity``: ``cpu_s_per_event`` (botocore included),
    ``round_trips_per_event`` (the function's DynamoDB calls on its critical path:
    concurrent calls overlap) and ``memory_gb``."""
    million = 1e6
    dynamodb = wru_per_event * DYNAMODB_PER_MILLION_WRU + rru_per_event * DYNAMODB_PER_MILLION_RRU
    ingest_s = (
        ingest["cpu_s_per_event"] / vcpu_share(ingest["memory_gb"])
        + ingest["round_trips_per_event"] * DYNAMODB_CALL_SECONDS
    )
    similarity_s = (
        similarity["cpu_s_per_event"] / vcpu_share(similarity["memory_gb"])
        + similarity["round_trips_per_event"] * DYNAMODB_CALL_SECONDS
    )
    invocations = million / batch + announcements_per_event * million / similarity_batch
    lambda_cost = (
        ingest_s * ingest["memory_gb"] + similarity_s * similarity["memory_gb"]
    ) * million * LAMBDA_PER_GB_SECOND + invocations * LAMBDA_PER_MILLION_REQUESTS / million
    # Two streams: events, and changed-item announcements (each record < 25 KB = 1 PUT unit).
    put_units = (1.0 + announcements_per_event) * million
    shard_hours = put_units / (KINESIS_SHARD_RECORDS_PER_SECOND * SHARD_UTILISATION) / 3600.0
    kinesis = put_units / million * KINESIS_PER_MILLION_PUT_UNITS + shard_hours * KINESIS_PER_SHARD_HOUR
    return {
        "dynamodb": dynamodb,
        "lambda": lambda_cost,
        "kinesis": kinesis,
        "total": dynamodb + lambda_cost + kinesis,
        # One full batch of the ingest, as the template sizes the function, and the rates a
        # shard's ingest and the single similarity consumer keep up with (one batch at a time).
        "ingest_batch_seconds": ingest_s * batch,
        "ingest_events_per_s_per_shard": 1.0 / ingest_s,
        "similarity_events_per_s": 1.0 / similarity_s,
        "assumptions": (
            f"Lambda ingest {ingest['memory_gb']:.2f} GB ({vcpu_share(ingest['memory_gb']):.2f} vCPU), "
            f"similarity {similarity['memory_gb']:.2f} GB ({vcpu_share(similarity['memory_gb']):.2f} vCPU); "
            "duration = measured CPU (botocore included) / that share + "
            f"{DYNAMODB_CALL_SECONDS * 1000:g} ms per DynamoDB call on the function's critical path "
            f"(measured: concurrent calls overlap); shards {SHARD_UTILISATION:.0%} busy"
        ),
    }


def per_million_requests(
    rru_per_request: float,
    compute_s_per_request: float,
    round_trips: float,
    memory_gb: float,
    cpu_s_per_call: float = 0.0,
) -> dict[str, Any]:
    """Cost of one million recommendation requests (USD); ``cpu_s_per_call`` is botocore's
    CPU per DynamoDB call, which ``compute_s_per_request`` (in-memory scoring) leaves out."""
    million = 1e6
    dynamodb = rru_per_request * DYNAMODB_PER_MILLION_RRU
    cpu = (compute_s_per_request + round_trips * cpu_s_per_call) / vcpu_share(memory_gb)
    seconds = (cpu + round_trips * DYNAMODB_CALL_SECONDS) * million
    lambda_cost = seconds * memory_gb * LAMBDA_PER_GB_SECOND + LAMBDA_PER_MILLION_REQUESTS
    api = HTTP_API_PER_MILLION_REQUESTS
    return {
        "dynamodb": dynamodb,
        "lambda": lambda_cost,
        "api_gateway": api,
        "total": dynamodb + lambda_cost + api,
    }


def personalize_comparison() -> dict[str, Any]:
    """Amazon Personalize for the same requests, at the recalled list prices."""
    tps_hours_per_million = 1e6 / 3600.0
    return {
        "per_million_requests_fully_used": tps_hours_per_million * PERSONALIZE_PER_TPS_HOUR,
        "idle_minimum_per_month": 1 * 24 * 30 * PERSONALIZE_PER_TPS_HOUR,
        "training_per_hour": PERSONALIZE_TRAINING_PER_HOUR,
        "ingestion_per_gb": PERSONALIZE_INGESTION_PER_GB,
        "note": "recalled list prices, not verified here; excludes training hours (per retrain)",
    }
