"""A run's manifest, folded from its parts' job events: the cap applied and the leads taken per
tenant; and its CSV export."""

from __future__ import annotations

from uuid import uuid4

import pytest

from events import JobCompleted, JobName, JobStarted, RunCounts, RunInfo, TickSource
from events.jobs import merged_by_tenant
from events.runs import derive_run, evolve_part, new_run
from services.projector.queries import manifest_csv
from tests.factories import NOW

pytestmark = pytest.mark.unit

RUN = uuid4()
INFO = RunInfo(scheduled_for=NOW, source=TickSource.MANUAL, max_leads=100, campaign_id="q4")


def envelope(part: str) -> dict[str, object]:
    return {"event_id": uuid4(), "occurred_at": NOW, "recorded_at": NOW, "tenant_id": "acme",
            "run_id": RUN, "job": JobName.SCORE, "part": part, "run": INFO}


def completed(part: str, partitions: tuple[int, ...], by_tenant: dict[str, int]) -> JobCompleted:
    n = sum(by_tenant.values())
    return JobCompleted(**envelope(part), started_at=NOW, completed_at=NOW, duration_seconds=1,
                        counts=RunCounts(leads_processed=n, leads_succeeded=n,
                                         by_tenant=by_tenant),
                        partitions=partitions, partitions_total=4, cap=100)


def test_the_run_sums_its_parts_leads_per_tenant_and_keeps_the_cap_and_scope() -> None:
    started = JobStarted(**envelope("a"), started_at=NOW)
    run = new_run(started)
    parts = [evolve_part(evolve_part(None, started), completed("a", (0, 1), {"acme": 30})),
             evolve_part(None, completed("b", (2, 3), {"acme": 5, "globex": 65}))]
    folded = derive_run(run, parts)
    assert (folded.status, folded.leads_processed, folded.cap) == ("completed", 100, 100)
    assert folded.leads_by_tenant == {"acme": 35, "globex": 65}
    assert (folded.tenant_id, folded.campaign_id) == ("acme", "q4")
    assert parts[1].leads_by_tenant == {"acme": 5, "globex": 65}


def test_a_job_event_from_before_manifests_folds_to_an_empty_one() -> None:
    old = completed("a", (0, 1, 2, 3), {}).model_dump(mode="json")
    del old["cap"], old["counts"]["by_tenant"], old["run"]["campaign_id"]
    event = JobCompleted.model_validate(old)
    folded = derive_run(new_run(event), [evolve_part(None, event)])
    assert (folded.cap, folded.leads_by_tenant, folded.campaign_id) == (None, {}, None)


def test_merged_counts_and_the_csv_export() -> None:
    assert merged_by_tenant({"b": 1, "a": 2}, {"b": 3}, {}) == {"a": 2, "b": 4}
    manifest = {"run_id": "r1", "job": "harvest", "scheduled_for": "2026-12-05T02:00:00+00:00",
                "tenant_id": "*", "campaign_id": None, "cap": 100, "status": "failed",
                "leads_by_tenant": {"globex": 80, "acme": 20}, "failed_by_tenant": {"globex": 2},
                "failed_tenants": ["initech"]}
    assert manifest_csv(manifest).splitlines() == [
        "run_id,job,scheduled_for,scope_tenant,scope_campaign,cap,tenant_id,leads,leads_failed,"
        "status",
        "r1,harvest,2026-12-05T02:00:00+00:00,*,,100,acme,20,0,completed",
        "r1,harvest,2026-12-05T02:00:00+00:00,*,,100,globex,80,2,completed",
        "r1,harvest,2026-12-05T02:00:00+00:00,*,,100,initech,0,0,failed",
    ]
