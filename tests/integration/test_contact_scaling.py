"""Two contact instances share one run over twelve partitions: each lead is sent and its
lead.contacted published exactly once, and the run's count equals its input, even when one
instance finishes its partitions long before the other."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from events import JobName, LeadContacted, Topic, decode
from services.contact.templates import Message
from services.pipeline.settings import Settings
from services.runtime.config import TopicsConfig
from services.runtime.service import JobService
from tests.harness import Ticker, make_config, publish, read_topic
from tests.harness.contact import RecordingSender, contact_service, day, routed

LEADS = 240


async def slowly(message: Message, call: int) -> None:
    await asyncio.sleep(0.02)  # an SMTP round trip, roughly


async def split(services: list[JobService], partitions: int, timeout: float = 60) -> None:
    """Until the instances own disjoint partitions covering the topic."""
    give_up = time.monotonic() + timeout
    while True:
        owned = [s.executor.assigned_partitions() for s in services]  # type: ignore[union-attr]
        if all(owned) and sorted(p for o in owned for p in o) == list(range(partitions)):
            return
        assert time.monotonic() < give_up, f"the instances did not split the partitions: {owned}"
        await asyncio.sleep(0.1)


async def test_two_instances_send_and_publish_each_lead_once_and_count_their_input(
        settings: Settings) -> None:
    settings = settings.using(make_config(
        settings.prefix, topics=TopicsConfig(prefix=settings.prefix, partitions=12)))
    events = [routed(f"s{i}@scale{i}.com") for i in range(LEADS)]
    await publish(settings, events)
    fast = RecordingSender()
    slow = RecordingSender(before_send=slowly)
    a = settings.using(settings.pipeline, instance_id="contact-a")
    b = settings.using(settings.pipeline, instance_id="contact-b")
    async with contact_service(a, fast) as first, contact_service(b, slow) as second, \
            Ticker(settings) as ticker:
        await split([first, second], 12)
        run = await ticker.run(JobName.CONTACT, at=day(0), max_leads=10 * LEADS, timeout=300)
    contacted = [decode(v) for v in await read_topic(settings, Topic.LEADS_CONTACTED)]
    assert run.status == "completed" and run.parts == 2
    assert fast.sent and slow.sent, "both instances sent"
    sends = Counter(key for key, _ in [*fast.sent, *slow.sent])
    assert len(sends) == LEADS and max(sends.values()) == 1
    published = Counter(e.lead.lead_id for e in contacted if isinstance(e, LeadContacted))
    assert len(published) == LEADS and max(published.values()) == 1, "published once each"
    assert run.leads_processed == LEADS
