"""P3 (basket completion) on a tiny synthetic Online Retail file: the row filter, the split,
the case count, the peers and the CLI; and the real-data skip."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from streamrec.evaluation import p3
from streamrec.evaluation.cli import run_p3_command
from tests.evaluation.test_cli import _run

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def _write(folder: Path, rows: list[tuple[str, str, int, str, str]]) -> Path:
    """rows: (invoice, code, quantity, date, customer); all rows go in part 1, parts 2-3 are empty."""
    data = folder / p3.RETAIL_DIR
    data.mkdir(parents=True)
    lines = [f"{inv},{code},x,{qty},{when},1.0,{customer},UK\n" for inv, code, qty, when, customer in rows]
    for n, name in enumerate(p3.RETAIL_FILES):
        with gzip.open(data / name, "wt") as handle:
            handle.write(HEADER + ("".join(lines) if n == 0 else ""))
    return folder


TRAIN_DAY, TEST_DAY = "2011-11-01 10:00:00", "2011-11-10 10:00:00"


def _rows() -> list[tuple[str, str, int, str, str]]:
    rows = []
    for n in range(4):  # four training baskets {10001, 10002, 10003}
        rows += [(f"50000{n}", code, 1, TRAIN_DAY, "12345") for code in ("10001", "10002", "10003")]
    rows += [
        ("500010", "10001", 1, TRAIN_DAY, ""),  # no customer: dropped
        ("C500011", "10001", 1, TRAIN_DAY, "12345"),  # cancellation: dropped
        ("500012", "POST", 1, TRAIN_DAY, "12345"),  # not a product: dropped
        ("500012", "BANK CHARGES", 1, TRAIN_DAY, "12345"),
        ("500012", "10004", -1, TRAIN_DAY, "12345"),  # negative quantity: dropped
        ("600001", "10001", 1, TEST_DAY, "12346"),  # test invoice, 3 products, one repeated
        ("600001", "10002", 1, TEST_DAY, "12346"),
        ("600001", "10001", 2, TEST_DAY, "12346"),
        ("600001", "10003", 1, TEST_DAY, "12346"),
        ("600002", "10002", 1, TEST_DAY, "12347"),  # single product: skipped
    ]
    return rows


def test_loader_filters_and_splits(tmp_path):
    invoices = p3.load_online_retail(_write(tmp_path, _rows()))
    assert [inv.invoice_no for inv in invoices] == [
        "500000",
        "500001",
        "500002",
        "500003",
        "600001",
        "600002",
    ]
    train, test = p3.split(invoices)
    assert len(train) == 4
    assert [(inv.invoice_no, inv.items) for inv in test] == [("600001", ["10001", "10002", "10003"])]
    assert p3.invoice_events(test[0])[0]["basket_id"] == "600001"


def test_validation_split_never_reads_a_test_invoice(tmp_path):
    early = [
        (f"40000{n}", code, 1, "2011-09-01 10:00:00", "12345")
        for n in range(2)
        for code in ("20001", "20002")
    ]
    invoices = p3.load_online_retail(_write(tmp_path, early + _rows()))
    train, validation = p3.split(invoices, validation=True)
    assert [inv.invoice_no for inv in train] == ["400000", "400001"]  # before 2011-10-09
    assert [inv.invoice_no for inv in validation] == ["500000", "500001", "500002", "500003"]  # test: none


def test_run_p3_engine_and_peers_complete_the_basket(tmp_path):
    train, test = p3.split(p3.load_online_retail(_write(tmp_path, _rows())))
    result = p3.run_p3(train, test, peers=["popularity", "rules-lift", "rules-confidence"])
    assert result["targets"] == 3  # one test invoice, three distinct products
    # every held-out product always came with the other two: the rules and the engine find it first
    assert result["engine"]["hr@10"] == 1.0 and result["engine"]["mrr@10"] == 1.0
    assert result["peers"]["rules-confidence"]["mrr@10"] == 1.0
    assert result["peers"]["rules-lift"]["mrr@10"] == 1.0
    assert set(result["peers"]) == {"popularity", "rules-lift", "rules-confidence"}
    # One customer, so the bootstrap has a single group: the intervals collapse to the values.
    assert result["intervals"]["engine"]["hr@10"] == [1.0, 1.0]
    lead = 1.0 - result["peers"]["popularity"]["hr@10"]
    assert result["differences"]["popularity"]["hr@10"] == pytest.approx([lead, lead])


def test_p3_command_json_shape(tmp_path, capsys):
    folder = _write(tmp_path, _rows())
    out = tmp_path / "p3.json"
    code = _run(["eval", "p3", "--data", str(folder), "--peers", "popularity", "-q", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result) >= {"engine", "peers", "targets"}
    assert set(result["engine"]) >= {"hr@10", "mrr@10"} and result["targets"] == 3
    assert result["engine_settings"]["cross_sell_measure"]


def test_p3_command_without_data_says_so(tmp_path, capsys):
    assert _run(["eval", "p3", "--data", str(tmp_path / "nowhere"), "-q", "--peers", ""]) == 1
    assert "data file not found" in capsys.readouterr().err


def test_p3_on_the_real_data_loads(data_dir):
    """Only the loader on the real files (the full protocol is `streamrec eval p3`)."""
    train, test = p3.split(p3.load_online_retail(data_dir))
    assert len(train) > 10_000 and len(test) > 1_000
    assert all(len(inv.items) >= 2 for inv in test)


def test_bad_setting_override_is_refused(tmp_path):
    folder = _write(tmp_path, _rows())
    assert _run(["eval", "p3", "--data", str(folder), "-q", "--peers", "", "--set", "nope=1"]) == 1
    with pytest.raises(TypeError):
        run_p3_command(folder, peers=[], overrides={"nope": 1})


def test_report_has_a_p3_section():
    from streamrec.evaluation.report import render_markdown

    p3_result = {
        "engine": {"hr@10": 0.33, "mrr@10": 0.16},
        "peers": {"rules-confidence": {"hr@10": 0.28, "mrr@10": 0.13}},
        "intervals": {"engine": {"hr@10": [0.32, 0.34]}},
        "differences": {"rules-confidence": {"hr@10": [0.04, 0.06]}},
        "targets": 22317,
        "test_invoices": 2594,
    }
    text = render_markdown({"date": "d", "settings": {}, "p1": None, "p2": None, "p3": p3_result})
    assert "## P3: basket completion" in text
    assert "| rules-confidence | 0.2800 | 0.1300 |" in text
    assert "| engine (cross-sell) | 0.3300 [0.3200, 0.3400] | 0.1600 |" in text
    assert "- engine − rules-confidence, hr@10: +0.0500 [+0.0400, +0.0600]" in text
