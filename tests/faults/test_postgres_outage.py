"""Postgres cut off for 10 s under the stage services, contact, the projector and the dashboard:
nobody exits, /readyz says 503 while it is down and 200 once it is back, the runs caught by the
outage end (failed with a reason, or finished late), and afterwards every lead is processed
exactly once. Real broker, real Postgres behind a proxy the test cuts; every wait is bounded."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from events import JobName, LeadScored, Topic, decode
from events.runs import RunRow
from services.clock.manual import manual_tick
from services.dashboard.app import create_app
from services.pipeline.settings import Settings
from services.projector.service import Projector
from tests.harness import TcpProxy, Ticker, eventually, publish, publish_leads, read_topic, running
from tests.harness.contact import contact_service, db, routed

pytestmark = pytest.mark.any_broker  # a Postgres outage: the broker plays no part

OUTAGE = 10.0


@asynccontextmanager
async def dashboard(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
            yield client


async def ready(client: httpx.AsyncClient) -> int:
    return (await asyncio.wait_for(client.get("/readyz"), 15)).status_code


async def drain(ticker: Ticker, job: JobName) -> list[RunRow]:
    """Tick ``job`` until a run finds nothing left (bounded)."""
    runs: list[RunRow] = []
    for _ in range(20):
        run = await ticker.run(job, timeout=120)
        runs.append(run)
        if run.status == "completed" and run.leads_processed == 0:
            return runs
    raise AssertionError(f"{job.value} never drained: {runs}")


async def test_postgres_cut_off_for_10s_no_service_exits_and_the_work_completes_once(
        settings: Settings) -> None:
    leads = await publish_leads(settings, 300, "pgcut")
    to_contact = [routed(f"pgcut{i}@acme.test") for i in range(60)]
    await publish(settings, to_contact)
    async with TcpProxy(settings.database_url) as proxy:
        behind = settings.model_copy(update={"database_url": proxy.dsn})
        projector = Projector(behind)
        projecting = asyncio.create_task(projector.run())
        try:
            async with (running(behind, JobName.SCORE), contact_service(behind),
                        dashboard(behind) as client, Ticker(settings) as ticker):
                await eventually(lambda: _is(ready(client), 200), 60, "/readyz 200 before the cut")
                first = await ticker.run(JobName.SCORE, max_leads=100)
                assert (first.status, first.leads_processed) == ("completed", 100)

                proxy.cut()
                caught = [manual_tick(JobName.SCORE, requested_by="test"),
                          manual_tick(JobName.CONTACT, requested_by="test")]
                for tick in caught:
                    await ticker.publish(tick)
                assert await ready(client) == 503
                await asyncio.sleep(OUTAGE)  # the outage itself, not a wait for a condition
                assert await ready(client) == 503
                assert not projecting.done(), "the projector exited while Postgres was down"
                proxy.restore()
                restored = await _now(settings)

                # The runs the outage caught end, one way or the other, with a reason if failed.
                for tick in caught:
                    run = await ticker.wait(tick, timeout=120)
                    assert run.status in ("completed", "failed"), run
                    if run.status == "failed":
                        assert run.error, run
                score_runs = await drain(ticker, JobName.SCORE)
                contact_runs = await drain(ticker, JobName.CONTACT)
                assert all(r.status == "completed" for r in score_runs + contact_runs)
                await eventually(lambda: _is(ready(client), 200), 90, "/readyz 200 after the cut")
                # Heartbeats resumed too: nothing reads the instances as dead after the outage.
                await eventually(lambda: _heartbeats_since(settings, restored), 30,
                               "score and contact heartbeats after the cut")
        finally:
            projector.request_stop()
            await asyncio.wait_for(projecting, 30)

    scored = Counter(decode(v).lead.lead_id for v in await read_topic(settings, Topic.LEADS_SCORED)
                     if isinstance(decode(v), LeadScored))
    assert set(scored) == leads                    # nothing lost
    assert set(scored.values()) == {1}             # nothing scored twice
    async with db(settings) as pool:
        sends = await pool.fetch("SELECT lead_id, count(*) AS n FROM contact_ledger "
                                 "WHERE status = 'sent' GROUP BY lead_id")
    assert {r["lead_id"] for r in sends} == {e.lead.lead_id for e in to_contact}
    assert {r["n"] for r in sends} == {1}


async def _is(value: object, expected: int) -> bool:
    return await value == expected  # type: ignore[misc]


async def _now(settings: Settings) -> object:
    async with db(settings) as pool:
        return await pool.fetchval("SELECT now()")


async def _heartbeats_since(settings: Settings, since: object) -> bool:
    async with db(settings) as pool:
        jobs = {r["job"] for r in await pool.fetch(
            "SELECT job FROM stage_instances WHERE last_seen > $1", since)}
    return {"score", "contact"} <= jobs
