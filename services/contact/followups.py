"""The follow-up pass of a contact run: every lead whose next action is due by the tick's time
gets its next step (or its retry), within what is left of the run's budget."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from events import ALL_TENANTS

from ..runtime.budget import RunBudget
from ..runtime.bus import Publisher
from ..runtime.db import translated
from ..runtime.runs import RunContext
from . import controls, progress
from .outbox import Attempt, Outbox

#: Attempt kinds that did not use the run's budget: the lead waits, untouched.
NOT_COUNTED = frozenset({"held", "busy", "done", "deferred"})


@dataclass(slots=True)
class Tally:
    """What a follow-up pass did, counted as it goes (attempts are not kept)."""

    #: Budget units per tenant (sent, stopped, failed or retry scheduled), and failures.
    by_tenant: Counter[str] = field(default_factory=Counter)
    failed_by_tenant: Counter[str] = field(default_factory=Counter)

    def add(self, attempts: Sequence[Attempt], tenants: Mapping[UUID, str]) -> None:
        """Count a batch's attempts; ``tenants``: each lead's tenant."""
        self.by_tenant.update(tenants[a.lead_id] for a in attempts if a.kind not in NOT_COUNTED)
        self.failed_by_tenant.update(tenants[a.lead_id] for a in attempts if a.kind == "failed")


class FollowUps:
    """Finds due leads in contact_leads and sends each its next step through the Outbox."""

    def __init__(self, outbox: Outbox, pool: asyncpg.Pool, publisher: Publisher,
                 batch_size: int, owned: Callable[[], Sequence[int]] | None = None) -> None:
        self.outbox = outbox
        self.pool = pool
        self.publisher = publisher
        self.batch_size = batch_size
        # The leads.routed partitions this instance owns: their leads' follow-ups are its own,
        # so two instances never take the same lead (None: every lead, one instance).
        self.owned = owned

    async def run(self, ctx: RunContext, budget: RunBudget, deadline: float) -> tuple[Tally, bool]:
        """(what the pass did, timed out)."""
        with translated("contact state"):
            return await self._run(ctx, budget, deadline)

    async def _run(self, ctx: RunContext, budget: RunBudget, deadline: float) -> tuple[Tally, bool]:
        tick = ctx.tick
        tenant = None if tick.tenant_id == ALL_TENANTS else tick.tenant_id
        # Paused campaigns wait without being looked at (each send re-checks anyway).
        paused = await controls.paused_campaigns(self.pool, tick.tenant_id)
        partitions = list(self.owned()) if self.owned is not None else None
        tally = Tally()
        while time.monotonic() < deadline and not ctx.stopping:
            granted = await budget.claim(self.batch_size)
            if granted == 0:
                return tally, False
            due = await progress.due(
                self.pool, at=ctx.at, run_id=ctx.run_id, tenant_id=tenant,
                campaign_id=tick.campaign_id, skip_campaigns=paused, limit=granted,
                partitions=partitions)
            if not due:
                await budget.release(granted)
                return tally, False
            batch = await self.outbox.attempt_many(due, ctx.run_id, ctx.at, stop=ctx.stop)
            # Every lead looked at is marked with the run, so `due` never returns it again in
            # this run (a set of visited ids would grow with the run).
            await progress.touch(self.pool, [p.lead_id for p in due], ctx.run_id)
            await self._report(batch, ctx)
            tally.add(batch, {p.lead_id: p.tenant_id for p in due})
            await budget.release(granted - used(batch))
        return tally, True

    async def _report(self, batch: Sequence[Attempt], ctx: RunContext) -> None:
        events = [a.event for a in batch if a.event is not None]
        sent = await self.publisher.publish(events)
        await self.outbox.reported(events, ctx.run_id, sent.values)


def used(attempts: Sequence[Attempt]) -> int:
    """Budget units a batch used: every attempt that sent, stopped, failed or scheduled a retry."""
    return sum(1 for a in attempts if a.kind not in NOT_COUNTED)
