"""Read functions for the dashboard and the export: failures, holds, control state, summaries."""

from __future__ import annotations

from typing import Any

import asyncpg

from . import controls, ledger, progress


async def failed_attempts(pool: asyncpg.Pool, campaign_id: str | None = None,
                          limit: int = 100) -> list[dict[str, Any]]:
    """Steps marked failed, newest first: lead, step, attempts and the reason."""
    return [dict(r) for r in await ledger.failures(pool, campaign_id, limit)]


async def held_leads(pool: asyncpg.Pool, campaign_id: str | None = None,
                     limit: int = 100) -> list[dict[str, Any]]:
    """Leads waiting on a limit, a pause or a retry, with when they are due again."""
    return [dict(r) for r in await progress.held(pool, campaign_id, limit)]


async def control_state(pool: asyncpg.Pool, tenant_id: str | None = None) -> dict[str, Any]:
    """Paused campaigns, kill switches, suppression / unsubscribe / reply counts."""
    return await controls.summary(pool, tenant_id)


async def campaign_summary(pool: asyncpg.Pool, campaign_id: str | None = None) -> dict[str, Any]:
    """Ledger rows by status and leads by outreach state (one campaign, or all)."""
    return {"campaign_id": campaign_id,
            "sends": await ledger.status_counts(pool, campaign_id),
            "leads": await progress.state_counts(pool, campaign_id)}
