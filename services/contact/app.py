"""The contact service process."""

from __future__ import annotations

from events import JobName

from ..runtime.service import JobService
from ..runtime.settings import Settings
from .executor import ContactExecutor
from .senders import Sender, build_sender


def build(settings: Settings, sender: Sender | None = None) -> JobService:
    """The contact JobService; ``sender`` defaults to the one the config names."""
    return JobService(JobName.CONTACT, settings,
                      lambda s: ContactExecutor(s, sender or build_sender(s.config.contact)))
