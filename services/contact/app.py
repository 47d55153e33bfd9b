"""The contact service process."""

from events import JobName

from ..runtime.service import JobService, topic_stage
from ..runtime.settings import Settings
from .senders import ProofSender
from .stage import ContactLogic


def build(settings: Settings) -> JobService:
    return topic_stage(JobName.CONTACT, settings,
                       lambda s: ContactLogic(s.config.contact, s.db, ProofSender()))
