"""`streamrec dlq` on large or damaged queues: every letter is read however long reading
takes, what could not be re-driven is named with its cause, and a partly failed PutRecords
is retried with a pause."""

from __future__ import annotations

import json
from typing import Any

import pytest

import streamrec.cli
from streamrec import kinesis_put
from streamrec.cli import main
from streamrec.events import DuplicateKey, loads
from streamrec.reliability import dlq
from tests.unit.test_ops_cli_errors import _batch_letter, _queue, _record_letter, _send, _visible


class Replies:
    """A fake SQS queue answering receive_message with the given replies, then nothing."""

    def __init__(self, replies: list[list[str]]) -> None:
        self.replies = replies
        self.calls = 0

    def receive_message(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if not self.replies:
            return {}
        ids = self.replies.pop(0)
        return {
            "Messages": [{"MessageId": m, "ReceiptHandle": f"{m}-{self.calls}", "Body": "{}"} for m in ids]
        }


def test_reading_goes_on_past_messages_that_came_back_while_the_queue_was_read():
    # m1's visibility ran out while a large queue was read: it comes back four times before
    # m2 does. Three such polls used to end the reading, without m2.
    queue = Replies([["m1"], ["m1"], ["m1"], ["m1"], ["m1"], ["m2"]])
    assert [letter.message_id for letter in dlq.receive_all(queue, "q")] == ["m1", "m2"]


def test_reading_ends_when_only_messages_read_already_keep_coming():
    queue = Replies([["m1"]] + [["m1"]] * 1000)
    assert [letter.message_id for letter in dlq.receive_all(queue, "q")] == ["m1"]
    assert queue.calls == 1 + dlq._STALE_POLLS


def test_a_batch_whose_first_records_left_the_stream_says_how_many_were_lost(aws, monkeypatch, capsys):
    sqs, queue_url = _queue()
    changes = aws.streams["ChangedItemsStream"].name
    _send(sqs, queue_url, [_batch_letter(changes)])  # a batch of 2 records

    def one_left(kinesis: Any, stream: str, shard: str, first: str, last: str) -> list[dict[str, Any]]:
        return [{"Data": b'{"item_id": "tent"}', "PartitionKey": "tent", "SequenceNumber": "2"}]

    monkeypatch.setattr(dlq, "read_range", one_left)
    assert main(["dlq", "redrive", "--queue-url", queue_url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would re-drive 1 record from 1 of 1 dead letter" in out
    assert "(1 of its 2 records no longer in the stream: lost)" in out


def test_a_batch_of_a_shard_gone_from_its_stream_is_kept_naming_the_shard(aws, capsys):
    sqs, queue_url = _queue()
    changes = aws.streams["ChangedItemsStream"].name
    letter = _batch_letter(changes)
    letter["KinesisBatchInfo"]["shardId"] = "shardId-000000000009"
    _send(sqs, queue_url, [letter])
    assert main(["dlq", "redrive", "--queue-url", queue_url]) == 0
    out = capsys.readouterr().out
    assert f"kept (its shard shardId-000000000009 is no longer in stream {changes}: records lost)" in out
    assert len(_visible(sqs, queue_url)) == 1


def test_a_batch_whose_records_all_left_the_stream_is_kept(aws, monkeypatch, capsys):
    sqs, queue_url = _queue()
    _send(sqs, queue_url, [_batch_letter(aws.streams["ChangedItemsStream"].name)])
    monkeypatch.setattr(dlq, "read_range", lambda *_: [])
    assert main(["dlq", "redrive", "--queue-url", queue_url]) == 0
    out = capsys.readouterr().out
    assert "kept (records no longer in the stream (retention))" in out
    assert len(_visible(sqs, queue_url)) == 1


def test_a_record_letter_naming_no_stream_is_kept_until_one_is_given(aws, capsys):
    sqs, queue_url = _queue()
    events = aws.streams["EventStream"].name
    _send(sqs, queue_url, [_record_letter(events, 7, source=None)])
    assert main(["dlq", "redrive", "--queue-url", queue_url]) == 0
    assert "kept (corrupt record letter: no source stream (pass --stream))" in capsys.readouterr().out
    assert len(_visible(sqs, queue_url)) == 1
    assert main(["dlq", "redrive", "--queue-url", queue_url, "--stream", events]) == 0
    assert "re-drove 1 record from 1 of 1 dead letter" in capsys.readouterr().out
    assert _visible(sqs, queue_url) == []


def test_list_says_when_letters_another_reader_holds_were_not_received(aws, capsys):
    sqs, queue_url = _queue()
    _send(sqs, queue_url, [_batch_letter("events") for _ in range(3)])
    held = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, VisibilityTimeout=300)
    assert len(held["Messages"]) == 1  # a re-drive elsewhere is reading this one
    assert main(["dlq", "list", "--queue-url", queue_url]) == 0
    captured = capsys.readouterr()
    assert "2 dead letters" in captured.out
    assert "note: the queue held about 3; 1 were not received" in captured.err


class Throttled:
    """Refuses the record ``refused`` (every record: None) ``failures`` times, as a throttled
    shard does."""

    def __init__(self, failures: int = 2, refused: bytes | None = b"e1") -> None:
        self.put: list[bytes] = []
        self.failures = failures
        self.refused = refused

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        results = []
        for record in Records:
            if self.refused in (None, record["Data"]) and self.failures:
                self.failures -= 1
                results.append({"ErrorCode": "ProvisionedThroughputExceededException"})
            else:
                self.put.append(record["Data"])
                results.append({"SequenceNumber": "1"})
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}


def test_a_partly_failed_put_is_retried_with_a_pause_before_the_keys_next_record(monkeypatch):
    pauses: list[float] = []
    monkeypatch.setattr(kinesis_put.time, "sleep", pauses.append)
    kinesis = Throttled()
    # u1's e1 refused twice still comes before e2 (it once came after: out of order).
    dlq._put(kinesis, "events", [{"Data": d, "PartitionKey": "u1"} for d in (b"e1", b"e2", b"e3")])
    assert kinesis.put == [b"e1", b"e2", b"e3"]
    assert pauses == [0.1, 0.2]


def test_a_redrive_that_keeps_being_refused_says_so_in_one_line(aws, monkeypatch, capsys):
    sqs, queue_url = _queue()
    events = aws.streams["EventStream"].name
    _send(sqs, queue_url, [_record_letter(events, 1)])
    monkeypatch.setattr(kinesis_put.time, "sleep", lambda _: None)
    monkeypatch.setattr(dlq, "_check_stream", lambda kinesis, stream: None)
    clients = {"sqs": sqs, "kinesis": Throttled(failures=99, refused=None)}
    monkeypatch.setattr(streamrec.cli.target.Target, "client", lambda self, service: clients[service])
    with pytest.raises(SystemExit) as stopped:
        main(["dlq", "redrive", "--queue-url", queue_url])
    assert str(stopped.value) == (
        "error: 1 record of a letter kept failing on the stream (ProvisionedThroughputExceededException); "
        "letters re-driven before it stopped are deleted, the others are back in the queue; "
        "re-run (re-putting is safe)"
    )
    assert len(_visible(sqs, queue_url)) == 1  # the letter stays, visible again at once


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ('{"not": "a dead letter"}', '{"not": "a dead letter"}'),
        ("plain text", "plain text"),
        # on one line, and no control sequence reaches the terminal
        ('{\n  "not": "a letter"\n}\x1b[2J', '{\\n  "not": "a letter"\\n}\\u001b[2J'),
    ],
)
def test_an_unrecognised_message_is_shown_with_its_id_and_body(aws, capsys, message, shown):
    sqs, queue_url = _queue()
    sqs.send_message(QueueUrl=queue_url, MessageBody=message)
    assert main(["dlq", "list", "--queue-url", queue_url]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("unknown message ") and first.endswith(f": unrecognised message: {shown}")


def test_list_hides_letters_no_longer_than_sqs_allows(aws, monkeypatch):
    sqs, queue_url = _queue()
    _send(sqs, queue_url, [_batch_letter("events")])
    monkeypatch.setattr(dlq, "message_count", lambda *_: 900_000)  # 30 s + 1 s per 20 would be 45,030 s
    asked: list[int] = []
    receive = dlq.receive_all
    monkeypatch.setattr(
        dlq, "receive_all", lambda *a, **k: asked.append(k["visibility_timeout"]) or receive(*a, **k)
    )
    assert main(["dlq", "list", "--queue-url", queue_url]) == 0
    assert asked == [43_200]


def test_a_role_that_may_not_describe_streams_still_redrives(aws, monkeypatch, capsys):
    from botocore.exceptions import ClientError

    from tests.unit.test_ops_cli_errors import _record_letter, _stream_records

    sqs, queue_url = _queue()
    stream = aws.streams["EventStream"].name
    _send(sqs, queue_url, [_record_letter(stream, 1)])

    def denied(kinesis: Any, name: str) -> None:
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeStreamSummary"
        )

    monkeypatch.setattr(dlq, "_check_stream", denied)
    assert main(["dlq", "redrive", "--queue-url", queue_url]) == 0
    assert "re-drove 1 record from 1 of 1 dead letter" in capsys.readouterr().out
    assert len(_stream_records(stream)) == 1


