"""GET /metrics: the read models in Prometheus text format, computed per scrape."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from events import PIPELINE, RunStatus, utcnow

from ..projector import queries
from ..projector.queries import MetricsSnapshot
from .auth import resources

router = APIRouter(tags=["health"])
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text."}})
async def metrics(request: Request) -> Response:
    """Runs by job and status, leads by stage, run durations, projector lag, dead letters,
    age of the clock's last tick."""
    snapshot = await queries.metrics_snapshot(resources(request).pool)
    return Response(render(snapshot, utcnow()), media_type=CONTENT_TYPE)


def render(snapshot: MetricsSnapshot, now: datetime) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families(snapshot, now)))
    return generate_latest(registry)


class _Families(Collector):
    def __init__(self, items: Iterable[object]) -> None:
        self._items = list(items)

    def collect(self) -> Iterator[object]:  # type: ignore[override]
        return iter(self._items)


def families(s: MetricsSnapshot, now: datetime) -> Iterator[object]:
    """The metric families of one snapshot (every pipeline job present, zeros when idle)."""
    jobs = sorted({j.value for j in PIPELINE} | set(s.job_metrics) | set(s.running))

    runs = CounterMetricFamily("leadflow_runs", "Finished runs by job and status.",
                               labels=["job", "status"])
    running = GaugeMetricFamily("leadflow_runs_running", "Runs in progress by job.", labels=["job"])
    processed = CounterMetricFamily("leadflow_leads_processed", "Leads processed by stage.",
                                    labels=["stage"])
    succeeded = CounterMetricFamily("leadflow_leads_succeeded", "Leads processed successfully by "
                                    "stage.", labels=["stage"])
    failed = CounterMetricFamily("leadflow_leads_failed", "Leads that failed (dead-lettered) by "
                                 "stage.", labels=["stage"])
    streak = GaugeMetricFamily("leadflow_job_consecutive_failures", "Failed runs in a row by job.",
                               labels=["job"])
    health = GaugeMetricFamily("leadflow_job_health", "Job health: 0 healthy, 1 degraded, 2 failed.",
                               labels=["job"])
    for job in jobs:
        m = s.job_metrics.get(job)
        runs.add_metric([job, RunStatus.COMPLETED.value], m.successful_runs if m else 0)
        runs.add_metric([job, RunStatus.FAILED.value], m.failed_runs if m else 0)
        runs.add_metric([job, RunStatus.SKIPPED.value], m.skipped_runs if m else 0)
        running.add_metric([job], s.running.get(job, 0))
        processed.add_metric([job], m.total_leads_processed if m else 0)
        succeeded.add_metric([job], m.total_leads_succeeded if m else 0)
        failed.add_metric([job], m.total_leads_failed if m else 0)
        streak.add_metric([job], m.consecutive_failures if m else 0)
        health.add_metric([job], m.health_status.severity if m else 0)
    yield from (runs, running, processed, succeeded, failed, streak, health)

    # Per tenant: the runs scoped to it and its share of the runs over all tenants.
    tenant_health = GaugeMetricFamily(
        "leadflow_tenant_job_health", "Job health per tenant: 0 healthy, 1 degraded, 2 failed.",
        labels=["job", "tenant"])
    tenant_streak = GaugeMetricFamily(
        "leadflow_tenant_job_consecutive_failures", "Failed runs in a row by job and tenant.",
        labels=["job", "tenant"])
    tenant_failed = CounterMetricFamily(
        "leadflow_tenant_leads_failed", "Leads that failed by stage and tenant.",
        labels=["stage", "tenant"])
    for (job, tenant), m in sorted(s.tenant_metrics.items()):
        tenant_health.add_metric([job, tenant], m.health_status.severity)
        tenant_streak.add_metric([job, tenant], m.consecutive_failures)
        tenant_failed.add_metric([job, tenant], m.total_leads_failed)
    yield from (tenant_health, tenant_streak, tenant_failed)

    durations = HistogramMetricFamily("leadflow_run_duration_seconds",
                                      "Run durations by job (runs still kept in job_runs).",
                                      labels=["job"])
    for job in jobs:
        h = s.durations.get(job)
        buckets = [(_le(b), float(h.buckets.get(b, 0) if h else 0)) for b in queries.DURATION_BUCKETS]
        buckets.append(("+Inf", float(h.count if h else 0)))
        durations.add_metric([job], buckets, sum_value=h.total if h else 0.0)
    yield durations

    leads = GaugeMetricFamily("leadflow_leads", "Leads by current status.", labels=["status"])
    for name, n in s.leads_by_status.items():
        leads.add_metric([name], n)
    yield leads

    letters = GaugeMetricFamily("leadflow_dead_letters", "Dead letters by stage.", labels=["stage"])
    for stage in sorted({j.value for j in PIPELINE} | set(s.dead_letters_by_stage)):
        letters.add_metric([stage], s.dead_letters_by_stage.get(stage, 0))
    yield letters

    p = s.projector
    if p.get("lag") is not None:
        yield GaugeMetricFamily("leadflow_projector_lag_messages",
                                "Messages in the log the projector has not folded yet.", value=p["lag"])
    if p.get("events_applied") is not None:
        yield CounterMetricFamily("leadflow_projector_events_applied",
                                  "Messages the projector has folded.", value=p["events_applied"])
    if p.get("age_seconds") is not None:
        yield GaugeMetricFamily("leadflow_projector_status_age_seconds",
                                "Seconds since the projector last reported.", value=p["age_seconds"])

    age = GaugeMetricFamily("leadflow_clock_last_tick_age_seconds",
                            "Seconds since the clock's latest tick that started a run, by job.",
                            labels=["job"])
    for job, at in sorted(s.last_clock_tick.items()):
        age.add_metric([job], max(0.0, (now - at).total_seconds()))
    yield age


def _le(bound: float) -> str:
    return repr(float(bound))
