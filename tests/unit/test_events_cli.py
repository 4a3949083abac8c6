"""`streamrec events load FILE`: a backfill of past user events, validated, deduplicated,
sent in timestamp order, paced, resumable, and refused when the stream would lose it."""

from __future__ import annotations

import json

import boto3
import pytest

import streamrec.cli
from streamrec.cli import (
    RecordsKeptFailing,
    backlog_seconds,
    main,
    put_stream_records,
    read_event_file,
)

T0 = 1_764_000_000


def event(n: int, user: str = "u1", at: float | None = None, **fields):
    return {
        "event_id": f"e{n}",
        "event_type": "view",
        "user_id": user,
        "item_id": f"item-{n % 7}",
        "timestamp": T0 + n if at is None else at,
        **fields,
    }


def stream_records(stream: str) -> list[dict]:
    kinesis = boto3.client("kinesis")
    records = []
    for shard in kinesis.describe_stream(StreamName=stream)["StreamDescription"]["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
    return records


def write_lines(path, rows):
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def test_events_are_sent_once_per_event_id_in_timestamp_order(tmp_path):
    rows = [
        event(3),
        event(1, user="u2"),
        event(2, at="2025-11-24T16:00:00Z"),  # T0: ISO and epoch seconds compare as instants
        event(1, user="u2", item_id="other"),  # line 4: event_id e1 again
        event(4, at=T0 + 1),  # the same instant as line 2: after it, as in the file
    ]
    loaded = read_event_file(write_lines(tmp_path / "events.jsonl", rows))
    assert [e["event_id"] for e in loaded.events] == ["e2", "e1", "e4", "e3"]
    assert loaded.events[0]["timestamp"] == "2025-11-24T16:00:00Z"  # sent as written
    assert loaded.duplicates == [("e1", 4, 2)]
    assert loaded.reordered
    in_order = read_event_file(write_lines(tmp_path / "sorted.json", [event(1), event(2)]))
    assert not in_order.reordered and in_order.duplicates == []


def test_bad_events_are_named_by_line_and_nothing_is_sent(tmp_path):
    rows = [
        event(1),
        {**event(2), "event_type": "click"},
        {
            "event_type": "item_upsert",
            "item_id": "tent",
            "title": "Tent",
            "category": "camping",
            "price": 1,
            "in_stock": True,
            "timestamp": T0,
        },
        {**event(4), "note": "s" * 20_000},  # unknown fields are ignored, but sent
        {**event(5), "timestamp": T0 * 1000},
    ]
    path = write_lines(tmp_path / "events.jsonl", rows)
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(SystemExit) as failed:
        read_event_file(path)
    lines = str(failed.value).splitlines()
    assert lines[0] == "error: nothing sent; 5 invalid event(s):"
    assert f"{path} line 2: schema violation: event_type" in lines[1]
    assert lines[2] == (
        f"  {path} line 3: a catalog record (item_upsert): load those with `streamrec catalog load`"
    )
    assert "line 4: record of about" in lines[3] and "limit" in lines[3]
    assert "line 5: schema violation: timestamp" in lines[4] and "not milliseconds" in lines[4]
    assert "line 6: not valid JSON" in lines[5]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(SystemExit, match="holds no events"):
        read_event_file(empty)


def test_load_puts_the_events_on_the_stream_keyed_by_user(aws, tmp_path, capsys):
    rows = [event(n, user=f"u{n % 3}") for n in reversed(range(1200))] + [event(5)]
    path = write_lines(tmp_path / "events.jsonl", rows)
    stream = aws.streams["EventStream"].name
    assert main(["events", "load", str(path), "--stream", stream]) == 0
    records = stream_records(stream)
    assert len(records) == 1200
    assert all(json.loads(r["Data"])["user_id"] == r["PartitionKey"] for r in records)
    for user in ("u0", "u1", "u2"):  # each user's events arrive in the order they happened
        times = [json.loads(r["Data"])["timestamp"] for r in records if r["PartitionKey"] == user]
        assert times == sorted(times) and len(times) == 400
    err = capsys.readouterr().err
    assert f"1 event of {path} left out: an earlier line has the same event_id" in err
    assert "line 1201: event_id 'e5' (line 1195 is sent)" in err
    # Not the local stack: the backlog estimate (1 shard here, at 35 events/s: 34 s).
    assert f"1,200 events: the ingest of {stream}'s 1 shard takes about 34 s for them" in err
    assert "sent 500/1200 events" in err
    assert f"sent 1200 events of 3 users to {stream}, in timestamp order (the file's order differed)" in err


def test_skip_resumes_where_an_interrupted_load_stopped(aws, tmp_path, capsys):
    path = write_lines(tmp_path / "events.jsonl", [event(n) for n in range(10)])
    stream = aws.streams["EventStream"].name
    assert main(["events", "load", str(path), "--stream", stream, "--skip", "7"]) == 0
    assert sorted(json.loads(r["Data"])["event_id"] for r in stream_records(stream)) == ["e7", "e8", "e9"]
    with pytest.raises(SystemExit, match="--skip 10 leaves none of the file's 10 events"):
        main(["events", "load", str(path), "--stream", stream, "--skip", "10"])


class RefusingKinesis:
    """PutRecords that refuses the records listed in ``refuse`` (by event_id) ``times`` times
    each, and raises ``stop`` on call number ``stop_at``."""

    def __init__(self, refuse=(), times=1, stop_at=None, stop=KeyboardInterrupt):
        self.refusals = {event_id: times for event_id in refuse}
        self.stop_at, self.stop = stop_at, stop
        self.calls: list[list[str]] = []
        self.taken: list[str] = []

    def put_records(self, StreamName, Records):
        ids = [json.loads(r["Data"])["event_id"] for r in Records]
        self.calls.append(ids)
        if self.stop_at is not None and len(self.calls) == self.stop_at:
            raise self.stop()
        results = []
        for event_id in ids:
            if self.refusals.get(event_id, 0) > 0:
                self.refusals[event_id] -= 1
                results.append({"ErrorCode": "ProvisionedThroughputExceededException"})
            else:
                self.taken.append(event_id)
                results.append({"SequenceNumber": "1", "ShardId": "s"})
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}


