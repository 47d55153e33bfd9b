"""Score stage: NEW leads from leads.new become SCORED on leads.scored."""

from __future__ import annotations

from typing import ClassVar

import asyncpg

from events import JobName, LeadCreated, LeadEvent, LeadScored, transition

from ..runtime.config import PlatformConfig
from ..runtime.drain import Inbound, PerLeadLogic
from ..runtime.runs import RunContext
from .config import ScoreConfig
from .decide import score_lead


class ScoreLogic(PerLeadLogic):
    job: ClassVar[JobName] = JobName.SCORE
    accepts: ClassVar[tuple[type[LeadEvent], ...]] = (LeadCreated,)

    def __init__(self, config: ScoreConfig) -> None:
        self.config = config

    @classmethod
    def from_config(cls, config: PlatformConfig, pool: asyncpg.Pool) -> ScoreLogic:
        """The logic under the whole config: what its runs and a replay of it decide with."""
        return cls(config.section(cls.job, ScoreConfig))

    def decide(self, item: Inbound, ctx: RunContext) -> list[LeadScored]:
        event = item.event
        assert isinstance(event, LeadEvent)
        card = score_lead(event.lead, self.config)
        # A replayed input keeps its replay id on the way down (ids stay per replay).
        return [transition(LeadScored, event, at=ctx.at, correlation_id=ctx.run_id,
                           replay_id=ctx.replay_id or event.replay_id, score=card)]
