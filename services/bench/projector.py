"""`leadflow bench projector`: live projection and rebuild rates beside a plain COPY of the same
rows into Postgres, measured in the same run on the same machine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from events import (
    Envelope,
    Lead,
    LeadCreated,
    LeadScored,
    LeadStatus,
    ScoreCard,
    encode,
    ids,
    transition,
)

from ..pipeline.settings import Settings
from ..projector.fold import Positioned
from ..projector.rebuild import rebuild
from ..projector.service import Projector
from ..projector.store import LEAD_EVENT_COLUMNS, lead_event_row
from ..runtime.bus import Publisher, ensure_topics, make_broker
from ..runtime.db import READ_SCHEMA, connect, quote_ident
from ..runtime.process import tune_gc

AT = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
CARD = ScoreCard(value=61, factors={"industry": 30, "employees": 12, "country": 16, "seniority": 3},
                 model_version="bench")


def lead_events(n: int) -> Iterator[Envelope]:
    """``n`` realistic lead events: half LeadCreated, half the LeadScored that follows."""
    for i in range(n // 2):
        email = f"bench.{i}@company{i % 5000}.com"
        lead = Lead(lead_id=ids.lead_id("bench", email), tenant_id="bench", campaign_id="q4",
                    email=email, first_name="Ada", last_name=f"Number{i}", title="VP of Sales",
                    company=f"Company{i % 5000}", domain=f"company{i % 5000}.com",
                    industry="software", employees=120, country="DE", source="bench.csv",
                    status=LeadStatus.NEW, version=1, created_at=AT, updated_at=AT)
        created = LeadCreated(event_id=ids.event_id(lead.lead_id, "lead.created"), occurred_at=AT,
                              recorded_at=AT, tenant_id="bench", lead=lead, source_line=i + 2)
        yield created
        yield transition(LeadScored, created, at=AT, correlation_id=None, recorded_at=AT, score=CARD)


@dataclass
class Rates:
    events: int
    live: float
    rebuild: float
    copy: float


async def publish_events(settings: Settings, n: int, console: Console) -> None:
    broker = make_broker(settings.kafka_bootstrap_servers, client_id="leadflow-bench")
    await broker.start()
    publisher = Publisher(broker, settings.pipeline.topics)
    try:
        with Progress(TextColumn("publishing"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("publish", total=n)
            chunk: list[Envelope] = []
            for event in lead_events(n):
                chunk.append(event)
                if len(chunk) == 5000:
                    await publisher.publish(chunk)
                    progress.advance(task, len(chunk))
                    chunk = []
            await publisher.publish(chunk)
            progress.advance(task, len(chunk))
    finally:
        await broker.stop()


async def copy_rate(settings: Settings, n: int) -> float:
    """Rows/s of COPY of the same lead_events rows into an empty table (row building not timed)."""
    async with connect(settings.database_url) as conn:
        table = f"{quote_ident(READ_SCHEMA)}.bench_copy"
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.execute(f"CREATE TABLE {table} (LIKE {quote_ident(READ_SCHEMA)}.lead_events "
                           "INCLUDING ALL)")
        try:
            spent, rows = 0.0, []
            for offset, event in enumerate(lead_events(n)):
                rows.append(lead_event_row(Positioned("bench", 0, offset, event, encode(event))))
                if len(rows) == 10_000:
                    spent += await _timed_copy(conn, rows)
                    rows = []
            if rows:
                spent += await _timed_copy(conn, rows)
        finally:
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
    return n / spent if spent else 0.0


async def _timed_copy(conn: object, rows: list[tuple[object, ...]]) -> float:
    started = time.perf_counter()
    await conn.copy_records_to_table("bench_copy", records=rows, columns=LEAD_EVENT_COLUMNS,  # type: ignore[attr-defined]
                                     schema_name=READ_SCHEMA)
    return time.perf_counter() - started


async def bench_projector(settings: Settings, console: Console, *, events: int) -> Rates:
    """Publish ``events`` lead events, then time live projection, rebuild and plain COPY."""
    tune_gc()  # as `leadflow run projector` does
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    await publish_events(settings, events, console)
    size = sum(len(encode(e)) for e in lead_events(2)) // 2
    console.print(f"{events:,} events (~{size} bytes each) in the log")

    with console.status("plain COPY of the same rows (baseline, first pass)..."):
        copy_before = await copy_rate(settings, events)
    projector = Projector(settings, batch_size=10_000, publish_dead_letters=False)
    await projector.start()
    started = time.perf_counter()
    try:
        with console.status("live projection..."):
            done = await projector.catch_up(idle_polls=2)
    finally:
        await projector.stop()
    live = done / (time.perf_counter() - started)
    with console.status("rebuild into a shadow schema..."):
        report = await rebuild(settings, swap=True)
    with console.status("plain COPY of the same rows (baseline, second pass)..."):
        copy_after = await copy_rate(settings, events)
    # Two baseline passes around the measured ones: the machine's load drifts, their mean is fairer.
    copy = (copy_before + copy_after) / 2
    rates = Rates(events=events, live=live, rebuild=report.rate, copy=copy)
    table = Table("path", "events/s", "vs COPY", title=f"projector, {events:,} events")
    table.add_row(f"plain COPY of the lead_events rows (baseline; passes: {copy_before:,.0f} "
                  f"and {copy_after:,.0f})", f"{copy:,.0f}", "1.00")
    table.add_row("live projection (fold + all read models)", f"{live:,.0f}", f"{live / copy:.2f}")
    table.add_row(f"rebuild into a shadow schema + swap ({report.workers} worker processes)",
                  f"{report.rate:,.0f}", f"{report.rate / copy:.2f}")
    console.print(table)
    console.print("goal: rebuild at least 0.30 of the COPY rate - "
                  + ("[green]met[/]" if report.rate >= 0.3 * copy else "[red]not met[/]"))
    return rates
