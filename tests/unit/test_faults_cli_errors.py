"""``streamrec faults`` refuses out-of-range options at parsing (argparse's usage + one
error line, exit 2) instead of a botocore traceback or an "OK" for a replay of nothing,
and names a malformed data file's line; nothing here starts a replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.cli import main
from streamrec.evaluation.datasets import TAOBAO_DIR, TAOBAO_FILE

TAOBAO_HEADER = "user_id,item_id,category_id,behavior_type,timestamp\n"


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--batch-size", "-3", "must be between 1 and 10,000, got -3"),
        ("--batch-size", "0", "must be between 1 and 10,000, got 0"),
        ("--batch-size", "10001", "must be between 1 and 10,000, got 10001"),
        ("--events", "0", "must be at least 1, got 0"),
        ("--events", "-5", "must be at least 1, got -5"),
        ("--events", "many", "expected a whole number >= 1, got 'many'"),
        ("--sweep-events", "-1", "must be at least 0, got -1"),
        ("--poison-events", "-3", "must be at least 1, got -3"),
        ("--poison-per-kind", "-1", "must be at least 0, got -1"),
        ("--crash-rate", "2", "must be between 0 and 1, got 2"),
        ("--crash-rate", "nan", "must be between 0 and 1, got nan"),
        ("--duplicate-rate", "-1", "must be between 0 and 1, got -1"),
        ("--redelivery-rate", "1.5", "must be between 0 and 1, got 1.5"),
        ("--redelivery-rate", "half", "expected a share between 0 and 1, got 'half'"),
    ],
)
def test_out_of_range_options_are_refused_at_parsing(capsys, option, value, expected):
    with pytest.raises(SystemExit) as caught:
        main(["faults", option, value])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"streamrec faults: error: argument {option}: {expected}"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--batch-size", "1"),
        ("--batch-size", "10000"),
        ("--crash-rate", "0"),
        ("--crash-rate", "1"),
        ("--sweep-events", "0"),
        ("--poison-per-kind", "0"),
    ],
)
def test_the_limits_themselves_are_accepted(option, value):
    from streamrec.cli import build_parser

    parsed = build_parser().parse_args(["faults", option, value])
    assert getattr(parsed, option[2:].replace("-", "_")) == float(value)


def _taobao(folder: Path, rows: str) -> Path:
    (folder / TAOBAO_DIR).mkdir(parents=True, exist_ok=True)
    (folder / TAOBAO_DIR / TAOBAO_FILE).write_text(TAOBAO_HEADER + rows)
    return folder


def test_malformed_data_file_is_one_line(tmp_path, capsys):
    _taobao(tmp_path, "1,2,3,pv,1511544070\n1,2,3,zz,notatime\n")
    assert main(["faults", "--data", str(tmp_path), "--output", str(tmp_path / "f.json")]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"streamrec faults: {tmp_path / TAOBAO_DIR / TAOBAO_FILE}, line 3: field 'behavior_type' is 'zz', "
        "not one of pv, cart, fav, buy"
    ]
    assert not (tmp_path / "f.json").exists()


def test_more_events_than_the_file_holds_is_refused(tmp_path, capsys):
    _taobao(tmp_path, "1,2,3,pv,1511544070\n1,4,3,pv,1511544071\n")
    argv = ["faults", "--data", str(tmp_path), "--output", str(tmp_path / "f.json"), "--events", "5"]
    assert main(argv) == 2
    assert capsys.readouterr().err == "streamrec faults: only 2 events in the data file; --events 5 asked\n"
    assert main([*argv[:-2], "--events", "1", "--poison-events", "3"]) == 2
    assert "--poison-events 3 asked" in capsys.readouterr().err
