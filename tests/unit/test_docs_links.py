"""The README and the pages of docs/ link to each other by relative paths and heading
anchors: every such link must lead to a file that exists and, with an anchor, to a heading
of that file (GitHub's anchors: lowercase, punctuation dropped, spaces as hyphens, a
repeated heading's anchor suffixed -1, -2, ...)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~)")
# [text](target) or [text](<target> "title"), across a line break too; and [ref]: target.
INLINE_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)


def prose(text: str) -> str:
    """The text outside fenced code blocks and HTML comments, inline code spans blanked
    (a link shown as an example in code is not a link)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    joined = re.sub(r"<!--.*?-->", "", "\n".join(lines), flags=re.S)
    return re.sub(r"`[^`\n]*`", "code", joined)


def anchor_of(heading: str) -> str:
    """GitHub's anchor of a heading's text: 'Quality (P4)' -> 'quality-p4'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"\s#+\s*$", "", text)  # closing hashes
    text = re.sub(r"(\*+|\b_+|_+\b)", "", text)  # emphasis marks
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    found: set[str] = set()
    for line in lines:
        if match := re.match(r"#{1,6} (.+)$", line):
            anchor = base = anchor_of(match.group(1))
            repeat = 0
            while anchor in found:
                repeat += 1
                anchor = f"{base}-{repeat}"
            found.add(anchor)
    return found


def links(text: str) -> list[str]:
    body = prose(text)
    return INLINE_LINK.findall(body) + REFERENCE.findall(body)


def test_anchors_and_links_are_read_as_github_renders_them(tmp_path: Path) -> None:
    assert anchor_of('Cross-sell ("frequently bought together")') == "cross-sell-frequently-bought-together"
    assert anchor_of("Content similarity's quality, measured") == "content-similaritys-quality-measured"
    assert anchor_of("The user's own items (`seen`)") == "the-users-own-items-seen"
    assert anchor_of("An _emphasised_ [linked](x.md) heading ##") == "an-emphasised-linked-heading"
    page = tmp_path / "page.md"
    page.write_text("# Notes\n\n## Notes\n\n~~~\n# not a heading\n~~~\n")
    assert anchors(page) == {"notes", "notes-1"}
    text = (
        'See [the\nbroken](a.md#b), [x](c.md "title"), [`a[0]`](d.md), [e][r] and `[code](f.md)`.\n'
        "<!-- [hidden](g.md) -->\n\n[r]: h.md\n"
    )
    assert links(text) == ["a.md#b", "c.md", "d.md", "h.md"]


def test_the_docs_pages_exist_and_the_readme_links_each() -> None:
    readme_targets = {target.partition("#")[0] for target in links((ROOT / "README.md").read_text())}
    pages = {f"docs/{page.name}" for page in PAGES[1:]}
    assert len(pages) >= 8
    assert pages <= readme_targets, f"pages the README does not link: {sorted(pages - readme_targets)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    broken = []
    for target in links(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked here
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.name}: {broken}"
