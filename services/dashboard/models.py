"""Request and response bodies of the dashboard API (they shape the committed OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from events import ALL_TENANTS, JobName
from events.emails import email_problem, normalise_email
from events.text import control_character

# --- requests ----------------------------------------------------------------------------


class ControlBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    requested_by: str | None = Field(
        default=None, max_length=100,
        description="Who asks (a name); recorded with the client address on the event.")

    @field_validator("*")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        # What a control publishes ends up in events and read models: NUL would poison both.
        if isinstance(value, str) and (code := control_character(value)):
            raise ValueError(f"contains the control character {code}, which is not allowed")
        return value


class TickRequest(ControlBody):
    """Run a job now."""

    job: JobName
    max_leads: int | None = Field(default=None, ge=1, le=1_000_000,
                                  description="Cap for this run (default: the job's config).")
    tenant_id: str | None = Field(default=None, min_length=1, max_length=200,
                                  description="Only this tenant (default: all).")
    campaign_id: str | None = Field(default=None, min_length=1, max_length=200,
                                    description="Only this campaign (default: all).")


class CampaignRequest(ControlBody):
    """Pause or resume a campaign (the body is optional)."""

    tenant_id: str = Field(default=ALL_TENANTS, min_length=1, max_length=200,
                           description="The campaign's tenant ('*': every tenant).")


class KillSwitchRequest(ControlBody):
    """Stop (engaged=true) or allow again (engaged=false) every send."""

    engaged: bool
    tenant_id: str = Field(default=ALL_TENANTS, min_length=1, max_length=200,
                           description="Only this tenant ('*': every tenant).")
    reason: str | None = Field(default=None, max_length=500)


class SuppressionRequest(ControlBody):
    """Never contact this email, or anyone at this domain (give exactly one)."""

    email: str | None = Field(default=None, max_length=320)
    domain: str | None = Field(default=None, max_length=253)
    tenant_id: str = Field(default=ALL_TENANTS, min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=500)

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        email = normalise_email(value)
        problem = email_problem(email)
        if problem:
            raise ValueError(problem)
        return email

    @field_validator("domain")
    @classmethod
    def _valid_domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        domain = value.strip().lower().removeprefix("@")
        if email_problem(f"x@{domain}") is not None:
            raise ValueError(f"domain {value!r} is not a domain name such as example.com")
        return domain

    @model_validator(mode="after")
    def _one_target(self) -> SuppressionRequest:
        if (self.email is None) == (self.domain is None):
            raise ValueError("give exactly one of email or domain")
        return self


# --- responses ---------------------------------------------------------------------------


class Open(BaseModel):
    """A response part whose producer may add fields: they pass through."""

    model_config = ConfigDict(extra="allow")


class Accepted(BaseModel):
    """The event the request was turned into; its effect shows once the pipeline folds it."""

    event_id: UUID
    type: str
    topic: str
    requested_by: str


class SchedulerJob(Open):
    enabled: bool
    next_run: str | None = None
    hours_until_next_run: float | None = None
    health: str
    success_rate: float
    last_run: str | None = None
    consecutive_failures: int


class SchedulerStatus(Open):
    timestamp: str
    overall_health: str
    jobs: dict[str, SchedulerJob]


class JobMetrics(Open):
    total_runs: int
    successful_runs: int
    failed_runs: int
    skipped_runs: int
    success_rate: float
    total_leads_processed: int
    total_leads_succeeded: int
    total_leads_failed: int
    lead_success_rate: float
    average_duration_seconds: float
    consecutive_failures: int
    health_status: str
    last_run_at: str | None
    last_success_at: str | None
    last_failure_at: str | None


class OneJobMetrics(JobMetrics):
    job: str
    tenant_id: str


class RecentJob(Open):
    run_id: str
    job_type: str
    status: str
    source: str
    scheduled_for: str | None
    started_at: str | None
    completed_at: str | None
    duration_seconds: float | None
    leads_processed: int
    leads_succeeded: int
    leads_failed: int
    error: str | None


class Run(RecentJob):
    tenant_id: str
    campaign_id: str | None
    requested_by: str | None
    max_leads: int | None
    attempt: int
    retry_of: str | None
    parts: int
    partitions_total: int
    partitions_covered: int
    backlog: int | None
    reason: str | None
    skipped_ticks: int = Field(default=0, description=(
        "Scheduled ticks a skipped row stands for: ticks that arrived during one run of the "
        "same instance are reported once, as a streak (reason 'overlap')."))
    cap: int | None = Field(default=None, description="The cap the run applied (its tick's, "
                            "else the job's max_leads_per_run).")
    leads_by_tenant: dict[str, int] = Field(default_factory=dict, description=(
        "Leads the run took per tenant (its manifest; tenant_id is the tenant it was for, "
        "'*' for all)."))
    failed_by_tenant: dict[str, int] = Field(default_factory=dict, description=(
        "Of those, the leads that failed, per tenant."))
    failed_tenants: list[str] = Field(default_factory=list, description=(
        "When failed: the tenants whose own work failed it (e.g. an unreadable harvest "
        "source); for the others it counts as completed. Empty: it failed for every tenant "
        "it touched."))


class ManifestPart(BaseModel):
    part: str = Field(description="The instance that ran this share of the run.")
    status: str
    cap: int | None
    leads_processed: int
    leads_by_tenant: dict[str, int]
    failed_by_tenant: dict[str, int]
    failed_tenants: list[str]
    partitions: list[int]
    partitions_total: int


class RunManifest(BaseModel):
    """What a run was for, the cap it applied and the leads it took per tenant."""

    run_id: str
    job: str
    status: str
    tenant_id: str = Field(description="The tenant the run was for ('*': all).")
    campaign_id: str | None
    source: str
    scheduled_for: str | None
    cap: int | None
    leads_processed: int
    leads_by_tenant: dict[str, int]
    failed_by_tenant: dict[str, int] = Field(description="Leads failed per tenant.")
    failed_tenants: list[str] = Field(description="Whom a failed run failed for ([]: all).")
    parts: list[ManifestPart]


class TenantJob(BaseModel):
    health_status: str
    total_runs: int
    failed_runs: int
    consecutive_failures: int
    total_leads_processed: int
    total_leads_failed: int
    last_run_at: str | None


class TenantSummary(BaseModel):
    """One tenant at a glance: health over its runs (scoped to it, and its share of the
    runs over all tenants) and the leads it imported."""

    tenant_id: str
    configured: bool = Field(description="Named in the config (topics, schedules, sources, "
                                         "overrides); else only seen in the read models.")
    own_topics: bool = Field(description="Its leads flow through lead topics of its own.")
    health: str = Field(description="The worst of its jobs' health.")
    leads: int = Field(description="Leads imported (entered NEW).")
    jobs: dict[str, TenantJob]


class RunsPage(BaseModel):
    job: str
    items: list[Run]
    limit: int
    next_before: str | None = Field(description="Pass as ?before= for the next (older) page.")


class FunnelStage(BaseModel):
    status: str
    reached: int = Field(description="Leads that reached this stage (now here or further on).")
    current: int = Field(description="Leads whose status is this stage now.")
    conversion_pct: float | None = Field(description="reached / reached at the previous stage.")
    overall_pct: float | None = Field(description="reached / leads created.")


class ProjectorStatus(BaseModel):
    lag: int | None = Field(description="Messages in the log not yet folded.")
    events_applied: int | None
    updated_at: str | None
    age_seconds: float | None = Field(description="How old the projector's last report is.")


class Day(BaseModel):
    day: str
    entered: dict[str, int] = Field(description="Leads entering each status that day "
                                                "(CONTACTED counts every step sent).")


class PipelineDay(BaseModel):
    day: str
    tenant_id: str
    campaign_id: str
    entered: dict[str, int] = Field(description="Leads entering each status that day "
                                                "(CONTACTED counts every step sent).")
    first_contacts: int = Field(description="Leads sent their first step that day.")
    rejected: dict[str, int] = Field(description="Rejections per reason code.")
    conversion_pct: dict[str, float | None] = Field(
        description="Per stage, leads entering it over leads entering the stage before, that "
                    "day (flows, not cohorts); null when the earlier stage saw none.")


class Dashboard(BaseModel):
    """The old cron dashboard's shape (timestamp, scheduler_status, job_metrics, recent_jobs)
    plus the funnel, dead letters, projector progress and leads per day."""

    timestamp: str
    tenant: str = Field(default="*", description="The tenant shown ('*': all).")
    scheduler_status: SchedulerStatus
    job_metrics: dict[str, JobMetrics]
    recent_jobs: list[RecentJob]
    funnel: dict[str, int] = Field(description="Leads per current status.")
    funnel_stages: list[FunnelStage]
    dead_letter_count: int
    projector: ProjectorStatus
    leads_per_day: list[Day]
    backlog: dict[str, int | None] = Field(
        default_factory=dict, description="Per job, the leads waiting in its input partitions "
                                          "when its last run ended (high watermark minus the "
                                          "group's position), over every tenant.")


class LeadSummary(Open):
    lead_id: UUID
    tenant_id: str
    campaign_id: str
    email: str
    company: str | None
    status: str
    version: int
    score: int | None
    updated_at: datetime


class LeadsPage(BaseModel):
    items: list[LeadSummary]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class LeadEventItem(Open):
    event_id: UUID
    type: str
    version: int
    status: str
    occurred_at: datetime
    recorded_at: datetime
    payload: dict[str, Any]


class LeadDetail(BaseModel):
    lead: dict[str, Any] = Field(description="The lead's current snapshot (every column).")
    events: list[LeadEventItem] = Field(description="Its whole history, oldest first.")


class Campaign(BaseModel):
    campaign_id: str
    tenant_id: str
    leads: int
    by_status: dict[str, int]


class DeadLetter(Open):
    event_id: UUID
    stage: str | None
    lead_id: UUID | None
    tenant_id: str
    origin: str
    error_type: str
    error: str
    attempts: int
    recorded_at: datetime


class DeadLettersPage(BaseModel):
    items: list[DeadLetter]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class Problem(BaseModel):
    """An error: ``detail`` says what went wrong and what to do next."""

    detail: str


class Check(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, Check]
