"""Building leads.dlq events for input that could not be processed."""

from __future__ import annotations

import base64

from aiokafka import ConsumerRecord

from events import DeadLettered, Envelope, JobName, LeadEvent, utcnow
from events.ids import event_id


def dead_letter(record: ConsumerRecord, job: JobName | None, error: BaseException, attempts: int,
                event: Envelope | None = None) -> DeadLettered:
    """The leads.dlq event for an input that could not be processed (deterministic id)."""
    cause = f"{record.topic}:{record.partition}:{record.offset}"
    lead = event.lead if isinstance(event, LeadEvent) else None
    now = utcnow()
    return DeadLettered(
        event_id=event_id(cause, "dead-lettered"),
        occurred_at=now, recorded_at=now,
        tenant_id=lead.tenant_id if lead else (event.tenant_id if event else "unknown"),
        correlation_id=None, causation_id=event.event_id if event else None,
        stage=job, lead_id=lead.lead_id if lead else None,
        source_topic=record.topic, partition=record.partition, offset=record.offset,
        original_type=event.type if event else None,
        original=base64.b64encode(record.value or b"").decode("ascii"),
        error_type=type(error).__name__, error=str(error) or repr(error), attempts=attempts,
    )
