"""SIGTERM mid-run: the service ends the run after its batch in hand (or abandons it, uncommitted,
after shutdown_grace), reports job.failed "stopped", exits 0; a restart finishes the work with
nothing lost and nothing done twice. Real processes, real broker and Postgres."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from events import JobName, TickEmitted
from services.clock.manual import manual_tick
from services.contact.config import ContactConfig
from services.contact.templates import Message
from services.pipeline.settings import Settings
from services.pipeline.stack import Stack
from services.runtime.bus import ensure_topics
from services.runtime.config import JobConfig, StageConfig, TopicsConfig
from services.runtime.embedded import free_port
from services.runtime.service import JobService
from tests.factories import source_rows, write_csv
from tests.harness import (
    SlowInbox,
    Ticker,
    committed,
    eventually,
    job_starts,
    make_config,
    project,
    publish,
    publish_leads,
    read_models,
    wait_for_group,
    wait_for_progress,
)
from tests.harness.clock import ScriptedExecutor
from tests.harness.contact import RecordingSender, contact_service, day, db, leads, ledger, routed


async def test_sigterm_mid_run_stops_after_the_batch_reports_stopped_and_exits_0(
        settings: Settings, tmp_path: Path) -> None:
    total = 3000
    settings = settings.using(make_config(settings.prefix, stage=StageConfig(batch_size=5),
                                          jobs={JobName.SCORE: JobConfig(max_leads_per_run=total)}))
    config = tmp_path / "stop.toml"
    config.write_text(f'[topics]\nprefix = "{settings.prefix}"\npartitions = 3\n'
                      f'[stage]\nbatch_size = 5\nshutdown_grace = "5s"\n'
                      f'[jobs.score]\nmax_leads_per_run = {total}\n')
    leads = await publish_leads(settings, total, "stop")
    stack = Stack(config=config, services=(), workdir=tmp_path, database_url=settings.database_url,
                  bootstrap=settings.kafka_bootstrap_servers)
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    proc = stack.spawn("score", instance="s1")
    try:
        await wait_for_group(settings, {proc.pid})
        async with Ticker(settings) as ticker:
            tick = manual_tick(JobName.SCORE, requested_by="test")
            before = await committed(settings)
            async with job_starts(settings) as started:
                await ticker.publish(tick)
                await asyncio.wait_for(started(tick.tick_id, "s1"), 60)
            await asyncio.wait_for(wait_for_progress(settings, [0, 1, 2], before), 60)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 30)
            assert code == 0, stack.tail("score-s1")
            stopped = await ticker.wait(tick, timeout=30)
            assert (stopped.status, stopped.reason) == ("failed", "stopped"), stopped
            assert 0 < stopped.leads_processed < total
            log = (stack.log_dir / "score-s1.log").read_text()
            assert "Traceback" not in log and "pool is closing" not in log, log[-3000:]

            proc = stack.spawn("score", instance="s1")  # a restart finishes the work
            await wait_for_group(settings, {proc.pid})
            rest = await ticker.run(JobName.SCORE, timeout=120)
            assert rest.status == "completed"
            assert stopped.leads_processed + rest.leads_processed >= total
    finally:
        stack.stop()
    await project(settings)
    async with read_models(settings) as db:
        scored = await db.fetch("SELECT lead_id, count(*) AS n FROM lead_events "
                                "WHERE type = 'lead.scored' GROUP BY lead_id")
    assert {r["lead_id"] for r in scored} == leads  # nothing lost
    assert {r["n"] for r in scored} == {1}          # nothing scored twice


@pytest.mark.any_broker
async def test_a_run_stuck_past_the_grace_is_abandoned_and_reported_stopped(
        settings: Settings) -> None:
    settings = settings.using(make_config(
        settings.prefix, stage=StageConfig(batch_size=5, shutdown_grace=timedelta(seconds=1))))
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    executor = ScriptedExecutor(gate=asyncio.Event())  # never opened: the run ignores the stop
    service = JobService(JobName.SCORE, settings, lambda _: executor)
    await service.start()
    async with Ticker(settings) as ticker:
        await asyncio.wait_for(service.wait_ready(), 60)
        tick: TickEmitted = manual_tick(JobName.SCORE, requested_by="test")
        await ticker.publish(tick)
        await asyncio.wait_for(executor.started.wait(), 30)
        await asyncio.wait_for(service.stop(), 20)  # grace 1 s, then abandoned
        run = await ticker.wait(tick, timeout=30)
    assert (run.status, run.reason) == ("failed", "stopped")
    assert "not committed" in (run.error or "")


@pytest.mark.any_broker
async def test_sigterm_to_contact_mid_run_ends_after_the_sends_in_flight_and_sends_nothing_twice(
        settings: Settings, tmp_path: Path) -> None:
    total = 400
    box, port = SlowInbox(delay=0.05), free_port()
    smtp = Controller(box, hostname="127.0.0.1", port=port)
    smtp.start()
    config = tmp_path / "contact.toml"
    config.write_text(f'[topics]\nprefix = "{settings.prefix}"\npartitions = 3\n'
                      f'[stage]\nshutdown_grace = "10s"\n'
                      f'[jobs.contact]\nmax_leads_per_run = {total}\ntimeout_seconds = 120\n'
                      f'[contact]\nsender = "smtp"\nfrom_address = "sales@leadflow.test"\n'
                      f'[contact.smtp]\nhost = "127.0.0.1"\nport = {port}\ntls = "none"\n')
    leads = [routed(f"stop{i}@d{i}.test") for i in range(total)]
    await publish(settings, leads)
    stack = Stack(config=config, services=(), workdir=tmp_path, database_url=settings.database_url,
                  bootstrap=settings.kafka_bootstrap_servers)
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    proc = stack.spawn("contact", instance="c1")
    try:
        async with db(settings) as pool, Ticker(settings) as ticker:
            await eventually(lambda: _registered(pool, proc.pid), 60, "contact registered")
            tick = manual_tick(JobName.CONTACT, requested_by="test")
            await ticker.publish(tick)
            await eventually(lambda: _at_least(box, 40), 60, "the first sends arrived")
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 30)
            assert code == 0, stack.tail("contact-c1")
            stopped = await ticker.wait(tick, timeout=30)
            assert (stopped.status, stopped.reason) == ("failed", "stopped"), stopped
            # The run ends after the control window in flight, not after the batch in hand
            # (its unsent leads were consumed and stay due: leads_processed may reach total).
            assert stopped.leads_processed > 0 and 0 < len(box.keys) < total
            log = (stack.log_dir / "contact-c1.log").read_text()
            assert "Traceback" not in log and "pool is closing" not in log, log[-3000:]
            in_ledger = await pool.fetch("SELECT status FROM contact_ledger")
            assert {r["status"] for r in in_ledger} == {"sent"}  # no send left unresolved

            proc = stack.spawn("contact", instance="c1")  # a restart finishes the work
            await eventually(lambda: _registered(pool, proc.pid), 60, "contact registered again")
            rest = await ticker.run(JobName.CONTACT, timeout=120)
            assert rest.status == "completed", rest
            sent = await pool.fetchval("SELECT count(*) FROM contact_ledger WHERE status = 'sent'")
    finally:
        stack.stop()
        smtp.stop()
    received = Counter(box.keys)
    assert sent == total == len(received)         # every lead's first step, nothing lost
    assert set(received.values()) == {1}          # and nothing sent twice


@pytest.mark.any_broker
async def test_a_stop_mid_batch_ends_the_contact_run_after_the_window_in_flight(
        settings: Settings) -> None:
    window, total = 10, 60
    # One partition: the first fetch brings the whole backlog, so the batch in hand is 60 long.
    settings = settings.using(make_config(
        settings.prefix, topics=TopicsConfig(prefix=settings.prefix, partitions=1),
        contact=ContactConfig(control_window_sends=window)))
    await publish(settings, [routed(f"s{i}@stop{i}.com") for i in range(total)])
    stopping: list[asyncio.Task[None]] = []
    sender = RecordingSender()
    async with contact_service(settings, sender) as service, Ticker(settings) as ticker:
        assert service.controller is not None

        async def stop_during_the_fifteenth(message: Message, call: int) -> None:
            if call == 15:  # the 5th send of the 2nd window
                stopping.append(asyncio.create_task(service.controller.shutdown(30)))
                await asyncio.sleep(0.2)  # the stop is seen while this window is in flight

        sender.before_send = stop_during_the_fifteenth
        tick = manual_tick(JobName.CONTACT, requested_by="test", at=day(0),
                           max_leads=total)
        await ticker.publish(tick)
        stopped = await ticker.wait(tick, timeout=60)
        await asyncio.gather(*stopping)
        async with db(settings) as pool:
            progress = await leads(pool)
            entries = await ledger(pool)
    assert (stopped.status, stopped.reason) == ("failed", "stopped"), stopped
    # The window in flight finishes; none after it opens, however large the batch in hand.
    assert 15 <= len(sender.sent) <= 2 * window
    # The batch was claimed at once (proof mode); the claims not sent were given back.
    assert Counter(e["status"] for e in entries) == {"sent": len(sender.sent),
                                                      "pending": total - len(sender.sent)}
    assert {e["attempts"] for e in entries if e["status"] == "pending"} == {0}
    # The rest of the batch was consumed and enrolled: due for the next run, held by nothing.
    waiting = [p for p in progress.values() if p["step"] == 0]
    assert len(progress) == total and len(waiting) == total - len(sender.sent)
    assert {(p["state"], p["hold_reason"]) for p in waiting} == {("active", None)}


async def _registered(pool: asyncpg.Pool, pid: int) -> bool:
    return await _job_registered(pool, "contact", pid)


async def _at_least(box: SlowInbox, n: int) -> bool:
    return len(box.keys) >= n


@pytest.mark.any_broker
async def test_sigterm_to_harvest_projector_and_clock_mid_work_exits_0_and_loses_nothing(
        settings: Settings, tmp_path: Path) -> None:
    total = 20_000
    source = write_csv(tmp_path / "leads.csv", source_rows(total))
    config = tmp_path / "harvest.toml"
    config.write_text(f'[topics]\nprefix = "{settings.prefix}"\npartitions = 3\n'
                      f'[stage]\nshutdown_grace = "10s"\n'
                      f'[jobs.harvest]\nmax_leads_per_run = {total}\n'
                      f'[jobs.score]\nschedule = "every 1s"\n'  # the clock is busy when stopped
                      f'[[harvest.sources]]\npath = "{source}"\ntenant = "acme"\n'
                      f'campaign = "q4"\n')
    stack = Stack(config=config, services=(), workdir=tmp_path, database_url=settings.database_url,
                  bootstrap=settings.kafka_bootstrap_servers)
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    names = ("harvest", "projector", "clock")
    procs = {name: stack.spawn(name, instance="h1") for name in names}
    try:
        async with db(settings) as pool, Ticker(settings) as ticker:
            await eventually(lambda: _job_registered(pool, "harvest", procs["harvest"].pid), 60,
                           "harvest registered")
            tick = manual_tick(JobName.HARVEST, requested_by="test")
            await ticker.publish(tick)
            await eventually(lambda: _leads_at_least(settings, 500), 60, "leads being folded")
            for proc in procs.values():
                proc.send_signal(signal.SIGTERM)
            for name, proc in procs.items():
                code = await asyncio.to_thread(proc.wait, 30)
                log = (stack.log_dir / f"{name}-h1.log").read_text()
                assert code == 0, log[-3000:]
                assert "Traceback" not in log, log[-3000:]
            stopped = await ticker.wait(tick, timeout=30)
            assert (stopped.status, stopped.reason) == ("failed", "stopped"), stopped
            assert 0 < stopped.leads_processed < total

            harvest = stack.spawn("harvest", instance="h1")  # a restart finishes the import
            await eventually(lambda: _job_registered(pool, "harvest", harvest.pid), 60,
                           "harvest registered again")
            rest = await ticker.run(JobName.HARVEST, timeout=120)
            assert rest.status == "completed", rest
    finally:
        stack.stop()
    await project(settings)  # picks up from the offsets the stopped projector committed
    async with read_models(settings) as models:
        assert await models.fetchval("SELECT count(*) FROM leads") == total
        assert await models.fetchval(
            "SELECT count(*) FROM lead_events WHERE type = 'lead.created'") == total


async def _job_registered(pool: asyncpg.Pool, job: str, pid: int) -> bool:
    return await pool.fetchval(
        "SELECT count(*) FROM stage_instances WHERE job = $1 AND pid = $2", job, pid) == 1


async def _leads_at_least(settings: Settings, n: int) -> bool:
    async with read_models(settings) as models:
        try:
            return int(await models.fetchval("SELECT count(*) FROM leads")) >= n
        except asyncpg.UndefinedTableError:
            return False
