"""Bad input to `streamrec catalog|coupons|dlq|openapi`: one `error: ...` line, a non-zero
exit, no traceback, and nothing written or sent; dead letters never left invisible."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from botocore.exceptions import EndpointConnectionError

import streamrec.cli
from streamrec.cli import main
from streamrec.cli.catalog import read_catalog_file
from streamrec.cli.coupons import read_coupon_file
from streamrec.events import parse_record
from streamrec.kinesis_put import record_data
from streamrec.reliability import dlq
from streamrec.stream import MAX_RECORD_BYTES, RecordCollector
from tests.unit.test_catalog_cli import TENT
from tests.unit.test_coupons import LOAD_RECORD as COUPON

SRC = Path(streamrec.cli.__file__).resolve().parents[2]


def _one_error_line(failed: pytest.ExceptionInfo[SystemExit]) -> str:
    message = failed.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message, message
    return message


def _stream_records(stream: str) -> list[dict[str, Any]]:
    kinesis = boto3.client("kinesis")
    records = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
    return records


# ---- dlq ------------------------------------------------------------------------------------
def _queue() -> tuple[Any, str]:
    sqs = boto3.client("sqs")
    return sqs, sqs.list_queues()["QueueUrls"][0]


def _record_letter(stream: str, sequence: int, **changes: Any) -> dict[str, Any]:
    event = {"event_type": "view", "user_id": "u1", "item_id": "tent", "event_id": f"e{sequence}"}
    letter = {
        "reason": "processing failed: SimulatedBug",
        "source": f"arn:aws:kinesis:us-east-1:123456789012:stream/{stream}",
        "shard": "shardId-000000000000",
        "sequence_number": str(sequence),
        "partition_key": "u1",
        "data": base64.b64encode(json.dumps(event).encode()).decode(),
    }
    letter.update(changes)
    return {key: value for key, value in letter.items() if value is not None}


def _batch_letter(stream: str) -> dict[str, Any]:
    """Lambda's OnFailure description of a batch of 2 records of ``stream`` that exhausted its retries."""
    return {
        "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": "arn:fn"},
        "KinesisBatchInfo": {
            "streamArn": f"arn:aws:kinesis:us-east-1:123456789012:stream/{stream}",
            "shardId": "shardId-000000000000",
            "startSequenceNumber": "1",
            "endSequenceNumber": "2",
            "batchSize": 2,
        },
    }


def _send(sqs: Any, queue_url: str, bodies: list[Any]) -> None:
    for body in bodies:
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))


def _visible(sqs: Any, queue_url: str) -> list[dlq.Letter]:
    letters = dlq.receive_all(sqs, queue_url, visibility_timeout=1)
    dlq.release(sqs, queue_url, letters)
    return letters


def test_redrive_to_a_missing_stream_is_refused_and_leaves_the_letters_visible(aws, capsys):
    sqs, queue_url = _queue()
    stream = aws.streams["EventStream"].name
    _send(sqs, queue_url, [_record_letter(stream, n) for n in (1, 2, 3)])
    with pytest.raises(SystemExit) as failed:
        main(["dlq", "redrive", "--queue-url", queue_url, "--stream", "nosuch"])
    assert _one_error_line(failed) == "error: stream nosuch not found (--stream); nothing was changed"
    assert len(_visible(sqs, queue_url)) == 3
    assert _stream_records(stream) == []


def test_redrive_keeps_letters_whose_stream_kind_differs_from_the_stream_given(aws, capsys):
    sqs, queue_url = _queue()
    events, changes = aws.streams["EventStream"].name, aws.streams["ChangedItemsStream"].name
    _send(sqs, queue_url, [_record_letter(events, 1)])
    # An event put on the changed-items stream would be refused there, then kept as invalid.
    assert main(["dlq", "redrive", "--queue-url", queue_url, "--stream", changes]) == 0
    out = capsys.readouterr().out
    assert "re-drove 0 records from 0 of 1 dead letter; kept 1" in out
    assert f"--stream {changes} is not its kind of stream: it came from the event stream" in out
    assert _stream_records(changes) == [] and len(_visible(sqs, queue_url)) == 1
    assert main(["dlq", "redrive", "--queue-url", queue_url, "--stream", events]) == 0
    assert "re-drove 1 record from 1 of 1 dead letter" in capsys.readouterr().out
    assert len(_stream_records(events)) == 1


