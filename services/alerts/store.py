"""Postgres side of the notifier: the readings the rules judge (read models, one snapshot),
and the incidents and deliveries it keeps (schemas/sql/009_alerts.sql)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ..projector.queries.common import Conn, snapshot
from ..runtime.config import AlertRules
from .incidents import Decision, Incident
from .messages import FIRE, RESOLVE, Notification
from .rules import JobReading, Readings

# --- readings ----------------------------------------------------------------------------


async def readings(conn: Conn, rules: AlertRules, now: datetime) -> Readings:
    """Everything the rules look at, read in one repeatable-read snapshot."""
    runs_since = now - rules.success_rate.window
    letters_since = now - rules.dead_letters.window
    async with snapshot(conn) as db:
        metrics = await db.fetch(
            "SELECT job, consecutive_failures FROM job_metrics WHERE tenant_id = '*'")
        windowed = {r["job"]: r for r in await db.fetch(
            """
            SELECT job, count(*) FILTER (WHERE status = 'completed') AS completed,
                   count(*) FILTER (WHERE status = 'failed') AS failed
            FROM job_runs
            WHERE status IN ('completed', 'failed') AND coalesce(completed_at, recorded_at) >= $1
            GROUP BY job
            """, runs_since)}
        failing = [r["job"] for r in metrics if r["consecutive_failures"] > 0]
        errors = {r["job"]: r["error"] or r["reason"] for r in await db.fetch(
            """
            SELECT DISTINCT ON (job) job, error, reason FROM job_runs
            WHERE status = 'failed' AND job = ANY($1::text[])
            ORDER BY job, coalesce(completed_at, recorded_at) DESC, run_id DESC
            """, failing)} if failing else {}
        status = await db.fetchrow(
            "SELECT lag, extract(epoch FROM now() - updated_at)::float8 AS age "
            "FROM projector_progress")
        letters = {r["stage"]: r["n"] for r in await db.fetch(
            """
            SELECT coalesce(stage, 'none') AS stage, count(*) FILTER (WHERE recorded_at >= $1) AS n
            FROM dead_letters GROUP BY 1
            """, letters_since)}
    jobs = {}
    for r in metrics:
        w = windowed.get(r["job"])
        jobs[r["job"]] = JobReading(
            job=r["job"], consecutive_failures=r["consecutive_failures"],
            completed_in_window=w["completed"] if w else 0,
            failed_in_window=w["failed"] if w else 0, last_error=errors.get(r["job"]))
    return Readings(jobs=jobs, projector_lag=status["lag"] if status else None,
                    projector_status_age=status["age"] if status else None, dead_letters=letters)


# --- incidents ---------------------------------------------------------------------------

_INCIDENT = "incident_id, rule, subject, severity, since, fired_at, value, summary"


def _incident(r: asyncpg.Record) -> Incident:
    return Incident(incident_id=r["incident_id"], rule=r["rule"], subject=r["subject"],
                    severity=r["severity"], since=r["since"], fired_at=r["fired_at"],
                    value=r["value"], summary=r["summary"])


async def open_incidents(conn: Conn) -> list[Incident]:
    rows = await conn.fetch(
        f"SELECT {_INCIDENT} FROM alert_incidents WHERE resolved_at IS NULL "  # noqa: S608
        "ORDER BY since, incident_id")
    return [_incident(r) for r in rows]


async def record(conn: asyncpg.Connection, decision: Decision,
                 destinations: Callable[[str], list[str]]) -> None:
    """Write a decision (call inside a transaction): new and fired incidents with their fire
    deliveries, resolutions with theirs (to the destinations the fire reached), drops."""
    for incident in [*decision.opened, *decision.fired]:
        await conn.execute(
            f"""
            INSERT INTO alert_incidents ({_INCIDENT}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (incident_id) DO UPDATE SET fired_at = EXCLUDED.fired_at,
                value = EXCLUDED.value, summary = EXCLUDED.summary
            """,  # noqa: S608 - a constant column list
            incident.incident_id, incident.rule, incident.subject, incident.severity,
            incident.since, incident.fired_at, incident.value, incident.summary)
    for incident in decision.fired:
        await conn.executemany(
            "INSERT INTO alert_deliveries (incident_id, kind, destination) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING",
            [(incident.incident_id, FIRE, d) for d in destinations(incident.rule)])
    for resolution in decision.resolved:
        incident_id = resolution.incident.incident_id
        await conn.execute(
            "UPDATE alert_incidents SET resolved_at = $2, resolved_summary = $3 "
            "WHERE incident_id = $1", incident_id, resolution.at, resolution.summary)
        await conn.execute(
            "UPDATE alert_deliveries SET status = 'abandoned', last_error = $2 "
            "WHERE incident_id = $1 AND kind = 'fire' AND status = 'pending'",
            incident_id, "the incident resolved before its fire was delivered")
        if resolution.notify:
            await conn.execute(
                """
                INSERT INTO alert_deliveries (incident_id, kind, destination)
                SELECT incident_id, 'resolve', destination FROM alert_deliveries
                WHERE incident_id = $1 AND kind = 'fire' AND status = 'sent'
                ON CONFLICT DO NOTHING
                """, incident_id)
    if decision.dropped:
        await conn.execute("DELETE FROM alert_incidents WHERE incident_id = ANY($1::uuid[])",
                           [i.incident_id for i in decision.dropped])


# --- deliveries --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    notification: Notification
    destination: str
    attempts: int

    @property
    def key(self) -> tuple[uuid.UUID, str, str]:
        n = self.notification
        return uuid.UUID(n.incident_id), n.kind, self.destination


async def pending_deliveries(conn: Conn) -> list[Delivery]:
    """Deliveries still to make, in the order their events happened."""
    rows = await conn.fetch(
        """
        SELECT d.kind, d.destination, d.attempts, i.incident_id, i.rule, i.subject, i.severity,
               i.since, i.fired_at, i.resolved_at, i.summary, i.resolved_summary
        FROM alert_deliveries d JOIN alert_incidents i USING (incident_id)
        WHERE d.status = 'pending'
        ORDER BY CASE d.kind WHEN 'resolve' THEN i.resolved_at ELSE i.fired_at END,
                 d.incident_id, d.kind, d.destination
        """)
    out = []
    for r in rows:
        resolve = r["kind"] == RESOLVE
        out.append(Delivery(
            Notification(kind=r["kind"], incident_id=str(r["incident_id"]), rule=r["rule"],
                         subject=r["subject"], severity=r["severity"],
                         summary=(r["resolved_summary"] or r["summary"]) if resolve else r["summary"],
                         since=r["since"], fired_at=r["fired_at"],
                         resolved_at=r["resolved_at"] if resolve else None),
            r["destination"], r["attempts"]))
    return out


async def delivered(conn: Conn, delivery: Delivery) -> None:
    await conn.execute(
        "UPDATE alert_deliveries SET status = 'sent', sent_at = now(), attempts = attempts + 1, "
        "last_error = NULL WHERE incident_id = $1 AND kind = $2 AND destination = $3",
        *delivery.key)


async def failed(conn: Conn, delivery: Delivery, error: str, *, give_up: bool) -> None:
    await conn.execute(
        "UPDATE alert_deliveries SET attempts = attempts + 1, last_error = $4, "
        "status = CASE WHEN $5 THEN 'abandoned' ELSE status END "
        "WHERE incident_id = $1 AND kind = $2 AND destination = $3",
        *delivery.key, error, give_up)


async def prune(conn: Conn, before: datetime) -> int:
    """Forget incidents resolved before ``before`` (their deliveries go with them)."""
    result = await conn.execute(
        "DELETE FROM alert_incidents WHERE resolved_at IS NOT NULL AND resolved_at < $1", before)
    return int(result.split()[-1])
