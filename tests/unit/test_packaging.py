"""The package list in pyproject.toml names every package of src/ (an editable install
finds a forgotten one anyway; a wheel would leave it out)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_under_src_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT / "src").parts) for init in (ROOT / "src").rglob("__init__.py")
    }
    assert on_disk - listed == set()
    assert "streamrec.bench" in on_disk


def _pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements or constraints file, by normalised name."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, separator, version = line.partition("==")
            assert separator, f"{path.name}: {line!r} is not pinned with =="
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_lambda_layers_pin_the_versions_the_tests_ran_with():
    # A deploy must not take a newer numpy, Powertools or pydantic than make test used.
    tested = _pins(ROOT / "constraints.txt")
    for requirements in (ROOT / "src" / "requirements.txt", ROOT / "layers" / "scoring" / "requirements.txt"):
        pins = _pins(requirements)
        assert pins, f"{requirements} pins nothing"
        for name, version in pins.items():
            assert tested.get(name) == version, (
                f"{requirements}: {name}=={version}, constraints.txt has {tested.get(name)}"
            )


def test_the_app_layer_pins_its_whole_dependency_tree():
    # What pip would install for the layer's packages must all be pinned, or a deploy takes
    # the newest typing-extensions, pydantic-core, ... whatever the tests ran with.
    from importlib.metadata import requires

    pinned = _pins(ROOT / "src" / "requirements.txt")
    for name in list(pinned):
        for requirement in requires(name) or []:
            if "extra ==" in requirement:
                continue
            dependency = requirement.split(";")[0].split("[")[0]
            for separator in "<>=!~ (":
                dependency = dependency.split(separator)[0]
            assert dependency.strip().lower().replace("_", "-") in pinned, (name, requirement)


def test_constraints_pin_every_runtime_dependency():
    tested = _pins(ROOT / "constraints.txt")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in declared:
        name = requirement.split(">")[0].split("=")[0].split("<")[0].strip().lower().replace("_", "-")
        assert name in tested, f"constraints.txt does not pin {name}"
