"""The kill -9 storm (issue 12): every service is a real process, 5,000 leads go from a CSV
through harvest -> score -> qualify -> route -> contact (over real SMTP to a sink in this test),
driven by `every 1s` schedules of a running clock, while score, qualify, route, contact, the
projector and the clock are each SIGKILLed at least ten times at random moments and restarted
right away.

A kill lands while its victim works whenever there is work: the storm waits (a bounded while)
until the victim's progress moves (its group's committed offsets, the ledger, the projector's
offsets, the clock's recorded ticks), then a random pause, then SIGKILL. One kill in five hits a
process that is still starting up. Most lives of a stage are replacement instances (a new
LEADFLOW_INSTANCE_ID, as a new container would have; the part of a run a dead instance left
"running" is reported `lost` by the clock's reaper once the instance has been silent for 60 s);
some restart in place (same id: the uncommitted tick is redelivered to it and the run redone;
it also runs every tick it missed while down), and so does the last life of each stage, so the
storm ends without a fresh orphan for the reaper.

The proof, once the pipeline has settled:

- nothing lost: every lead has the status (and segment) the pure decision functions predict.
  The one allowed difference is the documented SMTP policy: a step-1 send a kill interrupted
  cannot be confirmed, so it is marked failed "outcome unknown", never resent, and its lead
  stays ROUTED (at most one control window per contact kill);
- nothing twice: the sink received each (campaign, lead, step) key at most once, every send the
  ledger records as sent arrived, nothing arrived that the ledger does not know; every lead's
  transition has one event id in the log;
- the read models equal the projector's pure fold of the whole log, at the log's end offsets;
- no run is left "running" in job_runs once the schedules are paused and things settle.

Reproduce: LEADFLOW_TEST_BROKER=tansu pytest -m slow tests/faults/test_kill_storm.py
(LEADFLOW_KILL_SEED picks another storm; logs under test-artifacts/kill-storm/).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from events import STAGE_INPUTS, JobName, LeadEvent, LeadStatus, Topic, stage_group
from services.cli.clock_commands import set_paused
from services.pipeline.config import load_config
from services.pipeline.settings import Settings
from services.pipeline.stack import Stack
from services.runtime.bus import ensure_topics
from services.runtime.partitions import topic_partitions
from services.runtime.service import tick_group
from tests.factories import source_rows, write_csv
from tests.harness import ARTIFACTS, SlowInbox, predict, read_models, smtp_sink
from tests.projections import assert_models_equal_fold, read_log, reference

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

LEADS = 5000
KILLS = 10
STAGES = (JobName.HARVEST, JobName.SCORE, JobName.QUALIFY, JobName.ROUTE, JobName.CONTACT)
KILLED_STAGES = ("score", "qualify", "route", "contact")
VICTIMS = (*KILLED_STAGES, "projector", "clock")
#: The last life of a stage restarts in place, so the storm ends without a fresh part left to
#: the reaper's 60 s (reaper.LOST_AFTER, not configurable).
LAST_IN_PLACE = 1
#: contact.control_window_sends (the default): what one crash can leave "outcome unknown".
CONTROL_WINDOW_SENDS = 50


@pytest.fixture
def sink() -> Iterator[tuple[SlowInbox, int]]:
    box = SlowInbox(delay=0.01)
    with smtp_sink(box) as port:
        yield box, port


def write_config(path: Path, prefix: str, source: Path, smtp_port: int) -> Path:
    """Production-like: every stage on `every 1s` (overlapping ticks skipped), retries on."""
    jobs = "".join(
        f'[jobs.{job.value}]\nschedule = "every 1s"\nmax_leads_per_run = {cap}\n'
        f'timeout_seconds = 120\nretry_backoff_seconds = 1\n'
        for job, cap in ((JobName.HARVEST, 200), (JobName.SCORE, 400), (JobName.QUALIFY, 400),
                         (JobName.ROUTE, 400), (JobName.CONTACT, 200)))
    path.write_text(f"""
[topics]
prefix = "{prefix}"
partitions = 3

[stage]
batch_size = 100
shutdown_grace = "5s"

{jobs}
[[harvest.sources]]
path = "{source}"
tenant = "acme"
campaign = "q4"

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


