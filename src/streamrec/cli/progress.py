"""Progress of the commands' long work on stderr: one status line, rewritten in place on a
terminal, plain lines at most every few seconds elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO


class StatusLine:
    """Progress lines on stderr (or ``stream``). On a terminal each line is rewritten in
    place as often as it comes. Elsewhere (``make run > log``, CI) rewrites would fill the
    file with control sequences, so lines are plain, at most one every ``every`` seconds,
    and every final line (``done=True``) is written."""

    def __init__(
        self, stream: TextIO | None = None, every: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream = stream
        self.every = every
        self.clock = clock
        self._last_plain: float | None = None  # None: the next progress line is written at once
        self._open = False  # a terminal line awaits its rewrite

    @property
    def stream(self) -> TextIO:
        # Looked up at each call: pytest's capsys replaces sys.stderr per test.
        return self._stream or sys.stderr

    def __call__(self, text: str, *, done: bool = False) -> None:
        stream = self.stream
        if stream.isatty():
            stream.write("\r\033[K" + text + ("\n" if done else ""))
            self._open = not done
        else:
            now = self.clock()
            if not done and self._last_plain is not None and now - self._last_plain < self.every:
                return
            stream.write(text + "\n")
            # After a final line the next phase's first progress line shows at once.
            self._last_plain = None if done else now
        stream.flush()

    def end_line(self) -> None:
        """End a terminal line still being rewritten, so that what follows starts on its own line."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


status = StatusLine()


@contextmanager
def progress_lines(template: str) -> Iterator[Callable[..., None]]:
    """A progress callback showing ``template.format(*counts)`` on the status line; on exit
    its last line is written whole, if one was shown, so that a log keeps the final count
    (progress lines in a log come at most every 5 s) and what follows starts a new line."""
    last: list[tuple[Any, ...]] = []

    def show(*counts: Any) -> None:
        if last and last[0] == counts:
            return  # nothing new to show
        last[:] = [counts]
        status(template.format(*counts))

    try:
        yield show
    finally:
        if last:
            status(template.format(*last[0]), done=True)
