"""`leadflow run <service>`: start one service process in the foreground."""

from __future__ import annotations

import importlib
import logging

from ..runtime.errors import InfrastructureError
from ..runtime.migrations import SchemaError, require_current
from ..runtime.process import tune_gc
from ..runtime.service import JobService
from ..runtime.settings import Settings

STAGE_SERVICES = ("harvest", "score", "qualify", "route", "contact")

log = logging.getLogger(__name__)


def build_job_service(name: str, settings: Settings) -> JobService:
    """The JobService of a stage (its package's ``app.build``)."""
    if name not in STAGE_SERVICES:
        raise ValueError(f"{name!r} is not a stage; choose one of {', '.join(STAGE_SERVICES)}")
    return importlib.import_module(f"services.{name}.app").build(settings)


async def run_service(name: str, settings: Settings) -> None:
    """Run ``name`` until SIGINT / SIGTERM, if the database's schema is this code's."""
    tune_gc()
    try:
        await require_current(settings.database_url)
    except SchemaError:
        raise
    except InfrastructureError as exc:  # Postgres not up yet: the service waits for it itself
        log.warning("schema version not checked: %s", exc, extra={"action": "schema_unchecked"})
    if name in STAGE_SERVICES:
        await build_job_service(name, settings).run_forever()
    elif name == "projector":
        from ..projector.service import Projector

        await Projector(settings).run_forever()
    elif name == "clock":
        from ..clock.service import run_clock

        await run_clock(settings)
    elif name == "dashboard":
        from ..dashboard.server import serve

        await serve(settings)
    elif name == "alerts":
        from ..alerts.service import run_alerts

        await run_alerts(settings)
    else:
        raise ValueError(f"unknown service {name!r}")
