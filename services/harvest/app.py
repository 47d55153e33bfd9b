"""The harvest service process."""

from events import JobName

from ..runtime.service import JobService
from ..runtime.settings import Settings
from .executor import HarvestExecutor


def build(settings: Settings) -> JobService:
    return JobService(JobName.HARVEST, settings,
                      lambda s: HarvestExecutor(s.db, s.publisher, s.config.harvest.sources,
                                                s.settings.database_url, s.prefix))
