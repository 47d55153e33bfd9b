"""The committed OpenAPI schema matches the dashboard app."""

from __future__ import annotations

import json
from pathlib import Path

from services.dashboard.openapi import openapi_document, render_openapi

COMMITTED = Path(__file__).parents[2] / "schemas" / "openapi.json"


def test_committed_openapi_matches_the_app() -> None:
    assert COMMITTED.exists(), "schemas/openapi.json is missing; run `leadflow schemas write`"
    assert json.loads(COMMITTED.read_text()) == openapi_document(), (
        "schemas/openapi.json is out of date; run `leadflow schemas write` and commit the result")
    assert COMMITTED.read_text() == render_openapi()


def test_openapi_documents_every_endpoint_of_the_issue() -> None:
    paths = openapi_document()["paths"]
    for path, method in [
        ("/api/dashboard", "get"), ("/api/scheduler", "get"), ("/api/jobs/{job}/metrics", "get"),
        ("/api/jobs/{job}/runs", "get"), ("/api/leads", "get"), ("/api/leads/{lead_id}", "get"),
        ("/api/dead-letters", "get"), ("/api/ticks", "post"),
        ("/api/campaigns/{campaign_id}/pause", "post"), ("/api/campaigns/{campaign_id}/resume", "post"),
        ("/api/kill-switch", "post"), ("/api/suppressions", "post"), ("/healthz", "get"),
        ("/readyz", "get"), ("/metrics", "get"),
    ]:
        assert method in paths.get(path, {}), f"{method.upper()} {path} is not documented"
    tick = paths["/api/ticks"]["post"]
    assert tick["security"] == [{"HTTPBearer": []}]
    assert {"202", "401", "403", "422", "503"} <= set(tick["responses"])
