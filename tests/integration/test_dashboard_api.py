"""The dashboard's read API against read models folded from a real pipeline run."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from events import PIPELINE
from services.dashboard.app import create_app
from services.dashboard.resources import Resources
from services.pipeline.settings import Settings
from services.runtime.config import DashboardConfig
from services.runtime.db import connect, quote_ident
from services.runtime.errors import ConfigError
from tests.harness import Ticker, dsn_for, make_config, project, read_models, running
from tests.harness.dashboard import (
    BAD_ROWS,
    LEADS,
    READ_TOKEN,
    TOKEN,
    client_for,
    dashboard_settings,
    drive,
    pipeline_source,
)


async def populate(settings: Settings) -> None:
    """A pipeline run, folded into the read models."""
    async with running(settings, *PIPELINE), Ticker(settings) as ticker:
        await drive(ticker)
    await project(settings)


@pytest.fixture(scope="module")
async def populated(broker: str, admin_dsn: str, template_db: str,
                    tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Settings]:
    """One database and topic prefix for the module, holding a pipeline run's read models."""
    name = f"leadflow_t_{uuid.uuid4().hex[:12]}"
    async with connect(admin_dsn) as conn:
        await conn.execute(f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(template_db)}")
    base = Settings(database_url=dsn_for(admin_dsn, name), kafka_bootstrap_servers=broker,
                    instance_id="test").using(make_config(f"t{uuid.uuid4().hex[:10]}."))
    settings = dashboard_settings(base, pipeline_source(tmp_path_factory.mktemp("dash")))
    await populate(settings)
    yield settings
    async with connect(admin_dsn) as conn:
        await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")


