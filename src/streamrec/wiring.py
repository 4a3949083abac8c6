"""Composition root: builds the services on the DynamoDB adapters from settings.

Called by the handlers at cold start (module import), after settings are validated.
"""

from __future__ import annotations

from typing import Any, Literal

import boto3
from botocore.config import Config

from streamrec.domain.catalog import CatalogService
from streamrec.domain.coupons import CouponService
from streamrec.domain.ingest import IngestService
from streamrec.domain.recommend import RecommendationService
from streamrec.domain.similarity import SimilarityService
from streamrec.domain.trends import TrendsService
from streamrec.repositories.base import SimilarityRepository
from streamrec.repositories.cache import cache_config, cached_similarity
from streamrec.repositories.dynamodb import (
    WRITE_CONCURRENCY,
    DynamoCatalogRepository,
    DynamoCooccurrenceRepository,
    DynamoCouponRepository,
    DynamoItemStatsRepository,
    DynamoSimilarityRepository,
    DynamoTable,
    DynamoTrendsRepository,
    DynamoUserRepository,
    KinesisChangePublisher,
    SqsDeadLetterSink,
)
from streamrec.repositories.fast_reads import register_fast_reads
from streamrec.settings import Settings, require

# The API's DynamoDB calls give up sooner than the stream functions' (botocore's defaults:
# 60 s to connect and to read, and the template's 8 adaptive attempts): a caller is better
# served by a prompt 503 than by an answer past API Gateway's 30 s, and a DynamoDB call
# takes milliseconds. Standard retries: adaptive ones may also wait for a client-side quota.
API_CONNECT_TIMEOUT_SECONDS = 1.0
API_READ_TIMEOUT_SECONDS = 3.0
API_ATTEMPTS = 3
# botocore checks each request against the service model before sending it, walking every
# attribute value: a third to a half of a write call's CPU in botocore
# (docs/performance-and-cost.md), and the functions are CPU-bound. The requests are built by our own code from
# validated events, so the check only catches our bugs, and DynamoDB checks again: it refuses
# a bad request with a ValidationException or SerializationException, which the stream
# functions treat as deterministic, as they treated botocore's refusal (stream.is_transient).
# A parameter left None, which would be sent as null, is refused before sending (DynamoTable.call).
DYNAMODB_CLIENT_CONFIG = Config(parameter_validation=False)
# The stream functions' clients (DynamoDB, Kinesis, SQS): botocore waits 60 s to connect and
# 60 s for an answer, the functions' whole Timeout, so one stalled call would end the
# invocation (its batch retried from the start, the similarity function's 5 times at most)
# where a retry of the call alone, within the template's 8 attempts, would have got through.
STREAM_CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=20)


def dynamodb_client(config: Config | None = None) -> Any:
    """One DynamoDB client for all of a function's tables: each client costs tens of
    milliseconds at cold start, and boto3 clients are thread-safe. Its read responses are
    parsed the fast way (``repositories/fast_reads.py``), and its requests are not checked
    by botocore before sending (:data:`DYNAMODB_CLIENT_CONFIG`)."""
    merged = DYNAMODB_CLIENT_CONFIG.merge(STREAM_CLIENT_CONFIG if config is None else config)
    return register_fast_reads(boto3.client("dynamodb", config=merged))


def stream_client(service: Literal["kinesis", "sqs"]) -> Any:
    """A Kinesis or SQS client of a stream function (:data:`STREAM_CLIENT_CONFIG`)."""
    return boto3.client(service, config=STREAM_CLIENT_CONFIG)


def api_dynamodb_client() -> Any:
    """The API function's client: :func:`dynamodb_client` with short timeouts and few
    retries (set here, not by the environment: the local stack runs every function in one
    process, with one environment)."""
    return dynamodb_client(
        Config(
            connect_timeout=API_CONNECT_TIMEOUT_SECONDS,
            read_timeout=API_READ_TIMEOUT_SECONDS,
            retries={"mode": "standard", "total_max_attempts": API_ATTEMPTS},
        )
    )


def ingest_service(settings: Settings, client: Any | None = None) -> IngestService:
    require(settings, "users_table", "cooccurrence_table", "item_stats_table", "changed_items_stream")
    client = client if client is not None else dynamodb_client()
    return IngestService(
        settings=settings,
        users=_users(settings, client),
        cooccurrence=DynamoCooccurrenceRepository(
            DynamoTable(settings.cooccurrence_table, client),
            settings.cooccurrence_blocks,
            budget_bytes=settings.count_row_budget_bytes,
        ),
        item_stats=DynamoItemStatsRepository(DynamoTable(settings.item_stats_table, client)),
        changes=KinesisChangePublisher(settings.changed_items_stream, stream_client("kinesis")),
        coupons=DynamoCouponRepository(DynamoTable(settings.coupons_table, client))
        if settings.coupons_table
        else None,
        trends=_trends_repository(settings, client) if settings.trends_table else None,
        catalog=catalog_repository(settings, client),
    )


