"""The whole pipeline on the real broker and Postgres: 1,000 leads through five stages by ticks."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from events import JobName
from services.pipeline.settings import Settings
from tests.factories import source_rows, write_csv
from tests.harness import (
    STAGES,
    Ticker,
    drain_pipeline,
    pipeline_settings,
    predict,
    project,
    read_models,
    running,
)


async def test_thousand_leads_reach_the_statuses_the_pure_functions_predict(
        settings: Settings, tmp_path: Path) -> None:
    rows = source_rows(1000)
    settings = pipeline_settings(settings, write_csv(tmp_path / "leads.csv", rows))
    config = settings.pipeline
    predicted = predict(rows, config)

    async with running(settings, *STAGES), Ticker(settings) as ticker:
        processed = await drain_pipeline(ticker)
    await project(settings)

    # The cap holds on every run, and every lead went through every stage it should.
    assert all(n <= 400 for runs in processed.values() for n in runs)
    assert sum(processed[JobName.HARVEST]) == 1000
    assert sum(processed[JobName.SCORE]) == 1000
    async with read_models(settings) as db:
        rows_db = await db.fetch("SELECT email, status, segment, owner FROM leads")
        actual = {r["email"]: (r["status"], r["segment"]) for r in rows_db}
        assert actual == predicted
        contacted = sum(1 for s, _ in predicted.values() if s == "CONTACTED")
        assert await db.fetchval("SELECT count(*) FROM contact_ledger") == contacted
        # created + scored + (qualified, routed, contacted | rejected) per lead, no duplicates
        expected_events = sum(5 if s == "CONTACTED" else 3 for s, _ in predicted.values())
        assert await db.fetchval("SELECT count(*) FROM lead_events") == expected_events
        # Round-robin: within a segment, owners' shares differ by at most one.
        per_segment: dict[str, Counter[str]] = defaultdict(Counter)
        for r in rows_db:
            if r["segment"]:
                per_segment[r["segment"]][r["owner"]] += 1
        for segment in config.route.segments:
            shares = per_segment[segment.name]
            if sum(shares.values()) >= len(segment.owners):
                assert set(shares) == set(segment.owners)
                assert max(shares.values()) - min(shares.values()) <= 1
        runs = await db.fetch("SELECT job, status, leads_processed FROM job_runs")
        assert {r["status"] for r in runs} == {"completed"}
        assert len(runs) == sum(len(v) for v in processed.values())


async def test_reimporting_the_same_file_adds_nothing(settings: Settings, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "leads.csv", source_rows(50))
    settings = pipeline_settings(settings, source)
    async with running(settings, JobName.HARVEST), Ticker(settings) as ticker:
        first = await ticker.run(JobName.HARVEST)
        second = await ticker.run(JobName.HARVEST)
    assert (first.leads_succeeded, second.leads_processed) == (50, 0)
    await project(settings)
    async with read_models(settings) as db:
        assert await db.fetchval("SELECT count(*) FROM leads") == 50
        assert await db.fetchval("SELECT count(*) FROM lead_events") == 50
