"""The leads the pipeline benchmark imports: deterministic, varied, built a chunk at a time so a
million of them never sit in memory together, each stamped with the moment it was imported."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from events import Lead, LeadCreated, LeadStatus, ids, utcnow

from ..pipeline.settings import Settings
from ..runtime.bus import Publisher, make_broker, make_producer
from ..runtime.config import TopicsConfig

TENANT = "bench"
CAMPAIGN = "bench-pipeline"
CHUNK = 5000

_INDUSTRIES = ("software", "saas", "retail", "fintech", "healthcare", "media", "manufacturing",
               "education")
_TITLES = ("CTO", "VP of Sales", "Director of Marketing", "Engineering Manager",
           "Software Engineer", "Founder")
_COUNTRIES = ("US", "DE", "GB", "BR", "FR", "IN")


def lead_created(i: int, at: datetime, tenant: str = TENANT) -> LeadCreated:
    """Lead number ``i`` of ``tenant``, imported at ``at``: the same lead for the same ``i`` in
    every run."""
    company = f"company{i % 997}"
    email = f"lead{i}@{company}.com"
    lead = Lead(lead_id=ids.lead_id(tenant, email), tenant_id=tenant, campaign_id=CAMPAIGN,
                email=email, first_name=f"First{i}", last_name=f"Last{i}",
                title=_TITLES[i % len(_TITLES)], company=company.title(), domain=f"{company}.com",
                industry=_INDUSTRIES[i % len(_INDUSTRIES)], employees=(i * 37) % 5000 + 1,
                country=_COUNTRIES[i % len(_COUNTRIES)], source="bench",
                status=LeadStatus.NEW, version=1, created_at=at, updated_at=at)
    return LeadCreated(event_id=ids.event_id(lead.lead_id, "lead.created"), occurred_at=at,
                       recorded_at=at, tenant_id=tenant, lead=lead)


def chunks(n: int, size: int = CHUNK, tenant: str = TENANT) -> Iterator[list[LeadCreated]]:
    """``n`` leads of ``tenant`` in lists of ``size``; each list is stamped with the time it is
    built."""
    for start in range(0, n, size):
        at = utcnow()
        yield [lead_created(i, at, tenant) for i in range(start, min(n, start + size))]


def tenant_chunks(plan: Sequence[tuple[str, int]]) -> Iterator[list[LeadCreated]]:
    """Each tenant's leads in turn, in ``plan``'s order (tenant, leads)."""
    for tenant, n in plan:
        yield from chunks(n, tenant=tenant)


async def publish_leads(bootstrap: str, topics: TopicsConfig | str, n: int,
                        on_chunk: Callable[[int], object] = lambda _: None,
                        batches: Iterable[list[LeadCreated]] | None = None) -> None:
    """Publish ``n`` LeadCreated (or ``batches``) to leads.new, a chunk at a time, acks
    awaited; ``topics``: the layout (a prefix alone: no tenant has topics of its own)."""
    if isinstance(topics, str):
        topics = TopicsConfig(prefix=topics)
    producer = make_producer(bootstrap, client_id="bench-import")
    await producer.start()
    try:
        # Sent through the plain producer, as the services publish; the FastStream broker is
        # never started because an attached producer carries every message.
        publisher = Publisher(make_broker(bootstrap, client_id="bench-import"), topics)
        publisher.attach(producer)
        for chunk in chunks(n) if batches is None else batches:
            await publisher.publish(chunk)
            on_chunk(len(chunk))
    finally:
        await producer.stop()


def progress_bar(console: Console) -> Progress:
    """The benchmark's progress display: a description, a bar, done of total, time elapsed."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


async def publish_backlog(settings: Settings, n: int, say: Console) -> None:
    """Publish ``n`` leads to leads.new of ``settings``' prefix, showing progress."""
    with progress_bar(say) as progress:
        task = progress.add_task(f"publishing {n:,} leads", total=n)
        await publish_leads(settings.kafka_bootstrap_servers, settings.prefix, n,
                            lambda k: progress.advance(task, k))