def _users(settings: Settings, client: Any) -> DynamoUserRepository:
    """The users table's adapter, its rows kept ``user_retention_days`` (0: for good)."""
    return DynamoUserRepository(DynamoTable(settings.users_table, client), settings.user_retention_days)


def catalog_repository(settings: Settings, client: Any | None = None) -> DynamoCatalogRepository | None:
    """The catalog table's adapter, or None when no catalog table is configured."""
    if not settings.catalog_table:
        return None
    return DynamoCatalogRepository(DynamoTable(settings.catalog_table, client or dynamodb_client()))


def catalog_service(settings: Settings, client: Any | None = None) -> CatalogService | None:
    """The ingest's handling of item_upsert records (None without a catalog table)."""
    catalog = catalog_repository(settings, client)
    if catalog is None:
        return None
    require(settings, "changed_items_stream")
    return CatalogService(
        settings, catalog, KinesisChangePublisher(settings.changed_items_stream, stream_client("kinesis"))
    )


def similarity_service(settings: Settings, client: Any | None = None) -> SimilarityService:
    require(settings, "cooccurrence_table", "item_stats_table", "similarity_table")
    client = client if client is not None else dynamodb_client()
    return SimilarityService(
        settings=settings,
        cooccurrence=DynamoCooccurrenceRepository(
            DynamoTable(settings.cooccurrence_table, client), settings.cooccurrence_blocks
        ),
        item_stats=DynamoItemStatsRepository(DynamoTable(settings.item_stats_table, client)),
        similarity=DynamoSimilarityRepository(DynamoTable(settings.similarity_table, client)),
        # The out-of-stock set through a cache of its own (one read per 30 s per container):
        # trending lists keep their places for items in stock.
        trending=(
            trends_service(settings, client, stock=_cached_similarity_table(settings, client))
            if settings.trends_table
            else None
        ),
        catalog=catalog_repository(settings, client),
        concurrency=WRITE_CONCURRENCY,
    )


def _trends_repository(settings: Settings, client: Any) -> DynamoTrendsRepository:
    return DynamoTrendsRepository(DynamoTable(settings.trends_table, client), settings.trends_retention_days)


def trends_service(
    settings: Settings, client: Any | None = None, stock: SimilarityRepository | None = None
) -> TrendsService:
    """Trending lists and demand (API reads; the similarity function refreshes the lists).
    ``stock``: a cached similarity table, whose ``#out_of_stock`` set the API's answers leave
    out and the similarity function's merges give no in-stock item's place to."""
    require(settings, "trends_table")
    client = client if client is not None else dynamodb_client()
    return TrendsService(
        settings, _trends_repository(settings, client), concurrency=WRITE_CONCURRENCY, stock=stock
    )


def _cached_similarity_table(settings: Settings, client: Any) -> SimilarityRepository:
    """The similarity table read through the warm-container cache (API_CACHE_*)."""
    return cached_similarity(
        DynamoSimilarityRepository(DynamoTable(settings.similarity_table, client)), cache_config()
    )


def recommendation_service(settings: Settings, client: Any | None = None) -> RecommendationService:
    """The API's service. Neighbour rows and popular lists go through the warm-container
    cache (repositories/cache.py, configured by API_CACHE_*); user rows are always read."""
    require(settings, "users_table", "similarity_table")
    client = client if client is not None else dynamodb_client()
    return RecommendationService(
        settings=settings,
        users=_users(settings, client),
        similarity=_cached_similarity_table(settings, client),
    )


def coupon_service(
    settings: Settings, client: Any | None = None, similarity: SimilarityRepository | None = None
) -> CouponService:
    """The API's coupons; the similarity table's ``#popular_categories`` list, which fills
    short lists (unless ``COUPON_FILL=none``), and ``#out_of_stock`` set, which leaves out
    item-list coupons with nothing in stock, are read from ``similarity`` (the
    recommendation service's, so that one warm-container cache serves both) or else through
    a cache of its own."""
    require(settings, "users_table", "coupons_table", "similarity_table")
    client = client if client is not None else dynamodb_client()
    if similarity is None:
        similarity = _cached_similarity_table(settings, client)
    return CouponService(
        settings=settings,
        users=_users(settings, client),
        coupons=DynamoCouponRepository(DynamoTable(settings.coupons_table, client)),
        similarity=similarity,
    )


def dead_letter_sink(settings: Settings) -> SqsDeadLetterSink:
    require(settings, "dead_letter_queue_url")
    return SqsDeadLetterSink(settings.dead_letter_queue_url, stream_client("sqs"))
