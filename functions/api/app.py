"""API function: HTTP API (payload 2.0) routes: recommendations, similar items, coupons, trends, health."""

from aws_lambda_powertools.logging import correlation_paths

from streamrec import wiring
from streamrec.http_api import build_app, refused_body, with_json_media_type
from streamrec.observability import logger
from streamrec.settings import load_settings

settings = load_settings()
client = wiring.api_dynamodb_client()
recommendations = wiring.recommendation_service(settings, client)
# One warm-container cache of the similarity table for every service.
coupons = wiring.coupon_service(settings, client, similarity=recommendations.similarity)
trends = wiring.trends_service(settings, client, stock=recommendations.similarity)
app = build_app(recommendations, coupons=coupons, trends=trends)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event, context):
    return refused_body(event) or app.resolve(with_json_media_type(event), context)
