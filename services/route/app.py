"""The route service process."""

from events import JobName

from ..runtime.service import JobService, topic_stage
from ..runtime.settings import Settings
from .config import RouteConfig
from .stage import RouteLogic


def build(settings: Settings) -> JobService:
    config = settings.pipeline.section(JobName.ROUTE, RouteConfig)
    return topic_stage(JobName.ROUTE, settings, lambda s: RouteLogic(config, s.db))
