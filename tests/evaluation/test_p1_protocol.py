"""P1's rules on a tiny synthetic stream: targets, request-before-ingest, same-second
order, padding (rule 8), the seen filter, lazy 24 h refits (rules 6-7), summaries."""

from __future__ import annotations

import numpy as np
import pytest

from streamrec.evaluation import p1
from streamrec.evaluation.datasets import stream_from_events

W = 1_600_000_000.0  # warm-up end of the synthetic stream
DAY = 86_400.0


def _event(n: int, user: str, item: str, t: float, kind: str = "view") -> dict:
    return {"event_id": f"e{n}", "event_type": kind, "user_id": user, "item_id": item, "timestamp": t}


# (user, item, time); rows are given out of time order on purpose.
ROWS = [
    ("u1", "a", W - 100),
    ("u2", "a", W - 40),
    ("u1", "b", W - 50),
    ("u1", "c", W + 10),  # 3: target (u1 known, c new)
    ("u1", "a", W + 20),  # 4: re-view, not a target
    ("u3", "a", W + 30),  # 5: u3's first event, not a target
    ("u3", "b", W + 40),  # 6: target
    ("u3", "e", W + 50),  # 7: target; same second as the next row
    ("u3", "f", W + 50),  # 8: target, requested after row 7 was ingested
    ("u2", "a", W + DAY),  # 9: at the boundary: refit on rows before it; not a target
    ("u2", "d", W + DAY + 5),  # 10: target
    ("u4", "d", W + 3 * DAY + 1),  # 11: skips a boundary; first event of u4
]
# Targets in protocol order, as (user, item).
TARGETS = [("u1", "c"), ("u3", "b"), ("u3", "e"), ("u3", "f"), ("u2", "d")]


@pytest.fixture
def data():
    return stream_from_events([_event(n, u, i, t) for n, (u, i, t) in enumerate(ROWS)], W)


class Recorder(p1._Base):
    """Returns a scripted list per request and records what it saw."""

    def __init__(self, name="recorder", answer=None):
        self.name = name
        self.answer = answer or (lambda request, state: [])
        self.requests: list[p1.Request] = []
        self.positions: list[int] = []
        self.observed: list[int] = []

    def observe(self, index, state):
        self.observed.append(index)

    def recommend(self, request, state):
        self.requests.append(request)
        self.positions.append(state.position)
        return {self.name: list(self.answer(request, state))}


def test_stream_order_and_warmup(data):
    assert [e["timestamp"] for e in data.events] == sorted(t for _, _, t in ROWS)
    assert data.warmup == 3
    assert [data.events[n]["item_id"] for n in range(3)] == ["a", "b", "a"]  # u1 a, u1 b, u2 a
    assert data.n_items == 6


def test_targets_requests_before_ingest_and_same_second_order(data):
    recorder = Recorder()
    run = p1.run_p1(data, [recorder], k=3)
    got = [(data.user_ids[data.users[i]], data.item_ids[data.items[i]]) for i in run.target_indices]
    assert got == TARGETS
    # Every request comes before its own event is ingested, after all earlier ones.
    assert recorder.positions == run.target_indices
    assert recorder.observed == list(range(len(ROWS)))
    code = {item: n for n, item in enumerate(data.item_ids)}
    by_target = dict(zip(TARGETS, recorder.requests, strict=True))
    assert by_target[("u3", "f")].seen == {code["a"], code["b"], code["e"]}  # row 7 ingested first
    assert by_target[("u1", "c")].seen == {code["a"], code["b"]}
    assert by_target[("u3", "b")].now == W + 40  # ages are measured at the target's time
    assert run.outputs["recorder"].unpadded_ranks == [0, 0, 0, 0, 0]  # it answered nothing


def test_short_lists_are_padded_from_realtime_popularity_excluding_seen(data):
    code = {item: n for n, item in enumerate(data.item_ids)}
    # Always answers [a, c]: a is seen by everyone who is asked, so it is filtered.
    recorder = Recorder(answer=lambda request, state: [code["a"], code["c"]])
    run = p1.run_p1(data, [recorder], k=3)
    record = run.outputs["recorder"]
    # Target (u1, c): own list [c] -> rank 1, unpadded rank 1.
    assert record.ranks[0] == 1 and record.unpadded_ranks[0] == 1
    # Target (u3, b): own list [c]; popularity at W+40: a=4 events, then b, c (1 each,
    # c more recent) -> padded [c, b] (a seen; nothing else has an event yet): b at rank 2,
    # unpadded miss.
    assert record.ranks[1] == 2 and record.unpadded_ranks[1] == 0
    assert record.padded == 5  # every own list had fewer than 3 items
    assert record.recommended <= set(code.values())


