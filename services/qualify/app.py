"""The qualify service process."""

from events import JobName

from ..runtime.service import JobService, topic_stage
from ..runtime.settings import Settings
from .stage import QualifyLogic


def build(settings: Settings) -> JobService:
    return topic_stage(JobName.QUALIFY, settings, lambda s: QualifyLogic.from_config(s.config, s.db))
