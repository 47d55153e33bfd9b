"""Contact stage input: ROUTED leads are enrolled in their sequence and sent step 1.

Every routed lead is enrolled (contact_leads) before anything else, so a lead that cannot be
sent now (paused campaign, quota, a tick scoped to another campaign) stays due and is picked up
by a later run's follow-up pass: nothing consumed from the topic is ever dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import asyncpg

from events import ALL_TENANTS, JobName, LeadContacted, LeadEvent, LeadRouted, TickEmitted

from ..runtime.bus import Sent
from ..runtime.db import translated
from ..runtime.drain import Inbound, Outcome
from ..runtime.runs import RunContext
from . import progress
from .outbox import Outbox
from .progress import Progress


def in_scope(p: Progress, tick: TickEmitted) -> bool:
    """Whether the tick's tenant / campaign scope covers this lead."""
    return ((tick.tenant_id == ALL_TENANTS or tick.tenant_id == p.tenant_id)
            and (tick.campaign_id is None or tick.campaign_id == p.campaign_id))


def wants_step_one(p: Progress, ctx: RunContext) -> bool:
    """A freshly routed lead this run should send step 1 to now."""
    return (p.state == "active" and p.step == 0 and in_scope(p, ctx.tick)
            and p.next_action_at is not None and p.next_action_at <= ctx.at)


class ContactLogic:
    """StageLogic for leads.routed, sending through the shared Outbox."""

    job: ClassVar[JobName] = JobName.CONTACT
    accepts: ClassVar[tuple[type[LeadEvent], ...]] = (LeadRouted,)

    def __init__(self, outbox: Outbox, pool: asyncpg.Pool) -> None:
        self.outbox = outbox
        self.pool = pool

    async def process(self, items: Sequence[Inbound], ctx: RunContext) -> list[Outcome]:
        outcomes: list[Outcome] = []
        valid: list[Inbound] = []
        for item in items:
            event = item.event
            assert isinstance(event, LeadEvent)
            if event.lead.route is None:
                outcomes.append(Outcome(item, error=ValueError(
                    f"lead {event.lead.lead_id} has no route; it cannot be contacted")))
            else:
                valid.append(item)
        with translated("contact state"):
            routed = [i.event for i in valid if isinstance(i.event, LeadEvent)]
            fresh = await progress.enroll(self.pool, routed, ctx.at,
                                          [i.partition for i in valid],
                                          [i.record.value for i in valid])
            # Leads enrolled just now are as written; only the others are read back.
            known = {e.lead.lead_id: progress.enrolled(e, ctx.at)
                     for e in routed if e.lead.lead_id in fresh}
            known.update(await progress.fetch(
                self.pool, [e.lead.lead_id for e in routed if e.lead.lead_id not in fresh]))
            wanted = [(item, known[event.lead.lead_id]) for item, event in zip(valid, routed, strict=True)
                      if wants_step_one(known[event.lead.lead_id], ctx)]
            attempts = await self.outbox.attempt_many([p for _, p in wanted], ctx.run_id, ctx.at,
                                                     stop=ctx.stop)
            sent = {id(item): a for (item, _), a in zip(wanted, attempts, strict=True)}
            for item in valid:
                attempt = sent.get(id(item))
                outcomes.append(Outcome(item, [attempt.event] if attempt and attempt.event else []))
        return outcomes

    async def published(self, sent: Sent, ctx: RunContext) -> None:
        contacted = [(e, v) for e, v in zip(sent.events, sent.values, strict=True)
                     if isinstance(e, LeadContacted)]
        with translated("contact ledger"):
            await self.outbox.reported([e for e, _ in contacted], ctx.run_id,
                                       [v for _, v in contacted])