def entries(n):
    return [{"Data": json.dumps(event(i)).encode(), "PartitionKey": "u1"} for i in range(n)]


def test_refused_records_are_sent_again_and_marked_as_they_are_taken():
    kinesis = RefusingKinesis(refuse=["e3", "e600"], times=2)
    accepted = [False] * 700
    put_stream_records(kinesis, "s", entries(700), lambda *_: None, accepted=accepted, sleep=lambda _: None)
    assert [len(ids) for ids in kinesis.calls] == [500, 1, 1, 200, 1, 1]
    assert sorted(kinesis.taken) == sorted(f"e{n}" for n in range(700)) and all(accepted)
    always = RefusingKinesis(refuse=["e1"], times=99)
    accepted = [False] * 3
    with pytest.raises(RecordsKeptFailing) as failing:
        put_stream_records(always, "s", entries(3), lambda *_: None, accepted=accepted, sleep=lambda _: None)
    assert failing.value.count == 1 and accepted == [True, False, True]
    assert len(always.calls) == streamrec.cli.PUT_ATTEMPTS


def test_rate_paces_the_chunks():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    kinesis = RefusingKinesis()
    put_stream_records(
        kinesis, "s", entries(250), lambda *_: None, rate=100, sleep=sleep, clock=lambda: now[0]
    )
    assert [len(ids) for ids in kinesis.calls] == [100, 100, 50]
    assert slept == [1.0, 1.0]  # the 2nd chunk at 1 s, the 3rd at 2 s: 100 events a second


