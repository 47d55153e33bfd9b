"""The services `leadflow run <name>` starts: one list that `run`, `leadflow dev` and the help
text read. Entry points are imported only when that service runs, so the CLI starts fast.

Adding a stage: its JobName in events/ (PIPELINE), its package with ``app.build``; it is then
a service here, in `leadflow dev` and in the stack's tick groups."""

from __future__ import annotations

from dataclasses import dataclass

from events import PIPELINE


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One long-running process: ``entry`` is ``module:function``; a stage's function builds
    its JobService, any other's runs the service until it is stopped."""

    name: str
    entry: str
    stage: bool = False


SERVICES: dict[str, ServiceSpec] = {spec.name: spec for spec in (
    *(ServiceSpec(job.value, f"services.{job.value}.app:build", stage=True) for job in PIPELINE),
    ServiceSpec("projector", "services.projector.service:run_projector"),
    ServiceSpec("clock", "services.clock.service:run_clock"),
    ServiceSpec("dashboard", "services.dashboard.server:serve"),
    ServiceSpec("alerts", "services.alerts.service:run_alerts"),
)}

#: Every service's name, stages first in pipeline order.
SERVICE_NAMES: tuple[str, ...] = tuple(SERVICES)
#: The tick-driven stages' names, in pipeline order.
STAGE_NAMES: tuple[str, ...] = tuple(name for name, spec in SERVICES.items() if spec.stage)
