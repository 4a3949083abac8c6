"""Neighbour scores keep the bounds their measures promise, whatever the counts went through."""

from __future__ import annotations

import pytest

from streamrec.domain.model import Neighbour, SimilarityRow
from streamrec.domain.similarity import SimilarityService
from streamrec.evaluation.engine import InMemoryEngine
from streamrec.settings import Settings

T0 = 1_764_000_000


@pytest.mark.parametrize("measure", ["jaccard", "cosine"])
def test_an_item_coming_back_to_a_users_window_never_scores_above_one(measure):
    # A window of 3: the user keeps viewing j, so j stays, while i leaves (pushed out by x
    # and y) and comes back beside j, four times. Each return counts i again and its pair
    # with j, while j counts once: c_ij = 4 > c_jj = 1.
    items = ["i", "j", "x", "j", "y", "i"] + ["j", "x", "j", "y", "i"] * 3
    events = [
        {"event_id": f"e{n}", "event_type": "view", "user_id": "u", "item_id": item, "timestamp": T0 + n}
        for n, item in enumerate(items)
    ]
    engine = InMemoryEngine(Settings(history_length=3, similarity_measure=measure), eager=True)
    engine.ingest(events)
    stats = engine.item_stats.get_many(["i", "j"])
    pair = engine.cooccurrence.get_rows(["i"])["i"]["j"]
    assert pair > stats["j"].weight  # the case the cap is for
    scores = {n.item_id: n.score for n in engine.similarity.rows["i"].neighbours}
    assert 0 < scores["j"] <= 1.0
    assert all(n.score <= 1.0 for row in engine.similarity.rows.values() for n in row.neighbours)


class _NoStoredRows:
    def get_many(self, ids, **_):
        return {}, {}


def _two_hop(measure: str, direct: list[Neighbour], source: list[Neighbour]) -> SimilarityRow:
    rows = [SimilarityRow("i", direct), SimilarityRow("a", source)]
    SimilarityService(Settings(similarity_measure=measure), None, None, _NoStoredRows())._add_two_hop(rows)
    return rows[0]


def test_two_hop_llr_scores_stay_in_the_units_of_the_direct_ones():
    # i's direct neighbours a (G² 40) and b (25); a's row holds z at 40. Multiplying two G²
    # values gave z 40 * 40 * 0.5 = 800, above every direct neighbour; a's row is taken
    # relative to its best: 40 * (40 / 40) * 0.5 = 20.
    row = _two_hop(
        "llr", [Neighbour("a", 40.0), Neighbour("b", 25.0)], [Neighbour("i", 40.0), Neighbour("z", 40.0)]
    )
    assert [(n.item_id, n.score) for n in row.extended] == [("z", pytest.approx(20.0))]
    assert row.extended[0].score < row.neighbours[0].score


def test_two_hop_scores_of_a_bounded_measure_multiply_as_they_are():
    row = _two_hop(
        "jaccard", [Neighbour("a", 0.4), Neighbour("b", 0.25)], [Neighbour("i", 0.4), Neighbour("z", 0.2)]
    )
    assert [(n.item_id, n.score) for n in row.extended] == [("z", pytest.approx(0.4 * 0.2 * 0.5))]
