"""`leadflow bench pipeline`: the product's throughput beside the broker's limit and the cron
baseline, all measured in one run on the same broker and Postgres.

In order: a raw passthrough and a chain of five (the limit, services/bench/limit.py); each stage
alone over a backlog (stages.py); the whole product over an import of N/10 and then N leads
(product.py; peak RSS at both sizes); the cron-over-Postgres baseline (baseline.py). Each part
gets its own topic prefix and its own scratch database.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from events import utcnow

from ..pipeline.settings import Settings
from .baseline import BaselineRun, baseline_run
from .limit import Limits, limits
from .product import ProductRun, product_run
from .stages import StageRun, stage_runs
from .workspace import configured, write_config

QUICK_LEADS = 4000
FULL_LEADS = 1_000_000
#: The baseline takes at most this many leads: per-lead transactions are the slow part by design.
BASELINE_MAX = 100_000


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many leads each part moves."""

    leads: int
    small: int
    baseline: int

    @classmethod
    def for_run(cls, leads: int) -> Sizes:
        return cls(leads, max(1, leads // 10), min(leads, BASELINE_MAX))


@dataclass(frozen=True, slots=True)
class Results:
    """Everything one run measured."""

    limits: Limits
    stages: list[StageRun]
    small: ProductRun
    large: ProductRun
    baseline: BaselineRun


def ratio(a: float, b: float) -> float:
    """``a / b``, 0 when ``b`` is 0 (a part that measured nothing)."""
    return a / b if b else 0.0


def figures(results: Results, sizes: Sizes, machine: dict[str, Any]) -> dict[str, Any]:
    """The JSON document: the headline keys first, then the detail behind them."""
    pt, chain = results.limits.passthrough.rate, results.limits.chain.rate
    large, base = results.large, results.baseline
    per_lead = 1e6 / large.leads
    return {
        "passthrough_leads_per_s": round(pt, 1),
        "chain_leads_per_s": round(chain, 1),
        "baseline_leads_per_s": round(base.rate, 1),
        "pipeline_leads_per_s": round(large.rate, 1),
        "speedup_vs_baseline": round(ratio(large.rate, base.rate), 3),
        "ratio_vs_chain": round(ratio(large.rate, chain), 3),
        "stages": {s.job.value: {"leads_per_s": round(s.rate, 1), "ratio": round(ratio(s.rate, pt), 3),
                                 "leads": s.leads, "seconds": round(s.seconds, 3),
                                 "cpu_us_per_lead": round(1e6 * s.cpu_seconds / s.leads, 1),
                                 "rss_mb": round(s.peak_rss_mb, 1)} for s in results.stages},
        "rss_mb": _rss(large),
        "rss_mb_by_size": {str(run.leads): _rss(run) for run in (results.small, large)},
        "cpu_us_per_lead": {name: round(cpu * per_lead, 1) for name, cpu in large.cpu_seconds.items()},
        "server_cpu_us_per_lead": {name: round(cpu * per_lead, 1)
                                   for name, cpu in large.server_cpu_seconds.items()},
        "pipeline": {"leads": large.leads, "final": large.final, "statuses": large.statuses,
                     "seconds": round(large.seconds, 3),
                     "latency_p50_s": round(large.p50_seconds, 3),
                     "latency_p99_s": round(large.p99_seconds, 3),
                     "projector_lag_events": large.projector_lag,
                     "backlog": large.backlog,
                     "small": {"leads": results.small.leads, "final": results.small.final,
                               "leads_per_s": round(results.small.rate, 1)}},
        "baseline": {"leads": base.leads,
                     "seconds": {k: round(v, 3) for k, v in base.seconds.items()}},
        "passthrough_rss_mb": round(results.limits.peak_rss_mb, 1),
        "sizes": {"leads": sizes.leads, "pipeline": [sizes.small, sizes.leads],
                  "baseline": sizes.baseline},
        "machine": machine,
    }


def _rss(run: ProductRun) -> dict[str, float]:
    return {name: round(stat.peak_rss_mb, 1) for name, stat in run.services.items()}


def machine_facts(broker: str) -> dict[str, Any]:
    """Where the figures come from."""
    try:
        leadflow = version("leadflow")
    except PackageNotFoundError:
        leadflow = "unknown"
    return {"cpus": os.cpu_count(), "broker": broker, "leadflow_version": leadflow,
            "python": platform.python_version(), "platform": platform.platform(),
            "measured_at": utcnow().isoformat(timespec="seconds")}


def print_tables(doc: dict[str, Any], say: Console) -> None:
    """The figures as two tables: rates with their ratios, then memory and CPU per service."""
    m = doc["machine"]
    rates = Table("figure", "leads", "leads/s", "ratio", title=(
        f"leadflow bench pipeline: {m['cpus']} CPUs, broker {m['broker']}, "
        f"leadflow {m['leadflow_version']}"))
    for column in rates.columns[1:]:
        column.justify = "right"
    n = doc["sizes"]["leads"]
    rates.add_row("raw passthrough, 1 process", f"{n:,}", f"{doc['passthrough_leads_per_s']:,.0f}",
                  "1.00 (limit)")
    rates.add_row("chain of 5 passthroughs + sink", f"{n:,}", f"{doc['chain_leads_per_s']:,.0f}",
                  f"{ratio(doc['chain_leads_per_s'], doc['passthrough_leads_per_s']):.2f} of passthrough")
    for job, s in doc["stages"].items():
        rates.add_row(f"{job} alone over a backlog", f"{s['leads']:,}", f"{s['leads_per_s']:,.0f}",
                      f"{s['ratio']:.2f} of passthrough")
    p = doc["pipeline"]
    rates.add_row("pipeline: import -> final status, every service + clock", f"{p['leads']:,}",
                  f"{doc['pipeline_leads_per_s']:,.0f}", f"{doc['ratio_vs_chain']:.2f} of chain")
    rates.add_row("baseline: cron jobs over Postgres, per-lead transactions",
                  f"{doc['sizes']['baseline']:,}", f"{doc['baseline_leads_per_s']:,.0f}",
                  f"pipeline is {doc['speedup_vs_baseline']:.1f}x")
    say.print(rates)
    say.print(f"pipeline latency, import -> CONTACTED: p50 {p['latency_p50_s']:.2f}s, "
              f"p99 {p['latency_p99_s']:.2f}s; projector lag at the end: "
              f"{p['projector_lag_events']} events; {p['final']:,} of {p['leads']:,} leads at a "
              f"final status {p['statuses']}")
    if p["backlog"].get("samples"):
        b = p["backlog"]
        where = "; ".join(f"{name} mean {v['mean']:,} peak {v['peak']:,} largest "
                          f"{v['largest_share']:.0%}" for name, v in b["backlog"].items())
        idle = f"{b['idle_share']:.0%}" if b["idle_share"] is not None else "unknown"
        say.print(f"where the backlog sat ({b['samples']} samples, unread messages): {where}; "
                  f"machine idle {idle}")
    sizes = list(doc["rss_mb_by_size"])
    memory = Table("service", *(f"peak RSS MiB at {int(s):,}" for s in sizes),
                   "CPU µs per lead", title="per service process (pipeline run)")
    for column in memory.columns[1:]:
        column.justify = "right"
    for name in doc["rss_mb"]:
        memory.add_row(name, *(f"{doc['rss_mb_by_size'][s][name]:.0f}" for s in sizes),
                       f"{doc['cpu_us_per_lead'][name]:,.0f}")
    say.print(memory)
    if doc["server_cpu_us_per_lead"]:
        servers = ", ".join(f"{name} {cpu:,.0f}" for name, cpu in doc["server_cpu_us_per_lead"].items())
        say.print(f"servers' CPU µs per lead (pipeline run, children included): {servers}")


def check_finite(doc: dict[str, Any]) -> None:
    """JSON has no NaN or infinity: a broken measurement fails loudly instead."""
    def walk(value: Any) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"a figure is not finite: {value}")
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
    walk(doc)


async def bench_pipeline(settings: Settings, say: Console, *, leads: int, config: Path | None,
                         broker: str, json_path: Path | None,
                         servers: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Run every part in turn, print the tables, write the JSON; return the figures."""
    # A topic just created answers NotLeaderForPartition until its leader is elected; aiokafka
    # retries and would print a warning for each partition of each fresh topic.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    sizes = Sizes.for_run(leads)
    workdir = Path(tempfile.mkdtemp(prefix="leadflow-bench-pipeline-"))
    bench_config = write_config(workdir / "leadflow-bench.toml", config, leads)
    say.print(f"{sizes.leads:,} leads (pipeline also at {sizes.small:,}; baseline "
              f"{sizes.baseline:,}); service logs in {workdir}, kept if the run fails")

    def part(name: str) -> Settings:
        return configured(settings, bench_config, f"{settings.prefix}{name}.")

    # What the user's config changed in how the pipeline runs (the rest is the bench's own).
    config_used = {"projector_workers": part("large").pipeline.projector.workers}
    results = Results(
        limits=await limits(part("limit"), sizes.leads, workdir / "limit", say),
        stages=await stage_runs(part("stages"), sizes.leads, workdir / "stages", say),
        small=await product_run(part("small"), sizes.small, workdir / "small", say, servers),
        large=await product_run(part("large"), sizes.leads, workdir / "large", say, servers),
        baseline=await baseline_run(part("baseline"), sizes.baseline, say),
    )
    shutil.rmtree(workdir, ignore_errors=True)
    doc = figures(results, sizes, machine_facts(broker))
    doc["config"] = config_used
    check_finite(doc)
    print_tables(doc, say)
    if json_path is not None:
        write_json(json_path, doc)
        say.print(f"figures written to {json_path}")
    return doc


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
