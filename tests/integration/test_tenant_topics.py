"""Tenants with lead topics of their own ([topics.tenants.<id>]) on the real broker and
Postgres: a run for one tenant moves only its leads in every stage, one tenant's broken
source or backlog never holds up another's, and a process serves only the tenants it is told
to (LEADFLOW_TENANTS_INCLUDE / _EXCLUDE)."""

from __future__ import annotations

import io
from collections import Counter
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from events import TENANT_NOT_SERVED, JobName, LeadStatus, Topic, utcnow
from services.cli.clock_commands import show_status as show_clock_status
from services.harvest.config import HarvestConfig, HarvestSource
from services.pipeline.config import LeadflowConfig
from services.pipeline.settings import Settings
from services.replay.engine import Replayer
from services.replay.spec import ReplaySpec
from services.runtime.bus import describe_topics
from services.runtime.config import JobConfig, TenantTopics, TopicsConfig
from tests.factories import created_event, lead_factory, source_rows, write_csv
from tests.harness import Ticker, make_config, project, publish, read_models, running
from tests.harness.dashboard import TOKEN, client_for, with_token

STAGES = (JobName.SCORE, JobName.QUALIFY, JobName.ROUTE, JobName.CONTACT)
FINAL = {LeadStatus.CONTACTED.value, LeadStatus.REJECTED.value}



def tenant_config(settings: Settings, **sections: object) -> LeadflowConfig:
    topics = TopicsConfig(prefix=settings.prefix, partitions=3, tenants={
        "acme": TenantTopics(partitions=2), "globex": TenantTopics(partitions=2)})
    jobs = {job: JobConfig(max_leads_per_run=10_000) for job in (JobName.HARVEST, *STAGES)}
    return make_config(settings.prefix, topics=topics, **{"jobs": jobs, **sections})


async def statuses(settings: Settings) -> dict[str, Counter[str]]:
    """Lead counts per tenant and status, as the read models show them."""
    async with read_models(settings) as db:
        rows = await db.fetch("SELECT tenant_id, status, count(*) AS n FROM leads "
                              "GROUP BY tenant_id, status")
    found: dict[str, Counter[str]] = {}
    for row in rows:
        found.setdefault(row["tenant_id"], Counter())[row["status"]] += row["n"]
    return found


async def test_a_run_for_one_tenant_moves_only_its_leads_in_every_stage(
        settings: Settings, tmp_path: Path) -> None:
    since = utcnow() - timedelta(minutes=1)
    rows = source_rows(40)
    source = write_csv(tmp_path / "leads.csv", rows)
    settings = settings.using(tenant_config(settings, harvest=HarvestConfig(sources=(
        HarvestSource(path=source, tenant="acme"), HarvestSource(path=source, tenant="globex"),
        HarvestSource(path=source, tenant="initech")))))

    async with running(settings, JobName.HARVEST, *STAGES), Ticker(settings) as ticker:
        harvest = await ticker.run(JobName.HARVEST)
        assert (harvest.status, harvest.leads_succeeded) == ("completed", 120), harvest
        for job in STAGES:
            run = await ticker.run(job, tenant_id="acme")
            # Only acme's own partitions make the run: 2 of them, both covered.
            assert (run.status, run.partitions_total, run.partitions_covered) == (
                "completed", 2, 2), (job, run)
            assert run.leads_processed > 0, (job, run)
        await project(settings)
        after_acme = await statuses(settings)
        for job in STAGES:
            run = await ticker.run(job)
            assert run.status == "completed", (job, run)
            # Every tenant's input: the shared topic (3 partitions) and two tenants' (2 each).
            assert (run.partitions_total, run.partitions_covered) == (7, 7), (job, run)
    await project(settings)
    after_all = await statuses(settings)

    assert set(after_acme["acme"]) <= FINAL and after_acme["acme"].total() == 40
    assert after_acme["globex"] == Counter({LeadStatus.NEW.value: 40})
    assert after_acme["initech"] == Counter({LeadStatus.NEW.value: 40})
    for tenant in ("acme", "globex", "initech"):
        assert set(after_all[tenant]) <= FINAL and after_all[tenant].total() == 40, tenant
    # The same people got the same outcomes in each tenant (the same rules apply to all three).
    assert after_all["acme"] == after_all["globex"] == after_all["initech"]

    # A replay for one tenant with topics of its own reads its topic alone: 40 inputs, not 120.
    dry = await Replayer(settings, ReplaySpec(JobName.SCORE, from_at=since, tenant="acme",
                                              dry_run=True)).run()
    assert (dry.status, dry.counts.events_read, dry.counts.skipped) == ("dry run", 40, 0)
    shared = await Replayer(settings, ReplaySpec(JobName.SCORE, from_at=since,
                                                 tenant="initech", dry_run=True)).run()
    assert (shared.status, shared.counts.events_read) == ("dry run", 40)  # the shared topic
    everyone = await Replayer(settings, ReplaySpec(JobName.SCORE, from_at=since,
                                                   dry_run=True)).run()
    assert everyone.counts.events_read == 120

    # The events went where the layout says: a tenant's own topics, the rest shared.
    names = {"acme": f"{settings.prefix}t.acme.leads.new",
             "globex": f"{settings.prefix}t.globex.leads.new",
             "shared": Topic.LEADS_NEW.physical(settings.prefix)}
    counts = await describe_topics(settings.kafka_bootstrap_servers, list(names.values()))
    assert counts == {names["acme"]: 2, names["globex"]: 2, names["shared"]: 3}
    async with read_models(settings) as db:
        by_topic = dict(await db.fetch(
            "SELECT topic, count(*) FROM projector_offsets WHERE topic LIKE '%leads.new' "
            "GROUP BY topic"))
    assert set(by_topic) == set(names.values())