@pytest.fixture
async def client(populated: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(populated, READ_TOKEN) as c:
        yield c


async def test_dashboard_keeps_the_cron_shape_and_equals_the_read_models(
        client: httpx.AsyncClient, populated: Settings) -> None:
    body = (await client.get("/api/dashboard")).raise_for_status().json()

    # The old cron dashboard's keys, so existing users can switch.
    assert {"timestamp", "scheduler_status", "job_metrics", "recent_jobs"} <= set(body)
    assert set(body["job_metrics"]) >= {"harvest", "score", "qualify", "route", "contact"}
    scheduler = body["scheduler_status"]
    assert scheduler["overall_health"] == "healthy"
    for job in PIPELINE:
        entry = scheduler["jobs"][job.value]
        assert {"enabled", "next_run", "hours_until_next_run", "health", "success_rate",
                "last_run", "consecutive_failures"} <= set(entry)
    assert len(body["recent_jobs"]) == len(PIPELINE) + 1
    assert {"job_type", "status", "started_at", "completed_at", "duration_seconds",
            "leads_processed", "leads_succeeded", "leads_failed", "error"} <= set(body["recent_jobs"][0])

    async with read_models(populated) as db:
        by_status = {r["status"]: r["n"] for r in
                     await db.fetch("SELECT status, count(*) AS n FROM leads GROUP BY status")}
        metrics = {r["job"]: r for r in await db.fetch("SELECT * FROM job_metrics WHERE tenant_id = '*'")}
        letters = await db.fetchval("SELECT count(*) FROM dead_letters")
        newest = await db.fetchval(
            "SELECT run_id FROM job_runs ORDER BY coalesce(started_at, recorded_at) DESC LIMIT 1")
    assert {k: v for k, v in body["funnel"].items() if v} == by_status
    assert sum(body["funnel"].values()) == LEADS
    stages = {s["status"]: s for s in body["funnel_stages"]}
    assert stages["NEW"]["reached"] == LEADS
    assert stages["CONTACTED"]["reached"] == by_status.get("CONTACTED", 0)
    assert stages["CONTACTED"]["overall_pct"] == round(by_status.get("CONTACTED", 0) / LEADS * 100, 2)
    assert body["dead_letter_count"] == letters == BAD_ROWS
    for job, row in metrics.items():
        shown = body["job_metrics"][job]
        assert (shown["total_runs"], shown["successful_runs"], shown["total_leads_processed"]) == (
            row["total_runs"], row["successful_runs"], row["total_leads_processed"])
    assert body["job_metrics"]["score"]["total_runs"] == 2
    assert body["recent_jobs"][0]["run_id"] == str(newest)
    today = body["leads_per_day"][-1]
    assert today["entered"]["NEW"] == LEADS
    assert len(body["leads_per_day"]) == 14
    assert body["projector"]["lag"] == 0

    seed_shape = (await client.get("/api/scheduler")).raise_for_status().json()
    assert seed_shape["overall_health"] == "healthy"
    assert set(seed_shape["jobs"]) == set(scheduler["jobs"])


async def test_job_metrics_and_runs_page_backwards_through_history(
        client: httpx.AsyncClient, populated: Settings) -> None:
    metrics = (await client.get("/api/jobs/score/metrics")).raise_for_status().json()
    assert (metrics["job"], metrics["total_runs"], metrics["health_status"]) == ("score", 2, "healthy")
    assert metrics["total_leads_processed"] == LEADS

    seen: list[dict[str, Any]] = []
    url = "/api/jobs/score/runs?limit=1"
    while url:
        page = (await client.get(url)).raise_for_status().json()
        seen += page["items"]
        url = f"/api/jobs/score/runs?limit=1&before={page['next_before']}" if page["next_before"] else ""
    async with read_models(populated) as db:
        expected = [str(r["run_id"]) for r in await db.fetch(
            "SELECT run_id FROM job_runs WHERE job = 'score' "
            "ORDER BY coalesce(started_at, recorded_at) DESC")]
    assert [r["run_id"] for r in seen] == expected
    assert [r["source"] for r in seen] == ["schedule", "manual"]
    assert seen[1]["requested_by"] == "test"
    assert seen[1]["leads_processed"] == LEADS

    # A plain time works as a cursor too: nothing started before the first run.
    oldest = seen[-1]["started_at"]
    empty = (await client.get("/api/jobs/score/runs", params={"before": oldest})).json()
    assert empty["items"] == [] and empty["next_before"] is None

    bad = await client.get("/api/jobs/score/runs", params={"before": "last tuesday"})
    assert bad.status_code == 422
    assert "query.before: before='last tuesday' is neither an ISO 8601 time" in bad.json()["message"]
    unknown = await client.get("/api/jobs/nightly/runs")
    assert unknown.status_code == 422 and "path.job" in unknown.json()["message"]


async def test_leads_are_searchable_filterable_paged_and_show_their_history(
        client: httpx.AsyncClient, populated: Settings) -> None:
    everyone = (await client.get("/api/leads", params={"limit": 500})).json()
    assert everyone["total"] == LEADS and len(everyone["items"]) == LEADS

    first = (await client.get("/api/leads", params={"limit": 25})).json()
    second = (await client.get("/api/leads", params={"limit": 25, "offset": first["next_offset"]})).json()
    third = (await client.get("/api/leads", params={"limit": 25, "offset": second["next_offset"]})).json()
    ids = [r["lead_id"] for page in (first, second, third) for r in page["items"]]
    assert len(ids) == len(set(ids)) == LEADS and third["next_offset"] is None

    by_email = (await client.get("/api/leads", params={"q": "PERSON7@"})).json()
    assert [r["email"] for r in by_email["items"]] == [
        r["email"] for r in everyone["items"] if r["email"].startswith("person7@")]
    company = everyone["items"][0]["company"] or "Company1"
    by_company = (await client.get("/api/leads", params={"q": company.lower()})).json()
    assert by_company["total"] == sum(1 for r in everyone["items"]
                                      if company.lower() in (r["company"] or "").lower()
                                      or company.lower() in r["email"])
    literal = (await client.get("/api/leads", params={"q": "%"})).json()
    assert literal["total"] == 0  # wildcards are searched for literally

    contacted = (await client.get("/api/leads", params={"status": "CONTACTED", "campaign": "q4"})).json()
    assert contacted["total"] > 0
    assert {r["status"] for r in contacted["items"]} == {"CONTACTED"}
    assert (await client.get("/api/leads", params={"campaign": "other"})).json()["total"] == 0
    bad = await client.get("/api/leads", params={"status": "WON"})
    assert bad.status_code == 422 and "query.status" in bad.json()["message"]

    lead_id = contacted["items"][0]["lead_id"]
    detail = (await client.get(f"/api/leads/{lead_id}")).raise_for_status().json()
    assert detail["lead"]["status"] == "CONTACTED"
    types = [e["type"] for e in detail["events"]]
    assert types == ["lead.created", "lead.scored", "lead.qualified", "lead.routed", "lead.contacted"]
    assert [e["version"] for e in detail["events"]] == sorted(e["version"] for e in detail["events"])
    assert detail["events"][-1]["payload"]["lead"]["lead_id"] == lead_id
    missing = await client.get(f"/api/leads/{uuid.uuid4()}")
    assert missing.status_code == 404 and "search /api/leads" in missing.json()["detail"]

    campaigns = (await client.get("/api/campaigns")).json()
    assert [(c["campaign_id"], c["tenant_id"], c["leads"]) for c in campaigns] == [("q4", "acme", LEADS)]


async def test_reads_refuse_control_characters_and_huge_offsets_with_a_422(
        client: httpx.AsyncClient) -> None:
    for url, message in [("/api/leads?q=a%00b", "query: contains the control character U+0000"),
                         ("/api/leads?offset=99999999999999999999", "query.offset"),
                         ("/api/leads/a%00b", "path: contains the control character U+0000")]:
        response = await client.get(url)
        assert response.status_code == 422, (url, response.text)
        assert message in response.json()["message"], (url, response.json())


async def test_dead_letters_list_the_unreadable_rows(client: httpx.AsyncClient) -> None:
    page = (await client.get("/api/dead-letters")).raise_for_status().json()
    assert page["total"] == BAD_ROWS
    assert {(d["stage"], d["error_type"]) for d in page["items"]} == {("harvest", "InvalidRow")}
    assert all(d["origin"].endswith((f":{LEADS + 2}", f":{LEADS + 3}")) for d in page["items"])
    assert (await client.get("/api/dead-letters", params={"stage": "score"})).json()["total"] == 0


async def test_metrics_expose_runs_leads_durations_lag_letters_and_tick_age(
        client: httpx.AsyncClient, populated: Settings) -> None:
    response = (await client.get("/metrics")).raise_for_status()
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(response.text) for s in family.samples}
    async with read_models(populated) as db:
        metrics = {r["job"]: r for r in await db.fetch("SELECT * FROM job_metrics WHERE tenant_id = '*'")}
        timed = await db.fetchval("SELECT count(*) FROM job_runs WHERE job = 'score' "
                                  "AND duration_seconds IS NOT NULL")
        contacted = await db.fetchval("SELECT count(*) FROM leads WHERE status = 'CONTACTED'")
    for job in PIPELINE:
        row = metrics[job.value]
        assert samples[("leadflow_runs_total", (("job", job.value), ("status", "completed")))] == \
            row["successful_runs"]
        assert samples[("leadflow_leads_processed_total", (("stage", job.value),))] == \
            row["total_leads_processed"]
    assert samples[("leadflow_run_duration_seconds_count", (("job", "score"),))] == timed == 2
    assert samples[("leadflow_leads", (("status", "CONTACTED"),))] == contacted
    assert samples[("leadflow_dead_letters", (("stage", "harvest"),))] == BAD_ROWS
    assert samples[("leadflow_projector_lag_messages", ())] == 0
    # Only the scheduled score tick came from the clock.
    ages = {labels: v for (name, labels), v in samples.items()
            if name == "leadflow_clock_last_tick_age_seconds"}
    assert list(ages) == [(("job", "score"),)] and ages[(("job", "score"),)] >= 0


