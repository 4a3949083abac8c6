"""`streamrec catalog load FILE`: validation naming lines, and the records put on the stream."""

from __future__ import annotations

import json

import boto3
import pytest

from streamrec.cli import main
from streamrec.cli.catalog import read_catalog_file
from streamrec.cli.coupons import read_coupon_file
from tests.unit.test_coupons import LOAD_RECORD as COUPON

TENT = {
    "item_id": "tent",
    "title": "Dome tent",
    "category": "camping",
    "price": 99,
    "in_stock": True,
    "tags": [],
}
STOVE = {**TENT, "item_id": "stove", "title": "Camping stove", "in_stock": False, "timestamp": 1_764_000_000}


def test_json_lines_and_arrays_are_read_with_defaults(tmp_path):
    lines = tmp_path / "catalog.jsonl"
    lines.write_text(json.dumps(TENT) + "\n\n" + json.dumps(STOVE) + "\n")
    array = tmp_path / "catalog.json"
    array.write_text(json.dumps([TENT, STOVE], indent=2))
    for path in (lines, array):
        records, _ = read_catalog_file(path, now=1_764_000_500)
        assert [r["item_id"] for r in records] == ["tent", "stove"]
        assert records[0]["event_type"] == "item_upsert" and records[0]["timestamp"] == 1_764_000_500
        assert records[1]["timestamp"] == 1_764_000_000  # a given timestamp is kept


def test_a_json_lines_file_is_one_record_per_line_even_an_array(tmp_path):
    # As `coupons load` reads .jsonl: an array on a line is a record that is not an object.
    path = tmp_path / "catalog.jsonl"
    path.write_text(json.dumps([TENT, STOVE]) + "\n")
    with pytest.raises(SystemExit) as failed:
        read_catalog_file(path)
    assert str(failed.value).splitlines()[1] == f"  {path} line 1: record must be a JSON object, got an array"


def test_a_json_lines_file_holding_an_array_over_several_lines_is_named_misnamed(tmp_path):
    path = tmp_path / "catalog.jsonl"
    path.write_text(json.dumps([TENT, STOVE], indent=2) + "\n")
    with pytest.raises(SystemExit) as failed:
        read_catalog_file(path)
    assert str(failed.value) == (
        f"error: nothing loaded; {path} holds one JSON array over several lines, and a .jsonl file "
        "is read one record per line: name it .json, or write one record per line"
    )
    coupons = tmp_path / "coupons.jsonl"
    coupons.write_text(json.dumps([COUPON], indent=2))
    with pytest.raises(SystemExit, match="read one coupon per line: name it .json"):
        read_coupon_file(coupons)


def test_bad_records_are_named_by_line_and_nothing_is_loaded(tmp_path):
    path = tmp_path / "catalog.jsonl"
    path.write_text(
        json.dumps(TENT)
        + "\n"
        + json.dumps({**TENT, "in_stock": "no"})
        + "\n"
        + json.dumps({**TENT, "price": -1})
    )
    with pytest.raises(SystemExit) as failed:
        read_catalog_file(path)
    message = str(failed.value)
    assert "nothing loaded; 2 invalid record(s)" in message
    assert f"{path} line 2: item_upsert schema violation: in_stock" in message
    assert f"{path} line 3: item_upsert schema violation: price" in message


def test_a_user_event_in_a_catalog_file_points_to_events_load(tmp_path):
    path = tmp_path / "catalog.jsonl"
    view = {"event_type": "view", "user_id": "u1", "item_id": "tent", "timestamp": 1_764_000_000}
    path.write_text(json.dumps(TENT) + "\n" + json.dumps(view) + "\n")
    with pytest.raises(SystemExit) as failed:
        read_catalog_file(path)
    assert str(failed.value).splitlines()[1:] == [
        f"  {path} line 2: a user event (view): load those with `streamrec events load`"
    ]


def test_every_bad_line_is_named_in_one_run_json_and_schema_alike(tmp_path):
    path = tmp_path / "catalog.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(TENT),
                json.dumps({**TENT, "price": -1}),
                "{not json",
                json.dumps(STOVE),
                json.dumps({**TENT, "in_stock": "no"}),
                '{"item_id": ',
            ]
        )
    )
    with pytest.raises(SystemExit) as failed:
        read_catalog_file(path)
    lines = str(failed.value).splitlines()
    assert lines[0] == "error: nothing loaded; 4 invalid record(s):"
    assert [line.split(": ", 1)[0].strip() for line in lines[1:]] == [
        f"{path} line {n}" for n in (2, 3, 5, 6)
    ]
    assert "line 2: item_upsert schema violation: price" in lines[1]
    assert "line 3: not valid JSON" in lines[2]
    assert "line 5: item_upsert schema violation: in_stock" in lines[3]
    assert "line 6: not valid JSON" in lines[4]


