"""docs/deploying.md's table of template parameters is template.yaml's: every parameter, its
default and its description, in the template's order. When a parameter changes, print the
table again and paste it over the old one:

    .venv/bin/python -m tests.unit.test_docs_parameters
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamrec.local.template import load_raw_template

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deploying.md"
HEADER = "| parameter | default | what it sets |"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _default(parameter: dict[str, Any]) -> str:
    default = str(parameter.get("Default", ""))
    return f"`{default}`" if default else "(empty)"


def _description(parameter: dict[str, Any]) -> str:
    text = parameter.get("Description", "")
    allowed = parameter.get("AllowedValues")
    if allowed:
        text += f" One of: {', '.join(f'`{value}`' for value in allowed)}."
    return _cell(text)


def parameter_table() -> str:
    """The markdown table of template.yaml's parameters (name, default, description)."""
    parameters = load_raw_template(ROOT / "template.yaml")["Parameters"]
    rows = [HEADER, "|---|---|---|"]
    rows += [f"| `{name}` | {_default(p)} | {_description(p)} |" for name, p in parameters.items()]
    return "\n".join(rows)


def _documented_table() -> str:
    lines = DOC.read_text().splitlines()
    assert HEADER in lines, f"docs/deploying.md has no line {HEADER!r} to start the parameter table"
    start = lines.index(HEADER)
    end = next((n for n in range(start, len(lines)) if not lines[n].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def test_the_parameter_table_is_the_templates() -> None:
    expected = parameter_table()
    assert expected.count("\n") >= 20  # a header, its rule and every parameter
    assert _documented_table() == expected, (
        "docs/deploying.md's parameter table differs from template.yaml: "
        "print it with `.venv/bin/python -m tests.unit.test_docs_parameters`"
    )


if __name__ == "__main__":
    print(parameter_table())
