"""`leadflow contact ...`: replies, unsubscribes, suppressions, pause / resume, the kill switch
(each published as a control event the contact service applies before its next send), and
the campaign export."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer

from events import ALL_TENANTS, ControlEvent, utcnow

from ..contact import commands
from .common import ConfigOption, console, err, run_async, settings_for, who

contact_app = typer.Typer(no_args_is_help=True,
                          help="Outreach controls and artifacts (see docs/outreach.md).")

TenantOption = Annotated[str, typer.Option(
    "--tenant", envvar="LEADFLOW_TENANT", show_envvar=True,
    help="Tenant the decision applies to ('*': every tenant).")]


def _publish(config: Path | None, events: Sequence[ControlEvent], what: str) -> None:
    from ..runtime.bus import publish_once

    settings = settings_for(config)
    run_async(lambda: publish_once(settings.kafka_bootstrap_servers, settings.pipeline.topics,
                                   events))
    console.print(f"{what}: {len(events)} control event(s) published; the contact service "
                  "applies them before its next send")


def _checked(build: Callable[[], ControlEvent]) -> ControlEvent:
    """The event ``build`` makes, or exit 2 with what was wrong with the input."""

    try:
        return build()
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None


@contact_app.command("reply")
def reply(lead: Annotated[str, typer.Argument(help="Lead id, or email with --tenant.")],
          tenant: TenantOption = ALL_TENANTS, config: ConfigOption = None) -> None:
    """Record a reply: the lead's sequence stops."""

    event = _checked(lambda: commands.reply(lead, requested_by=who(), tenant_id=tenant))
    _publish(config, [event], "reply recorded")


@contact_app.command("unsubscribe")
def unsubscribe(email: Annotated[str, typer.Argument(help="The recipient's email.")],
                tenant: TenantOption = ALL_TENANTS, config: ConfigOption = None) -> None:
    """Unsubscribe an email: it is never contacted again."""

    event = _checked(lambda: commands.unsubscribe(email, requested_by=who(), tenant_id=tenant))
    _publish(config, [event], "unsubscribed")


@contact_app.command("suppress")
def suppress(email: Annotated[str | None, typer.Option(help="Suppress this email.")] = None,
             domain: Annotated[str | None, typer.Option(
                 help="Suppress everyone at this domain (and its subdomains).")] = None,
             csv_file: Annotated[Path | None, typer.Option(
                 "--csv", exists=True, dir_okay=False, readable=True,
                 help="CSV with an 'email' and/or 'domain' column, optional 'reason'.")] = None,
             reason: Annotated[str | None, typer.Option(help="Why (kept with the entry).")] = None,
             remove: Annotated[bool, typer.Option("--remove", help="Lift the suppression.")] = False,
             tenant: TenantOption = ALL_TENANTS, config: ConfigOption = None) -> None:
    """Suppress emails or whole domains (one, or a CSV of them)."""

    events: list[ControlEvent] = []
    if csv_file is not None:
        loaded, problems = commands.suppressions_from_csv(
            csv_file.read_text(encoding="utf-8-sig"), requested_by=who(), tenant_id=tenant)
        for problem in problems:
            err.print(f"[yellow]{csv_file}:{problem.line}:[/] {problem.reason}")
        if problems and not loaded:
            raise typer.Exit(2)
        events.extend(loaded)
    if email or domain:
        events.append(_checked(lambda: commands.suppression(
            email=email, domain=domain, reason=reason, requested_by=who(), tenant_id=tenant,
            remove=remove)))
    if not events:
        err.print("[bold red]error:[/] give --email, --domain or --csv")
        raise typer.Exit(2)
    _publish(config, events, "suppression removed" if remove else "suppressed")


@contact_app.command("pause")
def pause(campaign: Annotated[str, typer.Option(help="Campaign to pause.")],
          tenant: TenantOption = ALL_TENANTS, config: ConfigOption = None) -> None:
    """Pause a campaign: no send until it is resumed; its ticks are skipped."""

    _publish(config, [commands.pause(campaign, requested_by=who(), tenant_id=tenant)], "paused")


@contact_app.command("resume")
def resume(campaign: Annotated[str, typer.Option(help="Campaign to resume.")],
           tenant: TenantOption = ALL_TENANTS, config: ConfigOption = None) -> None:
    """Resume a paused campaign (tenant '*' lifts its pauses for every tenant)."""

    _publish(config, [commands.resume(campaign, requested_by=who(), tenant_id=tenant)], "resumed")


@contact_app.command("kill-switch")
def kill_switch(state: Annotated[str, typer.Argument(help="'engage' or 'release'.")],
                reason: Annotated[str | None, typer.Option(help="Why.")] = None,
                tenant: TenantOption = ALL_TENANTS, config: ConfigOption = None) -> None:
    """Engage or release the kill switch: while engaged, nothing is sent."""

    if state not in ("engage", "release"):
        err.print(f"[bold red]error:[/] {state!r}: say 'engage' or 'release'")
        raise typer.Exit(2)
    event = commands.kill_switch(state == "engage", requested_by=who(), tenant_id=tenant,
                                 reason=reason)
    _publish(config, [event], f"kill switch {state}d")


@contact_app.command("export")
def export(campaign: Annotated[str, typer.Option(help="Campaign to export.")],
           out: Annotated[Path, typer.Option(help="Folder for leads.csv, attempts.csv, summary.md.")],
           config: ConfigOption = None) -> None:
    """Write a campaign's leads, send attempts and a summary to a folder."""
    from ..contact.export import campaign_files, write_files
    from ..runtime.db import create_pool

    settings = settings_for(config)

    async def go() -> dict[str, str]:
        pool = await create_pool(settings.database_url, attempts=3)
        try:
            return await campaign_files(pool, campaign, utcnow())
        finally:
            await pool.close()

    for path in write_files(out, run_async(go)):
        console.print(f"wrote {path}")