def test_only_a_missing_stream_gets_the_stream_advice(aws, monkeypatch):
    from botocore.exceptions import NoCredentialsError

    sqs, queue_url = _queue()
    _send(sqs, queue_url, [_record_letter(aws.streams["EventStream"].name, 1)])

    def no_credentials(*_args: Any, **_kwargs: Any) -> Any:
        raise NoCredentialsError()

    monkeypatch.setattr(dlq, "_put", no_credentials)
    with pytest.raises(SystemExit) as failed:
        main(["dlq", "redrive", "--queue-url", queue_url])
    assert _one_error_line(failed) == (
        "error: Unable to locate AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or run aws configure); letters re-driven before it stopped are deleted, "
        "the others are back in the queue"
    )


def test_a_redrive_failing_before_it_reads_a_letter_says_nothing_was_changed(aws):
    sqs, queue_url = _queue()
    missing = queue_url.rsplit("/", 1)[0] + "/no-such-queue"
    with pytest.raises(SystemExit) as failed:
        main(["dlq", "redrive", "--queue-url", missing])
    message = _one_error_line(failed)
    assert "queue does not exist" in message and message.endswith("; nothing was changed"), message


def test_a_batch_description_of_a_deleted_stream_is_kept_and_the_rest_re_driven(aws, capsys):
    sqs, queue_url = _queue()
    stream = aws.streams["EventStream"].name
    batch = _batch_letter("zz-gone")
    _send(sqs, queue_url, [batch, _record_letter(stream, 1)])
    # (user events given up on are kept anyway unless --include-partly-written)
    assert main(["dlq", "redrive", "--queue-url", queue_url, "--include-partly-written"]) == 0
    out = capsys.readouterr().out
    assert "re-drove 1 record from 1 of 2 dead letters; kept 1" in out
    assert "its stream zz-gone no longer exists: records lost" in out
    assert len(_stream_records(stream)) == 1 and len(_visible(sqs, queue_url)) == 1


def test_a_letter_of_a_deleted_stream_is_kept_and_the_others_redriven(aws, capsys):
    sqs, queue_url = _queue()
    stream = aws.streams["EventStream"].name
    # "aaa-gone" sorts first: it used to fail the re-drive and hold back every letter after it.
    _send(
        sqs,
        queue_url,
        [_record_letter("aaa-gone", 1), _record_letter(stream, 2), _record_letter(stream, 3)],
    )
    _send(sqs, queue_url, [{"not": "a dead letter"}])
    assert main(["dlq", "redrive", "--queue-url", queue_url]) == 0
    out = capsys.readouterr().out
    assert "re-drove 2 records from 2 of 4 dead letters; kept 2" in out
    assert "kept (its stream aaa-gone no longer exists: --stream NAME puts its record on another)" in out
    assert "unknown message " in out and ': unrecognised message: {"not": "a dead letter"}' in out
    remaining = _visible(sqs, queue_url)
    assert sorted(letter.stream_arn.rsplit("/", 1)[-1] for letter in remaining) == ["", "aaa-gone"]
    assert len(_stream_records(stream)) == 2


