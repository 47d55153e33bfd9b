"""The committed OpenAPI schema (schemas/openapi.json): generate, render, write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .app import create_app

DEFAULT_PATH = Path("schemas/openapi.json")


def openapi_document() -> dict[str, Any]:
    """The dashboard API's OpenAPI document (no settings or servers needed)."""
    return create_app().openapi()


def render_openapi() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_openapi(path: Path = DEFAULT_PATH) -> Path:
    """Write the schema to ``path`` (a test fails when the committed copy drifts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_openapi(), encoding="utf-8")
    return path
