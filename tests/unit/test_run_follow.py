"""`streamrec run` after the demo load: records put later (`catalog load`, the shop's own
producers) are shown while the pipeline processes them, then summed up once it is quiet."""

from __future__ import annotations

from dataclasses import dataclass

from streamrec.cli import _follow
from streamrec.local.pollers import PollerStats


@dataclass
class Step:
    ingested: int
    recomputed: int
    quiet: bool
    failures: int = 0


class ScriptedStack:
    """Poller counters and quietness, one step per check of ``_follow``."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.at = 0

    def stats(self) -> dict[str, PollerStats]:
        step = self.steps[self.at]
        return {
            "IngestFunction.EventStream": PollerStats(records=step.ingested, failures=step.failures),
            "SimilarityFunction.ChangedItemsStream": PollerStats(records=step.recomputed),
        }

    def quiet(self) -> bool:
        return self.steps[self.at].quiet


class StopAfterSteps:
    """``stop.wait`` moves the scripted stack to its next step; set once it has none."""

    def __init__(self, stack: ScriptedStack) -> None:
        self.stack = stack

    def wait(self, _timeout: float) -> bool:
        if self.stack.at + 1 >= len(self.stack.steps):
            return True
        self.stack.at += 1
        return False


def _follow_lines(steps: list[Step], capsys) -> list[str]:
    stack = ScriptedStack(steps)
    _follow(stack, StopAfterSteps(stack), every=0.0)  # type: ignore[arg-type]
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
    assert lines[0].startswith("processing new records... ingested 200, 0 changed items recomputed")
    assert lines[-1].startswith("processed 500 new records (40 changed items recomputed) in ")
    assert "dead-letter" not in lines[-1]
    assert sum(line.startswith("processed ") for line in lines) == 1


def test_each_burst_is_counted_from_the_end_of_the_last_and_failed_batches_are_named(capsys):
    lines = _follow_lines(
        [
            Step(100, 10, quiet=True),
            Step(150, 10, quiet=True),  # quiet at once: one more quiet check still needed
            Step(150, 12, quiet=True),
            Step(150, 12, quiet=True),
            Step(151, 12, quiet=False, failures=1),
            Step(151, 12, quiet=True, failures=1),
            Step(151, 12, quiet=True, failures=1),
        ],
        capsys,
    )
    summaries = [line for line in lines if line.startswith("processed ")]
    assert len(summaries) == 2
    assert summaries[0].startswith("processed 50 new records (2 changed items recomputed)")
    assert summaries[1].startswith("processed 1 new record (0 changed items recomputed)")
    assert summaries[1].endswith(", 1 batch sent to the dead-letter queue (streamrec dlq list)")


def test_a_pipeline_that_never_settles_gets_no_summary(capsys):
    lines = _follow_lines([Step(0, 0, quiet=True), Step(10, 0, quiet=False), Step(20, 0, quiet=True)], capsys)
    assert lines and all(line.startswith("processing new records... ") for line in lines)
