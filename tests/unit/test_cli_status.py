"""The command line's progress lines: rewritten in place on a terminal, plain and sparse elsewhere."""

from __future__ import annotations

import io

from streamrec.cli.progress import StatusLine


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_gets_every_line_rewritten_in_place():
    terminal = FakeTerminal()
    status = StatusLine(terminal, every=5.0, clock=Clock())
    for n in range(3):
        status(f"sent {n}/3")
    status("sent 3 records", done=True)
    rewrites = "".join(f"\r\033[Ksent {n}/3" for n in range(3))
    assert terminal.getvalue() == rewrites + "\r\033[Ksent 3 records\n"


def test_a_log_gets_plain_lines_at_most_one_every_few_seconds_and_every_final_line():
    log, clock = io.StringIO(), Clock()
    status = StatusLine(log, every=5.0, clock=clock)
    for _ in range(40):  # 10 s of progress at 4 lines a second
        status(f"processing... {clock.now:.2f}s")
        clock.now += 0.25
    status("processed 6000 records", done=True)
    status("defined 6 demo coupons", done=True)
    status("sent 500/1000 records")  # a new phase's first line shows at once
    assert log.getvalue().splitlines() == [
        "processing... 100.00s",
        "processing... 105.00s",
        "processed 6000 records",
        "defined 6 demo coupons",
        "sent 500/1000 records",
    ]
    assert "\r" not in log.getvalue() and "\033" not in log.getvalue()


def test_end_line_closes_a_terminal_line_only():
    terminal = FakeTerminal()
    status = StatusLine(terminal, clock=Clock())
    status("sent 500/1000 records")
    status.end_line()
    status.end_line()
    assert terminal.getvalue() == "\r\033[Ksent 500/1000 records\n"
    log = io.StringIO()
    status = StatusLine(log, clock=Clock())
    status("sent 500/1000 records")
    status.end_line()
    assert log.getvalue() == "sent 500/1000 records\n"
