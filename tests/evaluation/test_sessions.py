"""P2 on synthetic files: reading, ordering, positions, both modes' calls, the dump; the
Diginetica split on the real sample when it is present."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.evaluation import sessions
from streamrec.evaluation.datasets import (
    Click,
    DatasetMissing,
    diginetica_split,
    read_session_file,
    sessions_in_order,
    write_session_file,
)

T0 = 1_700_000_000.0


def _write(path: Path, rows: list[tuple], sep: str = ",") -> Path:
    path.write_text(sep.join(["sid", "item", "ts", "extra"]) + "\n" + "".join(
        sep.join(str(v) for v in (*row, "x")) + "\n" for row in rows
    ))
    return path


TRAIN = [("s1", "a", T0), ("s1", "b", T0 + 1), ("s2", "a", T0 + 2), ("s2", "b", T0 + 3), ("s2", "c", T0 + 4)]
# Test sessions: t2 starts first although its rows come later; t1's rows are out of order.
TEST = [
    ("t1", "b", T0 + 102),
    ("t1", "a", T0 + 101),
    ("t1", "b", T0 + 103),  # a repeat: still a target
    ("t2", "a", T0 + 100),
    ("t2", "c", T0 + 100),  # same time: file order decides
    ("t3", "z", T0 + 104),  # a single click: no position
]


class FakeEngine:
    """Records every call; answers a fixed list."""

    def __init__(self, settings):
        self.calls: list[tuple] = []
        self.answer = ["b", "c", "a"]

    def ingest(self, events):
        self.calls.append(("ingest", [e["item_id"] for e in events], events[0]["user_id"]))

    def _list(self, k):
        from streamrec.domain.recommend import Recommendation, RecommendationList

        return RecommendationList([Recommendation(i, 1.0 / (n + 1), "personalized") for n, i in
                                   enumerate(self.answer[:k])], False)

    def recommend(self, user_id, k, now, exclude="purchased"):
        self.calls.append(("recommend", user_id, k, now, exclude))
        return self._list(k)

    def recommend_for_events(self, events, k, now, exclude="none"):
        self.calls.append(("for_events", [e["item_id"] for e in events], k, now, exclude))
        return self._list(k)


def test_reader_orders_sessions_by_first_click_and_clicks_by_time(tmp_path):
    clicks = read_session_file(_write(tmp_path / "test.csv", TEST, ";"), ";", "sid", "item", "ts")
    ordered = sessions_in_order(clicks)
    assert [sid for sid, _ in ordered] == ["t2", "t1", "t3"]
    assert [c.item_id for c in ordered[0][1]] == ["a", "c"]
    assert [c.item_id for c in ordered[1][1]] == ["a", "b", "b"]


def test_reader_errors_are_clear(tmp_path):
    with pytest.raises(DatasetMissing, match="nope.csv"):
        read_session_file(tmp_path / "nope.csv", ",", "sid", "item", "ts")
    path = _write(tmp_path / "f.csv", TRAIN)
    with pytest.raises(ValueError, match="no column 'session'"):
        read_session_file(path, ",", "session", "item", "ts")
    path.write_text("sid,item,ts\ns1,a,yesterday\n")
    with pytest.raises(ValueError, match="f.csv, line 2: field .ts.: time .yesterday."):
        read_session_file(path, ",", "sid", "item", "ts")


def test_iso_times_are_read(tmp_path):
    path = tmp_path / "iso.tsv"
    path.write_text("sid\titem\tts\ns\ta\t2016-05-25T00:00:01Z\ns\tb\t2016-05-25\n")
    clicks = read_session_file(path, "\t", "sid", "item", "ts")
    assert [c.time for c in clicks] == [1464134401.0, 1464134400.0]


def _clicks(rows):
    return [Click(s, i, t, n) for n, (s, i, t) in enumerate(rows)]


def test_frozen_mode_asks_with_the_revealed_clicks_and_stores_nothing(tmp_path):
    engines = []

    def factory(settings):
        engines.append(FakeEngine(settings))
        return engines[-1]

    dump = tmp_path / "frozen.csv"
    result = sessions.run_sessions(
        _clicks(TRAIN), _clicks(TEST), k=2, modes=["frozen"], dump={"frozen": dump}, engine_factory=factory
    )
    calls = engines[0].calls
    assert [c for c in calls if c[0] == "ingest"] == [
        ("ingest", [i], s) for s, i, _ in sorted(TRAIN, key=lambda r: r[2])
    ]  # training in time order, one event per call
    asked = [c for c in calls if c[0] != "ingest"]
    assert asked == [
        ("for_events", ["a"], 2, T0 + 100, "none"),
        ("for_events", ["a"], 2, T0 + 101, "none"),
        ("for_events", ["a", "b"], 2, T0 + 102, "none"),
    ]
    frozen = result["engine"]["frozen"]
    # Targets c (miss: answer [b, c] -> rank 2), b (rank 1), b (rank 1).
    assert frozen["positions"] == 3 and result["positions"] == 3
    assert frozen["hr@2"] == pytest.approx(1.0)
    assert frozen["mrr@2"] == pytest.approx((0.5 + 1 + 1) / 3)
    lines = dump.read_text().splitlines()
    assert lines[0] == "SessionId;Position;Recommendations;Scores"
    assert lines[1:] == ["t2;1;b,c;1,0.5", "t1;1;b,c;1,0.5", "t1;2;b,c;1,0.5"]


def test_stream_mode_ingests_each_revealed_click_before_asking():
    engines = []
    sessions.run_sessions(
        _clicks(TRAIN), _clicks(TEST), k=2, modes=["stream"],
        engine_factory=lambda s: engines.append(FakeEngine(s)) or engines[-1],
    )
    calls = engines[0].calls[len(TRAIN):]
    assert calls == [
        ("ingest", ["a"], "t2"),
        ("recommend", "t2", 2, T0 + 100, "none"),
        ("ingest", ["c"], "t2"),  # the session's last click is ingested too
        ("ingest", ["a"], "t1"),
        ("recommend", "t1", 2, T0 + 101, "none"),
        ("ingest", ["b"], "t1"),
        ("recommend", "t1", 2, T0 + 102, "none"),
        ("ingest", ["b"], "t1"),
        ("ingest", ["z"], "t3"),
    ]


def test_real_engine_and_peers_on_synthetic_sessions():
    pytest.importorskip("implicit", reason="the 'eval' extra is not installed")
    train = _clicks([(f"s{n}", item, T0 + 10 * n + j) for n in range(30) for j, item in
                     enumerate(["a", "b", "c"] if n % 2 else ["a", "c", "d"])])
    test = _clicks([("t1", "a", T0 + 1000), ("t1", "c", T0 + 1001), ("t1", "a", T0 + 1002)])
    result = sessions.run_sessions(train, test, k=3, modes=sessions.MODES, peers=sessions.SESSION_PEERS)
    assert result["positions"] == 2
    for mode in sessions.MODES:
        assert result["engine"][mode]["positions"] == 2
        assert result["engine"][mode]["hr@3"] == pytest.approx(1.0)  # c follows a; a repeats
    assert set(result["peers"]) == set(sessions.SESSION_PEERS)
    assert result["peers"]["itemknn-cosine"]["hr@3"] >= 0.5


def test_unknown_mode_or_peer_is_refused():
    with pytest.raises(ValueError, match="mode"):
        sessions.run_sessions([], [], modes=["replay"])
    with pytest.raises(ValueError, match="peer"):
        sessions.run_sessions([], [], peers=["gru4rec"])


def test_diginetica_split(data_dir, tmp_path):
    train, test = diginetica_split(data_dir)
    assert len(train) + len(test) == 12_391
    assert len({c.session_id for c in test}) == 308
    assert min(c.time for c in test) >= 1_464_134_400  # 2016-05-25 00:00 UTC
    for _, clicks in sessions_in_order(test):
        assert [c.time for c in clicks] == sorted(c.time for c in clicks)
    write_session_file(test, tmp_path / "test.tsv")
    again = read_session_file(tmp_path / "test.tsv", "\t", "SessionId", "ItemId", "Time")

    def shape(clicks):
        return [(sid, [(c.item_id, c.time) for c in cs]) for sid, cs in sessions_in_order(clicks)]

    assert shape(again) == shape(test)
