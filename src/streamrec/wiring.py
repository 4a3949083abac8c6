"""Composition root: builds the services on the DynamoDB adapters from settings.

Called by the handlers at cold start (module import), after settings are validated.
"""

from __future__ import annotations

from streamrec.domain.coupons import CouponService
from streamrec.domain.ingest import IngestService
from streamrec.domain.recommend import CrossSellService, RecommendationService
from streamrec.domain.similarity import SimilarityService
from streamrec.repositories.cache import cache_config, cached_similarity
from streamrec.repositories.dynamodb import (
    DynamoCooccurrenceRepository,
    DynamoCouponRepository,
    DynamoItemStatsRepository,
    DynamoSimilarityRepository,
    DynamoTable,
    DynamoUserRepository,
    KinesisChangePublisher,
    SqsDeadLetterSink,
)
from streamrec.settings import Settings, require


def ingest_service(settings: Settings) -> IngestService:
    require(settings, "users_table", "cooccurrence_table", "item_stats_table", "changed_items_stream")
    return IngestService(
        settings=settings,
        users=DynamoUserRepository(DynamoTable(settings.users_table)),
        cooccurrence=DynamoCooccurrenceRepository(
            DynamoTable(settings.cooccurrence_table), settings.cooccurrence_blocks
        ),
        item_stats=DynamoItemStatsRepository(DynamoTable(settings.item_stats_table)),
        changes=KinesisChangePublisher(settings.changed_items_stream),
        coupons=DynamoCouponRepository(DynamoTable(settings.coupons_table))
        if settings.coupons_table
        else None,
    )


def similarity_service(settings: Settings) -> SimilarityService:
    require(settings, "cooccurrence_table", "item_stats_table", "similarity_table")
    return SimilarityService(
        settings=settings,
        cooccurrence=DynamoCooccurrenceRepository(
            DynamoTable(settings.cooccurrence_table), settings.cooccurrence_blocks
        ),
        item_stats=DynamoItemStatsRepository(DynamoTable(settings.item_stats_table)),
        similarity=DynamoSimilarityRepository(DynamoTable(settings.similarity_table)),
    )


def recommendation_service(settings: Settings) -> RecommendationService:
    """The API's service. Neighbour rows and popular lists go through the warm-container
    cache (repositories/cache.py, configured by API_CACHE_*); user rows are always read."""
    require(settings, "users_table", "similarity_table")
    return RecommendationService(
        settings=settings,
        users=DynamoUserRepository(DynamoTable(settings.users_table)),
        similarity=cached_similarity(
            DynamoSimilarityRepository(DynamoTable(settings.similarity_table)), cache_config()
        ),
    )


def coupon_service(settings: Settings) -> CouponService:
    require(settings, "users_table", "coupons_table")
    return CouponService(
        settings=settings,
        users=DynamoUserRepository(DynamoTable(settings.users_table)),
        coupons=DynamoCouponRepository(DynamoTable(settings.coupons_table)),
    )


def cross_sell_service(settings: Settings) -> CrossSellService:
    require(settings, "users_table", "similarity_table")
    return CrossSellService(
        settings=settings,
        users=DynamoUserRepository(DynamoTable(settings.users_table)),
        similarity=DynamoSimilarityRepository(DynamoTable(settings.similarity_table)),
    )


def dead_letter_sink(settings: Settings) -> SqsDeadLetterSink:
    require(settings, "dead_letter_queue_url")
    return SqsDeadLetterSink(settings.dead_letter_queue_url)
