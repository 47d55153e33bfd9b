"""The stages of the pipeline and the other services: the one list that `leadflow run`,
`leadflow dev` and `demo` (the stack), replay, status and the help text read.

Adding a stage: its contract in events/ (JobName, PIPELINE, topics), its package
(``config.py``, ``decide.py``, ``stage.py``, ``app.py``), its section on LeadflowConfig
(``config.py`` here) and its StageSpec below. Entry points are imported only when they are
used, so the CLI starts fast."""

from __future__ import annotations

import importlib
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from events import ALL_TENANTS, STAGE_INPUTS, JobName, LeadStatus

S = LeadStatus


@dataclass(frozen=True, slots=True)
class Replayable:
    """How a stage is replayed: ``logic`` is its logic class (``module:Class``, a
    ``runtime.replayable.ReplayableLogic``), the one its runs decide with; ``redecide``: the
    statuses a replay re-decides a lead from."""

    logic: str
    redecide: frozenset[LeadStatus]


@dataclass(frozen=True, slots=True)
class StageSpec:
    """One stage: ``app`` is its module, whose ``build(settings)`` makes its JobService;
    ``replay`` is None for a stage that cannot be replayed; ``scoped``: whether its runs honour
    a tick for one tenant or campaign (a stage that drains a shared topic as it comes cannot:
    docs/architecture.md, "Tenants")."""

    job: JobName
    app: str
    replay: Replayable | None = None
    scoped: bool = False

    @property
    def name(self) -> str:
        return self.job.value

    @property
    def consumes_topic(self) -> bool:
        """Whether its runs drain an input topic (harvest reads files instead)."""
        return bool(STAGE_INPUTS[self.job])


def load(ref: str) -> Any:
    """The object ``module:name`` names, imported now."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


#: In pipeline order. Routed and contacted leads are never re-decided: the contact stage has
#: enrolled them in a sequence built from their routed snapshot, and their contact history
#: stays as it is.
STAGES: tuple[StageSpec, ...] = (
    StageSpec(JobName.HARVEST, "services.harvest.app", scoped=True),
    StageSpec(JobName.SCORE, "services.score.app", Replayable(
        "services.score.stage:ScoreLogic", frozenset({S.NEW, S.SCORED, S.QUALIFIED, S.REJECTED}))),
    StageSpec(JobName.QUALIFY, "services.qualify.app", Replayable(
        "services.qualify.stage:QualifyLogic", frozenset({S.SCORED, S.QUALIFIED, S.REJECTED}))),
    StageSpec(JobName.ROUTE, "services.route.app", Replayable(
        "services.route.stage:RouteLogic", frozenset({S.QUALIFIED}))),
    StageSpec(JobName.CONTACT, "services.contact.app", scoped=True),
)
STAGE_SPECS: dict[JobName, StageSpec] = {spec.job: spec for spec in STAGES}


def scope_problem(job: JobName, tenant: str | None, campaign: str | None,
                  isolated: Collection[str] = ()) -> str | None:
    """Why ``job`` cannot run for this tenant / campaign (None: it can, or nothing is scoped).
    ``isolated``: the tenants with lead topics of their own, whose leads a stage can take
    apart from the others'."""
    spec = STAGE_SPECS.get(job)
    if spec is None or spec.scoped or (tenant in (None, ALL_TENANTS) and campaign is None):
        return None
    if campaign is None and tenant in isolated:
        return None
    return (f"{job.value} cannot run for one campaign, or for a tenant without lead topics of "
            f"its own: its input topic holds every such tenant's leads in arrival order, and "
            f"taking some apart would block or lose the others' (docs/architecture.md, "
            f"\"Tenants\"); list the tenant under [topics.tenants.<id>] to run it alone, or run "
            f"{job.value} for all tenants")


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One long-running process: ``entry`` is ``module:function``; a stage's function builds
    its JobService, any other's runs the service until it is stopped."""

    name: str
    entry: str
    stage: bool = False


SERVICES: dict[str, ServiceSpec] = {spec.name: spec for spec in (
    *(ServiceSpec(stage.name, f"{stage.app}:build", stage=True) for stage in STAGES),
    ServiceSpec("projector", "services.projector.workers:run_projector"),
    ServiceSpec("clock", "services.clock.service:run_clock"),
    ServiceSpec("dashboard", "services.dashboard.server:serve"),
    ServiceSpec("alerts", "services.alerts.service:run_alerts"),
)}

#: Every service's name, stages first in pipeline order.
SERVICE_NAMES: tuple[str, ...] = tuple(SERVICES)
#: The tick-driven stages' names, in pipeline order.
STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)
#: The stages whose runs drain an input topic.
TOPIC_STAGE_SPECS: tuple[StageSpec, ...] = tuple(s for s in STAGES if s.consumes_topic)
