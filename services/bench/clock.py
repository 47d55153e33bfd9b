"""`leadflow bench clock`: how late ticks reach the broker (scheduled_for -> arrival) for an
`every 1s` schedule, beside a plain aiokafka producer sending at the same instants.

Both are measured in the same run by one consumer: "published" is the record's timestamp (set
by the producer as it sends), "received" is when the consumer got it. The clock runs in a
scratch database, so a deployment's clock tables are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import NewTopic
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from events import JobName, TickEmitted, Topic, decode

from ..clock.service import Clock
from ..pipeline.config import LeadflowConfig
from ..pipeline.settings import Settings
from ..runtime import kafka_clients
from ..runtime.bus import ensure_topics
from ..runtime.config import Catchup, JobConfig, TopicsConfig
from ..runtime.db import connect, ensure_database, quote_ident
from ..runtime.errors import InfrastructureError
from ..runtime.migrations import migrate
from ..runtime.partitions import topic_partitions


def dsn_for(dsn: str, database: str) -> str:
    base, _, query = dsn.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{database}" + (f"?{query}" if query else "")


def summary(samples: list[float]) -> dict[str, float]:
    """p50 / p95 / max in milliseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p95_ms": round(p95 * 1000, 2), "max_ms": round(ordered[-1] * 1000, 2)}


async def _baseline(bootstrap: str, topic: str, start: datetime, count: int) -> None:
    """A plain producer (acks=all) sending one message at each whole second from ``start``."""
    producer = kafka_clients.producer(bootstrap_servers=bootstrap, acks="all", linger_ms=2,
                                enable_idempotence=False)
    await producer.start()
    try:
        for k in range(count):
            due = start + timedelta(seconds=k)
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
            await producer.send_and_wait(topic, due.isoformat().encode())
    finally:
        await producer.stop()


async def bench_clock(settings: Settings, console: Console, *, ticks: int = 20) -> dict[str, Any]:
    """Measure tick latency over ``ticks`` seconds; print p50/p95/max beside the baseline."""
    prefix = f"benchclock{uuid.uuid4().hex[:6]}."
    scratch = f"leadflow_bench_clock_{uuid.uuid4().hex[:8]}"
    config = LeadflowConfig(topics=TopicsConfig(prefix=prefix, partitions=1), jobs={
        JobName.SCORE: JobConfig(schedule="every 1s", catchup=Catchup.NONE)})
    await ensure_database(settings.database_url, scratch)
    dsn = dsn_for(settings.database_url, scratch)
    bench = settings.using(config, database_url=dsn, instance_id="bench")
    baseline_topic = f"{prefix}baseline"
    consumer = kafka_clients.consumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_auto_commit=False, fetch_max_wait_ms=5)
    clock = Clock(bench)
    task: asyncio.Task[None] | None = None
    try:
        await migrate(dsn)
        await ensure_topics(settings.kafka_bootstrap_servers, config.topics,
                            which=(Topic.CLOCK_TICKS, Topic.JOBS_EVENTS))
        admin = kafka_clients.admin(bootstrap_servers=settings.kafka_bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(baseline_topic, 1, 1)])
        finally:
            await admin.close()
        await consumer.start()
        tps = [TopicPartition(Topic.CLOCK_TICKS.physical(prefix), 0),
               TopicPartition(baseline_topic, 0)]
        await topic_partitions(consumer, {tp.topic for tp in tps})  # the new topics' metadata
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        task = asyncio.create_task(clock.run())
        for _ in range(600):  # activation takes well under a second; give up after 30
            if clock.active:
                break
            await asyncio.sleep(0.05)
        else:
            raise InfrastructureError("the benchmark's clock did not become active in 30s; "
                                      "check the broker and the database")
        # Measure whole seconds from two seconds on: both sides are warm by then.
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        sender = asyncio.create_task(
            _baseline(settings.kafka_bootstrap_servers, baseline_topic, start, ticks))
        samples = await _collect(consumer, tps, start, ticks, console)
        await sender
    finally:
        if task is not None:
            clock.request_stop()
            await asyncio.gather(task, return_exceptions=True)
        with contextlib.suppress(Exception):
            await consumer.stop()
        async with connect(settings.database_url) as conn:
            await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(scratch)} WITH (FORCE)")
    result: dict[str, Any] = {name: summary(values) for name, values in samples.items()}
    result["ticks"] = ticks
    _print(console, result)
    return result


async def _collect(consumer: AIOKafkaConsumer, tps: list[TopicPartition], start: datetime,
                   count: int, console: Console) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"clock published": [], "clock received": [],
                                       "baseline published": [], "baseline received": []}
    give_up = time.monotonic() + count + 30
    with Progress(TextColumn("[bold]ticking[/]"), BarColumn(), MofNCompleteColumn(),
                  console=console) as progress:
        bar = progress.add_task("ticks", total=count)
        while (len(samples["clock received"]) < count or len(samples["baseline received"]) < count) \
                and time.monotonic() < give_up:
            batches = await consumer.getmany(timeout_ms=200)
            arrived = datetime.now(UTC)
            for tp, records in batches.items():
                for record in records:
                    if tp == tps[0]:
                        event = decode(record.value)
                        if not isinstance(event, TickEmitted) or event.scheduled_for < start:
                            continue
                        due, side = event.scheduled_for, "clock"
                        progress.advance(bar)
                    else:
                        due, side = datetime.fromisoformat(record.value.decode()), "baseline"
                    sent = datetime.fromtimestamp(record.timestamp / 1000, UTC)
                    samples[f"{side} published"].append((sent - due).total_seconds())
                    samples[f"{side} received"].append((arrived - due).total_seconds())
    return {k: v[:count] or [float("nan")] for k, v in samples.items()}


def _print(console: Console, result: dict[str, Any]) -> None:
    table = Table("scheduled time ->", "p50 ms", "p95 ms", "max ms",
                  title=f"tick latency, every 1s, {result['ticks']} ticks")
    for name in ("clock published", "baseline published", "clock received", "baseline received"):
        r = result[name]
        table.add_row(name, f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}", f"{r['max_ms']:.1f}")
    console.print(table)
    worst = result["clock received"]["max_ms"]
    console.print(("[green]within[/]" if worst < 1000 else "[red]beyond[/]")
                  + f" the 1 s budget (worst {worst:.0f} ms after the scheduled time)")