def test_a_failed_redrive_releases_every_letter_it_did_not_redrive(aws, monkeypatch):
    sqs, queue_url = _queue()
    stream = aws.streams["EventStream"].name
    _send(sqs, queue_url, [_record_letter(stream, n) for n in (1, 2, 3)])
    _send(sqs, queue_url, [{"not": "a dead letter"}])
    put = dlq._put
    calls = []

    def fails_second(kinesis: Any, target: str, records: Any) -> None:
        calls.append(records)
        if len(calls) == 2:
            raise EndpointConnectionError(endpoint_url="https://kinesis.us-east-1.amazonaws.com")
        put(kinesis, target, records)

    monkeypatch.setattr(dlq, "_put", fails_second)
    with pytest.raises(SystemExit) as failed:
        main(["dlq", "redrive", "--queue-url", queue_url])
    message = _one_error_line(failed)
    assert "letters re-driven before it stopped are deleted, the others are back in the queue" in message
    remaining = _visible(sqs, queue_url)  # at once, not after the visibility timeout
    assert len(remaining) == 3  # the second and third letters, and the unknown message
    assert len(_stream_records(stream)) == 1  # the first letter was re-driven and deleted


def test_receiving_that_fails_midway_releases_what_it_received(aws):
    sqs, queue_url = _queue()
    _send(sqs, queue_url, [_record_letter("events", n) for n in range(15)])

    class FailsOnSecondReceive:
        calls = 0

        def __getattr__(self, name: str) -> Any:
            return getattr(sqs, name)

        def receive_message(self, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == 2:
                raise ConnectionError("lost")
            return sqs.receive_message(**kwargs)

    with pytest.raises(ConnectionError):
        dlq.receive_all(FailsOnSecondReceive(), queue_url)
    assert len(_visible(sqs, queue_url)) == 15


def test_a_message_received_again_is_released_with_its_latest_receipt_handle():
    messages = [
        {"MessageId": "m1", "ReceiptHandle": "first", "Body": "{}"},
        {"MessageId": "m1", "ReceiptHandle": "second", "Body": "{}"},
    ]

    class Queue:
        def receive_message(self, **_: Any) -> dict[str, Any]:
            return {"Messages": [messages.pop(0)]} if messages else {}

    (letter,) = dlq.receive_all(Queue(), "queue")
    assert letter.receipt_handle == "second"


def test_corrupt_record_letters_are_kept_with_a_reason_and_the_others_redriven(aws, capsys):
    sqs, queue_url = _queue()
    stream = aws.streams["EventStream"].name
    _send(
        sqs,
        queue_url,
        [
            _record_letter(stream, 1),
            _record_letter(stream, 2, data="!!!notbase64"),
            _record_letter(stream, 3, partition_key=None),
            _record_letter(stream, 4, sequence_number="four"),
            {"KinesisBatchInfo": {"streamArn": f"arn:aws:kinesis:us-east-1:123456789012:stream/{stream}"}},
        ],
    )
    for dry_run in (["--dry-run"], []):
        assert main(["dlq", "redrive", "--queue-url", queue_url, *dry_run]) == 0
        out = capsys.readouterr().out
        assert "re-drive 1 record from 1 of 5 dead letters; kept 4" in out or (
            "re-drove 1 record from 1 of 5 dead letters; kept 4" in out
        )
        assert "kept (corrupt record letter: data is not valid base64)" in out
        assert "kept (corrupt record letter: no partition_key)" in out
        assert "kept (corrupt record letter: sequence_number is not a number)" in out
        assert "kept (corrupt batch description: no shardId)" in out
    assert len(_stream_records(stream)) == 1
    assert len(_visible(sqs, queue_url)) == 4
    assert main(["dlq", "list", "--queue-url", queue_url, "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [letter["redrivable"] for letter in listed] == [False] * 4
    # Why each is kept, and a record letter's record as sent (to find the producer's bug).
    assert {letter["kept_because"] for letter in listed} == {
        "corrupt record letter: data is not valid base64",
        "corrupt record letter: no partition_key",
        "corrupt record letter: sequence_number is not a number",
        "corrupt batch description: no shardId",
    }
    base64_problem = next(letter for letter in listed if "base64" in letter["kept_because"])
    assert base64_problem["data"] == "!!!notbase64" and base64_problem["data_truncated"] is False


def test_dlq_list_counts_unknown_messages_and_leaves_every_letter_visible(aws, capsys):
    sqs, queue_url = _queue()
    batch = _batch_letter("events")
    _send(sqs, queue_url, [_record_letter("events", 1), _record_letter("events", 2), batch, {"x": 1}])
    assert main(["dlq", "list", "--queue-url", queue_url]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary == "4 dead letters (2 records, 1 batch description, 1 unknown)"
    assert len(_visible(sqs, queue_url)) == 4


# ---- every command's target -----------------------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        ["coupons", "load", "{coupons}", "--table", "coupons"],
        ["catalog", "load", "{catalog}", "--stream", "events"],
        ["dlq", "list", "--queue-url", "http://localhost:1/123456789012/dlq"],
        ["dlq", "redrive", "--queue-url", "http://localhost:1/123456789012/dlq"],
    ],
)
def test_an_endpoint_that_is_not_a_url_is_one_line(tmp_path, command):
    files = {"coupons": tmp_path / "coupons.json", "catalog": tmp_path / "catalog.jsonl"}
    files["coupons"].write_text(json.dumps(COUPON))
    files["catalog"].write_text(json.dumps(TENT))
    argv = [part.format(**files) for part in command] + ["--endpoint-url", "notaurl", "--region", "us-east-1"]
    with pytest.raises(SystemExit) as failed:
        main(argv)
    assert (
        _one_error_line(failed) == "error: --endpoint-url 'notaurl' is not a URL (like http://localhost:4566)"
    )


@pytest.mark.parametrize("action", ["list", "redrive"])
def test_a_queue_url_that_is_not_a_url_is_one_line(action):
    with pytest.raises(SystemExit) as failed:
        main(["dlq", action, "--queue-url", "notaurl", "--region", "us-east-1"])
    assert _one_error_line(failed) == "error: --queue-url 'notaurl' is not a URL (like http://localhost:4566)"


def test_an_outputs_file_with_an_endpoint_that_is_not_a_url_is_named(tmp_path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"endpoint_url": "localhost:4566", "dead_letter_queue_url": "q"}))
    with pytest.raises(SystemExit) as failed:
        main(["dlq", "list", "--outputs", str(outputs)])
    assert _one_error_line(failed).startswith(
        f"error: the endpoint_url of {outputs} 'localhost:4566' is not a URL"
    )


