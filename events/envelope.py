"""The envelope every event carries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

_ZERO = timedelta(0)

#: The newest event schema this code reads. An event with a higher schema_version goes to the
#: dead-letter topic (docs/architecture.md, "Event versions").
SCHEMA_VERSION = 1


class Frozen(BaseModel):
    """Base for immutable value objects: frozen, and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def as_utc(value: datetime) -> datetime:
    # Already UTC (what every producer writes) is the hot path: skip the conversion.
    if value.utcoffset() == _ZERO:
        return value
    return value.astimezone(UTC)


class Envelope(Frozen):
    """Fields shared by every event.

    ``occurred_at`` is the decision time (a tick's scheduled_for, never the wall clock), so a
    replay decides the same; ``recorded_at`` is when the event was written.
    """

    event_id: UUID
    type: str
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime
    tenant_id: str = Field(min_length=1)
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    replay_id: str | None = None

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value > SCHEMA_VERSION:
            raise ValueError(f"schema_version {value} is newer than this leadflow reads "
                             f"({SCHEMA_VERSION}): upgrade leadflow, then replay the dead letter")
        return value

    @field_validator("occurred_at", "recorded_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)


def utcnow() -> datetime:
    """The wall clock, for ``recorded_at`` only (decisions take time as a parameter)."""
    return datetime.now(UTC)
