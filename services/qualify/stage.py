"""Qualify stage: SCORED leads become QUALIFIED (leads.qualified) or REJECTED (leads.rejected)."""

from __future__ import annotations

from typing import ClassVar, Self

import asyncpg

from events import JobName, Lead, LeadEvent, LeadQualified, LeadRejected, LeadScored, transition

from ..runtime.config import PlatformConfig
from ..runtime.drain import Inbound, PerLeadLogic
from ..runtime.replayable import ReplayableLogic
from ..runtime.runs import RunContext
from .config import QualifyConfig
from .decide import qualify_lead


class QualifyLogic(PerLeadLogic, ReplayableLogic):
    job: ClassVar[JobName] = JobName.QUALIFY
    accepts: ClassVar[tuple[type[LeadEvent], ...]] = (LeadScored,)

    def __init__(self, config: QualifyConfig) -> None:
        self.config = config

    @classmethod
    def from_config(cls, config: PlatformConfig, pool: asyncpg.Pool) -> Self:
        return cls(config.section(cls.job, QualifyConfig))

    @staticmethod
    def decision(lead: Lead) -> object:
        return lead.qualification

    @classmethod
    def preview(cls, lead: Lead, config: PlatformConfig) -> Lead:
        return lead.evolve(qualification=qualify_lead(lead, config.section(cls.job, QualifyConfig)))

    @staticmethod
    def describe(lead: Lead) -> str:
        q = lead.qualification
        if q is None:
            return "not qualified yet"
        return "qualified" if q.qualified else f"rejected: {', '.join(q.reasons)}"

    def decide(self, item: Inbound, ctx: RunContext) -> list[LeadQualified | LeadRejected]:
        event = item.event
        assert isinstance(event, LeadEvent)
        outcome = qualify_lead(event.lead, self.config)
        # A replayed input keeps its replay id on the way down (ids stay per replay).
        replay_id = ctx.replay_id or event.replay_id
        if outcome.qualified:
            return [transition(LeadQualified, event, at=ctx.at, correlation_id=ctx.run_id,
                               replay_id=replay_id, qualification=outcome)]
        return [transition(LeadRejected, event, at=ctx.at, correlation_id=ctx.run_id,
                           replay_id=replay_id, qualification=outcome, reasons=outcome.reasons)]
