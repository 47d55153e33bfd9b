"""JSON Schema per event, generated from the models (schemas/events/ holds the committed copy)."""

from __future__ import annotations

import json
from typing import Any

from .codec import BY_TYPE


def event_schemas() -> dict[str, dict[str, Any]]:
    """Map each event type to its JSON Schema (validation mode, as consumers read it)."""
    return {name: cls.model_json_schema() for name, cls in sorted(BY_TYPE.items())}


def render(schema: dict[str, Any]) -> str:
    """Stable text form, so a regenerated file only differs when the model does."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def file_name(event_type: str) -> str:
    return f"{event_type}.schema.json"


def asyncapi() -> dict[str, Any]:
    """An AsyncAPI 3.0 document: each topic a channel, each event type a message on it, with
    its key and headers."""
    from .names import Topic
    from .routing import TYPE_HEADER, key_description

    channels: dict[str, dict[str, Any]] = {}
    messages: dict[str, dict[str, Any]] = {}
    for name, cls in sorted(BY_TYPE.items()):
        topic: Topic = cls.topic  # type: ignore[attr-defined]
        key = name.replace(".", "_")
        messages[key] = {
            "name": name,
            "title": cls.__name__,
            "summary": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else name,
            "contentType": "application/json",
            "headers": {
                "type": "object",
                "required": [TYPE_HEADER],
                "properties": {
                    TYPE_HEADER: {
                        "type": "string", "const": name,
                        "description": "The event type (UTF-8), the same as the payload's 'type'."},
                    "content-type": {
                        "type": "string",
                        "description": "application/json (empty on messages written before "
                                       "December 2026)."},
                    "correlation_id": {
                        "type": "string",
                        "description": "The payload's event_id, one per message; not the "
                                       "event's correlation_id, which is in the payload."},
                },
            },
            "payload": {"$ref": f"events/{file_name(name)}"},
            "bindings": {"kafka": {
                "bindingVersion": "0.5.0",
                "key": {"type": "string", "format": "binary", "description": key_description(cls)},
            }},
        }
        channel = channels.setdefault(topic.value.replace(".", "_"), {
            "address": topic.value,
            "description": f"Kafka topic {topic.value} (the physical name adds the configured prefix).",
            "messages": {},
        })
        channel["messages"][key] = {"$ref": f"#/components/messages/{key}"}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "leadflow events",
            "version": "1",
            "description": "Every event on leadflow's topics. Generated from events/ by "
                           "`leadflow schemas write`; tests fail when it drifts.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "components": {"messages": messages},
    }
