"""`streamrec events load FILE`: a backfill of past user events, validated, deduplicated,
sent in timestamp order, paced, resumable, and refused when the stream would lose it."""

from __future__ import annotations

import json
import os
import signal
import time

import boto3
import pytest

import streamrec.cli
from streamrec.cli import main
from streamrec.cli.events import backlog_seconds, ingest_seconds, read_event_file
from streamrec.evaluation.engine import InMemoryEngine
from streamrec.kinesis_put import (
    AHEAD_PER_KEY,
    PUT_ATTEMPTS,
    PUT_RECORDS_MAX_BYTES,
    RecordsKeptFailing,
    put_stream_records,
    record_data,
)
from streamrec.settings import Settings
from tests.unit.test_catalog_cli import TENT

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
    assert [loaded.event(n)["event_id"] for n in range(len(loaded))] == ["e2", "e1", "e4", "e3"]
    assert loaded.event(0)["timestamp"] == "2025-11-24T16:00:00Z"  # sent as written
    assert loaded.users == ["u1", "u2", "u1", "u1"] and loaded.kinds == ["view"] * 4
    assert loaded.times == [T0, T0 + 1, T0 + 1, T0 + 3]
    assert loaded.duplicates == [("e1", "line 4", "line 2")]
    # The ingest's duplicates are per user: another user's event of the same id is its own.
    shared = read_event_file(write_lines(tmp_path / "shared.jsonl", [event(1), event(1, user="u2")]))
    assert shared.users == ["u1", "u2"] and shared.duplicates == []
    assert loaded.reordered
    in_order = read_event_file(write_lines(tmp_path / "sorted.json", [event(1), event(2)]))
    assert not in_order.reordered and in_order.duplicates == []
    # In a one-line array (json.dump's output) records are named by their number.
    array = tmp_path / "array.json"
    array.write_text(json.dumps([event(1), event(2), event(1, item_id="other")]))
    assert read_event_file(array).duplicates == [("e1", "record 3", "record 1")]