class Probe:
    """A number per victim that grows while it works: its stage group's committed offsets (and
    the ledger for contact), the projector's stored offsets, the clock's recorded ticks."""

    def __init__(self, settings: Settings, db: asyncpg.Pool) -> None:
        self.settings = settings
        self.db = db
        self.consumers: dict[str, tuple[AIOKafkaConsumer, list[TopicPartition]]] = {}

    async def start(self) -> None:
        for name in KILLED_STAGES:
            job = JobName(name)
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                group_id=stage_group(job, self.settings.prefix), enable_auto_commit=False,
                client_id=f"storm-probe-{name}")
            await consumer.start()  # never subscribes: reads the group's offsets, never joins
            self.consumers[name] = (consumer, [])
            names = [t.physical(self.settings.prefix) for t in STAGE_INPUTS[job]]
            found = await topic_partitions(consumer, names)
            self.consumers[name] = (consumer, [TopicPartition(t, p) for t, ps in found.items()
                                               for p in ps])

    async def stop(self) -> None:
        for consumer, _ in self.consumers.values():
            await consumer.stop()

    async def value(self, name: str) -> int:
        if name == "projector":
            return int(await self.db.fetchval(
                "SELECT coalesce(sum(next_offset), 0) FROM projector_offsets"))
        if name == "clock":
            return int(await self.db.fetchval("SELECT count(*) FROM clock_ticks"))
        consumer, tps = self.consumers[name]
        total = sum([await consumer.committed(tp) or 0 for tp in tps])
        if name == "contact":
            total += int(await self.db.fetchval("SELECT count(*) FROM contact_ledger"))
        return total

    async def moved(self, name: str, before: int, timeout: float) -> bool:
        """Whether the victim made progress past ``before`` within ``timeout`` seconds."""
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            if await self.value(name) != before:
                return True
            await asyncio.sleep(0.05)
        return False


class TickBacklog:
    """How many ticks on clock.ticks the given stage instances have not handled yet: the
    topic's end (the high watermark of a fetch, right on both brokers) minus what each
    instance's tick group committed (a tick is committed once its run's outcome is out)."""

    def __init__(self, settings: Settings, instances: list[tuple[JobName, str]]) -> None:
        self.settings = settings
        self.instances = instances
        self.reader: AIOKafkaConsumer | None = None
        self.groups: list[AIOKafkaConsumer] = []
        self.tps: list[TopicPartition] = []

    def _consumer(self, group: str | None) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap_servers,
                                group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", client_id="storm-ticks")

    async def start(self) -> None:
        topic = Topic.CLOCK_TICKS.physical(self.settings.prefix)
        self.reader = self._consumer(None)
        await self.reader.start()
        found = await topic_partitions(self.reader, [topic])
        self.tps = [TopicPartition(topic, p) for p in found[topic]]
        self.reader.assign(self.tps)
        for job, instance in self.instances:
            self.groups.append(self._consumer(tick_group(job, instance, self.settings.prefix)))
            await self.groups[-1].start()  # never subscribes: reads the group's offsets only

    async def stop(self) -> None:
        for consumer in (*self.groups, *([self.reader] if self.reader else [])):
            await consumer.stop()

    async def behind(self) -> int:
        assert self.reader is not None
        while await self.reader.getmany(timeout_ms=300, max_records=10_000):
            pass
        ends = {tp: self.reader.highwater(tp) for tp in self.tps}
        if any(end is None for end in ends.values()):
            return 1_000_000  # no fetch answered yet
        return sum([int(ends[tp] or 0) - (await group.committed(tp) or 0)
                    for group in self.groups for tp in self.tps])


@dataclass
class Victim:
    """One service's successive processes."""

    name: str
    stack: Stack
    rnd: random.Random
    life: int = 0
    instance: str = ""
    proc: subprocess.Popen[bytes] | None = None
    kills: int = 0
    in_place: int = 0
    killed_starting: int = 0
    killed_working: int = 0

    def start(self, *, in_place: bool = False) -> None:
        if not in_place:
            self.life += 1
            self.instance = f"{self.name}{self.life}"
        self.proc = self.stack.spawn(self.name, instance=self.instance)

    @property
    def log(self) -> str:
        return self.stack.tail(f"{self.name}-{self.instance}", 30)

    def check_alive(self) -> None:
        assert self.proc is not None
        assert self.proc.poll() is None, (
            f"{self.name} ({self.instance}) exited by itself with code {self.proc.returncode}:\n"
            f"{self.log}")

    async def kill(self) -> None:
        assert self.proc is not None
        self.check_alive()
        self.proc.kill()  # SIGKILL
        await asyncio.to_thread(self.proc.wait, 10)
        self.kills += 1

    async def ready(self, db: asyncpg.Pool, timeout: float = 90) -> None:
        """A stage: registered (groups joined). Others: running."""
        assert self.proc is not None
        give_up = time.monotonic() + timeout
        while self.name in KILLED_STAGES and await db.fetchval(
                "SELECT pid FROM stage_instances WHERE job = $1 AND instance_id = $2",
                self.name, self.instance) != self.proc.pid:
            self.check_alive()
            assert time.monotonic() < give_up, f"{self.name} not ready:\n{self.log}"
            await asyncio.sleep(0.1)
        self.check_alive()

    async def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.proc.wait, timeout)


