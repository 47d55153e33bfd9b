"""The contact service process."""

from __future__ import annotations

from events import JobName

from ..runtime.service import JobService
from ..runtime.settings import Settings
from .config import ContactConfig
from .executor import ContactExecutor
from .senders import Sender, build_sender


def build(settings: Settings, sender: Sender | None = None) -> JobService:
    """The contact JobService; ``sender`` defaults to the one the config names."""
    config = settings.pipeline.section(JobName.CONTACT, ContactConfig)
    return JobService(JobName.CONTACT, settings,
                      lambda s: ContactExecutor(s, config, sender or build_sender(config)))
