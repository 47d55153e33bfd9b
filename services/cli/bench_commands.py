"""`leadflow bench ...`: measured figures, each beside a baseline run in the same process."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..pipeline.config import LeadflowConfig
from ..pipeline.settings import Settings, load_settings
from ..pipeline.stack import Stack
from ..runtime.config import TopicsConfig
from .common import BrokerOption, ConfigOption, LocalBroker, console, run_async

bench_app = typer.Typer(no_args_is_help=True,
                        help="Benchmarks: figures printed beside a baseline from the same run.")
JsonOption = Annotated[Path | None, typer.Option(
    "--json", dir_okay=False, help="Also write the figures to this JSON file.")]


async def with_servers(config: Path | None,
                       body: Callable[[Settings, dict[str, int]], Awaitable[object]],
                       say: Console, broker: str = LocalBroker.TANSU.value) -> None:
    """Run ``body`` against DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS, or embedded servers (the
    local ``broker``: tansu or kafka); it gets the settings and the pids of the servers
    started here."""
    from ..bench.workspace import postgres_settings

    workdir = Path(tempfile.mkdtemp(prefix="leadflow-bench-"))
    stack = Stack(config=config, services=(), workdir=workdir, broker_kind=broker,
                  postgres_settings=postgres_settings())
    done = False
    try:
        await stack.start_servers(say=say.print)
        base = load_settings(config=config)
        # A fresh topic prefix per run: a benchmark never reads a previous run's messages.
        pipeline = base.pipeline if config else LeadflowConfig()
        topics = TopicsConfig(prefix=f"bench{uuid.uuid4().hex[:6]}.",
                              partitions=pipeline.topics.partitions)
        settings = base.using(pipeline.model_copy(update={"topics": topics}))
        await body(settings, stack.server_pids())
        done = True
    finally:
        stack.stop()
        if done:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say.print(f"the servers' logs are kept in {workdir}")


@bench_app.command("projector")
def bench_projector_command(
    events: Annotated[int, typer.Option(help="Lead events to publish and project.")] = 1_000_000,
    config: ConfigOption = None,
) -> None:
    """Live projection and rebuild rates beside a plain COPY of the same rows."""
    from ..bench.projector import bench_projector

    run_async(lambda: with_servers(
        config, lambda s, _: bench_projector(s, console, events=events), console))


@bench_app.command("scale")
def bench_scale_command(
    leads: Annotated[int, typer.Option(min=1, help="Backlog each trial drains.")] = 20_000,
    instances: Annotated[str, typer.Option(help="Instance counts to compare, comma-separated.")
                         ] = "1,2,4",
    job: Annotated[str, typer.Option(
        help="The stage to scale: score, qualify, route, or contact (proof mode).")] = "score",
    config: ConfigOption = None,
) -> None:
    """Throughput of a stage with 1, 2 and 4 instances on the same backlog, side by side."""
    from ..bench.scale import JOBS, bench_scale

    chosen = next((j for j in JOBS if j.value == job), None)
    if chosen is None:
        raise typer.BadParameter(f"{job!r}: choose one of {', '.join(j.value for j in JOBS)}")

    try:
        counts = [int(n) for n in instances.split(",") if n.strip()]
    except ValueError:
        raise typer.BadParameter(f"{instances!r}: give instance counts like 1,2,4") from None
    if not counts or min(counts) < 1:
        raise typer.BadParameter(f"{instances!r}: give instance counts like 1,2,4")
    run_async(lambda: with_servers(
        config, lambda s, _: bench_scale(s, console, leads=leads, counts=counts, config=config,
                                      job=chosen),
        console))


@bench_app.command("pipeline")
def bench_pipeline_command(
    leads: Annotated[int | None, typer.Option(
        min=10, help="Leads to import (default 1,000,000; 4,000 with --quick).")] = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="A smoke check with small sizes everywhere (a few minutes at most).")
                     ] = False,
    json_path: JsonOption = None,
    broker: BrokerOption = LocalBroker.TANSU,
    config: ConfigOption = None,
) -> None:
    """The pipeline beside a raw passthrough chain and the cron-over-Postgres baseline:
    leads/s, per-stage rates, latency, peak RSS and CPU per service, all from one run."""
    from ..bench.pipeline import FULL_LEADS, QUICK_LEADS, bench_pipeline

    count = leads or (QUICK_LEADS if quick else FULL_LEADS)
    external = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    if broker is LocalBroker.TANSU and not external and count > 200_000:
        console.print(f"[yellow]warning:[/] Tansu keeps every event in memory; {count:,} leads "
                      "want --broker kafka (or KAFKA_BOOTSTRAP_SERVERS)")
    label = "external (KAFKA_BOOTSTRAP_SERVERS)" if external else broker.value
    run_async(lambda: with_servers(
        config, lambda s, servers: bench_pipeline(s, console, leads=count, config=config,
                                                  broker=label, json_path=json_path,
                                                  servers=servers),
        console, broker=broker.value))


@bench_app.command("tenants")
def bench_tenants_command(
    tenants: Annotated[int, typer.Option(min=2, max=200, help="Tenants of uneven size.")] = 20,
    target: Annotated[int | None, typer.Option(
        min=10, help="Targets per tenant (default 1,000; 50 with --quick); the largest tenant "
                     "imports 8 times as many.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A smoke check with small sizes.")
                     ] = False,
    json_path: JsonOption = None,
    broker: BrokerOption = LocalBroker.TANSU,
    config: ConfigOption = None,
) -> None:
    """The multi-tenant SLA: p90 over tenants of the time to each one's targets, with lead
    topics per tenant beside every tenant on the shared topics, from one run."""
    from ..bench.tenants import QUICK_TARGET, TARGET, bench_tenants

    label = ("external (KAFKA_BOOTSTRAP_SERVERS)" if os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
             else broker.value)
    run_async(lambda: with_servers(
        config, lambda s, _: bench_tenants(s, console, tenants=tenants,
                                           target=target or (QUICK_TARGET if quick else TARGET),
                                           broker=label, json_path=json_path, config=config),
        console, broker=broker.value))