def test_an_array_names_the_bad_records_before_its_first_syntax_error(tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text(
        "[\n"
        + json.dumps(TENT)
        + ",\n"
        + json.dumps({**TENT, "price": -1})
        + ",\n{oops},\n"
        + json.dumps(TENT)
        + "\n]"
    )
    with pytest.raises(SystemExit) as failed:
        read_catalog_file(path)
    lines = str(failed.value).splitlines()
    assert lines[0] == "error: nothing loaded; 2 invalid record(s):"
    assert "record 2 (line 3): item_upsert schema violation: price" in lines[1]
    assert "line 4, after record 2: not valid JSON" in lines[2]
    assert "the rest of the array is not read" in lines[2]


def test_a_one_line_array_names_its_records_by_number(tmp_path):
    # json.dump's output: every record is on line 1, so the line alone names none of them.
    path = tmp_path / "catalog.json"
    records = [{**TENT, "item_id": f"item-{n}"} for n in range(40)]
    records[6]["price"], records[31]["in_stock"] = -1, "no"
    path.write_text(json.dumps(records))
    with pytest.raises(SystemExit) as failed:
        read_catalog_file(path)
    lines = str(failed.value).splitlines()
    assert lines[1].strip().startswith(f"{path} record 7: item_upsert schema violation: price")
    assert lines[2].strip().startswith(f"{path} record 32: item_upsert schema violation: in_stock")
    path.write_text(json.dumps(records[:3]) + "{")
    with pytest.raises(SystemExit, match="line 1, after record 3: text after the array's closing ]"):
        read_catalog_file(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"item_id": "a"}\n{not json\n', "line 2: not valid JSON"),
        ('[\n  {"item_id": "a"},\n  {oops}\n]', "line 3, after record 1: not valid JSON"),
        ('[\n  {"item_id": "a"}', "the array is not closed"),
        ('[\n  "just a string"\n]', "record 1 (line 2): record must be a JSON object"),
        # Read strictly: two arrays in one file (concatenated files) lost the second one,
        # and commas were skipped wherever they stood.
        (
            '[{"item_id": "a"}]\n[{"item_id": "b"}]\n',
            "line 2, after record 1: text after the array's closing ] (one array per file)",
        ),
        (
            '[{"item_id": "a"}]\n{"item_id": oops\n',
            "line 2, after record 1: text after the array's closing ]",
        ),
        (
            '[{"item_id": "a"} {"item_id": "b"}]',
            "line 1, after record 1: not valid JSON: a comma or ] expected after a record",
        ),
        (
            '[{"item_id": "a"},\n]',
            "line 2, after record 1: not valid JSON: a comma before the closing ] (remove it)",
        ),
        ('[,{"item_id": "a"}]', "line 1: not valid JSON: Expecting value"),
        ("", "holds no records"),
        # As the ingest refuses it: json would keep the last, which may not be the one meant.
        (
            '{"item_id": "a"}\n{"item_id": "b", "price": 1, "price": 2}\n',
            'line 2: not valid JSON: "price" is given more than once in one object; give it once',
        ),
        (
            '[\n  {"item_id": "a"},\n  {"item_id": "b", "item_id": "c"}\n]',
            'line 3, after record 1: not valid JSON: "item_id" is given more than once',
        ),
    ],
)
def test_undecodable_files_name_the_place(tmp_path, text, expected):
    path = tmp_path / "catalog.json"
    path.write_text(text)
    with pytest.raises(SystemExit) as failed:
        read_catalog_file(path)
    assert expected in str(failed.value)


def test_missing_file_and_missing_local_stack(tmp_path, capsys):
    with pytest.raises(SystemExit, match="not found"):
        read_catalog_file(tmp_path / "nope.jsonl")
    path = tmp_path / "catalog.jsonl"
    path.write_text(json.dumps(TENT))
    with pytest.raises(SystemExit, match="start the local stack"):
        main(["catalog", "load", str(path), "--outputs", str(tmp_path / "outputs.json")])
    with pytest.raises(SystemExit, match=r"catalog\.jsonl\.gz not found"):  # the file before the stack
        main(["catalog", "load", str(tmp_path / "catalog.jsonl.gz"), "--outputs", str(tmp_path / "o.json")])


