"""`streamrec run` after the demo load: records put later (`catalog load`, the shop's own
producers) are shown while the pipeline processes them, then summed up once it is quiet."""

from __future__ import annotations

from dataclasses import dataclass

from streamrec.cli.run import _follow
from streamrec.local.pollers import PollerStats


@dataclass
class Step:
    ingested: int
    recomputed: int
    quiet: bool
    dead_letters: int = 0  # messages in the dead-letter queue
    retries: int = 0


class ScriptedStack:
    """Poller counters and quietness, one step per check of ``_follow``."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.at = 0

    def stats(self) -> dict[str, PollerStats]:
        step = self.steps[self.at]
        return {
            "IngestFunction.EventStream": PollerStats(records=step.ingested, retries=step.retries),
            "SimilarityFunction.ChangedItemsStream": PollerStats(records=step.recomputed),
        }

    def quiet(self) -> bool:
        return self.steps[self.at].quiet

    def dead_letters(self) -> int:
        return self.steps[self.at].dead_letters


class StopAfterSteps:
    """``stop.wait`` moves the scripted stack to its next step; set once it has none."""

    def __init__(self, stack: ScriptedStack) -> None:
        self.stack = stack

    def wait(self, _timeout: float) -> bool:
        if self.stack.at + 1 >= len(self.stack.steps):
            return True
        self.stack.at += 1
        return False


def _follow_lines(steps: list[Step], capsys, **options: str) -> list[str]:
    stack = ScriptedStack(steps)
    _follow(stack, StopAfterSteps(stack), every=0.0, dead_letters=stack.dead_letters, **options)  # type: ignore[arg-type]
    return capsys.readouterr().err.splitlines()


def test_records_after_the_demo_are_summed_up_once_the_pipeline_is_quiet(capsys):
    demo = Step(6000, 900, quiet=True)  # what the demo load left: not reported again
    lines = _follow_lines(
        [
            demo,
            demo,  # idle: nothing printed
            Step(6200, 900, quiet=False),
            Step(6500, 930, quiet=False),
            Step(6500, 940, quiet=True),
            Step(6500, 940, quiet=True),  # quiet twice in a row: the summary
            Step(6500, 940, quiet=True),  # idle again: nothing more
        ],
        capsys,
    )
    assert lines[0].startswith(
        "processing new records... ingested 200 (a batch counts when it ends), 0 changed items recomputed"
    )
    assert lines[-1].startswith("processed 500 new records (40 changed items recomputed) in ")
    assert "dead-letter" not in lines[-1]
    assert sum(line.startswith("processed ") for line in lines) == 1


def test_each_burst_is_counted_from_the_end_of_the_last_and_dead_letters_are_named(capsys):
    lines = _follow_lines(
        [
            Step(100, 10, quiet=True, dead_letters=4),  # letters of the demo load: not counted
            Step(150, 10, quiet=True, dead_letters=4),  # quiet at once: one more check needed
            Step(150, 12, quiet=True, dead_letters=4),
            Step(150, 12, quiet=True, dead_letters=4),
            Step(153, 12, quiet=False, dead_letters=6),  # 2 of 3 records rejected as invalid
            Step(153, 12, quiet=True, dead_letters=6),
            Step(153, 12, quiet=True, dead_letters=6),
        ],
        capsys,
    )
    summaries = [line for line in lines if line.startswith("processed ")]
    assert len(summaries) == 2
    assert summaries[0].startswith("processed 50 new records (2 changed items recomputed)")
    assert "dead letter" not in summaries[0]
    assert summaries[1].startswith("processed 3 new records (0 changed items recomputed)")
    assert summaries[1].endswith(", 2 dead letters (streamrec dlq list)")


def test_the_dead_letters_are_named_with_the_command_that_reaches_this_stack(capsys):
    # A stack started with its own --outputs: `dlq list` alone would read the default file.
    lines = _follow_lines(
        [
            Step(100, 10, quiet=True, dead_letters=0),
            Step(101, 10, quiet=False, dead_letters=1),
            Step(101, 10, quiet=True, dead_letters=1),
            Step(101, 10, quiet=True, dead_letters=1),
        ],
        capsys,
        dlq_list="streamrec dlq list --outputs=two.json",
    )
    assert lines[-1].endswith(", 1 dead letter (streamrec dlq list --outputs=two.json)")


def test_a_batch_failing_again_and_again_is_shown_while_nothing_is_ingested(capsys):
    lines = _follow_lines(
        [Step(0, 0, quiet=True), Step(0, 0, quiet=False, retries=1), Step(0, 0, quiet=False, retries=3)],
        capsys,
    )
    assert lines and lines[0].startswith(
        "processing new records... ingested 0 (a batch counts when it ends), 0 changed items recomputed, "
        "1 retries of failing batches"
    )


def test_a_pipeline_that_never_settles_gets_no_summary(capsys):
    lines = _follow_lines([Step(0, 0, quiet=True), Step(10, 0, quiet=False), Step(20, 0, quiet=True)], capsys)
    assert lines and all(line.startswith("processing new records... ") for line in lines)


def test_a_redrive_is_not_a_negative_number_of_dead_letters(capsys):
    # A record dead-lettered after the demo; `streamrec dlq redrive` deletes its letter (4 -> 3)
    # as it puts the record back, and the ingest then takes it.
    lines = _follow_lines(
        [
            Step(100, 10, quiet=True, dead_letters=3),
            Step(101, 10, quiet=False, dead_letters=4),
            Step(101, 10, quiet=True, dead_letters=4),
            Step(101, 10, quiet=True, dead_letters=4),  # summary: 1 record, 1 dead letter
            Step(101, 10, quiet=True, dead_letters=3),  # the re-drive deletes the letter
            Step(101, 10, quiet=True, dead_letters=3),  # idle: nothing printed for the deletion
            Step(102, 11, quiet=False, dead_letters=3),  # the re-driven record is ingested
            Step(102, 11, quiet=True, dead_letters=3),
            Step(102, 11, quiet=True, dead_letters=3),
        ],
        capsys,
    )
    summaries = [line for line in lines if line.startswith("processed ")]
    assert summaries[0].startswith("processed 1 new record (0 changed items recomputed) in ")
    assert summaries[0].endswith(", 1 dead letter (streamrec dlq list)")
    assert summaries[1].startswith("processed 1 new record (1 changed items recomputed)")
    assert "dead letter" not in summaries[1] and len(summaries) == 2
    assert all("ingested 0" not in line and "-1" not in line for line in lines)
