"""The `leadflow` command line. One error boundary: a LeadflowError prints its cause and exits 1."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from events import JobName

from ..pipeline.registry import SERVICE_NAMES
from ..runtime.logging import setup_logging
from .bench_commands import bench_app
from .clock_commands import register as register_clock_commands
from .common import (
    BrokerOption,
    ConfigOption,
    LocalBroker,
    console,
    err,
    run_async,
    settings_for,
    who,
)
from .contact_commands import contact_app
from .dlq_commands import dlq_app
from .projector_commands import projector_app
from .replay_commands import register as register_replay_commands
from .status_commands import register as register_status_commands

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="leadflow: outbound lead pipelines as an event-driven state machine.")
topics_app = typer.Typer(no_args_is_help=True, help="Create and inspect the Kafka topics.")
db_app = typer.Typer(no_args_is_help=True, help="Postgres schema migrations.")
schemas_app = typer.Typer(no_args_is_help=True, help="Generate schemas/ from the event models.")
app.add_typer(topics_app, name="topics")
app.add_typer(db_app, name="db")
app.add_typer(schemas_app, name="schemas")
app.add_typer(projector_app, name="projector")
app.add_typer(bench_app, name="bench")
app.add_typer(contact_app, name="contact")
app.add_typer(dlq_app, name="dlq")
register_clock_commands(app)  # backfill, clock status|pause|resume, bench clock
register_replay_commands(app)  # replay <stage>|projector
register_status_commands(app)  # status

SERVICES = SERVICE_NAMES


@app.command()
def run(service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}.")],
        config: ConfigOption = None) -> None:
    """Run one service in the foreground (several `run`s of a stage form one consumer group)."""
    if service not in SERVICES:
        err.print(f"[bold red]error:[/] unknown service {service!r}; choose one of {', '.join(SERVICES)}")
        raise typer.Exit(2)
    settings = settings_for(config)
    setup_logging(settings.log_level, service)
    from .services import run_service

    run_async(lambda: run_service(service, settings))


@app.command()
def tick(job: Annotated[JobName, typer.Argument(help="The job to run now.")],
         max_leads: Annotated[int | None, typer.Option("--max-leads", min=1,
                                                      help="Cap for this run.")] = None,
         tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
         campaign: Annotated[str | None, typer.Option(help="Only this campaign.")] = None,
         wait: Annotated[bool, typer.Option("--wait", help="Follow the run and print its result; "
                                            "exit 1 if it failed.")] = False,
         timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 600,
         config: ConfigOption = None) -> None:
    """Publish a manual tick: run a job now."""
    from ..pipeline.registry import scope_problem
    from .ticks import publish_manual_tick

    settings = settings_for(config)
    if problem := scope_problem(job, tenant, campaign, settings.pipeline.topics.tenants):
        err.print(f"[bold red]error:[/] {problem} (leave out --tenant and --campaign)")
        raise typer.Exit(2)
    failed = run_async(lambda: publish_manual_tick(
        settings, job, requested_by=who(), max_leads=max_leads, tenant=tenant, campaign=campaign,
        wait=wait, timeout=timeout, console=console))
    if failed:
        raise typer.Exit(1)


@app.command(name="import")
def import_file(path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
                tenant: Annotated[str, typer.Option(help="Tenant of the imported leads.")] = "default",
                campaign: Annotated[str, typer.Option(help="Campaign of the leads.")] = "default",
                config: ConfigOption = None) -> None:
    """Harvest one CSV or JSONL file now: new leads go to leads.new, bad rows are listed by line."""
    from .importer import import_source

    settings = settings_for(config)
    path = path.resolve()
    bad = run_async(lambda: import_source(settings, path, tenant=tenant, campaign=campaign,
                                          requested_by=who(), console=console))
    if bad:
        raise typer.Exit(3)


@app.command()
def dev(config: ConfigOption = None, broker: BrokerOption = LocalBroker.TANSU) -> None:
    """Run everything locally: Postgres, a broker, every service, the dashboard, demo data."""
    from .dev import run_dev

    run_async(lambda: run_dev(config, console, broker=broker.value))


@app.command()
def demo(config: ConfigOption = None,
         keep_logs: Annotated[bool, typer.Option(help="Keep service logs in .leadflow/")] = False,
         broker: BrokerOption = LocalBroker.TANSU) -> None:
    """Start everything, tick each stage once in pipeline order, print the result, stop."""
    from .demo import run_demo

    run_async(lambda: run_demo(config, console, keep_logs=keep_logs, broker=broker.value))


@topics_app.command("create")
def topics_create(config: ConfigOption = None) -> None:
    """Create missing topics as [topics] says; verify the existing ones against it (partitions,
    replication factor, min.insync.replicas, retention) and fail naming each difference."""
    from ..runtime.bus import ensure_topics
    from ..runtime.errors import InfrastructureError
    from ..runtime.topic_specs import verify_topics

    settings = settings_for(config)
    topics = settings.pipeline.topics

    async def create_and_verify() -> None:
        await ensure_topics(settings.kafka_bootstrap_servers, topics)
        found, problems = await verify_topics(settings.kafka_bootstrap_servers, topics)
        for name, topic in found.items():
            configs = ("" if topic.configs is None else "  " + " ".join(
                f"{k}={topic.configs.get(k)}" for k in ("min.insync.replicas", "retention.ms")))
            console.print(f"{name:<32} {topic.partitions} partitions, replication "
                          f"{topic.replication_factor}{configs}", soft_wrap=True)
        if problems:
            raise InfrastructureError("existing topics differ from [topics]: " + "; ".join(problems))

    run_async(create_and_verify)


@topics_app.command("describe")
def topics_describe(config: ConfigOption = None) -> None:
    """Show each topic's partition count (0: missing)."""
    from ..runtime.bus import describe_topics
    from ..runtime.topic_specs import wanted_specs

    settings = settings_for(config)
    specs = wanted_specs(settings.pipeline.topics)
    names = [spec.name for spec in specs]
    counts = run_async(lambda: describe_topics(settings.kafka_bootstrap_servers, names))
    for spec in specs:
        name, want = spec.name, spec.partitions
        have = counts.get(name, 0)
        note = "" if have == want else ("  [red]missing[/]" if not have else f"  (config: {want})")
        console.print(f"{name:<32} {have} partitions{note}")


