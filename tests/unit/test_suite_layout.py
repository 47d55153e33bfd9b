"""The suite's own shape: shared helpers live in tests/harness/ and tests/factories.py, so no
test module imports another (or conftest), and each can be read and run on its own."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
TEST_FOLDERS = ("unit", "integration", "e2e", "faults")


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_no_test_module_imports_another_or_conftest() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] == "tests" and len(parts) > 1 and (
                    parts[1] in TEST_FOLDERS or parts[1] == "conftest"):
                offenders.append(f"{path.relative_to(TESTS)} imports {module}")
    assert not offenders, "move what they share to tests/harness/:\n" + "\n".join(offenders)
