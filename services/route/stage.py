"""Route stage: QUALIFIED leads get a sequence and an owner and move to leads.routed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Self

import asyncpg

from events import Assignment, JobName, Lead, LeadEvent, LeadQualified, LeadRouted, transition

from ..runtime.bus import Sent
from ..runtime.config import PlatformConfig
from ..runtime.db import translated
from ..runtime.drain import Inbound, Outcome, decide_each
from ..runtime.replayable import ReplayableLogic
from ..runtime.runs import RunContext
from . import assignments
from .config import RouteConfig
from .decide import assign, pick_segment


class RouteLogic(ReplayableLogic):
    job: ClassVar[JobName] = JobName.ROUTE
    accepts: ClassVar[tuple[type[LeadEvent], ...]] = (LeadQualified,)

    def __init__(self, config: RouteConfig, pool: asyncpg.Pool) -> None:
        self.config = config
        self.pool = pool

    @classmethod
    def from_config(cls, config: PlatformConfig, pool: asyncpg.Pool) -> Self:
        return cls(config.section(cls.job, RouteConfig), pool)

    @staticmethod
    def decision(lead: Lead) -> object:
        return (lead.route.segment, lead.route.sequence_id) if lead.route else None

    @classmethod
    def preview(cls, lead: Lead, config: PlatformConfig) -> Lead:
        # The owner comes from the round-robin table, which a preview does not touch.
        segment = pick_segment(lead, config.section(cls.job, RouteConfig).segments)
        return lead.evolve(route=Assignment(segment=segment.name, sequence_id=segment.sequence,
                                            owner="(round-robin)"))

    @staticmethod
    def describe(lead: Lead) -> str:
        return f"{lead.route.segment} / {lead.route.sequence_id}" if lead.route else "not routed"

    async def process(self, items: Sequence[Inbound], ctx: RunContext) -> list[Outcome]:
        leads = [item.event.lead for item in items if isinstance(item.event, LeadEvent)]
        segments = {lead.lead_id: pick_segment(lead, self.config.segments) for lead in leads}
        with translated("route assignments"):
            slots = await assignments.allocate(self.pool, [
                (lead.lead_id, lead.tenant_id, segments[lead.lead_id]) for lead in leads])

        def decide(item: Inbound) -> list[LeadRouted]:
            event = item.event
            assert isinstance(event, LeadEvent)
            lead_id = event.lead.lead_id
            route = assign(segments[lead_id], slots[lead_id].seq)
            # A replayed input keeps its replay id on the way down (ids stay per replay).
            return [transition(LeadRouted, event, at=ctx.at, correlation_id=ctx.run_id,
                               replay_id=ctx.replay_id or event.replay_id, route=route)]

        outcomes = decide_each(items, decide)
        # Owners are stored with the positions; only a lead whose segment's owners changed
        # since its position was taken (new rules, a replay) has another one to record.
        changed = {e.lead.lead_id: e.lead.route.owner for o in outcomes for e in o.events
                   if isinstance(e, LeadRouted) and e.lead.route is not None
                   and slots[e.lead.lead_id].owner != e.lead.route.owner}
        with translated("route assignments"):
            await assignments.record_owners(self.pool, changed)
        return outcomes

    async def published(self, sent: Sent, ctx: RunContext) -> None:
        return None
