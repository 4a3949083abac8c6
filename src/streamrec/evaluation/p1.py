"""Protocol P1 of ../shared/EVALUATION.md: prequential next-new-item on user streams.

The stream is walked in (timestamp, row) order. Every method sees every event in that
order; for a *target* (the user has an earlier event and the item is not among the user's
earlier items) every method is asked for the user's top-K *before* the event is ingested,
then the event is ingested. Rules applied here, by number:

4. targets and request-before-ingest, as above;
6. batch peers (implicit) are fitted on the warm-up and refitted every 24 h of stream time;
   at request time they get the user's full history up to that moment (fresh user state,
   stale model);
7. ages are measured at the request time (the target's timestamp); a batch model is refitted
   lazily at the first request or event at or after each boundary, on every event strictly
   before it; items unknown to a stale model are dropped from its user_items row but still
   count as seen; coverage's denominator is the number of distinct items in the file;
8. every method's list is cut to items the user never interacted with ("seen" filter), then
   padded from the real-time global popularity ranking (items not seen and not yet listed);
   the unpadded HR@K is reported too.

The engine is the production code (:class:`~streamrec.evaluation.engine.InMemoryEngine`):
each event is one ingest call, requests go through the production RecommendationService
with ``exclude="history"``. Its own padding (popular, then new items) is stripped before rule 8's common
padding, so that every method is padded alike; the list as served (own padding kept) is
reported as the variant ``engine (as served)``.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from streamrec.domain.recommend import PADDING_SOURCES
from streamrec.evaluation import metrics
from streamrec.evaluation.datasets import StreamData

DAY_SECONDS = 86_400.0
ENGINE = "engine"
ENGINE_AS_SERVED = "engine (as served)"
ENGINE_MAX_K = 100  # the API's largest k

# Peer configuration (fixed; reported with the results).
ITEMKNN_COSINE_NEIGHBOURS = 20
ITEMKNN_BM25_NEIGHBOURS = 100
ALS_PARAMS = {"factors": 64, "regularization": 0.01, "alpha": 1.0, "iterations": 15, "random_state": 42}

PEER_DESCRIPTIONS = {
    "pop": "global popularity: events per item so far, real time (ties: most recent first)",
    "pop-24h": "popularity over the last 24 h of stream time before the request, real time",
    "itemknn-cosine": f"implicit CosineRecommender (ItemItem, K={ITEMKNN_COSINE_NEIGHBOURS}), "
    "user x item event counts, refitted every 24 h",
    "itemknn-bm25": f"implicit BM25Recommender (ItemItem, K={ITEMKNN_BM25_NEIGHBOURS}, K1=1.2, B=0.75), "
    "user x item event counts, refitted every 24 h",
    "als": "implicit AlternatingLeastSquares (CPU; "
    + ", ".join(f"{k}={v}" for k, v in ALS_PARAMS.items())
    + "), user x item event counts, refitted every 24 h, recalculate_user=True",
    "rtrec": "rtrec SLIM (defaults), fitted on the warm-up, then updated online after every event "
    "(rating 1 per event, accumulated); zero-score items dropped",
}
DEFAULT_PEERS = ("pop", "pop-24h", "itemknn-cosine", "itemknn-bm25", "als")
ALL_PEERS = (*DEFAULT_PEERS, "rtrec")


# ---- What the harness knows at a point of the stream -----------------------------------------
class StreamState:
    """Per-user histories and real-time popularity after the first ``position`` events."""

    def __init__(self, data: StreamData) -> None:
        self.data = data
        self.position = 0
        self.history: list[dict[int, int]] = [{} for _ in data.user_ids]  # user -> item -> events
        self.counts = np.zeros(data.n_items, dtype=np.int64)
        self.last_seen = np.full(data.n_items, -1, dtype=np.int64)
        self.window_counts = np.zeros(data.n_items, dtype=np.int64)
        self.window: deque[int] = deque()

    def ingest(self, index: int) -> None:
        if index != self.position:
            raise ValueError(f"events must be ingested in order: expected {self.position}, got {index}")
        user, item = int(self.data.users[index]), int(self.data.items[index])
        history = self.history[user]
        history[item] = history.get(item, 0) + 1
        self.counts[item] += 1
        self.last_seen[item] = index
        self.window_counts[item] += 1
        self.window.append(index)
        self.position += 1

    @staticmethod
    def _ranking(counts: np.ndarray, last_seen: np.ndarray, size: int, exclude: Iterable[int]) -> list[int]:
        """Items by count (ties: most recently seen first), skipping ``exclude``."""
        excluded = set(exclude)
        candidates = np.flatnonzero(counts)
        want = min(candidates.size, size + len(excluded))
        if want <= 0:
            return []
        # Unique keys: count first, then recency (event index < 2^40).
        keys = counts[candidates] * (1 << 40) + last_seen[candidates]
        if want < candidates.size:
            part = np.argpartition(-keys, want - 1)[:want]
        else:
            part = np.arange(candidates.size)
        best = candidates[part[np.argsort(-keys[part], kind="stable")]]
        return [int(i) for i in best if int(i) not in excluded][:size]

    def global_ranking(self, size: int, exclude: Iterable[int] = ()) -> list[int]:
        return self._ranking(self.counts, self.last_seen, size, exclude)

    def window_ranking(self, now: float, seconds: float, size: int, exclude: Iterable[int] = ()) -> list[int]:
        """Popularity over events with timestamp in (now - seconds, now]."""
        timestamps = self.data.timestamps
        while self.window and timestamps[self.window[0]] <= now - seconds:
            self.window_counts[self.data.items[self.window.popleft()]] -= 1
        return self._ranking(self.window_counts, self.last_seen, size, exclude)


@dataclass(frozen=True)
class Request:
    """A target's request as a method sees it (the held-out item is not part of it)."""

    index: int  # the target event's position in the stream
    user: str
    user_code: int
    now: float
    k: int
    seen: frozenset[int]  # item codes the user interacted with before this event


