"""Helpers for the contact integration tests (no tests here): routed leads, a contact service
with a chosen sender, control events, and a look at the contact tables."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import asyncpg

from events import (
    Assignment,
    ControlEvent,
    LeadRouted,
    LeadStatus,
    Qualification,
    ScoreCard,
    ids,
    utcnow,
)
from services.contact.app import build
from services.contact.senders import ProofSender, SendError
from services.contact.templates import Message
from services.pipeline.settings import Settings
from services.runtime.bus import ensure_topics
from services.runtime.db import create_pool
from services.runtime.service import JobService
from tests.factories import NOW, lead_factory


def routed(email: str | None = None, *, sequence: str = "standard", **overrides: Any) -> LeadRouted:
    """A LeadRouted event for a fresh lead (version 4, as after score, qualify, route)."""
    lead = lead_factory(**({"email": email} if email else {}), **overrides).evolve(
        status=LeadStatus.ROUTED, version=4,
        score=ScoreCard(value=80, factors={"industry": 30}, model_version="icp-v1"),
        qualification=Qualification(qualified=True),
        route=Assignment(segment="mid-market", sequence_id=sequence, owner="cleo"))
    return LeadRouted(event_id=ids.event_id(lead.lead_id, "lead.routed"), occurred_at=NOW,
                      recorded_at=NOW, tenant_id=lead.tenant_id, lead=lead)


def control_envelope(tenant: str = "acme") -> dict[str, Any]:
    now = utcnow()
    return dict(event_id=uuid.uuid4(), occurred_at=now, recorded_at=now, tenant_id=tenant,
                requested_by="test")


def make_control(cls: type[ControlEvent], tenant: str = "acme", **fields: Any) -> ControlEvent:
    return cls(**control_envelope(tenant), **fields)


@asynccontextmanager
async def contact_service(settings: Settings, sender: Any = None) -> AsyncIterator[JobService]:
    """The contact service in this process, with ``sender`` (default: proof)."""
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    service = build(settings, sender or ProofSender())
    await service.start()
    try:
        await asyncio.wait_for(service.wait_ready(), 60)
        yield service
    finally:
        await service.stop()


@asynccontextmanager
async def db(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.database_url)
    try:
        yield pool
    finally:
        await pool.close()


async def ledger(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT * FROM contact_ledger ORDER BY email, step")
    return [dict(r) for r in rows]


async def leads(pool: asyncpg.Pool) -> dict[str, dict[str, Any]]:
    """contact_leads by email."""
    rows = await pool.fetch("SELECT * FROM contact_leads")
    return {r["email"]: dict(r) for r in rows}


@dataclass
class RecordingSender:
    """A sender that records each message; ``before_send`` may act first or raise SendError."""

    name: str = "proof"
    confirms_delivery: ClassVar[bool] = True
    sent: list[tuple[str, Message]] = field(default_factory=list)
    calls: int = 0
    before_send: Callable[[Message, int], Awaitable[None]] | None = None

    async def send(self, message: Message, *, idempotency_key: str) -> str | None:
        self.calls += 1
        if self.before_send is not None:
            await self.before_send(message, self.calls)
        self.sent.append((idempotency_key, message))
        return f"rec:{idempotency_key}"

    async def delivered(self, message_id: str | None, *, idempotency_key: str) -> bool | None:
        return any(key == idempotency_key for key, _ in self.sent)

    def recipients(self) -> list[str]:
        return [m.to for _, m in self.sent]


def failing(times: int, *, transient: bool = True) -> Callable[[Message, int], Awaitable[None]]:
    """A before_send hook that fails the first ``times`` calls."""

    async def hook(message: Message, call: int) -> None:
        if call <= times:
            raise SendError("451 try again later", transient=transient)

    return hook


def day(n: int, base: datetime = NOW) -> datetime:
    """``base`` plus ``n`` days: tick times far enough apart for every cooldown."""
    from datetime import timedelta

    return base + timedelta(days=n)
