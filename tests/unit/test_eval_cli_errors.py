"""Bad input to ``streamrec eval``: one ``streamrec eval <command>: <message>`` line on
stderr and a non-zero exit (argparse's usage + error for option values), never a
traceback; and the progress lines of the slow steps (silenced by -q/--quiet).

Every run here uses tiny files in tmp_path (or a folder without the data sets, so that a
check made before loading shows as its own message instead of "data file not found")."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from streamrec.cli import main
from streamrec.evaluation import sessions
from streamrec.evaluation.datasets import DIGINETICA_DIR, DIGINETICA_FILE, TAOBAO_DIR, TAOBAO_FILE

T0 = 1_700_000_000
TAOBAO_HEADER = "user_id,item_id,category_id,behavior_type,timestamp\n"
WARMUP_END = 1_512_144_000  # P1/P4's warm-up ends 2017-12-02 00:00 China time


def _sessions(train: str, test: str, columns: str = "SIT") -> list[str]:
    """``eval sessions`` with its files and its session, item and time column names."""
    session, item, time = columns
    columns_args = ["--session-col", session, "--item-col", item, "--time-col", time]
    return ["sessions", "--train", train, "--test", test, *columns_args]


def _error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    """The one line on stderr, which names the command; nothing on stdout."""
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"streamrec eval {command}: "), lines[0]
    assert captured.out == ""
    return lines[0]


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    return err.splitlines()[-1]


def _taobao(folder: Path, rows: str, header: str = TAOBAO_HEADER) -> Path:
    (folder / TAOBAO_DIR).mkdir(parents=True, exist_ok=True)
    (folder / TAOBAO_DIR / TAOBAO_FILE).write_text(header + rows)
    return folder


def _session_files(tmp_path: Path, test: str) -> list[str]:
    train = tmp_path / "train.csv"
    train.write_text(
        "S,I,T\n" + "".join(f"s{n},{i},{T0 + 3 * n + j}\n" for n in range(5) for j, i in enumerate("abc"))
    )
    path = tmp_path / "test.csv"
    path.write_text(test)
    return ["eval", *_sessions(str(train), str(path)), "-q"]


# ---- 1. --k ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        ["p1"],
        ["p2"],
        ["all"],
        _sessions("a", "b", "sit"),
    ],
)
@pytest.mark.parametrize(
    ("k", "expected"),
    [
        ("0", "must be at least 1, got 0"),
        ("-3", "must be at least 1, got -3"),
        ("x", "expected a whole number >= 1, got 'x'"),
    ],
)
def test_k_below_one_is_refused_at_parsing(capsys, command, k, expected):
    line = _usage_error(capsys, ["eval", *command, "--k", k])
    assert line == f"streamrec eval {command[0]}: error: argument --k: {expected}"


@pytest.mark.parametrize("option", ["--warmup-batch", "--max-test-events"])
def test_p1_counts_below_one_are_refused_at_parsing(capsys, option):
    assert "must be at least 1, got 0" in _usage_error(capsys, ["eval", "p1", option, "0"])


# ---- 2, 3. --peers ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "known"),
    [
        ("p1", "pop, pop-24h, itemknn-cosine, itemknn-bm25, als, rtrec"),
        ("p2", "pop, itemknn-cosine, itemknn-bm25"),
        ("p3", "popularity, rules-lift, rules-confidence, itemknn-cosine, itemknn-bm25"),
    ],
)
def test_unknown_peers_fail_before_any_data_is_read(tmp_path, capsys, command, known):
    # tmp_path holds no data set: reaching the loader would say "data file not found".
    assert main(["eval", command, "--data", str(tmp_path), "--peers", "bogus", "-q"]) == 1
    line = _error_line(capsys, command)
    assert line.endswith(
        f"unknown peer 'bogus'; --peers takes a comma-separated list of {known} ('' for none)"
    )
    assert main(["eval", command, "--data", str(tmp_path), "--peers", "bogus,x", "-q"]) == 1
    assert "unknown peers 'bogus', 'x';" in _error_line(capsys, command)


def test_sessions_unknown_peer_fails_before_reading_the_files(tmp_path, capsys):
    argv = ["eval", *_sessions(str(tmp_path / "no.csv"), str(tmp_path / "no.csv")), "--peers", "bogus"]
    assert main(argv) == 1
    assert "unknown peer 'bogus'" in _error_line(capsys, "sessions")


def test_p1_without_engine_or_peers_has_nothing_to_run(tmp_path, capsys):
    assert main(["eval", "p1", "--data", str(tmp_path), "--no-engine", "--peers", "", "-q"]) == 1
    assert "nothing to evaluate" in _error_line(capsys, "p1")


# ---- 4, 9, 10. session files -----------------------------------------------------------------
def test_sessions_short_row_names_file_and_line(tmp_path, capsys):
    assert main(_session_files(tmp_path, "S,I,T\nx,a,1700001000\n1,b\n")) == 1
    line = _error_line(capsys, "sessions")
    assert f"{tmp_path / 'test.csv'}, line 3: field 'T' missing" in line


def test_sessions_header_only_test_file_is_an_error(tmp_path, capsys):
    assert main(_session_files(tmp_path, "S,I,T\n")) == 1
    assert _error_line(capsys, "sessions").endswith("test.csv: no data rows (only a header)")


def test_sessions_test_file_without_positions_is_an_error(tmp_path, capsys):
    assert main(_session_files(tmp_path, "S,I,T\nx,a,1700001000\ny,b,1700001001\n")) == 1
    assert "no positions to predict: every session of" in _error_line(capsys, "sessions")


def test_sessions_missing_file_does_not_mention_data(tmp_path, capsys):
    argv = _session_files(tmp_path, "S,I,T\n")
    argv[argv.index("--test") + 1] = str(tmp_path / "nope.csv")
    assert main(argv) == 1
    line = _error_line(capsys, "sessions")
    assert line == f"streamrec eval sessions: data file not found: {tmp_path / 'nope.csv'}"


# ---- 5, 9. the Taobao and Diginetica files ---------------------------------------------------
@pytest.mark.parametrize("command", ["p1", "p4"])
def test_malformed_taobao_row_names_file_line_and_field(tmp_path, capsys, command):
    _taobao(tmp_path, f"1,2,3,pv,{WARMUP_END - 10}\n1,2,3,zz,notatime\n")
    argv = ["eval", command, "--data", str(tmp_path), "-q"] + (["--peers", "pop"] if command == "p1" else [])
    assert main(argv) == 1
    line = _error_line(capsys, command)
    assert f"{tmp_path / TAOBAO_DIR / TAOBAO_FILE}, line 3: field 'behavior_type' is 'zz'" in line


@pytest.mark.parametrize("fit", [[], ["--fit"]])
def test_p4_on_a_wrong_header_or_header_only_file(tmp_path, capsys, fit):
    _taobao(tmp_path, "1,2,3\n", header="a,b,c\n")
    assert main(["eval", "p4", "--data", str(tmp_path), "-q", *fit]) == 1
    assert "line 1: no column 'user_id'" in _error_line(capsys, "p4")
    _taobao(tmp_path, "")
    assert main(["eval", "p4", "--data", str(tmp_path), "-q", *fit]) == 1
    assert _error_line(capsys, "p4").endswith("events.csv: no data rows (only a header)")


def test_p4_without_test_events_or_targets_is_an_error(tmp_path, capsys):
    _taobao(tmp_path, f"1,2,3,buy,{WARMUP_END - 10}\n")
    assert main(["eval", "p4", "--data", str(tmp_path), "-q"]) == 1
    assert "1 warm-up and 0 test events" in _error_line(capsys, "p4")
    _taobao(tmp_path, f"1,2,3,buy,{WARMUP_END - 10}\n2,4,5,buy,{WARMUP_END + 10}\n")
    assert main(["eval", "p4", "--data", str(tmp_path), "-q"]) == 1
    assert "no targets" in _error_line(capsys, "p4")


def test_p4_fit_with_too_few_examples_is_one_line(tmp_path, capsys):
    _taobao(tmp_path, f"1,2,3,buy,{WARMUP_END - 10}\n")
    assert main(["eval", "p4", "--fit", "--data", str(tmp_path), "-q"]) == 1
    assert "cannot fit the coupon model" in _error_line(capsys, "p4")


def test_p1_without_targets_is_an_error(tmp_path, capsys):
    _taobao(tmp_path, f"1,2,3,pv,{WARMUP_END - 10}\n")
    assert main(["eval", "p1", "--data", str(tmp_path), "--peers", "pop", "-q"]) == 1
    assert "no targets" in _error_line(capsys, "p1")


def test_p2_unparsable_timeframe_names_file_line_and_field(tmp_path, capsys):
    (tmp_path / DIGINETICA_DIR).mkdir()
    path = tmp_path / DIGINETICA_DIR / DIGINETICA_FILE
    path.write_text("session_id;user_id;item_id;timeframe;eventdate\n1;NA;5;12x;2016-05-25\n")
    assert main(["eval", "p2", "--data", str(tmp_path), "--peers", "", "-q"]) == 1
    assert f"{path}, line 2: field 'timeframe' is '12x'" in _error_line(capsys, "p2")


# ---- 6. eval report --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{bad", "is not valid JSON"),
        ("{}", "is not a report of `streamrec eval all` (no 'date', 'settings')"),
        ("[1]", "holds an array, not a report"),
        (
            '{"date": "d", "settings": {}, "p1": "x"}',
            "is not a report of `streamrec eval all` (AttributeError",
        ),
    ],
)
def test_report_with_a_corrupt_report_json(tmp_path, capsys, text, expected):
    (tmp_path / "report.json").write_text(text)
    assert main(["eval", "report", "--report-dir", str(tmp_path)]) == 1
    assert expected in _error_line(capsys, "report")


@pytest.mark.parametrize(
    ("text", "problem"), [("{truncated", "cannot be read"), ("[]", "holds an array, not rtrec's figures")]
)
def test_report_warns_when_rtrec_last_cannot_be_read(tmp_path, capsys, text, problem):
    pytest.importorskip("matplotlib", reason="the 'eval' extra is not installed")
    (tmp_path / "report.json").write_text(json.dumps({"date": "2026-01-01T00:00:00Z", "settings": {}}))
    (tmp_path / "rtrec_last.json").write_text(text)
    assert main(["eval", "report", "--report-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(
        f"streamrec eval report: warning: {tmp_path / 'rtrec_last.json'} {problem}"
    )
    assert "no dated rtrec row" in captured.err and "re-rendered" in captured.out


# ---- 10. messages and help -------------------------------------------------------------------
def test_set_without_equals_asks_for_name_equals_value(tmp_path, capsys):
    assert main(["eval", "p3", "--data", str(tmp_path), "--set", "noequals", "-q"]) == 1
    assert _error_line(capsys, "p3") == "streamrec eval p3: --set noequals: expected NAME=VALUE"


def test_help_texts(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "content", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "20% of the test's products" in out and "%%" not in out
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(content, demand)" in out and "(sessions)" in out
    with pytest.raises(SystemExit):
        main(["eval", "demand", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(2011-06-01 .. 2011-08-31)" in out and "%" not in out


def test_p4_takes_q_like_the_others(tmp_path, capsys):
    assert main(["eval", "p4", "--data", str(tmp_path), "-q"]) == 1
    assert "data file not found" in capsys.readouterr().err


# ---- 11. progress lines ----------------------------------------------------------------------
def _retail(folder: Path) -> Path:
    """A tiny Online Retail: 12 training invoices, then 3 test invoices (from 2011-11-09)."""
    from streamrec.evaluation.p3 import RETAIL_DIR, RETAIL_FILES

    (folder / RETAIL_DIR).mkdir(parents=True)
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    rows = []
    for n in range(15):
        day = f"2011-10-{n + 1:02d}" if n < 12 else f"2011-11-{n:02d}"
        for code in (f"2{n % 4}00{j}" for j in range(3)):
            rows.append(
                f"{500 + n},{code},THING {code},1,{day} 10:00:00,1.5,{12000 + n % 5},United Kingdom\n"
            )
    for number, name in enumerate(RETAIL_FILES):
        with gzip.open(folder / RETAIL_DIR / name, "wt", encoding="utf-8") as handle:
            handle.write(header + ("".join(rows) if number == 0 else ""))
    return folder


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["p3", "--peers", "popularity"],
            [
                "P3: loading online_retail_uci/",
                "P3: 12 training invoices, 3 test "
                "invoices; ingesting the training invoices into the engine and the peers",
            ],
        ),
        (
            ["content"],
            ["content: loading the catalog", "content: loading the invoices", "content: ingesting"],
        ),
    ],
)
def test_retail_protocols_say_what_they_load_and_ingest(tmp_path, capsys, argv, expected):
    data = _retail(tmp_path)
    assert main(["eval", *argv, "--data", str(data)]) == 0
    err = capsys.readouterr().err
    for text in expected:
        assert text in err
    assert main(["eval", *argv, "--data", str(data), "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_p4_says_what_it_loads_and_replays(tmp_path, capsys):
    _taobao(tmp_path, f"1,2,3,buy,{WARMUP_END - 10}\n1,2,3,buy,{WARMUP_END + 10}\n")
    main(["eval", "p4", "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert "P4: loading taobao_userbehavior_head/events.csv ..." in err
    assert "P4: replaying 1 warm-up events" in err


# ---- output paths ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["p1", "--out", "{tmp}"], "argument --out/--output: {tmp} is a folder; name a file"),
        (["p2", "--dump", "{tmp}/no/such/prefix"], "argument --dump: folder {tmp}/no/such does not exist"),
        (
            [*_sessions("a", "b", "sit"), "--dump", "{tmp}/no/d.csv"],
            "argument --dump: folder {tmp}/no does not exist",
        ),
        (["all", "--report-dir", "{tmp}/file"], "argument --report-dir: {tmp}/file is a file, not a folder"),
        (["p2", "--dump", "{tmp}/file/prefix"], "argument --dump: {tmp}/file is a file, not a folder"),
        (
            [*_sessions("a", "b", "sit"), "--dump", "{tmp}/file/d.csv"],
            "argument --dump: {tmp}/file is a file, not a folder",
        ),
    ],
)
def test_output_paths_are_checked_at_parsing(tmp_path, capsys, argv, expected):
    (tmp_path / "file").write_text("")
    line = _usage_error(capsys, ["eval", *(a.format(tmp=tmp_path) for a in argv)])
    assert line == f"streamrec eval {argv[0]}: error: " + expected.format(tmp=tmp_path)


def test_a_dump_that_cannot_be_written_after_all_is_one_line(tmp_path, capsys, monkeypatch):
    # Checked at parsing, the folder can still go away (or fill up) during the run.
    argv = _session_files(tmp_path, "S,I,T\nx,a,1700001000\nx,b,1700001001\n")
    folder = tmp_path / "dumps"
    folder.mkdir()
    original = sessions.write_dump

    def folder_gone(predictions, path):
        folder.rmdir()
        original(predictions, path)

    monkeypatch.setattr(sessions, "write_dump", folder_gone)
    assert main([*argv, "--dump", str(folder / "d.csv")]) == 1
    assert capsys.readouterr().err == (
        f"streamrec eval sessions: cannot write {folder / 'd.csv'}: No such file or directory\n"
    )


def test_an_unwritable_out_file_is_one_line_after_the_printed_result(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    argv = _session_files(tmp_path, "S,I,T\nx,a,1700001000\nx,b,1700001001\n")
    assert main([*argv, "--out", str(tmp_path / "file" / "r.json")]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["positions"] == 1
    assert captured.err.startswith(
        f"streamrec eval sessions: cannot write --out {tmp_path / 'file' / 'r.json'}: "
    )
    assert len(captured.err.splitlines()) == 1
