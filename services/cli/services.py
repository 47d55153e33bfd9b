"""`leadflow run <service>`: start one service process in the foreground."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..pipeline.registry import SERVICE_NAMES, SERVICES, STAGE_NAMES, ServiceSpec, load
from ..pipeline.settings import Settings
from ..runtime.errors import InfrastructureError
from ..runtime.migrations import SchemaError, require_current
from ..runtime.process import tune_gc
from ..runtime.service import JobService

log = logging.getLogger(__name__)


def _entry(spec: ServiceSpec) -> Callable[[Settings], Any]:
    entry: Callable[[Settings], Any] = load(spec.entry)
    return entry


def build_job_service(name: str, settings: Settings) -> JobService:
    """The JobService of a stage (its package's ``app.build``)."""
    spec = SERVICES.get(name)
    if spec is None or not spec.stage:
        raise ValueError(f"{name!r} is not a stage; choose one of {', '.join(STAGE_NAMES)}")
    service: JobService = _entry(spec)(settings)
    return service


async def run_service(name: str, settings: Settings) -> None:
    """Run ``name`` until SIGINT / SIGTERM, if the database's schema is this code's."""
    spec = SERVICES.get(name)
    if spec is None:
        raise ValueError(f"unknown service {name!r}; choose one of {', '.join(SERVICE_NAMES)}")
    tune_gc()
    try:
        await require_current(settings.database_url)
    except SchemaError:
        raise
    except InfrastructureError as exc:  # Postgres not up yet: the service waits for it itself
        log.warning("schema version not checked: %s", exc, extra={"action": "schema_unchecked"})
    if spec.stage:
        await build_job_service(name, settings).run_forever()
    else:
        await _entry(spec)(settings)
