"""Losing a broker mid-run: 5,000 leads through every stage on a three-node Apache Kafka cluster
(replication 3, min ISR 2, producers acks=all) while the broker that leads the most lead-topic
partitions is SIGKILLed and restarted, again and again.

The proof: every lead reaches the status the pure functions predict, the sender was called for
each (campaign, lead, step) at most once, and the read models equal a fold of the whole log.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from events import LEAD_TOPICS, JobName, LeadStatus
from services.contact.senders import ProofSender
from services.harvest.config import HarvestConfig, HarvestSource
from services.harvest.normalize import normalise_row
from services.pipeline.settings import Settings
from services.qualify.decide import qualify_lead
from services.runtime.apache_kafka import ApacheKafka
from services.runtime.config import JobConfig, TopicsConfig
from services.score.decide import score_lead
from tests.factories import NOW, source_rows, write_csv
from tests.harness import ARTIFACTS, Ticker, kafka_or_skip, make_config, project, read_models, running
from tests.projections import assert_models_equal_fold, read_log, reference

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

LEADS = 5000
KILLS = 3
STAGES = (JobName.HARVEST, JobName.SCORE, JobName.QUALIFY, JobName.ROUTE, JobName.CONTACT)


@pytest.fixture(scope="module")
def cluster() -> Iterator[ApacheKafka]:
    """Three Apache Kafka nodes (each broker and controller) on loopback ports."""
    kafka_or_skip("the Apache Kafka cluster test")
    log_dir = ARTIFACTS / "kafka-cluster"
    log_dir.mkdir(parents=True, exist_ok=True)
    kafka = ApacheKafka(3, log_dir=log_dir, heap="384m")
    kafka.start(timeout=180)
    yield kafka
    kafka.stop()


@dataclass
class Sends:
    """Every send the contact stage made, by idempotency key (campaign, lead, step)."""

    keys: list[str] = field(default_factory=list)


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> Sends:
    """Counts the proof sender's sends (the services run in this process). Proof mode rather
    than SMTP keeps the run inside its time budget; test_contact_kill covers SMTP."""
    seen = Sends()
    send = ProofSender.send

    async def counted(self: ProofSender, message: Any, *, idempotency_key: str) -> str | None:
        seen.keys.append(idempotency_key)
        return await send(self, message, idempotency_key=idempotency_key)

    monkeypatch.setattr(ProofSender, "send", counted)
    return seen


async def partition_leaders(bootstrap: str, topics: list[str],
                            timeout: float = 60) -> list[tuple[int, int]]:
    """(leader, in-sync replica count) of every partition of ``topics``; asked again while the
    node the client picked is still starting."""
    give_up = time.monotonic() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-chaos",
                                    request_timeout_ms=5000)
        try:
            await admin.start()
            described = await admin.describe_topics(topics)
            return [(p["leader"], len(p["isr"])) for t in described for p in t["partitions"]]
        except KafkaError:
            if time.monotonic() > give_up:
                raise
        finally:
            await admin.close()
        await asyncio.sleep(0.5)


@dataclass
class Chaos:
    """Kills the broker leading the most lead-topic partitions, restarts it, waits until every
    partition has its three in-sync replicas again, and does it again until stopped."""

    cluster: ApacheKafka
    topics: list[str]
    kills: list[int] = field(default_factory=list)
    task: asyncio.Task[None] = field(init=False)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    enough: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while not self.stop.is_set():
            await self._pause(2.0)
            if self.stop.is_set():
                return
            leaders = Counter(leader for leader, _ in
                              await partition_leaders(self.cluster.bootstrap, self.topics))
            victim = leaders.most_common(1)[0][0]
            self.cluster.kill_node(victim)
            self.kills.append(victim)
            if len(self.kills) >= KILLS:
                self.enough.set()
            await asyncio.sleep(3.0)  # the cluster fences it and moves its leaderships
            self.cluster.start_node(victim)
            await self._until_in_sync()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def _until_in_sync(self, timeout: float = 90) -> None:
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            if all(isr == 3 for _, isr in
                   await partition_leaders(self.cluster.bootstrap, self.topics)):
                return
            await asyncio.sleep(0.5)
        raise AssertionError("a restarted broker never rejoined the in-sync replicas")


@contextlib.asynccontextmanager
async def chaos(cluster: ApacheKafka, topics: list[str]) -> AsyncIterator[Chaos]:
    monkey = Chaos(cluster, topics)
    monkey.task = asyncio.create_task(monkey.run())
    try:
        yield monkey
    finally:
        monkey.stop.set()
        await monkey.task


async def drain(ticker: Ticker, monkey: Chaos) -> dict[JobName, int]:
    """Tick each stage until a run completes with nothing left, while the chaos goes on; a run
    failed by the outage is ticked again, as the clock's retries would."""
    processed: Counter[JobName] = Counter()
    for job in STAGES:
        while True:
            run = await ticker.run(job, timeout=240)
            if run.status == "completed":
                processed[job] += run.leads_processed
                if run.leads_processed == 0:
                    break
        if job is JobName.ROUTE:
            # the last kills land while contact sends (a crashed chaos task fails the test here)
            enough = asyncio.ensure_future(monkey.enough.wait())
            await asyncio.wait([enough, monkey.task], return_when=asyncio.FIRST_COMPLETED)
            enough.cancel()
            if monkey.task.done():
                monkey.task.result()
    return processed


