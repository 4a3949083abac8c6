"""The README and the pages of docs/ link to each other by relative paths and heading
anchors: every such link must lead to a file that exists and, with an anchor, to a heading
of that file (GitHub's anchors: lowercase, punctuation dropped, spaces as hyphens)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]+\]\(([^)\s]+)\)")


def _prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchor_of(heading: str) -> str:
    """GitHub's anchor of a heading's text: 'Quality (P4)' -> 'quality-p4'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor_of(m.group(1)) for line in _prose_lines(path) if (m := re.match(r"#{1,6} (.+)$", line))}


def test_anchor_of_follows_githubs_rule() -> None:
    assert anchor_of('Cross-sell ("frequently bought together")') == "cross-sell-frequently-bought-together"
    assert anchor_of("Content similarity's quality, measured") == "content-similaritys-quality-measured"


def test_the_docs_pages_exist_and_the_readme_links_each() -> None:
    readme_targets = {target.partition("#")[0] for target in LINK.findall((ROOT / "README.md").read_text())}
    pages = {f"docs/{page.name}" for page in PAGES[1:]}
    assert len(pages) >= 8
    assert pages <= readme_targets, f"pages the README does not link: {sorted(pages - readme_targets)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    broken = []
    for line in _prose_lines(page):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not checked here
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{target}: no such file")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.name}: {broken}"
