"""The category's schema pattern (what a client generating requests from docs/openapi.json
reads) refuses exactly the categories the validator refuses."""

import json
import re
import unicodedata

import pytest
from pydantic import TypeAdapter, ValidationError

from streamrec.events import FORMAT_CHARACTER_RANGES, CategoryName

CATEGORY = TypeAdapter(CategoryName)
# As a schema reader gets it: through the JSON text of the document.
PATTERN = re.compile(json.loads(json.dumps(CATEGORY.json_schema()))["pattern"])


def _accepted(value: str) -> bool:
    try:
        CATEGORY.validate_python(value)
    except ValidationError:
        return False
    return True


def test_format_character_ranges_are_unicodes_format_characters():
    listed = {code for start, end in FORMAT_CHARACTER_RANGES for code in range(start, end + 1)}
    format_characters = {code for code in range(0x110000) if unicodedata.category(chr(code)) == "Cf"}
    assert listed == format_characters


def _characters() -> list[str]:
    """Every format, control and space character, and a spread of the others (all planes)."""
    chosen = {
        chr(code)
        for code in range(0x110000)
        if unicodedata.category(chr(code)) in ("Cf", "Cc", "Zs", "Zl", "Zp") or chr(code).isspace()
    }
    chosen.update(chr(code) for code in range(0, 0x110000, 97) if not 0xD800 <= code <= 0xDFFF)
    return sorted(chosen)


@pytest.mark.parametrize("around", ["{}", "a{}", "{}{}", " {} "])
def test_pattern_and_validator_agree_but_on_format_characters_past_the_bmp(around):
    disagree = [
        f"U+{ord(character):04X}"
        for character in _characters()
        if bool(PATTERN.fullmatch(text := around.format(character, character))) != _accepted(text)
    ]
    # The pattern leaves out the format characters beyond U+FFFF (a JavaScript RegExp
    # without the u flag cannot compile them in a class): alone, the schema takes them and
    # the validator refuses them.
    past_the_bmp = [
        f"U+{ord(character):04X}"
        for character in _characters()
        if ord(character) > 0xFFFF and unicodedata.category(character) == "Cf"
    ]
    assert disagree == ([] if "a" in around else past_the_bmp)


def test_the_pattern_holds_only_escapes_of_the_bmp():
    # So that a RegExp compiles it with or without the u flag (no surrogate pair in a class).
    assert all(ord(character) < 0x80 for character in PATTERN.pattern)


def test_a_category_of_format_characters_alone_is_refused_by_both():
    # U+180E (Mongolian vowel separator) and U+FFF9 (interlinear annotation anchor) were let
    # through by the pattern, refused by the validator.
    for text in ("\u180e", "\ufff9", "\u200b\u061c"):
        assert not PATTERN.fullmatch(text)
        assert not _accepted(text)
    assert PATTERN.fullmatch("tents\u200b") and _accepted("tents\u200b")
