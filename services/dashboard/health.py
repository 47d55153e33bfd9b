"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..projector import queries
from ..runtime.db import DRIVER_ERRORS
from .auth import resources
from .models import Check, Readiness

router = APIRouter(tags=["health"])

#: Seconds /readyz waits for the read models before calling the database down.
PROBE_TIMEOUT = 5.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (nothing else is checked)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness,
            responses={503: {"model": Readiness, "description": "Some check failed."}})
async def readyz(request: Request) -> JSONResponse:
    """Broker and database reachable, projector caught up and reporting: 200, else 503."""
    deps = resources(request)
    checks: dict[str, Check] = {}
    status: dict[str, Any] | None = None
    try:
        # Bounded: a server that stopped answering must not hang the probe.
        status = await asyncio.wait_for(queries.projector_status(deps.pool), PROBE_TIMEOUT)
        checks["database"] = Check(ok=True, detail="read models reachable")
    except DRIVER_ERRORS as exc:
        checks["database"] = Check(ok=False, detail=f"cannot read the read models ({exc}); check "
                                   "DATABASE_URL and that `leadflow db migrate` ran")
    reachable = await deps.broker_reachable()
    checks["broker"] = Check(ok=reachable, detail="broker reachable" if reachable else
                             f"cannot reach the broker at {deps.settings.kafka_bootstrap_servers}; "
                             "start it or set KAFKA_BOOTSTRAP_SERVERS")
    if status is not None:
        checks["projector"] = projector_check(status, max_lag=deps.dashboard.readiness_max_lag,
                                              max_age=deps.dashboard.readiness_max_status_age
                                              .total_seconds())
    ready = all(c.ok for c in checks.values()) and "projector" in checks
    body = Readiness(ready=ready, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


def projector_check(status: dict[str, Any], *, max_lag: int, max_age: float) -> Check:
    """Ready when the projector reported recently and its lag is at most ``max_lag``."""
    lag, age = status["lag"], status["age_seconds"]
    if age is None:
        return Check(ok=False, detail="the projector has not reported yet; start it "
                                      "(`leadflow run projector`)")
    if age > max_age:
        return Check(ok=False, detail=f"the projector last reported {age:.0f}s ago (limit "
                                      f"{max_age:.0f}s); is `leadflow run projector` running?")
    if lag is None:
        return Check(ok=False, detail="the projector has not measured its lag yet; wait a few "
                                      "seconds")
    if lag > max_lag:
        return Check(ok=False, detail=f"projector lag {lag} messages exceeds {max_lag}; the "
                                      "dashboard shows an old picture until it catches up")
    return Check(ok=True, detail=f"projector lag {lag} messages")
