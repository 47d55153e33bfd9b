"""The web page: static files shipped in the package, no CDN."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from events import JobName

from .auth import resources

router = APIRouter()


def static_dir() -> Path:
    return Path(str(importlib.resources.files("services").joinpath("dashboard", "static")))


def static_files() -> StaticFiles:
    return StaticFiles(directory=static_dir())


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(static_dir() / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/api/ui", tags=["read"])
async def ui(request: Request) -> dict[str, Any]:
    """What the page needs to know about this deployment: refresh period, whether reads and
    controls are enabled, the jobs (pipeline order, then retention). Open: no lead data."""
    deps = resources(request)
    return {"refresh_seconds": deps.dashboard.refresh_seconds,
            "reads_enabled": deps.token is not None or deps.read_token is not None,
            "controls_enabled": deps.token is not None,
            "jobs": [j.value for j in JobName]}
