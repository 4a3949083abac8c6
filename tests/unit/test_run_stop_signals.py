"""`streamrec run`'s signal handler: the first signal stops the stack, a later one is told
the stop goes on, and one that comes before the stop is announced (``kill -TERM`` of `make
run`'s process group, which make passes on) adds no line ahead of it."""

from __future__ import annotations

import signal

import pytest

from streamrec.cli.run import StopSignals

STILL = "still stopping (letting invocations in flight finish)..."


def test_the_first_signal_stops_the_stack():
    handler = StopSignals()
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGINT, None)
    assert handler.stopping


def test_a_signal_after_the_announcement_is_told_the_stop_goes_on(capsys):
    handler = StopSignals()
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGINT, None)
    handler.announce("stopping (letting invocations in flight finish)...")
    handler(signal.SIGINT, None)  # no second KeyboardInterrupt: the stop is not cut short
    handler(signal.SIGTERM, None)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["stopping (letting invocations in flight finish)...", STILL, STILL]


def test_the_same_stop_asked_twice_before_its_announcement_adds_no_line(capsys):
    handler = StopSignals()
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGTERM, None)
    handler(signal.SIGTERM, None)  # make's copy of the signal
    handler.announce("stopping (letting invocations in flight finish)...")
    assert capsys.readouterr().err.splitlines() == ["stopping (letting invocations in flight finish)..."]
