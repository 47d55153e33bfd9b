"""Owner of the read-model tables: loads what a batch needs, writes what it changed.

The connection's search_path selects the schema (live or a rebuild's shadow), so the SQL here
never names one. Bulk rows go through COPY into temporary tables, then one statement each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from events import DeadLettered, LeadEvent
from events.runs import PartRow, RunRow

from .fold import Changes, Loaded, Positioned, keys_of, to_check
from .rows import MetricsRow

LEAD_COLUMNS = (
    "lead_id", "tenant_id", "campaign_id", "email", "first_name", "last_name", "title", "company",
    "domain", "industry", "employees", "country", "status", "version", "score", "score_factors",
    "model_version", "qualified", "reasons", "segment", "sequence_id", "owner", "contact_step",
    "last_contacted_at", "next_action_at", "do_not_contact", "created_at", "updated_at",
    "last_event_id",
)

LEAD_EVENT_COLUMNS = (
    "event_id", "lead_id", "type", "version", "status", "tenant_id", "campaign_id", "occurred_at",
    "recorded_at", "correlation_id", "causation_id", "replay_id", "topic", "partition", "offset",
    "payload",
)

DEAD_LETTER_COLUMNS = (
    "event_id", "stage", "lead_id", "tenant_id", "origin", "original_type", "error_type", "error",
    "attempts", "recorded_at", "payload",
)


#: Which of a batch's suspect events lead_events holds: (lead ids, versions, event ids).
#: One probe of the primary key per suspect, by LATERAL ... LIMIT 1: as a join, a large batch
#: was planned as a hash join over the whole table, and matching the leads and the ids as two
#: arrays made the index scan 20x slower than one probe each.
KNOWN_LEAD_EVENTS = """
SELECT e.event_id
FROM unnest($1::uuid[], $2::int[], $3::uuid[]) AS k(lead_id, version, event_id)
CROSS JOIN LATERAL (
    SELECT event_id FROM lead_events
    WHERE (lead_id, version, event_id) = (k.lead_id, k.version, k.event_id) LIMIT 1) AS e
