"""Serving: personalized recommendations and similar items.

Personalized (SAR-style): the user's decayed affinity to each recent item times that
item's neighbour row, summed. Two sequential reads per request: the user's row, then one
BatchGetItem of the recent items' neighbour rows plus the popular list (for padding and
for users without history).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from streamrec_core import decay, personalized_scores, top_k

from streamrec.domain.model import HistoryItem, PopularList
from streamrec.repositories.base import SimilarityRepository, UserRepository
from streamrec.settings import Settings

EXCLUDE_PURCHASED = "purchased"  # default: the user's own items may come back, purchases never
EXCLUDE_HISTORY = "history"  # none of the user's recent items nor purchases
EXCLUDE_NONE = "none"  # anything, purchases included (e.g. consumables)
EXCLUDE_MODES = (EXCLUDE_PURCHASED, EXCLUDE_HISTORY, EXCLUDE_NONE)

SOURCE_PERSONALIZED = "personalized"
SOURCE_SIMILAR = "similar"
SOURCE_POPULAR = "popular"

_REASON_BY_KIND = {
    "view": "because you viewed {item}",
    "add_to_cart": "because you added {item} to your cart",
    "purchase": "because you bought {item}",
    "remove_from_cart": "because you looked at {item}",
}


@dataclass
class Recommendation:
    item_id: str
    score: float
    source: str
    reasons: list[str] = field(default_factory=list)
    because: list[str] = field(default_factory=list)


@dataclass
class RecommendationList:
    items: list[Recommendation]
    fallback: bool


def reason_for(entry: HistoryItem) -> str:
    return _REASON_BY_KIND.get(entry.kind, "because you viewed {item}").format(item=entry.item_id)


def _pad_with_popular(
    listed: list[Recommendation], popular: PopularList, excluded: set[str], k: int
) -> list[Recommendation]:
    """Append popular items (not excluded, not yet listed) until there are ``k``."""
    if len(listed) >= k or not popular.items:
        return listed
    taken = excluded | {rec.item_id for rec in listed}
    top_weight = popular.items[0][1] or 1.0
    for item_id, weight in popular.items:
        if len(listed) >= k:
            break
        if item_id not in taken:
            listed.append(Recommendation(item_id, weight / top_weight, SOURCE_POPULAR, ["popular right now"]))
    return listed


@dataclass
class RecommendationService:
    settings: Settings
    users: UserRepository
    similarity: SimilarityRepository

    def for_user(
        self, user_id: str, k: int, exclude: str = EXCLUDE_PURCHASED, now: float | None = None
    ) -> RecommendationList:
        """Top-``k`` items for the user, each with its reason; popular items pad short lists."""
        if exclude not in EXCLUDE_MODES:
            raise ValueError(f"exclude must be one of {EXCLUDE_MODES}")
        now = time.time() if now is None else now
        state = self.users.get(user_id)
        history = state.items if state else []
        excluded: set[str] = set()
        if state and exclude != EXCLUDE_NONE:
            excluded.update(state.purchased)
        if exclude == EXCLUDE_HISTORY:
            excluded.update(entry.item_id for entry in history)
        rows, popular = self.similarity.get_many([entry.item_id for entry in history], with_popular=True)

        candidates = sorted({n.item_id for row in rows.values() for n in row.neighbours} - excluded)
        listed: list[Recommendation] = []
        if candidates:
            column = {item_id: index for index, item_id in enumerate(candidates)}
            matrix = np.zeros((len(history), len(candidates)))
            for row_index, entry in enumerate(history):
                row = rows.get(entry.item_id)
                for neighbour in row.neighbours if row else ():
                    if neighbour.item_id in column:
                        matrix[row_index, column[neighbour.item_id]] = neighbour.score
            ages = now - np.array([entry.ref_time for entry in history])
            affinity = np.array([entry.affinity for entry in history]) * decay(
                ages, self.settings.half_life_seconds
            )
            scores, best_source = personalized_scores(affinity, matrix)
            for index in top_k(scores, k):
                source = history[best_source[index]]
                listed.append(
                    Recommendation(
                        candidates[index],
                        float(scores[index]),
                        SOURCE_PERSONALIZED,
                        [reason_for(source)],
                        [source.item_id],
                    )
                )
        fallback = not listed
        return RecommendationList(_pad_with_popular(listed, popular, excluded, k), fallback)

    def similar_items(self, item_id: str, k: int) -> RecommendationList:
        """The item's top-``k`` neighbours ("customers who viewed this also viewed")."""
        rows, popular = self.similarity.get_many([item_id], with_popular=True)
        row = rows.get(item_id)
        reason = f"customers who viewed {item_id} also viewed this"
        listed = [
            Recommendation(n.item_id, n.score, SOURCE_SIMILAR, [reason], [item_id])
            for n in (row.neighbours[:k] if row else [])
        ]
        fallback = not listed
        return RecommendationList(_pad_with_popular(listed, popular, {item_id}, k), fallback)
