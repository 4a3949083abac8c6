"""Exit statuses of a command stopped from outside, and SIGTERM as an exception."""

from __future__ import annotations

# Exit statuses of a command stopped from outside, as a shell reports them (128 + signal).
INTERRUPTED_STATUS = 130  # Ctrl-C (SIGINT)
BROKEN_PIPE_STATUS = 141  # the reader of its output went away (SIGPIPE), e.g. `| head`
TERMINATED_STATUS = 143  # SIGTERM (timeout, systemd, a CI cancel)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be: every command's interruption path runs."""


def how_stopped(interruption: KeyboardInterrupt) -> tuple[str, int]:
    """How to say what stopped a command, and its exit status: SIGTERM or Ctrl-C."""
    if isinstance(interruption, Terminated):
        return "terminated", TERMINATED_STATUS
    return "interrupted", INTERRUPTED_STATUS