"""


def lead_row(event: LeadEvent) -> tuple[Any, ...]:
    """The ``leads`` row for the snapshot an event carries."""
    lead = event.lead
    score, qual, route, outreach = lead.score, lead.qualification, lead.route, lead.outreach
    return (
        lead.lead_id, lead.tenant_id, lead.campaign_id, lead.email, lead.first_name,
        lead.last_name, lead.title, lead.company, lead.domain, lead.industry, lead.employees,
        lead.country, lead.status.value, lead.version,
        score.value if score else None, dict(score.factors) if score else None,
        score.model_version if score else None,
        qual.qualified if qual else None, list(qual.reasons) if qual else None,
        route.segment if route else None, route.sequence_id if route else None,
        route.owner if route else None,
        outreach.step if outreach else None, outreach.last_contacted_at if outreach else None,
        outreach.next_action_at if outreach else None,
        lead.do_not_contact, lead.created_at, lead.updated_at, event.event_id,
    )


def lead_event_row(item: Positioned) -> tuple[Any, ...]:
    event = item.event
    assert isinstance(event, LeadEvent)
    lead = event.lead
    return (
        event.event_id, lead.lead_id, event.type, lead.version, lead.status.value, lead.tenant_id,
        lead.campaign_id, event.occurred_at, event.recorded_at, event.correlation_id,
        event.causation_id, event.replay_id, item.topic, item.partition, item.offset,
        item.raw if item.raw is not None else event.model_dump(mode="json"),
    )


def dead_letter_row(event: DeadLettered) -> tuple[Any, ...]:
    return (
        event.event_id, event.stage.value if event.stage else None, event.lead_id, event.tenant_id,
        event.origin, event.original_type, event.error_type, event.error, event.attempts,
        event.recorded_at, event.model_dump(mode="json"),
    )


async def stored_offsets(conn: asyncpg.Connection) -> dict[tuple[str, int], int]:
    rows = await conn.fetch("SELECT topic, partition, next_offset FROM projector_offsets")
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def load(conn: asyncpg.Connection, batch: Sequence[Positioned]) -> Loaded:
    """Read the current rows for every key the batch touches."""
    leads, runs, jobs = keys_of(batch)
    loaded = Loaded()
    if leads:
        rows = await conn.fetch("SELECT lead_id, version, tenant_id, campaign_id, status FROM leads "
                                "WHERE lead_id = ANY($1::uuid[])", list(leads))
        loaded.lead_versions = {r["lead_id"]: r["version"] for r in rows}
        loaded.lead_statuses = {r["lead_id"]: (r["tenant_id"], r["campaign_id"], r["status"])
                                for r in rows}
    suspects = to_check(batch, loaded.lead_versions)
    if suspects.lead_events:
        keys = list(suspects.lead_events)
        rows = await conn.fetch(KNOWN_LEAD_EVENTS, [k[0] for k in keys], [k[1] for k in keys],
                                [k[2] for k in keys])
        loaded.known_event_ids.update(r["event_id"] for r in rows)
    if suspects.dead_letters:
        rows = await conn.fetch("SELECT event_id FROM dead_letters WHERE event_id = ANY($1::uuid[])",
                                list(suspects.dead_letters))
        loaded.known_event_ids.update(r["event_id"] for r in rows)
    if runs:
        rows = await conn.fetch("SELECT * FROM job_run_parts WHERE run_id = ANY($1::uuid[])", list(runs))
        loaded.parts = {(r["run_id"], r["part"]): PartRow.from_row(r) for r in rows}
        rows = await conn.fetch("SELECT * FROM job_runs WHERE run_id = ANY($1::uuid[])", list(runs))
        loaded.runs = {r["run_id"]: RunRow.from_row(r) for r in rows}
    if jobs:
        rows = await conn.fetch("SELECT * FROM job_metrics WHERE job = ANY($1::text[])", list(jobs))
        loaded.metrics = {(r["job"], r["tenant_id"]): MetricsRow.from_row(r) for r in rows}
    return loaded


async def _ensure_temp_tables(conn: asyncpg.Connection) -> None:
    await conn.execute(
        """
        CREATE TEMP TABLE IF NOT EXISTS batch_leads
            (LIKE leads INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
        """)


async def prune(conn: asyncpg.Connection, before: datetime) -> tuple[int, int]:
    """Delete job runs and lead events recorded before ``before``: (runs, events) removed.

    job_metrics are totals and stay; leads keep their current snapshot.
    """
    runs = await conn.fetch("DELETE FROM job_runs WHERE recorded_at < $1 AND status <> 'running' "
                            "RETURNING run_id", before)
    if runs:
        await conn.execute("DELETE FROM job_run_parts WHERE run_id = ANY($1::uuid[])",
                           [r["run_id"] for r in runs])
    events = await conn.execute("DELETE FROM lead_events WHERE recorded_at < $1", before)
    return len(runs), int(events.split()[-1])


async def write(conn: asyncpg.Connection, changes: Changes) -> list[tuple[int, int]]:
    """Write one batch's changes and offsets (the caller holds the transaction); return what
    each retention run in the batch pruned."""
    # New leads go straight in; only leads the table already holds need the upsert's merge.
    fresh = [lead_row(e) for lead_id, e in changes.leads.items() if lead_id in changes.new_leads]
    known = [lead_row(e) for lead_id, e in changes.leads.items() if lead_id not in changes.new_leads]
    if fresh:
        await conn.copy_records_to_table("leads", records=fresh, columns=LEAD_COLUMNS)
    if known:
        await _ensure_temp_tables(conn)
        await conn.copy_records_to_table("batch_leads", records=known, columns=LEAD_COLUMNS)
        assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in LEAD_COLUMNS if c != "lead_id")
        await conn.execute(
            f"""
            INSERT INTO leads ({", ".join(LEAD_COLUMNS)})
            SELECT {", ".join(LEAD_COLUMNS)} FROM batch_leads
            ON CONFLICT (lead_id) DO UPDATE SET {assignments}
            WHERE leads.version < EXCLUDED.version
            """)  # noqa: S608 - column names are constants of this module
    if changes.lead_events:
        await conn.copy_records_to_table(
            "lead_events", records=[lead_event_row(i) for i in changes.lead_events],
            columns=LEAD_EVENT_COLUMNS)
    if changes.dead_letters:
        await conn.executemany(
            f"""
            INSERT INTO dead_letters ({", ".join(DEAD_LETTER_COLUMNS)})
            VALUES ({", ".join(f"${i}" for i in range(1, len(DEAD_LETTER_COLUMNS) + 1))})
            ON CONFLICT (event_id) DO NOTHING
            """, [dead_letter_row(e) for e in changes.dead_letters])  # noqa: S608
    await _upsert(conn, "job_run_parts", PartRow.columns(), ("run_id", "part"),
                  [p.astuple() for p in changes.parts.values()])
    await _upsert(conn, "job_runs", RunRow.columns(), ("run_id",),
                  [r.astuple() for r in changes.runs.values()])
    await _upsert(conn, "job_metrics", MetricsRow.columns(), ("job", "tenant_id"),
                  [m.astuple() for m in changes.metrics.values()])
    if changes.daily:
        # Sorted, so that rebuild workers adding to the same rows lock them in one order.
        keys = sorted(changes.daily)
        await conn.execute(
            """
            INSERT INTO pipeline_daily (day, tenant_id, campaign_id, metric, count)
            SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::text[], $5::bigint[])
            ON CONFLICT (day, tenant_id, campaign_id, metric)
            DO UPDATE SET count = pipeline_daily.count + EXCLUDED.count
            """,
            [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys],
            [changes.daily[k] for k in keys])
    if changes.lead_counts:
        await _move_counts(conn, changes.lead_counts)
    pruned = [await prune(conn, before) for _, before in changes.prunes]
    if changes.offsets:
        items = list(changes.offsets.items())
        await conn.execute(
            """
            INSERT INTO projector_offsets (topic, partition, next_offset)
            SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])
            ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset
            """,
            [k[0] for k, _ in items], [k[1] for k, _ in items], [v for _, v in items])
    return pruned


async def _move_counts(conn: asyncpg.Connection, moved: Counter[tuple[str, str, str]]) -> None:
    # Sorted, so that rebuild workers moving the same rows lock them in one order. A row that
    # reaches zero is removed: the table then holds the same rows however the log was batched.
    keys = sorted(moved)
    columns = ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
               [moved[k] for k in keys])
    await conn.execute(
        """
        INSERT INTO lead_counts (tenant_id, campaign_id, status, n)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
        ON CONFLICT (tenant_id, campaign_id, status) DO UPDATE SET n = lead_counts.n + EXCLUDED.n
        """, *columns)
    if any(n < 0 for n in moved.values()):
        await conn.execute(
            """
            DELETE FROM lead_counts c
            USING unnest($1::text[], $2::text[], $3::text[]) AS k(tenant_id, campaign_id, status)
            WHERE c.n = 0 AND (c.tenant_id, c.campaign_id, c.status) =
                              (k.tenant_id, k.campaign_id, k.status)
            """, *columns[:3])


async def record_status(conn: asyncpg.Connection, lag: int | None, applied: int,
                        worker: int = 0) -> None:
    """Publish a projector worker's lag and progress for health checks."""
    await conn.execute(
        """
        INSERT INTO projector_status (id, lag, events_applied, updated_at)
        VALUES ($3 + 1, $1, $2, now())
        ON CONFLICT (id) DO UPDATE SET lag = EXCLUDED.lag,
            events_applied = projector_status.events_applied + EXCLUDED.events_applied,
            updated_at = now()
        """, lag, applied, worker)


async def forget_workers(conn: asyncpg.Connection, workers: int) -> None:
    """Drop the status rows of workers beyond ``workers`` (left by a larger split), whose old
    reports would read as a silent projector."""
    await conn.execute("DELETE FROM projector_status WHERE id > $1", workers)


async def _upsert(conn: asyncpg.Connection, table: str, columns: tuple[str, ...],
                  key: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
    await conn.executemany(
        f"""
        INSERT INTO {table} ({", ".join(columns)}) VALUES ({placeholders})
        ON CONFLICT ({", ".join(key)}) DO UPDATE SET {updates}
        """, rows)  # noqa: S608 - table and column names are constants of this package