def test_the_script_says_so_in_one_line_without_a_traceback(tmp_path):
    path = tmp_path / "coupons.json"
    path.write_text(json.dumps(COUPON))
    finished = subprocess.run(
        [sys.executable, "-m", "streamrec.cli", "coupons", "load", str(path), "--endpoint-url", "notaurl"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert finished.returncode == 1
    assert finished.stderr == "error: --endpoint-url 'notaurl' is not a URL (like http://localhost:4566)\n"


# ---- openapi --------------------------------------------------------------------------------
def test_openapi_output_to_a_directory_is_refused(tmp_path):
    for argv in (["--output", str(tmp_path)], ["--check", "--output", str(tmp_path)]):
        with pytest.raises(SystemExit) as failed:
            main(["openapi", *argv])
        assert _one_error_line(failed) == (
            f"error: {tmp_path} is a directory: --output takes a file (docs/openapi.json)"
        )
    assert list(tmp_path.iterdir()) == []


def test_openapi_output_that_cannot_be_written_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as failed:
        main(["openapi", "--output", str(blocker / "openapi.json")])
    assert (
        _one_error_line(failed)
        == f"error: cannot write {blocker / 'openapi.json'}: {blocker} is not a folder"
    )
    # A folder that does not exist is not created (a typo in the path).
    with pytest.raises(SystemExit) as failed:
        main(["openapi", "--output", str(tmp_path / "typo" / "openapi.json")])
    assert _one_error_line(failed) == (
        f"error: cannot write {tmp_path / 'typo' / 'openapi.json'}: {tmp_path / 'typo'} does not exist"
    )
    assert not (tmp_path / "typo").exists()
    with pytest.raises(SystemExit) as failed:
        main(["openapi", "--output", "/proc/openapi.json"])
    assert _one_error_line(failed).startswith("error: cannot write /proc/openapi.json: /proc/openapi.json: ")


def test_openapi_check_of_a_missing_folder_does_not_advise_writing_there(tmp_path, capsys):
    missing = tmp_path / "newdocs" / "openapi.json"
    assert main(["openapi", "--check", "--output", str(missing)]) == 1
    assert capsys.readouterr().out == f"{missing} does not exist, nor does its folder {missing.parent}\n"


def test_openapi_check_of_a_file_that_is_not_the_document_does_not_advise_overwriting_it(tmp_path, capsys):
    for content in (b"\xff", b"# My shop\n", b'{"name": "package.json"}'):
        path = tmp_path / "README.md"
        path.write_bytes(content)
        assert main(["openapi", "--check", "--output", str(path)]) == 1
        assert capsys.readouterr().out == (
            f"{path} is not an OpenAPI document: name the document with --output FILE\n"
        )
    path.write_text('{"openapi": "3.1.0", "paths": {}}')
    assert main(["openapi", "--check", "--output", str(path)]) == 1
    assert capsys.readouterr().out == f"{path} is out of date: run streamrec openapi --output {path}\n"


# ---- coupons load ---------------------------------------------------------------------------
def test_coupons_load_stopped_while_its_file_is_read_says_nothing_was_loaded(tmp_path, monkeypatch, capsys):
    path = tmp_path / "coupons.json"
    path.write_text(json.dumps([COUPON]))

    def stopped(_path):
        raise KeyboardInterrupt

    monkeypatch.setattr(streamrec.cli.coupons, "read_coupon_file", stopped)
    with pytest.raises(SystemExit) as failed:
        main(["coupons", "load", str(path), "--table", "no-such-table", "--region", "us-east-1"])
    assert failed.value.code == streamrec.cli.exits.INTERRUPTED_STATUS
    assert capsys.readouterr().err == f"streamrec: interrupted while checking {path}; nothing loaded\n"


def test_coupons_load_refuses_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "coupons.jsonl"
    path.write_bytes(b'{"coupon_id": "camp"}\n{"coupon_id": "caf\xe9"}\n')
    with pytest.raises(SystemExit) as failed:
        read_coupon_file(path)
    assert _one_error_line(failed) == (
        f"error: nothing loaded; {path} line 2 is not UTF-8 text (byte 0xe9 at byte 40); "
        "save the file as UTF-8"
    )


def test_coupons_load_of_json_lines_in_a_json_file_suggests_jsonl(tmp_path):
    path = tmp_path / "coupons.json"
    path.write_text(json.dumps(COUPON) + "\n" + json.dumps({**COUPON, "coupon_id": "hike"}) + "\n")
    with pytest.raises(SystemExit) as failed:
        read_coupon_file(path)
    message = _one_error_line(failed)
    assert message.startswith(f"error: nothing loaded; {path} is not valid JSON: Extra data: line 2")
    assert message.endswith("(one coupon per line? name the file .jsonl)")


def test_an_input_file_that_is_a_directory_or_starts_with_a_byte_order_mark(tmp_path):
    with pytest.raises(SystemExit) as failed:
        read_coupon_file(tmp_path)
    assert _one_error_line(failed) == f"error: {tmp_path} is a directory: name a file"
    path = tmp_path / "coupons.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([COUPON]).encode())  # as some editors save
    assert [coupon_id for coupon_id, _ in read_coupon_file(path)] == ["camp"]
    path.write_bytes(b"\xef\xbb\xbf[\n{}\n\xff")  # offsets count the mark: they are the file's
    with pytest.raises(SystemExit) as failed:
        read_coupon_file(path)
    assert "line 3 is not UTF-8 text (byte 0xff at byte 8)" in _one_error_line(failed)


@pytest.mark.parametrize(
    ("name", "text"),
    [("coupons.jsonl", ""), ("coupons.jsonl", "\n \n"), ("c.json", "[]"), ("c.json", ""), ("c.json", " \n")],
)
def test_coupons_load_refuses_a_file_without_coupons(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SystemExit) as failed:
        read_coupon_file(path)
    assert _one_error_line(failed) == f"error: nothing loaded; {path} holds no coupons"


def test_coupons_load_reads_an_upper_case_jsonl_file_as_json_lines(tmp_path):
    path = tmp_path / "COUPONS.JSONL"
    path.write_text(json.dumps(COUPON) + "\n" + json.dumps({**COUPON, "coupon_id": "kitchen"}) + "\n")
    assert [coupon_id for coupon_id, _ in read_coupon_file(path)] == ["camp", "kitchen"]


def test_coupons_load_refuses_a_coupon_defined_twice_and_writes_nothing(aws, tmp_path):
    path = tmp_path / "coupons.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(record)
            for record in (COUPON, {**COUPON, "coupon_id": "kitchen"}, {**COUPON, "budget": 9})
        )
    )
    table = aws.tables["CouponsTable"].name
    with pytest.raises(SystemExit) as failed:
        main(["coupons", "load", str(path), "--table", table])
    assert str(failed.value.code).splitlines() == [
        "error: nothing loaded; invalid coupons:",
        f"  {path} line 3: coupon_id 'camp' is already defined at line 1",
    ]
    assert boto3.client("dynamodb").scan(TableName=table)["Items"] == []
    listing = tmp_path / "coupons.json"
    listing.write_text(json.dumps([COUPON, COUPON]))
    with pytest.raises(SystemExit, match="record 2: coupon_id 'camp' is already defined at record 1"):
        read_coupon_file(listing)


