"""Protocol P2 of ../shared/EVALUATION.md: session next-click, on any (session, item, time) files.

1. The training file is ingested in time order (each click a ``view`` event whose user is
   its session).
2. Test sessions are taken in order of their first click; after revealing positions 0..p
   the method is asked for top-K and the click at p+1 is checked (repeats count). Positions
   are numbered by the held-out click: the first prediction of a session is Position 1.
3. Modes: ``stream`` ingests every revealed test click (``engine.ingest([event])``) and asks
   ``engine.recommend(session_id, k, now, exclude="none")``, as production would;
   ``frozen`` builds the model from the training file only and asks
   ``engine.recommend_for_events(revealed clicks, k, now, exclude="none")`` (transient user,
   nothing stored). ``now`` is the time of the last revealed click.
4. HR@K and MRR@K over all positions, with 95% bootstrap intervals over sessions.
5. ``dump`` writes every prediction as ``SessionId;Position;Recommendations;Scores``.

Peers (frozen, trained on the training file): popularity, and implicit's ItemItem
cosine (K=20) / BM25 (K=100) on session x item click counts, queried with the revealed
clicks (no filtering: repeats are targets); their short lists are padded with the
training popularity ranking.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.evaluation import metrics
from streamrec.evaluation.datasets import Click, DumpNotWritten, clicks_in_time_order, sessions_in_order

MODES = ("stream", "frozen")
SESSION_PEERS = ("pop", "itemknn-cosine", "itemknn-bm25")
SESSION_PEER_DESCRIPTIONS = {
    "pop": "training-file click counts (ties: most recent first)",
    "itemknn-cosine": "implicit CosineRecommender (K=20) on session x item click counts of the training file",
    "itemknn-bm25": "implicit BM25Recommender (K=100, K1=1.2, B=0.75) on session x item click counts "
    "of the training file",
}


def click_event(click: Click, prefix: str) -> dict[str, Any]:
    """A click as a README-schema event: a view by the session's pseudo-user."""
    return {
        "event_id": f"{prefix}{click.row}",
        "event_type": "view",
        "user_id": click.session_id,
        "item_id": click.item_id,
        "timestamp": click.time,
        "session_id": click.session_id,
    }


@dataclass
class Prediction:
    session_id: str
    position: int  # index of the held-out click in its session (>= 1)
    items: list[str]
    scores: list[float]
    rank: int  # 1-based rank of the held-out click, 0 = miss


Predictor = Callable[[str, list[Click], int], tuple[list[str], list[float]]]


def walk_sessions(
    test: list[Click],
    k: int,
    predict: Predictor,
    reveal: Callable[[Click], None] | None = None,
    progress: Callable[..., None] | None = None,
    label: str = "",
) -> list[Prediction]:
    """Reveal each test session click by click and ask ``predict(session, revealed, k)``
    before each next click; ``reveal`` is told about every revealed click first."""
    sessions = sessions_in_order(test)
    predictions: list[Prediction] = []
    started = time.monotonic()
    total = sum(len(clicks) - 1 for _, clicks in sessions if clicks)
    for number, (session_id, clicks) in enumerate(sessions, start=1):
        for p in range(len(clicks) - 1):
            if reveal is not None:
                reveal(clicks[p])
            items, scores = predict(session_id, clicks[: p + 1], k)
            target = clicks[p + 1].item_id
            predictions.append(
                Prediction(session_id, p + 1, items[:k], scores[:k], metrics.rank_of(target, items[:k]))
            )
        if clicks and reveal is not None:
            reveal(clicks[-1])  # the last click is revealed too (stream mode ingests it)
        if progress is not None:
            elapsed = time.monotonic() - started
            progress(
                f"P2 {label}: {number:,}/{len(sessions):,} sessions, "
                f"{len(predictions):,}/{total:,} positions, {elapsed:,.0f} s elapsed",
                final=number == len(sessions),
            )
    return predictions


def summarize_predictions(
    predictions: Sequence[Prediction], k: int, resamples: int = metrics.BOOTSTRAP_RESAMPLES
) -> tuple[dict[str, float], dict[str, list[float]], list[float]]:
    """(metrics, 95% intervals over sessions, HR@1..20 curve)."""
    ranks = np.array([p.rank for p in predictions], dtype=np.int64)
    names = [f"hr@{k}", f"mrr@{k}"]
    values = {name: metrics.per_request(name, ranks) for name in names}
    result = {name: float(v.mean()) if v.size else 0.0 for name, v in values.items()}
    intervals = metrics.bootstrap_intervals(values, [p.session_id for p in predictions], resamples=resamples)
    return result, {n: [lo, hi] for n, (lo, hi) in intervals.items()}, metrics.hr_curve(ranks)


