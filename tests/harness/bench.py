"""Running `leadflow bench ...` as a user does: its own process, embedded servers, JSON out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

LEADFLOW = [sys.executable, "-m", "services.cli.main"]


def run_bench(tmp_path: Path, *args: str, timeout: float = 840
              ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``leadflow bench <args> --json`` with no server given (it starts its own) and no
    standard input; the finished process and the figures it wrote."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "LEADFLOW_CONFIG"}}
    env["COLUMNS"] = "120"
    out = tmp_path / "out.json"
    done = subprocess.run([*LEADFLOW, "bench", *args, "--json", str(out)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    return done, json.loads(out.read_text())
