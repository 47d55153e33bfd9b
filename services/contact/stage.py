"""Contact stage input: ROUTED leads are enrolled in their sequence and sent step 1.

Every routed lead has its row in contact_leads before its offset is committed, so a lead that
cannot be sent now (paused campaign, quota, a tick scoped to another campaign) stays due and is
picked up by a later run's follow-up pass: nothing consumed from the topic is ever dropped. A
lead sent at once gets its row when its LeadContacted is reported, already at step 1: one write
instead of an enrolment and an update.
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
            known = await progress.fetch(self.pool, [e.lead.lead_id for e in routed])
            fresh = [(i, e) for i, e in zip(valid, routed, strict=True)
                     if e.lead.lead_id not in known]
            # A lead read for the first time is enrolled in memory; its row is written once,
            # by whatever happens to it first (progress.Unwritten).
            self.outbox.unwritten.add([e for _, e in fresh], ctx.at, ctx.run_id,
                                      [i.partition for i, _ in fresh],
                                      [i.record.value for i, _ in fresh])
            known.update((e.lead.lead_id, progress.enrolled(e, ctx.at)) for _, e in fresh)
            wanted = [(item, known[event.lead.lead_id]) for item, event in zip(valid, routed, strict=True)
                      if wants_step_one(known[event.lead.lead_id], ctx)]
            attempts = await self.outbox.attempt_many([p for _, p in wanted], ctx.run_id, ctx.at,
                                                     stop=ctx.stop)
            sent = {id(item): a for (item, _), a in zip(wanted, attempts, strict=True)}
            # Every lead not sent now is enrolled before the batch's offsets are committed, so a
            # later run's follow-up pass finds it; a lead sent gets its row when it is reported.
            going = {a.lead_id for a in attempts if a.kind == "sent"}
            await self.outbox.unwritten.write(
                self.pool, [e.lead.lead_id for _, e in fresh if e.lead.lead_id not in going])
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
