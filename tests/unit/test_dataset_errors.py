"""Malformed data files: the loaders raise DatasetInvalid naming the file, line and field
(never a KeyError, AttributeError or a bare int() error), and DatasetMissing says only
what is true (SOURCE.txt only when it exists, --data only for the data sets of --data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.evaluation.datasets import (
    DIGINETICA_DIR,
    DIGINETICA_FILE,
    TAOBAO_DIR,
    TAOBAO_FILE,
    DatasetInvalid,
    DatasetMissing,
    diginetica_split,
    load_taobao,
    read_session_file,
)

TAOBAO_HEADER = "user_id,item_id,category_id,behavior_type,timestamp\n"
DIGINETICA_HEADER = "session_id;user_id;item_id;timeframe;eventdate\n"


def _taobao(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / TAOBAO_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TAOBAO_FILE).write_text(text)
    return tmp_path


def _diginetica(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / DIGINETICA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DIGINETICA_FILE).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("1,2,3,zz,notatime", r"line 3: field 'behavior_type' is 'zz', not one of pv, cart, fav, buy"),
        ("1,2,3,pv,notatime", r"line 3: field 'timestamp' is 'notatime', not a whole number"),
        ("1,2,3,pv", r"line 3: field 'timestamp' missing \(the row has too few fields\)"),
        ("1,,3,pv,1511544070", r"line 3: field 'item_id' is empty"),
    ],
)
def test_taobao_malformed_row(tmp_path, row, expected):
    data = _taobao(tmp_path, TAOBAO_HEADER + "1,2,3,pv,1511544070\n" + row + "\n")
    with pytest.raises(DatasetInvalid, match=expected) as caught:
        load_taobao(data)
    assert str(caught.value).startswith(str(tmp_path / TAOBAO_DIR / TAOBAO_FILE))


def test_taobao_wrong_header_or_no_rows(tmp_path):
    with pytest.raises(DatasetInvalid, match=r"line 1: no column 'user_id', .* header is \['a', 'b', 'c'\]"):
        load_taobao(_taobao(tmp_path, "a,b,c\n1,2,3\n"))
    with pytest.raises(DatasetInvalid, match=r"events.csv: no data rows"):
        load_taobao(_taobao(tmp_path, TAOBAO_HEADER))
    with pytest.raises(DatasetInvalid, match=r"events.csv: the file is empty"):
        load_taobao(_taobao(tmp_path, ""))


def test_taobao_good_rows_still_load(tmp_path):
    data = load_taobao(_taobao(tmp_path, TAOBAO_HEADER + "1,2,3,pv,1511544070\n1,4,3,buy,1511544071\n"))
    assert [e["event_type"] for e in data.events] == ["view", "purchase"]
    assert data.events[1] == {
        "event_id": "1",
        "event_type": "purchase",
        "user_id": "1",
        "item_id": "4",
        "timestamp": 1511544071,
        "category": "3",
    }


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("1;NA;5;12x;2016-05-25", r"line 3: field 'timeframe' is '12x', not a whole number of milliseconds"),
        ("1;NA;5;12;25/05/2016", r"line 3: field 'eventdate' is '25/05/2016', not a YYYY-MM-DD date"),
        ("1;NA;5", r"line 3: field '(timeframe|eventdate)' missing"),
    ],
)
def test_diginetica_malformed_row(tmp_path, row, expected):
    data = _diginetica(tmp_path, DIGINETICA_HEADER + "1;NA;4;0;2016-05-25\n" + row + "\n")
    with pytest.raises(DatasetInvalid, match=expected) as caught:
        diginetica_split(data)
    assert str(caught.value).startswith(str(tmp_path / DIGINETICA_DIR / DIGINETICA_FILE))


def test_diginetica_header_only(tmp_path):
    with pytest.raises(DatasetInvalid, match="no data rows"):
        diginetica_split(_diginetica(tmp_path, DIGINETICA_HEADER))


def test_session_file_short_row_names_file_and_line(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("s,i,t\na,x,1700000000\n1,b\n")
    with pytest.raises(DatasetInvalid, match=r"s.csv, line 3: field 't' missing"):
        read_session_file(path, ",", "s", "i", "t")


def test_session_file_header_only_or_not_csv(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("s,i,t\n")
    with pytest.raises(DatasetInvalid, match=r"s.csv: no data rows"):
        read_session_file(path, ",", "s", "i", "t")
    path.write_bytes(b"s,i,t\n\xff\xfe,1,2\n")
    with pytest.raises(DatasetInvalid, match=r"s.csv"):
        read_session_file(path, ",", "s", "i", "t")


def test_missing_session_file_does_not_mention_data_or_source(tmp_path):
    with pytest.raises(DatasetMissing) as caught:
        read_session_file(tmp_path / "nope.csv", ",", "s", "i", "t")
    message = str(caught.value)
    assert "nope.csv" in message and "--data" not in message and "SOURCE.txt" not in message


def test_missing_data_set_cites_source_txt_only_when_it_exists(tmp_path):
    with pytest.raises(DatasetMissing) as caught:
        load_taobao(tmp_path)
    assert "SOURCE.txt" not in str(caught.value) and "--data DIR" in str(caught.value)
    (tmp_path / TAOBAO_DIR).mkdir()
    (tmp_path / TAOBAO_DIR / "SOURCE.txt").write_text("where it comes from\n")
    with pytest.raises(DatasetMissing, match="as described by .*SOURCE.txt"):
        load_taobao(tmp_path)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("s 1,a,1700000000", r"line 3: field 's' is 's 1', not an id the engine accepts"),
        ("s1,a,1", r"line 3: field 't' is '1', before 2000-01-01"),
        ("s1,a,99999999999", r"line 3: field 't' is '99999999999', more than a day in the future"),
        ("s1,a,nan", r"line 3: field 't': time 'nan' is not finite"),
    ],
)
def test_session_file_rows_the_engine_would_reject(tmp_path, row, expected):
    path = tmp_path / "s.csv"
    path.write_text("s,i,t\ns1,a,1700000000\n" + row + "\n")
    with pytest.raises(DatasetInvalid, match=expected):
        read_session_file(path, ",", "s", "i", "t")


def test_taobao_timestamp_the_engine_would_reject(tmp_path):
    data = _taobao(tmp_path, TAOBAO_HEADER + "1,2,3,pv,1511544\n")
    with pytest.raises(DatasetInvalid, match=r"line 2: field 'timestamp' is '1511544', before 2000-01-01"):
        load_taobao(data)


RETAIL_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
RETAIL_GOOD = "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"


def _retail(tmp_path: Path, first_part: bytes) -> Path:
    import gzip

    from streamrec.evaluation.p3 import RETAIL_DIR, RETAIL_FILES

    folder = tmp_path / RETAIL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RETAIL_FILES[0]).write_bytes(first_part)
    for name in RETAIL_FILES[1:]:
        (folder / name).write_bytes(gzip.compress((RETAIL_HEADER + RETAIL_GOOD).encode()))
    return tmp_path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            RETAIL_HEADER + RETAIL_GOOD.replace(",6,", ",six,"),
            r"line 2: field 'Quantity' is 'six', not a whole number",
        ),
        (
            RETAIL_HEADER + RETAIL_GOOD.replace("2010-12-01 08:26:00", "yesterday"),
            r"line 2: field 'InvoiceDate'",
        ),
        (
            RETAIL_HEADER + RETAIL_GOOD.replace("17850.0", "anna"),
            r"line 2: field 'CustomerID' is 'anna', not a number",
        ),
        (RETAIL_HEADER + "536365,85123A\n", r"line 2: the row does not have one field per column"),
        ("InvoiceNo,StockCode\n", r"line 1: no column 'Description'"),
    ],
)
def test_a_malformed_online_retail_row_is_named_by_file_and_line(tmp_path, text, expected):
    import gzip

    from streamrec.evaluation.p3 import load_online_retail

    with pytest.raises(DatasetInvalid, match=expected):
        load_online_retail(_retail(tmp_path, gzip.compress(text.encode())))


def test_an_online_retail_part_that_is_not_gzip_is_one_error(tmp_path, capsys):
    from streamrec.cli import main

    data = _retail(tmp_path, b"not gzip at all")
    assert main(["eval", "p3", "--data", str(data), "--peers", ""]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("streamrec eval p3: ")
    assert "cannot be read as gzip-compressed UTF-8 CSV" in err[-1]


def test_a_data_file_that_cannot_be_read_is_named(tmp_path, monkeypatch):
    data = _taobao(tmp_path, TAOBAO_HEADER + "1,2,3,pv,1511544070\n")
    path = data / TAOBAO_DIR / TAOBAO_FILE
    opened = Path.open

    def refused(self: Path, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return opened(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refused)
    with pytest.raises(DatasetInvalid, match="events.csv: it cannot be read: Permission denied$"):
        load_taobao(data)
