"""Exit statuses of a command stopped from outside, and SIGTERM as an exception."""

from __future__ import annotations

import sys

from streamrec.cli import progress

# Exit statuses of a command stopped from outside, as a shell reports them (128 + signal).
INTERRUPTED_STATUS = 130  # Ctrl-C (SIGINT)
BROKEN_PIPE_STATUS = 141  # the reader of its output went away (SIGPIPE), e.g. `| head`
TERMINATED_STATUS = 143  # SIGTERM (timeout, systemd, a CI cancel)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be: every command's interruption path runs."""


def said_stopped(interruption: KeyboardInterrupt, detail: str = "") -> int:
    """Say on stderr what stopped the command (Ctrl-C, or SIGTERM as :class:`Terminated`),
    then ``detail``, on a line of its own; the exit status to end with."""
    how, status = (
        ("terminated", TERMINATED_STATUS)
        if isinstance(interruption, Terminated)
        else ("interrupted", INTERRUPTED_STATUS)
    )
    progress.status.end_line()
    print(f"streamrec: {how}{detail}", file=sys.stderr)
    return status