async def test_probes_report_each_dependency(populated: Settings) -> None:
    async with client_for(populated) as client:  # the probes are open
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.json()
        assert {k: v["ok"] for k, v in ready.json()["checks"].items()} == {
            "database": True, "broker": True, "projector": True}

    stale = populated.using(populated.pipeline.model_copy(update={"dashboard": DashboardConfig(
        token=TOKEN, readiness_max_status_age=timedelta(0))}))
    async with client_for(stale) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "last reported" in ready.json()["checks"]["projector"]["detail"]

    no_broker = populated.using(populated.pipeline, kafka_bootstrap_servers="127.0.0.1:1")
    async with client_for(no_broker, READ_TOKEN) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/api/dashboard")).status_code == 200  # reads need no broker
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        broker_check = ready.json()["checks"]["broker"]
        assert not broker_check["ok"] and "KAFKA_BOOTSTRAP_SERVERS" in broker_check["detail"]


async def test_the_pipeline_report_counts_each_stage_rejections_and_conversions_per_day(
        client: httpx.AsyncClient, populated: Settings) -> None:
    days = (await client.get("/api/pipeline", params={"days": 7})).raise_for_status().json()
    assert len(days) == 1  # one day, one tenant and campaign: everything ran today
    today = days[0]
    assert (today["tenant_id"], today["campaign_id"]) == ("acme", "q4")
    async with read_models(populated) as db:
        leads = await db.fetch("SELECT status, reasons FROM leads")
    qualified = sum(1 for r in leads if r["status"] != "REJECTED")
    rejected = [reason for r in leads if r["status"] == "REJECTED" for reason in r["reasons"]]
    entered = today["entered"]
    assert (entered["NEW"], entered["SCORED"], entered["REJECTED"]) == (LEADS, LEADS, LEADS - qualified)
    assert entered["QUALIFIED"] == entered["ROUTED"] == today["first_contacts"] == qualified
    assert today["rejected"] == {reason: rejected.count(reason) for reason in set(rejected)}
    assert today["conversion_pct"] == {
        "scored": 100.0, "qualified": round(qualified / LEADS * 100, 2), "routed": 100.0,
        "contacted": 100.0}
    assert (await client.get("/api/pipeline", params={"campaign": "other"})).json() == []
    assert (await client.get("/api/pipeline", params={"days": 0})).status_code == 422


