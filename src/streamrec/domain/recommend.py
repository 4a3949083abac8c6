"""Serving: personalized recommendations and similar items.

Personalized score of a candidate m (SAR-style, plus a category component):

* item-to-item part: Σ_h a_h · S[h, m] over the user's recent items h, where a_h is the
  user's time-decayed affinity to h (optionally weighted by recency rank) and S[h, ·] is
  h's neighbour row; a recent item is its own neighbour with ``self_similarity`` (times its
  row's strongest score under lift or LLR: :func:`self_score`);
* category part: Σ_c a_c · pop_c[m] / max(pop_c) over the user's strongest categories c
  (a_c = the summed affinity of the recent items in c), from each category's list of
  currently popular items;
* the two are blended after scaling each to a maximum of 1 (``category_blend``).

Content neighbours (catalog TF-IDF, domain/catalog.py) fill in for cold items: a recent
item h whose support w_h (its c_ii) is below ``cold_item_weight`` contributes its content
neighbours m with S[h, m] = max(S[h, m], (1 - w_h / cold_item_weight) · max_l S[h, l] ·
T[h, m]), T being the content cosine and max_l S[h, l] h's strongest collaborative score (1
without any); warm items' rows are used as they are.

Out-of-stock items (the ``#out_of_stock`` row) are never listed, by any list, fallbacks
included. Items without a catalog record count as in stock.

Short lists are padded with popular items, then with the catalog's newest items in stock.

Two sequential reads per request: the user's row, then one BatchGetItem of the recent
items' neighbour rows, the popular list, the out-of-stock row, the category lists and the
new arrivals (a third, for the new arrivals of a short list, when the recent items and the
other lists took all the read's keys).
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from streamrec_core import UNBOUNDED_MEASURES, decay, max_normalized_blend, personalized_scores, top_k

from streamrec.domain.filters import NO_FILTER, ListFilter, Unlisted, out_of_stock
from streamrec.domain.model import (
    CATEGORY_ROW_PREFIX,
    OUT_OF_STOCK_ROW,
    POPULAR_ROW,
    HistoryItem,
    Neighbour,
    PopularList,
    SimilarityRow,
    UserState,
    category_row,
    new_arrivals_row,
    shown_kind,
)
from streamrec.repositories.base import SimilarityRepository, UserRepository
from streamrec.settings import Settings

EXCLUDE_PURCHASED = "purchased"  # default: the user's own items may come back, purchases never
EXCLUDE_HISTORY = "history"  # none of the user's recent items nor purchases
EXCLUDE_NONE = "none"  # anything, purchases included (e.g. consumables)
EXCLUDE_MODES = (EXCLUDE_PURCHASED, EXCLUDE_HISTORY, EXCLUDE_NONE)

SOURCE_PERSONALIZED = "personalized"
SOURCE_SIMILAR = "similar"
SOURCE_POPULAR = "popular"
SOURCE_NEW = "new"
# What pads a list the engine's own suggestions leave short (not the engine's own).
PADDING_SOURCES = frozenset({SOURCE_POPULAR, SOURCE_NEW})
# Rows without a recorded support (stored before rows carried it) were cold below this
# many collaborative neighbours.
LEGACY_COLD_NEIGHBOURS = 10
# One BatchGetItem reads at most 100 keys: the recent items, #popular, #out_of_stock and
# the category lists must fit in it (HistoryLength <= 96 leaves room for 2 categories).
BATCH_GET_KEYS = 100

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


@dataclass(frozen=True)
class NewArrival:
    item_id: str
    listed_at: float  # epoch seconds: when the item first came into stock


def reason_for(entry: HistoryItem, cart: Collection[str]) -> str:
    """Why an item recommended through ``entry`` is there, by the user's strongest event on
    it; an item added to the cart and no longer in it (``cart``: the user's cart) was taken
    out, so it is "looked at", not "added to your cart"."""
    return _REASON_BY_KIND.get(shown_kind(entry, cart), "because you viewed {item}").format(
        item=entry.item_id
    )


def _append_padding(
    listed: list[Recommendation],
    candidates: Iterable[tuple[str, float]],
    taken: Unlisted,
    k: int,
    source: str,
    reason: str,
) -> list[Recommendation]:
    """Append ``candidates`` (item, its share of the ceiling), in order, that are not
    ``taken`` until ``listed`` holds ``k``; each scores ceiling · share, the ceiling being
    the lowest score already listed (1.0 when none is), so scores never increase down a
    list (a client sorting by score keeps the engine's own suggestions first)."""
    ceiling = max(0.0, min((rec.score for rec in listed), default=1.0))
    for item_id, share in candidates:
        if len(listed) >= k:
            break
        if item_id not in taken:
            listed.append(Recommendation(item_id, ceiling * share, source, [reason]))
    return listed


def _pad_with_popular(
    listed: list[Recommendation],
    lists: dict[str, PopularList],
    excluded: Unlisted,
    k: int,
    list_filter: ListFilter = NO_FILTER,
    category: str | None = None,
) -> list[Recommendation]:
    """Append popular items (not excluded, not yet listed, admitted by the filter) until
    there are ``k``: from the filter category's list when there is one (every item of it
    is of that category), else from ``category``'s list when given, else from ``#popular``.

    A padding item scores its popularity relative to the list's most popular item, scaled
    to the lowest score already listed (:func:`_append_padding`)."""
    category = list_filter.category or category
    popular = lists.get(category_row(category) if category else POPULAR_ROW, PopularList())
    if len(listed) >= k or not popular.items:
        return listed
    taken = excluded | list_filter.exclude | {rec.item_id for rec in listed}
    top = popular.items[0][1] or 1.0
    reason = f"popular in {category} right now" if category else "popular right now"
    # weight / top first: the most popular item scores exactly the ceiling (1.0 when nothing
    # else is listed), where weight * (ceiling / top) could give 0.9999999999999999.
    shares = ((item_id, weight / top) for item_id, weight in popular.items)
    return _append_padding(listed, shares, taken, k, SOURCE_POPULAR, reason)


def _pad_with_new_arrivals(
    similarity: SimilarityRepository,
    listed: list[Recommendation],
    lists: dict[str, PopularList],
    excluded: Unlisted,
    k: int,
    list_filter: ListFilter,
    category: str | None = None,
) -> list[Recommendation]:
    """Append the catalog's newest items in stock (not excluded, not yet listed), newest
    first, until there are ``k``: from the filter category's new arrivals when there is
    one, else from ``category``'s when given, else from ``#new``. They fill what behaviour
    cannot yet (a shop's first hours, when the popular lists hold a few items, or a thin
    category). The list comes with the request's other lists (:func:`request_lists`), or,
    where a request's read had no room left for it, is read here, only for a list still
    short. Each scores the lowest score already listed (1.0 when none is): never more than
    what is before it."""
    if len(listed) >= k:
        return listed
    category = list_filter.category or category
    name = new_arrivals_row(category)
    if name not in lists:
        _, lists = similarity.get_many([], [name])
    taken = excluded | list_filter.exclude | {rec.item_id for rec in listed}
    reason = f"new in {category}" if category else "new in the catalog"
    shares = ((item_id, 1.0) for item_id, _ in lists[name].items)
    return _append_padding(listed, shares, taken, k, SOURCE_NEW, reason)


def _padded(
    similarity: SimilarityRepository,
    listed: list[Recommendation],
    lists: dict[str, PopularList],
    excluded: Unlisted,
    k: int,
    list_filter: ListFilter,
) -> list[Recommendation]:
    """A list's own suggestions padded to ``k``: with popular items, then new arrivals."""
    padded = _pad_with_popular(listed, lists, excluded, k, list_filter)
    return _pad_with_new_arrivals(similarity, padded, lists, excluded, k, list_filter)


def request_lists(list_filter: ListFilter, new_arrivals: bool = True) -> list[str]:
    """The lists every list request reads with its rows: the popular list it pads from
    (the filter category's, or ``#popular``), the out-of-stock set and, unless left out
    (no room in the read), the new arrivals it pads from when still short (the filter
    category's, or ``#new``)."""
    padding = category_row(list_filter.category) if list_filter.category else POPULAR_ROW
    if not new_arrivals:
        return [padding, OUT_OF_STOCK_ROW]
    return [padding, OUT_OF_STOCK_ROW, new_arrivals_row(list_filter.category)]


def _keeping(listed: list[Recommendation], n: int, kept: set[str]) -> list[Recommendation]:
    """The first ``n`` of ``listed`` (best first), but with the items of ``kept`` it holds
    in place of the weakest others, never in place of the best one; still best first."""
    head = listed[:n]
    room = max(0, n - 1 - sum(r.item_id in kept for r in head))
    wanted = [r for r in listed[n:] if r.item_id in kept][:room]
    if not wanted:
        return head
    dropped = {r.item_id for r in [r for r in reversed(head) if r.item_id not in kept][: len(wanted)]}
    return [r for r in head if r.item_id not in dropped] + wanted[: len(dropped)]


def known_categories(
    rows: dict[str, SimilarityRow], lists: dict[str, PopularList], history: Sequence[HistoryItem] = ()
) -> dict[str, str]:
    """item -> category, for every item the request's rows, category lists and history
    name with a category (rows label themselves and their neighbours; a ``#cat:`` list
    holds its own).

    The freshest source wins: a row's own label (set when the similarity function last
    wrote it, a catalog move included) over its neighbours' labels (as of the row's last
    rebuild), over the user's history (the category of the user's event), over list
    membership (an item stays in a list it has left until it falls off).
    """
    known: dict[str, str] = {}
    for name, popular in lists.items():
        if name.startswith(CATEGORY_ROW_PREFIX):
            category = name[len(CATEGORY_ROW_PREFIX) :]
            known.update((item, category) for item, _ in popular.items)
    known.update((entry.item_id, entry.category) for entry in history if entry.category)
    for row in rows.values():
        neighbour: Neighbour
        for neighbour in (*row.neighbours, *row.extended, *row.complements, *row.content):
            if neighbour.category:
                known[neighbour.item_id] = neighbour.category
    # A recent item whose events carried no category has a row without one.
    known.update((row.item_id, row.category) for row in rows.values() if row.category)
    return known


def coldness(row: SimilarityRow | None, settings: Settings) -> float:
    """1 for an item nobody interacted with, falling linearly to 0 at a support (c_ii) of
    ``cold_item_weight``: how much its content neighbours stand in. Support, not the count
    of neighbours: one basket of 20 items gives each of them 19 neighbours, all from one
    buyer. A row stored before rows recorded their support falls back to the old rule (1 at
    no neighbours, 0 at :data:`LEGACY_COLD_NEIGHBOURS`) until its next rebuild."""
    if row is None:
        return 1.0
    if row.support is None:
        return max(0.0, 1.0 - len(row.neighbours) / LEGACY_COLD_NEIGHBOURS)
    return max(0.0, 1.0 - row.support / settings.cold_item_weight)


def behaviour_peak(row: SimilarityRow) -> float:
    """The row's strongest collaborative score (1 without any): the scale of its behaviour
    scores, whatever a request filters out."""
    return row.neighbours[0].score if row.neighbours and row.neighbours[0].score > 0 else 1.0


def self_score(row: SimilarityRow | None, settings: Settings) -> float:
    """A recent item's similarity to itself: ``self_similarity`` on the [0, 1] scale of
    jaccard, cosine, confidence and added value; for lift and LLR, that many times the row's
    strongest score, direct or two-hop (2 absolute units are nothing next to an LLR of
    hundreds, and everything next to a lift of 0.02)."""
    # Scores with no fixed scale (lift about 1 / c_jj, LLR in the hundreds).
    if row is not None and row.measure in UNBOUNDED_MEASURES:
        strongest = max((n.score for n in (*row.neighbours[:1], *row.extended[:1])), default=0.0)
        return settings.self_similarity * (strongest if strongest > 0 else 1.0)
    return settings.self_similarity


def content_scale(row: SimilarityRow, settings: Settings) -> float:
    """The factor on a recent item's content cosines in personalized scores: its coldness
    times its strongest collaborative score (1 without any), so that a cosine, often far
    above a Jaccard value, does not outweigh the item's real neighbours."""
    return coldness(row, settings) * behaviour_peak(row)


def drop_filtered(
    scores: np.ndarray,
    ordered: Sequence[str],
    excluded: Container[str],
    list_filter: ListFilter,
    known: Callable[[], dict[str, str]],
) -> None:
    """Set to 0, in place, the scores (shape (m,), one per id of ``ordered``) of the items a
    request filters out: ``excluded`` (out of stock) and what ``list_filter`` refuses, given
    the categories ``known()`` names (asked only when the filter needs them). Scored with
    the others, they set the scale of the score parts, so the items left keep their order
    and scores whatever is filtered."""
    kept = {item for item in ordered if item not in excluded}
    if list_filter != NO_FILTER:
        kept = list_filter.keep(kept, known())
    scores[[index for index, item in enumerate(ordered) if item not in kept]] = 0.0


def history_weights(history: list[HistoryItem], now: float, settings: Settings) -> np.ndarray:
    """Shape (h,): each recent item's decayed affinity, times its recency-rank factor.

    Ages are measured from the user's newest item, not from ``now``: decaying every item
    by the same extra factor would not change any ranking (each score part is scaled to a
    maximum of 1), and it would underflow to 0 for short half-lives after a long absence.
    """
    if not history:
        return np.zeros(0)
    times = np.array([entry.ref_time for entry in history])
    ages = min(now, float(times.max())) - times
    weights = np.array([entry.affinity for entry in history]) * decay(ages, settings.half_life_seconds)
    if settings.position_decay:
        rank_from_newest = np.arange(len(history) - 1, -1, -1, dtype=np.float64)
        weights *= (1.0 / (1.0 + rank_from_newest)) ** settings.position_decay
    return weights


def top_categories(history: list[HistoryItem], weights: np.ndarray, count: int) -> list[tuple[str, float]]:
    """The user's ``count`` strongest categories with their summed item weights."""
    totals: dict[str, float] = defaultdict(float)
    for entry, weight in zip(history, weights, strict=True):
        if entry.category:
            totals[entry.category] += float(weight)
    ranked = sorted(totals.items(), key=lambda pair: (-pair[1], pair[0]))
    return [(category, weight) for category, weight in ranked[:count] if weight > 0]


def check_exclude_mode(mode: str, name: str = "exclude") -> None:
    """A ``ValueError`` naming the parameter ``name`` unless ``mode`` is one of
    :data:`EXCLUDE_MODES` (read as ``purchased`` it would quietly answer another question)."""
    if mode not in EXCLUDE_MODES:
        raise ValueError(f"{name} must be one of {', '.join(EXCLUDE_MODES)}, not {mode!r}")


def own_items(state: UserState | None, exclude: str) -> frozenset[str]:
    """The user's own items a list leaves out: the purchases (``purchased``), also the
    recent items and the cart (``history``), or none (``none``); any other mode is a
    ``ValueError`` (:func:`check_exclude_mode`)."""
    check_exclude_mode(exclude)
    excluded: set[str] = set()
    if state and exclude != EXCLUDE_NONE:
        excluded.update(state.purchased)
    if state and exclude == EXCLUDE_HISTORY:
        # The cart too: it keeps items the recent window (history_length) has let go.
        excluded.update(entry.item_id for entry in state.items)
        excluded.update(state.cart)
    return frozenset(excluded)


def lists_to_read(
    history_size: int, categories: list[tuple[str, float]], list_filter: ListFilter
) -> list[str]:
    """The list rows a personalized request reads with its recent items' rows: the popular
    and stock rows, the user's category lists and, where the one BatchGetItem has room (with
    ``HistoryLength`` near 96 it may not: they are then read only if the list comes out
    short), the new arrivals."""
    names = list(
        dict.fromkeys(
            [*request_lists(list_filter, new_arrivals=False), *(category_row(c) for c, _ in categories)]
        )
    )
    if history_size + len(names) < BATCH_GET_KEYS:
        names.append(new_arrivals_row(list_filter.category))
    return names


def scaled_content_neighbours(
    history: list[HistoryItem], rows: Mapping[str, SimilarityRow], settings: Settings
) -> dict[str, list[Neighbour]]:
    """Recent item id -> its content neighbours, scaled by how cold the item is and put on
    the scale of its own collaborative scores (:func:`content_scale`: a warm item's are all
    0, so they add nothing)."""
    return {
        entry.item_id: [
            Neighbour(n.item_id, n.score * content_scale(rows[entry.item_id], settings), n.category)
            for n in rows[entry.item_id].content
        ]
        for entry in history
        if entry.item_id in rows and rows[entry.item_id].content
    }


def item_matrix(
    history: list[HistoryItem],
    rows: Mapping[str, SimilarityRow],
    content: Mapping[str, list[Neighbour]],
    column: Mapping[str, int],
    settings: Settings,
) -> np.ndarray:
    """S[h, m]: recent item h's similarity to candidate m, the best of its neighbours',
    two-hop neighbours' and content neighbours' scores (itself: :func:`self_score`).

    Returns:
        shape (len(history), len(column)): rows in ``history``'s order, columns by ``column``.
    """
    matrix = np.zeros((len(history), len(column)))
    for row_index, entry in enumerate(history):
        row = rows.get(entry.item_id)
        collaborative = (*row.neighbours, *row.extended) if row else ()
        for neighbour in (*collaborative, *content.get(entry.item_id, ())):
            if neighbour.item_id in column:
                cell = (row_index, column[neighbour.item_id])
                matrix[cell] = max(matrix[cell], neighbour.score)
        if settings.self_similarity > 0 and entry.item_id in column:
            cell = (row_index, column[entry.item_id])
            matrix[cell] = max(matrix[cell], self_score(row, settings))
    return matrix


def category_matrix(
    categories: list[tuple[str, float]], lists: Mapping[str, PopularList], column: Mapping[str, int]
) -> np.ndarray:
    """P[c, m]: candidate m's popularity in category c relative to the category's most
    popular item (0 when m is not on the category's list).

    Returns:
        shape (len(categories), len(column)): rows in ``categories``' order, columns by ``column``.
    """
    matrix = np.zeros((len(categories), len(column)))
    for row_index, (category, _) in enumerate(categories):
        items = lists[category_row(category)].items
        peak = items[0][1] if items else 0.0
        for item_id, score in items:
            if item_id in column and peak > 0:
                matrix[row_index, column[item_id]] = score / peak
    return matrix


@dataclass
class RecommendationService:
    settings: Settings
    users: UserRepository
    similarity: SimilarityRepository

    def for_user(
        self,
        user_id: str,
        k: int,
        exclude: str = EXCLUDE_PURCHASED,
        now: float | None = None,
        list_filter: ListFilter = NO_FILTER,
    ) -> RecommendationList:
        """Top-``k`` items for the user, each with its reason; popular items, then new ones,
        pad short lists."""
        check_exclude_mode(exclude)  # before the user's row is read
        return self.for_state(self.users.get(user_id), k, exclude, now, list_filter)

    def for_state(
        self,
        state: UserState | None,
        k: int,
        exclude: str = EXCLUDE_PURCHASED,
        now: float | None = None,
        list_filter: ListFilter = NO_FILTER,
    ) -> RecommendationList:
        """Score a user's state (stored, or built on the fly for a session); ``list_filter``
        applies to candidates before the cut to ``k`` and to the padding."""
        now = time.time() if now is None else now
        settings = self.settings
        history = state.items if state else []
        cart = set(state.cart) if state else set()
        own = own_items(state, exclude)  # never candidates

        weights = history_weights(history, now, settings)
        room = BATCH_GET_KEYS - 2 - len(history)
        categories = (
            top_categories(history, weights, min(settings.categories_per_request, room))
            if settings.category_blend and room > 0
            else []
        )
        rows, lists = self.similarity.get_many(
            [entry.item_id for entry in history], lists_to_read(len(history), categories, list_filter)
        )
        unlisted = Unlisted(own, out_of_stock(lists) if list_filter.in_stock_only else frozenset())
        content = scaled_content_neighbours(history, rows, settings)

        candidates = {n.item_id for row in rows.values() for n in (*row.neighbours, *row.extended)}
        candidates.update(n.item_id for found in content.values() for n in found if n.score > 0)
        if settings.self_similarity > 0:
            candidates.update(entry.item_id for entry in history)
        if settings.category_blend:
            candidates.update(item for c, _ in categories for item, _ in lists[category_row(c)].items)
        ordered = sorted(candidates - own)  # what the request filters out too: drop_filtered
        listed: list[Recommendation] = []
        if ordered:
            column = {item_id: index for index, item_id in enumerate(ordered)}
            item_scores, item_source = personalized_scores(
                weights, item_matrix(history, rows, content, column, settings)
            )
            category_weights = np.array([weight for _, weight in categories])
            category_scores, category_source = personalized_scores(
                category_weights, category_matrix(categories, lists, column)
            )

            blend = np.array([1.0 - settings.category_blend, settings.category_blend])
            components = np.vstack([item_scores, category_scores])
            scores = max_normalized_blend(components, blend)
            drop_filtered(
                scores, ordered, unlisted, list_filter, lambda: known_categories(rows, lists, history)
            )
            item_share = max_normalized_blend(components, blend * np.array([1.0, 0.0]))
            recent = {entry.item_id for entry in history} | cart
            for index in top_k(scores, k):
                listed.append(
                    self._explain(
                        ordered[index],
                        float(scores[index]),
                        item_share[index] >= scores[index] - item_share[index],
                        history[item_source[index]] if history else None,
                        categories[category_source[index]][0] if categories else None,
                        cart,
                        ordered[index] in recent,
                    )
                )
        fallback = not listed
        return RecommendationList(_padded(self.similarity, listed, lists, unlisted, k, list_filter), fallback)

    @staticmethod
    def _explain(
        item_id: str,
        score: float,
        by_item: bool,
        source: HistoryItem | None,
        category: str | None,
        cart: Collection[str],
        recent: bool = False,
    ) -> Recommendation:
        # One of the user's own recent items says so, whichever part of the score won (its
        # category's popularity must not pass for the reason it is listed).
        if recent:
            return Recommendation(
                item_id, score, SOURCE_PERSONALIZED, [f"you recently looked at {item_id}"], [item_id]
            )
        if by_item and source is not None:
            return Recommendation(
                item_id, score, SOURCE_PERSONALIZED, [reason_for(source, cart)], [source.item_id]
            )
        return Recommendation(
            item_id, score, SOURCE_PERSONALIZED, [f"popular in {category}, which you browsed"], []
        )

    def new_arrivals(self, k: int, list_filter: ListFilter = NO_FILTER) -> list[NewArrival]:
        """The catalog's newest items in stock, newest first, at most ``k``: the similarity
        function's ``#new`` list (the ``popular_list_size`` newest) or, with a filter
        category, its ``#new:<category>`` (``category_list_size``), one read, less the
        filter's exclusions and (unless it lets them through) items marked out of stock
        since the list was merged. Empty while no catalog record in stock has come."""
        name = new_arrivals_row(list_filter.category)
        _, lists = self.similarity.get_many(
            [], [name, OUT_OF_STOCK_ROW] if list_filter.in_stock_only else [name]
        )
        stock = out_of_stock(lists)
        arrivals = (
            NewArrival(item_id, listed_at)
            for item_id, listed_at in lists[name].items
            if item_id not in stock and item_id not in list_filter.exclude
        )
        return list(itertools.islice(arrivals, k))

    def similar_items(self, item_id: str, k: int, list_filter: ListFilter = NO_FILTER) -> RecommendationList:
        """The item's top-``k`` similar items: collaborative neighbours ("customers who
        viewed this also viewed") blended with content neighbours (catalog text).

        With support w (the item's c_ii), content weighs β = content_weight + (1 −
        content_weight) · coldness (coldness = max(0, 1 − w / cold_item_weight)), so
        a cold item is ranked by its content alone and a warm one mostly by behaviour:
        score = (1 − β) · S / max S + β · T. Items known only by content (typically new
        ones, without interactions yet) are guaranteed ``content_slots`` of the list (at
        least 1, never all of it) when there are any, so they can be discovered. Without
        content neighbours the list is the collaborative one as before. Out-of-stock items
        never appear (unless the filter allows them), and ``list_filter`` applies to both
        kinds before the cut to ``k``.
        """
        rows, lists = self.similarity.get_many([item_id], request_lists(list_filter))
        row = rows.get(item_id)
        excluded = Unlisted(
            frozenset({item_id}), out_of_stock(lists) if list_filter.in_stock_only else frozenset()
        )

        def admitted(neighbours: list[Neighbour]) -> list[Neighbour]:
            return [
                n
                for n in neighbours
                if n.item_id not in excluded and list_filter.admits(n.item_id, n.category)
            ]

        viewed = f"customers who viewed {item_id} also viewed this"
        collaborative = admitted(row.neighbours if row else [])
        if row is not None and row.content:
            # A catalog item's list, even when the filter leaves none of its look-alikes: its
            # scores and its category's popular share must not change with what is excluded
            # (the behaviour scores are scaled by the best neighbour before any is filtered).
            content = admitted(row.content)
            listed, reserved = self._blend_similar(
                item_id, row, collaborative, content, k, behaviour_peak(row)
            )
            return self._with_popular_share(row, listed, reserved, lists, excluded, k, list_filter)
        listed = [
            Recommendation(n.item_id, n.score, SOURCE_SIMILAR, [viewed], [item_id]) for n in collaborative[:k]
        ]
        fallback = not listed
        return RecommendationList(_padded(self.similarity, listed, lists, excluded, k, list_filter), fallback)

    def _with_popular_share(
        self,
        row: SimilarityRow,
        listed: list[Recommendation],
        reserved: set[str],
        lists: dict[str, PopularList],
        excluded: Unlisted,
        k: int,
        list_filter: ListFilter,
    ) -> RecommendationList:
        """A cold item's list: its best ``k − s`` look-alikes and neighbours (the
        ``reserved`` items, those holding its content-only and behaviour-only slots, kept
        among them), then ``s`` items popular in its category,
        s = round(k · cold_popular_share · coldness) (halves to even), at most k − 1 (so
        k = 1 is its single best item). What a product nobody has bought yet is bought with
        is more often a best seller of its category than a look-alike; the share falls as
        its support grows. Only for an item whose category is known (its row's, or the
        filter's): the category's list costs a second read."""
        share = self.settings.cold_popular_share * coldness(row, self.settings)
        source = list_filter.category or row.category
        slots = min(round(k * share), k - 1) if source else 0
        own = row.category if row.category and not list_filter.category else None
        if slots > 0 and own:
            # With its category's new arrivals: on a shop's first day every item is cold
            # and the popular lists empty, and a knife's list should go on with new
            # kitchen items before the rest of the catalog's.
            _, extra = self.similarity.get_many([], [category_row(own), new_arrivals_row(own)])
            lists = {**lists, **extra}
        popular = [
            item
            for item, _ in lists.get(category_row(source), PopularList()).items
            if item not in excluded and list_filter.admits(item, source)
        ]
        while slots > 0:  # fewer popular items than slots: the look-alikes keep the rest
            head = {r.item_id for r in _keeping(listed, k - slots, reserved)}
            available = sum(1 for item in popular if item not in head)
            if available >= slots:
                break
            slots = available
        mixed = _pad_with_popular(_keeping(listed, k - slots, reserved), lists, excluded, k, list_filter, own)
        if own and new_arrivals_row(own) in lists:
            mixed = _pad_with_popular(mixed, lists, excluded, k, list_filter)
            mixed = _pad_with_new_arrivals(self.similarity, mixed, lists, excluded, k, list_filter, own)
        fallback = not listed
        return RecommendationList(_padded(self.similarity, mixed, lists, excluded, k, list_filter), fallback)

    def _blend_similar(
        self,
        item_id: str,
        row: SimilarityRow | None,
        collaborative: list[Neighbour],
        content: list[Neighbour],
        k: int,
        peak: float,
    ) -> tuple[list[Recommendation], set[str]]:
        """The blended list (best first) and its reserved items: the content-only items
        holding the reserved ``content_slots`` and the behaviour-only ones holding the
        reserved ``behaviour_slots``. ``peak`` scales the behaviour scores (the row's best
        neighbour score, filtered or not)."""
        settings = self.settings
        beta = settings.content_weight + (1.0 - settings.content_weight) * coldness(row, settings)
        behaviour = {n.item_id: n.score / peak for n in collaborative}
        text = {n.item_id: n.score for n in content}
        ordered = sorted(behaviour.keys() | text.keys())
        scores = np.array([(1.0 - beta) * behaviour.get(i, 0.0) + beta * text.get(i, 0.0) for i in ordered])
        chosen = [ordered[index] for index in top_k(scores, k)]
        # Items known only by content (new ones above all) and, after them, items known only
        # by behaviour (a warming item's partners, which look-alikes outscore while β is
        # high) each hold their reserved slots (at least 1, never the whole list nor its best
        # item), in place of the weakest items of the other kind.
        best = chosen[:1]
        content_only = [n.item_id for n in content if n.item_id not in behaviour]
        behaviour_only = [n.item_id for n in collaborative if n.item_id not in text]
        kept: set[str] = set()
        for pool, share, replaceable in (
            (content_only, settings.content_slots, behaviour),
            (behaviour_only, settings.behaviour_slots, text),
        ):
            reserved = min(len(pool), max(1, round(k * share)), k - 1) if share else 0
            missing = max(0, reserved - sum(i in chosen for i in pool))
            extra = [i for i in pool if i not in chosen][:missing]
            overflow = len(chosen) + len(extra) - k
            if extra and overflow > 0:
                droppable = [
                    i for i in reversed(chosen) if i in replaceable and i not in kept and i not in best
                ]
                drop = set(droppable[:overflow])
                chosen = [i for i in chosen if i not in drop]
                extra = extra[: k - len(chosen)]
            chosen += extra
            kept |= set([i for i in pool if i in chosen][:reserved])
        score_of = dict(zip(ordered, scores.tolist(), strict=True))
        viewed = f"customers who viewed {item_id} also viewed this"
        alike = f"similar to {item_id} (title, category, tags)"
        listed = []
        for candidate in sorted(chosen, key=lambda i: (-score_of[i], i)):
            reasons = ([viewed] if candidate in behaviour else []) + ([alike] if candidate in text else [])
            listed.append(Recommendation(candidate, score_of[candidate], SOURCE_SIMILAR, reasons, [item_id]))
        return listed, kept


SOURCE_CROSS_SELL = "cross_sell"
CROSS_SELL_MAX_ITEMS = 50


@dataclass
class CrossSellService:
    """Cross-sell ("frequently bought together"): complements of a cart (items bought in the same
    baskets, scored by ``cross_sell_measure``), never an item already in the cart.

    A candidate m scores Σ_c S_b[c, m] (or max_c with ``cross_sell_aggregate="max"``) over
    the cart items c, S_b[c, ·] being c's complements row; its reason names the cart item
    that contributed most. Short lists are padded with popular items, then new ones.

    Round trips: one BatchGetItem (the cart items' rows, ``#popular`` or the filter
    category's list, ``#out_of_stock`` and the new arrivals), after one GetItem of the user when the cart is
    the user's stored cart or a user id is given.
    """

    settings: Settings
    users: UserRepository
    similarity: SimilarityRepository

    def for_user(
        self, user_id: str, k: int, list_filter: ListFilter = NO_FILTER, seen: str = EXCLUDE_NONE
    ) -> RecommendationList:
        """Complements of the user's current cart (added, not removed, not yet bought): its
        newest :data:`CROSS_SELL_MAX_ITEMS` items when it holds more (the cart lists them
        oldest first); older ones are still excluded from the answer."""
        state = self.users.get(user_id)
        cart = list(state.cart)[-CROSS_SELL_MAX_ITEMS:] if state else []
        return self.for_items(cart, k, state, list_filter, seen)

    def for_request(
        self,
        items: list[str],
        k: int,
        user_id: str | None = None,
        list_filter: ListFilter = NO_FILTER,
        seen: str = EXCLUDE_NONE,
    ) -> RecommendationList:
        """Complements of ``items``; with ``user_id``, the user's cart is excluded too."""
        state = self.users.get(user_id) if user_id else None
        return self.for_items(items, k, state, list_filter, seen)

    def for_items(
        self,
        items: list[str],
        k: int,
        state: UserState | None = None,
        list_filter: ListFilter = NO_FILTER,
        seen: str = EXCLUDE_NONE,
    ) -> RecommendationList:
        """``seen``: which of the user's own items may not come back: none (the default:
        past purchases come back, boosted by ``cross_sell_history_weight``, as shops that
        re-order want), purchased (none of them: a shop of durables), or history (nor any
        recent item)."""
        check_exclude_mode(seen, "seen")  # before anything is read
        settings = self.settings
        cart = list(dict.fromkeys(items))[:CROSS_SELL_MAX_ITEMS]
        rows, lists = self.similarity.get_many(cart, request_lists(list_filter))
        in_carts = set(cart) | (set(state.cart) if state else set())  # never candidates
        excluded = Unlisted(
            frozenset(in_carts), out_of_stock(lists) if list_filter.in_stock_only else frozenset()
        )
        excluded |= own_items(state, seen)
        candidates = {n.item_id for row in rows.values() for n in row.complements}
        bought: dict[str, float] = {}
        if state and seen == EXCLUDE_NONE and settings.cross_sell_history_weight > 0:
            newest_first = [item for item in reversed(state.purchased) if item not in in_carts]
            bought = {
                item: settings.cross_sell_history_weight / (1.0 + rank) ** settings.cross_sell_history_decay
                for rank, item in enumerate(newest_first)
            }
            candidates.update(bought)
        ordered = sorted(candidates - in_carts)  # what the request filters out too: drop_filtered
        listed: list[Recommendation] = []
        if ordered:
            column = {item_id: index for index, item_id in enumerate(ordered)}
            matrix = np.zeros((len(cart), len(ordered)))
            for row_index, item_id in enumerate(cart):
                row = rows.get(item_id)
                for n in row.complements if row else ():
                    if n.item_id in column:
                        matrix[row_index, column[n.item_id]] = n.score
            if not cart:  # only the user's past purchases (an empty cart)
                basket, source = np.zeros(len(ordered)), np.zeros(len(ordered), dtype=np.int64)
            elif settings.cross_sell_aggregate == "max":
                basket, source = matrix.max(axis=0), matrix.argmax(axis=0)
                if settings.cross_sell_sum_weight:
                    basket = basket + settings.cross_sell_sum_weight * matrix.sum(axis=0)
            else:
                basket, source = personalized_scores(np.ones(len(cart)), matrix)
            scores = basket.copy()
            if bought:
                peak = float(basket.max()) if basket.size else 0.0
                scores = (basket / peak if peak > 0 else basket) + np.array(
                    [bought.get(i, 0.0) for i in ordered]
                )
            drop_filtered(
                scores,
                ordered,
                excluded,
                list_filter,
                lambda: known_categories(rows, lists, state.items if state else ()),
            )
            for index in top_k(scores, k):  # (positive scores only)
                item_id = ordered[index]
                if basket[index] > 0:
                    partner = cart[int(source[index])]
                    reasons, because = [f"often in baskets with {partner}, which is in your cart"], [partner]
                else:
                    reasons, because = ["you bought it before"], []
                if basket[index] > 0 and item_id in bought:
                    reasons.append("you bought it before")
                listed.append(
                    Recommendation(item_id, float(scores[index]), SOURCE_CROSS_SELL, reasons, because)
                )
        fallback = not listed
        return RecommendationList(_padded(self.similarity, listed, lists, excluded, k, list_filter), fallback)
