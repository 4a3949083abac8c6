"""P3 of ../shared/EVALUATION.md: basket completion (cross-sell) on UCI Online Retail.

The engine is the production pipeline (:class:`InMemoryEngine`: the ingest, similarity
and cross-sell services on in-memory adapters). Invoices are ingested as purchase events
whose ``basket_id`` is the invoice number; a request is what ``POST /cross-sell`` answers
for the cart (the invoice's other products) and the invoice's customer.

Peers, on the same cases: popularity (invoices holding the item so far); pairwise
association rules over the training baskets with support >= 3 baskets, scored by lift
summed over the cart items and by confidence maxed over them; implicit's ItemItem
recommenders (cosine K=20, BM25 K=100) on invoice x item 0/1 cells, refitted at the first
test invoice of each day on every invoice before that day.

Short lists (every method alike) are padded with the real-time popularity ranking (items
not in the cart, not yet listed); the engine's own padding (its ``#popular`` list) is
replaced by that one so that padding is identical for everyone.
"""

from __future__ import annotations

import csv
import gzip
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.domain.recommend import PADDING_SOURCES
from streamrec.evaluation.datasets import DatasetInvalid, DatasetMissing
from streamrec.evaluation.metrics import compared_intervals, hit_rate, hits, mrr, rank_of, reciprocal_ranks
from streamrec.settings import Settings