def test_an_interrupted_load_names_the_skip_that_resumes_it(aws, tmp_path, monkeypatch, capsys):
    path = write_lines(tmp_path / "events.jsonl", [event(n) for n in range(1200)])
    stream = aws.streams["EventStream"].name
    # The first chunk (e100..e599) is taken except e107, refused once; Ctrl-C during its resend.
    kinesis = RefusingKinesis(refuse=["e107"], stop_at=2)
    monkeypatch.setattr(streamrec.cli.Target, "client", lambda self, service: kinesis)
    monkeypatch.setattr(streamrec.cli, "_check_retention", lambda *args: None)
    with pytest.raises(SystemExit) as stopped:
        main(["events", "load", str(path), "--stream", stream, "--skip", "100"])
    assert stopped.value.code == streamrec.cli.INTERRUPTED_STATUS
    err = capsys.readouterr().err
    # e100..e106 were taken before the refused e107: 107 of the file's events are sent.
    assert (
        f"streamrec: interrupted; sent the first 107 of the file's 1200 events (timestamp order) "
        f"to {stream} before it stopped; resume with --skip 107"
    ) in err
    # Kept failing: the same resume point, and a hint at --rate.
    throttled = RefusingKinesis(refuse=["e7"], times=99)
    monkeypatch.setattr(streamrec.cli.Target, "client", lambda self, service: throttled)
    monkeypatch.setattr(streamrec.cli.time, "sleep", lambda _: None)
    with pytest.raises(SystemExit) as failed:
        main(["events", "load", str(path), "--stream", stream])
    assert str(failed.value) == (
        f"error: 1 events kept failing on {stream} (throttled: try --rate); sent the first 7 of the "
        f"file's 1200 events (timestamp order) to {stream} before it stopped; resume with --skip 7"
    )


def test_a_backlog_past_the_streams_retention_is_refused(aws, tmp_path, monkeypatch, capsys):
    # Each shard's ingest taken as 0.001 events/s: 10 events need ~1.4 h on 2 shards.
    monkeypatch.setattr(streamrec.cli, "INGEST_EVENTS_PER_SHARD_SECOND", 0.001)
    path = write_lines(tmp_path / "events.jsonl", [event(n) for n in range(10)])
    stream = aws.streams["EventStream"].name
    kinesis = boto3.client("kinesis")
    shards = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["OpenShardCount"]
    assert backlog_seconds(10, shards, None) == 10 / (0.001 * shards)
    # Now 10 events take the ingest 24 h, the stream's retention: over 80 % of it.
    monkeypatch.setattr(streamrec.cli, "INGEST_EVENTS_PER_SHARD_SECOND", 10 / (24 * 3600 * shards))
    with pytest.raises(SystemExit) as refused:
        main(["events", "load", str(path), "--stream", stream])
    message = str(refused.value)
    assert message.startswith("error: nothing sent; 10 events: the ingest of")
    assert "a stream that keeps records 24 h, and those past it are lost" in message
    assert "Pace the load with --rate 0.000116 (the ingest's pace: it then runs about 24.0 h" in message
    assert stream_records(stream) == []
    # Paced at the ingest's own rate, no backlog builds up: sent (sleeps skipped here).
    monkeypatch.setattr(streamrec.cli.time, "sleep", lambda _: None)
    rate = str(10 / (24 * 3600))
    assert main(["events", "load", str(path), "--stream", stream, "--rate", rate]) == 0
    assert len(stream_records(stream)) == 10
    assert main(["events", "load", str(path), "--stream", stream, "--force"]) == 0
    assert "(sent anyway: --force)" in capsys.readouterr().err


def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys):
    path = write_lines(tmp_path / "events.jsonl", [event(1)])
    for bad, expected in (
        (["--rate", "0"], "must be a number per second above 0"),
        (["--rate", "fast"], "expected a number per second"),
        (["--skip", "-1"], "must be at least 0"),
    ):
        with pytest.raises(SystemExit) as failed:
            main(["events", "load", str(path), *bad])
        assert failed.value.code == 2 and expected in capsys.readouterr().err
    with pytest.raises(SystemExit, match="start the local stack"):
        main(["events", "load", str(path), "--outputs", str(tmp_path / "outputs.json")])
