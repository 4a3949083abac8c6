"""The content protocol (cold items, catalog text) on a tiny synthetic Online Retail file:
the catalog loader, the cold draw, the row views, a whole run and the CLI; and the real
catalog (skipped when ../shared/datasets is absent)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from streamrec.domain.model import Neighbour, SimilarityRow
from streamrec.evaluation import content, p3
from streamrec.evaluation.cli import run_content_command
from streamrec.evaluation.datasets import DatasetMissing
from streamrec.repositories.memory import InMemorySimilarityRepository
from tests.evaluation.test_cli import _run

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
TRAIN_DAY, TEST_DAY, LATER_DAY = "2011-11-01 10:00:00", "2011-11-10 10:00:00", "2011-11-11 10:00:00"
FILLERS = {
    f"2000{n}" if n < 10 else f"200{n}": title
    for n, title in enumerate(
        [
            "LANTERN",
            "DOORMAT",
            "CLOCK",
            "UMBRELLA",
            "NOTEBOOK",
            "JIGSAW",
            "APRON",
            "MUG",
            "BUNTING",
            "CUSHION",
            "BASKET",
            "MIRROR",
        ]
    )
}
RED, WHITE, PINK = "10001", "10002", "10005"
TITLES = {RED: "RED HEART CANDLE", WHITE: "WHITE HEART CANDLE", PINK: "PINK HEART CANDLE", **FILLERS}


def _write(folder: Path, rows: list[tuple[str, str, str, int, str, float, str]]) -> Path:
    """rows: (invoice, code, description, quantity, date, price, customer), all in part 1."""
    data = folder / p3.RETAIL_DIR
    data.mkdir(parents=True)
    lines = [
        f'{inv},{code},"{title}",{qty},{when},{price},{cust},UK\n'
        for inv, code, title, qty, when, price, cust in rows
    ]
    for n, name in enumerate(p3.RETAIL_FILES):
        with gzip.open(data / name, "wt") as handle:
            handle.write(HEADER + ("".join(lines) if n == 0 else ""))
    return folder


def _line(
    invoice: str, code: str, when: str, customer: str = "12345"
) -> tuple[str, str, str, int, str, float, str]:
    return (invoice, code, TITLES[code], 1, when, 2.5, customer)


def _shop(folder: Path) -> Path:
    """Training: the 12 fillers in 5 invoices (the popular items), the red and white candles
    together in 2, all by customer 12345. Test: the pink candle, never sold before, with the
    red one, then with the white one (new customers); then customer 12345 comes back for a
    lantern and the pink candle."""
    rows = []
    for n in range(5):
        rows += [_line(f"50000{n}", code, TRAIN_DAY) for code in FILLERS]
    for n in range(2):
        rows += [_line(f"50010{n}", code, TRAIN_DAY) for code in (RED, WHITE)]
    rows += [_line("600001", PINK, TEST_DAY, "12346"), _line("600001", RED, TEST_DAY, "12346")]
    rows += [_line("600002", PINK, TEST_DAY, "12347"), _line("600002", WHITE, TEST_DAY, "12347")]
    rows += [_line("600003", "20000", LATER_DAY), _line("600003", PINK, LATER_DAY)]
    return _write(folder, rows)


def test_catalog_takes_each_products_most_frequent_description_and_median_price(tmp_path):
    rows = [
        ("500001", "10001", "RED CANDLE", 1, TRAIN_DAY, 1.0, "12345"),
        ("500002", "10001", "RED  HEART CANDLE", 1, TRAIN_DAY, 2.0, ""),  # guests' sales count
        ("500003", "10001", "RED HEART CANDLE", 1, TRAIN_DAY, 4.0, "12345"),
        ("C500004", "10001", "cancelled", 1, TRAIN_DAY, 1.0, "12345"),  # not a sale
        ("500005", "10001", "damaged", -3, TRAIN_DAY, 1.0, "12345"),  # not a sale
        ("500006", "10001", "free sample", 1, TRAIN_DAY, 0.0, "12345"),  # no price
        ("500007", "POST", "POSTAGE", 1, TRAIN_DAY, 18.0, "12345"),  # not a product
        ("500008", "10002", "", 1, TRAIN_DAY, 1.0, "12345"),  # no description
    ]
    catalog = content.load_catalog(_write(tmp_path, rows))
    assert catalog == {"10001": content.CatalogEntry("RED HEART CANDLE", 2.0)}
    (record,) = content.catalog_records(catalog, 1.0)
    assert record == {
        "event_type": "item_upsert",
        "item_id": "10001",
        "title": "RED HEART CANDLE",
        "category": content.CATEGORY,
        "price": 2.0,
        "in_stock": True,
        "timestamp": 1.0,
    }


def test_catalog_is_missing_with_a_clear_error(tmp_path):
    with pytest.raises(DatasetMissing, match="online_retail_uci"):
        content.load_catalog(tmp_path)


def _invoice(number: str, items: list[str]) -> p3.Invoice:
    return p3.Invoice(number, "1", 0.0, "2011-11-01", items)


def test_cold_products_are_the_unsold_ones_and_a_seeded_share_of_the_rest():
    train = [_invoice("1", [f"i{n}" for n in range(100)])]
    test = [_invoice("2", ["new", *[f"i{n}" for n in range(9)]]), _invoice("3", [f"i{n}" for n in range(50)])]
    cold = content.cold_products(train, test)
    asked = {"new", *(f"i{n}" for n in range(10))}  # the first 10 products of each test invoice
    assert "new" in cold and cold <= asked
    assert len(cold - {"new"}) == 2  # 20 % of the 10 sold ones
    assert content.cold_products(train, test) == cold  # seeded
    assert content.cold_products(train, test, seed=1) != cold


def test_without_removes_the_lines_and_drops_emptied_invoices():
    kept = content.without([_invoice("1", ["a", "b"]), _invoice("2", ["b"])], {"b"})
    assert [(inv.invoice_no, inv.items) for inv in kept] == [("1", ["a"])]


def test_row_views_empty_one_list_and_write_nothing():
    table = InMemorySimilarityRepository()
    table.put_rows(
        [
            SimilarityRow(
                "x",
                [Neighbour("y", 0.5)],
                extended=[Neighbour("w", 0.1)],
                content=[Neighbour("z", 0.9)],
                support=3.0,
            )
        ]
    )
    rows, _ = content.RowsWithout(table, ("content",)).get_many(["x"])
    assert (
        rows["x"].neighbours == [Neighbour("y", 0.5)] and rows["x"].content == [] and rows["x"].support == 3.0
    )
    rows, _ = content.RowsWithout(table, ("neighbours", "extended")).get_many(["x"])
    assert (
        rows["x"].neighbours == [] and rows["x"].extended == [] and rows["x"].content == [Neighbour("z", 0.9)]
    )
    assert table.rows["x"].content == [Neighbour("z", 0.9)]  # the table itself is untouched
    with pytest.raises(NotImplementedError):
        content.RowsWithout(table, ("content",)).put_rows([])


def _walk(folder: Path, cold: set[str]) -> dict:
    train, test = p3.split(p3.load_online_retail(folder))
    return content.run_content(content.load_catalog(folder), train, test, cold=cold)


def test_a_cold_product_is_found_by_its_text_and_missed_without_the_catalog(tmp_path):
    result = _walk(_shop(tmp_path), {PINK})
    groups = result["groups"]
    assert (result["cold_products"], result["hidden_products"]) == (1, 0)  # never sold before: not hidden
    assert result["catalog_records"] == len(TITLES) and result["test_invoices"] == 3
    first = groups["cold_first_sale"]  # the pink candle, sold with the red one
    assert (first["cases"], first["queries"]) == (1, 1)
    # by its text, the red candle is among its similar items; without a catalog nothing
    # is known of it and the popular padding (the 12 fillers) misses
    assert first["engine"]["hits@10"] == 1.0 and first["content_only"]["hits@10"] == 1.0
    assert first["behaviour_only"]["hits@10"] == 0.0
    assert first["engine"]["hr@10"] == 1.0 and first["engine"]["precision@10"] == 0.1
    assert set(first["intervals"]) == set(content.METHODS)
    later = groups["cold_later_sales"]  # the pink candle again (with the white one, the lantern)
    assert (later["cases"], later["queries"]) == (2, 1)
    assert groups["warm"]["cases"] == 3  # the red and white candles, the lantern
    # customer 12345 comes back: one personalized case, whose only new product is the pink
    # candle, next to the red and white ones they bought
    personal = groups["personalized"]
    assert (personal["cases"], personal["queries"]) == (1, 1) and personal["engine"]["hits@10"] == 1.0


def test_hidden_products_count_for_no_method(tmp_path):
    # The white candle was sold in training: the simulation hides it.
    result = _walk(_shop(tmp_path), {PINK, WHITE})
    assert (result["cold_products"], result["hidden_products"]) == (2, 1)
    groups = result["groups"]
    assert groups["cold_first_sale"]["cases"] == 2  # the pink and the white candles' first sales
    # the pink candle's second sale was with the white one only: nothing left to find
    assert groups["cold_later_sales"]["skipped"] == 1


def test_cli_writes_the_json(tmp_path, capsys):
    out = tmp_path / "content.json"
    code = _run(["eval", "content", "--data", str(_shop(tmp_path)), "-q", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    assert json.loads(stdout) == json.loads(out.read_text())
    assert json.loads(stdout)["engine_settings"]["content_weight"] == pytest.approx(0.15)


def test_cli_reports_missing_data(tmp_path, capsys):
    code = _run(["eval", "content", "--data", str(tmp_path), "-q"])
    stderr = capsys.readouterr().err
    assert code == 1 and "streamrec eval content:" in stderr and "online_retail_uci" in stderr


def test_real_catalog(data_dir):
    catalog = content.load_catalog(data_dir)
    assert 3_800 <= len(catalog) <= 4_100  # products with a described, priced sale
    assert catalog["85123A"].title == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert all(entry.title and entry.price > 0 for entry in catalog.values())


def test_report_has_a_content_section(tmp_path):
    from streamrec.evaluation import report

    result = _walk(_shop(tmp_path / "data"), {PINK})
    text = report.write_report(tmp_path / "out", None, None, content=result)["md"].read_text()
    section = text[text.index("## Content similarity and cold items") :]
    first = section[section.index("**Similar items of a cold product, its first sale") :]
    assert first.startswith(
        "**Similar items of a cold product, its first sale (known by its record only)**: 1 cases (1 distinct"
    )
    assert "| **engine** | 0.1000 [" in first and "| behaviour only | 0.0000 [" in first
    assert "- engine − behaviour only, precision@10: +0.1000" in first
    assert "**A returning customer's recommendations**" in section
    assert "content_weight `0.15`" in section
    assert report.rerender_report(tmp_path / "out")["md"].read_text() == text


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("cold_item_weight=0", "COLD_ITEM_WEIGHT=0.0; expected > 0"),
        ("content_weight=abc", "--set content_weight=abc: not a valid float"),
        ("coupon_model=1", "--set coupon_model=1: no such scalar setting"),
        ("nope=1", "--set nope=1: no such scalar setting"),
    ],
)
def test_cli_refuses_a_bad_setting_in_one_line(tmp_path, capsys, setting, message):
    code = _run(["eval", "content", "--data", str(_shop(tmp_path)), "-q", "--set", setting])
    stderr = capsys.readouterr().err
    assert code == 1 and stderr.startswith("streamrec eval content: ") and message in stderr
    assert stderr.count("\n") == 1  # one line, no traceback


def test_the_cold_draw_does_not_depend_on_max_invoices(tmp_path, capsys):
    folder = _shop(tmp_path)
    whole = run_content_command(folder)
    first = run_content_command(folder, max_invoices=1)
    assert first["test_invoices"] == 1 and first["cold_products"] == whole["cold_products"] == 2
