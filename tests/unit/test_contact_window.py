"""A control window reads the control tables while the feed catches up with the topic: an event
applied during the table read still binds every send of the window."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest

from events import CampaignPaused, ControlEvent, Lead
from services.contact import outbox as outbox_module
from services.contact.config import ContactConfig
from services.contact.outbox import _Window
from services.contact.policy import Block, ControlSnapshot
from tests.factories import lead_factory

AT = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
LEAD = lead_factory(tenant_id="acme", campaign_id="q4")
PAUSE = CampaignPaused(event_id=uuid4(), occurred_at=AT, recorded_at=AT, tenant_id="acme",
                       requested_by="test", campaign_id="q4")


class Feed:
    """A control feed whose sync applies ``arriving`` once the table read has started."""

    def __init__(self, arriving: Sequence[ControlEvent], table_read: asyncio.Event) -> None:
        self.applied: list[ControlEvent] = []
        self.arriving = list(arriving)
        self.table_read = table_read

    def mark(self) -> int:
        return len(self.applied)

    def since(self, mark: int) -> Sequence[ControlEvent]:
        return self.applied[mark:]

    async def sync(self, timeout: float) -> None:
        await self.table_read.wait()  # the tables were read before these events were applied
        self.applied.extend(self.arriving)


def window(feed: Feed | None) -> _Window:
    owner: Any = SimpleNamespace(feed=feed, pool=None, config=ContactConfig())
    return _Window(owner, [LEAD])


async def test_an_event_applied_during_the_table_read_blocks_the_windows_sends(
        monkeypatch: pytest.MonkeyPatch) -> None:
    table_read = asyncio.Event()

    async def snapshot(pool: object, leads: Sequence[Lead]) -> ControlSnapshot:
        table_read.set()
        await asyncio.sleep(0)
        return ControlSnapshot()  # read before the pause reached the tables

    monkeypatch.setattr(outbox_module.controls, "snapshot", snapshot)
    w = window(Feed([PAUSE], table_read))
    await asyncio.wait_for(w.read(), 5)
    state = w.snapshot.state_for(LEAD)
    assert not state.paused
    assert await w.block(LEAD, (w.reads, state)) == Block("hold", "paused")


async def test_a_failed_table_read_does_not_leave_the_sync_running(
        monkeypatch: pytest.MonkeyPatch) -> None:
    never = asyncio.Event()
    feed = Feed([PAUSE], never)

    async def snapshot(pool: object, leads: Sequence[Lead]) -> ControlSnapshot:
        raise ConnectionError("postgres went away")

    monkeypatch.setattr(outbox_module.controls, "snapshot", snapshot)
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(window(feed).read(), 5)
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert pending == []
