"""Helpers for the dashboard tests: settings with tokens, a pipeline run to show, an in-process
HTTP client, and the events the control endpoints publish."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from events import PIPELINE, Envelope, JobName, TickSource, Topic, decode
from services.clock.manual import manual_tick
from services.dashboard.app import create_app
from services.harvest.config import HarvestConfig, HarvestSource
from services.pipeline.settings import Settings
from services.runtime.config import DashboardConfig, JobConfig
from services.runtime.partitions import topic_partitions
from tests.factories import source_rows, write_csv
from tests.harness import Ticker, make_config

TOKEN = "s3cret-token"


def with_token(settings: Settings, token: str | None = TOKEN) -> Settings:
    """``settings`` whose dashboard opens its controls (and reads) with ``token``."""
    return settings.using(settings.pipeline.model_copy(
        update={"dashboard": DashboardConfig(token=token)}), dashboard_token=None)
READ_TOKEN = "read-only-token"
LEADS = 60
BAD_ROWS = 2


def dashboard_settings(settings: Settings, source: Path, **dashboard: Any) -> Settings:
    """Settings whose harvest reads ``source`` (tenant acme, campaign q4) and whose dashboard
    has a token and lenient readiness (the projector is stopped between requests)."""
    options: dict[str, Any] = {"token": TOKEN, "read_token": READ_TOKEN,
                               "readiness_max_status_age": timedelta(hours=1)}
    options.update(dashboard)
    config = make_config(
        settings.prefix,
        harvest=HarvestConfig(sources=(HarvestSource(path=source, tenant="acme", campaign="q4"),)),
        jobs={job: JobConfig(max_leads_per_run=500) for job in PIPELINE},
        dashboard=DashboardConfig(**options),
    )
    return settings.using(config)


def pipeline_source(folder: Path) -> Path:
    """LEADS valid rows plus BAD_ROWS unreadable ones (they become dead letters)."""
    rows = source_rows(LEADS, seed=6)
    bad = [dict(rows[0], email=f"not-an-email-{i}") for i in range(BAD_ROWS)]
    return write_csv(folder / "leads.csv", rows + bad)


async def drive(ticker: Ticker) -> None:
    """Harvest -> contact once each, then a score tick as the clock would send it."""
    for job in PIPELINE:
        run = await ticker.run(job)
        assert run.status == "completed", run
    scheduled = manual_tick(JobName.SCORE, requested_by="clock").model_copy(
        update={"source": TickSource.SCHEDULE})
    await ticker.publish(scheduled)
    await ticker.wait(scheduled)



@asynccontextmanager
async def client_for(settings: Settings, token: str | None = None
                     ) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process, its lifespan (pool, broker) running;
    with ``token``, every request carries it."""
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dashboard",
                                     headers=headers) as client:
            yield client


async def published(settings: Settings, topic: Topic, event_id: str) -> Envelope:
    """The event with ``event_id`` on ``topic`` (read from the beginning)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        name = topic.physical(settings.prefix)
        tps = [TopicPartition(name, p) for p in (await topic_partitions(consumer, [name]))[name]]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        found: dict[str, Envelope] = {}
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event = decode(record.value)
                    found[str(event.event_id)] = event
        return found[event_id]
    finally:
        await consumer.stop()
