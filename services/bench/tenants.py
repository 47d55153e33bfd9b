"""`leadflow bench tenants`: the nightly SLA of a runner that serves many tenants of uneven size.

Users hold their runner to "1,000 targets per tenant within 90 minutes, at p90". The same
import (20 tenants, the largest 8 times the smallest, published largest first, as a night's
exports land) goes through the whole product twice, each time every service its own process
on `every 1s` schedules: once with each tenant on lead topics of its own ([topics.tenants]),
once with every tenant on the shared lead topics, as a single-tenant deployment runs. For each
tenant: the time from the start of the import until its target-th lead reached a final status
(CONTACTED or REJECTED, from the lead_events read model); the SLA figure is the p90 of that
over the tenants.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from events import LeadContacted, LeadRejected, utcnow
from events.state_machine import event_type

from ..pipeline.settings import Settings
from .leads import tenant_chunks
from .pipeline import machine_facts, write_json
from .product import import_and_wait, running_product
from .workspace import configured, scratch_database, write_config

TENANTS = 20
TARGET = 1000
QUICK_TARGET = 50
#: How many times the smallest tenant the largest one's import is.
SPREAD = 8

# Per tenant: when each lead first reached a final status, and the target-th of those.
_REACHED = """
WITH finals AS (
    SELECT tenant_id, lead_id, min(recorded_at) AS at FROM lead_events
    WHERE type = ANY($1::text[]) GROUP BY tenant_id, lead_id),
ranked AS (
    SELECT tenant_id, at, row_number() OVER (PARTITION BY tenant_id ORDER BY at) AS k,
           count(*) OVER (PARTITION BY tenant_id) AS n FROM finals)
SELECT tenant_id,
       extract(epoch FROM max(at) FILTER (WHERE k = $2) - $3::timestamptz) AS target_s,
       extract(epoch FROM max(at) - $3::timestamptz) AS all_s
FROM ranked GROUP BY tenant_id
"""


def tenant_plan(tenants: int, target: int) -> list[tuple[str, int]]:
    """(tenant, leads) from the largest (SPREAD x target) down to the smallest (the target)."""
    last = max(tenants - 1, 1)
    return [(f"t{k:02d}", target * (1 + (tenants - 1 - k) * (SPREAD - 1) // last))
            for k in range(tenants)]


def p90(values: Sequence[float]) -> float:
    """The 90th percentile (inclusive method: a value between two samples is interpolated)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


@dataclass(frozen=True, slots=True)
class LayoutRun:
    """One import through the product under one topic layout."""

    layout: str
    leads: int
    seconds: float
    target_s: dict[str, float]  # per tenant: start of the import to its target-th final lead
    all_s: dict[str, float]  # per tenant: start of the import to its last final lead

    def figures(self) -> dict[str, Any]:
        targets = sorted(self.target_s.values())
        return {"leads": self.leads, "seconds": round(self.seconds, 2),
                "leads_per_s": round(self.leads / self.seconds, 1) if self.seconds else 0.0,
                "target_seconds": {"p50": round(statistics.median(targets), 2),
                                   "p90": round(p90(targets), 2), "max": round(targets[-1], 2)},
                "per_tenant": {t: {"target_s": round(self.target_s[t], 2),
                                   "all_s": round(self.all_s[t], 2)} for t in self.target_s}}


async def layout_run(settings: Settings, plan: Sequence[tuple[str, int]], target: int,
                     own_topics: bool, workdir: Path, say: Console,
                     user_config: Path | None = None) -> LayoutRun:
    """Every service, the import of ``plan``, each tenant's time to its target."""
    layout = "own topics" if own_topics else "shared topics"
    total = sum(n for _, n in plan)
    config = write_config(workdir / "leadflow-bench.toml", user_config, total,
                          tenants=[t for t, _ in plan] if own_topics else ())
    part = configured(settings, config, f"{settings.prefix}{'own' if own_topics else 'shared'}.")
    async with (scratch_database(part, "tenants") as scratch,
                running_product(scratch, workdir, say, layout) as (stack, pool)):
        started_at, clock = utcnow(), time.monotonic()
        await import_and_wait(scratch, pool, stack, total, say, tenant_chunks(plan))
        seconds = time.monotonic() - clock
        rows = await pool.fetch(_REACHED, [event_type(LeadContacted), event_type(LeadRejected)],
                                target, started_at)
    result = LayoutRun(layout, total, seconds,
                       {r["tenant_id"]: float(r["target_s"]) for r in rows},
                       {r["tenant_id"]: float(r["all_s"]) for r in rows})
    say.print(f"{layout}: {total:,} leads of {len(plan)} tenants in {seconds:.1f}s; "
              f"{target:,} targets per tenant at p90 {p90(sorted(result.target_s.values())):.1f}s")
    return result


def print_table(doc: dict[str, Any], say: Console) -> None:
    own, shared = doc["layouts"]["own_topics"], doc["layouts"]["shared_topics"]
    table = Table(title=f"{doc['tenants']} tenants, {doc['target']:,} targets each "
                        f"({doc['leads']:,} leads): seconds from the import's start")
    for column in ("tenant", "leads", "own topics: target", "own: all",
                   "shared: target", "shared: all"):
        table.add_column(column, justify="left" if column == "tenant" else "right")
    for tenant, leads in doc["plan"].items():
        o, s = own["per_tenant"][tenant], shared["per_tenant"][tenant]
        table.add_row(tenant, f"{leads:,}", f"{o['target_s']:.1f}", f"{o['all_s']:.1f}",
                      f"{s['target_s']:.1f}", f"{s['all_s']:.1f}")
    for key in ("p50", "p90", "max"):
        table.add_row(f"[bold]{key}[/]", "", f"{own['target_seconds'][key]:.1f}", "",
                      f"{shared['target_seconds'][key]:.1f}", "")
    say.print(table)
    say.print(f"SLA figure (p90 time to {doc['target']:,} targets per tenant): own topics "
              f"{own['target_seconds']['p90']:.1f}s, shared topics "
              f"{shared['target_seconds']['p90']:.1f}s ({doc['sla_ratio']:.2f}x); whole run "
              f"{own['leads_per_s']:,.0f} against {shared['leads_per_s']:,.0f} leads/s")


async def bench_tenants(settings: Settings, say: Console, *, tenants: int, target: int,
                        broker: str, json_path: Path | None,
                        config: Path | None = None) -> dict[str, Any]:
    """Both layouts in turn, the table, the JSON; return the figures."""
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    plan = tenant_plan(tenants, target)
    workdir = Path(tempfile.mkdtemp(prefix="leadflow-bench-tenants-"))
    say.print(f"{tenants} tenants, {plan[-1][1]:,} to {plan[0][1]:,} leads each "
              f"({sum(n for _, n in plan):,} in all); service logs in {workdir}, kept if the "
              "run fails")
    own = await layout_run(settings, plan, target, True, workdir / "own", say, config)
    shared = await layout_run(settings, plan, target, False, workdir / "shared", say, config)
    shutil.rmtree(workdir, ignore_errors=True)
    own_figures, shared_figures = own.figures(), shared.figures()
    doc = {"tenants": tenants, "target": target, "leads": own.leads, "plan": dict(plan),
           "layouts": {"own_topics": own_figures, "shared_topics": shared_figures},
           "sla_ratio": round(shared_figures["target_seconds"]["p90"]
                              / max(own_figures["target_seconds"]["p90"], 1e-9), 3),
           "machine": machine_facts(broker)}
    print_table(doc, say)
    if json_path is not None:
        write_json(json_path, doc)
        say.print(f"figures written to {json_path}")
    return doc
