"""The SQS dead-letter sink keeps every message and every request within SQS's size limit."""

from __future__ import annotations

import json
import os

import boto3
import pytest

from streamrec.repositories.base import DeadLetter, RepositoryError
from streamrec.repositories.dynamodb import SqsDeadLetterSink


def _letter(number: int, data: str) -> DeadLetter:
    return DeadLetter(
        reason=f"bad record {number}",
        source="arn:aws:kinesis:us-east-1:123456789012:stream/events",
        shard="shardId-000000000000",
        sequence_number=str(number),
        partition_key=f"user-{number}",
        data=data,
    )


class _RecordingClient:
    def __init__(self, client) -> None:
        self.client = client
        self.requests: list[list[dict]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:  # noqa: N803 - boto3 names
        self.requests.append(Entries)
        return self.client.send_message_batch(QueueUrl=QueueUrl, Entries=Entries)


def test_large_and_small_letters_are_all_sent_within_the_size_limits(aws) -> None:
    sqs = boto3.client("sqs")
    queue_url = os.environ["DEAD_LETTER_QUEUE_URL"]
    recording = _RecordingClient(sqs)
    sink = SqsDeadLetterSink(queue_url, recording)
    # A Kinesis record can hold 1 MB; quotes and control characters double or sextuple in JSON.
    letters = [_letter(n, "A" * 900_000) for n in range(3)]
    letters += [_letter(10 + n, '"\x01' * 200_000) for n in range(2)]
    letters += [_letter(20 + n, "eyJ4IjoxfQ==") for n in range(15)]

    sink.send(letters)

    for entries in recording.requests:
        assert len(entries) <= 10
        assert sum(len(entry["MessageBody"].encode()) for entry in entries) <= 256 * 1024
    sent = [json.loads(entry["MessageBody"]) for entries in recording.requests for entry in entries]
    assert [body["reason"] for body in sent] == [letter.reason for letter in letters]
    assert [body["data_truncated"] for body in sent] == [True] * 5 + [False] * 15
    assert all(letter.data.startswith(body["data"]) for letter, body in zip(letters, sent, strict=True))
    assert sent[-1]["data"] == "eyJ4IjoxfQ=="
    received = 0
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
        received += len(messages)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
    assert received == len(letters)


class _RefusingOnceClient(_RecordingClient):
    """Refuses the first entry of the first request (as SQS may under throttling)."""

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:  # noqa: N803 - boto3 names
        if self.requests:
            return super().send_message_batch(QueueUrl, Entries)
        self.requests.append(Entries)
        refused, rest = Entries[0], Entries[1:]
        response = self.client.send_message_batch(QueueUrl=QueueUrl, Entries=rest)
        failed = {"Id": refused["Id"], "SenderFault": False, "Code": "InternalError"}
        return {**response, "Failed": [*response.get("Failed", []), failed]}


def test_entries_sqs_refuses_are_sent_again_alone(aws) -> None:
    # Failing the whole call instead would have Lambda retry it, sending the accepted
    # letters a second time.
    sqs = boto3.client("sqs")
    queue_url = os.environ["DEAD_LETTER_QUEUE_URL"]
    client = _RefusingOnceClient(sqs)
    letters = [_letter(n, "eyJ4IjoxfQ==") for n in range(3)]
    SqsDeadLetterSink(queue_url, client).send(letters)
    assert [len(entries) for entries in client.requests] == [3, 1]
    reasons = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
        reasons += [json.loads(m["Body"])["reason"] for m in messages]
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
    assert sorted(reasons) == ["bad record 0", "bad record 1", "bad record 2"]


def test_an_entry_sqs_rejects_as_the_senders_fault_is_not_sent_again(aws) -> None:
    class _Rejecting(_RecordingClient):
        def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:  # noqa: N803 - boto3 names
            self.requests.append(Entries)
            failed = {"Id": Entries[0]["Id"], "SenderFault": True, "Code": "InvalidMessageContents"}
            return {"Successful": [], "Failed": [failed]}

    client = _Rejecting(boto3.client("sqs"))
    sink = SqsDeadLetterSink(os.environ["DEAD_LETTER_QUEUE_URL"], client)
    with pytest.raises(RepositoryError, match=r"rejected 1 messages \(InvalidMessageContents\)"):
        sink.send([_letter(1, "eyJ4IjoxfQ==")])
    assert len(client.requests) == 1
