"""The harvest service process."""

from events import JobName

from ..runtime.service import JobService
from ..runtime.settings import Settings
from .config import HarvestConfig
from .executor import HarvestExecutor


def build(settings: Settings) -> JobService:
    sources = settings.pipeline.section(JobName.HARVEST, HarvestConfig).sources
    return JobService(JobName.HARVEST, settings,
                      lambda s: HarvestExecutor(s.db, s.publisher, sources,
                                                s.settings.database_url, s.prefix))