async def storm(victim: Victim, probe: Probe, db: asyncpg.Pool) -> None:
    """Kill ``victim`` KILLS times at random moments, restarting it right away each time."""
    rnd = victim.rnd
    await asyncio.sleep(rnd.uniform(0.0, 3.0))  # the victims' rhythms drift apart
    for k in range(KILLS):
        if k > 0 and rnd.random() < 0.2:
            await asyncio.sleep(rnd.uniform(0.0, 2.0))  # still starting up
            victim.killed_starting += 1
        else:
            await victim.ready(db)
            before = await probe.value(victim.name)
            if await probe.moved(victim.name, before, timeout=rnd.uniform(3.0, 7.0)):
                victim.killed_working += 1
            await asyncio.sleep(rnd.uniform(0.0, 0.4))
        await victim.kill()
        stage = victim.name in KILLED_STAGES
        in_place = stage and (k >= KILLS - LAST_IN_PLACE or rnd.random() < 0.25)
        victim.in_place += in_place
        victim.start(in_place=in_place)
    await victim.ready(db)


@dataclass
class Outcome:
    actual: dict[str, tuple[str, str | None]]
    expected: dict[str, tuple[str, str | None]]
    unknown: set[str]
    open_claims: int

    @property
    def settled(self) -> bool:
        return self.open_claims == 0 and self.actual == self.expected


async def outcome(db: asyncpg.Pool, predicted: dict[str, tuple[str, str | None]]) -> Outcome:
    """What the read models and the ledger say now; a lead whose first send ended "outcome
    unknown" is expected to stay ROUTED (the documented never-twice policy)."""
    actual = {r["email"]: (r["status"], r["segment"])
              for r in await db.fetch("SELECT email, status, segment FROM leads")}
    unknown = {r["email"] for r in await db.fetch(
        "SELECT email FROM contact_ledger WHERE step = 1 AND status = 'failed' "
        "AND error LIKE '%outcome unknown%'")}
    open_claims = await db.fetchval(
        "SELECT count(*) FROM contact_ledger WHERE status IN ('claimed', 'pending')")
    expected = {email: (LeadStatus.ROUTED.value, segment) if email in unknown else (status, segment)
                for email, (status, segment) in predicted.items()}
    return Outcome(actual, expected, unknown, open_claims)


