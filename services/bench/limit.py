"""The limit the pipeline is measured against: raw aiokafka passthrough processes
(services/bench/passthrough.py) moving the same leads on the same broker.

One passthrough copies the backlog to another topic; then a chain of five passthroughs and a
sink, each its own process, carries it from leads.new through five topics, timed from the
first message in to the last one out of the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import NewTopic
from rich.console import Console

from events import Topic

from ..pipeline.settings import Settings
from ..runtime import kafka_clients
from ..runtime.bus import creation_errors, describe_topics, ensure_topics
from ..runtime.config import TopicsConfig
from ..runtime.embedded import die_with_parent
from ..runtime.errors import InfrastructureError
from .leads import publish_backlog

HOPS = 5


@dataclass(frozen=True, slots=True)
class Moved:
    """Messages moved and when: ``first`` in, ``last`` out (wall-clock seconds)."""

    count: int
    first: float
    last: float

    @property
    def rate(self) -> float:
        return self.count / (self.last - self.first) if self.last > self.first else 0.0


@dataclass(frozen=True, slots=True)
class Limits:
    """The single passthrough, the chain, and the processes' peak RSS (MiB)."""

    passthrough: Moved
    chain: Moved
    peak_rss_mb: float


class Passthrough:
    """One `python -m services.bench.passthrough` process."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    @classmethod
    async def start(cls, settings: Settings, source: str, target: str | None, *, count: int,
                    group: str, log: Path) -> Passthrough:
        """Start the process and return once it says its partitions are assigned."""
        args = [settings.kafka_bootstrap_servers, source, *([target] if target else []),
                "--count", str(count), "--group", group]
        with log.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.bench.passthrough", *args,
                stdout=asyncio.subprocess.PIPE, stderr=err, stdin=asyncio.subprocess.DEVNULL,
                preexec_fn=die_with_parent)
        started = cls(proc, log)
        assert proc.stdout is not None
        if (await proc.stdout.readline()).strip() != b"ready":
            await proc.wait()
            raise started.failure()
        return started

    async def result(self) -> dict[str, float]:
        """The process's JSON line, once it has moved every message and exited."""
        assert self.proc.stdout is not None
        out = await self.proc.stdout.read()
        if await self.proc.wait() != 0:
            raise self.failure()
        return json.loads(out.decode().strip().splitlines()[-1])

    def failure(self) -> InfrastructureError:
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-10:])
        return InfrastructureError(f"passthrough exited with code {self.proc.returncode}:\n{tail}")

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


async def create_topics(bootstrap: str, names: list[str], topics: TopicsConfig) -> None:
    """Create the passthroughs' own topics like leads.new (which ensure_topics creates)."""
    admin = kafka_clients.admin(bootstrap_servers=bootstrap, client_id="bench-admin")
    await admin.start()
    configs = ({"min.insync.replicas": str(topics.min_insync_replicas)}
               if topics.min_insync_replicas else {})
    try:
        refused = creation_errors(await admin.create_topics([
            NewTopic(name, num_partitions=topics.partitions_for(Topic.LEADS_NEW),
                     replication_factor=topics.replication_factor, topic_configs=configs)
            for name in names]))
        if refused:
            raise InfrastructureError(f"the broker refused to create {'; '.join(refused)}")
    finally:
        await admin.close()
    await describe_topics(bootstrap, names, wait=30.0)


async def limits(settings: Settings, n: int, workdir: Path, say: Console) -> Limits:
    """Measure the single passthrough, then the chain, over ``n`` leads on leads.new."""
    prefix = settings.prefix
    source = Topic.LEADS_NEW.physical(prefix)
    hops = [f"{prefix}hop{i}" for i in range(1, HOPS + 1)]
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics,
                        which=(Topic.LEADS_NEW,))
    await create_topics(settings.kafka_bootstrap_servers, [f"{prefix}copy", *hops],
                        settings.pipeline.topics)
    await publish_backlog(settings, n, say)
    running: list[Passthrough] = []
    try:
        with say.status(f"passthrough: one process copying {n:,} leads"):
            single = await Passthrough.start(settings, source, f"{prefix}copy", count=n,
                                             group="bench.copy", log=log_file(workdir, "copy"))
            running.append(single)
            copied = await single.result()
        say.print(f"passthrough: {rate_text(copied)}")
        with say.status(f"chain: {HOPS} passthrough processes and a sink moving {n:,} leads"):
            # Downstream first, so the timed part starts when every process is already waiting.
            sources, targets = [source, *hops], [*hops, None]
            for i in range(HOPS, -1, -1):
                running.append(await Passthrough.start(
                    settings, sources[i], targets[i], count=n, group=f"bench.chain{i}",
                    log=log_file(workdir, f"chain{i}")))
            results = [await p.result() for p in running[1:]]
        head, sink = results[-1], results[0]
        chain = {"count": sink["count"], "first": head["first"], "last": sink["last"]}
        say.print(f"chain: {rate_text(chain)}")
    finally:
        for p in running:
            p.kill()
    rss = max(r["peak_rss_mb"] for r in (copied, *results))
    return Limits(moved(copied), moved(chain), rss)


def log_file(workdir: Path, name: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir / f"{name}.log"


def moved(result: dict[str, float]) -> Moved:
    return Moved(int(result["count"]), result["first"], result["last"])


def rate_text(result: dict[str, float]) -> str:
    m = moved(result)
    return f"{m.count:,} leads in {m.last - m.first:.2f}s ({m.rate:,.0f} leads/s)"
