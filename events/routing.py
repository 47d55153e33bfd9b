"""How each event is keyed and labelled on the wire: the Kafka message key (which decides its
partition, and so its order) and the headers. The bus publishes with these; the AsyncAPI
document describes them to other clients."""

from __future__ import annotations

from .clock import TickEmitted
from .control import CampaignPaused, CampaignResumed, ControlEvent
from .dead_letter import DeadLettered
from .envelope import Envelope
from .jobs import JobEvent
from .lead_events import LeadEvent

#: The one header every message carries: its event type (the payload's ``type`` too).
TYPE_HEADER = "type"


def routing_key(event: Envelope) -> bytes:
    """Partition key: a lead's events stay in order, a run's job events too."""
    if isinstance(event, LeadEvent):
        return event.lead.lead_id.bytes
    if isinstance(event, TickEmitted):
        return event.job.value.encode()
    if isinstance(event, JobEvent):
        return event.run_id.bytes
    if isinstance(event, ControlEvent):
        return event.key.encode()
    if isinstance(event, DeadLettered):
        return (event.lead_id.bytes if event.lead_id else (event.source_file or "").encode())
    return event.event_id.bytes


_JSON = b"application/json"


def wire_headers(event: Envelope) -> list[tuple[str, bytes]]:
    """The Kafka headers of ``event``'s message as the record carries them (UTF-8 values)."""
    return [(TYPE_HEADER, event.type.encode()), ("content-type", _JSON),
            ("correlation_id", str(event.event_id).encode())]


def headers(event: Envelope) -> dict[str, str]:
    """The Kafka headers of ``event``'s message (the same whichever client publishes it)."""
    return {name: value.decode() for name, value in wire_headers(event)}


def key_description(cls: type[Envelope]) -> str:
    """What the message key of ``cls`` holds, in words (for the AsyncAPI document)."""
    if issubclass(cls, LeadEvent):
        return ("The lead's id: the 16 raw bytes of lead.lead_id (a UUID), so a lead's events "
                "keep their order.")
    if issubclass(cls, TickEmitted):
        return "The job name in UTF-8 (e.g. 'score'), so one job's ticks keep their order."
    if issubclass(cls, JobEvent):
        return ("The run's id: the 16 raw bytes of run_id (a UUID), so a run's events keep "
                "their order.")
    if issubclass(cls, CampaignPaused | CampaignResumed):
        return "The campaign id in UTF-8, so a campaign's pauses and resumes keep their order."
    if issubclass(cls, ControlEvent):
        return "The tenant id in UTF-8, so a tenant's controls keep their order."
    if issubclass(cls, DeadLettered):
        return ("The 16 raw bytes of lead_id when the failed message had a lead, else the source "
                "file's name in UTF-8.")
    return "The 16 raw bytes of event_id (a UUID)."
