"""The dashboard's ASGI app: read API, controls, probes, metrics and the page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..pipeline.settings import load_settings
from ..runtime.errors import InfrastructureError
from ..runtime.settings import Settings
from . import api, controls, health, metrics, pages
from .guard import ControlCharacterGuard
from .resources import Resources

API_VERSION = "1.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; its lifespan opens the read-model pool (settings from the environment if None)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        deps = Resources(settings or load_settings())
        await deps.start()
        app.state.resources = deps
        try:
            yield
        finally:
            await deps.stop()

    app = FastAPI(title="leadflow dashboard", version=API_VERSION, lifespan=lifespan,
                  summary="Read models of the lead pipeline, and controls that publish events.",
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.add_middleware(ControlCharacterGuard)
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(InfrastructureError, _unavailable)  # type: ignore[arg-type]
    for driver_error in (asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError):
        app.add_exception_handler(driver_error, _database_down)
    for module in (health, metrics, api, controls, pages):
        app.include_router(module.router)
    app.mount("/static", pages.static_files(), name="static")
    return app


def describe_errors(errors: list[dict[str, object]]) -> str:
    """One clause per problem: ``body.max_leads: Input should be greater than or equal to 1``."""
    parts = []
    for err in errors:
        raw = err.get("loc", ())
        loc = tuple(str(p) for p in raw) if isinstance(raw, tuple | list) else ()
        where = ".".join(loc) or "request"
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "missing" and loc == ("body",):
            message = "a JSON body is required"
        elif err.get("type") == "json_invalid":
            message = "the body is not valid JSON"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
    return JSONResponse({"detail": errors, "message": describe_errors(errors)}, status_code=422)


async def _unavailable(request: Request, exc: InfrastructureError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503)


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"cannot read the read models ({exc}); check that Postgres is "
                                   "up and DATABASE_URL is right (see /readyz)"}, status_code=503)
