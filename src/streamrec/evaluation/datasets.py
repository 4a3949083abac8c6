"""Loaders for the evaluation protocols of ../shared/EVALUATION.md.

The real data sets are read-only and research-licensed: they are read from a data folder
(``--data DIR``, default ``../shared/datasets`` beside the repository) and never copied
into the repository. A missing file raises :class:`DatasetMissing`, whose message names the
path and what SOURCE.txt says should be there; a file that cannot be read as the protocol
needs it (a missing column, a malformed row, no data rows) raises :class:`DatasetInvalid`,
whose message names the file, the line and the field.

* P1 (Taobao UserBehavior head): :func:`load_taobao` returns the event dicts of the
  README schema in protocol order (timestamp, then row order).
* P2 (sessions): :func:`read_session_file` reads any (session, item, time) file;
  :func:`diginetica_split` builds the Diginetica train/test split of EVALUATION.md and
  :func:`write_session_file` writes it in the generic tab-separated shape.
"""

from __future__ import annotations

import csv
import math
import time as _time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.events import EARLIEST_TIMESTAMP, ID_REGEX, MAX_CLOCK_SKEW_SECONDS

# P1 --------------------------------------------------------------------------------------
TAOBAO_DIR = "taobao_userbehavior_head"
TAOBAO_FILE = "events.csv"
# 2017-12-02 00:00 China time (UTC+8): events before it are the warm-up.
TAOBAO_WARMUP_END = 1_512_144_000
# The protocol maps Taobao behaviours onto the product's event types.
TAOBAO_EVENT_TYPES = {"pv": "view", "cart": "add_to_cart", "fav": "add_to_cart", "buy": "purchase"}
TAOBAO_COLUMNS = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")

# P2 --------------------------------------------------------------------------------------
DIGINETICA_DIR = "diginetica_sample"
DIGINETICA_FILE = "train-item-views.csv"
DIGINETICA_COLUMNS = ("session_id", "item_id", "timeframe", "eventdate")
DIGINETICA_TEST_FROM = "2016-05-25"  # sessions dated on or after this day are the test file

SESSION_COLUMNS = ("SessionId", "ItemId", "Time")  # the shape write_session_file produces

_EXPECTATIONS = {
    TAOBAO_DIR: (
        f"{TAOBAO_FILE}: the Taobao UserBehavior head (Alibaba Tianchi dataset 649), 84,287 rows with "
        "header user_id,item_id,category_id,behavior_type,timestamp"
    ),
    DIGINETICA_DIR: (
        f"{DIGINETICA_FILE}: the DIGINETICA (CIKM Cup 2016) sample, 12,391 ';'-separated rows with "
        "header session_id;user_id;item_id;timeframe;eventdate"
    ),
}


class DatasetMissing(FileNotFoundError):
    """A data file the protocol needs is not there (the data sets are not in the repository).

    With ``folder`` (a data set of ``--data DIR``), the message says what should be there
    (citing the folder's SOURCE.txt when it exists) and how to point at another folder;
    without it (a file named on the command line), only the path."""

    def __init__(self, path: Path, folder: str | None = None) -> None:
        message = f"data file not found: {path}"
        if folder is not None:
            expectation = _EXPECTATIONS.get(folder, "")
            where = path.parent / "SOURCE.txt"
            if expectation:
                cited = f" (as described by {where})" if where.is_file() else ""
                message += f"\n  expected{cited}: {expectation}"
            message += (
                "\n  The real data sets live outside the repository (licences forbid copying them in); "
                f"pass --data DIR pointing at the folder that holds {folder}/ (default ../shared/datasets "
                "beside the repository)."
            )
        super().__init__(message)
        self.path = path


class DumpNotWritten(OSError):
    """Predictions (``--dump``) could not be written; the message names the file."""


class DatasetInvalid(ValueError):
    """A data file is there but cannot be read as the protocol needs: a missing column, a
    row with a missing or malformed field, or no data rows. The message names the file and,
    when it is about one row, the line (1 = the header) and the field."""

    def __init__(self, path: Path, problem: str, line: int | None = None) -> None:
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line