async def test_pipeline_survives_the_leading_broker_being_killed_again_and_again(
        cluster: ApacheKafka, database: str, sends: Sends, tmp_path: Path) -> None:
    prefix = f"c{uuid.uuid4().hex[:8]}."
    rows = source_rows(LEADS, seed=3)
    source = write_csv(tmp_path / "leads.csv", rows)
    config = make_config(
        prefix,
        topics=TopicsConfig(prefix=prefix, partitions=6, replication_factor=3, min_insync_replicas=2),
        harvest=HarvestConfig(sources=(HarvestSource(path=source, tenant="acme", campaign="q4"),)),
        jobs={job: JobConfig(max_leads_per_run=1000, timeout_seconds=200) for job in STAGES},
    )
    settings = Settings(database_url=database, kafka_bootstrap_servers=cluster.bootstrap,
                        instance_id="cluster").using(config)
    predicted = {}
    for row in rows:
        lead = normalise_row(row, tenant_id="acme", campaign_id="q4", source="x", at=NOW)
        lead = lead.evolve(score=score_lead(lead, config.score))
        qualified = qualify_lead(lead, config.qualify).qualified
        predicted[lead.email] = (LeadStatus.CONTACTED if qualified else LeadStatus.REJECTED).value

    topics = [t.physical(prefix) for t in LEAD_TOPICS]
    async with running(settings, *STAGES), Ticker(settings) as ticker:
        async with chaos(cluster, topics) as monkey:
            processed = await drain(ticker, monkey)
        # Sends the outage left unresolved are settled by a later run; tick until none is left.
        for _ in range(5):
            if (await ticker.run(JobName.CONTACT, timeout=240)).leads_processed == 0:
                break

    assert len(monkey.kills) >= KILLS, monkey.kills
    assert processed[JobName.HARVEST] == LEADS
    received = Counter(sends.keys)
    assert received and max(received.values()) == 1, [k for k, n in received.items() if n > 1]

    await project(settings)
    async with read_models(settings) as db:
        actual = {r["email"]: r["status"] for r in await db.fetch("SELECT email, status FROM leads")}
        assert actual == predicted
        sent = {r["idempotency_key"] for r in await db.fetch(
            "SELECT idempotency_key FROM contact_ledger WHERE status = 'sent'")}
        assert sent == set(received)
        assert len(sent) == sum(1 for s in predicted.values() if s == LeadStatus.CONTACTED.value)
        await assert_models_equal_fold(db, reference(await read_log(settings), settings))
