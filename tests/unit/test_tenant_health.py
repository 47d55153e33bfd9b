"""Health per tenant: a tenant's job metrics count the runs scoped to it and its share of every
unscoped run that touched it; a failure counts against a tenant only if it was the whole run's
or named that tenant."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from events import (
    ALL_TENANTS,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobName,
    RunCounts,
    RunInfo,
    TickSource,
)
from events.runs import derive_run, evolve_part, new_run
from services.projector.fold import Loaded, Positioned, fold
from tests.factories import NOW

pytestmark = pytest.mark.unit

INFO = RunInfo(scheduled_for=NOW, source=TickSource.SCHEDULE)


def counts(taken: dict[str, int], failed: dict[str, int] | None = None) -> RunCounts:
    failed = failed or {}
    n, bad = sum(taken.values()), sum(failed.values())
    return RunCounts(leads_processed=n, leads_succeeded=n - bad, leads_failed=bad,
                     by_tenant=taken, failed_by_tenant=failed)


def ended(run: UUID, taken: dict[str, int], *, part: str = "a", tenant: str = ALL_TENANTS,
          failed: dict[str, int] | None = None, error: str | None = None,
          failed_tenants: tuple[str, ...] = (), job: JobName = JobName.HARVEST,
          partitions: tuple[int, ...] = (), partitions_total: int = 0) -> JobEvent:
    fields = {"event_id": uuid4(), "occurred_at": NOW, "recorded_at": NOW, "tenant_id": tenant,
              "run_id": run, "job": job, "part": part, "run": INFO, "started_at": NOW,
              "completed_at": NOW, "duration_seconds": 2.0, "counts": counts(taken, failed),
              "partitions": partitions, "partitions_total": partitions_total}
    if error is None:
        return JobCompleted(**fields)
    return JobFailed(**fields, reason="error", error=error, failed_tenants=failed_tenants)


def metrics_after(*events: JobEvent) -> dict[tuple[str, str], dict[str, object]]:
    changes = fold([Positioned("jobs", 0, i, e) for i, e in enumerate(events)], Loaded())
    return {key: row.as_dict() for key, row in changes.metrics.items()}


def test_a_run_failed_by_one_tenants_source_fails_that_tenant_only() -> None:
    broken = ended(uuid4(), {"acme": 20, "initech": 3}, failed={"initech": 3},
                   error="harvest source(s) unreadable: globex.csv", failed_tenants=("globex",))
    m = metrics_after(broken)
    assert m[("harvest", "*")]["failed_runs"] == 1
    acme, globex, initech = (m[("harvest", t)] for t in ("acme", "globex", "initech"))
    assert (acme["successful_runs"], acme["failed_runs"], acme["health_status"]) == (1, 0, "healthy")
    assert (acme["total_leads_processed"], acme["total_leads_failed"]) == (20, 0)
    assert (globex["failed_runs"], globex["consecutive_failures"]) == (1, 1)
    assert (globex["total_leads_processed"], globex["health_status"]) == (0, "degraded")
    # initech's bad rows are lead failures, not a failed run
    assert (initech["successful_runs"], initech["total_leads_failed"]) == (1, 3)
    assert initech["lead_success_rate"] == 0.0


def test_a_run_that_failed_as_a_whole_counts_against_every_tenant_it_touched() -> None:
    timed_out = ended(uuid4(), {"acme": 5, "globex": 7}, error="timed out", job=JobName.SCORE)
    m = metrics_after(timed_out)
    assert {t: m[("score", t)]["failed_runs"] for t in ("*", "acme", "globex")} == {
        "*": 1, "acme": 1, "globex": 1}
    assert ("score", "initech") not in m  # not touched: not counted


def test_three_failures_in_a_row_fail_one_tenant_while_the_other_stays_healthy() -> None:
    runs = [ended(uuid4(), {"acme": 10}, error="globex.csv unreadable", failed_tenants=("globex",))
            for _ in range(3)]
    m = metrics_after(*runs)
    assert m[("harvest", "globex")]["health_status"] == "failed"
    assert m[("harvest", "acme")]["health_status"] == "healthy"
    assert m[("harvest", "*")]["health_status"] == "failed"


def test_a_scoped_run_counts_for_its_tenant_whole_and_a_late_part_adds_a_new_tenants_share() -> None:
    scoped = ended(uuid4(), {"acme": 4}, tenant="acme", job=JobName.SCORE)
    run = uuid4()
    # The first part covers every partition: the run is counted; a late part brings globex.
    first = ended(run, {"acme": 6}, part="a", job=JobName.SCORE, partitions=(0,),
                  partitions_total=1)
    late = ended(run, {"acme": 1, "globex": 9}, part="b", job=JobName.SCORE, partitions_total=1)
    m = metrics_after(scoped, first, late)
    assert (m[("score", "acme")]["total_runs"], m[("score", "acme")]["total_leads_processed"]) == (2, 11)
    assert (m[("score", "globex")]["total_runs"], m[("score", "globex")]["total_leads_processed"]) == (1, 9)
    assert m[("score", "*")]["total_runs"] == 2


def test_a_run_fails_for_named_tenants_only_if_every_failed_part_named_some() -> None:
    run = uuid4()
    named = evolve_part(None, ended(run, {"acme": 1}, part="a", error="x",
                                    failed_tenants=("globex",)))
    whole = evolve_part(None, ended(run, {"acme": 1}, part="b", error="y"))
    fine = evolve_part(None, ended(run, {"initech": 2}, part="c"))
    start = new_run(ended(run, {}))
    assert derive_run(start, [named, fine]).failed_tenants == ["globex"]
    assert derive_run(start, [named, whole, fine]).failed_tenants == []
    both = derive_run(start, [named, whole, fine])
    assert both.failed_by_tenant == {} and both.leads_by_tenant == {"acme": 2, "initech": 2}
    assert both.share_of("initech").status == "failed"
    assert derive_run(start, [named, fine]).share_of("initech").status == "completed"
