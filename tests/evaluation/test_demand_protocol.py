"""The demand protocol on tiny synthetic Online Retail files: the sales loader, the replay
through the production ingest, the forecasts at an origin (no day after it read), the
figures by hand and the CLI; and the real file's loader (skipped when ../shared/datasets is
absent)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from streamrec.evaluation import demand, p3
from tests.evaluation.test_cli import _run

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
ORIGIN = datetime(2011, 9, 1, tzinfo=UTC)
ORIGIN_DAY = int(ORIGIN.timestamp() // demand.DAY)


def _write(folder: Path, rows: list[tuple[str, str, int, datetime, str]]) -> Path:
    """rows: (invoice, code, quantity, time, customer), all in part 1."""
    data = folder / p3.RETAIL_DIR
    data.mkdir(parents=True)
    lines = [
        f'{inv},{code},"THING",{qty},{when:%Y-%m-%d %H:%M:%S},1.5,{cust},UK\n'
        for inv, code, qty, when, cust in rows
    ]
    for n, name in enumerate(p3.RETAIL_FILES):
        with gzip.open(data / name, "wt") as handle:
            handle.write(HEADER + ("".join(lines) if n == 0 else ""))
    return folder


def _daily(code: str, units: int, first: int, last: int, customer: str = "12345") -> list:
    """One invoice of ``units`` of ``code`` at 10:00 on each day from ORIGIN + first to
    ORIGIN + last (days; negative before the origin)."""
    return [
        (f"5{code}{n + 100}", code, units, ORIGIN + timedelta(days=n, hours=10), customer)
        for n in range(first, last + 1)
    ]


def test_sales_are_one_event_per_invoice_and_product_with_its_units(tmp_path):
    rows = [
        ("500001", "10001", 2, ORIGIN, "12345"),
        ("500001", "10001", 3, ORIGIN, "12345"),  # the same product again: 5 units
        ("500001", "10002", 1, ORIGIN, "12345"),
        ("C500002", "10001", -2, ORIGIN, "12345"),  # a cancellation: not a sale
        ("500003", "POST", 1, ORIGIN, "12345"),  # postage: not a product
        ("500004", "10002", 4, ORIGIN + timedelta(hours=1), ""),  # a guest's
    ]
    sales = demand.load_sales(_write(tmp_path, rows))
    assert [(e["item_id"], e["quantity"], e["user_id"]) for e in sales.events] == [
        ("10001", 5, "customer-12345"),
        ("10002", 1, "customer-12345"),
        ("10002", 4, "guest-500004"),
    ]
    assert sales.units == {"10001": {ORIGIN_DAY: 5.0}, "10002": {ORIGIN_DAY: 5.0}}


def test_demand_reads_no_day_after_its_own(tmp_path):
    # Sold only from the origin on (00:30 of the origin day, then daily): at 00:00 of the
    # origin nothing is known of it; a product sold 3 a day before is forecast 3 a day.
    rows = [("500001", "10001", 9, ORIGIN + timedelta(minutes=30), "12345")]
    rows += _daily("10001", 9, 1, 6) + _daily("10002", 3, -28, -1) + _daily("10002", 1, 0, 6)
    sales = demand.load_sales(_write(tmp_path, rows))
    trends = demand.replay(sales.events, demand.Settings())
    cases = demand.forecast_cases(sales, trends, [ORIGIN_DAY])
    assert cases.products == ["10002"]  # 10001 was not sold in the 28 days before
    next_24h, next_7d = cases.forecasts["engine"]
    assert (next_24h[0], next_7d[0]) == (pytest.approx(3.0), pytest.approx(21.0))
    assert (cases.actual_24h[0], cases.actual_7d[0]) == (1.0, 7.0)
    # A day later the engine knows the origin day's sales (the 28 days now hold 27 x 3 + 1).
    later = demand.forecast_cases(sales, trends, [ORIGIN_DAY + 1])
    assert later.forecasts["engine"][0][later.products.index("10002")] == pytest.approx(82 / 28)
    assert later.forecasts["engine"][0][later.products.index("10001")] == pytest.approx(9 / 28)


def test_every_method_forecasts_from_the_days_before_the_origin(tmp_path):
    # 2 a day for 21 days, then 9 a day for the last 7: the last week says 63, the mean of 28
    # days 21 * 2 + 63 = 105 / 28 * 7, the mean of 14 days (7 * 2 + 63) / 14 * 7.
    rows = _daily("10001", 2, -28, -8) + _daily("10001", 9, -7, -1) + _daily("10001", 4, 0, 6)
    sales = demand.load_sales(_write(tmp_path, rows))
    cases = demand.forecast_cases(sales, demand.replay(sales.events, demand.Settings()), [ORIGIN_DAY])
    week = {name: float(values[1][0]) for name, values in cases.forecasts.items()}
    assert week["engine"] == pytest.approx(105 / 4)
    assert week["engine, mean of 14 days"] == pytest.approx(77 / 2)
    assert week["last 7 days"] == 63.0 and week["zero"] == 0.0
    # Holt follows the jump: above the last week's mean.
    assert week["engine, Holt (14 days, alpha 0.3, beta 0.1)"] > 2 * 7
    assert cases.forecasts["last 7 days"][0][0] == 9.0  # the same weekday a week before


def test_figures_by_hand():
    cases = demand.Cases(
        products=["a", "a", "b"],
        actual_24h=np.array([1.0, 0.0, 2.0]),
        actual_7d=np.array([7.0, 3.0, 10.0]),
        forecasts={
            "engine": (np.array([1.0, 1.0, 1.0]), np.array([7.0, 7.0, 7.0])),
            "zero": (np.zeros(3), np.zeros(3)),
        },
    )
    figures = demand.summarise(cases)
    assert (figures["cases"], figures["products"], figures["units_7d"]) == (3, 2, 20.0)
    engine = figures["methods"]["engine"]
    assert engine["wape_7d"] == pytest.approx((0 + 4 + 3) / 20)
    assert engine["wape_24h"] == pytest.approx((0 + 1 + 1) / 3, abs=1e-4)  # rounded to 4 places
    assert engine["bias_7d"] == pytest.approx((0 + 4 - 3) / 20, abs=1e-4)
    assert engine["rmse_7d"] == pytest.approx(round(np.sqrt((0 + 16 + 9) / 3), 2))
    assert figures["methods"]["zero"]["wape_7d"] == 1.0 and figures["methods"]["zero"]["bias_7d"] == -1.0
    low, high = engine["wape_7d_interval"]
    assert low <= engine["wape_7d"] <= high
    assert figures["differences"]["zero - engine"]["wape_7d"] == pytest.approx(1.0 - 7 / 20)


def test_the_command_writes_its_figures(tmp_path, capsys):
    rows = _daily("10001", 2, -28, 100)
    folder = _write(tmp_path / "data", rows)
    out = tmp_path / "demand.json"
    assert _run(["eval", "demand", "--data", str(folder), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["protocol"] == "demand" and result["origins"]["days"] == 93
    # A steady seller: the mean of 28 days is exact, zero misses everything.
    assert result["methods"]["engine"]["wape_7d"] == 0.0 and result["methods"]["zero"]["wape_7d"] == 1.0
    assert "events replayed" in capsys.readouterr().err


def test_the_command_names_a_missing_data_folder(tmp_path, capsys):
    assert _run(["eval", "demand", "--data", str(tmp_path), "-q"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("streamrec eval demand: ") and p3.RETAIL_DIR in captured.err


def test_the_real_file_loads(data_dir):
    sales = demand.load_sales(data_dir)
    assert len(sales.events) == 518_428 and sales.capped == 0
    assert len(sales.units) > 3_500