def test_a_load_checks_the_stack_before_reading_the_file(tmp_path, monkeypatch):
    def read(*_: object) -> None:
        raise AssertionError("the file was read")

    monkeypatch.setattr("streamrec.cli.catalog.read_catalog_file", read)
    monkeypatch.setattr("streamrec.cli.events.read_event_file", read)
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(TENT))
    for command in ("catalog", "events"):
        with pytest.raises(SystemExit, match="start the local stack"):
            main([command, "load", str(path), "--outputs", str(tmp_path / "outputs.json")])


def test_load_puts_item_upsert_records_on_the_stream(aws, tmp_path, capsys):
    path = tmp_path / "catalog.jsonl"
    path.write_text("\n".join(json.dumps({**TENT, "item_id": f"item-{n}"}) for n in range(1201)))
    stream = aws.streams["EventStream"].name
    assert main(["catalog", "load", str(path), "--stream", stream]) == 0
    kinesis = boto3.client("kinesis")
    shard = kinesis.describe_stream(StreamName=stream)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = kinesis.get_records(ShardIterator=iterator["ShardIterator"], Limit=10_000)["Records"]
    assert len(records) == 1201
    first = json.loads(records[0]["Data"])
    assert first["event_type"] == "item_upsert" and records[0]["PartitionKey"] == "item-0"
    err = capsys.readouterr().err
    assert "sent 500/1201 records" in err
    assert f"sent 1201 catalog record(s), one per item (0 out of stock), to {stream}" in err
    assert "\r" not in err and "\033" not in err  # redirected stderr: plain lines


def test_load_sends_each_items_latest_record_of_the_file_once(aws, tmp_path, capsys):
    path = tmp_path / "catalog.jsonl"
    rows = [
        {**TENT, "title": "tent v1"},  # line 1: no timestamp, stamped with the load's time
        {**STOVE, "timestamp": 1_764_000_000},  # line 2
        {**TENT, "title": "tent v2"},  # line 3: the same (load) time, a later line: kept
        {**STOVE, "title": "older stove", "timestamp": 1_763_000_000},  # line 4: older
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows))
    records, superseded = read_catalog_file(path, now=1_764_000_500)
    assert [(r["item_id"], r["title"]) for r in records] == [("stove", "Camping stove"), ("tent", "tent v2")]
    assert [(s.item_id, s.place, s.kept_place) for s in superseded] == [
        ("tent", "line 1", "line 3"),
        ("stove", "line 4", "line 2"),
    ]
    # Each left-out record names the line finally sent, even when a later line replaces the
    # one that first beat it; an ISO time and epoch seconds compare as the same instant.
    three = tmp_path / "three.jsonl"
    times = ["2025-11-24T12:00:00Z", 1_763_900_000, 1_763_985_600]
    three.write_text(
        "\n".join(json.dumps({**TENT, "title": f"v{n}", "timestamp": t}) for n, t in enumerate(times))
    )
    records, superseded = read_catalog_file(three)
    assert [r["title"] for r in records] == ["v2"]
    assert [(s.place, s.kept_place) for s in superseded] == [("line 1", "line 3"), ("line 2", "line 3")]
    # Two records of one item on one line (a one-line array): the later one is sent, and
    # each is named by its number in the array (both are on line 1); over several lines,
    # with its line.
    one_line = tmp_path / "one-line.json"
    one_line.write_text(json.dumps([{**TENT, "title": "a"}, {**TENT, "title": "b"}]))
    records, superseded = read_catalog_file(one_line, now=1_764_000_500)
    assert [r["title"] for r in records] == ["b"]
    assert [(s.place, s.kept_place) for s in superseded] == [("record 1", "record 2")]
    one_line.write_text(json.dumps([{**TENT, "title": "a"}, {**TENT, "title": "b"}], indent=1))
    _, superseded = read_catalog_file(one_line, now=1_764_000_500)
    assert [(s.place, s.kept_place) for s in superseded] == [("record 1 (line 2)", "record 2 (line 10)")]
    stream = aws.streams["EventStream"].name
    assert main(["catalog", "load", str(path), "--stream", stream]) == 0
    kinesis = boto3.client("kinesis")
    shard = kinesis.describe_stream(StreamName=stream)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    sent = [
        json.loads(r["Data"]) for r in kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    ]
    assert [(r["item_id"], r["title"]) for r in sent] == [("stove", "Camping stove"), ("tent", "tent v2")]
    err = capsys.readouterr().err
    assert f"2 record(s) of {path} left out" in err
    assert "item 'tent': line 1 (line 3 is sent)" in err and "item 'stove': line 4 (line 2 is sent)" in err
    assert f"sent 2 catalog record(s), one per item (1 out of stock), to {stream}" in err