def test_a_line_is_split_at_newlines_only(tmp_path):
    # JSON strings may hold a raw U+2028 or U+0085, where str.splitlines splits (a form feed
    # must be escaped, as json.dumps does).
    path = tmp_path / "events.jsonl"
    odd = "tents\u2028and\x85camping\x0cgear"
    lines = [json.dumps(event(1, category=odd), ensure_ascii=False), "{not json", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(SystemExit) as failed:
        read_event_file(path)
    assert str(failed.value).splitlines()[1:] == [
        f"  {path} line 2: not valid JSON: Expecting property name enclosed in double quotes"
    ]
    path.write_text(json.dumps(event(1, category=odd), ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_event_file(path).event(0)["category"] == odd


@pytest.mark.parametrize("command, verb", [("events", "sent"), ("catalog", "loaded")])
def test_a_load_stopped_while_its_file_is_checked_says_nothing_was_sent(
    aws, tmp_path, monkeypatch, capsys, command, verb
):
    records = (
        [event(n) for n in range(10)]
        if command == "events"
        else [{**TENT, "item_id": f"tent-{n}"} for n in range(10)]
    )
    path = write_lines(tmp_path / f"{command}.jsonl", records)
    stream = aws.streams["EventStream"].name
    clients: list[str] = []
    monkeypatch.setattr(streamrec.cli.target.Target, "client", lambda self, service: clients.append(service))
    for stop, status, how in [
        (KeyboardInterrupt, streamrec.cli.exits.INTERRUPTED_STATUS, "interrupted"),
        (streamrec.cli.exits.Terminated, streamrec.cli.exits.TERMINATED_STATUS, "terminated"),
    ]:
        checked: list[bytes] = []

        def check_then_stop(record, checked=checked, stop=stop):
            checked.append(record)
            if len(checked) == 3:
                raise stop
            return record_data(record)

        monkeypatch.setattr(streamrec.cli.inputs, "record_data", check_then_stop)
        with pytest.raises(SystemExit) as stopped:
            main([command, "load", str(path), "--stream", stream])
        assert stopped.value.code == status
        assert capsys.readouterr().err == f"streamrec: {how} while checking {path}; nothing {verb}\n"
    assert clients == []  # no stream was reached


def test_an_events_file_that_is_not_utf8_is_refused_with_nothing_sent(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(json.dumps(event(1)).encode() + b'\n{"item_id": "caf\xe9"}\n')
    with pytest.raises(SystemExit) as failed:
        read_event_file(path)
    assert str(failed.value).startswith(f"error: nothing sent; {path} line 2 is not UTF-8 text")


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
        # a catalog record as `catalog load` takes it, without event_type
        {"item_id": "tent", "title": "Tent", "category": "camping", "price": 1, "in_stock": True},
    ]
    path = write_lines(tmp_path / "events.jsonl", rows)
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(SystemExit) as failed:
        read_event_file(path)
    lines = str(failed.value).splitlines()
    assert lines[0] == "error: nothing sent; 6 invalid event(s):"
    assert f"{path} line 2: schema violation: event_type" in lines[1]
    assert lines[2] == (
        f"  {path} line 3: a catalog record (item_upsert): load those with `streamrec catalog load`"
    )
    assert "line 4: record of " in lines[3] and "limit" in lines[3]
    assert "line 5: schema violation: timestamp" in lines[4] and "not milliseconds" in lines[4]
    assert lines[5] == (
        f"  {path} line 6: a catalog record (in_stock, title; no user_id or event_type): load those "
        "with `streamrec catalog load`"
    )
    assert "line 7: not valid JSON" in lines[6]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(SystemExit, match="holds no events"):
        read_event_file(empty)


def test_load_puts_the_events_on_the_stream_keyed_by_user(aws, tmp_path, capsys):
    rows = [event(n, user=f"u{n % 3}") for n in reversed(range(1200))] + [event(5, user="u2")]
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
    assert f"1 event of {path} left out: an earlier record has the same user_id and event_id" in err
    assert "line 1201: event_id 'e5' (line 1195 is sent)" in err
    # Not the local stack: the backlog estimate (1 shard here, at 35 events/s: 34 s).
    assert f"1,200 events: the ingest of {stream}'s 1 shard takes about 34 s for them" in err
    assert "sent 3/1200 events" in err  # 3 users: calls of 3 events, one of each
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

    def describe_stream_summary(self, StreamName):
        return {"StreamDescriptionSummary": {"OpenShardCount": 1, "RetentionPeriodHours": 24}}

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


def entries(n, users=None):
    """(data, keys) of n records: event e<i>, user u<i % users> (each its own user when None)."""
    data = [json.dumps(event(i)).encode() for i in range(n)]
    return data, [f"u{i if users is None else i % users}" for i in range(n)]


def test_refused_records_are_sent_again_and_marked_as_they_are_taken():
    kinesis = RefusingKinesis(refuse=["e3", "e600"], times=2)
    accepted = [False] * 700
    put_stream_records(kinesis, "s", *entries(700), lambda *_: None, accepted=accepted, sleep=lambda _: None)
    assert [len(ids) for ids in kinesis.calls] == [500, 1, 1, 200, 1, 1]
    assert sorted(kinesis.taken) == sorted(f"e{n}" for n in range(700)) and all(accepted)
    always = RefusingKinesis(refuse=["e1"], times=99)
    accepted = [False] * 3
    with pytest.raises(RecordsKeptFailing) as failing:
        put_stream_records(always, "s", *entries(3), lambda *_: None, accepted=accepted, sleep=lambda _: None)
    assert failing.value.count == 1 and accepted == [True, False, True]
    assert failing.value.codes == ["ProvisionedThroughputExceededException"]
    assert len(always.calls) == PUT_ATTEMPTS


def test_a_call_holds_at_most_five_mib(monkeypatch):
    # 500 records of 12 KB (within the ingest's 16 KiB) are 6 MB: Kinesis refuses such a
    # call whole, every time, so a load of them could never finish.
    sizes: list[int] = []
    kinesis = RefusingKinesis()
    put_records = kinesis.put_records

    def measured(StreamName, Records):  # noqa: N803 (boto3's names)
        sizes.append(sum(len(r["Data"]) + len(r["PartitionKey"].encode()) for r in Records))
        return put_records(StreamName, Records)

    monkeypatch.setattr(kinesis, "put_records", measured)
    data = [json.dumps(event(n, padding="x" * 12_000)).encode() for n in range(1_000)]
    keys = [f"u{n % 500}" for n in range(1_000)]
    put_stream_records(kinesis, "s", data, keys, lambda *_: None, sleep=lambda _: None)
    assert max(sizes) <= PUT_RECORDS_MAX_BYTES < max(sizes) + len(data[0])  # calls as full as allowed
    assert sorted(kinesis.taken, key=lambda e: int(e[1:])) == [f"e{n}" for n in range(1_000)]
    assert len(kinesis.taken) == 1_000
    for user in range(500):  # each user's records in their order
        taken = [int(e[1:]) for e in kinesis.taken if int(e[1:]) % 500 == user]
        assert taken == sorted(taken)


def test_a_refused_record_still_reaches_the_stream_before_its_keys_next_one():
    # Three users taking turns: a call never holds two records of one user, so e3 (u0),
    # refused once, is taken again before e6, u0's next record.
    kinesis = RefusingKinesis(refuse=["e3"])
    put_stream_records(kinesis, "s", *entries(9, users=3), lambda *_: None, sleep=lambda _: None)
    assert kinesis.calls == [["e0", "e1", "e2"], ["e3", "e4", "e5"], ["e3"], ["e6", "e7", "e8"]]
    for user in range(3):
        taken = [e for e in kinesis.taken if int(e[1:]) % 3 == user]
        assert taken == sorted(taken, key=lambda e: int(e[1:])), kinesis.taken
    # One user: one record per call, in order.
    alone = RefusingKinesis(refuse=["e1"])
    put_stream_records(alone, "s", *entries(3, users=1), lambda *_: None, sleep=lambda _: None)
    assert alone.taken == ["e0", "e1", "e2"]


def test_a_key_gets_at_most_ahead_per_key_records_past_the_first_one_not_taken():
    # u0 has 300 events first, u1 200 after them: calls take one of each, so u1 runs ahead of
    # the resume point (u0's next event) until it holds AHEAD_PER_KEY there, then waits.
    keys = ["u0"] * 300 + ["u1"] * 200
    data = [json.dumps(event(n, user=key)).encode() for n, key in enumerate(keys)]
    kinesis = RefusingKinesis()
    accepted = [False] * len(data)
    most_ahead = 0

    def progress(done, total):
        nonlocal most_ahead
        first = accepted.index(False) if False in accepted else len(accepted)
        most_ahead = max(most_ahead, sum(accepted[first:]))

    put_stream_records(kinesis, "s", data, keys, progress, accepted=accepted, sleep=lambda _: None)
    assert most_ahead == AHEAD_PER_KEY
    for key in ("u0", "u1"):
        mine = [int(e[1:]) for e in kinesis.taken if keys[int(e[1:])] == key]
        assert mine == sorted(mine) and len(mine) == keys.count(key)
    # 99 of u1's ride along with u0's first 99; the other 101 wait until u0's 300 are taken.
    assert len(kinesis.calls) == 300 + 101
    # Resuming sends those again: the ingest must still hold all of them as duplicates.
    assert Settings().recent_event_ids_kept > AHEAD_PER_KEY


def test_rate_paces_the_calls():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    kinesis = RefusingKinesis()
    put_stream_records(
        kinesis, "s", *entries(250), lambda *_: None, rate=100, sleep=sleep, clock=lambda: now[0]
    )
    assert [len(ids) for ids in kinesis.calls] == [100, 100, 50]
    assert slept == [1.0, 1.0]  # the 2nd call at 1 s, the 3rd at 2 s: 100 events a second


def test_an_interrupted_load_names_the_skip_that_resumes_it(aws, tmp_path, monkeypatch, capsys):
    # 1,200 events of 600 users (u0..u599 twice): calls of up to 500 distinct users.
    path = write_lines(tmp_path / "events.jsonl", [event(n, user=f"u{n % 600}") for n in range(1200)])
    stream = aws.streams["EventStream"].name
    # With --skip 100 the first call is e100..e599; all but e107 are taken, then Ctrl-C
    # during e107's resend.
    kinesis = RefusingKinesis(refuse=["e107"], stop_at=2)
    monkeypatch.setattr(streamrec.cli.target.Target, "client", lambda self, service: kinesis)
    with pytest.raises(SystemExit) as stopped:
        main(["events", "load", str(path), "--stream", stream, "--skip", "100"])
    assert stopped.value.code == streamrec.cli.exits.INTERRUPTED_STATUS
    assert kinesis.calls[0] == [f"e{n}" for n in range(100, 600)]
    err = capsys.readouterr().err
    # e100..e106 were taken before the refused e107: the file's first 107 are on the stream.
    assert (
        "streamrec: interrupted; the stream has the first 107 of the file's 1200 events "
        "(timestamp order): resume with --skip 107"
    ) in err

    # SIGTERM (timeout, systemd, a CI cancel) stops it the same way, saying so, status 143.
    def terminate() -> Exception:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here
        return AssertionError("SIGTERM was not turned into a stop")

    previous = signal.getsignal(signal.SIGTERM)
    terminating = RefusingKinesis(refuse=["e107"], stop_at=2, stop=terminate)
    monkeypatch.setattr(streamrec.cli.target.Target, "client", lambda self, service: terminating)
    with pytest.raises(SystemExit) as terminated:
        main(["events", "load", str(path), "--stream", stream, "--skip", "100"])
    assert terminated.value.code == streamrec.cli.exits.TERMINATED_STATUS == 143
    assert (
        "streamrec: terminated; the stream has the first 107 of the file's 1200 events"
        in capsys.readouterr().err
    )
    assert signal.getsignal(signal.SIGTERM) is previous  # the command's handler is gone
    # Kept failing: the same kind of resume point, and the error codes, with a hint at --rate.
    throttled = RefusingKinesis(refuse=["e7"], times=99)
    monkeypatch.setattr(streamrec.cli.target.Target, "client", lambda self, service: throttled)
    monkeypatch.setattr("time.sleep", lambda _: None)
    with pytest.raises(SystemExit) as failed:
        main(["events", "load", str(path), "--stream", stream])
    assert str(failed.value) == (
        f"error: 1 event kept failing on {stream} (ProvisionedThroughputExceededException; throttled: "
        "pace the load with --rate); the stream has the first 7 of the file's 1200 events (timestamp "
        "order): resume with --skip 7"
    )


def test_resuming_sends_again_only_events_the_ingest_ignores(aws, tmp_path, monkeypatch):
    # 40 events of 4 users, u<n % 4>; e5 is refused until the load gives up. Taken by then:
    # e0..e4, and after e5 at most one event of each user. Resuming at the printed --skip sends
    # those again: the ingest, fed the stream in its order, ends as a clean run of the file.
    rows = [event(n, user=f"u{n % 4}", item_id=f"item-{n * 7 % 11}") for n in range(40)]
    path = write_lines(tmp_path / "events.jsonl", rows)
    stream = aws.streams["EventStream"].name
    first = RefusingKinesis(refuse=["e5"], times=99)
    monkeypatch.setattr(streamrec.cli.target.Target, "client", lambda self, service: first)
    monkeypatch.setattr("time.sleep", lambda _: None)
    with pytest.raises(SystemExit) as failed:
        main(["events", "load", str(path), "--stream", stream])
    skip = int(str(failed.value).rsplit("--skip ", 1)[1])
    assert skip == 5 and first.taken == ["e0", "e1", "e2", "e3", "e4", "e6", "e7"]
    second = RefusingKinesis()
    monkeypatch.setattr(streamrec.cli.target.Target, "client", lambda self, service: second)
    assert main(["events", "load", str(path), "--stream", stream, "--skip", str(skip)]) == 0
    assert second.taken[:3] == ["e5", "e6", "e7"]  # e6, e7 a second time

    by_id = {row["event_id"]: row for row in rows}
    resumed, clean = InMemoryEngine(Settings()), InMemoryEngine(Settings())
    for event_id in first.taken + second.taken:  # one record at a time, as the stream holds them
        resumed.ingest([by_id[event_id]])
    for row in rows:
        clean.ingest([row])
    # Equal rows but for the replay guards (the stream's sequence numbers differ).
    for user in resumed.users.rows.values():
        user.applied = {}
    for user in clean.users.rows.values():
        user.applied = {}
    assert resumed.users.rows == clean.users.rows
    assert resumed.cooccurrence.get_rows(f"item-{n}" for n in range(11)) == clean.cooccurrence.get_rows(
        f"item-{n}" for n in range(11)
    )
    assert sum(resumed.users.rows[f"u{u}"].event_counts["view"] for u in range(4)) == 40


def test_the_ingests_time_counts_the_busiest_user_whose_events_share_one_shard():
    # 35 events/s per shard: 7,000 events of 10 even users on 2 shards take 100 s ...
    assert ingest_seconds(7_000, busiest=700, shards=2) == pytest.approx(100)
    # ... but 7,000 events of one user all go to one shard: 200 s, however many shards.
    assert ingest_seconds(7_000, busiest=7_000, shards=4) == pytest.approx(200)
    # Sent at 100 events/s (70 s), the last event waits 30 s; at the ingest's 70/s, none.
    assert backlog_seconds(7_000, 700, 2, rate=100) == pytest.approx(30)
    assert backlog_seconds(7_000, 700, 2, rate=70) == pytest.approx(0)
    assert backlog_seconds(7_000, 700, 2, rate=None) == pytest.approx(100)


def test_a_backlog_past_the_streams_retention_is_refused(aws, tmp_path, monkeypatch, capsys):
    # 10 events of one user; the ingest taken as 10 events a day per shard: they need 24 h,
    # the stream's whole retention (over its 80 %), whatever the shard count.
    monkeypatch.setattr(streamrec.cli.events, "INGEST_EVENTS_PER_SHARD_SECOND", 10 / (24 * 3600))
    path = write_lines(tmp_path / "events.jsonl", [event(n) for n in range(10)])
    stream = aws.streams["EventStream"].name
    with pytest.raises(SystemExit) as refused:
        main(["events", "load", str(path), "--stream", stream])
    message = str(refused.value)
    assert message.startswith(
        f"error: nothing sent; 10 events: the ingest of {stream}'s 1 shard takes about 24.0 h"
    )
    assert "a stream that keeps records 24 h, and those past it are lost" in message
    assert "Pace the load with --rate 0.000116 (the ingest's pace: it then runs about 24.0 h" in message
    assert "--skip" not in message.split("Pace")[0]  # nothing was sent: no resume point
    assert stream_records(stream) == []
    # Paced at the ingest's own rate, no backlog builds up: sent (sleeps skipped here).
    monkeypatch.setattr("time.sleep", lambda _: None)
    rate = str(10 / (24 * 3600))
    assert main(["events", "load", str(path), "--stream", stream, "--rate", rate]) == 0
    assert len(stream_records(stream)) == 10
    assert main(["events", "load", str(path), "--stream", stream, "--force"]) == 0
    assert "(sent anyway: --force)" in capsys.readouterr().err


def test_a_producer_that_may_only_put_records_loads_without_the_check(aws, tmp_path, monkeypatch, capsys):
    from botocore.exceptions import ClientError

    real = boto3.client("kinesis")

    class PutOnly:
        def put_records(self, **kwargs):
            return real.put_records(**kwargs)

        def describe_stream_summary(self, **kwargs):
            raise ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeStreamSummary"
            )

    monkeypatch.setattr(streamrec.cli.target.Target, "client", lambda self, service: PutOnly())
    path = write_lines(tmp_path / "events.jsonl", [event(n) for n in range(3)])
    stream = aws.streams["EventStream"].name
    assert main(["events", "load", str(path), "--stream", stream]) == 0
    assert len(stream_records(stream)) == 3
    assert "warning: cannot read" in capsys.readouterr().err
    # A stream that does not exist: one line, no resume point (nothing could be sent).
    monkeypatch.setattr(streamrec.cli.target.Target, "client", lambda self, service: real)
    with pytest.raises(SystemExit) as missing:
        main(["events", "load", str(path), "--stream", "no-such-stream"])
    assert "ResourceNotFoundException" in str(missing.value) and "--skip" not in str(missing.value)


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


def test_a_dry_run_checks_the_file_and_sends_nothing(aws, tmp_path, monkeypatch, capsys):
    rows = [event(2, user="u2", event_type="purchase"), event(1), event(3, event_type="add_to_cart")]
    path = write_lines(tmp_path / "events.jsonl", rows)
    # No local stack needed: the file alone.
    assert main(["events", "load", str(path), "--dry-run", "--outputs", str(tmp_path / "none.json")]) == 0
    err = capsys.readouterr().err
    assert (
        "3 events of 2 users to send, 2025-11-24 16:00:01 to 2025-11-24 16:00:03 UTC: "
        "1 add_to_cart, 1 purchase, 1 view"
    ) in err
    assert err.rstrip().endswith("dry run: nothing sent")
    # With --stream, the stream's check too; still nothing on the stream.
    stream = aws.streams["EventStream"].name
    assert main(["events", "load", str(path), "--stream", stream, "--dry-run", "--skip", "1"]) == 0
    err = capsys.readouterr().err
    assert "2 events of 2 users to send" in err and f"2 events: the ingest of {stream}'s 1 shard" in err
    assert stream_records(stream) == []
    # A load the stream's retention would refuse is refused by its dry run alike.
    monkeypatch.setattr(streamrec.cli.events, "INGEST_EVENTS_PER_SHARD_SECOND", 1 / (24 * 3600))
    with pytest.raises(SystemExit, match="and those past it are lost"):
        main(["events", "load", str(path), "--stream", stream, "--dry-run"])
    bad = write_lines(tmp_path / "bad.jsonl", [{**event(1), "event_type": "click"}])
    with pytest.raises(SystemExit, match="nothing sent; 1 invalid event"):
        main(["events", "load", str(bad), "--dry-run"])


def test_a_pipe_is_read_like_a_file(tmp_path, capsys):
    # `zcat backup.jsonl.gz | streamrec events load /dev/stdin`, or <(...): not "not found".
    import threading

    pipe = tmp_path / "events.jsonl"
    os.mkfifo(pipe)
    text = "".join(json.dumps(event(n)) + "\n" for n in range(3))
    writer = threading.Thread(target=pipe.write_text, args=(text,), daemon=True)
    writer.start()
    try:
        assert main(["events", "load", str(pipe), "--dry-run", "--outputs", str(tmp_path / "none.json")]) == 0
    finally:
        writer.join(timeout=10)
    assert "3 events of 1 user to send" in capsys.readouterr().err


def test_checking_a_large_file_shows_its_progress(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(streamrec.cli.inputs, "LARGE_INPUT_CHARS", 1000)  # this file is "large"
    path = write_lines(tmp_path / "events.jsonl", [event(n, user=f"u{n % 50}") for n in range(20_000)])
    assert main(["events", "load", str(path), "--dry-run", "--outputs", str(tmp_path / "none.json")]) == 0
    err = capsys.readouterr().err
    assert f"checking {path}: 10,000 events read, nothing sent yet" in err
    assert f"checked {path}: 20,000 events" in err