@db_app.command("migrate")
def db_migrate(config: ConfigOption = None) -> None:
    """Apply the migrations DATABASE_URL is missing, in order, in one transaction."""
    from ..runtime.migrations import migrate

    settings = settings_for(config)
    done = run_async(lambda: migrate(settings.database_url, say=console.print))
    if done.baselined:
        console.print(f"recognised a schema made before versioned migrations: baselined "
                      f"{done.baselined[0].label} to {done.baselined[-1].label}")
    if done.applied:
        console.print(f"applied {len(done.applied)} migration(s), up to {done.applied[-1].label}")
    elif not done.baselined:
        console.print("up to date")


@db_app.command("status")
def db_status(config: ConfigOption = None) -> None:
    """The schema's version, and the migrations this code has that it lacks."""
    from ..runtime.db import connect
    from ..runtime.migrations import available, plan, schema_version, verdict

    settings = settings_for(config)

    async def show() -> str | None:
        async with connect(settings.database_url) as conn:
            current = await schema_version(conn)
            known = available()
            applied = {} if current == 0 else {r["version"]: r["checksum"] for r in await conn.fetch(
                "SELECT version, checksum FROM public.schema_migrations")}
        pending = plan(applied, known)
        console.print(f"schema version {current:03d}; this code: {known[-1].label}")
        for m in pending:
            console.print(f"  pending {m.label}")
        return verdict(current, known[-1].version)

    if problem := run_async(show):
        console.print(problem)
        raise typer.Exit(1)


@schemas_app.command("write")
def schemas_write(out: Annotated[Path, typer.Option(help="Folder for the JSON Schemas.")] = Path(
        "schemas/events")) -> None:
    """Regenerate one JSON Schema per event type from events/ (a test fails when they drift)."""
    from events.schema_export import asyncapi, event_schemas, file_name, render

    out.mkdir(parents=True, exist_ok=True)
    schemas = event_schemas()
    for stale in out.glob("*.schema.json"):
        if stale.name not in {file_name(t) for t in schemas}:
            stale.unlink()
    for event_type, schema in schemas.items():
        (out / file_name(event_type)).write_text(render(schema))
    console.print(f"wrote {len(schemas)} schemas to {out}")
    (out.parent / "asyncapi.json").write_text(render(asyncapi()))
    console.print(f"wrote {out.parent / 'asyncapi.json'}")
    from ..dashboard.openapi import write_openapi

    console.print(f"wrote {write_openapi(out.parent / 'openapi.json')}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