RETAIL_DIR = "online_retail_uci"
RETAIL_FILES = (
    "online_retail_part1_2010-12_to_2011-05.csv.gz",
    "online_retail_part2_2011-06_to_2011-09.csv.gz",
    "online_retail_part3_2011-10_to_2011-12.csv.gz",
)
TEST_FROM = "2011-11-09 00:00:00"  # invoices dated from then on are the test invoices
# A validation split inside the training period, for tuning without touching the test
# invoices: train before VALIDATION_FROM, evaluate on the invoices up to TEST_FROM.
VALIDATION_FROM = "2011-10-09 00:00:00"
NON_PRODUCTS = frozenset({"POST", "D", "M", "DOT", "C2", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS"})
K = 10
HELD_OUT_PER_INVOICE = 10
RULES_MIN_SUPPORT = 3
ENGINE_BATCH = 1000  # training events per ingest call (Kinesis-sized batches)
PEERS = ("popularity", "rules-lift", "rules-confidence", "itemknn-cosine", "itemknn-bm25")
IMPLICIT_PEERS = {"itemknn-cosine": ("cosine", 20), "itemknn-bm25": ("bm25", 100)}


@dataclass
class Invoice:
    invoice_no: str
    customer: str
    time: float  # epoch seconds (the file's local UK time read as UTC)
    day: str
    items: list[str] = field(default_factory=list)  # distinct products, in row order


def is_product(code: str) -> bool:
    return code not in NON_PRODUCTS and any(ch.isdigit() for ch in code)


def is_product_sale(row: dict[str, str]) -> bool:
    """A row selling a product: not a cancellation, a positive quantity, a product code."""
    return not row["InvoiceNo"].startswith("C") and int(row["Quantity"]) > 0 and is_product(row["StockCode"])


# The columns the protocols read, and how each must parse (an empty CustomerID or
# UnitPrice is allowed: rows without a customer are dropped by the protocol's filter).
RETAIL_COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
)


def _retail_problem(row: dict[str | None, Any]) -> str | None:
    if None in row or any(row.get(column) is None for column in RETAIL_COLUMNS):
        return "the row does not have one field per column"
    checks = (("Quantity", int, "a whole number"), ("InvoiceDate", datetime.fromisoformat, "a date and time"))
    for column, parse, kind in checks:
        try:
            parse(row[column])
        except ValueError:
            return f"field {column!r} is {row[column][:40]!r}, not {kind}"
    for column in ("UnitPrice", "CustomerID"):
        if row[column]:
            try:
                float(row[column])
            except ValueError:
                return f"field {column!r} is {row[column][:40]!r}, not a number"
    return None


def retail_rows(data_dir: Path) -> Iterator[dict[str, str]]:
    """Every row of the three parts, in file order (DatasetMissing names a missing part,
    DatasetInvalid the file and line of a missing column or a malformed row)."""
    folder = data_dir / RETAIL_DIR
    for name in RETAIL_FILES:
        path = folder / name
        if not path.is_file():
            raise DatasetMissing(path, RETAIL_DIR)
        try:
            with gzip.open(path, "rt", newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                missing = [column for column in RETAIL_COLUMNS if column not in (reader.fieldnames or [])]
                if missing:
                    raise DatasetInvalid(path, f"no column {', '.join(map(repr, missing))}", 1)
                for row in reader:
                    problem = _retail_problem(row)
                    if problem:
                        raise DatasetInvalid(path, problem, reader.line_num)
                    yield row
        except (OSError, EOFError, UnicodeDecodeError, csv.Error) as error:
            raise DatasetInvalid(path, f"cannot be read as gzip-compressed UTF-8 CSV: {error}") from None


def load_online_retail(data_dir: Path) -> list[Invoice]:
    """Invoices of the three parts after the protocol's row filter, in time order (ties by
    first row order), each with its distinct products in row order."""
    invoices: dict[str, Invoice] = {}
    for row in retail_rows(data_dir):
        number, code, customer = row["InvoiceNo"], row["StockCode"], row["CustomerID"]
        if not customer or not is_product_sale(row):
            continue
        invoice = invoices.get(number)
        if invoice is None:
            stamp = row["InvoiceDate"]
            when = datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()
            invoice = invoices[number] = Invoice(number, str(int(float(customer))), when, stamp[:10])
        if code not in invoice.items:
            invoice.items.append(code)
    ordered = list(invoices.values())  # insertion = first row order
    return sorted(ordered, key=lambda invoice: invoice.time)  # stable: ties keep row order


def split(invoices: Sequence[Invoice], validation: bool = False) -> tuple[list[Invoice], list[Invoice]]:
    """(training invoices, test invoices with at least 2 distinct products).

    With ``validation``, the protocol's training period is split instead: invoices before
    :data:`VALIDATION_FROM` train, those from then until :data:`TEST_FROM` are evaluated
    (no test invoice is read)."""

    def stamp(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()

    end = stamp(TEST_FROM)
    cut = stamp(VALIDATION_FROM) if validation else end
    train = [inv for inv in invoices if inv.time < cut]
    test = [
        inv
        for inv in invoices
        if inv.time >= cut and (inv.time < end or not validation) and len(inv.items) >= 2
    ]
    return train, test


def invoice_events(invoice: Invoice) -> list[dict[str, Any]]:
    """The invoice as purchase events of the README schema (one per distinct product)."""
    return [
        {
            "event_id": f"{invoice.invoice_no}:{n}",
            "event_type": "purchase",
            "user_id": f"customer-{invoice.customer}",
            "item_id": item,
            "timestamp": invoice.time,
            "basket_id": invoice.invoice_no,
        }
        for n, item in enumerate(invoice.items)
    ]


# ---- Methods ---------------------------------------------------------------------------------
class Popularity:
    """Invoices holding each item so far (training, then every ingested test invoice)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._ranking: list[str] | None = None

    def add(self, invoice: Invoice) -> None:
        self.counts.update(invoice.items)
        self._ranking = None

    def ranking(self) -> list[str]:
        if self._ranking is None:
            self._ranking = [item for item, _ in sorted(self.counts.items(), key=lambda p: (-p[1], p[0]))]
        return self._ranking

    def top(self, cart: set[str], k: int, listed: Sequence[str] = ()) -> list[str]:
        result = list(listed)
        taken = cart | set(listed)
        for item in self.ranking():
            if len(result) >= k:
                break
            if item not in taken:
                result.append(item)
        return result


class Rules:
    """Pairwise association rules over the training baskets (support >= ``min_support``)."""

    def __init__(self, train: Sequence[Invoice], min_support: int = RULES_MIN_SUPPORT) -> None:
        import scipy.sparse as sp

        self.items = sorted({item for inv in train for item in inv.items})
        self.index = {item: n for n, item in enumerate(self.items)}
        rows = [n for n, inv in enumerate(train) for _ in inv.items]
        cols = [self.index[item] for inv in train for item in inv.items]
        matrix = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(train), len(self.items))
        )
        pairs = (matrix.T @ matrix).toarray()
        self.support = np.diag(pairs).copy()
        np.fill_diagonal(pairs, 0.0)
        pairs[pairs < min_support] = 0.0
        self.pairs = pairs
        self.baskets = float(len(train))

    def recommend(self, cart: Sequence[str], k: int, by: str) -> list[str]:
        known = [self.index[item] for item in cart if item in self.index]
        if not known:
            return []
        counts = self.pairs[known]  # (c, n)
        source = self.support[known][:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            if by == "lift":
                values = counts * self.baskets / (source * self.support[None, :])
                scores = np.nan_to_num(values).sum(axis=0)
            else:
                scores = np.nan_to_num(counts / source).max(axis=0)
        scores[known] = 0.0
        return _top(scores, k, self.items)


def _top(scores: np.ndarray, k: int, names: Sequence[str]) -> list[str]:
    """Names of the ``k`` best positive scores (ties by index)."""
    positive = np.flatnonzero(scores > 0)
    if positive.size == 0:
        return []
    order = positive[np.lexsort((positive, -scores[positive]))][:k]
    return [names[i] for i in order]


class DailyItemKNN:
    """implicit's ItemItem recommender on invoice x item 0/1 cells, refitted lazily at the
    first request of each day on every invoice before that day."""

    def __init__(self, kind: str, neighbours: int) -> None:
        self.kind, self.neighbours = kind, neighbours
        self.day = ""
        self.model: Any = None
        self.index: dict[str, int] = {}
        self.items: list[str] = []

    def refit(self, history: Sequence[Invoice], day: str) -> None:
        if day == self.day:
            return
        import scipy.sparse as sp
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

        self.day = day
        before = [inv for inv in history if inv.day < day]
        self.items = sorted({item for inv in before for item in inv.items})
        self.index = {item: n for n, item in enumerate(self.items)}
        rows = [n for n, inv in enumerate(before) for _ in inv.items]
        cols = [self.index[item] for inv in before for item in inv.items]
        matrix = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(before), len(self.items))
        )
        cls = {"cosine": CosineRecommender, "bm25": BM25Recommender}[self.kind]
        self.model = cls(K=self.neighbours, num_threads=1)
        with warnings.catch_warnings():  # implicit's BM25 weighting hands itself a COO matrix
            warnings.simplefilter("ignore")
            self.model.fit(matrix, show_progress=False)

    def recommend(self, cart: Sequence[str], k: int) -> list[str]:
        import scipy.sparse as sp

        known = sorted({self.index[item] for item in cart if item in self.index})
        if not known:
            return []
        row = sp.csr_matrix(
            (np.ones(len(known), dtype=np.float32), ([0] * len(known), known)), shape=(1, len(self.items))
        )
        ids, scores = self.model.recommend(0, row, N=k, filter_already_liked_items=True)
        ids, scores = np.asarray(ids), np.asarray(scores)
        return [self.items[i] for i, s in zip(ids, scores, strict=True) if i >= 0 and s > 0]


# Settings that change nothing a cross-sell request sees (complements rows depend on the
# basket counts and the cross_sell_* / basket_* settings only) but make the replay several
# times cheaper: a one-item view window counts no view pairs, and without two-hop lists a
# request's lazy rebuild does not rebuild the neighbours of the cart items' neighbours.
VIEW_SIDE_SHORTCUTS: dict[str, Any] = {"two_hop_sources": 0, "history_length": 1}
CROSS_SELL_FIELDS = (
    "cross_sell_measure",
    "cross_sell_popularity_penalty",
    "cross_sell_aggregate",
    "cross_sell_min_support",
    "cross_sell_sum_weight",
    "cross_sell_history_weight",
    "cross_sell_history_decay",
    "complements_per_item",
    "basket_items_kept",
    "basket_gap_hours",
)


def engine_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """The production defaults with :data:`VIEW_SIDE_SHORTCUTS` (plus ``overrides`` when tuning)."""
    return replace(Settings(), **{**VIEW_SIDE_SHORTCUTS, **(overrides or {})})


def cross_sell_settings(settings: Settings) -> dict[str, Any]:
    """The settings a cross-sell answer depends on (for the report)."""
    return {name: getattr(settings, name) for name in CROSS_SELL_FIELDS}


# ---- The protocol ----------------------------------------------------------------------------
def run_p3(
    train: Sequence[Invoice],
    test: Sequence[Invoice],
    peers: Sequence[str] = PEERS,
    engine: bool = True,
    settings: Settings | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Walk the test invoices; return the summary (engine, peers, targets, ...)."""
    from streamrec.evaluation.engine import InMemoryEngine

    started = time.monotonic()
    settings = settings or engine_settings()
    popularity = Popularity()
    for invoice in train:
        popularity.add(invoice)
    history: list[Invoice] = list(train)
    ranks: dict[str, list[int]] = {name: [] for name in ([*(["engine"] if engine else []), *peers])}
    seconds: dict[str, float] = dict.fromkeys(ranks, 0.0)
    customers: list[str] = []  # each request's customer: the bootstrap's groups

    model = None
    if engine:
        clock = time.monotonic()
        model = InMemoryEngine(settings)
        events = [event for invoice in train for event in invoice_events(invoice)]
        model.bulk_load(
            [events[n : n + ENGINE_BATCH] for n in range(0, len(events), ENGINE_BATCH)],
            (lambda done, total: progress(f"P3: {done:,}/{total:,} training purchases"))
            if progress
            else None,
        )
        seconds["engine"] += time.monotonic() - clock
    rules = Rules(train) if {"rules-lift", "rules-confidence"} & set(peers) else None
    knn = {name: DailyItemKNN(*IMPLICIT_PEERS[name]) for name in peers if name in IMPLICIT_PEERS}

    for count, invoice in enumerate(test):
        for name, method in knn.items():
            clock = time.monotonic()
            method.refit(history, invoice.day)
            seconds[name] += time.monotonic() - clock
        user = f"customer-{invoice.customer}"
        for target in invoice.items[:HELD_OUT_PER_INVOICE]:
            customers.append(invoice.customer)
            cart = [item for item in invoice.items if item != target]
            cart_set = set(cart)
            lists: dict[str, list[str]] = {}
            if model is not None:
                clock = time.monotonic()
                answer = model.cross_sell(cart, K, user_id=user)
                lists["engine"] = [r.item_id for r in answer.items if r.source not in PADDING_SOURCES]
                seconds["engine"] += time.monotonic() - clock
            if "popularity" in peers:
                lists["popularity"] = []
            if rules is not None:
                if "rules-lift" in peers:
                    lists["rules-lift"] = rules.recommend(cart, K, "lift")
                if "rules-confidence" in peers:
                    lists["rules-confidence"] = rules.recommend(cart, K, "confidence")
            for name, method in knn.items():
                clock = time.monotonic()
                lists[name] = method.recommend(cart, K)
                seconds[name] += time.monotonic() - clock
            for name, listed in lists.items():
                ranks[name].append(rank_of(target, popularity.top(cart_set, K, listed[:K])))
        if model is not None:
            clock = time.monotonic()
            model.ingest(invoice_events(invoice))
            seconds["engine"] += time.monotonic() - clock
        popularity.add(invoice)
        history.append(invoice)
        if progress and (count + 1) % 200 == 0:
            engine_hr = hit_rate(ranks["engine"], K) if engine else float("nan")
            progress(f"P3 {count + 1:,}/{len(test):,} invoices, engine HR@10 so far {engine_hr:.4f}")

    def figures(name: str) -> dict[str, Any]:
        return {
            f"hr@{K}": hit_rate(ranks[name], K),
            f"mrr@{K}": mrr(ranks[name], K),
            "seconds": round(seconds[name], 1),
        }

    per_request = {
        name: {f"hr@{K}": hits(ranks[name], K), f"mrr@{K}": reciprocal_ranks(ranks[name], K)}
        for name in ranks
    }
    return {
        "engine": figures("engine") if engine else {},
        "peers": {name: figures(name) for name in peers},
        # 95% bootstrap intervals over customers (1,000 resamples, fixed seed), paired:
        # "differences" are the engine's lead over each peer.
        **(compared_intervals(per_request, customers) if engine else {}),
        "targets": len(next(iter(ranks.values()), [])),
        "train_invoices": len(train),
        "test_invoices": len(test),
        "wall_time_s": round(time.monotonic() - started, 1),
    }