def write_dump(predictions: Iterable[Prediction], path: Path) -> None:
    """``SessionId;Position;Recommendations;Scores`` (comma-separated top-K)."""
    try:
        with Path(path).open("w") as handle:
            handle.write("SessionId;Position;Recommendations;Scores\n")
            for p in predictions:
                scores = ",".join(format(s, ".6g") for s in p.scores)
                handle.write(f"{p.session_id};{p.position};{','.join(p.items)};{scores}\n")
    except OSError as error:
        raise DumpNotWritten(f"cannot write {path}: {error.strerror or error}") from None


# ---- The engine ------------------------------------------------------------------------------
class EngineSessions:
    """The production engine (in-memory adapters) trained on the training file."""

    def __init__(self, settings: Any = None, engine_factory: Callable[[Any], Any] | None = None) -> None:
        from streamrec.settings import Settings

        if engine_factory is None:
            from streamrec.evaluation.engine import InMemoryEngine

            engine_factory = InMemoryEngine
        self.engine = engine_factory(settings if settings is not None else Settings())

    def train(self, train: list[Click], batch: int = 1, progress: Callable[..., None] | None = None) -> None:
        ordered = clicks_in_time_order(train)
        started = time.monotonic()
        for start in range(0, len(ordered), batch):
            self.engine.ingest([click_event(c, "train-") for c in ordered[start : start + batch]])
            if progress is not None:
                done = min(start + batch, len(ordered))
                progress(
                    f"P2 training: {done:,}/{len(ordered):,} clicks, {time.monotonic() - started:,.0f} s",
                    final=done == len(ordered),
                )

    def supports_frozen(self) -> bool:
        return hasattr(self.engine, "recommend_for_events")

    def frozen(self, session_id: str, revealed: list[Click], k: int) -> tuple[list[str], list[float]]:
        events = [click_event(c, "test-") for c in revealed]
        result = self.engine.recommend_for_events(events, k, now=revealed[-1].time, exclude="none")
        return [r.item_id for r in result.items], [r.score for r in result.items]

    def reveal(self, click: Click) -> None:
        self.engine.ingest([click_event(click, "test-")])

    def stream(self, session_id: str, revealed: list[Click], k: int) -> tuple[list[str], list[float]]:
        result = self.engine.recommend(session_id, k, now=revealed[-1].time, exclude="none")
        return [r.item_id for r in result.items], [r.score for r in result.items]


# ---- Peers (frozen) --------------------------------------------------------------------------
class PopularityPeer:
    def __init__(self, train: list[Click]) -> None:
        counts: dict[str, int] = {}
        last: dict[str, int] = {}
        for n, click in enumerate(clicks_in_time_order(train)):
            counts[click.item_id] = counts.get(click.item_id, 0) + 1
            last[click.item_id] = n
        self.ranking = sorted(counts, key=lambda i: (-counts[i], -last[i]))
        top = counts[self.ranking[0]] if self.ranking else 1
        self.scores = [counts[i] / top for i in self.ranking]

    def top(self, k: int, exclude: set[str] = frozenset()) -> tuple[list[str], list[float]]:  # type: ignore[assignment]
        items: list[str] = []
        scores: list[float] = []
        for item, score in zip(self.ranking, self.scores, strict=True):
            if item not in exclude:
                items.append(item)
                scores.append(score)
                if len(items) == k:
                    break
        return items, scores

    def predict(self, session_id: str, revealed: list[Click], k: int) -> tuple[list[str], list[float]]:
        return self.top(k)


class ItemKNNPeer:
    """implicit ItemItem on session x item counts; the revealed clicks are the query row."""

    def __init__(self, kind: str, train: list[Click], popularity: PopularityPeer) -> None:
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
        from scipy.sparse import csr_matrix

        self.popularity = popularity
        self.item_index: dict[str, int] = {}
        session_index: dict[str, int] = {}
        rows = [session_index.setdefault(c.session_id, len(session_index)) for c in train]
        cols = [self.item_index.setdefault(c.item_id, len(self.item_index)) for c in train]
        self.items = list(self.item_index)
        matrix = csr_matrix(
            (np.ones(len(train), dtype=np.float32), (rows, cols)), shape=(len(session_index), len(self.items))
        )
        matrix.sum_duplicates()
        self.model = (
            CosineRecommender(K=20, num_threads=1)
            if kind == "cosine"
            else BM25Recommender(K=100, num_threads=1)
        )
        with warnings.catch_warnings():  # implicit's BM25 weighting hands itself a COO matrix
            warnings.simplefilter("ignore")
            self.model.fit(matrix, show_progress=False)

    def predict(self, session_id: str, revealed: list[Click], k: int) -> tuple[list[str], list[float]]:
        from scipy.sparse import csr_matrix

        counts: dict[int, float] = {}
        for click in revealed:
            index = self.item_index.get(click.item_id)
            if index is not None:
                counts[index] = counts.get(index, 0.0) + 1.0
        items: list[str] = []
        scores: list[float] = []
        if counts:
            indices = np.array(sorted(counts), dtype=np.int32)
            row = csr_matrix(
                (
                    np.array([counts[i] for i in indices], dtype=np.float32),
                    indices,
                    np.array([0, indices.size]),
                ),
                shape=(1, len(self.items)),
            )
            ids, values = self.model.recommend(0, row, N=k, filter_already_liked_items=False)
            for i, v in zip(ids, values, strict=True):
                if i >= 0 and v > 0:
                    items.append(self.items[int(i)])
                    scores.append(float(v))
        if len(items) < k:
            extra, _ = self.popularity.top(k - len(items), set(items))
            items.extend(extra)
            scores.extend([0.0] * len(extra))
        return items, scores