# ---- catalog load ---------------------------------------------------------------------------
def test_catalog_load_refuses_a_record_the_ingest_would_dead_letter_for_its_size(aws, tmp_path):
    path = tmp_path / "catalog.jsonl"
    path.write_text(json.dumps(TENT) + "\n" + json.dumps({**TENT, "description": "x" * 20_000}) + "\n")
    stream = aws.streams["EventStream"].name
    with pytest.raises(SystemExit) as failed:
        main(["catalog", "load", str(path), "--stream", stream])
    lines = str(failed.value.code).splitlines()
    assert lines[0] == "error: nothing loaded; 1 invalid record(s):"
    assert lines[1].strip().startswith(f"{path} line 2: record of ")
    assert f"over the ingest's {MAX_RECORD_BYTES}-byte limit" in lines[1]
    assert _stream_records(stream) == []  # nothing sent, not even the good line


def _as_sent(record: dict[str, Any]) -> bytes:
    return record_data(record)  # as catalog load puts it


def test_catalog_load_sends_japanese_text_as_utf8_and_takes_what_the_ingest_takes(aws, tmp_path):
    # The longest record the schema allows, in Japanese: 11.7 KB as UTF-8, twice that with
    # every character escaped as \uXXXX, which the load used to send and refuse for it.
    record = {
        **TENT,
        "title": "ステンレス製マグカップ" * 46 + "保温保冷",
        "category": "キッチン用品" * 21 + "キッ",
        "tags": ["マグカップ" * 12 + "保温保冷"] * 50,
    }
    assert len(record_data(record)) < MAX_RECORD_BYTES < len(json.dumps(record).encode())
    assert not _ingest_rejects(
        record_data({**record, "event_type": "item_upsert", "timestamp": 1_764_000_000})
    )
    path = tmp_path / "catalog.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    stream = aws.streams["EventStream"].name
    main(["catalog", "load", str(path), "--stream", stream])
    (sent,) = _stream_records(stream)
    assert "ステンレス製マグカップ".encode() in sent["Data"]
    assert json.loads(sent["Data"])["category"] == record["category"]
    # A lone surrogate (JSON can carry one; UTF-8 cannot) is sent escaped, as JSON wrote it.
    assert record_data({"title": "a\ud800"}) == b'{"title":"a\\ud800"}'


