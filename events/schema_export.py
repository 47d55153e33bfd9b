"""JSON Schema per event, generated from the models (schemas/events/ holds the committed copy)."""

from __future__ import annotations

import json

from .codec import BY_TYPE


def event_schemas() -> dict[str, dict]:
    """Map each event type to its JSON Schema (validation mode, as consumers read it)."""
    return {name: cls.model_json_schema() for name, cls in sorted(BY_TYPE.items())}


def render(schema: dict) -> str:
    """Stable text form, so a regenerated file only differs when the model does."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def file_name(event_type: str) -> str:
    return f"{event_type}.schema.json"
