"""``streamrec eval`` parsing and commands, on a parser built here (as streamrec.cli does)."""

from __future__ import annotations

import argparse
import json

import pytest

from streamrec.evaluation.cli import add_eval_parser

T0 = 1_700_000_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamrec")
    add_eval_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def test_subcommands_and_defaults():
    parser = _parser()
    args = parser.parse_args(["eval", "p1"])
    assert args.k == 20 and args.out is None and not args.with_rtrec
    assert args.data.name == "datasets" and args.data.parent.name == "shared"
    assert args.peers.split(",") == ["pop", "pop-24h", "itemknn-cosine", "itemknn-bm25", "als"]
    assert args.rtrec_record.parts[-2:] == ("eval", "rtrec_last.json")
    args = parser.parse_args(
        ["eval", "sessions", "--train", "a", "--test", "b", "--sep", "\\t", "--session-col", "s",
         "--item-col", "i", "--time-col", "t"]
    )
    assert args.sep == "\t" and args.mode == "stream" and args.k == 20
    assert parser.parse_args(["eval", "all", "--with-rtrec"]).with_rtrec
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "sessions", "--train", "a", "--test", "b", "--sep", "|",
                           "--session-col", "s", "--item-col", "i", "--time-col", "t"])


def test_all_skips_with_a_message_when_the_data_folder_is_absent(tmp_path, capsys, monkeypatch):
    import streamrec.evaluation.cli

    monkeypatch.setattr(streamrec.evaluation.cli, "default_data_dir", lambda: tmp_path / "absent")
    assert _run(["eval", "all", "--report-dir", str(tmp_path / "r")]) == 0
    assert "skipped" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    # A folder named with --data that is not there is a mistake (a typo must not pass CI).
    assert _run(["eval", "all", "--data", str(tmp_path / "typo"), "--report-dir", str(tmp_path / "r")]) == 1
    assert f"the data folder {tmp_path / 'typo'} given with --data is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_p1_names_the_missing_file_and_what_should_be_there(tmp_path, capsys):
    pytest.importorskip("implicit", reason="the 'eval' extra is not installed")
    assert _run(["eval", "p1", "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "taobao_userbehavior_head" / "events.csv") in err
    assert "expected: events.csv" in err and "--data" in err
    assert "SOURCE.txt" not in err  # there is none in tmp_path


def test_sessions_prints_json_and_dumps(tmp_path, capsys):
    train = tmp_path / "train.csv"
    test = tmp_path / "test.csv"
    train.write_text("S;I;T\n" + "".join(f"s{n};{i};{T0 + 3 * n + j}\n" for n in range(20)
                                           for j, i in enumerate("abc")))
    test.write_text("S;I;T\nx;a;1700001000\nx;b;1700001001\nx;c;1700001002\ny;a;1700001003\n")
    out = tmp_path / "result.json"
    dump = tmp_path / "dump.csv"
    argv = ["eval", "sessions", "--train", str(train), "--test", str(test), "--sep", ";",
            "--session-col", "S", "--item-col", "I", "--time-col", "T", "--dump", str(dump),
            "--out", str(out), "--peers", "pop", "-q"]
    assert _run(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["mode"] == "stream" and printed["positions"] == 2
    assert printed["hr@20"] == pytest.approx(1.0) and 0 < printed["mrr@20"] <= 1
    assert set(printed["peers"]) == {"pop"}
    assert dump.read_text().splitlines()[0] == "SessionId;Position;Recommendations;Scores"
    assert len(dump.read_text().splitlines()) == 3
    assert _run([*argv[:-3], "--mode", "frozen", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "frozen"


def test_sessions_reports_a_bad_column(tmp_path, capsys):
    path = tmp_path / "f.csv"
    path.write_text("a,b,c\n1,2,3\n")
    assert _run(["eval", "sessions", "--train", str(path), "--test", str(path), "--session-col", "S",
                 "--item-col", "b", "--time-col", "c"]) == 1
    assert "no column 'S'" in capsys.readouterr().err