class Method(Protocol):
    name: str

    def start(self, state: StreamState) -> None: ...

    def before(self, now: float, state: StreamState) -> None:
        """Called before each test event (request or ingest): lazy refits happen here."""
        ...

    def observe(self, index: int, state: StreamState) -> None:
        """Event ``index`` was just ingested by the harness."""
        ...

    def recommend(self, request: Request, state: StreamState) -> dict[str, list[int]]:
        """Output name -> ranked item codes (the harness filters seen items and pads)."""
        ...


class _Base:
    name = ""

    def start(self, state: StreamState) -> None:
        pass

    def before(self, now: float, state: StreamState) -> None:
        pass

    def observe(self, index: int, state: StreamState) -> None:
        pass


# ---- The engine ------------------------------------------------------------------------------
class EngineMethod(_Base):
    """The production pipeline (in-memory adapters), one ingest call per event."""

    name = ENGINE

    def __init__(
        self,
        settings: Any = None,
        engine_factory: Callable[[Any], Any] | None = None,
        warmup_batch: int = 1,
    ) -> None:
        from streamrec.settings import Settings

        if warmup_batch < 1:
            raise ValueError("warmup_batch must be at least 1")
        self.warmup_batch = warmup_batch
        self.pending: list[dict[str, Any]] = []

        self.settings = settings if settings is not None else Settings()
        if engine_factory is None:
            from streamrec.evaluation.engine import InMemoryEngine

            engine_factory = InMemoryEngine
        self.engine_factory = engine_factory
        self.engine: Any = None
        self.codes: dict[str, int] = {}

    def start(self, state: StreamState) -> None:
        self.engine = self.engine_factory(self.settings)
        self.codes = {item: code for code, item in enumerate(state.data.item_ids)}

    def observe(self, index: int, state: StreamState) -> None:
        # Warm-up events may go in batches (as Kinesis delivers them); the test stream goes
        # one event per batch, since a request may follow any event.
        event = state.data.events[index]
        if index < state.data.warmup and self.warmup_batch > 1:
            self.pending.append(event)
            if len(self.pending) >= self.warmup_batch or index == state.data.warmup - 1:
                self.engine.ingest(self.pending)
                self.pending = []
            return
        self.engine.ingest([event])

    def recommend(self, request: Request, state: StreamState) -> dict[str, list[int]]:
        size = min(ENGINE_MAX_K, request.k + len(request.seen))
        result = self.engine.recommend(request.user, size, now=request.now, exclude="history")
        served = [self.codes.get(rec.item_id, -1) for rec in result.items]
        own = [
            code for code, rec in zip(served, result.items, strict=True) if rec.source not in PADDING_SOURCES
        ]
        return {ENGINE: own, ENGINE_AS_SERVED: served}