def _ingest_rejects(data: bytes) -> bool:
    record = KinesisStreamRecord(
        {
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/events",
            "eventID": "shardId-000000000000:1",
            "kinesis": {
                "partitionKey": "tent",
                "sequenceNumber": "1",
                "data": base64.b64encode(data).decode(),
            },
        }
    )
    collector = RecordCollector(parse_record)
    collector(record)
    return bool(collector.rejected)


def test_catalog_load_refuses_exactly_the_records_the_ingest_rejects_for_their_size(tmp_path):
    path = tmp_path / "catalog.jsonl"
    refused = []
    for size in range(MAX_RECORD_BYTES - 3, MAX_RECORD_BYTES + 3):
        record = {**TENT, "event_type": "item_upsert", "timestamp": 1_764_000_000, "description": ""}
        record["description"] = "x" * (size - len(_as_sent(record)))
        assert len(_as_sent(record)) == size
        path.write_text(json.dumps(record) + "\n")
        try:
            assert read_catalog_file(path) == ([record], [])
        except SystemExit as failed:
            assert "line 1: record of " in str(failed.code)
            refused.append(size)
        assert (size in refused) == _ingest_rejects(_as_sent(record)), size
    # The size is exact (base64 padding not counted): a record of exactly the limit is taken.
    assert refused == list(range(MAX_RECORD_BYTES + 1, MAX_RECORD_BYTES + 3))


