"""The dashboard page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Screenshots of every tab go to test-artifacts/. With LEADFLOW_UPDATE_SCREENSHOTS=1 the overview
is also copied to docs/dashboard-overview.png (the README's picture).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import uuid4

import uvicorn
from playwright.async_api import Page, async_playwright

from events import (
    ALL_TENANTS,
    PIPELINE,
    JobFailed,
    JobName,
    RunCounts,
    RunInfo,
    TickSource,
    Topic,
    utcnow,
)
from services.dashboard.app import create_app
from services.dashboard.server import Server
from services.pipeline.settings import Settings
from services.projector import queries
from services.projector.service import Projector
from services.runtime.bus import ensure_topics
from tests.factories import created_event, lead_factory
from tests.harness import ARTIFACTS, Ticker, publish, read_models, running
from tests.harness.dashboard import (
    LEADS,
    READ_TOKEN,
    TOKEN,
    dashboard_settings,
    drive,
    pipeline_source,
    published,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DOCS_SCREENSHOT = Path(__file__).parents[2] / "docs" / "dashboard-overview.png"
WAIT_MS = 60_000


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[str]:
    """The dashboard app under uvicorn on a free local port; yields its URL."""
    server = Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_config=None,
                                   access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve())
    for _ in range(300):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    assert server.started, "the dashboard did not start"
    try:
        yield f"http://127.0.0.1:{server.port}/"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def live_projector(settings: Settings) -> AsyncIterator[None]:
    """A projector folding in the background, caught up before the page first loads."""
    projector = Projector(settings)
    await projector.start()
    await projector.catch_up(idle_polls=3)
    stop = asyncio.Event()

    async def fold() -> None:
        while not stop.is_set():
            await projector.step(timeout_ms=200)

    task = asyncio.create_task(fold())
    try:
        yield
    finally:
        stop.set()
        await task
        await projector.stop()


def chromium() -> str:
    assert CHROMIUM.exists(), "install Debian's chromium: apt-get install -y chromium"
    return str(CHROMIUM)


@asynccontextmanager
async def browser_page(width: int, height: int) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(WAIT_MS)
            yield page
        finally:
            await browser.close()


async def open_tab(page: Page, tab: str) -> None:
    await page.click(f"[data-testid=tab-{tab}]")
    await page.wait_for_selector(f"body[data-loaded={tab}]")


async def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"dashboard-{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


def number(text: str) -> int:
    return int(text.replace(",", "").strip())


async def test_page_shows_the_read_models_and_runs_a_job_by_hand(settings: Settings,
                                                                tmp_path: Path) -> None:
    settings = dashboard_settings(settings, pipeline_source(tmp_path), refresh_seconds=1)
    async with running(settings, *PIPELINE), Ticker(settings) as ticker:
        await drive(ticker)
        async with live_projector(settings), served(settings) as url, \
                browser_page(1280, 900) as page, read_models(settings) as db:
            # As `leadflow dev` prints it: the link carries the read token in its fragment.
            await page.goto(f"{url}#token={READ_TOKEN}")
            await page.wait_for_selector("body[data-loaded=overview] [data-testid=job-card-harvest]")
            assert "token" not in page.url  # kept in the tab, gone from the address bar

            # Overview: cards and funnel equal the read models.
            metrics = await queries.job_metrics(db)
            for job in PIPELINE:
                card = f"[data-testid=job-card-{job.value}]"
                m = metrics[job.value]
                assert number(await page.inner_text(f"{card} [data-testid=card-{job.value}-runs]")) == \
                    m["total_runs"]
                assert await page.inner_text(f"{card} [data-testid=card-{job.value}-success-rate]") == \
                    f"{m['success_rate']:.1f}%"
                assert number(await page.inner_text(
                    f"{card} [data-testid=card-{job.value}-failures]")) == m["consecutive_failures"]
                assert await page.get_attribute(card, "data-health") == m["health_status"]
            assert await page.get_attribute("[data-testid=overall-health]", "data-health") == "healthy"
            stages = queries.funnel_stages(await queries.status_counts(db))
            assert stages[0]["reached"] == LEADS
            for stage in stages:
                shown = await page.inner_text(f"[data-testid=funnel-{stage['status']}-count]")
                assert number(shown) == stage["reached"], stage
            rejected = (await queries.status_counts(db))["REJECTED"]
            assert number(await page.inner_text("[data-testid=funnel-REJECTED-count]")) == rejected
            assert number(await page.inner_text("[data-testid=dead-letter-count]")) == 2
            assert await page.locator("[data-testid=per-day-chart] svg rect").count() > 0
            assert await page.locator("[data-testid=recent-runs] [data-testid=run-row]").count() == 6
            overview = await shot(page, "overview")

            # Jobs: the score job's runs table and duration chart.
            await open_tab(page, "jobs")
            await page.click("[data-testid=job-pick-score]")
            await page.wait_for_selector("[data-testid=job-runs] [data-testid=run-row] >> nth=1")
            sources = await page.locator(
                "[data-testid=job-runs] tr[data-run-id] td:nth-child(3)").all_inner_texts()
            assert sources == ["schedule", "manual"]
            assert await page.locator("[data-testid=duration-chart] svg rect").count() == 2
            await shot(page, "jobs")

            # Leads: search, open one, read its timeline.
            await open_tab(page, "leads")
            assert number((await page.inner_text("[data-testid=leads-range]")).split("of")[1]) == LEADS
            contacted = await db.fetchrow(
                "SELECT lead_id, email FROM leads WHERE status = 'CONTACTED' ORDER BY email LIMIT 1")
            await page.fill("[data-testid=lead-search]", contacted["email"].upper())
            row = f"tr[data-lead-id='{contacted['lead_id']}']"
            await page.wait_for_function(
                "document.querySelectorAll('[data-testid=lead-row]').length === 1")
            assert await page.locator(row).count() == 1
            await page.click(row)
            await page.wait_for_selector("[data-testid=lead-timeline] [data-testid=timeline-event] >> nth=4")
            types = await page.locator("[data-testid=timeline-event]").evaluate_all(
                "items => items.map(i => i.dataset.type)")
            assert types == ["lead.created", "lead.scored", "lead.qualified", "lead.routed",
                             "lead.contacted"]
            assert await page.inner_text("[data-testid=lead-detail-email]") == contacted["email"]
            await shot(page, "leads")

            # Controls: the read token does not open them; Run now on harvest asks for the
            # control token once, then the run shows up.
            await open_tab(page, "controls")
            await page.fill("[data-testid=max-leads-harvest]", "5")
            await page.click("[data-testid=run-now-harvest]")
            await page.wait_for_selector("[data-testid=token-dialog][open]")
            await page.fill("[data-testid=token-input]", TOKEN)
            await page.click("[data-testid=token-ok]")
            result = page.locator("[data-testid=result-harvest][data-event-id]")
            await result.wait_for()
            tick_id = await result.get_attribute("data-event-id")
            assert "Run requested" in await result.inner_text()
            await shot(page, "controls")
            await open_tab(page, "jobs")
            await page.click("[data-testid=job-pick-harvest]")
            await page.wait_for_selector(f"tr[data-run-id='{tick_id}'][data-status=completed]")
            run = await db.fetchrow("SELECT source, requested_by, max_leads FROM job_runs "
                                    "WHERE run_id = $1::uuid", tick_id)
            assert (run["source"], run["max_leads"]) == ("manual", 5)
            assert run["requested_by"].startswith("http:")
            # A second control in the same tab does not ask again.
            await open_tab(page, "controls")
            await page.click("[data-testid=run-now-score]")
            await page.locator("[data-testid=result-score][data-event-id]").wait_for()
            assert not await page.locator("[data-testid=token-dialog][open]").count()

    if os.environ.get("LEADFLOW_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(overview, DOCS_SCREENSHOT)
    assert overview.stat().st_size > 10_000


async def test_empty_dashboard_guides_a_new_user_on_a_phone(settings: Settings) -> None:
    settings = dashboard_settings(settings, Path("unused.csv"), refresh_seconds=1)
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    async with served(settings) as url, browser_page(390, 844) as page:
        # Opened without a token: the page asks for one before it shows any lead data.
        await page.goto(url)
        await page.wait_for_selector("[data-testid=token-dialog][open]")
        await page.fill("[data-testid=token-input]", READ_TOKEN)
        await page.click("[data-testid=token-ok]")
        await page.wait_for_selector("body[data-loaded=overview] [data-testid=job-card-harvest]")
        harvest = await page.inner_text("[data-testid=job-card-harvest]")
        assert "No runs yet — press Run now on harvest." in harvest
        assert "No leads yet — press Run now on harvest" in await page.inner_text("[data-testid=funnel]")
        assert "has not reported yet" in await page.inner_text("#alerts")
        # Nothing sticks out sideways at phone width.
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await shot(page, "overview-phone")

        # The empty state's button leads to the controls; the kill switch asks first.
        await page.click("[data-testid=job-card-harvest] [data-testid=empty-state] button")
        await page.wait_for_selector("body[data-loaded=controls]")
        assert await page.evaluate("document.activeElement.id") == "max-leads-harvest"
        await page.click("[data-testid=kill-engage]")
        await page.wait_for_selector("[data-testid=confirm-dialog][open]")
        await page.click("[data-testid=confirm-dialog] button[value=cancel]")
        assert await page.inner_text("[data-testid=result-kill]") == ""

        await page.click("[data-testid=kill-engage]")
        await page.click("[data-testid=confirm-ok]")
        await page.fill("[data-testid=token-input]", "wrong")
        await page.click("[data-testid=token-ok]")
        # The wrong token is forgotten and asked for again.
        await page.wait_for_selector("[data-testid=token-dialog][open]")
        await page.fill("[data-testid=token-input]", TOKEN)
        await page.click("[data-testid=token-ok]")
        result = page.locator("[data-testid=result-kill][data-event-id]")
        await result.wait_for()
        assert "Kill switch engaged" in await result.inner_text()
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await shot(page, "controls-phone")
        event = await published(settings, Topic.CONTROL, await result.get_attribute("data-event-id"))
        assert event.type == "kill_switch.changed" and event.engaged  # type: ignore[attr-defined]


async def test_the_tenant_picker_shows_one_tenants_leads_runs_and_health(settings: Settings) -> None:
    settings = dashboard_settings(settings, Path("unused.csv"), refresh_seconds=1)
    leads = [created_event(lead_factory(tenant_id=tenant, email=f"{tenant}{i}@picker.test"))
             for tenant, n in (("acme", 3), ("globex", 5)) for i in range(n)]
    now = utcnow()
    # Last night's harvest over every tenant: acme's 3 leads went in, globex's file was missing.
    harvest = JobFailed(
        event_id=uuid4(), occurred_at=now, recorded_at=now, tenant_id=ALL_TENANTS, run_id=uuid4(),
        job=JobName.HARVEST, part="h1", run=RunInfo(scheduled_for=now, source=TickSource.SCHEDULE),
        started_at=now, completed_at=now, duration_seconds=1.5,
        counts=RunCounts(leads_processed=3, leads_succeeded=3, by_tenant={"acme": 3}),
        reason="error", error="harvest source(s) unreadable: globex.csv: No such file",
        failed_tenants=("globex",))
    await publish(settings, [*leads, harvest])
    picker = "[data-testid=tenant-select]"
    async with live_projector(settings), served(settings) as url, \
            browser_page(1280, 900) as page:
        await page.goto(f"{url}#token={READ_TOKEN}")
        await page.wait_for_selector("body[data-loaded=overview] [data-testid=job-card-harvest]")

        async def shown(tenant: str, tab: str = "overview") -> tuple[str | None, ...]:
            await page.wait_for_selector(f"body[data-loaded={tab}][data-tenant='{tenant}']")
            if tab != "overview":
                return (await page.inner_text("[data-testid=leads-range]"),)
            return (await page.get_attribute("[data-testid=overall-health]", "data-health"),
                    await page.get_attribute("[data-testid=job-card-harvest]", "data-health"),
                    await page.inner_text("[data-testid=funnel-NEW-count]"))

        assert await shown("") == ("degraded", "degraded", "8")
        options = await page.locator(f"{picker} option").evaluate_all(
            "os => os.map(o => [o.value, o.dataset.health || ''])")
        assert options == [["", ""], ["acme", "healthy"], ["globex", "degraded"]]

        # Each tenant sees the run as it went for it: acme's 3 leads went in, globex's failed.
        run_row = "[data-testid=recent-runs] [data-testid=run-row]"

        async def the_run() -> list[str]:
            return [await page.get_attribute(run_row, "data-status") or "",
                    await page.inner_text(f"{run_row} td:nth-child(6)")]

        await page.select_option(picker, "acme")
        assert await shown("acme") == ("healthy", "healthy", "3")
        assert await the_run() == ["completed", "3"]
        assert "tenant=acme" in page.url
        await page.select_option(picker, "globex")
        assert await shown("globex") == ("degraded", "degraded", "5")
        assert await the_run() == ["failed", "0"]
        await shot(page, "overview-tenant")
        await open_tab(page, "leads")
        assert (await shown("globex", "leads"))[0].endswith("of 5")  # type: ignore[union-attr]

        # A link to the view keeps the tenant.
        await page.goto(f"{url}?tenant=acme#leads")
        assert (await shown("acme", "leads"))[0].endswith("of 3")  # type: ignore[union-attr]
        assert await page.input_value(picker) == "acme"
