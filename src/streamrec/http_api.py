"""HTTP API routes (API Gateway HTTP API, payload 2.0) on Powertools' resolver.

Query and path parameters are validated by the resolver's data validation (which also
yields the OpenAPI schema); a failure is a 400 with a readable message, never a trace.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from streamrec.domain.recommend import (
    EXCLUDE_MODES,
    EXCLUDE_PURCHASED,
    RecommendationList,
    RecommendationService,
)
from streamrec.events import ID_PATTERN
from streamrec.observability import logger
from streamrec.repositories.base import RepositoryError

K_DESCRIPTION = "How many items to return (1..100)."
ID_DESCRIPTION = "1-128 characters: letters, digits and . _ : @ - (not starting with a symbol)."


def _error(status: int, error: str, message: str) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": error, "message": message},
    )


def _describe(issue: dict[str, Any]) -> str:
    location = issue.get("loc", ())
    name = str(location[-1]) if location else "request"
    kind = issue.get("type", "")
    if name == "k":
        return "k must be an integer between 1 and 100"
    if name in ("user_id", "item_id"):
        return f"{name} is malformed: {ID_DESCRIPTION}"
    if name == "exclude":
        return f"exclude must be one of {', '.join(EXCLUDE_MODES)}"
    return f"{name}: {issue.get('msg', kind)}"


def _listing(result: RecommendationList) -> list[dict[str, Any]]:
    return [asdict(item) for item in result.items]


def build_app(service: RecommendationService) -> APIGatewayHttpResolver:
    """The resolver with every route bound to ``service``."""
    app = APIGatewayHttpResolver(enable_validation=True)

    @app.exception_handler(RequestValidationError)
    def bad_request(error: RequestValidationError) -> Response:
        messages = list(dict.fromkeys(_describe(issue) for issue in error.errors()))
        return _error(400, "bad_request", "; ".join(messages))

    @app.exception_handler(RepositoryError)
    def storage_unavailable(error: RepositoryError) -> Response:
        logger.exception("storage call failed")
        return _error(503, "unavailable", "recommendations are temporarily unavailable; retry shortly")

    @app.not_found
    def not_found(_missing: Any) -> Response:
        return _error(404, "not_found", "no such route")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/users/<user_id>/recommendations")
    def recommendations(
        user_id: Annotated[str, Path(pattern=ID_PATTERN, description="The user.")],
        k: Annotated[int, Query(ge=1, le=100, description=K_DESCRIPTION)] = 10,
        exclude: Annotated[
            str,
            Query(
                pattern="^(purchased|history|none)$",
                description="Which of the user's own items may not come back: purchased items "
                "(default), every recent item and purchase (history), or none.",
            ),
        ] = EXCLUDE_PURCHASED,
    ) -> dict[str, Any]:
        result = service.for_user(user_id, k, exclude=exclude)
        return {"user_id": user_id, "fallback": result.fallback, "items": _listing(result)}

    @app.get("/items/<item_id>/similar")
    def similar(
        item_id: Annotated[str, Path(pattern=ID_PATTERN, description="The item.")],
        k: Annotated[int, Query(ge=1, le=100, description=K_DESCRIPTION)] = 10,
    ) -> dict[str, Any]:
        result = service.similar_items(item_id, k)
        return {"item_id": item_id, "fallback": result.fallback, "items": _listing(result)}

    return app
