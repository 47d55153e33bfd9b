"""Score stage: NEW leads from leads.new become SCORED on leads.scored."""

from __future__ import annotations

from typing import ClassVar, Self

import asyncpg

from events import JobName, Lead, LeadCreated, LeadEvent, LeadScored, transition

from ..runtime.config import PlatformConfig
from ..runtime.drain import Inbound, PerLeadLogic
from ..runtime.replayable import ReplayableLogic
from ..runtime.runs import RunContext
from .config import ScoreConfig
from .decide import score_lead


class ScoreLogic(PerLeadLogic, ReplayableLogic):
    job: ClassVar[JobName] = JobName.SCORE
    accepts: ClassVar[tuple[type[LeadEvent], ...]] = (LeadCreated,)

    def __init__(self, config: ScoreConfig) -> None:
        self.config = config

    @classmethod
    def from_config(cls, config: PlatformConfig, pool: asyncpg.Pool) -> Self:
        return cls(config.section(cls.job, ScoreConfig))

    @staticmethod
    def decision(lead: Lead) -> object:
        return lead.score

    @classmethod
    def preview(cls, lead: Lead, config: PlatformConfig) -> Lead:
        return lead.evolve(score=score_lead(lead, config.section(cls.job, ScoreConfig)))

    @staticmethod
    def describe(lead: Lead) -> str:
        return f"{lead.score.value} ({lead.score.model_version})" if lead.score else "unscored"

    @staticmethod
    def reentry(lead: Lead) -> Lead:
        # Re-scoring clears the qualification the old score led to: the lead re-enters
        # qualification and gets a fresh verdict.
        return lead.evolve(qualification=None) if lead.qualification is not None else lead

    def decide(self, item: Inbound, ctx: RunContext) -> list[LeadScored]:
        event = item.event
        assert isinstance(event, LeadEvent)
        card = score_lead(event.lead, self.config)
        # A replayed input keeps its replay id on the way down (ids stay per replay).
        return [transition(LeadScored, event, at=ctx.at, correlation_id=ctx.run_id,
                           replay_id=ctx.replay_id or event.replay_id, score=card)]
