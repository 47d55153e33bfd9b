"""What a replay asks of a stage besides its runs' logic: the part of a lead the stage decides,
and that decision previewed and described without I/O."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Self

import asyncpg

from events import JobName, Lead, LeadEvent

from .bus import Sent
from .config import PlatformConfig
from .drain import Inbound, Outcome
from .runs import RunContext


class ReplayableLogic(ABC):
    """Mixed into a replayable stage's logic class, the one the registry names: a replay
    builds it as the stage's runs do and asks it what the stage decides. It is a StageLogic."""

    job: ClassVar[JobName]
    accepts: ClassVar[tuple[type[LeadEvent], ...]]

    @abstractmethod
    async def process(self, items: Sequence[Inbound], ctx: RunContext) -> list[Outcome]:
        """As StageLogic.process."""

    @abstractmethod
    async def published(self, sent: Sent, ctx: RunContext) -> None:
        """As StageLogic.published."""

    @classmethod
    @abstractmethod
    def from_config(cls, config: PlatformConfig, pool: asyncpg.Pool) -> Self:
        """The logic under the whole config: what its runs and a replay of it decide with."""

    @staticmethod
    @abstractmethod
    def decision(lead: Lead) -> object:
        """The part of a snapshot this stage decides; unchanged, nothing is published again."""

    @classmethod
    @abstractmethod
    def preview(cls, lead: Lead, config: PlatformConfig) -> Lead:
        """Today's decision for ``lead`` without any I/O (a dry run's)."""

    @staticmethod
    @abstractmethod
    def describe(lead: Lead) -> str:
        """The decision in a few words, for dry-run samples."""

    @staticmethod
    def reentry(lead: Lead) -> Lead:
        """The snapshot a replay moves from: the current one, unless the stage says otherwise."""
        return lead
