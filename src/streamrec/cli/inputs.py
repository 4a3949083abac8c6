"""Reading the files the load commands take: JSON lines, a JSON array or one JSON object,
with every bad record named by its place."""

from __future__ import annotations

import base64
import codecs
import gzip
import itertools
import json
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrec.cli import progress
from streamrec.cli.exits import said_stopped
from streamrec.cli.wording import first_lines
from streamrec.kinesis_put import record_data


def _text_lines(text: str) -> Iterator[tuple[int, str]]:
    """(number, line) of ``text``'s lines, one at a time (a backfill's file holds millions),
    split at newlines only: unlike str.splitlines, not inside a JSON string holding a raw
    U+2028, U+2029 or U+0085, which JSON allows."""
    start, number = 0, 1
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        yield number, text[start:end]
        start, number = end + 1, number + 1


def json_line_values(text: str) -> Iterator[tuple[int, Any, str]]:
    """(line, value, "") of each non-blank line that decodes and (line, None, problem) of
    each that does not, one at a time: one bad line must not hide the others."""
    from streamrec.events import loads

    for number, line in _text_lines(text):
        if line.strip():
            try:
                yield number, loads(line), ""
            except ValueError as error:
                yield number, None, f"not valid JSON: {json_problem(error)}"


def decode_json_lines(text: str) -> tuple[list[tuple[int, Any]], list[tuple[int, str]]]:
    """(line, value) of each non-blank line that decodes, and (line, problem) of each that
    does not."""
    records, problems = [], []
    for number, value, problem in json_line_values(text):
        if problem:
            problems.append((number, problem))
        else:
            records.append((number, value))
    return records, problems


def json_problem(error: ValueError) -> str:
    """What json.loads refused: a syntax error, an object giving a name twice (as the ingest
    refuses it), or an integer of thousands of digits (which it refuses with a plain
    ValueError: Python's int_max_str_digits)."""
    from streamrec.events import DuplicateKey

    if isinstance(error, json.JSONDecodeError):
        return error.msg
    if isinstance(error, DuplicateKey):
        return str(error)
    return "a number of more than 4,300 digits"


GZIP_MAGIC = b"\x1f\x8b"


def check_input_file(path: Path) -> None:
    """SystemExit unless ``path`` names an existing file."""
    if path.is_dir():
        raise SystemExit(f"error: {path} is a directory: name a file")
    if not path.exists():  # a pipe (/dev/stdin, <(...)) is read like a file
        raise SystemExit(f"error: {path} not found")


