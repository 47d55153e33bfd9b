"""The README's commands as a newcomer runs them: `leadflow demo` and `leadflow dev`, each with
its own embedded Postgres and broker, as real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import kafka_or_skip

DEMO_LEADS = 121  # valid, distinct leads in services/demo/leads.csv (2 bad rows, 1 duplicate;
# one row's employees value is unreadable: that lead is kept, its size unknown, with a warning)
LEADFLOW = [sys.executable, "-m", "services.cli.main"]


def clean_env() -> dict[str, str]:
    """No DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS: the commands start embedded servers."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "LEADFLOW_CONFIG"}}
    env["COLUMNS"] = "120"
    return env


def statuses(output: str) -> dict[str, int]:
    """The 'Leads by status' table printed by the demo pass."""
    found = dict(re.findall(r"│ (NEW|SCORED|QUALIFIED|ROUTED|CONTACTED|REJECTED)\s+│ (\d+)", output))
    return {status: int(n) for status, n in found.items()}


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc, no extra dependency)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


@pytest.mark.parametrize("broker", ["tansu", "kafka"])
def test_demo_moves_every_demo_lead_through_the_pipeline_and_exits_0(tmp_path: Path,
                                                                     broker: str) -> None:
    if broker == "kafka":
        kafka_or_skip("leadflow demo --broker kafka")
    done = subprocess.run([*LEADFLOW, "demo", "--broker", broker], env=clean_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    counts = statuses(done.stdout)
    assert sum(counts.values()) == DEMO_LEADS
    # Every demo lead ends contacted, rejected, or waiting in a topic for its next stage's run.
    assert counts["CONTACTED"] > 0 and counts["REJECTED"] > 0
    assert counts["SCORED"] == counts["QUALIFIED"] == 0
    for job in ("harvest", "score", "qualify", "route", "contact"):
        assert re.search(rf"^{job}\s+completed", done.stdout, re.MULTILINE), job
    assert "2 dead letter(s)" in done.stdout
    assert ("Apache Kafka" if broker == "kafka" else "Tansu") in done.stdout


@pytest.fixture
def dev_process(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([*LEADFLOW, "dev"], env=clean_env(), cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_dev_serves_the_demo_pipeline_on_the_dashboard_and_stops_cleanly_on_ctrl_c(
        dev_process: subprocess.Popen[str]) -> None:
    assert dev_process.stdout is not None
    lines: list[str] = []
    give_up = time.monotonic() + 300
    url = None
    while url is None and time.monotonic() < give_up:
        line = dev_process.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"dashboard\s+(http://127\.0\.0\.1:\d+/)", line)
        url = match.group(1) if match else None
    assert url, "".join(lines)
    printed = statuses("".join(lines))
    assert sum(printed.values()) == DEMO_LEADS

    token = re.search(r"#token=([\w-]+)", "".join(lines))
    assert token, "the dashboard link carries the read token"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url + "api/dashboard", timeout=30)
    with refused.value:  # an HTTPError holds the response's socket open until closed
        assert refused.value.code == 401  # lead data needs the token
    request = urllib.request.Request(url + "api/dashboard",
                                     headers={"Authorization": f"Bearer {token.group(1)}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert sum(body["funnel"].values()) == DEMO_LEADS
    assert body["funnel"]["CONTACTED"] == printed["CONTACTED"]
    with urllib.request.urlopen(url, timeout=30) as response:
        assert b"leadflow" in response.read()
    children = descendants(dev_process.pid)
    assert len(children) >= 8  # one process per service, the broker, the database

    data_dir = re.search(r"host=(/\S+?)/data", "".join(lines) + _rest(dev_process, lines))
    assert data_dir, "the panel names the embedded database"

    dev_process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert dev_process.wait(timeout=60) == 0
    left = alive(children)
    give_up = time.monotonic() + 10
    while left and time.monotonic() < give_up:  # children exit right after the parent
        time.sleep(0.1)
        left = alive(children)
    assert not left, f"processes outlived `leadflow dev`: {sorted(left)}"
    # The embedded Postgres runs detached (pg_ctl); it must be stopped and its data gone too.
    assert not Path(data_dir.group(1)).exists()
    assert not any(data_dir.group(1) in cmdline(pid) for pid in all_pids())


def _rest(proc: subprocess.Popen[str], lines: list[str]) -> str:
    """The rest of the dev panel (read up to its export lines)."""
    assert proc.stdout is not None
    more = []
    for _ in range(30):
        line = proc.stdout.readline()
        more.append(line)
        if "DATABASE_URL" in line:
            break
    lines.extend(more)
    return "".join(more)


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (a zombie has exited)."""
    left = set()
    for pid in pids:
        try:
            if "zombie" not in Path(f"/proc/{pid}/status").read_text().lower():
                left.add(pid)
        except FileNotFoundError:
            continue
    return left


def all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