def build_peer(name: str, train: list[Click], popularity: PopularityPeer | None = None) -> Predictor:
    """A frozen session peer trained on ``train``."""
    popularity = popularity if popularity is not None else PopularityPeer(train)
    if name == "pop":
        return popularity.predict
    if name == "itemknn-cosine":
        return ItemKNNPeer("cosine", train, popularity).predict
    if name == "itemknn-bm25":
        return ItemKNNPeer("bm25", train, popularity).predict
    raise ValueError(f"unknown session peer {name!r}; expected one of {SESSION_PEERS}")


# ---- The run ---------------------------------------------------------------------------------
def run_sessions(
    train: list[Click],
    test: list[Click],
    k: int = 20,
    modes: Sequence[str] = ("stream",),
    peers: Sequence[str] = (),
    settings: Any = None,
    dump: dict[str, Path] | None = None,
    progress: Callable[..., None] | None = None,
    train_batch: int = 1,
    engine_factory: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Run P2 on clicks; returns ``{"engine": {mode: metrics}, "peers": {...}, ...}``.

    Frozen mode runs first (it stores nothing), stream mode after it on the same trained
    engine, so the training file is ingested once. ``dump`` maps a mode or peer name to
    the file its predictions are written to.
    """
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    unknown = set(peers) - set(SESSION_PEERS)
    if unknown:
        raise ValueError(f"unknown session peer(s) {sorted(unknown)}; expected some of {SESSION_PEERS}")
    started = time.monotonic()
    result: dict[str, Any] = {
        "k": k,
        "engine": {},
        "peers": {},
        "intervals": {},
        "hr_curve": {},
        "time_s": {},
        "train_clicks": len(train),
        "test_clicks": len(test),
        "test_sessions": len({c.session_id for c in test}),
    }
    tick = time.monotonic()
    engine = EngineSessions(settings, engine_factory)
    engine.train(train, batch=train_batch, progress=progress)
    result["time_s"]["engine training"] = round(time.monotonic() - tick, 1)
    positions = None
    for mode in sorted(modes, key=lambda m: m != "frozen"):
        tick = time.monotonic()
        if mode == "frozen" and not engine.supports_frozen():
            result["engine"][mode] = {"error": "this engine has no recommend_for_events (frozen mode)"}
            continue
        if mode == "frozen":
            predictions = walk_sessions(test, k, engine.frozen, progress=progress, label="engine frozen")
        else:
            predictions = walk_sessions(
                test, k, engine.stream, reveal=engine.reveal, progress=progress, label="engine stream"
            )
        values, intervals, curve = summarize_predictions(predictions, k)
        values["positions"] = len(predictions)
        result["engine"][mode] = values
        result["intervals"][f"engine ({mode})"] = intervals
        result["hr_curve"][f"engine ({mode})"] = curve
        result["time_s"][f"engine {mode}"] = round(time.monotonic() - tick, 1)
        positions = len(predictions)
        if dump and mode in dump:
            write_dump(predictions, dump[mode])
    popularity = PopularityPeer(train) if peers else None
    for name in peers:
        tick = time.monotonic()
        predict = build_peer(name, train, popularity)
        predictions = walk_sessions(test, k, predict, progress=progress, label=name)
        values, intervals, curve = summarize_predictions(predictions, k)
        values["positions"] = len(predictions)
        result["peers"][name] = values
        result["intervals"][name] = intervals
        result["hr_curve"][name] = curve
        result["time_s"][name] = round(time.monotonic() - tick, 1)
        positions = len(predictions) if positions is None else positions
        if dump and name in dump:
            write_dump(predictions, dump[name])
    result["positions"] = positions or 0
    result["targets"] = result["positions"]
    result["peer_config"] = {name: SESSION_PEER_DESCRIPTIONS[name] for name in peers}
    result["wall_time_s"] = round(time.monotonic() - started, 1)
    return result