OPEN = {"/healthz", "/readyz", "/metrics", "/api/ui", "/api/openapi.json", "/"}


def read_paths(settings: Settings, lead_id: str) -> list[str]:
    """Every GET the app documents, except the open ones, path parameters filled in."""
    fill = {"lead_id": lead_id, "job": "score", "run_id": str(uuid.uuid4()),
            "campaign_id": "q4", "tenant_id": "acme"}
    documented = create_app(settings).openapi()["paths"]
    paths = [re.sub(r"\{(\w+)\}", lambda m: fill[m.group(1)], path)
             for path, methods in documented.items() if "get" in methods and path not in OPEN]
    assert len(paths) >= 8, paths
    return paths


async def test_no_lead_data_without_a_token_and_the_read_token_opens_only_the_reads(
        populated: Settings) -> None:
    async with read_models(populated) as db:
        lead_id, email = await db.fetchrow("SELECT lead_id, email FROM leads LIMIT 1")
    paths = read_paths(populated, str(lead_id))
    async with client_for(populated) as client:
        for path in paths:
            missing = await client.get(path)
            assert missing.status_code == 401, path
            assert email not in missing.text
            wrong = await client.get(path, headers={"Authorization": "Bearer guess"})
            assert wrong.status_code == 401 and "wrong bearer token" in wrong.json()["detail"]
            for token in (READ_TOKEN, TOKEN):  # the control token opens the reads too
                allowed = await client.get(path, headers={"Authorization": f"Bearer {token}"})
                assert allowed.status_code not in (401, 403), (path, allowed.text)
        lead = await client.get(f"/api/leads/{lead_id}", headers={"Authorization": f"Bearer {READ_TOKEN}"})
        assert lead.status_code == 200 and email in lead.text
        # The read token is read-only: every control refuses it.
        for path in ("/api/ticks", "/api/kill-switch"):
            refused = await client.post(path, json={"job": "score"} if "ticks" in path else
                                        {"engaged": True},
                                        headers={"Authorization": f"Bearer {READ_TOKEN}"})
            assert refused.status_code == 401, path
        # What stays open carries no personal data.
        for path in OPEN - {"/"}:
            response = await client.get(path)
            assert response.status_code in (200, 503), path
            assert email not in response.text and str(lead_id) not in response.text, path


async def test_reads_are_refused_to_everyone_when_no_token_is_configured(
        populated: Settings) -> None:
    closed = populated.using(populated.pipeline.model_copy(update={"dashboard": DashboardConfig()}),
                             dashboard_token=None, dashboard_read_token=None)
    async with client_for(closed, "anything") as client:
        refused = await client.get("/api/leads")
        assert refused.status_code == 403 and "read_token" in refused.json()["detail"]
        assert (await client.get("/api/ui")).json()["reads_enabled"] is False


def test_a_read_token_equal_to_the_control_token_fails_at_start(settings: Settings) -> None:
    same = settings.using(settings.pipeline.model_copy(update={"dashboard": DashboardConfig(
        token="same", read_token="same")}))
    with pytest.raises(ConfigError, match="read_token equals the control token"):
        Resources(same)
