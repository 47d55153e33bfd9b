"""The score service process."""

from events import JobName

from ..runtime.service import JobService, topic_stage
from ..runtime.settings import Settings
from .stage import ScoreLogic


def build(settings: Settings) -> JobService:
    return topic_stage(JobName.SCORE, settings, lambda s: ScoreLogic.from_config(s.config, s.db))
