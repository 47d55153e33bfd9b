"""Never twice: the contact service, sending over SMTP to a real server, is SIGKILLed at random
points again and again. The server's inbox is the proof: every (lead, step) arrived at most
once, every recorded send arrived, and no claim is left unresolved.

Most lives are replacement instances (a new LEADFLOW_INSTANCE_ID, as a new container would
have; their predecessor's claims are settled once older than stale_claim_after); every fifth
restarts in place (same id: its earlier life's claims are settled at start-up). Restarting in
place waits out the dead member's group session, so it is the slow case and the rarer one.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from events import JobName
from services.clock.manual import manual_tick
from services.pipeline.settings import Settings
from tests.harness import SlowInbox, Ticker, publish, smtp_sink
from tests.harness.contact import day, db, routed

KILLS = 22


@pytest.fixture
def inbox() -> Iterator[tuple[SlowInbox, int]]:
    box = SlowInbox(delay=0.03)
    with smtp_sink(box) as port:
        yield box, port


def write_config(path: Path, prefix: str, smtp_port: int) -> Path:
    path.write_text(f"""
[topics]
prefix = "{prefix}"
partitions = 3

[jobs.contact]
max_leads_per_run = 1000
timeout_seconds = 120

[contact]
sender = "smtp"
from_address = "sales@leadflow.test"
stale_claim_after = "2s"

[contact.smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
timeout = "5s"
""")
    return path


class ContactProcess:
    """`leadflow run contact` as a child process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.instance = env["LEADFLOW_INSTANCE_ID"]
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, instance: str) -> None:
        self.instance = instance
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.cli.main", "run", "contact",
                env={**self.env, "LEADFLOW_INSTANCE_ID": instance}, stdout=out, stderr=out)

    async def ready(self, pool: asyncpg.Pool, timeout: float = 60) -> None:
        """Wait until this process registered itself (its consumers are assigned)."""
        assert self.proc is not None
        give_up = time.monotonic() + timeout
        while await pool.fetchval(
                "SELECT pid FROM stage_instances WHERE job = 'contact' AND instance_id = $1",
                self.instance) != self.proc.pid:
            assert self.proc.returncode is None, f"contact service exited; see {self.log}"
            assert time.monotonic() < give_up, f"contact service not ready; see {self.log}"
            await asyncio.sleep(0.1)

    async def kill(self) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.proc.wait(), 60)


async def ledger_moves(pool: asyncpg.Pool, mark: int, timeout: float = 15) -> None:
    """Wait (a bounded while) until the run claims its first send, so the kill lands in a run."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if await pool.fetchval("SELECT count(*) FROM contact_ledger") != mark:
            return
        await asyncio.sleep(0.02)


async def settled(pool: asyncpg.Pool) -> bool:
    """Every lead finished its sequence (or failed) and no claim is open."""
    open_leads = await pool.fetchval("SELECT count(*) FROM contact_leads WHERE state = 'active'")
    open_claims = await pool.fetchval(
        "SELECT count(*) FROM contact_ledger WHERE status IN ('claimed', 'pending')")
    return open_leads == 0 and open_claims == 0


# The proof is the SMTP inbox against the Postgres ledger; the kill -9 storm (tests/faults)
# kills contact among every other service on both brokers. Minutes long: the slow tier.
@pytest.mark.slow
@pytest.mark.any_broker
async def test_random_sigkills_never_send_a_step_twice(
        settings: Settings, inbox: tuple[SlowInbox, int], tmp_path: Path) -> None:
    box, port = inbox
    rnd = random.Random(int(os.environ.get("LEADFLOW_KILL_SEED", "7")))
    config = write_config(tmp_path / "leadflow.toml", settings.prefix, port)
    env = {**os.environ, "DATABASE_URL": settings.database_url,
           "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "LEADFLOW_CONFIG": str(config), "LEADFLOW_INSTANCE_ID": "kill-0",
           "LEADFLOW_LOG_LEVEL": "WARNING"}
    service = ContactProcess(env, tmp_path / "contact.log")
    batches = [[routed(f"k{b}-{i}@kill{i % 5}.test") for i in range(12)] for b in range(3)]
    await publish(settings, batches[0])

    async with db(settings) as pool, Ticker(settings) as ticker:
        kills = 0
        for n in range(KILLS):
            await service.start(service.instance if n % 5 == 4 else f"kill-{n}")
            if n in (6, 13):
                await publish(settings, batches[1 if n == 6 else 2])
            if n > 0 and rnd.random() < 0.25:
                await asyncio.sleep(rnd.uniform(0.0, 3.0))  # killed while starting up
            else:
                await service.ready(pool)
                mark = await pool.fetchval("SELECT count(*) FROM contact_ledger")
                await ticker.publish(manual_tick(JobName.CONTACT, requested_by="kill-test",
                                                 at=day(n)))
                await ledger_moves(pool, mark)
                await asyncio.sleep(rnd.uniform(0.0, 0.6))  # killed mid-run, between or in sends
            await service.kill()
            kills += 1

        # A last life that is allowed to finish: it settles what the kills left, then drains.
        await service.start(f"kill-{KILLS}")
        await service.ready(pool)
        await asyncio.sleep(2.5)  # let the last claims go stale, so this life settles them
        for n in range(KILLS, KILLS + 8):
            tick = manual_tick(JobName.CONTACT, requested_by="kill-test", at=day(n))
            await ticker.publish(tick)
            await ticker.wait(tick, timeout=120)  # after any tick a kill left unfinished
            if await settled(pool):
                break
        await service.stop()

        rows = await pool.fetch("SELECT idempotency_key, status, error FROM contact_ledger")
        progress = await pool.fetch("SELECT state, step FROM contact_leads")

    received = Counter(box.keys)
    assert kills >= 20
    assert received and max(received.values()) == 1, [k for k, c in received.items() if c > 1]
    statuses = {r["idempotency_key"]: r["status"] for r in rows}
    assert set(statuses.values()) <= {"sent", "failed"}  # nothing claimed or pending is left
    sent = {k for k, s in statuses.items() if s == "sent"}
    assert sent <= set(received)  # every recorded send really arrived, once
    assert set(received) <= set(statuses)  # and nothing arrived that the ledger does not know
    unknown = [r for r in rows if r["status"] == "failed"]
    assert all("outcome unknown" in (r["error"] or "") for r in unknown)
    assert len(progress) == sum(len(b) for b in batches)
    assert {p["state"] for p in progress} <= {"completed", "failed"}
    assert all(p["step"] == 3 for p in progress if p["state"] == "completed")