def read_text(path: Path, verb: str = "loaded") -> str:
    """The UTF-8 text of an input file, gzip-compressed or not (a leading byte-order mark is
    dropped); SystemExit ("nothing <verb>") if it cannot be read."""
    check_input_file(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SystemExit(f"error: nothing {verb}; cannot read {path}: {error.strerror or error}") from None
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise SystemExit(
                f"error: nothing {verb}; {path} is not one whole gzip file (cut short, damaged, or "
                f"followed by other bytes): {error}"
            ) from None
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: bom + error.start].count(b"\n") + 1
        raise SystemExit(
            f"error: nothing {verb}; {path} line {line} is not UTF-8 text "
            f"(byte 0x{data[bom + error.start]:02x} at byte {bom + error.start}); save the file as UTF-8"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as reading in text mode does


def is_json_lines(path: Path) -> bool:
    """Whether ``path`` is named as JSON lines: FILE.jsonl or FILE.jsonl.gz."""
    name = path.name.lower()
    return name.endswith(".jsonl") or name.endswith(".jsonl.gz")


def refuse_an_array_over_lines(path: Path, text: str, what: str, verb: str = "loaded") -> None:
    """SystemExit when a .jsonl file holds one JSON array written over several lines (its
    lines alone are not records): the file is misnamed, and one message says so instead of
    an error per line."""
    stripped = text.strip()
    if not stripped.startswith("[") or "\n" not in stripped:
        return
    try:
        whole = json.loads(stripped)
    except ValueError:
        return
    if isinstance(whole, list):
        raise SystemExit(
            f"error: nothing {verb}; {path} holds one JSON array over several lines, and a .jsonl "
            f"file is read one {what} per line: name it .json, or write one {what} per line"
        )


@dataclass(frozen=True)
class RecordPlaces:
    """Names a record of an input file by its position, as :func:`checked_records` counts
    them: in JSON lines (or one object) the position is the line number; in a JSON array it
    is the element's number, shown with its line unless the array is on one line (where
    every record is on line 1). An array's syntax error has the position after its last
    decoded record and is named by its line, after that record."""

    array_lines: tuple[int, ...] | None = None  # each element's line, then the error's
    decoded: int = 0  # elements decoded
    one_line: bool = False

    def __call__(self, position: int) -> str:
        if self.array_lines is None:
            return f"line {position}"
        line = self.array_lines[position - 1]
        if position > self.decoded:
            return f"line {line}, after record {position - 1}" if position > 1 else f"line {line}"
        return f"record {position}" if self.one_line else f"record {position} (line {line})"


def _catalog_records(text: str) -> tuple[list[tuple[int, Any]], list[tuple[int, str]], RecordPlaces]:
    """(position, value) of each record of a file not named as JSON lines: JSON lines all
    the same, a JSON array or one JSON object spanning several lines, (position, problem) of
    each undecodable part, and how positions are named. An array is read up to its first
    syntax error only: past it, where the next record starts is a guess."""
    from streamrec.events import loads

    stripped = text.lstrip()
    if not stripped.startswith("["):
        records, problems = decode_json_lines(text)
        by_line = RecordPlaces()
        if not problems or not stripped.startswith("{"):
            return records, problems, by_line
        # Lines that are not JSON alone: one object over several lines (a nested object may
        # sit on a line of its own), unless it does not decode whole and some line is an
        # object alone or the first line is already broken (then each line is named).
        line = text.count("\n", 0, len(text) - len(stripped)) + 1
        lines_of_objects = any(isinstance(value, dict) for _, value in records)
        try:
            return [(line, loads(text))], [], by_line
        except json.JSONDecodeError as error:
            if error.lineno == line or lines_of_objects:
                return records, problems, by_line
            return [], [(error.lineno, f"not valid JSON: {error.msg}")], by_line
        except ValueError as error:
            if lines_of_objects:
                return records, problems, by_line
            return [], [(line, f"not valid JSON: {json_problem(error)}")], by_line
    return _json_array(text)


def _json_array(text: str) -> tuple[list[tuple[int, Any]], list[tuple[int, str]], RecordPlaces]:
    """(position, value) of each element of the JSON array ``text`` holds (1 for the first),
    read strictly (one comma between elements, none after the last, nothing but white space
    after the array), up to its first syntax error: past it, where the next record starts is
    a guess. Then (position, problem) of that error and how positions are named."""
    from streamrec.events import unique_keys

    decoder = json.JSONDecoder(object_pairs_hook=unique_keys)
    records: list[tuple[int, Any]] = []
    lines: list[int] = []  # each record's line
    one_line = "\n" not in text.strip()

    counted = [0, 1]  # the offset asked last and its line

    def line_at(offset: int) -> int:
        # The offsets asked grow: count the newlines since the last one only (counting from
        # the start for each record took minutes on an array of 80,000 events).
        start, line = counted if offset >= counted[0] else (0, 1)
        counted[:] = [offset, line + text.count("\n", start, offset)]
        return counted[1]

    def skip_space(offset: int) -> int:
        while offset < len(text) and text[offset] in " \t\r\n":
            offset += 1
        return offset

    def done(
        problem: tuple[int, str] | None = None,
    ) -> tuple[list[tuple[int, Any]], list[tuple[int, str]], RecordPlaces]:
        if problem is None:
            return records, [], RecordPlaces(tuple(lines), len(records), one_line)
        line, what = problem
        places = RecordPlaces((*lines, line), len(records), one_line)
        return records, [(len(records) + 1, what)], places

    def stop(offset: int, what: str) -> tuple[list[tuple[int, Any]], list[tuple[int, str]], RecordPlaces]:
        return done((line_at(offset), what))

    def closed(offset: int) -> tuple[list[tuple[int, Any]], list[tuple[int, str]], RecordPlaces]:
        end = skip_space(offset)  # just past the closing ]
        if end < len(text):  # e.g. two files concatenated: the second would be lost
            return stop(end, "text after the array's closing ] (one array per file)")
        return done()

    position = skip_space(text.index("[") + 1)
    if text.startswith("]", position):
        return closed(position + 1)
    while position < len(text):
        start = position
        try:
            value, position = decoder.raw_decode(text, position)
        except ValueError as error:
            reason = f"not valid JSON: {json_problem(error)} (the rest of the array is not read)"
            return done((getattr(error, "lineno", line_at(start)), reason))
        lines.append(line_at(start))
        records.append((len(lines), value))
        position = skip_space(position)
        if text.startswith("]", position):
            return closed(position + 1)
        if position >= len(text):
            break
        if text[position] != ",":
            return stop(
                position,
                "not valid JSON: a comma or ] expected after a record (the rest of the array is not read)",
            )
        position = skip_space(position + 1)
        if text.startswith("]", position):
            return stop(position, "not valid JSON: a comma before the closing ] (remove it)")
    return stop(position, "the array is not closed")


def _oversized(data: bytes) -> str:
    """Why the ingest would dead-letter ``data`` for its size ("" if it would not)."""
    from streamrec.stream import MAX_RECORD_BYTES, record_size

    size = record_size(base64.b64encode(data))
    if size <= MAX_RECORD_BYTES:
        return ""
    return (
        f"record of {size} bytes is over the ingest's {MAX_RECORD_BYTES}-byte limit "
        "(it would be dead-lettered)"
    )


def _decoded_records(text: str, json_lines: bool) -> tuple[Iterator[tuple[int, Any, str]], RecordPlaces]:
    """(position, value, "") of each record of a file's text and (position, None, problem)
    of each undecodable part, and how positions are named: one at a time for JSON lines,
    else as :func:`_catalog_records` reads the whole text (a JSON array, or one object over
    several lines)."""
    if json_lines:
        return json_line_values(text), RecordPlaces()
    records, problems, places = _catalog_records(text)
    decoded = ((position, value, "") for position, value in records)
    return itertools.chain(decoded, ((position, None, problem) for position, problem in problems)), places


@contextmanager
def checking(path: Path, verb: str) -> Iterator[None]:
    """Read and check ``path`` in this block, before anything is sent: a Ctrl-C (or SIGTERM)
    there says that nothing was ("nothing <verb>"), which a long check leaves in doubt."""
    try:
        yield
    except KeyboardInterrupt as interruption:
        raise SystemExit(said_stopped(interruption, f" while checking {path}; nothing {verb}")) from None


# Input files past this many characters (some 40,000 events) show their checking's progress.
LARGE_INPUT_CHARS = 4_000_000


def checked_records[T](
    path: Path,
    noun: str,
    verb: str,
    check: Callable[[Any], tuple[Any, dict[str, Any]]],
    keep: Callable[[int, Any, dict[str, Any], bytes], T],
) -> tuple[list[T], RecordPlaces]:
    """What ``keep(position, parsed, sent, data)`` makes of every record of ``path`` (JSON
    lines, a JSON array or one JSON object), and how its positions are named (line numbers,
    or an array's record numbers: :class:`RecordPlaces`): ``check`` parses a decoded record
    (raising InvalidEvent with the reason) and returns it with the record to send, whose
    ``data`` (as put on the stream) must also fit the ingest's size limit. Records are read
    one at a time from JSON lines, so ``keep`` decides what of them stays in memory.
    SystemExit ("nothing <verb>") naming every bad record, or when the file holds none."""
    from streamrec.events import InvalidEvent

    text, json_lines = read_text(path, verb), is_json_lines(path)
    if json_lines:
        refuse_an_array_over_lines(path, text, noun, verb)
    valid: list[T] = []
    problems: list[tuple[int, str]] = []
    decoded, places = _decoded_records(text, json_lines)
    shown = len(text) > LARGE_INPUT_CHARS  # checking 100,000 events takes some 4 s: say so
    count = 0
    for line, record, undecodable in decoded:
        count += 1
        if shown and count % 10_000 == 0:
            progress.status(f"checking {path}: {count:,} {noun}s read, nothing {verb} yet")
        if undecodable:
            problems.append((line, undecodable))
            continue
        try:
            parsed, sent = check(record)
        except InvalidEvent as error:
            problems.append((line, error.reason))
            continue
        data = record_data(sent)
        too_big = _oversized(data)
        if too_big:
            problems.append((line, too_big))
            continue
        if not problems:  # after the first problem nothing is sent: only problems are gathered
            valid.append(keep(line, parsed, sent, data))
    if shown:
        progress.status(f"checked {path}: {count:,} {noun}s", done=True)
    # In file order (a syntax error in an array comes after the records before it).
    problems.sort(key=lambda problem: problem[0])
    if problems:
        named = [f"{path} {places(position)}: {reason}" for position, reason in problems]
        raise SystemExit(
            f"error: nothing {verb}; {len(problems)} invalid {noun}(s):\n" + first_lines(named, 50)
        )
    if not valid:
        raise SystemExit(f"error: nothing {verb}; {path} holds no {noun}s")
    return valid, places