def test_pad_list_drops_seen_and_repeats_and_pads_in_ranking_order():
    own, padded = p1.pad_list([5, 1, 5, 2, -1], frozenset({1}), [7, 2, 1, 8, 9], k=4)
    assert own == [5, 2]
    assert padded == [5, 2, 7, 8]


def test_popularity_ranking_breaks_ties_by_recency_and_window_expires(data):
    state = p1.StreamState(data)
    for n in range(6):  # up to (u3, a) at W + 30
        state.ingest(n)
    code = {item: n for n, item in enumerate(data.item_ids)}
    # a: 4 events; b and c one each, c more recent than b.
    assert state.global_ranking(3) == [code["a"], code["c"], code["b"]]
    assert state.global_ranking(3, exclude={code["a"]}) == [code["c"], code["b"]]
    # Last 24 h before W + DAY - 20: events after W - 20 only -> c (W+10), a (W+20, W+30).
    assert state.window_ranking(W + DAY - 20, DAY, 5) == [code["a"], code["c"]]
    with pytest.raises(ValueError):
        state.ingest(9)  # out of order


class FakeModel:
    """Recommends items in a fixed order; remembers what it was fitted on."""

    fitted: list[int] = []

    def fit(self, user_items):
        FakeModel.fitted.append(int(user_items.sum()))
        self.n_items = user_items.shape[1]

    def recommend(self, row, n):
        ids = np.array([i for i in range(self.n_items) if i not in set(row.indices)][:n])
        return ids, np.ones(ids.size)


def test_batch_peer_refits_lazily_at_each_boundary_on_events_before_it(data):
    pytest.importorskip("scipy", reason="the 'eval' extra is not installed")
    FakeModel.fitted = []
    peer = p1.BatchPeer("fake", FakeModel)
    run = p1.run_p1(data, [peer], k=2)
    # Fitted at the first test event on the warm-up (3 events), at W + DAY on the 9 events
    # before it, and at W + 3 days + 1 (the W + 2 days boundary passed with no event; the
    # refit belongs to W + 3 days) on all 11 events before it.
    assert run.fits["fake"] == [(W, 3), (W + DAY, 9), (W + 3 * DAY, 11)]
    assert FakeModel.fitted == [3, 9, 11]
    assert len(run.outputs["fake"].ranks) == len(TARGETS)


def test_batch_peer_drops_items_unknown_to_the_model_but_they_stay_seen(data):
    pytest.importorskip("scipy", reason="the 'eval' extra is not installed")
    FakeModel.fitted = []
    peer = p1.BatchPeer("fake", FakeModel)
    state = p1.StreamState(data)
    peer.start(state)
    for n in range(3):
        state.ingest(n)
    peer.before(W, state)  # fitted on a, b (warm-up items)
    state.ingest(3)  # u1 views c, unknown to the stale model
    row = peer._row(state.history[data.user_ids.index("u1")])
    assert row.shape == (1, 2) and sorted(row.indices) == [0, 1]
    code = {item: n for n, item in enumerate(data.item_ids)}
    request = p1.Request(4, "u1", data.user_ids.index("u1"), W + 20, 3, frozenset(state.history[0]))
    listed = peer.recommend(request, state)["fake"]
    assert code["c"] not in listed  # the model cannot know it
    own, _ = p1.pad_list(listed, request.seen, state.global_ranking(6), 3)
    assert code["c"] not in own  # and the seen filter would drop it anyway


def test_engine_runs_the_protocol_and_reports_summaries(data):
    silent = Recorder("silent")
    run = p1.run_p1(data, [*p1.build_methods(["pop", "pop-24h"]), silent], k=3)
    summary = p1.summarize(run, resamples=50)
    assert summary["targets"] == len(TARGETS)
    assert set(summary["engine"]) == {
        "hr@3", "mrr@3", "ndcg@3", "hr@3_unpadded", "coverage@3", "padded_share"
    }
    assert set(summary["peers"]) == {"pop", "pop-24h", "silent"}
    assert set(summary["variants"]) == {p1.ENGINE_AS_SERVED}
    values = {"engine": summary["engine"], **summary["peers"], **summary["variants"]}
    for name, metrics in values.items():
        assert len(summary["hr_curve"][name]) == 20
        low, high = summary["intervals"][name]["hr@3"]
        assert low <= metrics["hr@3"] <= high
    # Global popularity as a peer is exactly the padding of an empty list.
    assert run.outputs["pop"].ranks == run.outputs["silent"].ranks