async def test_one_tenants_broken_source_and_backlog_never_hold_up_anothers(
        settings: Settings, tmp_path: Path) -> None:
    acme_rows = source_rows(20, seed=2)
    good = write_csv(tmp_path / "acme.csv", acme_rows)
    broken = write_csv(tmp_path / "globex.csv", source_rows(5, seed=3))
    config = tenant_config(settings, harvest=HarvestConfig(sources=(
        HarvestSource(path=good, tenant="acme"), HarvestSource(path=broken, tenant="globex"))))
    settings = settings.using(config)
    broken.unlink()  # globex's export never arrived tonight
    # globex also has a backlog of 1,500 leads waiting to be scored, ahead of acme's.
    await publish(settings, [created_event(lead_factory(tenant_id="globex",
                                                        email=f"g{i}@backlog.test"))
                             for i in range(1500)])

    async with running(settings, JobName.HARVEST, JobName.SCORE), Ticker(settings) as ticker:
        acme_harvest = await ticker.run(JobName.HARVEST, tenant_id="acme")
        assert (acme_harvest.status, acme_harvest.leads_succeeded) == ("completed", 20)
        late = [{**row, "email": f"late{i}@acme-late.test"}
                for i, row in enumerate(source_rows(5, seed=4))]
        write_csv(good, acme_rows + late)  # acme's export grew by 5 rows since
        everyone = await ticker.run(JobName.HARVEST)
        # The broken source fails the unscoped run, naming the file and the tenant it is for;
        # acme's new leads went through.
        assert everyone.status == "failed" and "globex.csv" in (everyone.error or "")
        assert (everyone.leads_by_tenant, everyone.failed_tenants) == ({"acme": 5}, ["globex"])
        # One run capped at 100 over both tenants: acme's 25 are not stuck behind globex's 1,500.
        score = await ticker.run(JobName.SCORE, max_leads=100)
        assert (score.status, score.leads_processed) == ("completed", 100), score
    await project(settings)
    found = await statuses(settings)
    assert found["acme"] == Counter({LeadStatus.SCORED.value: 25})
    assert found["globex"][LeadStatus.SCORED.value] == 75

    # Each run's manifest: what it was for, the cap applied, the leads taken per tenant; in
    # the API (with the runs and leads filtered by tenant) and as CSV to export.
    async with client_for(with_token(settings), TOKEN) as api:
        manifest = (await api.get(f"/api/runs/{score.run_id}/manifest")).json()
        assert (manifest["tenant_id"], manifest["cap"], manifest["leads_by_tenant"]) == (
            "*", 100, {"acme": 25, "globex": 75})
        assert sum(p["leads_processed"] for p in manifest["parts"]) == 100
        exported = await api.get(f"/api/runs/{score.run_id}/manifest", params={"format": "csv"})
        assert exported.headers["content-type"].startswith("text/csv")
        lines = exported.text.splitlines()
        assert lines[0] == ("run_id,job,scheduled_for,scope_tenant,scope_campaign,cap,tenant_id,"
                            "leads,leads_failed,status")
        assert [line.split(",")[-4:] for line in lines[1:]] == [
            ["acme", "25", "0", "completed"], ["globex", "75", "0", "completed"]]
        scoped = (await api.get(f"/api/runs/{acme_harvest.run_id}/manifest")).json()
        assert (scoped["tenant_id"], scoped["leads_by_tenant"]) == ("acme", {"acme": 20})
        failed = (await api.get(f"/api/runs/{everyone.run_id}/manifest")).json()
        assert (failed["leads_by_tenant"], failed["failed_tenants"]) == ({"acme": 5}, ["globex"])
        # acme's runs: its own and those that took its leads; globex's: the run that failed
        # for it; the score run took 25 of acme's.
        harvests = (await api.get("/api/jobs/harvest/runs", params={"tenant": "acme"})).json()
        assert [r["run_id"] for r in harvests["items"]] == [str(everyone.run_id),
                                                            str(acme_harvest.run_id)]
        globex_harvests = (await api.get("/api/jobs/harvest/runs",
                                         params={"tenant": "globex"})).json()
        assert [r["run_id"] for r in globex_harvests["items"]] == [str(everyone.run_id)]
        # Listed for a tenant, a run over all shows how it went for that tenant.
        assert [(r["status"], r["leads_processed"]) for r in harvests["items"]] == [
            ("completed", 5), ("completed", 20)]
        assert [(r["status"], r["leads_processed"], r["failed_tenants"])
                for r in globex_harvests["items"]] == [("failed", 0, ["globex"])]
        scores = (await api.get("/api/jobs/score/runs", params={"tenant": "acme"})).json()
        assert [(r["run_id"], r["leads_by_tenant"]["acme"]) for r in scores["items"]] == [
            (str(score.run_id), 25)]
        assert (await api.get("/api/jobs/harvest/runs",
                              params={"tenant": "initech"})).json()["items"] == []
        leads = (await api.get("/api/leads", params={"tenant": "acme", "limit": 5})).json()
        assert leads["total"] == 25 and {r["tenant_id"] for r in leads["items"]} == {"acme"}

        # Health per tenant: the unscoped harvest failed for globex only. acme's share of it
        # went through, so acme stays healthy while the job over all tenants is degraded.
        def harvest_of(metrics: dict[str, object]) -> tuple[object, ...]:
            return (metrics["total_runs"], metrics["failed_runs"], metrics["health_status"])

        per_tenant = {t: (await api.get("/api/jobs/harvest/metrics", params={"tenant": t})).json()
                      for t in ("*", "acme", "globex")}
        assert harvest_of(per_tenant["*"]) == (2, 1, "degraded")
        assert harvest_of(per_tenant["acme"]) == (2, 0, "healthy")
        assert harvest_of(per_tenant["globex"]) == (1, 1, "degraded")
        assert per_tenant["acme"]["total_leads_processed"] == 25
        tenants = {t["tenant_id"]: t for t in (await api.get("/api/tenants")).json()}
        assert {t: (v["health"], v["own_topics"], v["leads"]) for t, v in tenants.items()} == {
            "acme": ("healthy", True, 25), "globex": ("degraded", True, 1500)}
        assert tenants["globex"]["jobs"]["harvest"]["consecutive_failures"] == 1
        # The overview for one tenant: its funnel, runs and health.
        acme = (await api.get("/api/dashboard", params={"tenant": "acme"})).json()
        overall = (await api.get("/api/dashboard")).json()
        assert acme["tenant"] == "acme" and acme["funnel"][LeadStatus.SCORED.value] == 25
        assert acme["scheduler_status"]["jobs"]["harvest"]["health"] == "healthy"
        assert overall["scheduler_status"]["jobs"]["harvest"]["health"] == "degraded"
        assert {r["run_id"] for r in acme["recent_jobs"]} == {
            str(acme_harvest.run_id), str(everyone.run_id), str(score.run_id)}
        # And for Prometheus: health and failure streaks per job and tenant.
        scraped = (await api.get("/metrics")).raise_for_status().text
        samples = {(s.name, s.labels.get("job"), s.labels.get("tenant")): s.value
                   for family in text_string_to_metric_families(scraped)
                   for s in family.samples if s.name.startswith("leadflow_tenant_job")}
        assert samples[("leadflow_tenant_job_health", "harvest", "globex")] == 1
        assert samples[("leadflow_tenant_job_health", "harvest", "acme")] == 0
        assert samples[("leadflow_tenant_job_consecutive_failures", "harvest", "globex")] == 1
        missing = await api.get(f"/api/runs/{uuid4()}/manifest")
        assert missing.status_code == 404 and "no run" in missing.json()["detail"]
    # And in the terminal: `leadflow clock status --tenant`.
    out = io.StringIO()
    shown = await show_clock_status(settings, Console(file=out, width=200), "globex")
    assert shown["jobs"]["harvest"]["health"] == "degraded" and "tenant globex" in out.getvalue()
    acme_status = await show_clock_status(settings, Console(file=io.StringIO()), "acme")
    assert acme_status["jobs"]["harvest"]["health"] == "healthy"


async def test_a_process_serves_only_the_tenants_it_is_told_to(settings: Settings) -> None:
    config = tenant_config(settings)
    await publish(settings.using(config), [
        created_event(lead_factory(tenant_id=tenant, email=f"{tenant}{i}@serve.test"))
        for tenant in ("acme", "globex", "initech") for i in range(6)])
    # This deployment's score serves acme and the shared topics; globex is another's.
    served = settings.using(config, tenants_include=("acme", "default"))
    async with running(served, JobName.SCORE), Ticker(served) as ticker:
        globex = await ticker.run(JobName.SCORE, tenant_id="globex")
        assert (globex.status, globex.reason) == ("skipped", TENANT_NOT_SERVED)
        everyone = await ticker.run(JobName.SCORE)
        assert (everyone.status, everyone.leads_processed) == ("completed", 12), everyone
        assert everyone.partitions_total == 5  # the shared topic's 3 and acme's 2
    await project(served)
    found = await statuses(served)
    assert found["acme"] == found["initech"] == Counter({LeadStatus.SCORED.value: 6})
    assert found["globex"] == Counter({LeadStatus.NEW.value: 6})