def test_list_works_for_a_role_that_may_not_read_the_queues_attributes(aws, monkeypatch, capsys):
    from botocore.exceptions import ClientError

    sqs, queue_url = _queue()
    _send(sqs, queue_url, [_batch_letter("events")])

    def denied(*_: Any) -> int:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetQueueAttributes")

    monkeypatch.setattr(dlq, "message_count", denied)
    assert main(["dlq", "list", "--queue-url", queue_url]) == 0
    captured = capsys.readouterr()
    assert "1 dead letter" in captured.out and "note:" not in captured.err


def test_redrive_hides_a_large_queue_long_enough_to_redrive_it(aws, monkeypatch):
    sqs, queue_url = _queue()
    _send(sqs, queue_url, [_batch_letter("events")])
    monkeypatch.setattr(dlq, "message_count", lambda *_: 10_000)  # some 6 minutes of re-driving
    asked: list[int] = []
    receive = dlq.receive_all
    monkeypatch.setattr(
        dlq, "receive_all", lambda *a, **k: asked.append(k["visibility_timeout"]) or receive(*a, **k)
    )
    assert main(["dlq", "redrive", "--queue-url", queue_url, "--dry-run"]) == 0
    assert asked == [300 + 10_000 // 20]


def test_progress_says_what_a_dry_run_does_and_shows_each_count_once(aws, monkeypatch, capsys):
    # Every progress line written (not one per 5 s): as a slow read of a log shows them.
    monkeypatch.setattr(streamrec.cli.progress, "status", streamrec.cli.progress.StatusLine(every=0.0))
    sqs, queue_url = _queue()
    events = aws.streams["EventStream"].name
    _send(sqs, queue_url, [_record_letter(events, n) for n in range(3)])
    assert main(["dlq", "list", "--queue-url", queue_url]) == 0
    # The count as it is reached, then once more as the final line (nothing in between).
    assert capsys.readouterr().err.count("reading dead letters: 3 of about 3") == 2
    assert main(["dlq", "redrive", "--queue-url", queue_url, "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "checking dead letters (dry run): 3/3" in err and "re-driving" not in err


def test_discard_deletes_only_the_letters_of_invalid_records(aws, capsys):
    sqs, queue_url = _queue()
    events = aws.streams["EventStream"].name
    invalid = _record_letter(events, 1, reason="schema violation: user_id: Field required")
    _send(sqs, queue_url, [invalid, _record_letter(events, 2), _batch_letter(events)])
    assert main(["dlq", "discard", "--invalid", "--dry-run", "--queue-url", queue_url]) == 0
    out = capsys.readouterr().out
    assert "would delete 1 letter of invalid records of 3 dead letters; the others stay" in out
    assert "schema violation: user_id: Field required" in out
    assert len(_visible(sqs, queue_url)) == 3  # a dry run deletes nothing, and releases all
    assert main(["dlq", "discard", "--invalid", "--queue-url", queue_url]) == 0
    assert "deleted 1 letter of invalid records of 3 dead letters" in capsys.readouterr().out
    left = sorted(_visible(sqs, queue_url), key=lambda letter: letter.kind)
    assert [(letter.kind, letter.reason) for letter in left] == [
        ("batch", "RetryAttemptsExhausted"),
        ("record", "processing failed: SimulatedBug"),
    ]
    with pytest.raises(SystemExit):  # nothing but invalid records is ever discarded: say so
        main(["dlq", "discard", "--queue-url", queue_url])
    assert "--invalid" in capsys.readouterr().err


def test_only_a_producers_invalid_record_counts_as_invalid(aws):
    events, changes = aws.streams["EventStream"].name, aws.streams["ChangedItemsStream"].name

    def letter(body: dict) -> dlq.Letter:
        return dlq.Letter("m", "r", json.dumps(body), body)

    assert letter(_record_letter(events, 1, reason="not JSON: Expecting value")).invalid
    # Our parser's own failure (re-drivable once fixed), a changed-items record (the project
    # wrote it), a message lacking its reason or origin: never discarded.
    assert not letter(_record_letter(events, 1, reason="unparseable record: TypeError: x")).invalid
    assert not letter(_record_letter(changes, 1, reason="schema violation: item_id: Field required")).invalid
    assert not letter(_record_letter(events, 1, reason=None)).invalid
    assert not letter(_record_letter(events, 1, reason="not JSON", source=None)).invalid
    # ...and a re-drive says which of the two a letter it keeps back is.
    assert letter(_record_letter(events, 1, reason="not JSON: Expecting value")).redrivable() == (
        False,
        "invalid record: it would be rejected again",
    )
    kept, why = letter(_record_letter(events, 1, reason="unparseable record: TypeError: x")).redrivable()
    assert not kept and why.startswith("the parser failed on it (a defect of streamrec")
    assert letter(_record_letter(events, 1, reason="unparseable record: TypeError: x")).redrivable(
        include_invalid=True
    ) == (True, "")


def test_a_letter_sqs_does_not_delete_is_named_and_released(aws, monkeypatch, capsys):
    sqs, queue_url = _queue()
    events = aws.streams["EventStream"].name
    _send(sqs, queue_url, [_record_letter(events, n, reason="not JSON: Expecting value") for n in (1, 2)])

    class Refusing:
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def delete_message_batch(self, QueueUrl, Entries):  # noqa: N803 (boto3's names)
            return {
                "Successful": [],
                "Failed": [{"Id": e["Id"], "Code": "ReceiptHandleIsInvalid"} for e in Entries],
            }

    monkeypatch.setattr(streamrec.cli.target.Target, "client", lambda self, service: Refusing(sqs))
    assert main(["dlq", "discard", "--invalid", "--queue-url", queue_url]) == 1
    captured = capsys.readouterr()
    assert "deleted 0 letters of invalid records of 2 dead letters" in captured.out
    assert "2 letters SQS did not delete, back in the queue (run again)" in captured.err
    assert "(SQS: ReceiptHandleIsInvalid)" in captured.err
    assert len(_visible(sqs, queue_url)) == 2  # released at once, not hidden until their timeout


class Shard:
    """GetShardIterator and GetRecords of one shard holding records 5..9: ``empty`` answers
    without records (behind the tip) before them, and an AT_SEQUENCE_NUMBER start before 5
    refused as AWS refuses a trimmed one."""

    def __init__(self, empty: int = 0) -> None:
        self.empty = empty
        self.iterators: list[str] = []

    def get_shard_iterator(self, StreamName, ShardId, ShardIteratorType, StartingSequenceNumber="0"):  # noqa: N803
        from botocore.exceptions import ClientError

        if ShardIteratorType == "AT_SEQUENCE_NUMBER" and int(StartingSequenceNumber) < 5:
            raise ClientError(
                {
                    "Error": {
                        "Code": "InvalidArgumentException",
                        "Message": "StartingSequenceNumber is invalid",
                    }
                },
                "GetShardIterator",
            )
        self.iterators.append(ShardIteratorType)
        return {"ShardIterator": f"from-{max(5, int(StartingSequenceNumber))}"}

    def get_records(self, ShardIterator, Limit):  # noqa: N803
        if self.empty:
            self.empty -= 1
            return {"Records": [], "NextShardIterator": ShardIterator, "MillisBehindLatest": 60_000}
        start = int(ShardIterator.split("-")[1])
        records = [
            {"Data": f"r{n}".encode(), "PartitionKey": "u1", "SequenceNumber": str(n)}
            for n in range(start, 10)
        ]
        return {"Records": records, "NextShardIterator": "from-10", "MillisBehindLatest": 0}


def _sequences(records: list[dict[str, Any]]) -> list[int]:
    return [int(record["SequenceNumber"]) for record in records]


def test_a_range_whose_start_left_the_stream_is_read_from_the_trim_horizon():
    shard = Shard()
    assert _sequences(dlq.read_range(shard, "events", "s0", "3", "8", sleep=lambda _: None)) == [5, 6, 7, 8]
    assert shard.iterators == ["TRIM_HORIZON"]  # the redrive used to stop on every re-run here


def test_empty_answers_behind_the_tip_are_read_past_and_too_many_keep_the_letter(aws, monkeypatch, capsys):
    # Five empty answers used to end the read: the letter's records were then called lost.
    pauses: list[float] = []
    records = dlq.read_range(Shard(empty=40), "events", "s0", "5", "9", sleep=pauses.append)
    assert _sequences(records) == [5, 6, 7, 8, 9] and pauses == [0.2] * 40
    with pytest.raises(dlq.IncompleteRead, match="answered empty 300 times in a row"):
        dlq.read_range(Shard(empty=dlq.EMPTY_READS_ALLOWED), "events", "s0", "5", "9", sleep=lambda _: None)
    sqs, queue_url = _queue()
    _send(sqs, queue_url, [_batch_letter(aws.streams["ChangedItemsStream"].name)])

    def unreadable(*_: Any) -> list[dict[str, Any]]:
        raise dlq.IncompleteRead("GetRecords answered empty 300 times in a row behind the tip of shard s0")

    monkeypatch.setattr(dlq, "read_range", unreadable)
    assert main(["dlq", "redrive", "--queue-url", queue_url]) == 0
    assert "its records could not all be read (GetRecords answered empty 300 times" in capsys.readouterr().out
    assert len(_visible(sqs, queue_url)) == 1


def test_a_reason_quoting_a_lone_surrogate_is_listed_escaped(aws):
    # A record {"\ud800": 1, "\ud800": 2} is dead-lettered for its duplicate key, quoted in
    # the reason; a lone surrogate printed as itself made `dlq list` fail to encode the line.
    events = aws.streams["EventStream"].name
    with pytest.raises(DuplicateKey) as refused:
        loads('{"\\ud800": 1, "\\ud800": 2}')
    reason = str(refused.value)
    assert reason.startswith('"\\ud800" is given') and reason.encode("utf-8")  # escaped: loggable
    body = _record_letter(events, 1, reason="schema violation: a \ud800 b\u3000c\nd")
    line = dlq.Letter("m", "r", json.dumps(body), body).describe()
    # (a space of any width shown as itself, a newline escaped)
    assert line.endswith("schema violation: a \\ud800 b\u3000c\\nd") and line.encode("utf-8")
