"""The whole product on one machine: embedded servers (unless the environment points at real
ones), the schema, the topics, and one process per service. Stops everything it started."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..runtime.apache_kafka import KAFKA_VERSION, ApacheKafka
from ..runtime.bus import ensure_topics
from ..runtime.db import connect, ensure_database
from ..runtime.embedded import EmbeddedPostgres, TansuBroker, die_with_parent
from ..runtime.errors import InfrastructureError
from ..runtime.migrations import migrate
from .registry import STAGE_NAMES
from .settings import load_settings


@dataclass
class Stack:
    """Servers and service processes for `leadflow dev` and `leadflow demo`."""

    config: Path | None
    services: tuple[str, ...]
    workdir: Path
    database_url: str | None = None
    bootstrap: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    broker_kind: str = "tansu"
    #: postgresql.conf settings for the embedded Postgres (ignored with DATABASE_URL).
    postgres_settings: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _pg: EmbeddedPostgres | None = None
    _broker: TansuBroker | ApacheKafka | None = None

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.extra_env)
        env["DATABASE_URL"] = self.database_url or ""
        env["KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap or ""
        if self.config is not None:
            env["LEADFLOW_CONFIG"] = str(self.config)
        env.setdefault("LEADFLOW_INSTANCE_ID", "dev")
        return env

    async def start_servers(self, say: Callable[[str], None] = print) -> None:
        """Embedded Postgres and a local broker (Tansu, or Apache Kafka with ``broker_kind``
        'kafka') unless DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS are set."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        self.database_url = self.database_url or os.environ.get("DATABASE_URL") or None
        self.bootstrap = self.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
        if self.database_url is None:
            self._pg = EmbeddedPostgres(server_settings=self.postgres_settings)
            await asyncio.to_thread(self._pg.start)
            await ensure_database(self._pg.uri("postgres"), "leadflow")
            self.database_url = self._pg.uri("leadflow")
            say("postgres  embedded (fresh data directory; deleted on exit)")
        else:
            say("postgres  DATABASE_URL")
        if self.bootstrap is None and self.broker_kind == "kafka":
            kafka = ApacheKafka(1, log_dir=self.log_dir, parent=self.workdir)
            self._broker = kafka
            self.bootstrap = await asyncio.to_thread(kafka.start, say=say)
            say(f"broker    Apache Kafka {KAFKA_VERSION} at {self.bootstrap} (deleted on exit)")
        elif self.bootstrap is None:
            self._broker = TansuBroker(log_file=self.log_dir / "tansu.log")
            self.bootstrap = await asyncio.to_thread(self._broker.start)
            say(f"broker    embedded Tansu at {self.bootstrap} (memory only)")
        else:
            say(f"broker    {self.bootstrap}")
        assert self.database_url is not None and self.bootstrap is not None
        os.environ["DATABASE_URL"] = self.database_url
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap
        settings = load_settings(config=self.config)
        await migrate(self.database_url)
        await ensure_topics(self.bootstrap, settings.pipeline.topics)

    def server_pids(self) -> dict[str, int]:
        """Process ids of the servers this stack started ('postgres', 'broker' or 'broker<n>'
        for several nodes); servers given by the environment are not ours to measure."""
        pids: dict[str, int] = {}
        if self._pg is not None and (pid := self._pg.pid()) is not None:
            pids["postgres"] = pid
        brokers = self._broker.pids() if self._broker is not None else []
        for i, pid in enumerate(brokers, start=1):
            pids["broker" if len(brokers) == 1 else f"broker{i}"] = pid
        return pids

    def spawn(self, name: str, *, instance: str | None = None) -> subprocess.Popen[bytes]:
        """Start `leadflow run <name>` as a child process logging to workdir/logs."""
        key = name if instance is None else f"{name}-{instance}"
        env = self.env()
        if instance is not None:
            env["LEADFLOW_INSTANCE_ID"] = instance
        log = (self.log_dir / f"{key}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli.main", "run", name],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        log.close()
        self.procs[key] = proc
        return proc

    async def start_services(self, timeout: float = 90.0) -> None:
        for name in self.services:
            self.spawn(name)
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float) -> None:
        """Wait until every stage instance registered itself; fail fast if a process died."""
        jobs = [s for s in self.services if s in STAGE_NAMES]
        give_up = time.monotonic() + timeout
        assert self.database_url is not None
        async with connect(self.database_url) as conn:
            while True:
                self.check_alive()
                ready = {r["job"] for r in await conn.fetch(
                    "SELECT job FROM stage_instances WHERE ready_at >= now() - interval '1 hour' "
                    "AND pid = ANY($1::int[])", [p.pid for p in self.procs.values()])}
                if set(jobs) <= ready:
                    return
                if time.monotonic() > give_up:
                    missing = sorted(set(jobs) - ready)
                    raise InfrastructureError(
                        f"services not ready after {timeout:.0f}s: {missing}; see {self.log_dir}")
                await asyncio.sleep(0.2)

    def check_alive(self) -> None:
        for key, proc in self.procs.items():
            if proc.poll() is not None:
                tail = self.tail(key)
                raise InfrastructureError(
                    f"service {key} exited with code {proc.returncode}; last log lines:\n{tail}")

    def tail(self, key: str, lines: int = 15) -> str:
        path = self.log_dir / f"{key}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every service, wait, SIGKILL stragglers; then stop the embedded servers."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        give_up = time.monotonic() + timeout
        for proc in self.procs.values():
            remaining = max(0.1, give_up - time.monotonic())
            try:
                proc.wait(remaining)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        if self._broker is not None:
            self._broker.stop()
            self._broker = None
        if self._pg is not None:
            self._pg.stop()
            self._pg = None
