"""JSON codec: one encode and one decode per message, dispatching on the ``type`` field."""

from __future__ import annotations

import json
from typing import Annotated, Union

from pydantic import Field, TypeAdapter, ValidationError

from .clock import TickEmitted
from .control import CONTROL_EVENT_TYPES
from .dead_letter import DeadLettered
from .envelope import Envelope
from .errors import EventDecodeError
from .jobs import JOB_EVENT_TYPES
from .lead_events import LEAD_EVENT_TYPES
from .text import first_control_problem

#: Every concrete event type of the contract.
EVENT_TYPES: tuple[type[Envelope], ...] = (
    *LEAD_EVENT_TYPES,
    TickEmitted,
    *JOB_EVENT_TYPES,
    *CONTROL_EVENT_TYPES,
    DeadLettered,
)

BY_TYPE: dict[str, type[Envelope]] = {cls.model_fields["type"].default: cls for cls in EVENT_TYPES}

# The union is built from EVENT_TYPES at import time, which a static checker cannot follow.
_ANY: TypeAdapter[Envelope] = TypeAdapter(
    Annotated[Union[EVENT_TYPES], Field(discriminator="type")]  # type: ignore[arg-type, maybe-unrecognized-str-typeform]  # noqa: UP007
)


def encode(event: Envelope) -> bytes:
    """Serialise an event to JSON bytes."""
    return event.__pydantic_serializer__.to_json(event)


def decode(data: bytes | str) -> Envelope:
    """Parse any event; raise EventDecodeError naming the field and the reason."""
    try:
        event = _ANY.validate_json(data)
    except ValidationError as exc:
        raise EventDecodeError(_describe(exc)) from exc
    # JSON carries a control character only as a \u00XX escape: the precise check runs only then.
    escaped = b"\\u00" in data if isinstance(data, bytes | bytearray) else "\\u00" in data
    if escaped and (problem := first_control_problem(json.loads(data))):
        raise EventDecodeError(problem)
    return event


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "<message>"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
