"""`leadflow dlq list|show|replay`: the dead letters the projector folded, filtered by topic,
reason, stage and time; replay puts originals back on their topic after a fix."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from events import Topic, utcnow

from ..pipeline.settings import Settings
from .common import ConfigOption, console, err, run_async, settings_for, who

if TYPE_CHECKING:
    import asyncpg

    from ..dlq.store import LetterFilter

T = TypeVar("T")

dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: list, show, replay after a fix.")

TopicOption = Annotated[str | None, typer.Option(
    help="Only letters read from this topic (logical name, e.g. leads.new).")]
ReasonOption = Annotated[str | None, typer.Option(
    help="Only letters whose error type or message contains this text (any case).")]
StageOption = Annotated[str | None, typer.Option(help="Only letters of this stage (score, ...).")]
SinceOption = Annotated[str | None, typer.Option(
    help="Recorded at or after: an ISO time (2026-12-01T02:00Z) or an age (2h, 3d).")]
UntilOption = Annotated[str | None, typer.Option(help="Recorded before: an ISO time or an age.")]
LimitOption = Annotated[int, typer.Option(min=1, max=100_000, help="At most this many letters.")]


def when(text: str | None, *, name: str) -> datetime | None:
    """An ISO time or an age ("2h": two hours ago) as an aware datetime; exits 2 if neither."""
    from ..runtime.durations import parse_duration

    if text is None:
        return None
    try:
        return utcnow() - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        err.print(f"[bold red]error:[/] --{name} {text!r} is neither an ISO time nor an age "
                  "like 2h or 3d")
        raise typer.Exit(2) from None
    return moment if moment.tzinfo else moment.astimezone()


def _topic(name: str | None, prefix: str) -> str | None:
    if name is None:
        return None
    try:
        return Topic(name).physical(prefix)
    except ValueError:
        err.print(f"[bold red]error:[/] --topic {name!r} is not one of: "
                  f"{', '.join(t.value for t in Topic)}")
        raise typer.Exit(2) from None


async def _with_pool(config: Path | None,
                     work: Callable[[Settings, asyncpg.Pool], Awaitable[T]]) -> T:
    from ..runtime.db import READ_SCHEMA, create_pool

    settings = settings_for(config)
    pool = await create_pool(settings.database_url, max_size=2, search_path=READ_SCHEMA, attempts=3)
    try:
        return await work(settings, pool)
    finally:
        await pool.close()


def _filter(settings: Settings, *, topic: str | None, reason: str | None, stage: str | None,
            since: str | None, until: str | None, limit: int,
            ids: Sequence[uuid.UUID] = ()) -> LetterFilter:
    from ..dlq.store import LetterFilter

    return LetterFilter(topic=_topic(topic, settings.prefix), reason=reason, stage=stage,
                        since=when(since, name="since"), until=when(until, name="until"),
                        ids=tuple(ids), limit=limit)


@dlq_app.command("list")
def list_letters(topic: TopicOption = None, reason: ReasonOption = None, stage: StageOption = None,
                 since: SinceOption = None, until: UntilOption = None, limit: LimitOption = 50,
                 config: ConfigOption = None) -> None:
    """Dead letters, oldest first, with where they came from and why."""
    from ..dlq import store
    from ..runtime.logging import redact

    async def work(settings: Settings, pool: asyncpg.Pool) -> list[store.Letter]:
        where = _filter(settings, topic=topic, reason=reason, stage=stage, since=since,
                        until=until, limit=limit)
        return await store.letters(pool, where)

    found = run_async(lambda: _with_pool(config, work))
    if not found:
        console.print("no dead letters match")
        return
    table = Table("id", "recorded", "stage", "origin", "error", "replayed",
                  title=f"{len(found)} dead letter(s)")
    for letter in found:
        table.add_row(str(letter.event_id)[:8], letter.recorded_at.isoformat(timespec="seconds"),
                      letter.stage or "-", letter.origin,
                      redact(f"{letter.error_type}: {letter.error}")[:120],
                      letter.replayed_at.isoformat(timespec="seconds") if letter.replayed_at else "")
    console.print(table)


@dlq_app.command("show")
def show(letter_id: Annotated[str, typer.Argument(help="The letter's id (or the start of it, "
                                                       "as `dlq list` shows it).")],
         config: ConfigOption = None) -> None:
    """One dead letter in full: where it came from, why, and the original message."""
    from ..dlq import store

    async def work(settings: Settings, pool: asyncpg.Pool) -> store.Letter | list[uuid.UUID]:
        ids = await store.by_prefix(pool, letter_id)
        if len(ids) != 1:
            return ids
        return (await store.letters(pool, store.LetterFilter(ids=(ids[0],), limit=1)))[0]

    found = run_async(lambda: _with_pool(config, work))
    if isinstance(found, list):
        err.print(f"[bold red]error:[/] {'no' if not found else 'more than one'} dead letter "
                  f"with an id starting {letter_id!r}; see `leadflow dlq list`")
        raise typer.Exit(1)
    payload = dict(found.payload)
    payload.pop("original", None)
    console.print_json(json.dumps({
        "id": str(found.event_id), "recorded_at": found.recorded_at.isoformat(),
        "stage": found.stage, "origin": found.origin, "error_type": found.error_type,
        "error": found.error, "attempts": found.attempts,
        "replayed_at": found.replayed_at.isoformat() if found.replayed_at else None,
        "letter": payload}, default=str))
    original = found.original
    console.rule("original message")
    try:
        console.print_json(original.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        console.print(repr(original))


@dlq_app.command("replay")
def replay(letter_ids: Annotated[list[str] | None, typer.Argument(
               help="Letter ids (or their starts); none: every letter the options select.")] = None,
           topic: TopicOption = None, reason: ReasonOption = None, stage: StageOption = None,
           since: SinceOption = None, until: UntilOption = None,
           limit: LimitOption = 10_000,
           again: Annotated[bool, typer.Option(
               "--again", help="Also letters replayed before.")] = False,
           dry_run: Annotated[bool, typer.Option(
               "--dry-run", help="Say what would go back; send nothing.")] = False,
           config: ConfigOption = None) -> None:
    """Put dead letters' originals back on the topic they were read from (after a fix).

    A letter goes back once (--again for more); one whose original is still invalid, or a bad
    source row, is skipped with the reason. Downstream work is idempotent either way."""
    from ..dlq import store
    from ..dlq.replay import Verdict, judge
    from ..dlq.replay import replay as send_back
    from ..runtime.bus import make_producer

    if not letter_ids and not any((topic, reason, stage, since, until)):
        err.print("[bold red]error:[/] name letters or narrow with --topic, --reason, --stage, "
                  "--since or --until (a replay of everything is rarely what a fix calls for)")
        raise typer.Exit(2)

    async def work(settings: Settings, pool: asyncpg.Pool) -> tuple[list[Verdict], int]:
        ids: list[uuid.UUID] = []
        for given in letter_ids or ():
            matched = await store.by_prefix(pool, given)
            if len(matched) != 1:
                err.print(f"[bold red]error:[/] {given!r} matches {len(matched)} dead letters; "
                          "see `leadflow dlq list`")
                raise typer.Exit(2)
            ids += matched
        where = _filter(settings, topic=topic, reason=reason, stage=stage, since=since,
                        until=until, limit=limit, ids=ids)
        logical = {name: t for t in Topic for name in settings.pipeline.topics.names(t)}
        verdicts = [judge(letter, logical, again=again) for letter in await store.letters(pool, where)]
        if dry_run:
            return verdicts, 0
        producer = make_producer(settings.kafka_bootstrap_servers, client_id="leadflow-dlq")
        await producer.start()
        try:
            return verdicts, await send_back(pool, producer, verdicts, who())
        finally:
            await producer.stop()

    verdicts, sent = run_async(lambda: _with_pool(config, work))
    skipped = [v for v in verdicts if v.skip]
    for verdict in skipped:
        console.print(f"skipped {str(verdict.letter.event_id)[:8]} ({verdict.letter.origin}): "
                      f"{verdict.skip}")
    ready = len(verdicts) - len(skipped)
    console.print(f"{'would send' if dry_run else 'sent'} {ready if dry_run else sent} letter(s) "
                  f"back to their topics; {len(skipped)} skipped")