def test_catalog_load_reads_one_pretty_printed_object(tmp_path):
    path = tmp_path / "tent.json"
    path.write_text("\n" + json.dumps(TENT, indent=2) + "\n")
    records, _ = read_catalog_file(path, now=1_764_000_500)
    assert [r["item_id"] for r in records] == ["tent"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(TENT, indent=2).replace('"price": 99,', '"price": 99,,'))
    with pytest.raises(SystemExit) as failed:
        read_catalog_file(broken)
    lines = str(failed.value.code).splitlines()
    assert lines[0] == "error: nothing loaded; 1 invalid record(s):"  # not one per line
    assert f"{broken} line 5: not valid JSON" in lines[1]
    with pytest.raises(SystemExit, match="line 2: item_upsert schema violation: price"):
        broken.write_text("\n" + json.dumps({**TENT, "price": -1}, indent=2))
        read_catalog_file(broken)
    for name in ("tent.jsonl", "TENT.JSONL"):  # JSON lines: one record per line
        path = tmp_path / name
        path.write_text(json.dumps(TENT, indent=2))
        with pytest.raises(SystemExit, match="line 1: not valid JSON"):
            read_catalog_file(path)


HUGE = "1" + "0" * 5000  # json.loads refuses integers of more than 4,300 digits with a ValueError


@pytest.mark.parametrize("name", ["coupons.json", "coupons.jsonl"])
def test_coupons_load_names_a_number_too_long_to_read(tmp_path, name):
    path = tmp_path / name
    path.write_text(json.dumps(COUPON).replace('"budget": ', f'"budget": {HUGE}, "was": ') + "\n")
    with pytest.raises(SystemExit) as failed:
        read_coupon_file(path)
    assert "a number of more than 4,300 digits" in str(failed.value.code)


