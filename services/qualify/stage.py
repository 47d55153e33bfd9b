"""Qualify stage: SCORED leads become QUALIFIED (leads.qualified) or REJECTED (leads.rejected)."""

from __future__ import annotations

from typing import ClassVar

import asyncpg

from events import JobName, LeadEvent, LeadQualified, LeadRejected, LeadScored, transition

from ..runtime.config import PlatformConfig
from ..runtime.drain import Inbound, PerLeadLogic
from ..runtime.runs import RunContext
from .config import QualifyConfig
from .decide import qualify_lead


class QualifyLogic(PerLeadLogic):
    job: ClassVar[JobName] = JobName.QUALIFY
    accepts: ClassVar[tuple[type[LeadEvent], ...]] = (LeadScored,)

    def __init__(self, config: QualifyConfig) -> None:
        self.config = config

    @classmethod
    def from_config(cls, config: PlatformConfig, pool: asyncpg.Pool) -> QualifyLogic:
        """The logic under the whole config: what its runs and a replay of it decide with."""
        return cls(config.section(cls.job, QualifyConfig))

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
