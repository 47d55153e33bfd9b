"""No import cycle between leadflow's packages (events/ and each services/<name>/), as
.ci/import_cycles.py finds them; its output names each cycle's imports when there is one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_import_cycle_between_packages() -> None:
    result = subprocess.run([sys.executable, str(ROOT / ".ci" / "import_cycles.py")],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("no import cycle")