@contextmanager
def _csv_rows(
    path: Path, sep: str, needed: Sequence[str]
) -> Iterator[Iterator[tuple[int, dict[str | None, Any]]]]:
    """Open ``path`` as a CSV file with a header holding the ``needed`` columns; yield its
    data rows as (line, row) pairs (line 1 is the header). A missing column, an empty file,
    bytes that are not text or a row the csv module rejects raise DatasetInvalid."""
    try:
        opened = path.open(newline="")
    except OSError as error:
        raise DatasetInvalid(path, f"it cannot be read: {error.strerror or error}") from None
    with opened as handle:
        reader = csv.DictReader(handle, delimiter=sep)
        try:
            fieldnames = reader.fieldnames
        except (csv.Error, UnicodeDecodeError) as error:
            raise DatasetInvalid(path, f"the header cannot be read: {error}", 1) from None
        if fieldnames is None:
            raise DatasetInvalid(path, "the file is empty (no header)")
        missing = [column for column in needed if column not in fieldnames]
        if missing:
            raise DatasetInvalid(
                path,
                f"no column {', '.join(map(repr, missing))} with separator {sep!r}; "
                f"header is {list(fieldnames)}",
                1,
            )

        def rows() -> Iterator[tuple[int, dict[str | None, Any]]]:
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as error:
                    raise DatasetInvalid(path, f"not a valid CSV row: {error}", reader.line_num) from None
                except UnicodeDecodeError as error:
                    raise DatasetInvalid(path, f"not text after line {reader.line_num}: {error}") from None
                yield reader.line_num, row

        yield rows()


def _field(path: Path, line: int, row: dict[str | None, Any], column: str) -> str:
    """The row's ``column``, stripped; DatasetInvalid when the row is too short or it is empty."""
    value = row.get(column)
    if value is None:
        raise DatasetInvalid(path, f"field {column!r} missing (the row has too few fields)", line)
    value = value.strip()
    if not value:
        raise DatasetInvalid(path, f"field {column!r} is empty", line)
    return str(value)


def _parsed[T](
    path: Path, line: int, row: dict[str | None, Any], column: str, parse: Callable[[str], T], kind: str
) -> tuple[str, T]:
    """The row's ``column`` (stripped) and its value by ``parse``; DatasetInvalid saying it
    is not ``kind`` (e.g. "a whole number of epoch seconds") when ``parse`` refuses it."""
    text = _field(path, line, row, column)
    try:
        return text, parse(text)
    except ValueError:
        raise DatasetInvalid(path, f"field {column!r} is {text!r}, not {kind}", line) from None


def _entity_id(path: Path, line: int, row: dict[str | None, Any], column: str) -> str:
    """The row's ``column`` as a user/item id the engine's event schema accepts."""
    value = _field(path, line, row, column)
    if not ID_REGEX.fullmatch(value):
        raise DatasetInvalid(
            path,
            f"field {column!r} is {value[:40]!r}, not an id the engine accepts (1-128 ASCII letters, digits "
            "and . _ : @ -, starting with a letter or digit)",
            line,
        )
    return value


def _event_time(path: Path, line: int, column: str, text: str, seconds: float) -> float:
    """``seconds`` when the engine's event schema accepts it as a timestamp."""
    if seconds < EARLIEST_TIMESTAMP:
        problem = "before 2000-01-01"
    elif seconds > _time.time() + MAX_CLOCK_SKEW_SECONDS:
        problem = "more than a day in the future"
    else:
        return seconds
    raise DatasetInvalid(
        path, f"field {column!r} is {text!r}, {problem}: the engine rejects such events", line
    )


