"""`leadflow run <service>`: start one service process in the foreground."""

from __future__ import annotations

import importlib

from ..runtime.settings import Settings

STAGE_SERVICES = ("harvest", "score", "qualify", "route", "contact")


async def run_service(name: str, settings: Settings) -> None:
    """Run ``name`` until SIGINT / SIGTERM."""
    if name in STAGE_SERVICES:
        module = importlib.import_module(f"services.{name}.app")
        service = module.build(settings)
        await service.run_forever()
    elif name == "projector":
        from ..projector.service import Projector

        await Projector(settings).run_forever()
    elif name == "clock":
        from ..clock.service import run_clock

        await run_clock(settings)
    elif name == "dashboard":
        from ..dashboard.server import serve

        await serve(settings)
    else:
        raise ValueError(f"unknown service {name!r}")
