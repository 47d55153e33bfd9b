"""The score service process."""

from events import JobName

from ..runtime.service import JobService, topic_stage
from ..runtime.settings import Settings
from .config import ScoreConfig
from .stage import ScoreLogic


def build(settings: Settings) -> JobService:
    config = settings.pipeline.section(JobName.SCORE, ScoreConfig)
    return topic_stage(JobName.SCORE, settings, lambda s: ScoreLogic(config))
