"""Read-side queries over the read models (used by the CLI and the dashboard). SQL lives here."""

from .leads import (
    FUNNEL,
    FUNNEL_PATH,
    campaigns,
    funnel_stages,
    lead_detail,
    lead_event_count,
    leads_page,
    leads_per_day,
    status_counts,
)
from .metrics import DURATION_BUCKETS, DurationHistogram, MetricsSnapshot, metrics_snapshot
from .pipeline import pipeline_report
from .runs import (
    RunCursor,
    finished_runs,
    job_metrics,
    latest_backlogs,
    latest_runs_by_job,
    manifest_csv,
    one_job_metrics,
    recent_runs,
    run_manifest,
    runs_page,
)
from .status import dead_letter_count, dead_letters_page, projector_status
from .tenants import tenants_overview

__all__ = [
    "DURATION_BUCKETS",
    "FUNNEL",
    "FUNNEL_PATH",
    "DurationHistogram",
    "MetricsSnapshot",
    "RunCursor",
    "campaigns",
    "dead_letter_count",
    "dead_letters_page",
    "finished_runs",
    "funnel_stages",
    "job_metrics",
    "latest_backlogs",
    "latest_runs_by_job",
    "lead_detail",
    "lead_event_count",
    "leads_page",
    "leads_per_day",
    "manifest_csv",
    "metrics_snapshot",
    "one_job_metrics",
    "pipeline_report",
    "projector_status",
    "recent_runs",
    "run_manifest",
    "runs_page",
    "status_counts",
    "tenants_overview",
]
