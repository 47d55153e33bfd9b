"""Dependencies are bounded both ways, and .ci/constraints.txt (the versions CI installs and the
README's commands use) pins every one of them inside its bounds."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
#: Time-zone data must stay current, so it alone has no upper bound (see pyproject.toml).
UNBOUNDED = {"tzdata"}


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = [*project["dependencies"]]
    for group in project["optional-dependencies"].values():
        listed += group
    return [Requirement(text) for text in listed]


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (ROOT / ".ci" / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            found[canonicalize_name(name)] = version
    return found


def test_every_dependency_has_a_lower_and_an_upper_bound() -> None:
    for req in requirements():
        operators = {spec.operator for spec in req.specifier}
        assert ">=" in operators, f"{req} has no lower bound"
        if req.name not in UNBOUNDED:
            assert "<" in operators, f"{req} has no upper bound"


def test_constraints_pin_every_dependency_inside_its_bounds() -> None:
    pinned = pins()
    for req in requirements():
        version = pinned.get(canonicalize_name(req.name))
        assert version is not None, f"{req.name} is missing from .ci/constraints.txt"
        assert req.specifier.contains(version), f"{req.name}=={version} is outside {req}"
