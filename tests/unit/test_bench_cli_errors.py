"""``streamrec bench`` refuses counts below 1 at parsing (--repeats 0 ended in a
StatisticsError traceback after loading), and more events than the file holds, a missing
template or a malformed data file with one line before measuring anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.cli import main
from streamrec.evaluation.datasets import TAOBAO_DIR, TAOBAO_FILE

TEMPLATE = str(Path(__file__).resolve().parents[2] / "template.yaml")


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--repeats", "0", "must be at least 1, got 0"),
        ("--events", "-1", "must be at least 1, got -1"),
        ("--compute-events", "0", "must be at least 1, got 0"),
        ("--cross-check-events", "0", "must be at least 1, got 0"),
        ("--e2e-events", "0", "must be at least 1, got 0"),
        ("--repeats", "x", "expected a whole number >= 1, got 'x'"),
    ],
)
def test_counts_below_one_are_refused_at_parsing(capsys, option, value, expected):
    with pytest.raises(SystemExit) as caught:
        main(["bench", option, value])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"streamrec bench: error: argument {option}: {expected}"


def _data(tmp_path, rows):
    (tmp_path / TAOBAO_DIR).mkdir()
    (tmp_path / TAOBAO_DIR / TAOBAO_FILE).write_text(
        "user_id,item_id,category_id,behavior_type,timestamp\n" + rows
    )
    return tmp_path


OPTIONS = ["--events", "--compute-events", "--calls-events", "--cross-check-events", "--e2e-events"]


@pytest.mark.parametrize("option", OPTIONS)
def test_more_events_than_the_file_holds_is_refused(tmp_path, capsys, option):
    data = _data(tmp_path, "1,2,3,pv,1511544070\n1,4,3,pv,1511544071\n")
    argv = ["bench", "--data", str(data), "--output", str(tmp_path / "r.json"), "--template", TEMPLATE]
    counts = dict.fromkeys(OPTIONS, "2")
    counts[option] = "3"
    assert main([*argv, *(x for pair in counts.items() for x in pair)]) == 2
    assert capsys.readouterr().err == f"streamrec bench: only 2 events in the data file; {option} 3 asked\n"
    assert not (tmp_path / "r.json").exists()


def test_a_similarity_backlog_of_more_events_than_the_file_holds_is_refused(tmp_path, capsys):
    data = _data(tmp_path, "1,2,3,pv,1511544070\n1,4,3,pv,1511544071\n")
    argv = ["bench", "--similarity-backlog", "--data", str(data), "--events", "3", "--template", TEMPLATE]
    assert main([*argv, "--output", str(tmp_path / "r.json")]) == 2
    assert capsys.readouterr().err == "streamrec bench: only 2 events in the data file; --events 3 asked\n"
    assert not (tmp_path / "similarity_backlog.json").exists()


def test_missing_template_and_malformed_data(tmp_path, capsys):
    assert main(["bench", "--template", str(tmp_path / "nope.yaml"), "--data", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err
        == f"streamrec bench: SAM template not found: {tmp_path / 'nope.yaml'} (--template)\n"
    )
    data = _data(tmp_path, "1,2,3,pv,1511544070\n1,2,3,zz,notatime\n")
    assert (
        main(["bench", "--data", str(data), "--output", str(tmp_path / "r.json"), "--template", TEMPLATE])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith(
        f"streamrec bench: {tmp_path / TAOBAO_DIR / TAOBAO_FILE}, line 3: field 'behavior_type'"
    )
    assert len(err.splitlines()) == 1


def test_an_output_folder_is_refused_at_parsing(capsys, tmp_path):
    with pytest.raises(SystemExit) as caught:
        main(["bench", "--output", str(tmp_path)])
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"streamrec bench: error: argument --output: {tmp_path} is a folder; name a file"
    )


def test_catalog_run_stops_with_a_message_without_the_online_retail_file(tmp_path, capsys):
    assert main(["bench", "--catalog", "--data", str(tmp_path), "--output", str(tmp_path / "r.json")]) == 2
    message = capsys.readouterr().err
    assert "--catalog needs the Online Retail file" in message and str(tmp_path) in message
    assert not (tmp_path / "catalog.json").exists()


def test_hot_item_and_catalog_runs_are_not_combined(tmp_path, capsys):
    assert main(["bench", "--catalog", "--hot-item", "--output", str(tmp_path / "r.json")]) == 2
    assert "--hot-item and --catalog are separate runs" in capsys.readouterr().err


def test_similarity_backlog_run_stops_with_a_message_without_the_taobao_file(tmp_path, capsys):
    assert (
        main(["bench", "--similarity-backlog", "--data", str(tmp_path), "--output", str(tmp_path / "r.json")])
        == 2
    )
    message = capsys.readouterr().err
    assert "--similarity-backlog needs the Taobao file" in message and str(tmp_path) in message
    assert not (tmp_path / "similarity_backlog.json").exists()
    assert main(["bench", "--similarity-backlog", "--hot-item", "--output", str(tmp_path / "r.json")]) == 2
    assert "--hot-item and --similarity-backlog are separate runs" in capsys.readouterr().err


def test_similarity_backlog_compares_the_templates_batch_size(tmp_path):
    from streamrec.bench import cli, runs
    from streamrec.local.template import load_raw_template

    template = Path(__file__).resolve().parents[2] / "template.yaml"
    default = int(load_raw_template(template)["Parameters"]["SimilarityBatchSize"]["Default"])
    assert cli._similarity_batch_size(template) == default
    assert cli._similarity_batch_size(tmp_path / "absent.yaml") is None
    row = {
        "invocations": 2,
        "wru_per_event": 1.0,
        "rru_per_event": 2.0,
        "calls_per_event": 0.5,
        "service_cpu_s_per_event": 0.001,
        "round_trips_per_event": 0.1,
    }
    report = cli.format_similarity_backlog(
        {
            "date": "d",
            "events": 10,
            "ingest_batch": 5,
            "template_batch": default,
            "batches": {str(runs.SIMILARITY_BATCH): row, str(default): row},
        }
    )
    assert f"{default:>6,}*" in report and f"{runs.SIMILARITY_BATCH:>6,} " in report


def test_the_stock_run_is_not_combined_with_another(tmp_path, capsys):
    assert main(["bench", "--stock", "--catalog", "--output", str(tmp_path / "r.json")]) == 2
    assert "--catalog and --stock are separate runs" in capsys.readouterr().err
    assert not (tmp_path / "stock.json").exists()