def test_gzip_compressed_files_are_read_like_plain_ones(tmp_path):
    import gzip

    lines = tmp_path / "catalog.jsonl.gz"
    lines.write_bytes(gzip.compress((json.dumps(TENT) + "\n" + json.dumps(STOVE) + "\n").encode()))
    array = tmp_path / "catalog.json.gz"
    array.write_bytes(gzip.compress(json.dumps([TENT, STOVE]).encode()))
    for path in (lines, array):
        records, _ = read_catalog_file(path, now=1_764_000_500)
        assert [r["item_id"] for r in records] == ["tent", "stove"], path
    coupons = tmp_path / "coupons.jsonl.gz"
    coupons.write_bytes(gzip.compress(json.dumps({**COUPON, "coupon_id": "camp"}).encode()))
    assert [coupon_id for coupon_id, _ in read_coupon_file(coupons)] == ["camp"]
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(lines.read_bytes()[:30])
    with pytest.raises(SystemExit, match=f"nothing loaded; {cut} is not one whole gzip file"):
        read_catalog_file(cut)


def test_recount_shows_and_corrects_the_counts_on_the_table(aws, capsys):
    from streamrec.domain.catalog import CatalogService, SequencedUpsert
    from streamrec.domain.model import sequence_key
    from streamrec.events import parse_record
    from streamrec.repositories.dynamodb import DynamoCatalogRepository, DynamoTable
    from streamrec.repositories.memory import InMemoryChangePublisher
    from streamrec.settings import load_settings

    table = aws.tables["CatalogTable"].name
    repository = DynamoCatalogRepository(DynamoTable(table, boto3.client("dynamodb")))
    records = [
        {**TENT, "event_type": "item_upsert", "timestamp": 1_764_000_000},
        {**STOVE, "event_type": "item_upsert"},
    ]
    CatalogService(load_settings(), repository, InMemoryChangePublisher()).upsert(
        [SequencedUpsert(sequence_key(n + 1), parse_record(r)) for n, r in enumerate(records)],
        "shardId-000000000000",
    )
    repository.count_postings({"camping": [(sequence_key(1), "df", 1.0)]}, "shardId-000000000001")  # a race
    assert main(["catalog", "recount", "--table", table, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would correct 1 count of {table} (2 items, " in out
    assert "  camping: 3 -> 2" in out
    assert repository.postings(["camping"])["camping"].count == 3  # a dry run changes nothing
    assert main(["catalog", "recount", "--table", table]) == 0
    assert f"corrected 1 count of {table}" in capsys.readouterr().out
    assert repository.postings(["camping"])["camping"].count == 2
    assert main(["catalog", "recount", "--table", table]) == 0
    assert f"corrected 0 counts of {table}" in capsys.readouterr().out


def test_recount_names_a_count_that_changed_meanwhile_and_lists_only_what_it_corrected(
    aws, monkeypatch, capsys
):
    from streamrec.domain.model import CatalogTally
    from streamrec.repositories.dynamodb import DynamoCatalogRepository

    table = aws.tables["CatalogTable"].name
    # No records: both counts should be 0.
    stored = CatalogTally(stored_holders={"camping": 3.0, "tent": 2.0}, stored_documents=0.0)
    monkeypatch.setattr(DynamoCatalogRepository, "stored_counts", lambda self, progress=None: stored)
    monkeypatch.setattr(DynamoCatalogRepository, "set_counts", lambda self, corrections: ["camping"])
    assert main(["catalog", "recount", "--table", table]) == 1
    captured = capsys.readouterr()
    assert f"corrected 1 count of {table}" in captured.out
    assert "tent: 2 -> 0" in captured.out and "camping" not in captured.out
    assert "1 count changed while counted, left as they are (camping)" in captured.err


def test_one_object_whose_nested_object_has_a_line_of_its_own_is_one_record(tmp_path):
    # A line inside the object decodes alone (an extra field's object): the file was read as
    # JSON lines, each line refused, though the whole file is one valid object.
    item = tmp_path / "item.json"
    item.write_text(
        '{\n"item_id": "tent", "title": "Dome tent", "category": "camping",\n'
        '"price": 99, "in_stock": true, "attributes":\n{"colour": "green"}\n}\n'
    )
    records, _ = read_catalog_file(item, now=1_764_000_500)
    assert [r["item_id"] for r in records] == ["tent"]
    # JSON lines with a broken line still name it, each other line read as a record.
    lines = tmp_path / "items.json"
    lines.write_text(json.dumps(TENT) + "\n" + '{"item_id": "stove",\n' + json.dumps(STOVE) + "\n")
    with pytest.raises(SystemExit) as failed:
        read_catalog_file(lines)
    assert f"{lines} line 2: not valid JSON" in str(failed.value)