@pytest.mark.parametrize("name", ["catalog.json", "catalog.jsonl", "array.json"])
def test_catalog_load_names_a_number_too_long_to_read(tmp_path, name):
    record = json.dumps(TENT).replace('"price": 99', f'"price": {HUGE}')
    path = tmp_path / name
    path.write_text(f"[{record}]" if name == "array.json" else record + "\n")
    with pytest.raises(SystemExit) as failed:
        read_catalog_file(path)
    assert "line 1: not valid JSON: a number of more than 4,300 digits" in str(failed.value.code)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--port", "99999"], "argument --port: must be between 0 and 65,535, got 99999"),
        (["run", "--moto-port", "-1"], "argument --moto-port: must be between 0 and 65,535, got -1"),
        (["run", "--outputs", "{tmp}"], "argument --outputs: {tmp} is a folder; name a file"),
        (["faults", "--output", "{tmp}"], "argument --output: {tmp} is a folder; name a file"),
        (
            ["eval", "p1", "--rtrec-record", "{tmp}"],
            "argument --rtrec-record: {tmp} is a folder; name a file",
        ),
    ],
)
def test_ports_and_output_files_are_checked_before_any_work(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as failed:
        main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert failed.value.code == 2
    assert message.replace("{tmp}", str(tmp_path)) in capsys.readouterr().err


# ---- run --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--events", "-5"], "argument --events: must be at least 0, got -5"),
        (["--drain-timeout", "-1"], "argument --drain-timeout: must be a number of seconds above 0, got -1"),
        (
            ["--drain-timeout", "nan"],
            "argument --drain-timeout: must be a number of seconds above 0, got nan",
        ),
    ],
)
def test_run_refuses_counts_and_timeouts_out_of_range_before_starting(capsys, argv, expected):
    with pytest.raises(SystemExit) as refused:
        main(["run", *argv])
    assert refused.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"streamrec run: error: {expected}"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_under_stdout_is_one_line_not_a_traceback(monkeypatch, capsys):
    with open("/dev/full", "w") as full:  # every write: ENOSPC
        monkeypatch.setattr(sys, "stdout", full)
        assert main(["openapi"]) == 1
    assert capsys.readouterr().err == "streamrec: [Errno 28] No space left on device\n"


def test_an_unreadable_outputs_file_is_named_in_one_line(tmp_path, monkeypatch):
    # As after `sudo make run`: the file is there but this user may not read it.
    outputs = tmp_path / "outputs.json"
    outputs.write_text("{}")
    read_text = Path.read_text

    def refused(path: Path, *args: Any, **kwargs: Any) -> str:
        if path == outputs:
            raise PermissionError(13, "Permission denied", str(path))
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refused)
    with pytest.raises(SystemExit, match=f"^error: cannot read {outputs}: Permission denied$"):
        main(["dlq", "list", "--outputs", str(outputs)])


def test_a_queue_url_names_the_region_its_queue_is_in():
    # Without --region, a client of the configured region answers "the specified queue does
    # not exist" for a queue of another: the URL says where it is.
    from streamrec.cli import build_parser
    from streamrec.cli.dlq import _dlq_target

    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/streamrec-DeadLetterQueue"
    args = build_parser().parse_args(["dlq", "list", "--queue-url", url])
    assert _dlq_target(args).client_kwargs["region_name"] == "eu-west-1"
    given = build_parser().parse_args(["dlq", "list", "--queue-url", url, "--region", "us-east-1"])
    assert _dlq_target(given).client_kwargs["region_name"] == "us-east-1"  # --region wins
    local = "http://127.0.0.1:5000/123456789012/q"
    moto = build_parser().parse_args(
        ["dlq", "list", "--queue-url", local, "--endpoint-url", "http://127.0.0.1:5000"]
    )
    assert _dlq_target(moto).client_kwargs["region_name"] is None


def test_version_names_the_installed_release(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as shown:
        main(["--version"])
    assert shown.value.code == 0
    assert capsys.readouterr().out == f"streamrec {version('streamrec')}\n"