async def until(what: str, timeout: float, check: Any) -> float:
    """Poll ``check`` (async, truthy when done) every second; seconds it took."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout, f"{what} not within {timeout:g}s"
        await asyncio.sleep(1.0)
    return time.monotonic() - started


def differences(o: Outcome) -> str:
    wrong = [(e, o.actual.get(e), want) for e, want in o.expected.items() if o.actual.get(e) != want]
    return f"{len(wrong)} leads not as expected, e.g. {wrong[:5]}; open claims {o.open_claims}"


async def test_kill_9_storm_of_every_service_loses_nothing_and_sends_nothing_twice(
        settings: Settings, broker_kind: str, sink: tuple[SlowInbox, int], tmp_path: Path) -> None:
    box, port = sink
    seed = int(os.environ.get("LEADFLOW_KILL_SEED", "12"))
    rnd = random.Random(seed)
    rows = source_rows(LEADS, seed=5)
    source = write_csv(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path / "leadflow.toml", settings.prefix, source, port)
    settings = settings.using(load_config(config))
    predicted = predict(rows, settings.pipeline)
    contacted = sum(1 for s, _ in predicted.values() if s == LeadStatus.CONTACTED.value)
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)

    workdir = ARTIFACTS / "kill-storm" / broker_kind
    shutil.rmtree(workdir, ignore_errors=True)
    stack = Stack(config=config, services=(), workdir=workdir, database_url=settings.database_url,
                  bootstrap=settings.kafka_bootstrap_servers,
                  extra_env={"LEADFLOW_LOG_LEVEL": "INFO"})
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    victims = {name: Victim(name, stack, random.Random(rnd.random())) for name in VICTIMS}
    harvest = Victim("harvest", stack, rnd)
    figures: dict[str, float] = {}
    began = time.monotonic()
    try:
        async with read_models(settings) as db:
            for victim in (*victims.values(), harvest):
                victim.start()
            for victim in (*victims.values(), harvest):
                await victim.ready(db)
            probe = Probe(settings, db)
            await probe.start()
            storms = [asyncio.create_task(storm(v, probe, db)) for v in victims.values()]
            try:
                await asyncio.gather(*storms)
            finally:  # one storm failing stops the others before the processes are stopped
                for task in storms:
                    task.cancel()
                await asyncio.gather(*storms, return_exceptions=True)
                await probe.stop()
            figures["storm_s"] = time.monotonic() - began

            # Settled: every lead where it belongs, no send left claimed or pending.
            async def settled() -> bool:
                return (await outcome(db, predicted)).settled

            try:
                figures["settle_s"] = await until("the pipeline settling", 180, settled)
            except AssertionError:
                raise AssertionError(differences(await outcome(db, predicted))) from None
            final = await outcome(db, predicted)

            # Stop the schedules (the active clock keeps reaping lost parts) and let every run
            # end: the live instances work off the ticks they have not handled yet (one
            # restarted in place runs every tick it missed), the parts of dead instances are
            # reported lost.
            for job in STAGES:
                await set_paused(settings, job, True, "kill-storm")
            live = [harvest, *(victims[n] for n in KILLED_STAGES)]
            ticks = TickBacklog(settings, [(JobName(v.name), v.instance) for v in live])
            await ticks.start()
            try:
                async def runs_ended() -> bool:
                    return await ticks.behind() == 0 and await db.fetchval(
                        "SELECT count(*) FROM job_runs WHERE status = 'running'") == 0

                figures["runs_end_s"] = await until("every run ending", 150, runs_ended)
            except AssertionError:
                running = await db.fetch(
                    "SELECT r.run_id, r.job, p.part, p.status, p.started_at FROM job_runs r "
                    "JOIN job_run_parts p USING (run_id) WHERE r.status = 'running'")
                raise AssertionError(f"{await ticks.behind()} ticks not handled; runs still "
                                     f"running: {[tuple(r) for r in running]}") from None
            finally:
                await ticks.stop()

            # Stop everything but the projector gracefully, let it fold the rest, then stop it.
            for victim in (*(victims[n] for n in (*KILLED_STAGES, "clock")), harvest):
                code = await victim.stop()
                assert code == 0, f"{victim.name} exited {code} on SIGTERM:\n{victim.log}"
            expected = reference(await read_log(settings), settings)

            async def projected() -> bool:
                victims["projector"].check_alive()
                stored = {(r["topic"], r["partition"]): r["next_offset"]
                          for r in await db.fetch("SELECT * FROM projector_offsets")}
                return stored == expected.offsets

            await until("the projector reaching the log's end", 120, projected)
            assert await victims["projector"].stop() == 0, victims["projector"].log

            # Nothing lost: each lead as predicted (an unknown first send leaves it ROUTED).
            assert final.settled, differences(final)
            assert len(final.actual) == LEADS
            contact_kills = victims["contact"].kills
            assert len(final.unknown) <= contact_kills * CONTROL_WINDOW_SENDS, len(final.unknown)
            assert await db.fetchval("SELECT count(*) FROM dead_letters") == 0

            # Nothing twice: at the sink, in the ledger, in the log.
            received = Counter(box.keys)
            doubled = [k for k, n in received.items() if n > 1]
            assert not doubled, doubled
            ledger = await db.fetch("SELECT idempotency_key, status, step, error FROM contact_ledger")
            status_of = {r["idempotency_key"]: r["status"] for r in ledger}
            assert set(status_of.values()) <= {"sent", "failed"}
            assert all("outcome unknown" in (r["error"] or "") for r in ledger
                       if r["status"] == "failed")
            assert {r["step"] for r in ledger} == {1}  # follow-ups are a day away
            sent = {k for k, s in status_of.items() if s == "sent"}
            assert sent <= set(received)             # every recorded send arrived
            assert set(received) <= set(status_of)   # nothing arrived the ledger does not know
            assert len(sent) + len(final.unknown) == contacted == len(status_of)
            ids: dict[tuple[Any, str, int], set[Any]] = defaultdict(set)
            for item in expected.lead_events:
                event = item.event
                assert isinstance(event, LeadEvent)
                ids[(event.lead.lead_id, event.type, getattr(event, "step", 0))].add(event.event_id)
            assert {len(v) for v in ids.values()} == {1}  # every redo had the same event id
            assert len(ids) == 3 * LEADS + 2 * contacted - len(final.unknown)

            # The read models are the fold of the whole log; no run is left running.
            await assert_models_equal_fold(db, expected)
            assert all(r.status != "running" for r in expected.runs.values())

            kills = {name: v.kills for name, v in victims.items()}
            assert min(kills.values()) >= KILLS, kills
            figures["total_s"] = time.monotonic() - began
            summary = {
                "broker": broker_kind, "seed": seed, "leads": LEADS, "contacted": contacted,
                "kills": kills, "in_place": {n: v.in_place for n, v in victims.items()},
                "killed_working": {n: v.killed_working for n, v in victims.items()},
                "killed_starting": {n: v.killed_starting for n, v in victims.items()},
                "received": len(received), "unknown_outcome": len(final.unknown),
                "runs": dict(Counter(f"{r.job}:{r.status}:{r.reason}"
                                     for r in expected.runs.values())),
                **{k: round(v, 1) for k, v in figures.items()},
            }
            (workdir / "summary.txt").write_text(f"{summary}\n")
            print(summary)
    finally:
        stack.stop()
