"""Qualify stage: SCORED leads become QUALIFIED (leads.qualified) or REJECTED (leads.rejected)."""

from __future__ import annotations

from typing import ClassVar

from events import JobName, LeadEvent, LeadQualified, LeadRejected, LeadScored, transition

from ..qualify.config import QualifyConfig
from ..runtime.drain import Inbound, PerLeadLogic
from ..runtime.runs import RunContext
from .decide import qualify_lead


class QualifyLogic(PerLeadLogic):
    job: ClassVar[JobName] = JobName.QUALIFY
    accepts: ClassVar[tuple[type[LeadEvent], ...]] = (LeadScored,)

    def __init__(self, config: QualifyConfig) -> None:
        self.config = config

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
