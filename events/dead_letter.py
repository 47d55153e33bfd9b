"""Dead letters: input that could not be processed, kept with the reason and the original bytes."""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from .envelope import Envelope
from .names import JobName, Topic


class DeadLettered(Envelope):
    """A message or source row that failed; ``original`` is its raw content (base64)."""

    topic: ClassVar[Topic] = Topic.LEADS_DLQ
    type: Literal["dead_letter.recorded"] = "dead_letter.recorded"
    stage: JobName | None = None
    lead_id: UUID | None = None
    source_topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    source_file: str | None = None
    line: int | None = None
    original_type: str | None = None
    original: str = ""
    error_type: str
    error: str
    attempts: int = Field(default=1, ge=1)

    @property
    def origin(self) -> str:
        """Where the input came from, for people: ``topic[partition]@offset`` or ``file:line``."""
        if self.source_file is not None:
            return f"{self.source_file}:{self.line}"
        return f"{self.source_topic}[{self.partition}]@{self.offset}"
