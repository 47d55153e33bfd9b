"""The route service process."""

from events import JobName

from ..runtime.service import JobService, topic_stage
from ..runtime.settings import Settings
from .stage import RouteLogic


def build(settings: Settings) -> JobService:
    return topic_stage(JobName.ROUTE, settings, lambda s: RouteLogic.from_config(s.config, s.db))
