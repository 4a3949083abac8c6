"""The project's own protocol for the demand forecast (``GET /items/{item_id}/demand``), on
UCI Online Retail.

No protocol of ../shared/EVALUATION.md measures a forecast, so this one is the project's.
Every product sale of the file (cancellations and non-products left out, as in P3; guests
included: a shop's demand is all of its sales) becomes one purchase event per invoice and
product carrying the units sold, replayed in time order through the production ingest with
its hourly trend counters (in-memory adapters). Then, at 00:00 UTC of each origin day D,
for each product sold in the ``ACTIVE_DAYS`` whole days before D, the production
``TrendsService.demand`` forecasts D (``next_24h``) and D..D+6 (``next_7d``), which are
compared with the units sold then. The counters after D are already stored, but a demand
request reads only the days before its own (``test_demand_reads_no_day_after_its_own``).

Origins: the test origins (2011-09-01 .. 2011-12-02, the last whose 7 days the file covers:
it ends on 2011-12-09 at noon) or, with ``validation``, 2011-06-01 .. 2011-08-31, on which
the engine's forecast was chosen.

Methods: the engine at its defaults and with other demand settings (each a
``TrendsService`` over the same counters); peers from the same daily units: the last 7 days
(seasonal naive: next_7d = their units, next_24h = the same weekday a week before) and zero.

Figures: WAPE = sum |F - A| / sum A over the (product, origin) cases, for next_7d and
next_24h; bias = sum (F - A) / sum A; RMSE of next_7d. Intervals: percentile bootstrap over
products (all of a product's origins together), paired across methods.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.domain.ingest import IngestService, SequencedEvent
from streamrec.domain.model import sequence_key
from streamrec.domain.trends import TrendsService
from streamrec.evaluation.p3 import is_product_sale, retail_rows
from streamrec.events import parse_event
from streamrec.repositories.memory import (
    InMemoryChangePublisher,
    InMemoryCooccurrenceRepository,
    InMemoryItemStatsRepository,
    InMemoryTrendsRepository,
    InMemoryUserRepository,
)
from streamrec.settings import Settings

DAY = 86_400
TEST_ORIGINS = ("2011-09-01", "2011-12-02")
VALIDATION_ORIGINS = ("2011-06-01", "2011-08-31")
ACTIVE_DAYS = 28  # a product sold in the 28 days before an origin is forecast there
HORIZON = 7
BATCH = 1000  # events per ingest call (Kinesis-sized batches)
MAX_QUANTITY = 100_000  # the event schema's limit on one event's units
BOOTSTRAP = 1000

# The engine's settings compared (name -> demand settings); "engine" is the default.
ENGINE_VARIANTS: dict[str, dict[str, Any]] = {
    "engine": {},
    "engine, mean of 14 days": {"demand_days": 14},
    "engine, Holt (14 days, alpha 0.3, beta 0.1)": {
        "demand_method": "holt",
        "demand_days": 14,
        "demand_alpha": 0.3,
        "demand_beta": 0.1,
    },
}
PEERS = ("last 7 days", "zero")


@dataclass
class Sales:
    """Units sold per (product, UTC day), and the purchase events that carry them."""

    events: list[dict[str, Any]]
    units: dict[str, dict[int, float]]  # product -> day number -> units
    capped: int  # events whose units were cut to MAX_QUANTITY


def load_sales(data_dir: Path) -> Sales:
    """Every product sale of the file, one purchase event per (invoice, product), in time
    order (the file's local UK time read as UTC, as P3 does)."""
    lines: dict[tuple[str, str], dict[str, Any]] = {}
    for row in retail_rows(data_dir):
        if not is_product_sale(row):
            continue
        invoice, product = row["InvoiceNo"], row["StockCode"]
        line = lines.get((invoice, product))
        if line is None:
            when = datetime.fromisoformat(row["InvoiceDate"]).replace(tzinfo=UTC).timestamp()
            customer = row["CustomerID"]
            user = f"customer-{int(float(customer))}" if customer else f"guest-{invoice}"
            line = lines[(invoice, product)] = {"user": user, "time": when, "units": 0}
        line["units"] += int(row["Quantity"])
    events: list[dict[str, Any]] = []
    units: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    capped = 0
    for (invoice, product), line in lines.items():
        quantity = min(line["units"], MAX_QUANTITY)
        capped += quantity < line["units"]
        events.append(
            {
                "event_id": f"{invoice}:{product}",
                "event_type": "purchase",
                "user_id": line["user"],
                "item_id": product,
                "timestamp": line["time"],
                "basket_id": invoice,
                "quantity": quantity,
            }
        )
        units[product][int(line["time"] // DAY)] += quantity
    events.sort(key=lambda event: event["timestamp"])  # stable: ties keep file order
    return Sales(events, {p: dict(days) for p, days in units.items()}, capped)


def replay(
    events: list[dict[str, Any]], settings: Settings, progress: Callable[[int, int], None] | None = None
) -> InMemoryTrendsRepository:
    """The events through the production ingest (one shard, ``BATCH`` at a time); the
    trend counters it wrote."""
    trends = InMemoryTrendsRepository()
    changes = InMemoryChangePublisher()
    ingest = IngestService(
        settings,
        InMemoryUserRepository(),
        InMemoryCooccurrenceRepository(),
        InMemoryItemStatsRepository(),
        changes,
        trends=trends,
    )
    for start in range(0, len(events), BATCH):
        batch = [
            SequencedEvent(sequence_key(start + n + 1), parse_event(payload))
            for n, payload in enumerate(events[start : start + BATCH])
        ]
        ingest.ingest(batch, "shardId-000000000000")
        changes.drain()  # the similarity side is not measured here
        if progress is not None:
            progress(min(start + BATCH, len(events)), len(events))
    return trends


def origin_days(validation: bool) -> list[int]:
    first, last = VALIDATION_ORIGINS if validation else TEST_ORIGINS
    start, end = (
        int(datetime.fromisoformat(d).replace(tzinfo=UTC).timestamp() // DAY) for d in (first, last)
    )
    return list(range(start, end + 1))


def _peer(name: str, units: Mapping[int, float], day: int) -> tuple[float, float]:
    """(next_24h, next_7d) of a peer at origin ``day``."""
    if name == "zero":
        return 0.0, 0.0
    week = [units.get(d, 0.0) for d in range(day - 7, day)]
    return week[0], float(sum(week))


@dataclass
class Cases:
    """Per (product, origin): the actual units and each method's forecast."""

    products: list[str]
    actual_24h: np.ndarray  # shape (n,)
    actual_7d: np.ndarray  # shape (n,)
    forecasts: dict[str, tuple[np.ndarray, np.ndarray]]  # method -> (next_24h, next_7d), each (n,)


def forecast_cases(
    sales: Sales,
    trends: InMemoryTrendsRepository,
    days: Iterable[int],
    variants: Mapping[str, dict[str, Any]] = ENGINE_VARIANTS,
    progress: Callable[[int, int], None] | None = None,
) -> Cases:
    """Ask every method at every origin of ``days`` for every product sold in the
    ``ACTIVE_DAYS`` days before it."""
    services = {
        name: TrendsService(replace(Settings(), **overrides), trends) for name, overrides in variants.items()
    }
    days = list(days)
    sold = sorted(sales.units)
    products: list[str] = []
    actual: list[tuple[float, float]] = []
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in [*services, *PEERS]}
    for n, day in enumerate(days):
        for product in sold:
            units = sales.units[product]
            if not any(units.get(d) for d in range(day - ACTIVE_DAYS, day)):
                continue
            products.append(product)
            actual.append(
                (units.get(day, 0.0), float(sum(units.get(d, 0.0) for d in range(day, day + HORIZON))))
            )
            for name, service in services.items():
                demand = service.demand(product, now=day * DAY)
                found[name].append((demand.next_24h, demand.next_7d))
            for name in PEERS:
                found[name].append(_peer(name, units, day))
        if progress is not None:
            progress(n + 1, len(days))
    pairs = np.array(actual, dtype=np.float64).reshape(-1, 2)
    return Cases(
        products,
        pairs[:, 0],
        pairs[:, 1],
        {
            name: tuple(np.array(values, dtype=np.float64).reshape(-1, 2).T)  # type: ignore[misc]
            for name, values in found.items()
        },
    )


def _per_product(products: list[str], values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Sums of ``values`` (shape (n,)) per product, products in first-seen order."""
    index: dict[str, int] = {}
    rows = np.array([index.setdefault(p, len(index)) for p in products], dtype=np.int64)
    return list(index), np.bincount(rows, weights=values, minlength=len(index))


def summarise(cases: Cases, seed: int = 7) -> dict[str, Any]:
    """WAPE (next_7d, next_24h), bias and RMSE of next_7d per method, with bootstrap
    intervals over products and each method's WAPE (next_7d) difference to the engine."""
    names, actual_7d = _per_product(cases.products, cases.actual_7d)
    _, actual_24h = _per_product(cases.products, cases.actual_24h)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(BOOTSTRAP, len(names)))
    counts = np.stack([np.bincount(row, minlength=len(names)) for row in draws])  # (B, products)

    def wape(errors: np.ndarray, actual: np.ndarray) -> tuple[float, np.ndarray]:
        return float(errors.sum() / actual.sum()), (counts @ errors) / (counts @ actual)

    methods: dict[str, Any] = {}
    boot_7d: dict[str, np.ndarray] = {}
    for name, (next_24h, next_7d) in cases.forecasts.items():
        _, error_7d = _per_product(cases.products, np.abs(next_7d - cases.actual_7d))
        _, error_24h = _per_product(cases.products, np.abs(next_24h - cases.actual_24h))
        w7, boot_7d[name] = wape(error_7d, actual_7d)
        w24, boot_24h = wape(error_24h, actual_24h)
        methods[name] = {
            "wape_7d": round(w7, 4),
            "wape_7d_interval": [round(float(v), 4) for v in np.percentile(boot_7d[name], [2.5, 97.5])],
            "wape_24h": round(w24, 4),
            "wape_24h_interval": [round(float(v), 4) for v in np.percentile(boot_24h, [2.5, 97.5])],
            "bias_7d": round(float((next_7d - cases.actual_7d).sum() / cases.actual_7d.sum()), 4),
            "rmse_7d": round(float(np.sqrt(np.mean((next_7d - cases.actual_7d) ** 2))), 2),
        }
    differences = {
        f"{name} - engine": {
            "wape_7d": round(methods[name]["wape_7d"] - methods["engine"]["wape_7d"], 4),
            "interval": [
                round(float(v), 4) for v in np.percentile(boot_7d[name] - boot_7d["engine"], [2.5, 97.5])
            ],
        }
        for name in boot_7d
        if name != "engine"
    }
    return {
        "cases": len(cases.products),
        "products": len(names),
        "units_7d": float(cases.actual_7d.sum()),
        "methods": methods,
        "differences": differences,
    }


def run_demand(
    data_dir: Path,
    validation: bool = False,
    say: Callable[[str], None] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Load, replay, forecast at every origin and summarise (see the module docstring)."""
    started = time.monotonic()
    say = say or (lambda text: None)
    say("demand: loading the sales of online_retail_uci/ ...")
    sales = load_sales(data_dir)
    say(f"demand: {len(sales.events):,} purchase events ({sales.capped} cut to {MAX_QUANTITY:,} units)")
    trends = replay(
        sales.events, Settings(), lambda done, total: progress and progress("replay", done, total)
    )
    days = origin_days(validation)
    cases = forecast_cases(
        sales, trends, days, progress=lambda done, total: progress and progress("origins", done, total)
    )
    first, last = VALIDATION_ORIGINS if validation else TEST_ORIGINS
    return {
        "protocol": "demand, validation origins" if validation else "demand",
        "origins": {"first": first, "last": last, "days": len(days)},
        "active_days": ACTIVE_DAYS,
        "events": len(sales.events),
        **summarise(cases),
        "settings": {name: {**ENGINE_VARIANTS[name]} for name in ENGINE_VARIANTS},
        "wall_seconds": round(time.monotonic() - started, 1),
    }
