"""A harvest run over several tenants reads their sources in turns: under a cap, the tenant
listed first with a big export never takes the others' share. Real broker and Postgres."""

from __future__ import annotations

from pathlib import Path

from events import JobName
from services.harvest.config import HarvestConfig, HarvestSource
from services.pipeline.settings import Settings
from tests.factories import source_rows, write_csv
from tests.harness import Ticker, make_config, running


def rows(n: int, tag: str) -> list[dict[str, str]]:
    return [{**row, "email": f"{tag}{i}@{tag}.test"} for i, row in enumerate(source_rows(n))]


async def test_a_capped_run_shares_the_cap_between_tenants_not_in_config_order(
        settings: Settings, tmp_path: Path) -> None:
    big = write_csv(tmp_path / "acme-big.csv", rows(1_200, "big"))
    small = write_csv(tmp_path / "acme-small.csv", rows(10, "small"))
    globex = write_csv(tmp_path / "globex.csv", rows(50, "globex"))
    initech = write_csv(tmp_path / "initech.csv", rows(400, "initech"))
    settings = settings.using(make_config(settings.prefix, harvest=HarvestConfig(sources=(
        HarvestSource(path=big, tenant="acme"), HarvestSource(path=globex, tenant="globex"),
        HarvestSource(path=small, tenant="acme"), HarvestSource(path=initech, tenant="initech")))))
    async with running(settings, JobName.HARVEST), Ticker(settings) as ticker:
        first = await ticker.run(JobName.HARVEST, max_leads=300)
        second = await ticker.run(JobName.HARVEST, max_leads=300)
        rest = await ticker.run(JobName.HARVEST, max_leads=5_000)
    # An even share each (100); globex needs only 50, and its rest goes to the others.
    assert first.status == "completed" and first.leads_processed == 300
    assert first.leads_by_tenant["globex"] == 50
    assert abs(first.leads_by_tenant["acme"] - first.leads_by_tenant["initech"]) <= 1
    # The next run goes on where each tenant's sources stopped.
    assert second.leads_processed == 300 and "globex" not in second.leads_by_tenant
    total = {t: sum(r.leads_by_tenant.get(t, 0) for r in (first, second, rest))
             for t in ("acme", "globex", "initech")}
    assert total == {"acme": 1_210, "globex": 50, "initech": 400}
    assert rest.status == "completed"
