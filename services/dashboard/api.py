"""Read-only endpoints: thin handlers over the read-model queries."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError

from events import JobName, LeadStatus, utcnow

from ..projector import queries
from . import snapshot
from .auth import require_reader, resources
from .models import (
    Campaign,
    Dashboard,
    DeadLettersPage,
    LeadDetail,
    LeadsPage,
    OneJobMetrics,
    PipelineDay,
    Problem,
    RunManifest,
    RunsPage,
    SchedulerStatus,
    TenantSummary,
)
from .resources import Resources

# Lead data (emails, names, histories) is personal: every read needs a token.
router = APIRouter(prefix="/api", tags=["read"], dependencies=[Depends(require_reader)])
Deps = Annotated[Resources, Depends(resources)]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=2**63 - 1,
                              description="Items to skip (next_offset of the previous page).")]


Tenant = Annotated[str | None, Query(min_length=1, description=(
    "Only this tenant: its leads, its runs (scoped to it, or that took or failed its leads) "
    "and its health."))]


@router.get("/dashboard", response_model=Dashboard)
async def dashboard(deps: Deps, tenant: Tenant = None) -> dict[str, Any]:
    """Everything the overview shows, from one consistent snapshot of the read models (of one
    tenant, or all)."""
    return await snapshot.dashboard(deps.pool, deps.config, utcnow(), tenant=tenant)


@router.get("/scheduler", response_model=SchedulerStatus)
async def scheduler(deps: Deps, tenant: Tenant = None) -> dict[str, Any]:
    """Overall health and, per job, schedule, next run, health and recent failures (health of
    one tenant's runs, or of all)."""
    return await snapshot.scheduler(deps.pool, deps.config, utcnow(), tenant)


@router.get("/tenants", response_model=list[TenantSummary])
async def tenants(deps: Deps) -> list[dict[str, Any]]:
    """Every tenant the config names or the read models hold: its health, per job, over the
    runs scoped to it and its share of the runs over all tenants; and its leads."""
    config = deps.config
    return await queries.tenants_overview(deps.pool, config.tenant_ids(), config.topics.tenants)


@router.get("/jobs/{job}/metrics", response_model=OneJobMetrics)
async def job_metrics(job: JobName, deps: Deps,
                      tenant: Annotated[str, Query(min_length=1)] = "*") -> dict[str, Any]:
    """A job's run and lead totals, success rates and health (tenant '*': all tenants)."""
    return await queries.one_job_metrics(deps.pool, job.value, tenant_id=tenant)


@router.get("/jobs/{job}/runs", response_model=RunsPage)
async def job_runs(job: JobName, deps: Deps, limit: Limit = 20,
                   before: Annotated[str | None, Query(
                       description="next_before of the previous page, or an ISO 8601 time: "
                                   "only runs that started earlier.")] = None,
                   tenant: Annotated[str | None, Query(
                       min_length=1, description="Only runs for this tenant or that took its "
                                                 "leads.")] = None) -> dict[str, Any]:
    """A job's runs, newest first, one page at a time, each with its manifest (cap, leads
    taken per tenant)."""
    try:
        cursor = queries.RunCursor.parse(before) if before else None
    except ValueError as exc:
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "before"),
                                       "msg": str(exc), "input": before}]) from None
    return await queries.runs_page(deps.pool, job.value, limit=limit, before=cursor,
                                   tenant=tenant)


@router.get("/runs/{run_id}/manifest", response_model=RunManifest,
            responses={200: {"content": {"text/csv": {}},
                             "description": "The manifest (JSON, or CSV with ?format=csv)."},
                       404: {"model": Problem, "description": "No such run."}})
async def run_manifest(run_id: UUID, deps: Deps,
                       format_: Annotated[Literal["json", "csv"], Query(
                           alias="format", description="csv: one line per tenant, to export."
                       )] = "json") -> Any:
    """What a run was for (tenant, campaign), the cap it applied and the leads it took per
    tenant, in all and per instance."""
    found = await queries.run_manifest(deps.pool, run_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"no run {run_id} in the read models; list runs at "
                            "/api/jobs/<job>/runs")
    if format_ == "csv":
        return Response(queries.manifest_csv(found), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="run-{run_id}-manifest.csv"'})
    return found


@router.get("/leads", response_model=LeadsPage)
async def leads(deps: Deps, limit: Limit = 50, offset: Offset = 0,
                status_: Annotated[LeadStatus | None, Query(alias="status")] = None,
                tenant: Annotated[str | None, Query(min_length=1)] = None,
                campaign: Annotated[str | None, Query(min_length=1)] = None,
                q: Annotated[str | None, Query(max_length=200,
                                               description="Part of an email or company name.")] = None,
                ) -> dict[str, Any]:
    """Leads, most recently changed first; filter by status, tenant and campaign, search email
    or company."""
    return await queries.leads_page(deps.pool, status=status_.value if status_ else None,
                                    campaign=campaign, q=q, limit=limit, offset=offset,
                                    tenant=tenant)


@router.get("/leads/{lead_id}", response_model=LeadDetail,
            responses={404: {"model": Problem, "description": "No such lead."}})
async def lead(lead_id: UUID, deps: Deps) -> dict[str, Any]:
    """A lead's snapshot and its full event history."""
    found = await queries.lead_detail(deps.pool, lead_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"no lead {lead_id} in the read models; search /api/leads?q=<email>")
    return found


@router.get("/campaigns", response_model=list[Campaign])
async def campaigns(deps: Deps) -> list[dict[str, Any]]:
    """Campaigns that have leads, with lead counts per status."""
    return await queries.campaigns(deps.pool)


@router.get("/pipeline", response_model=list[PipelineDay])
async def pipeline(deps: Deps,
                   days: Annotated[int, Query(ge=1, le=366, description="Days up to today.")] = 14,
                   tenant: Annotated[str | None, Query(min_length=1)] = None,
                   campaign: Annotated[str | None, Query(min_length=1)] = None,
                   ) -> list[dict[str, Any]]:
    """Per day, tenant and campaign: leads entering each status, rejections by reason, and
    conversion ratios between stages (newest day first)."""
    until = utcnow().date()
    return await queries.pipeline_report(deps.pool, since=until - timedelta(days=days - 1),
                                         until=until, tenant=tenant, campaign=campaign)


@router.get("/dead-letters", response_model=DeadLettersPage)
async def dead_letters(deps: Deps, limit: Limit = 50, offset: Offset = 0,
                       stage: Annotated[JobName | None, Query()] = None) -> dict[str, Any]:
    """Messages and source rows that could not be processed, newest first."""
    return await queries.dead_letters_page(deps.pool, stage=stage.value if stage else None,
                                           limit=limit, offset=offset)