# ---- Popularity peers ------------------------------------------------------------------------
class GlobalPopularity(_Base):
    name = "pop"

    def recommend(self, request: Request, state: StreamState) -> dict[str, list[int]]:
        return {self.name: state.global_ranking(request.k, request.seen)}


class WindowPopularity(_Base):
    def __init__(self, seconds: float = DAY_SECONDS, name: str = "pop-24h") -> None:
        self.seconds = seconds
        self.name = name

    def recommend(self, request: Request, state: StreamState) -> dict[str, list[int]]:
        return {self.name: state.window_ranking(request.now, self.seconds, request.k, request.seen)}


# ---- Batch peers -----------------------------------------------------------------------------
class BatchModel(Protocol):
    def fit(self, user_items: Any) -> None: ...

    def recommend(self, row: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(item indices, scores) of the model's item space for one 1 x items CSR row."""
        ...


class BatchPeer(_Base):
    """A model fitted on every event before a boundary; boundaries every ``period`` seconds
    from the warm-up's end, each refit done lazily at the first event at or after it."""

    def __init__(
        self,
        name: str,
        make_model: Callable[[], BatchModel],
        period: float = DAY_SECONDS,
        positive_only: bool = False,
    ) -> None:
        self.name = name
        self.make_model = make_model
        self.period = period
        self.positive_only = positive_only
        self.model: BatchModel | None = None
        self.next_boundary = 0.0
        self.fits: list[tuple[float, int]] = []  # (boundary, events fitted on)
        self.local_of = np.zeros(0, dtype=np.int64)
        self.global_of = np.zeros(0, dtype=np.int64)

    def start(self, state: StreamState) -> None:
        self.next_boundary = state.data.warmup_end
        self.fits = []
        self.model = None

    def before(self, now: float, state: StreamState) -> None:
        if now < self.next_boundary:
            return
        boundary = self.next_boundary
        while boundary + self.period <= now:
            boundary += self.period
        self._fit(state)
        self.fits.append((boundary, state.position))
        self.next_boundary = boundary + self.period

    def _fit(self, state: StreamState) -> None:
        from scipy.sparse import csr_matrix

        n = state.position
        users = state.data.users[:n]
        items = state.data.items[:n]
        self.global_of = np.unique(items)
        self.local_of = np.full(state.data.n_items, -1, dtype=np.int64)
        self.local_of[self.global_of] = np.arange(self.global_of.size)
        user_space, user_local = np.unique(users, return_inverse=True)
        matrix = csr_matrix(
            (np.ones(n, dtype=np.float32), (user_local, self.local_of[items])),
            shape=(user_space.size, self.global_of.size),
        )
        matrix.sum_duplicates()
        self.model = self.make_model()
        self.model.fit(matrix)

    def _row(self, history: dict[int, int]) -> Any:
        from scipy.sparse import csr_matrix

        codes = np.fromiter(history.keys(), dtype=np.int64, count=len(history))
        counts = np.fromiter(history.values(), dtype=np.float32, count=len(history))
        local = self.local_of[codes] if self.local_of.size else np.full(codes.size, -1)
        known = local >= 0  # rule 7: unknown items leave the row (they stay "seen")
        order = np.argsort(local[known])
        indices = local[known][order]
        return csr_matrix(
            (counts[known][order], indices, np.array([0, indices.size])), shape=(1, self.global_of.size)
        )

    def recommend(self, request: Request, state: StreamState) -> dict[str, list[int]]:
        if self.model is None:
            return {self.name: []}
        row = self._row(state.history[request.user_code])
        if row.nnz == 0:
            return {self.name: []}
        ids, scores = self.model.recommend(row, request.k)
        ids = np.asarray(ids)
        scores = np.asarray(scores)
        keep = ids >= 0
        if self.positive_only:
            keep &= scores > 0  # a zero score means no evidence: the list is short, rule 8 pads
        return {self.name: [int(self.global_of[i]) for i in ids[keep]]}


class ImplicitItemKNN:
    """implicit's ItemItemRecommender (cosine or BM25) behind :class:`BatchModel`."""

    def __init__(self, kind: str, neighbours: int) -> None:
        self.kind = kind
        self.neighbours = neighbours
        self.model: Any = None

    def fit(self, user_items: Any) -> None:
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

        cls = {"cosine": CosineRecommender, "bm25": BM25Recommender}[self.kind]
        self.model = cls(K=self.neighbours, num_threads=1)
        with warnings.catch_warnings():  # implicit's BM25 weighting hands itself a COO matrix
            warnings.simplefilter("ignore")
            self.model.fit(user_items, show_progress=False)

    def recommend(self, row: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.model.recommend(0, row, N=n, filter_already_liked_items=True)


class ImplicitALS:
    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params = dict(ALS_PARAMS if params is None else params)
        self.model: Any = None

    def fit(self, user_items: Any) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        self.model = AlternatingLeastSquares(num_threads=1, **self.params)
        self.model.fit(user_items, show_progress=False)

    def recommend(self, row: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.model.recommend(0, row, N=n, filter_already_liked_items=True, recalculate_user=True)


# ---- rtrec (online SLIM) ---------------------------------------------------------------------
class RtrecPeer(_Base):
    """rtrec's SLIM: one bulk fit on the warm-up at the start of the test stream, then an
    online update after every event."""

    name = "rtrec"

    def __init__(self) -> None:
        self.model: Any = None
        self.buffer: list[tuple[str, str, float, float]] = []
        self.online = False
        self.codes: dict[str, int] = {}

    def start(self, state: StreamState) -> None:
        import logging

        from rtrec.models import SLIM

        logging.getLogger("rtrec").setLevel(logging.ERROR)
        self.model = SLIM()
        self.buffer = []
        self.online = False
        self.codes = {item: code for code, item in enumerate(state.data.item_ids)}

    def _interaction(self, index: int, state: StreamState) -> tuple[str, str, float, float]:
        event = state.data.events[index]
        return (event["user_id"], event["item_id"], float(event["timestamp"]), 1.0)

    def before(self, now: float, state: StreamState) -> None:
        if not self.online:
            self.model.fit(self.buffer, update_interaction=False, progress_bar=False)
            self.buffer = []
            self.online = True

    def observe(self, index: int, state: StreamState) -> None:
        if self.online:
            self.model.fit([self._interaction(index, state)], update_interaction=False, progress_bar=False)
        else:
            self.buffer.append(self._interaction(index, state))

    def recommend(self, request: Request, state: StreamState) -> dict[str, list[int]]:
        # rtrec's public recommend() returns ids only, and fills a short list with
        # zero-score items in arbitrary order; its SLIM core gives the scores, so that
        # zero scores (no evidence) leave the list short and rule 8 pads it, as for ItemItem.
        model = self.model
        user_id = model.user_ids.get_id(request.user)
        if user_id is None:
            return {self.name: []}
        matrix = model.interactions.to_csr(select_users=[user_id])
        ids, scores = model.model.recommend(
            user_id,
            matrix,
            top_k=request.k,
            filter_interacted=True,
            dense_output=not model.item_ids.pass_through,
            ret_scores=True,
        )
        items = [model.item_ids.get(i) for i, score in zip(ids, scores, strict=True) if score > 0]
        return {self.name: [self.codes[i] for i in items if i in self.codes]}


def make_peer(name: str) -> Method:
    if name == "pop":
        return GlobalPopularity()
    if name == "pop-24h":
        return WindowPopularity()
    if name == "itemknn-cosine":
        return BatchPeer(
            name, lambda: ImplicitItemKNN("cosine", ITEMKNN_COSINE_NEIGHBOURS), positive_only=True
        )
    if name == "itemknn-bm25":
        return BatchPeer(name, lambda: ImplicitItemKNN("bm25", ITEMKNN_BM25_NEIGHBOURS), positive_only=True)
    if name == "als":
        return BatchPeer(name, ImplicitALS)
    if name == "rtrec":
        return RtrecPeer()
    raise ValueError(f"unknown peer {name!r}; expected one of {ALL_PEERS}")


# ---- The walk --------------------------------------------------------------------------------
@dataclass
class OutputRecord:
    """Per-target outcomes of one output (a method or a variant)."""

    ranks: list[int] = field(default_factory=list)
    unpadded_ranks: list[int] = field(default_factory=list)
    padded: int = 0
    recommended: set[int] = field(default_factory=set)


@dataclass
class P1Run:
    k: int
    outputs: dict[str, OutputRecord]
    target_users: list[int]
    target_indices: list[int]
    method_seconds: dict[str, float]
    fits: dict[str, list[tuple[float, int]]]
    events: int
    warmup: int
    n_items: int
    wall_seconds: float
    targets_on_known_items: int = 0


class StderrProgress:
    """Progress lines on stderr: rewritten in place on a terminal, one every ``every``
    seconds otherwise (logs, CI)."""

    def __init__(self, every: float = 5.0) -> None:
        self.tty = sys.stderr.isatty()
        self.every = 0.5 if self.tty else every
        self.last = 0.0

    def __call__(self, text: str, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < self.every:
            return
        self.last = now
        if self.tty:
            sys.stderr.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def run_p1(
    data: StreamData,
    methods: Sequence[Method],
    k: int = 20,
    progress: Callable[..., None] | None = None,
    max_test_events: int | None = None,
) -> P1Run:
    """Walk the stream as P1 prescribes; return every output's per-target ranks."""
    started = time.monotonic()
    state = StreamState(data)
    outputs: dict[str, OutputRecord] = {}
    seconds = {method.name: 0.0 for method in methods}
    for method in methods:
        tick = time.perf_counter()
        method.start(state)
        seconds[method.name] += time.perf_counter() - tick
    total = (
        len(data.events) if max_test_events is None else min(len(data.events), data.warmup + max_test_events)
    )

    def note(phase: str, index: int, targets: int, final: bool = False) -> None:
        if progress is None:
            return
        elapsed = time.monotonic() - started
        rate = index / elapsed if elapsed > 0 else 0.0
        text = (
            f"P1 {phase}: {index:,}/{total:,} events, {targets:,} targets, "
            f"{elapsed:,.0f} s elapsed ({rate:,.0f} events/s)"
        )
        progress(text, final=final)

    def ingest(index: int) -> None:
        state.ingest(index)
        for method in methods:
            tick = time.perf_counter()
            method.observe(index, state)
            seconds[method.name] += time.perf_counter() - tick

    for index in range(min(data.warmup, total)):
        ingest(index)
        note("warm-up", index + 1, 0)

    target_users: list[int] = []
    target_indices: list[int] = []
    known_items = 0  # targets whose item had an earlier event by anyone
    for index in range(data.warmup, total):
        now = float(data.timestamps[index])
        for method in methods:
            tick = time.perf_counter()
            method.before(now, state)
            seconds[method.name] += time.perf_counter() - tick
        user, item = int(data.users[index]), int(data.items[index])
        history = state.history[user]
        if history and item not in history:
            seen = frozenset(history)
            request = Request(index, data.user_ids[user], user, now, k, seen)
            pad_source = state.global_ranking(2 * k, seen)
            target_users.append(user)
            target_indices.append(index)
            known_items += bool(state.counts[item])
            for method in methods:
                tick = time.perf_counter()
                lists = method.recommend(request, state)
                seconds[method.name] += time.perf_counter() - tick
                for name, listed in lists.items():
                    _score(outputs.setdefault(name, OutputRecord()), listed, item, seen, pad_source, k)
        ingest(index)
        note("test stream", index + 1, len(target_users))
    note("done", total, len(target_users), final=True)
    return P1Run(
        k=k,
        outputs=outputs,
        target_users=target_users,
        target_indices=target_indices,
        method_seconds=seconds,
        fits={m.name: list(m.fits) for m in methods if isinstance(m, BatchPeer)},
        events=total,
        warmup=min(data.warmup, total),
        n_items=data.n_items,
        wall_seconds=time.monotonic() - started,
        targets_on_known_items=known_items,
    )


def pad_list(
    listed: Sequence[int], seen: frozenset[int], pad_source: Sequence[int], k: int
) -> tuple[list[int], list[int]]:
    """(unpadded, padded) top-``k``: ``listed`` without seen items and repeats, then padded
    from ``pad_source`` (a popularity ranking) with items not seen and not yet listed."""
    own: list[int] = []
    taken: set[int] = set()
    for code in listed:
        if code >= 0 and code not in seen and code not in taken:
            own.append(code)
            taken.add(code)
            if len(own) == k:
                break
    padded = list(own)
    for code in pad_source:
        if len(padded) >= k:
            break
        if code not in seen and code not in taken:
            padded.append(code)
            taken.add(code)
    return own, padded


def _score(
    record: OutputRecord,
    listed: Sequence[int],
    target: int,
    seen: frozenset[int],
    pad_source: Sequence[int],
    k: int,
) -> None:
    own, padded = pad_list(listed, seen, pad_source, k)
    record.unpadded_ranks.append(metrics.rank_of(target, own))  # type: ignore[arg-type]
    record.ranks.append(metrics.rank_of(target, padded))  # type: ignore[arg-type]
    record.padded += len(own) < k
    record.recommended.update(padded)


# ---- Summaries -------------------------------------------------------------------------------
def metric_names(k: int) -> list[str]:
    return [f"hr@{min(10, k)}", f"hr@{k}", f"mrr@{k}", f"ndcg@{k}"]


def summarize_output(
    record: OutputRecord,
    groups: Sequence[int],
    k: int,
    n_items: int,
    resamples: int = metrics.BOOTSTRAP_RESAMPLES,
) -> tuple[dict[str, float], dict[str, tuple[float, float]], list[float]]:
    """(metrics, 95% intervals, HR@1..20 curve) of one output."""
    ranks = np.asarray(record.ranks, dtype=np.int64)
    names = metric_names(k)
    values = {name: metrics.per_request(name, ranks) for name in names}
    unpadded = f"hr@{k}_unpadded"
    values[unpadded] = metrics.hits(record.unpadded_ranks, k)
    result = {name: float(v.mean()) if v.size else 0.0 for name, v in values.items()}
    result[f"coverage@{k}"] = len(record.recommended) / n_items if n_items else 0.0
    result["padded_share"] = record.padded / len(record.ranks) if record.ranks else 0.0
    intervals = metrics.bootstrap_intervals(values, np.asarray(groups), resamples=resamples)
    return result, intervals, metrics.hr_curve(ranks, metrics.CURVE_MAX_K)


def summarize(run: P1Run, resamples: int = metrics.BOOTSTRAP_RESAMPLES) -> dict[str, Any]:
    """The P1 result in the report's JSON shape:
    ``{"engine": {metric: value}, "peers": {name: {metric: value}}, "targets": n, ...}``."""
    summary: dict[str, Any] = {"engine": {}, "peers": {}, "variants": {}, "intervals": {}, "hr_curve": {}}
    for name, record in run.outputs.items():
        values, intervals, curve = summarize_output(record, run.target_users, run.k, run.n_items, resamples)
        if name == ENGINE:
            summary["engine"] = values
        elif name == ENGINE_AS_SERVED:
            summary["variants"][name] = values
        else:
            summary["peers"][name] = values
        summary["intervals"][name] = {m: [lo, hi] for m, (lo, hi) in intervals.items()}
        summary["hr_curve"][name] = curve
    summary.update(
        {
            "targets": len(run.target_users),
            "target_users": len(set(run.target_users)),
            # Share of targets whose item had an event (by anyone) before the request: an
            # upper bound on HR for methods that only recommend items they have seen.
            "targets_on_known_items": (
                run.targets_on_known_items / len(run.target_users) if run.target_users else 0.0
            ),
            "k": run.k,
            "events": {"total": run.events, "warmup": run.warmup, "test": run.events - run.warmup},
            "catalogue_items": run.n_items,
            "wall_time_s": round(run.wall_seconds, 1),
            "method_time_s": {name: round(s, 1) for name, s in run.method_seconds.items()},
            "refits": {name: [[b, n] for b, n in fits] for name, fits in run.fits.items()},
            "peer_config": {
                name: PEER_DESCRIPTIONS[name] for name in run.method_seconds if name in PEER_DESCRIPTIONS
            },
        }
    )
    return summary


def build_methods(peers: Iterable[str], settings: Any = None, engine: bool = True) -> list[Method]:
    methods: list[Method] = [EngineMethod(settings)] if engine else []
    methods.extend(make_peer(name) for name in peers)
    return methods


def limit_blas_threads() -> None:
    """implicit warns (and slows down) when OpenBLAS runs its own threads."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, "blas")
    except ImportError:  # pragma: no cover - threadpoolctl comes with implicit
        pass
