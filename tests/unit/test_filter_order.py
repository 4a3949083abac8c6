"""A filter (exclude=, category=, out of stock) removes items from a list and leaves the
others as they were: same order, same scores (the score parts are scaled before it)."""

from __future__ import annotations

import pytest

from streamrec.domain.filters import ListFilter
from streamrec.domain.model import HistoryItem, Neighbour, PopularList, SimilarityRow, UserState
from streamrec.domain.recommend import CrossSellService, RecommendationService
from streamrec.repositories.memory import InMemorySimilarityRepository, InMemoryUserRepository
from streamrec.settings import Settings

T0 = 1_764_000_000.0


def _listed(result) -> list[tuple[str, float]]:
    return [(item.item_id, round(item.score, 6)) for item in result.items]


def _without(listed: list[tuple[str, float]], item_id: str) -> list[tuple[str, float]]:
    return [pair for pair in listed if pair[0] != item_id]


@pytest.fixture
def similarity() -> InMemorySimilarityRepository:
    repository = InMemorySimilarityRepository()
    # A warm item X: behaviour neighbours A (0.50) and B (0.05), and a look-alike C that
    # nobody viewed with X. A user's recent item h: neighbours m1 and m2 (item part), and
    # category c's popular list (category part).
    repository.put_rows(
        [
            SimilarityRow(
                "X",
                [Neighbour("A", 0.50, "c"), Neighbour("B", 0.05, "c")],
                support=200.0,
                category="c",
                content=[Neighbour("C", 0.90, "c")],
            ),
            SimilarityRow(
                "h", [Neighbour("m1", 0.9, "c"), Neighbour("m2", 0.35, "d")], support=500.0, category="c"
            ),
        ]
    )
    repository.put_list("#cat:c", PopularList([("p", 100.0), ("q", 60.0)]))
    return repository


def test_similar_items_keep_their_order_and_scores(similarity: InMemorySimilarityRepository) -> None:
    service = RecommendationService(Settings(content_slots=0.0), InMemoryUserRepository(), similarity)
    everything = _listed(service.similar_items("X", 10))
    assert [item for item, _ in everything] == ["A", "C", "B"]

    assert _listed(service.similar_items("X", 10, ListFilter(exclude=frozenset({"A"})))) == _without(
        everything, "A"
    )
    similarity.put_list("#out_of_stock", PopularList([("A", T0)]))
    assert _listed(service.similar_items("X", 10)) == _without(everything, "A")
    assert _listed(service.similar_items("X", 10, ListFilter(in_stock_only=False))) == everything


def test_recommendations_keep_their_order_and_scores(similarity: InMemorySimilarityRepository) -> None:
    users = InMemoryUserRepository()
    users.rows["u"] = UserState("u", items=[HistoryItem("h", 1.0, 1.0, T0, "view", "c")])
    service = RecommendationService(Settings(self_similarity=0.0), users, similarity)
    everything = _listed(service.for_user("u", 10, now=T0))
    assert [item for item, _ in everything][:3] == ["m1", "p", "q"]

    excluded = service.for_user("u", 10, now=T0, list_filter=ListFilter(exclude=frozenset({"m1"})))
    assert _listed(excluded) == _without(everything, "m1")
    in_c = service.for_user("u", 10, now=T0, list_filter=ListFilter(category="c"))
    assert _listed(in_c) == _without(everything, "m2")
    similarity.put_list("#out_of_stock", PopularList([("m1", T0)]))
    assert _listed(service.for_user("u", 10, now=T0)) == _without(everything, "m1")


def test_cross_sell_keeps_its_order_and_scores(similarity: InMemorySimilarityRepository) -> None:
    # Complements of the cart's tent: stakes (0.8) and lamp (0.4); the user bought a mug
    # (a past purchase adds cross_sell_history_weight, 0.3, to a basket part scaled to 1).
    similarity.put_rows(
        [SimilarityRow("tent", [], complements=[Neighbour("stakes", 0.8, "c"), Neighbour("lamp", 0.4, "c")])]
    )
    users = InMemoryUserRepository()
    users.rows["u"] = UserState("u", purchased=["mug"])
    service = CrossSellService(Settings(), users, similarity)
    everything = _listed(service.for_request(["tent"], 10, "u"))
    assert [item for item, _ in everything] == ["stakes", "lamp", "mug"]

    no_stakes = service.for_request(["tent"], 10, "u", ListFilter(exclude=frozenset({"stakes"})))
    assert _listed(no_stakes) == _without(everything, "stakes")
    similarity.put_list("#out_of_stock", PopularList([("stakes", T0)]))
    assert _listed(service.for_request(["tent"], 10, "u")) == _without(everything, "stakes")
