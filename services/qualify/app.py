"""The qualify service process."""

from events import JobName

from ..runtime.service import JobService, topic_stage
from ..runtime.settings import Settings
from .config import QualifyConfig
from .stage import QualifyLogic


def build(settings: Settings) -> JobService:
    config = settings.pipeline.section(JobName.QUALIFY, QualifyConfig)
    return topic_stage(JobName.QUALIFY, settings, lambda s: QualifyLogic(config))