def default_data_dir() -> Path:
    """``../shared/datasets`` relative to the repository root (the checkout holding
    pyproject.toml), else relative to the current directory."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            return (parent / ".." / "shared" / "datasets").resolve()
    return (Path.cwd() / ".." / "shared" / "datasets").resolve()


def _require(path: Path, folder: str) -> Path:
    if not path.is_file():
        raise DatasetMissing(path, folder)
    return path


# P1: Taobao --------------------------------------------------------------------------------
@dataclass
class StreamData:
    """An event stream in protocol order, with integer codes for fast bookkeeping.

    ``events[n]`` is the README-schema dict of the n-th event; ``users[n]``/``items[n]`` are
    codes into ``user_ids``/``item_ids``; ``warmup`` is the number of warm-up events (they
    come first).
    """

    events: list[dict[str, Any]]
    users: np.ndarray  # (n,) int64
    items: np.ndarray  # (n,) int64
    timestamps: np.ndarray  # (n,) float64
    user_ids: list[str]
    item_ids: list[str]
    warmup: int
    warmup_end: float

    @property
    def n_items(self) -> int:
        """Distinct items in the whole file (coverage@K's denominator)."""
        return len(self.item_ids)


def stream_from_events(events: list[dict[str, Any]], warmup_end: float) -> StreamData:
    """Order events by (timestamp, given order) and code them; used by the loaders and tests."""
    order = sorted(range(len(events)), key=lambda n: (float(events[n]["timestamp"]), n))
    ordered = [events[n] for n in order]
    user_codes: dict[str, int] = {}
    item_codes: dict[str, int] = {}
    users = np.fromiter((user_codes.setdefault(e["user_id"], len(user_codes)) for e in ordered), np.int64)
    items = np.fromiter((item_codes.setdefault(e["item_id"], len(item_codes)) for e in ordered), np.int64)
    timestamps = np.fromiter((float(e["timestamp"]) for e in ordered), np.float64, len(ordered))
    warmup = int(np.searchsorted(timestamps, warmup_end, side="left"))
    return StreamData(
        events=ordered,
        users=users,
        items=items,
        timestamps=timestamps,
        user_ids=list(user_codes),
        item_ids=list(item_codes),
        warmup=warmup,
        warmup_end=warmup_end,
    )


def load_taobao(data_dir: Path, warmup_end: float = TAOBAO_WARMUP_END) -> StreamData:
    """P1's stream: every row of events.csv as an event dict, sorted by (timestamp, row).

    ``event_id`` is the 0-based data row number; pv -> view, cart/fav -> add_to_cart,
    buy -> purchase; ``category`` is the category_id.
    """
    path = _require(Path(data_dir) / TAOBAO_DIR / TAOBAO_FILE, TAOBAO_DIR)
    events: list[dict[str, Any]] = []
    with _csv_rows(path, ",", TAOBAO_COLUMNS) as rows:
        for row_number, (line, row) in enumerate(rows):
            behaviour = _field(path, line, row, "behavior_type")
            if behaviour not in TAOBAO_EVENT_TYPES:
                raise DatasetInvalid(
                    path,
                    f"field 'behavior_type' is {behaviour!r}, not one of {', '.join(TAOBAO_EVENT_TYPES)}",
                    line,
                )
            stamp, timestamp = _parsed(path, line, row, "timestamp", int, "a whole number of epoch seconds")
            _event_time(path, line, "timestamp", stamp, timestamp)
            events.append(
                {
                    "event_id": str(row_number),
                    "event_type": TAOBAO_EVENT_TYPES[behaviour],
                    "user_id": _entity_id(path, line, row, "user_id"),
                    "item_id": _entity_id(path, line, row, "item_id"),
                    "timestamp": timestamp,
                    "category": _field(path, line, row, "category_id"),
                }
            )
    if not events:
        raise DatasetInvalid(path, "no data rows (only a header)")
    return stream_from_events(events, warmup_end)


# P2: session files ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Click:
    session_id: str
    item_id: str
    time: float
    row: int  # position in its file (ties in time keep file order)


def parse_time(text: str) -> float:
    """Epoch seconds from a number, an ISO-8601 date-time (naive = UTC) or a date."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(value):
            return value
        raise ValueError(f"time {text!r} is not finite")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"time {text!r} is neither epoch seconds nor ISO-8601") from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def read_session_file(path: Path, sep: str, session_col: str, item_col: str, time_col: str) -> list[Click]:
    """Rows of a (session, item, time) file with a header; other columns are ignored.

    A missing file raises :class:`DatasetMissing`; a missing column, a row without its
    session, item or time (or with a time that is not one) or a file without data rows
    raises :class:`DatasetInvalid`."""
    path = Path(path)
    if not path.is_file():
        raise DatasetMissing(path)
    clicks: list[Click] = []
    with _csv_rows(path, sep, (session_col, item_col, time_col)) as rows:
        for row_number, (line, row) in enumerate(rows):
            session = _entity_id(path, line, row, session_col)
            item = _entity_id(path, line, row, item_col)
            text = _field(path, line, row, time_col)
            try:
                time = parse_time(text)
            except ValueError as error:
                raise DatasetInvalid(path, f"field {time_col!r}: {error}", line) from None
            clicks.append(Click(session, item, _event_time(path, line, time_col, text, time), row_number))
    if not clicks:
        raise DatasetInvalid(path, "no data rows (only a header)")
    return clicks


def sessions_in_order(clicks: list[Click]) -> list[tuple[str, list[Click]]]:
    """Group clicks by session; each session's clicks by (time, row); sessions by their
    first click (time, row)."""
    grouped: dict[str, list[Click]] = defaultdict(list)
    for click in clicks:
        grouped[click.session_id].append(click)
    sessions = [(sid, sorted(cs, key=lambda c: (c.time, c.row))) for sid, cs in grouped.items()]
    sessions.sort(key=lambda pair: (pair[1][0].time, pair[1][0].row))
    return sessions


def clicks_in_time_order(clicks: list[Click]) -> list[Click]:
    return sorted(clicks, key=lambda c: (c.time, c.row))


def _midnight_utc(day: str) -> float:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC).timestamp()


def diginetica_split(data_dir: Path) -> tuple[list[Click], list[Click]]:
    """(train, test) clicks of the Diginetica sample, split as EVALUATION.md P2 says.

    A session's date is its earliest ``eventdate`` (2 sessions of the sample span two days);
    sessions dated on or after 2016-05-25 are the test file. Times are synthesized as
    that date's midnight UTC + timeframe / 1000, so they increase with ``timeframe`` inside
    a session (``timeframe`` is the ms offset that orders a session's events).
    """
    path = _require(Path(data_dir) / DIGINETICA_DIR / DIGINETICA_FILE, DIGINETICA_DIR)
    # (session, item, day, timeframe) of every row, checked as read.
    rows: list[tuple[str, str, str, int]] = []
    with _csv_rows(path, ";", DIGINETICA_COLUMNS) as lines:
        for line, row in lines:
            text, day = _parsed(
                path, line, row, "eventdate", lambda t: date.fromisoformat(t).isoformat(), "a YYYY-MM-DD date"
            )
            _event_time(path, line, "eventdate", text, _midnight_utc(day))
            _, timeframe = _parsed(path, line, row, "timeframe", int, "a whole number of milliseconds")
            session, item = _entity_id(path, line, row, "session_id"), _entity_id(path, line, row, "item_id")
            rows.append((session, item, day, timeframe))
    if not rows:
        raise DatasetInvalid(path, "no data rows (only a header)")
    session_day: dict[str, str] = {}
    for sid, _, day, _ in rows:
        session_day[sid] = min(session_day.get(sid, day), day)
    train: list[Click] = []
    test: list[Click] = []
    for row_number, (sid, item, _, timeframe) in enumerate(rows):
        day = session_day[sid]
        click = Click(sid, item, _midnight_utc(day) + timeframe / 1000.0, row_number)
        (test if day >= DIGINETICA_TEST_FROM else train).append(click)
    return train, test


def write_session_file(clicks: list[Click], path: Path) -> None:
    """Write clicks as tab-separated ``SessionId ItemId Time`` (time in epoch seconds), in
    (time, row) order."""
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(SESSION_COLUMNS)
        for click in clicks_in_time_order(clicks):
            writer.writerow([click.session_id, click.item_id, repr(click.time)])
