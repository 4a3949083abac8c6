"""A user-event batch whose invocations keep failing after its count rows were written.

Lambda re-delivers it with the same sequence numbers, so the rows' replay guards skip what
is already written. Given up on (OnFailure) and re-driven, its records would come back at
new sequence numbers and count those rows twice. So the template's ingest retries until the
batch succeeds (``IngestRetryAttempts`` -1), and `streamrec dlq redrive` keeps an event
stream's batch description (from a stack deployed with a finite value) unless told to
re-drive it anyway; the changed-items stream's are re-driven (its writes are replacements).
"""

from __future__ import annotations

import json

import pytest

from streamrec.local.template import load_raw_template
from streamrec.reliability.dlq import Letter
from streamrec.reliability.esm import Invocation
from streamrec.reliability.faults import Fault, ReplayConfig, WriteStep, replay
from streamrec.reliability.sandbox import diff_snapshots
from tests.unit.test_ops_cli_errors import _batch_letter

from .conftest import taobao_events
from .test_template_policies import TEMPLATE

pytestmark = pytest.mark.reliability

ANNOUNCE = "IngestFunction kinesis:PutRecords ChangedItemsStream"
# Enough for a batch of 20 to be bisected down to one record and that one to fail more
# than the 5 retries the template used to allow (bisections do not count as retries).
FAILURES = 15


class AnnouncementFails:
    """The ingest's changed-items announcement (after the batch's count, stats, trend and
    redemption writes, before its user rows) fails in the first ``times`` invocations that
    reach it, as when the changed-items stream is throttled for a while."""

    def __init__(self, times: int) -> None:
        self.left = times

    def begin(self, invocation: Invocation) -> AnnouncementFails:
        return self

    def decide(self, step: WriteStep, index: int) -> str | None:
        if self.left and step.kind == ANNOUNCE:
            self.left -= 1
            return "before"
        return None

    def fired(self, fault: Fault) -> None:
        pass

    def finished(self, invocation: Invocation, writes: int, crashed: bool) -> None:
        pass


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return taobao_events(60, coupons=False)  # user events only: each one announces its items


def test_the_template_retries_a_failing_user_event_batch_until_it_succeeds() -> None:
    ingest = load_raw_template(TEMPLATE)["Resources"]["IngestFunction"]["Properties"]["Events"]
    assert ingest["UserEvents"]["Properties"]["MaximumRetryAttempts"] == {"Ref": "IngestRetryAttempts"}
    assert load_raw_template(TEMPLATE)["Parameters"]["IngestRetryAttempts"]["Default"] == "-1"


def test_a_batch_failing_after_its_count_writes_is_applied_once_in_the_end(events: list[dict]) -> None:
    config = ReplayConfig(shards=1, batch_size=20, similarity_batch_size=20)
    clean = replay(events, config)
    failing = replay(events, config, AnnouncementFails(FAILURES))
    assert failing.faults is not None and failing.faults["total"] == FAILURES
    assert failing.dead_letters == 0 and failing.shards_drained
    ingest = failing.esm["IngestFunction.UserEvents"]
    assert ingest.function_errors == FAILURES and ingest.given_up_batches == 0
    assert diff_snapshots(clean.snapshot, failing.snapshot) == []


def test_with_finite_retries_the_batch_is_given_up_and_kept_by_redrive(events: list[dict]) -> None:
    config = ReplayConfig(shards=1, batch_size=20, similarity_batch_size=20, max_retries=5)
    failing = replay(events, config, AnnouncementFails(FAILURES))
    assert failing.esm["IngestFunction.UserEvents"].given_up_batches >= 1
    assert failing.dead_letters >= 1
    # What a re-drive would double: the given-up record's counts, stats and trend counters
    # are stored as in a clean run; only its user row and its items' lists are not.
    clean = replay(events, config)
    differences = diff_snapshots(clean.snapshot, failing.snapshot)
    assert {d.table for d in differences} == {"UsersTable", "SimilarityTable"}


def _batch_description(stream: str) -> Letter:
    body = _batch_letter(stream)  # Lambda's OnFailure description of a batch of 2 records
    return Letter("m", "r", json.dumps(body), body)


def test_redrive_keeps_an_event_stream_batch_unless_told_and_redrives_a_changed_items_batch() -> None:
    events = _batch_description("streamrec-EventStream-ABC")
    assert events.redrivable() == (
        False,
        "user events given up on after retries: some of their counts may be written, "
        "a re-drive could count them twice",
    )
    assert events.redrivable(include_partly_written=True) == (True, "")
    assert _batch_description("streamrec-ChangedItemsStream-ABC").redrivable() == (True, "")
    # A stack named after the changed-items stream does not make its event stream one.
    assert _batch_description("ChangedItemsStream-prod-EventStream-ABC").redrivable()[0] is False
